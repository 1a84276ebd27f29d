//! Load generation for `msrp-bench`: lean MSRP connections, a verifying
//! "B" sink, large single-chunk transfers and request/response sessions.
//!
//! Unlike [`crate::peer`], which favours inspectability (whole frames,
//! SHA-256 of every body), everything here is built to cost the load tool as
//! little CPU as possible, because on a small machine the tool shares the
//! cores with the relay it measures:
//!
//! - bodies are slices of one pre-generated pseudo-random [`Pattern`], so
//!   sending costs no generation and the receiver verifies every byte with a
//!   `memcmp` against the expected position (a lost, duplicated or
//!   misplaced piece shows up as a mismatch, since the pattern period is a
//!   prime number of bytes);
//! - [`Conn`] reads 256 KiB at a time and batches the responses it writes
//!   until it would block on a read.
//!
//! A [`Conn`] can also reach the relay over TLS or a WebSocket
//! ([`Dialer`]); the "B" sinks stay plain TCP.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msrp_core::{build, ByteRange, EndFlag, Event, FrameHead, Header, Limits, Parser};
use rustls::ClientConfig;
use tungstenite::{Message, WebSocket};

use crate::body::BodyGen;
use crate::ids;
use crate::stream::{Stream, Transport};
use crate::tls::{self, Certs};
use crate::ws::WsConnect;

/// Period of the body pattern: a prime, so no chunk size is a multiple of it.
pub const PATTERN_PERIOD: usize = 1_048_573;
/// Longest contiguous slice [`Pattern::slice`] returns.
pub const MAX_SLICE: usize = 256 * 1024;
const READ_SIZE: usize = 256 * 1024;
/// A sink blocked this long writing its responses gives up (the other side
/// stopped reading them).
const SINK_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Shared, cheap errors: these end a run and are shown to the operator.
pub type Result<T> = std::result::Result<T, String>;

/// The cyclic body pattern: byte `i` of every message body is
/// `pattern[i % PATTERN_PERIOD]`.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// One period followed by its first [`MAX_SLICE`] bytes again, so any
    /// slice of up to `MAX_SLICE` bytes is contiguous.
    data: Arc<Vec<u8>>,
}

impl Pattern {
    /// The pattern derived from `seed`.
    pub fn new(seed: u64) -> Pattern {
        let mut data = BodyGen::new(seed, PATTERN_PERIOD as u64).to_vec();
        data.extend_from_within(..MAX_SLICE);
        Pattern {
            data: Arc::new(data),
        }
    }

    /// Expected bytes at message offset `offset` (0-based), at most `len`
    /// (and at most [`MAX_SLICE`]) of them.
    pub fn slice(&self, offset: u64, len: usize) -> &[u8] {
        let start = (offset % PATTERN_PERIOD as u64) as usize;
        &self.data[start..start + len.min(MAX_SLICE)]
    }

    /// Whether `piece` is what a body holds at `offset`.
    pub fn matches(&self, mut offset: u64, mut piece: &[u8]) -> bool {
        while !piece.is_empty() {
            let want = self.slice(offset, piece.len());
            if piece[..want.len()] != *want {
                return false;
            }
            offset += want.len() as u64;
            piece = &piece[want.len()..];
        }
        true
    }

    /// Writes `len` body bytes starting at message offset 0.
    pub fn write_body(&self, w: &mut impl Write, len: u64) -> io::Result<()> {
        let mut off = 0u64;
        while off < len {
            let n = usize::try_from(len - off).unwrap_or(MAX_SLICE);
            let s = self.slice(off, n);
            w.write_all(s)?;
            off += s.len() as u64;
        }
        Ok(())
    }
}

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
    Ws(Box<WebSocket<Stream>>),
}

impl ConnIo {
    fn tcp(&self) -> &TcpStream {
        match self {
            ConnIo::Tcp(s) => s,
            ConnIo::Tls(s) => s.tcp(),
            ConnIo::Ws(ws) => ws.get_ref().tcp(),
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
            ConnIo::Ws(ws) => ws
                .send(Message::Binary(Bytes::copy_from_slice(data)))
                .map_err(|e| format!("WebSocket write: {e}")),
        }
    }
}

/// One MSRP connection tuned for load: big reads, batched writes.
pub struct Conn {
    io: ConnIo,
    rbuf: BytesMut,
    parser: Parser,
    out: Vec<u8>,
    local: SocketAddr,
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
            Stream::tls_connect(s, name, config, deadline)
                .map_err(|e| format!("TLS with {addr}: {e}"))
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
                ConnIo::Ws(Box::new(ws))
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
            ConnIo::Ws(ws) => {
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

/// `msrp://IP:PORT/SESSION;tcp` (IPv6 in brackets).
pub fn msrp_uri(addr: SocketAddr, session: &str) -> String {
    match addr.ip() {
        IpAddr::V4(ip) => format!("msrp://{ip}:{}/{session};tcp", addr.port()),
        IpAddr::V6(ip) => format!("msrp://[{ip}]:{}/{session};tcp", addr.port()),
    }
}

fn bytes_vec(v: &[String]) -> Vec<Bytes> {
    v.iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

/// Head of a complete single-chunk SEND of `len` bytes.
pub fn send_head(
    tid: &[u8],
    msg_id: &str,
    to_path: &[String],
    from_path: &[String],
    len: u64,
) -> BytesMut {
    let headers = [
        Header::new("Message-ID", Bytes::copy_from_slice(msg_id.as_bytes())),
        Header::new("Byte-Range", format!("1-{len}/{len}")),
        Header::new("Content-Type", "application/octet-stream"),
    ];
    build::request_head(
        tid,
        b"SEND",
        &bytes_vec(to_path),
        &bytes_vec(from_path),
        &headers,
        true,
    )
}

/// A message the sink finished (all bytes arrived, `$` seen, verified).
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// Body bytes of the message.
    pub bytes: u64,
    /// When its last chunk's end-line was parsed.
    pub at: Instant,
    /// Chunks it arrived in.
    pub chunks: u64,
}

/// Counters of a [`Sink`] (all its connections).
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Body bytes of SEND chunks received.
    pub bytes: AtomicU64,
    /// SEND chunks received (each answered with 200).
    pub chunks: AtomicU64,
    /// Messages completely received and verified.
    pub messages: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Corruption and protocol errors (first ones kept).
    errors: Mutex<Vec<String>>,
    error_count: AtomicU64,
    /// Message-IDs someone waits for, with their completion once done.
    watched: Mutex<HashMap<Vec<u8>, Option<Completion>>>,
    done: Condvar,
}

impl SinkStats {
    fn error(&self, e: String) {
        self.error_count.fetch_add(1, Ordering::Relaxed);
        let mut v = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < 20 {
            v.push(e);
        }
    }

    /// Number of errors seen so far.
    pub fn error_count(&self) -> u64 {
        self.error_count.load(Ordering::Relaxed)
    }

    /// The first errors seen.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Registers interest in a Message-ID before it is sent.
    pub fn watch(&self, msg_id: &str) {
        self.watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(msg_id.as_bytes().to_vec(), None);
    }

    /// Waits for a watched message to complete.
    pub fn wait_for(&self, msg_id: &str, timeout: Duration) -> Option<Completion> {
        let deadline = Instant::now() + timeout;
        let mut w = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(Some(c)) = w.get(msg_id.as_bytes()) {
                let c = *c;
                w.remove(msg_id.as_bytes());
                return Some(c);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.error_count() > 0 {
                w.remove(msg_id.as_bytes());
                return None;
            }
            w = self
                .done
                .wait_timeout(w, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn complete(&self, msg_id: &[u8], c: Completion) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        let mut w = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = w.get_mut(msg_id) {
            *slot = Some(c);
            self.done.notify_all();
        }
    }
}

/// The "B" side: a listening endpoint that answers 200 to every SEND chunk
/// and verifies every body byte against the [`Pattern`].
pub struct Sink {
    addr: SocketAddr,
    stats: Arc<SinkStats>,
}

impl Sink {
    /// Listens on `ip:0`; connections are served by their own threads.
    pub fn start(ip: IpAddr, pattern: Pattern) -> Result<Sink> {
        let l = TcpListener::bind((ip, 0)).map_err(|e| format!("bind {ip}:0: {e}"))?;
        let addr = l.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        let stats = Arc::new(SinkStats::default());
        let st = stats.clone();
        std::thread::Builder::new()
            .name(format!("sink-{}", addr.port()))
            .spawn(move || accept_loop(l, st, pattern))
            .map_err(|e| format!("spawn: {e}"))?;
        Ok(Sink { addr, stats })
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `msrp://IP:PORT/SESSION;tcp` of this endpoint.
    pub fn uri(&self, session: &str) -> String {
        msrp_uri(self.addr, session)
    }

    /// Its counters.
    pub fn stats(&self) -> &Arc<SinkStats> {
        &self.stats
    }
}

/// A B endpoint behind the relay (RFC 4976 §5): it connects to the relay,
/// AUTHs (the relay's route must answer with `msrp_cmap_save()`) and
/// receives over that connection what is sent to its Use-Path.
pub struct AuthedSink {
    use_path: String,
    uri: String,
    /// Local address of its connection (as the relay lists it).
    local: SocketAddr,
    stats: Arc<SinkStats>,
}

impl AuthedSink {
    /// Connects to `relay` (whose URI is `relay_uri`), AUTHs and serves the
    /// connection in a thread of its own.
    pub fn start(relay: SocketAddr, relay_uri: &str, pattern: Pattern) -> Result<AuthedSink> {
        let mut c = Conn::connect(relay, Some(Duration::from_secs(10)))?;
        let (uri, use_path) = auth(&mut c, relay_uri)?;
        let stats = Arc::new(SinkStats::default());
        let st = stats.clone();
        let stream = c
            .tcp()
            .try_clone()
            .map_err(|e| format!("clone the AUTH connection: {e}"))?;
        std::thread::Builder::new()
            .name(format!("authed-sink-{}", c.local.port()))
            .spawn(move || {
                if let Err(e) = serve(stream, &st, &pattern) {
                    st.error(format!("authed B: {e}"));
                }
            })
            .map_err(|e| format!("spawn: {e}"))?;
        Ok(AuthedSink {
            use_path,
            uri,
            local: c.local,
            stats,
        })
    }

    /// The Use-Path the relay handed out.
    pub fn use_path(&self) -> &str {
        &self.use_path
    }

    /// This endpoint's own URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The local address of its connection to the relay.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Its counters.
    pub fn stats(&self) -> &Arc<SinkStats> {
        &self.stats
    }
}

/// AUTHs over `c` at the relay whose URI is `relay_uri` (RFC 4976 §5,
/// no challenge: the relay's route answers 200 itself). Returns this
/// side's URI (a new session) and the Use-Path the relay handed out.
pub fn auth(c: &mut Conn, relay_uri: &str) -> Result<(String, String)> {
    let uri = c.uri(&ids::session_id());
    let tid = ids::transaction_id();
    let head = build::request_head(
        tid.as_bytes(),
        b"AUTH",
        &[Bytes::copy_from_slice(relay_uri.as_bytes())],
        &[Bytes::copy_from_slice(uri.as_bytes())],
        &[],
        false,
    );
    let mut frame = head.to_vec();
    frame.extend_from_slice(&build::end_line(tid.as_bytes(), EndFlag::Complete));
    c.send(&frame)?;
    loop {
        match c.next_event()? {
            Some(Event::Head(h)) if h.transaction_id.as_ref() == tid.as_bytes() => {
                let code = h.status_code();
                if code != Some(200) {
                    let code = code.map_or("no status".into(), |c| c.to_string());
                    return Err(format!("AUTH answered {code}"));
                }
                let up = h
                    .header("Use-Path")
                    .map(|v| String::from_utf8_lossy(v).trim().to_owned())
                    .ok_or("200 to AUTH without Use-Path")?;
                return Ok((uri, up));
            }
            Some(_) => {}
            None => return Err("the relay closed the AUTH connection".into()),
        }
    }
}

fn accept_loop(l: TcpListener, stats: Arc<SinkStats>, pattern: Pattern) {
    loop {
        match l.accept() {
            Ok((s, peer)) => {
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let st = stats.clone();
                let p = pattern.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("sink-conn-{}", peer.port()))
                    .spawn(move || {
                        if let Err(e) = serve(s, &st, &p) {
                            st.error(format!("B connection from {peer}: {e}"));
                        }
                    });
                if let Err(e) = spawned {
                    stats.error(format!("B: cannot spawn a connection thread: {e}"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                stats.error(format!("B: accept: {e}"));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The chunk being received on a sink connection.
struct InChunk {
    head: FrameHead,
    msg_id: Vec<u8>,
    /// 0-based message offset of the next body byte.
    offset: u64,
    /// Announced end offset (exclusive), if known.
    end: Option<u64>,
    total: Option<u64>,
    /// Bytes of this message received before this chunk.
    before: u64,
    chunks: u64,
}

/// Per message in progress on one connection: (next offset, chunks so far).
type Partial = HashMap<Vec<u8>, (u64, u64)>;

fn serve(s: TcpStream, stats: &SinkStats, pattern: &Pattern) -> Result<()> {
    // No read timeout (a connection may idle between phases); a write that
    // cannot progress for a minute means the peer stopped reading.
    let mut c = Conn::new(s, None)?;
    c.tcp()
        .set_write_timeout(Some(SINK_WRITE_TIMEOUT))
        .map_err(|e| format!("socket setup: {e}"))?;
    let mut partial: Partial = HashMap::new();
    // The SEND chunk being received (None inside other frames).
    let mut cur: Option<InChunk> = None;
    loop {
        let Some(ev) = c.next_event()? else {
            return Ok(());
        };
        match ev {
            Event::Head(h) if h.method() == Some(b"SEND") => {
                cur = Some(start_chunk(h, &partial)?);
            }
            Event::Head(_) => cur = None, // REPORT or response: ignored
            Event::Body(piece) => {
                let Some(ch) = cur.as_mut() else {
                    continue;
                };
                if !pattern.matches(ch.offset, &piece) {
                    return Err(format!(
                        "body mismatch in message {} at bytes {}..{}",
                        String::from_utf8_lossy(&ch.msg_id),
                        ch.offset,
                        ch.offset + piece.len() as u64
                    ));
                }
                ch.offset += piece.len() as u64;
                stats.bytes.fetch_add(piece.len() as u64, Ordering::Relaxed);
            }
            Event::End(flag) => {
                let Some(ch) = cur.take() else {
                    continue;
                };
                stats.chunks.fetch_add(1, Ordering::Relaxed);
                answer_200(&mut c, &ch.head)?;
                finish_chunk(ch, flag, &mut partial, stats)?;
            }
        }
    }
}

fn start_chunk(h: FrameHead, partial: &Partial) -> Result<InChunk> {
    let msg_id = h
        .message_id()
        .map(|m| m.to_vec())
        .ok_or("SEND without Message-ID")?;
    let range = h
        .byte_range()
        .map_err(|e| format!("bad Byte-Range: {e}"))?
        .unwrap_or(ByteRange {
            start: 1,
            end: None,
            total: None,
        });
    let offset = range.start - 1;
    let (expected, chunks) = partial.get(&msg_id).copied().unwrap_or((0, 0));
    if offset != expected {
        return Err(format!(
            "message {}: chunk starts at byte {} but {} bytes had arrived",
            String::from_utf8_lossy(&msg_id),
            range.start,
            expected
        ));
    }
    Ok(InChunk {
        head: h,
        msg_id,
        offset,
        end: range.end,
        total: range.total,
        before: expected,
        chunks,
    })
}

fn finish_chunk(
    ch: InChunk,
    flag: EndFlag,
    partial: &mut Partial,
    stats: &SinkStats,
) -> Result<()> {
    let name = || String::from_utf8_lossy(&ch.msg_id).into_owned();
    if let Some(end) = ch.end {
        if ch.offset != end {
            return Err(format!(
                "message {}: Byte-Range says the chunk ends at byte {end}, body ended at {}",
                name(),
                ch.offset
            ));
        }
    }
    match flag {
        EndFlag::Continued => {
            partial.insert(ch.msg_id, (ch.offset, ch.chunks + 1));
            Ok(())
        }
        EndFlag::Aborted => Err(format!(
            "message {} aborted (#) after {} bytes",
            name(),
            ch.offset
        )),
        EndFlag::Complete => {
            if let Some(total) = ch.total {
                if ch.offset != total {
                    return Err(format!(
                        "message {} complete ($) after {} of {total} bytes",
                        name(),
                        ch.offset
                    ));
                }
            }
            if ch.before > 0 || ch.chunks > 0 {
                partial.remove(&ch.msg_id);
            }
            let c = Completion {
                bytes: ch.offset,
                at: Instant::now(),
                chunks: ch.chunks + 1,
            };
            stats.complete(&ch.msg_id, c);
            Ok(())
        }
    }
}

/// Queues `200 OK`: To-Path = the request's From-Path, From-Path = its first
/// To-Path URI.
fn answer_200(c: &mut Conn, h: &FrameHead) -> Result<()> {
    let to = h.from_path().map_err(|e| format!("SEND: {e}"))?;
    let mut from = h.to_path().map_err(|e| format!("SEND: {e}"))?;
    from.truncate(1);
    let frame = build::response_frame(&h.transaction_id, 200, Some(b"OK"), &to, &from, &[]);
    c.queue(&frame);
    Ok(())
}

/// Result of one large transfer.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Body bytes.
    pub bytes: u64,
    /// From the first byte written to the sink's completion.
    pub elapsed: Duration,
    /// Chunks the sink received the message in.
    pub chunks: u64,
}

impl Transfer {
    /// Throughput in MB/s (10^6 bytes per second).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

/// Sends one single-chunk SEND of `size` bytes to `target`, addressed
/// `via` (relay URIs, possibly none) then `sink`; waits until the sink has
/// verified it and the sender got its 200.
///
/// Fails (instead of hanging) when nothing moves for `stall`: no body byte
/// reaches the sink and no response arrives. A watchdog then shuts the
/// sender's socket down, which unblocks a sender stuck in `write`.
pub fn transfer(
    target: SocketAddr,
    via: &[String],
    sink: &Sink,
    pattern: &Pattern,
    size: u64,
    stall: Duration,
) -> Result<Transfer> {
    transfer_with(&Dialer::tcp(), target, via, sink, pattern, size, stall)
}

/// [`transfer`] with A connecting as `dialer` says (TLS, WebSocket).
pub fn transfer_with(
    dialer: &Dialer,
    target: SocketAddr,
    via: &[String],
    sink: &Sink,
    pattern: &Pattern,
    size: u64,
    stall: Duration,
) -> Result<Transfer> {
    let mut c = Conn::dial(target, dialer, Some(stall))?;
    let watch = c
        .tcp()
        .try_clone()
        .map_err(|e| format!("A: dup socket: {e}"))?;
    let received = || sink.stats().bytes.load(Ordering::Relaxed);
    let finished = AtomicBool::new(false);
    let stalled: Mutex<Option<String>> = Mutex::new(None);
    let start_bytes = received();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            let mut last = (Instant::now(), received());
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let now = Instant::now();
                let n = received();
                if n != last.1 {
                    last = (now, n);
                } else if now.duration_since(last.0) >= stall {
                    let msg = format!(
                        "stalled: nothing moved for {stall:?} ({} of {size} body bytes had reached B)",
                        n.saturating_sub(start_bytes)
                    );
                    *stalled.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
                    let _ = watch.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        });
        let r = transfer_on(&mut c, via, sink, pattern, size, stall);
        finished.store(true, Ordering::Relaxed);
        r
    });
    match stalled.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(msg) => Err(match r {
            Err(e) => format!("{msg}; then {e}"),
            Ok(_) => msg,
        }),
        None => r,
    }
}

fn transfer_on(
    c: &mut Conn,
    via: &[String],
    sink: &Sink,
    pattern: &Pattern,
    size: u64,
    stall: Duration,
) -> Result<Transfer> {
    let mut to_path = via.to_vec();
    to_path.push(sink.uri(&ids::session_id()));
    let from = vec![c.uri(&ids::session_id())];
    let tid = ids::transaction_id();
    let msg_id = ids::message_id();
    let head = send_head(tid.as_bytes(), &msg_id, &to_path, &from, size);
    sink.stats().watch(&msg_id);
    let t0 = Instant::now();
    c.send(&head)?;
    c.send_body(pattern, size)
        .map_err(|e| format!("A: writing the body: {e}"))?;
    c.send(&build::body_end(tid.as_bytes(), EndFlag::Complete))?;
    let code = c
        .read_response(tid.as_bytes())
        .map_err(|e| format!("A: {e}"))?;
    if code != 200 {
        return Err(format!("A: got {code} instead of 200"));
    }
    let done = sink.stats().wait_for(&msg_id, stall).ok_or_else(|| {
        let errs = sink.stats().errors();
        if errs.is_empty() {
            format!("B did not receive the whole message within {stall:?} of A's 200")
        } else {
            format!("B: {}", errs.join("; "))
        }
    })?;
    if done.bytes != size {
        return Err(format!("B received {} bytes, {size} sent", done.bytes));
    }
    Ok(Transfer {
        bytes: size,
        elapsed: done.at.saturating_duration_since(t0),
        chunks: done.chunks,
    })
}

/// Shared state of a request/response run.
#[derive(Debug, Default)]
pub struct RateCounters {
    /// 200s received by all sessions.
    pub ok: AtomicU64,
    /// Tells the sessions to stop after their current round trip.
    pub stop: AtomicBool,
    /// Sessions connected and waiting for `go`.
    pub ready: AtomicU64,
    /// Lets the connected sessions start sending.
    pub go: AtomicBool,
    /// Every round trip's time (SEND written to its 200 read), in
    /// microseconds, appended by each session when it ends.
    pub round_trips_us: Mutex<Vec<u32>>,
}

/// One session of the message-rate test: connects to `target`, counts itself
/// in `counters.ready`, waits for `counters.go`, then sends `msg_size`-byte SENDs to `to_path`, each after the
/// previous one's 200, until `counters.stop`. Returns the number sent (all
/// answered).
pub fn rate_session(
    target: SocketAddr,
    to_path: Vec<String>,
    msg_size: u64,
    pattern: &Pattern,
    counters: &RateCounters,
    timeout: Duration,
) -> Result<u64> {
    rate_session_with(
        &Dialer::tcp(),
        target,
        to_path,
        msg_size,
        pattern,
        counters,
        timeout,
    )
}

/// [`rate_session`] connecting as `dialer` says (TLS, WebSocket: each SEND
/// one message).
pub fn rate_session_with(
    dialer: &Dialer,
    target: SocketAddr,
    to_path: Vec<String>,
    msg_size: u64,
    pattern: &Pattern,
    counters: &RateCounters,
    timeout: Duration,
) -> Result<u64> {
    let c = Conn::dial(target, dialer, Some(timeout))?;
    run_rate_session(c, to_path, msg_size, pattern, counters)
}

/// Chooses a session's To-Path once its connection is up, from the
/// connection's local address (`None`: dial again).
pub type PickPath<'a> = dyn Fn(SocketAddr) -> Option<Vec<String>> + Sync + 'a;

/// [`rate_session_with`] whose To-Path `pick` chooses after connecting,
/// dialling again (at most `tries` times) while it chooses none: e.g. for a
/// session that must cross the relay's workers.
#[allow(clippy::too_many_arguments)]
pub fn rate_session_picking(
    dialer: &Dialer,
    target: SocketAddr,
    pick: &PickPath<'_>,
    tries: usize,
    msg_size: u64,
    pattern: &Pattern,
    counters: &RateCounters,
    timeout: Duration,
) -> Result<u64> {
    for _ in 0..tries {
        let c = Conn::dial(target, dialer, Some(timeout))?;
        if let Some(to_path) = pick(c.local) {
            return run_rate_session(c, to_path, msg_size, pattern, counters);
        }
    }
    Err(format!("no To-Path chosen after {tries} connections"))
}

/// The SEND-then-200 loop of a rate session over `c`.
fn run_rate_session(
    mut c: Conn,
    to_path: Vec<String>,
    msg_size: u64,
    pattern: &Pattern,
    counters: &RateCounters,
) -> Result<u64> {
    counters.ready.fetch_add(1, Ordering::SeqCst);
    while !counters.go.load(Ordering::SeqCst) && !counters.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let from = vec![c.uri(&ids::session_id())];
    let mut body = Vec::with_capacity(usize::try_from(msg_size).unwrap_or(0));
    pattern
        .write_body(&mut body, msg_size)
        .map_err(|e| format!("body: {e}"))?;
    let mut sent = 0u64;
    let mut frame = Vec::with_capacity(body.len() + 512);
    let mut times = Vec::new();
    while !counters.stop.load(Ordering::Relaxed) {
        let tid = ids::transaction_id();
        let msg_id = ids::message_id();
        frame.clear();
        frame.extend_from_slice(&send_head(
            tid.as_bytes(),
            &msg_id,
            &to_path,
            &from,
            msg_size,
        ));
        frame.extend_from_slice(&body);
        frame.extend_from_slice(&build::body_end(tid.as_bytes(), EndFlag::Complete));
        let t0 = Instant::now();
        c.send(&frame)?;
        sent += 1;
        match c.read_response(tid.as_bytes())? {
            200 => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
            }
            code => return Err(format!("got {code} instead of 200 (after {sent} SENDs)")),
        }
        times.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    if let Ok(mut all) = counters.round_trips_us.lock() {
        all.extend(times);
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn pattern_matches_only_its_own_bytes() {
        let p = Pattern::new(1);
        let mut body = Vec::new();
        p.write_body(&mut body, 3 * PATTERN_PERIOD as u64 + 5)
            .unwrap();
        assert!(p.matches(0, &body));
        assert!(p.matches(4097, &body[4097..4097 + 70_000]));
        assert!(!p.matches(4096, &body[4097..4097 + 70_000]));
        // a dropped 16 KiB chunk is noticed
        assert!(!p.matches(100_000, &body[100_000 + 16384..200_000]));
    }

    #[test]
    fn transfer_and_sessions_direct() {
        let p = Pattern::new(2);
        let sink = Sink::start(IpAddr::V4(Ipv4Addr::LOCALHOST), p.clone()).unwrap();
        let t = transfer(
            sink.addr(),
            &[],
            &sink,
            &p,
            3_000_000,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(t.bytes, 3_000_000);
        assert_eq!(t.chunks, 1);
        let counters = RateCounters::default();
        let sent = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let to = vec![sink.uri("x")];
                    let addr = sink.addr();
                    let (p, counters) = (&p, &counters);
                    s.spawn(move || {
                        rate_session(addr, to, 1024, p, counters, Duration::from_secs(5))
                    })
                })
                .collect();
            counters.go.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            counters.stop.store(true, Ordering::Relaxed);
            hs.into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .sum::<u64>()
        });
        assert!(sent > 0);
        assert_eq!(counters.ok.load(Ordering::Relaxed), sent);
        assert_eq!(sink.stats().messages.load(Ordering::Relaxed), sent + 1);
        assert_eq!(sink.stats().error_count(), 0);
    }

    #[test]
    fn sink_reports_corruption() {
        let p = Pattern::new(3);
        let sink = Sink::start(IpAddr::V4(Ipv4Addr::LOCALHOST), p.clone()).unwrap();
        let mut c = Conn::connect(sink.addr(), Some(Duration::from_secs(5))).unwrap();
        let to = vec![sink.uri("s")];
        let from = vec![c.uri("a")];
        let head = send_head(b"tid1", "m1", &to, &from, 10);
        c.send(&head).unwrap();
        c.send(b"0123456789").unwrap();
        c.send(&build::body_end(b"tid1", EndFlag::Complete))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while sink.stats().error_count() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(sink.stats().errors()[0].contains("body mismatch"));
    }
}
