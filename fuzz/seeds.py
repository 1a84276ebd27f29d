#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/<target>/ from the test vectors.

The string literals of the crates' tests (frames, URIs, Byte-Range values)
become seeds, plus the frames of msrp-core/tests/vectors.rs rebuilt the way
that file builds them. Files are named by their SHA-1, as libFuzzer names
what it adds. Run from anywhere: `python3 fuzz/seeds.py`; it only adds.
"""
import glob
import hashlib
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
SOURCES = [
    "msrp-core/tests/*.rs",
    "msrp-core/src/*.rs",
    "msrp-engine/src/**/*.rs",
    "msrp-engine/tests/*.rs",
]
TID = "a786hjs2"
TO = "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp"
FROM = "From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp"
LITERAL = re.compile(r'b?"((?:[^"\\]|\\.)*)"')


def unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = s[i + 1]
        if n == "x":
            out.append(int(s[i + 2 : i + 4], 16))
            i += 4
            continue
        out += {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\", '"': b'"'}.get(
            n, b""
        )
        i += 2
    return bytes(out)


def literals():
    for pattern in SOURCES:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern), recursive=True)):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for m in LITERAL.finditer(text):
                raw = m.group(1).replace("{tid}", TID).replace("{TO}", TO).replace("{FROM}", FROM)
                if "{" in raw:
                    continue
                yield unescape(raw)


def request(tid, method, extra, body, flag):
    v = f"MSRP {tid} {method}\r\n{TO}\r\n{FROM}\r\n".encode()
    for h in extra:
        v += h.encode() + b"\r\n"
    if body is not None:
        v += b"\r\n" + body + b"\r\n"
    return v + f"-------{tid}".encode() + flag + b"\r\n"


def response(tid, status):
    return f"MSRP {tid} {status}\r\n{FROM}\r\n{TO}\r\n-------{tid}$\r\n".encode()


def frames():
    yield request(TID, "SEND", ["Message-ID: 87652491", "Byte-Range: 1-25/25", "Content-Type: text/plain"], b"Hey Bob, are you there?", b"$")
    yield request(TID, "SEND", ["Message-ID: 1", "Byte-Range: 1-0/0"], None, b"$")
    yield request(TID, "SEND", ["Failure-Report: partial", "Byte-Range: 1-3/*"], b"abc", b"+")
    yield request(TID, "SEND", ["Byte-Range: 1-*/*"], b"ab", b"#")
    yield request(TID, "REPORT", ["Message-ID: 7", "Byte-Range: 1-25/25", "Status: 000 408 Request Timeout"], None, b"$")
    yield request(TID, "AUTH", ["Expires: 900"], None, b"$")
    yield response(TID, "200 OK")
    yield response(TID, "403 Not  allowed here")
    tricky = (
        b"-------\r\n" + f"\r\n-------{TID}X\r\n".encode() + f"\r\n-------{TID}$x".encode()
        + f"\r\n-------{TID}$\r".encode() + f"\r\n-------{TID}+\n".encode()
        + b"\r\n-------other$\r\n" + f"\r\n-------{TID[:-1]}".encode()
    )
    yield request(TID, "SEND", [], tricky, b"$")
    yield (
        request("t1aa", "SEND", ["Byte-Range: 1-3/6"], b"abc", b"+")
        + response("t1aa", "200 OK")
        + request("t2bb", "SEND", ["Byte-Range: 4-6/6"], b"de\r\n", b"$")
    )


def ws_frame(opcode, fin, payload, key=b"\x37\xfa\x21\x3d"):
    """A client's (masked) WebSocket frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 * fin | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 * fin | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 * fin | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_seeds():
    """`[control byte, split seed]`, an upgrade request, then frames."""
    req = (
        b"GET /msrp HTTP/1.1\r\nHost: relay.example.com\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nOrigin: https://chat.example.com\r\n"
        b"Sec-WebSocket-Protocol: foo, msrp\r\n\r\n"
    )
    f = list(frames())
    stream = (
        ws_frame(2, 1, f[0])
        + ws_frame(1, 0, f[1][:30]) + ws_frame(9, 1, b"ping") + ws_frame(0, 1, f[1][30:])
        + ws_frame(1, 0, "é€".encode()[:3]) + ws_frame(0, 1, "é€".encode()[3:])
        + ws_frame(10, 1, b"") + ws_frame(2, 1, bytes(range(256)) * 2)
    )
    yield b"\x00\x00" + req + stream
    yield b"\x21\x07" + req + stream + ws_frame(8, 1, b"\x03\xe8bye")
    yield b"\x41\x05" + req.replace(b"13", b"8") + stream
    yield b"\x60\x11" + stream + ws_frame(8, 1, b"")
    yield b"\x02\x09" + ws_frame(2, 0, b"x" * 60) + ws_frame(0, 1, b"y" * 10)


def write(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def main():
    lits = list(literals())
    msrp = [x for x in lits if x.startswith(b"MSRP ")] + list(frames())
    for f in msrp:
        # parser input: two bytes of limits/split seed, then the stream
        write("parser", b"\x00\x00" + f)
        write("parser", b"\x01\x31" + f)
    uris = sorted({x for x in lits if re.match(rb"^msrps?://", x, re.I)})
    for u in uris:
        write("uri", u)
    for a, b in zip(uris, uris[1:]):
        write("uri", a + b" " + b + b"\n" + uris[0])
    for r in sorted({x for x in lits if re.match(rb"^ *[0-9]+-[0-9*]+/[0-9*]+ *$", x)}):
        write("byte_range", r)
    # the structured targets decode any bytes (arbitrary); frames make
    # useful header values and lengths
    for f in list(frames())[:6]:
        write("head", f)
        write("chunker", f[:64])
    for i, f in enumerate(list(frames())[:4]):
        write("tracker", f[: 16 + 24 * i])
        write("sched", f[: 16 + 24 * i])
    for seed in ws_seeds():
        write("ws", seed)


if __name__ == "__main__":
    main()
