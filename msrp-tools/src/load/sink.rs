//! The verifying "B" sinks: plain, and AUTHed at the relay with a Use-Path.

use super::*;

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
