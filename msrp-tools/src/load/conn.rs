//! Lean MSRP connections: [`Dialer`] (TCP, TLS, WebSocket) and [`Conn`].

use super::*;

/// One `recv` of up to `max` bytes appended to `buf`, straight into its
/// spare capacity (no zeroing, no copy from a scratch buffer: at the
/// receiving end of a relayed transfer that copy was 7 % of B's time).
fn recv_into_spare(stream: &TcpStream, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    buf.reserve(max);
    let len = buf.len();
    let spare = buf.spare_capacity_mut();
    let want = spare.len().min(max);
    // SAFETY: recv(2) writes at most `want` bytes into the given memory,
    // which is `spare`'s (valid, writable, uninitialised is fine for a
    // write-only use); the fd is owned by `stream` for the whole call.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            spare.as_mut_ptr().cast::<libc::c_void>(),
            want,
            0,
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: the kernel initialised the first `n <= want` bytes after
    // `len`, all within the capacity.
    unsafe { buf.set_len(len + n.min(want)) };
    Ok(n)
}

/// How a [`Conn`] reaches its target: plain TCP, TLS (`msrps`), or a
/// WebSocket (`ws`, `wss`; subprotocol `msrp`, path `/`).
#[derive(Clone)]
pub struct Dialer {
    transport: Transport,
    /// Server name checked against the certificate, and the configuration
    /// (TLS and wss).
    tls: Option<(String, Arc<ClientConfig>)>,
    /// `Origin` of the WebSocket upgrade.
    origin: Option<String>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("transport", &self.transport)
            .field("server_name", &self.tls.as_ref().map(|(n, _)| n))
            .field("origin", &self.origin)
            .finish()
    }
}

impl Dialer {
    /// Plain TCP.
    pub fn tcp() -> Dialer {
        Dialer {
            transport: Transport::Tcp,
            tls: None,
            origin: None,
        }
    }

    /// `transport`; `tls` (server name, configuration) is required for
    /// `Tls` and `Wss` and ignored otherwise; `origin` is sent with the
    /// WebSocket upgrade.
    pub fn new(
        transport: Transport,
        tls: Option<(String, Arc<ClientConfig>)>,
        origin: Option<String>,
    ) -> Result<Dialer> {
        if transport.is_tls() && tls.is_none() {
            return Err(format!("{transport} needs a TLS client configuration"));
        }
        Ok(Dialer {
            transport,
            tls: if transport.is_tls() { tls } else { None },
            origin,
        })
    }

    /// How a client dials a relay's `t` listener that presents the relay
    /// certificate of `certs` (`scripts/make-certs.sh`): TLS verified
    /// against that set's CA as 127.0.0.1 (an IP SAN of `relay.pem`);
    /// `certs` is required for `Tls` and `Wss`.
    pub fn to_test_relay(
        t: Transport,
        certs: Option<&Certs>,
        origin: Option<&str>,
    ) -> Result<Dialer> {
        let tls = match certs {
            Some(c) if t.is_tls() => Some((
                "127.0.0.1".to_owned(),
                tls::client_config(&c.ca(), None).map_err(|e| e.to_string())?,
            )),
            _ => None,
        };
        Dialer::new(t, tls, origin.map(str::to_owned))
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }
}

/// What a [`Conn`] reads and writes.
enum ConnIo {
    /// Plain TCP: reads straight into the parse buffer.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Stream),
    /// A WebSocket over TCP or TLS: one message per write.
    Ws(Box<WsIo>),
}

/// A WebSocket of a [`Conn`]: tungstenite did the handshake and reads;
/// writes are frames built here (masked over words, into one buffer kept
/// for the next) and written straight to the stream: tungstenite copied
/// every message three times (into a `Message`, into its frame, and moving
/// its output buffer after each partial write), 16 % of the load client's
/// samples in a `wss` transfer, on the cores it shares with the relay.
struct WsIo {
    ws: WebSocket<Stream>,
    frame: Vec<u8>,
}

impl WsIo {
    /// `data` as one binary message: one masked frame (RFC 6455 §5.3).
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let key = (ids::random_u64() as u32).to_ne_bytes();
        if let Stream::TlsClient(s) = self.ws.get_mut() {
            return send_records(s, &mut self.frame, key, data);
        }
        self.frame.clear();
        crate::ws::frame_into(
            &mut self.frame,
            true,
            crate::ws::opcode::BINARY,
            Some(key),
            data,
        );
        let s = self.ws.get_mut();
        s.write_all(&self.frame)?;
        s.flush()
    }
}

/// Most plaintext in one TLS record (RFC 8446 §5.1).
const RECORD: usize = 16 * 1024;

/// [`WsIo::send`] over TLS: the frame (header, then `data` masked) in
/// record-sized blocks of `block`, each masked straight from `data` and
/// handed to rustls as one full record, then written at once. Building
/// the whole frame first cost a copy of every byte and a pass of masking
/// over it, 10 % of the load client's samples in a `wss` transfer, on the
/// cores it shares with the relay.
fn send_records(
    s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    block: &mut Vec<u8>,
    key: [u8; 4],
    data: &[u8],
) -> io::Result<()> {
    block.resize(RECORD, 0);
    let (head, mut fill) =
        crate::ws::frame_header(true, crate::ws::opcode::BINARY, Some(key), data.len());
    block[..fill].copy_from_slice(&head[..fill]);
    let mut off = 0;
    loop {
        let n = (RECORD - fill).min(data.len() - off);
        crate::ws::mask_copy(&mut block[fill..fill + n], &data[off..off + n], key, off);
        s.conn.writer().write_all(&block[..fill + n])?;
        off += n;
        fill = 0;
        if off == data.len() {
            break;
        }
    }
    s.flush()
}

impl ConnIo {
    fn tcp(&self) -> &TcpStream {
        match self {
            ConnIo::Tcp(s) => s,
            ConnIo::Tls(s) => s.tcp(),
            ConnIo::Ws(w) => w.ws.get_ref().tcp(),
        }
    }

    /// Writes `data` (over a WebSocket: as one binary message).
    fn write(&mut self, data: &[u8]) -> Result<()> {
        match self {
            ConnIo::Tcp(s) => s.write_all(data).map_err(|e| format!("write: {e}")),
            ConnIo::Tls(s) => s
                .write_all(data)
                .and_then(|()| s.flush())
                .map_err(|e| format!("TLS write: {e}")),
            ConnIo::Ws(w) => w.send(data).map_err(|e| format!("WebSocket write: {e}")),
        }
    }
}

/// One MSRP connection tuned for load: big reads, batched writes.
pub struct Conn {
    io: ConnIo,
    rbuf: BytesMut,
    parser: Parser,
    out: Vec<u8>,
    pub(super) local: SocketAddr,
    /// Host part of this side's URI: its IP, or a random `.invalid` name
    /// over a WebSocket (RFC 7977 §5.2).
    uri_host: String,
    transport: Transport,
    /// Read buffer for TLS and WebSockets (TCP reads into `rbuf` itself).
    scratch: Vec<u8>,
}

impl Conn {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr, timeout: Option<Duration>) -> Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        Conn::new(s, timeout)
    }

    /// Connects to `addr` as `dialer` says (TLS and WebSocket handshakes
    /// within 5 s); `timeout` then bounds every blocking read and write.
    pub fn dial(addr: SocketAddr, dialer: &Dialer, timeout: Option<Duration>) -> Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        Conn::dial_over(s, addr, dialer, timeout)
    }

    /// [`Conn::dial`] over `s`, a TCP connection to `addr` made by the
    /// caller (e.g. from a chosen source address).
    pub fn dial_over(
        s: TcpStream,
        addr: SocketAddr,
        dialer: &Dialer,
        timeout: Option<Duration>,
    ) -> Result<Conn> {
        s.set_nodelay(true)
            .map_err(|e| format!("socket setup: {e}"))?;
        let local = s.local_addr().map_err(|e| format!("socket setup: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let t = dialer.transport;
        let tls = |s: TcpStream| -> Result<Stream> {
            let (name, config) = dialer
                .tls
                .as_ref()
                .ok_or_else(|| format!("{t} needs a TLS client configuration"))?;
            let mut s = Stream::tls_connect(s, name, config, deadline)
                .map_err(|e| format!("TLS with {addr}: {e}"))?;
            // a write of up to MAX_SLICE bytes becomes its records at once
            // and goes out in one writev (rustls takes 64 KiB by default)
            if let Stream::TlsClient(c) = &mut s {
                c.conn.set_buffer_limit(None);
            }
            Ok(s)
        };
        let io = match t {
            Transport::Tcp => ConnIo::Tcp(s),
            Transport::Tls => ConnIo::Tls(tls(s)?),
            Transport::Ws | Transport::Wss => {
                let stream = if t.is_tls() { tls(s)? } else { Stream::Tcp(s) };
                let host = addr.to_string();
                let mut opts = WsConnect::new(&host, "/");
                opts.origin = dialer.origin.as_deref();
                opts.tls = dialer.tls.as_ref().map(|(n, c)| (n.as_str(), c));
                let (ws, _) = crate::ws::handshake(stream, &opts, deadline)
                    .map_err(|e| format!("WebSocket with {addr}: {e}"))?;
                ConnIo::Ws(Box::new(WsIo {
                    ws,
                    frame: Vec::new(),
                }))
            }
        };
        Conn::with_io(io, local, t, timeout)
    }

    /// Wraps a stream; `timeout` bounds every blocking read and write.
    pub fn new(stream: TcpStream, timeout: Option<Duration>) -> Result<Conn> {
        stream
            .set_nodelay(true)
            .map_err(|e| format!("socket setup: {e}"))?;
        let local = stream
            .local_addr()
            .map_err(|e| format!("socket setup: {e}"))?;
        Conn::with_io(ConnIo::Tcp(stream), local, Transport::Tcp, timeout)
    }

    fn with_io(
        io: ConnIo,
        local: SocketAddr,
        transport: Transport,
        timeout: Option<Duration>,
    ) -> Result<Conn> {
        let tcp = io.tcp();
        tcp.set_read_timeout(timeout)
            .and_then(|()| tcp.set_write_timeout(timeout))
            .map_err(|e| format!("socket setup: {e}"))?;
        let uri_host = if transport.is_ws() {
            format!("{}.invalid", ids::random_alnum(12).to_ascii_lowercase())
        } else {
            match local.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            }
        };
        let scratch = if matches!(io, ConnIo::Tcp(_)) {
            Vec::new()
        } else {
            vec![0; READ_SIZE]
        };
        Ok(Conn {
            io,
            rbuf: BytesMut::with_capacity(READ_SIZE),
            parser: Parser::new(Limits::default()),
            out: Vec::new(),
            local,
            uri_host,
            transport,
            scratch,
        })
    }

    /// This side's URI: `msrp://IP:PORT/SESSION;tcp` over TCP,
    /// `msrps://IP:PORT/SESSION;tcp` over TLS,
    /// `msrp(s)://RANDOM.invalid:PORT/SESSION;ws` over a WebSocket.
    pub fn uri(&self, session: &str) -> String {
        self.transport
            .uri(&self.uri_host, self.local.port(), session)
    }

    /// How this connection reaches its target.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Writes `data` now (after anything queued; over a WebSocket, each is
    /// a message).
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.flush()?;
        self.io.write(data)
    }

    /// Writes `len` bytes of `pattern` (from offset 0) now: a body being
    /// streamed (over a WebSocket, one message per slice of up to
    /// [`MAX_SLICE`] bytes).
    pub fn send_body(&mut self, pattern: &Pattern, len: u64) -> Result<()> {
        self.flush()?;
        let mut off = 0u64;
        while off < len {
            let n = usize::try_from(len - off).unwrap_or(MAX_SLICE);
            let piece = pattern.slice(off, n);
            match &mut self.io {
                ConnIo::Tcp(s) => s.write_all(piece).map_err(|e| format!("write: {e}"))?,
                ConnIo::Tls(s) => s.write_all(piece).map_err(|e| format!("TLS write: {e}"))?,
                ConnIo::Ws(_) => self.io.write(piece)?,
            }
            off += piece.len() as u64;
        }
        Ok(())
    }

    /// Gives the read buffers back (256 KiB each): for a connection that
    /// is only held open from now on, and never read again.
    pub fn park(&mut self) {
        self.rbuf = BytesMut::new();
        self.scratch = Vec::new();
        self.out = Vec::new();
        if let ConnIo::Ws(w) = &mut self.io {
            w.frame = Vec::new();
        }
    }

    /// The TCP socket underneath (e.g. to shut it down from a watchdog).
    pub fn tcp(&self) -> &TcpStream {
        self.io.tcp()
    }

    /// Queues `data`; it is written before the next blocking read.
    pub fn queue(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
    }

    /// Writes what is queued (over a WebSocket: as one message).
    pub fn flush(&mut self) -> Result<()> {
        if !self.out.is_empty() {
            self.io.write(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads what arrives next into the parse buffer: `Ok(0)` at EOF (or a
    /// WebSocket Close), a positive count otherwise (also for a WebSocket
    /// control message, which adds nothing).
    fn read_more(&mut self) -> io::Result<usize> {
        let n = match &mut self.io {
            ConnIo::Tcp(s) => return recv_into_spare(s, &mut self.rbuf, READ_SIZE),
            ConnIo::Tls(s) => s.read(&mut self.scratch)?,
            ConnIo::Ws(w) => {
                let ws = &mut w.ws;
                return match ws.read() {
                    Ok(Message::Binary(b)) => {
                        self.rbuf.extend_from_slice(&b);
                        Ok(b.len().max(1))
                    }
                    Ok(Message::Text(t)) => {
                        self.rbuf.extend_from_slice(t.as_bytes());
                        Ok(t.len().max(1))
                    }
                    Ok(Message::Close(_)) => Ok(0),
                    Ok(_) => {
                        // a ping: send the queued pong
                        ws.flush().map_err(ws_io)?;
                        Ok(1)
                    }
                    Err(tungstenite::Error::ConnectionClosed) => Ok(0),
                    Err(e) => Err(ws_io(e)),
                };
            }
        };
        self.rbuf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    /// The next parser event; `Ok(None)` on a clean close between frames.
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        loop {
            match self.parser.next(&mut self.rbuf) {
                Ok(Some(ev)) => return Ok(Some(ev)),
                Ok(None) => {}
                Err(e) => return Err(format!("MSRP parse error: {e}")),
            }
            self.flush()?;
            let n = match self.read_more() {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("timed out waiting for data".into())
                }
                Err(e) => return Err(format!("read: {e}")),
            };
            if n == 0 {
                if self.parser.in_frame() || !self.rbuf.is_empty() {
                    return Err("connection closed inside a frame".into());
                }
                return Ok(None);
            }
        }
    }

    /// Reads up to the end of a response to transaction `tid`, skipping
    /// requests (e.g. REPORTs, which are discarded). Returns its status code.
    pub fn read_response(&mut self, tid: &[u8]) -> Result<u16> {
        let mut current: Option<FrameHead> = None;
        loop {
            match self.next_event()? {
                None => return Err("connection closed while waiting for a response".into()),
                Some(Event::Head(h)) => current = Some(h),
                Some(Event::Body(_)) => {}
                Some(Event::End(_)) => {
                    let Some(h) = current.take() else {
                        return Err("end-line without head".into());
                    };
                    if let Some(code) = h.status_code() {
                        if h.transaction_id.as_ref() != tid {
                            return Err(format!(
                                "response {code} for unknown transaction {}",
                                String::from_utf8_lossy(&h.transaction_id)
                            ));
                        }
                        return Ok(code);
                    }
                }
            }
        }
    }
}

/// A tungstenite error as an I/O error (timeouts stay timeouts).
fn ws_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}
