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

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msrp_core::{build, ByteRange, EndFlag, Event, FrameHead, Header, Limits, Parser};

use crate::body::BodyGen;
use crate::ids;

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

/// One MSRP connection tuned for load: big reads, batched writes.
pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    parser: Parser,
    out: Vec<u8>,
    local: SocketAddr,
}

impl Conn {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr, timeout: Option<Duration>) -> Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        Conn::new(s, timeout)
    }

    /// Wraps a stream; `timeout` bounds every blocking read and write.
    pub fn new(stream: TcpStream, timeout: Option<Duration>) -> Result<Conn> {
        let setup = || -> io::Result<SocketAddr> {
            stream.set_nodelay(true)?;
            stream.set_read_timeout(timeout)?;
            stream.set_write_timeout(timeout)?;
            stream.local_addr()
        };
        let local = setup().map_err(|e| format!("socket setup: {e}"))?;
        Ok(Conn {
            stream,
            rbuf: BytesMut::with_capacity(READ_SIZE),
            parser: Parser::new(Limits::default()),
            out: Vec::new(),
            local,
        })
    }

    /// `msrp://IP:PORT/SESSION;tcp` naming this side of the connection.
    pub fn uri(&self, session: &str) -> String {
        msrp_uri(self.local, session)
    }

    /// Writes `data` now (after anything queued).
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.flush()?;
        self.stream
            .write_all(data)
            .map_err(|e| format!("write: {e}"))
    }

    /// The raw stream, for streaming a body.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Queues `data`; it is written before the next blocking read.
    pub fn queue(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
    }

    /// Writes what is queued.
    pub fn flush(&mut self) -> Result<()> {
        if !self.out.is_empty() {
            self.stream
                .write_all(&self.out)
                .map_err(|e| format!("write: {e}"))?;
            self.out.clear();
        }
        Ok(())
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
            let n = match recv_into_spare(&self.stream, &mut self.rbuf, READ_SIZE) {
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
    stats: Arc<SinkStats>,
}

impl AuthedSink {
    /// Connects to `relay` (whose URI is `relay_uri`), AUTHs and serves the
    /// connection in a thread of its own.
    pub fn start(relay: SocketAddr, relay_uri: &str, pattern: Pattern) -> Result<AuthedSink> {
        let mut c = Conn::connect(relay, Some(Duration::from_secs(10)))?;
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
        let use_path = loop {
            match c.next_event()? {
                Some(Event::Head(h)) if h.transaction_id.as_ref() == tid.as_bytes() => {
                    if h.status_code() != Some(200) {
                        return Err(format!("AUTH answered {:?}", h.status_code()));
                    }
                    let up = h
                        .header("Use-Path")
                        .map(|v| String::from_utf8_lossy(v).trim().to_owned())
                        .ok_or("200 to AUTH without Use-Path")?;
                    break up;
                }
                Some(_) => {}
                None => return Err("the relay closed the AUTH connection".into()),
            }
        };
        let stats = Arc::new(SinkStats::default());
        let st = stats.clone();
        let stream = c
            .stream
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

    /// Its counters.
    pub fn stats(&self) -> &Arc<SinkStats> {
        &self.stats
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
    c.stream
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
    let mut c = Conn::connect(target, Some(stall))?;
    let watch = c
        .stream()
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
    pattern
        .write_body(c.stream(), size)
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
    let mut c = Conn::connect(target, Some(timeout))?;
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
        c.send(&frame)?;
        sent += 1;
        match c.read_response(tid.as_bytes())? {
            200 => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
            }
            code => return Err(format!("got {code} instead of 200 (after {sent} SENDs)")),
        }
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
