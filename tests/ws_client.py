#!/usr/bin/python3
"""MSRP over WebSocket (RFC 7977) with a third-party client: Python `websockets`.

A small client for the relay's ws:// and wss:// listeners, written against
websockets 10.4 (Debian 12's python3-websockets; `make deps` installs it), so
the relay's WebSocket layer is exercised by an implementation that shares no
code with it or with the Rust test peers. Run with Debian's /usr/bin/python3
(a python3 of its own, e.g. pyenv's, may lack the package).

    ws_client.py URL [options]

URL is ws://HOST:PORT/PATH or wss://HOST:PORT/PATH. The client offers the
subprotocol `msrp` (unless told otherwise) and fails if the server does not
select it. Every MSRP frame it sends goes out as one binary WebSocket message;
what it receives (text or binary messages) is joined into one byte stream and
cut into MSRP frames (start line `MSRP <tid> ...` to end-line
`-------<tid>` + `$`/`+`/`#`), whatever the message boundaries.

Frames to send:
    --send-b64 B64      one frame, base64 (repeatable, sent in order)
    --send-file FILE    one frame, the file's bytes (repeatable)
    --stdin             interactive: every line read from stdin is a base64
                        frame to send; the line `close [CODE [REASON]]` closes
                        the WebSocket; end of input closes it with 1000.

Output, one event per line on stdout (flushed at once):
    open SUBPROTOCOL            handshake done (`-` when none was selected)
    frame B64                   one complete MSRP frame received
    close CODE REASON           the WebSocket closed (1006: without handshake)
    error refused STATUS        the upgrade was answered with HTTP STATUS
    error TEXT                  anything else that went wrong

Without --stdin the client sends its frames, waits for --expect N frames
(default 0) within --timeout seconds, then closes with 1000. Exit status: 0
when the expected frames arrived (without --stdin) or the session ended
normally (with --stdin), 1 on errors (refused, timeout, TLS, ...), 2 usage.

TLS (wss): --ca FILE (verify the server against this CA bundle; otherwise the
system's), --cert FILE --key FILE (client certificate), --server-name NAME
(name to verify instead of URL's host). WebSocket: --origin ORIGIN,
--subprotocol P (repeatable; replaces `msrp`), --no-subprotocol,
--ping-interval SECONDS (keepalive pings; off by default).
"""

import argparse
import asyncio
import base64
import re
import ssl
import sys

try:
    import websockets
    import websockets.exceptions
except ImportError:  # pragma: no cover - depends on the machine
    print("error python module websockets missing: apt-get install python3-websockets",
          flush=True)
    sys.exit(1)

START = re.compile(rb"MSRP ([A-Za-z0-9][A-Za-z0-9.+%=-]{0,63}) ")


def emit(*words):
    print(" ".join(str(w) for w in words), flush=True)


class Framer:
    """Cuts a byte stream into MSRP frames."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        frames = []
        while self.buf:
            m = START.match(self.buf)
            if not m:
                if (not b"MSRP ".startswith(self.buf[:5]) or b"\r\n" in self.buf[:80]
                        or len(self.buf) > 80):
                    raise ValueError("not an MSRP start line: %r" % self.buf[:80])
                break
            end = b"\r\n-------" + m.group(1)
            at = self.buf.find(end, m.end() - 2)
            if at < 0 or len(self.buf) < at + len(end) + 3:
                break
            tail = self.buf[at + len(end): at + len(end) + 3]
            if tail[:1] not in (b"$", b"+", b"#") or tail[1:] != b"\r\n":
                raise ValueError("bad end-line after %r" % self.buf[: at + len(end) + 3][-80:])
            n = at + len(end) + 3
            frames.append(self.buf[:n])
            self.buf = self.buf[n:]
        return frames


def ssl_context(args):
    if not args.url.startswith("wss:"):
        return None
    ctx = ssl.create_default_context(cafile=args.ca) if args.ca else ssl.create_default_context()
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    return ctx


async def receive(ws, framer, got, want, done):
    """Prints every frame; sets `done` once `want` frames arrived."""
    while True:
        try:
            msg = await ws.recv()
        except websockets.exceptions.ConnectionClosed:
            return
        if isinstance(msg, str):
            msg = msg.encode("utf-8")
        try:
            frames = framer.feed(msg)
        except ValueError as e:
            emit("error", e)
            await ws.close(1002, "not MSRP")
            return
        for f in frames:
            emit("frame", base64.b64encode(f).decode("ascii"))
            got[0] += 1
            if want is not None and got[0] >= want:
                done.set()


async def stdin_lines():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        yield line.decode("utf-8", "replace").strip()


async def pump_stdin(ws):
    """Sends every base64 line of stdin as one message; `close [CODE
    [REASON]]` closes."""
    async for line in stdin_lines():
        if not line:
            continue
        if line == "close" or line.startswith("close "):
            parts = line.split(" ", 2)
            code = int(parts[1]) if len(parts) > 1 else 1000
            reason = parts[2] if len(parts) > 2 else ""
            await ws.close(code, reason)
            return
        await ws.send(base64.b64decode(line, validate=True))


async def run(args):
    frames = [base64.b64decode(b, validate=True) for b in args.send_b64]
    for path in args.send_file:
        with open(path, "rb") as f:
            frames.append(f.read())
    if args.no_subprotocol:
        protocols = None
    else:
        protocols = args.subprotocol or ["msrp"]
    kwargs = {}
    if args.server_name:
        kwargs["server_hostname"] = args.server_name
    try:
        ws = await websockets.connect(
            args.url,
            subprotocols=protocols,
            origin=args.origin,
            ssl=ssl_context(args),
            open_timeout=args.timeout,
            ping_interval=args.ping_interval,
            max_size=None,
            **kwargs,
        )
    except websockets.exceptions.InvalidStatusCode as e:
        emit("error", "refused", e.status_code)
        return 1
    except (OSError, asyncio.TimeoutError, ssl.SSLError,
            websockets.exceptions.InvalidHandshake) as e:
        emit("error", type(e).__name__, str(e).replace("\n", " "))
        return 1
    emit("open", ws.subprotocol or "-")
    if protocols and "msrp" in protocols and ws.subprotocol != "msrp":
        emit("error", "the server did not select subprotocol msrp")
        await ws.close(1002, "no msrp subprotocol")
        return 1

    framer = Framer()
    got = [0]
    done = asyncio.Event()
    want = None if args.stdin else args.expect
    if want == 0:
        done.set()
    receiver = asyncio.create_task(receive(ws, framer, got, want, done))
    status = 0
    try:
        for f in frames:
            await ws.send(f)
        if args.stdin:
            # Until stdin ends, asks to close, or the server closes.
            pump = asyncio.create_task(pump_stdin(ws))
            await asyncio.wait({pump, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if pump.done():
                pump.result()  # its errors
            else:
                pump.cancel()
        else:
            waiter = asyncio.create_task(done.wait())
            await asyncio.wait({waiter, receiver}, timeout=args.timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if got[0] < args.expect:
                emit("error", "timeout: %d of %d frames within %s s" % (got[0], args.expect,
                                                                        args.timeout))
                status = 1
    except websockets.exceptions.ConnectionClosed:
        pass
    except (ValueError, OSError) as e:
        emit("error", type(e).__name__, e)
        status = 1
    await ws.close(1000, "")
    try:
        await asyncio.wait_for(receiver, args.timeout)
    except asyncio.TimeoutError:
        receiver.cancel()
    emit("close", ws.close_code if ws.close_code is not None else 1006, ws.close_reason or "")
    if framer.buf:
        emit("error", "%d bytes after the last complete frame" % len(framer.buf))
        status = 1
    return status


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--send-b64", action="append", default=[])
    p.add_argument("--send-file", action="append", default=[])
    p.add_argument("--stdin", action="store_true")
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--server-name")
    p.add_argument("--origin")
    p.add_argument("--subprotocol", action="append")
    p.add_argument("--no-subprotocol", action="store_true")
    p.add_argument("--ping-interval", type=float, default=None)
    args = p.parse_args()
    if not re.match(r"wss?://", args.url):
        p.error("URL must start with ws:// or wss://")
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    if args.stdin and args.expect:
        p.error("--expect is for the non-interactive mode")
    try:
        sys.exit(asyncio.run(run(args)))
    except KeyboardInterrupt:
        sys.exit(1)


if __name__ == "__main__":
    main()
