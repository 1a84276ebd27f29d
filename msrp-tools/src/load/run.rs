//! Large transfers and request/response rate sessions.

use super::*;

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
