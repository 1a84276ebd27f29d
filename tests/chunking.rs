//! Re-chunking (`msrp_max_chunk_size`, RFC 4976 §6.4.1), the relay's own
//! 200s and Failure-Report handling, fair sharing of one outbound connection
//! between concurrent SENDs (RFC 4975 §7.1.1), flow control towards a slow
//! receiver, and aborted chunks (`#`, RFC 4975 §7.1 / §7.3.2).

mod common;

use std::collections::HashSet;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use msrp_core::{build, Header};
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};

use common::chunks::*;
use common::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// `msrp_max_chunk_size` used by these tests (also the module's default).
const MAX_CHUNK: u64 = 16384;
/// How long A waits to be sure no (further) response comes.
const QUIET: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------- helpers

/// Relay with `msrp_max_chunk_size` = `max` plus extra int modparams.
fn start_relay(max: i64, extra: &[(&str, i64)]) -> Kamailio {
    let mut opts = RelayOpts::default().modparam_int("msrp_max_chunk_size", max);
    for (n, v) in extra {
        opts = opts.modparam_int(n, *v);
    }
    Kamailio::start(opts)
}

/// One SEND chunk of a message the sender chunked itself.
fn chunk_request(
    to: &[&str],
    from: &[&str],
    msg_id: &str,
    body: &[u8],
    start: u64,
    total: u64,
    flag: EndFlag,
) -> Request {
    let mut r = Request::new("SEND", to, from);
    let end = start + body.len() as u64 - 1;
    r.headers = vec![
        ("Message-ID".into(), msg_id.to_owned()),
        ("Byte-Range".into(), format!("{start}-{end}/{total}")),
        ("Content-Type".into(), "application/octet-stream".into()),
    ];
    r.body = Some(body.to_vec());
    r.flag = flag;
    r
}

/// Reads `n` responses at A and checks they are 200s for exactly `tids`
/// (in that order), then that nothing else arrives for [`QUIET`].
fn expect_200s(k: &Kamailio, a: &mut Peer, tids: &[String]) {
    for (i, tid) in tids.iter().enumerate() {
        let r = a.read_response(T, &["REPORT"]).unwrap_or_else(|e| {
            panic!(
                "A: response {i} of {}: {e}\nlog tail:\n{}",
                tids.len(),
                k.log_tail(30)
            )
        });
        assert_eq!(r.status_code(), Some(200), "{}", r.summary());
        assert_eq!(&r.tid(), tid, "response {i}: {}", r.summary());
    }
    a.expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("A after {} 200(s): {e}", tids.len()));
}

/// A "B" listener whose accepted sockets have a fixed, small SO_RCVBUF
/// (inherited from the listening socket), so the bytes the kernel holds
/// between the relay and B are bounded and known.
struct SmallBufListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl SmallBufListener {
    fn bind(rcvbuf: usize) -> SmallBufListener {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        sock.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        sock.bind(&addr.into()).expect("bind B");
        sock.listen(16).expect("listen B");
        sock.set_nonblocking(true).expect("nonblocking");
        let listener: TcpListener = sock.into();
        let addr = listener.local_addr().expect("local_addr");
        SmallBufListener { listener, addr }
    }

    fn uri(&self, session: &str) -> String {
        format!("msrp://127.0.0.1:{}/{session};tcp", self.addr.port())
    }

    fn poll_accept(&self, timeout: Duration) -> Option<Peer> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((s, _)) => return Some(Peer::from_stream(s).expect("wrap accepted stream")),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("accept on {}: {e}", self.addr),
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn accept(&self, k: &Kamailio) -> Peer {
        self.poll_accept(T).unwrap_or_else(|| {
            panic!(
                "relay did not connect to B {} within {T:?}\nlog tail:\n{}",
                self.addr,
                k.log_tail(30)
            )
        })
    }
}

fn log_has_panic(k: &Kamailio) -> Option<String> {
    k.log()
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("panic"))
        .map(str::to_owned)
}

// ------------------------------------------------------------------ tests

/// 1. One 64 MiB single-chunk SEND (`Byte-Range: 1-N/N`) is relayed as
///    chunks of at most 16384 bytes: one Message-ID, fresh distinct tids,
///    contiguous exact Byte-Ranges, `+` ... `$`; B gets every byte; A gets
///    exactly one 200 (the relay's, with A's tid).
#[test]
fn big_single_chunk_send_is_rechunked() {
    const LEN: u64 = 64 * MIB;
    let t0 = Instant::now();
    let k = start_relay(MAX_CHUNK as i64, &[]);
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let a = Client::connect(&k);
    let t = stream_through(&k, a.peer, &a.uri, &relay, &b, &b_uri, LEN, |_| {});
    let (chunks, mut a_peer, mut bp, tid) = (t.chunks, t.a, t.b, t.tid);
    let total = check_chunks(&chunks, MAX_CHUNK, true, Some(LEN), EndFlag::Complete);
    assert_eq!(total, LEN, "bytes at B");
    assert!(
        chunks.len() as u64 >= LEN / MAX_CHUNK,
        "{} chunks",
        chunks.len()
    );
    assert!(chunks.iter().all(|c| c.tid != tid), "relay reused A's tid");

    expect_200s(&k, &mut a_peer, &[tid]);
    bp.expect_nothing(Duration::from_millis(200))
        .unwrap_or_else(|e| panic!("B after the last chunk: {e}"));
    eprintln!(
        "64 MiB: {} chunks at B, {:.1} s",
        chunks.len(),
        t0.elapsed().as_secs_f64()
    );
}

/// 2a. A message the sender already chunked (3 x 1 MiB, `+ + $`) is
///     re-chunked to <= 16384 with Byte-Ranges contiguous across the whole
///     message; reassembled intact at B; A gets one 200 per chunk it sent.
#[test]
fn prechunked_message_is_rechunked_across_chunks() {
    const PART: u64 = MIB;
    const LEN: u64 = 3 * PART;
    let k = start_relay(MAX_CHUNK as i64, &[]);
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let a = Client::connect(&k);
    let a_uri = a.uri.clone();
    let body = BodyGen::new(3, LEN).to_vec();
    let msg_id = msrp_tools::ids::message_id();
    let reqs: Vec<Request> = (0..3u64)
        .map(|i| {
            let s = (i * PART) as usize;
            let flag = if i == 2 {
                EndFlag::Complete
            } else {
                EndFlag::Continued
            };
            chunk_request(
                &[&relay, &b_uri],
                &[&a_uri],
                &msg_id,
                &body[s..s + PART as usize],
                i * PART + 1,
                LEN,
                flag,
            )
        })
        .collect();
    let tids: Vec<String> = reqs.iter().map(|r| r.tid.clone()).collect();

    let sender = std::thread::spawn(move || {
        let mut peer = a.peer;
        for r in &reqs {
            peer.send_request(r)
                .unwrap_or_else(|e| panic!("A send chunk: {e}"));
        }
        peer
    });
    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)));
    let mut got = Vec::with_capacity(LEN as usize);
    let chunks = receive_message(
        &k,
        &mut bp,
        &msg_id,
        std::slice::from_ref(&b_uri),
        &[relay.clone(), a_uri.clone()],
        |p| got.extend_from_slice(p),
    );
    let mut a_peer = sender.join().expect("sender thread");
    let total = check_chunks(&chunks, MAX_CHUNK, true, Some(LEN), EndFlag::Complete);
    assert_eq!(total, LEN);
    assert!(got == body, "body reassembled at B differs from A's");
    let all_tids: HashSet<&String> = chunks.iter().map(|c| &c.tid).collect();
    assert!(
        tids.iter().all(|t| !all_tids.contains(t)),
        "relay reused A's tid"
    );
    expect_200s(&k, &mut a_peer, &tids);
}

/// 2b. Chunks smaller than the maximum (5 x 3000 bytes, max 16384) pass as
///     5 chunks with their headers unchanged except tid and paths.
#[test]
fn small_chunks_pass_unchanged() {
    const PART: usize = 3000;
    const N: usize = 5;
    let k = start_relay(MAX_CHUNK as i64, &[]);
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let mut a = Client::connect(&k);
    let body = BodyGen::new(5, (PART * N) as u64).to_vec();
    let msg_id = msrp_tools::ids::message_id();
    let reqs: Vec<Request> = (0..N)
        .map(|i| {
            let flag = if i + 1 == N {
                EndFlag::Complete
            } else {
                EndFlag::Continued
            };
            chunk_request(
                &[&relay, &b_uri],
                &[&a.uri],
                &msg_id,
                &body[i * PART..(i + 1) * PART],
                (i * PART + 1) as u64,
                (N * PART) as u64,
                flag,
            )
        })
        .collect();
    for r in &reqs {
        a.peer.send_request(r).expect("A send");
    }
    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)));
    for (i, r) in reqs.iter().enumerate() {
        let f = bp
            .read_frame(T)
            .unwrap_or_else(|e| panic!("B chunk {i}: {e}\nlog tail:\n{}", k.log_tail(30)));
        assert_eq!(f.method().as_deref(), Some("SEND"), "{}", f.summary());
        assert_ne!(f.tid(), r.tid, "relay must use a new tid: {}", f.summary());
        assert_eq!(f.to_path(), vec![b_uri.clone()], "{}", f.summary());
        assert_eq!(
            f.from_path(),
            vec![relay.clone(), a.uri.clone()],
            "{}",
            f.summary()
        );
        assert_eq!(
            f.header_names(),
            [
                "To-Path",
                "From-Path",
                "Message-ID",
                "Byte-Range",
                "Content-Type"
            ],
            "chunk {i}: {}",
            f.summary()
        );
        for name in ["Message-ID", "Byte-Range", "Content-Type"] {
            assert_eq!(
                f.header(name).as_deref(),
                r.header(name),
                "chunk {i} header {name}: {}",
                f.summary()
            );
        }
        assert!(
            f.body == r.body.as_deref().unwrap(),
            "chunk {i} body: {}",
            f.summary()
        );
        assert_eq!(f.flag, r.flag, "chunk {i}: {}", f.summary());
        bp.send_response(&f, 200, Some("OK")).expect("B respond");
    }
    bp.expect_nothing(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("B after 5 chunks: {e}"));
    let tids: Vec<String> = reqs.iter().map(|r| r.tid.clone()).collect();
    expect_200s(&k, &mut a.peer, &tids);
}

/// 3. Range-end unknown (`Byte-Range: 1-*/*`, 100000 bytes, `$`): the relay's
///    chunks say `start-*/*`, bodies <= 16384, starts contiguous, `$` last.
#[test]
fn unknown_range_end_stays_unknown() {
    unknown_range_end_case(100_000);
}

/// 3b. Same with a body of exactly 2 x 16384 bytes: the relay cannot close
///     the second outgoing chunk before A's end-line tells it the flag, so
///     the message must still end with `$` (not `+` and nothing after).
#[test]
fn unknown_range_end_at_chunk_multiple_ends_with_dollar() {
    unknown_range_end_case(2 * MAX_CHUNK);
}

fn unknown_range_end_case(len: u64) {
    let k = start_relay(MAX_CHUNK as i64, &[]);
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let mut a = Client::connect(&k);
    let body = BodyGen::new(33, len).to_vec();
    let mut req = Request::send(&[&relay, &b_uri], &[&a.uri], &body);
    req.headers[1].1 = "1-*/*".into();
    assert_eq!(req.headers[1].0, "Byte-Range");
    let msg_id = req.header("Message-ID").unwrap().to_owned();
    a.peer.send_request(&req).expect("A send");

    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)));
    let mut got = Vec::new();
    let chunks = receive_message(
        &k,
        &mut bp,
        &msg_id,
        std::slice::from_ref(&b_uri),
        &[relay.clone(), a.uri.clone()],
        |p| got.extend_from_slice(p),
    );
    let total = check_chunks(&chunks, MAX_CHUNK, false, None, EndFlag::Complete);
    assert_eq!(total, len);
    assert!(
        chunks.len() as u64 >= len.div_ceil(MAX_CHUNK),
        "{} chunks for {len} bytes",
        chunks.len()
    );
    for c in &chunks {
        assert_eq!(
            c.range_raw,
            format!("{}-*/*", c.range.start),
            "{}",
            c.summary
        );
    }
    assert!(got == body, "body at B differs");
    expect_200s(&k, &mut a.peer, std::slice::from_ref(&req.tid));
}

/// State of one big transfer as B sees it in the fairness test.
struct Transfer {
    msg_id: String,
    hasher: Sha256,
    chunks: Vec<Chunk>,
    done: bool,
}

/// 4. Two 16 MiB transfers from two senders to the same B (one relay→B
///    connection) plus ~300-byte chats from a third client every 50 ms:
///    everything arrives intact, the transfers interleave at chunk
///    boundaries, and no chat waits behind a transfer.
///
///    Chat latency criterion, in bytes rather than seconds so it does not
///    depend on machine speed or load: when A3 sends chat i it notes S_i,
///    the number of transfer bytes B had received; when chat i reaches B,
///    B notes R_i. R_i - S_i is the transfer data delivered ahead of the
///    chat. With a fair relay that is bounded by what sits between relay and
///    B: the relay's queue towards B (high watermark 512 KiB), one chunk,
///    and the kernel buffers (the relay's SO_SNDBUF and B's SO_RCVBUF are
///    pinned to 64 KiB here, each doubled by Linux) — about 1 MiB. A relay
///    that let a chat wait for the end of the current transfer gives chats
///    sent during the first half of the transfers a lag of many MiB. The
///    limit is 4 MiB, and at least 3 chats must have been sent while B had
///    received under 8 MiB (so that the criterion is actually exercised).
///    B reads at most 8 MiB/s, so the transfers take >= 4 s in any build and
///    the relay's queue towards B is full most of the time.
#[test]
fn concurrent_transfers_share_the_connection_fairly() {
    const LEN: u64 = 16 * MIB;
    const CHAT_LEN: usize = 300;
    const LAG_LIMIT: u64 = 4 * MIB;
    const EARLY: u64 = 8 * MIB;
    const B_RATE: f64 = 8.0 * MIB as f64;
    let t0 = Instant::now();
    let k = start_relay(MAX_CHUNK as i64, &[("socket_sndbuf", 65536)]);
    let b = SmallBufListener::bind(65536);
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");

    let b_bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Chats first, so A3's connection is known to the relay before the
    // transfers start.
    let a3 = Client::connect(&k);
    let mut chat_thread = Some({
        let (relay, b_uri, b_bytes, stop) =
            (relay.clone(), b_uri.clone(), b_bytes.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut a3 = a3;
            let mut sent = 0usize;
            while !stop.load(Ordering::SeqCst) && sent < 2000 {
                let s = b_bytes.load(Ordering::SeqCst);
                let us = t0.elapsed().as_micros();
                let mut body = format!("chat {sent} S={s} t_us={us} ").into_bytes();
                body.resize(CHAT_LEN, b'x');
                let req = Request::send(&[&relay, &b_uri], &[&a3.uri], &body);
                a3.peer
                    .send_request(&req)
                    .unwrap_or_else(|e| panic!("A3 send chat {sent}: {e}"));
                sent += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (a3, sent)
        })
    });

    let mut transfers: Vec<Transfer> = Vec::new();
    let mut senders = Vec::new();
    for seed in [41u64, 42] {
        let a = Client::connect(&k);
        let req = Request::send_streaming(&[&relay, &b_uri], &[&a.uri], LEN);
        transfers.push(Transfer {
            msg_id: req.header("Message-ID").unwrap().to_owned(),
            hasher: Sha256::new(),
            chunks: Vec::new(),
            done: false,
        });
        senders.push(std::thread::spawn(move || {
            let mut peer = a.peer;
            let d = peer
                .send_request_streaming(&req, BodyGen::new(seed, LEN))
                .unwrap_or_else(|e| panic!("A{} streaming send: {e}", seed - 40));
            (peer, req.tid, d)
        }));
    }

    let mut bp = b.accept(&k);
    let b_start = Instant::now();
    // Which transfer each chunk at B belonged to, in arrival order.
    let mut order: Vec<usize> = Vec::new();
    // (index, S_i, R_i, latency) per chat received.
    let mut chats: Vec<(usize, u64, u64, Duration)> = Vec::new();
    let mut chat_result: Option<(Client, usize)> = None;
    loop {
        if chat_result.is_none() && transfers.iter().all(|t| t.done) {
            stop.store(true, Ordering::SeqCst);
            chat_result = Some(chat_thread.take().unwrap().join().expect("chat thread"));
        }
        if let Some((_, n)) = &chat_result {
            if chats.len() == *n {
                break;
            }
        }
        let f = bp.read_frame(FRAME_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "B read ({} transfer bytes, {} chats so far): {e}\nlog tail:\n{}",
                b_bytes.load(Ordering::SeqCst),
                chats.len(),
                k.log_tail(30)
            )
        });
        assert_eq!(f.method().as_deref(), Some("SEND"), "{}", f.summary());
        assert_eq!(f.to_path(), vec![b_uri.clone()], "{}", f.summary());
        let id = f.header("Message-ID").unwrap_or_default();
        if let Some(i) = transfers.iter().position(|t| t.msg_id == id) {
            let t = &mut transfers[i];
            assert!(!t.done, "chunk after `$`: {}", f.summary());
            t.hasher.update(&f.body);
            t.chunks.push(Chunk::of(&f));
            t.done = f.flag == EndFlag::Complete;
            order.push(i);
            let had = b_bytes.fetch_add(f.body_len, Ordering::SeqCst) + f.body_len;
            // B reads at most B_RATE, so that the transfers last long
            // enough for many chats even in a release build, and the relay's
            // queue towards B fills up (chats must get past a full queue).
            let due = b_start + Duration::from_secs_f64(had as f64 / B_RATE);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        } else {
            let r = b_bytes.load(Ordering::SeqCst);
            let text = String::from_utf8_lossy(&f.body).into_owned();
            assert_eq!(f.body.len(), CHAT_LEN, "chat body: {}", f.summary());
            assert_eq!(f.flag, EndFlag::Complete, "chat: {}", f.summary());
            let mut it = text.split(' ');
            let (Some("chat"), Some(i), Some(s), Some(us)) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                panic!("unexpected SEND at B: {}", f.summary());
            };
            let i: usize = i.parse().unwrap();
            let s: u64 = s.strip_prefix("S=").unwrap().parse().unwrap();
            let us: u64 = us.strip_prefix("t_us=").unwrap().parse().unwrap();
            let lat = t0.elapsed().saturating_sub(Duration::from_micros(us));
            assert_eq!(i, chats.len(), "chats out of order: {}", f.summary());
            chats.push((i, s, r, lat));
        }
        bp.send_response(&f, 200, Some("OK")).expect("B respond");
    }
    let transfer_end = t0.elapsed();

    for (n, (h, t)) in senders.into_iter().zip(&mut transfers).enumerate() {
        let (mut peer, tid, sent) = h.join().expect("sender thread");
        let total = check_chunks(&t.chunks, MAX_CHUNK, true, Some(LEN), EndFlag::Complete);
        assert_eq!(total, LEN, "transfer {n}: bytes at B");
        let got: [u8; 32] = std::mem::take(&mut t.hasher).finalize().into();
        assert_eq!(hex(&got), hex(&sent), "transfer {n}: SHA-256 at B");
        expect_200s(&k, &mut peer, &[tid]);
    }
    let (mut a3, n_chats) = chat_result.unwrap();
    // One 200 per chat from the relay, nothing else.
    for i in 0..n_chats {
        let r = a3
            .peer
            .read_response(T, &["REPORT"])
            .unwrap_or_else(|e| panic!("A3 response {i}/{n_chats}: {e}"));
        assert_eq!(r.status_code(), Some(200), "{}", r.summary());
    }
    a3.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("A3: {e}"));
    assert!(
        b.poll_accept(Duration::from_millis(200)).is_none(),
        "relay opened a second connection to B"
    );

    // Interleaving at chunk boundaries.
    let last = |i: usize| order.iter().rposition(|&x| x == i).unwrap();
    let first = |i: usize| order.iter().position(|&x| x == i).unwrap();
    let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
    let max_lag = chats.iter().map(|c| c.2 - c.1).max().unwrap_or(0);
    let max_lat = chats.iter().map(|c| c.3).max().unwrap_or_default();
    let early = chats.iter().filter(|c| c.1 < EARLY).count();
    eprintln!(
        "fairness: {} + {} chunks, {switches} switches between transfers; {} chats ({early} \
         early), max lag {} KiB, max latency {max_lat:?}; transfers done at {transfer_end:?}",
        transfers[0].chunks.len(),
        transfers[1].chunks.len(),
        chats.len(),
        max_lag / KIB
    );
    assert!(
        first(1) < last(0) && first(0) < last(1),
        "transfers did not interleave: transfer 0 chunks {}..{}, transfer 1 chunks {}..{} \
         (of {})",
        first(0),
        last(0),
        first(1),
        last(1),
        order.len()
    );
    assert!(
        switches >= 10,
        "only {switches} switches between the two transfers"
    );
    assert!(
        early >= 3,
        "only {early} chats were sent before B had 8 MiB: the test did not exercise fairness"
    );
    for &(i, s, r, lat) in &chats {
        assert!(
            r - s <= LAG_LIMIT,
            "chat {i} waited behind {} KiB of transfer data (sent when B had {s} bytes, \
             received when B had {r}; {lat:?}); limit {} KiB",
            (r - s) / KIB,
            LAG_LIMIT / KIB
        );
    }
}

/// 5. A receiver reading at ~4 MiB/s: the relay (64 KiB socket buffers,
///    default watermarks) throttles the 32 MiB sender instead of buffering,
///    and the worker's VmHWM grows by less than 8 MiB.
#[test]
fn slow_receiver_throttles_sender() {
    const LEN: u64 = 32 * MIB;
    const RATE: f64 = 4.0 * MIB as f64;
    /// Most A may be ahead of B: A's own SO_SNDBUF (autotuned, <= 4 MiB on
    /// Linux's defaults) + relay buffers (~1 MiB) + margin.
    const MAX_AHEAD: u64 = 8 * MIB;
    const MAX_HWM_GROWTH_KIB: u64 = 8 * 1024;
    let k = start_relay(
        MAX_CHUNK as i64,
        &[("socket_rcvbuf", 65536), ("socket_sndbuf", 65536)],
    );
    let hwm_before = worker_hwm(&k);
    let b = SmallBufListener::bind(65536);
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let a = Client::connect(&k);
    let a_uri = a.uri.clone();
    let req = Request::send_streaming(&[&relay, &b_uri], &[&a_uri], LEN);
    let tid = req.tid.clone();
    let msg_id = req.header("Message-ID").unwrap().to_owned();
    let consumed = Arc::new(AtomicU64::new(0));

    let sender = {
        let consumed = consumed.clone();
        std::thread::spawn(move || {
            let mut peer = a.peer;
            let t = Instant::now();
            let d = peer.send_request_streaming(&req, BodyGen::new(5, LEN));
            (peer, d, t.elapsed(), consumed.load(Ordering::SeqCst))
        })
    };
    let mut bp = b.accept(&k);
    let start = Instant::now();
    let mut hasher = Sha256::new();
    let chunks = receive_message(
        &k,
        &mut bp,
        &msg_id,
        std::slice::from_ref(&b_uri),
        &[relay.clone(), a_uri.clone()],
        |p| {
            hasher.update(p);
            let c = consumed.fetch_add(p.len() as u64, Ordering::SeqCst) + p.len() as u64;
            let due = start + Duration::from_secs_f64(c as f64 / RATE);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        },
    );
    let b_time = start.elapsed();
    let (mut a_peer, sent, a_time, b_had) = sender.join().expect("sender thread");
    let sent = sent.unwrap_or_else(|e| panic!("A streaming send: {e}"));
    let total = check_chunks(&chunks, MAX_CHUNK, true, Some(LEN), EndFlag::Complete);
    assert_eq!(total, LEN);
    let got: [u8; 32] = hasher.finalize().into();
    assert_eq!(hex(&got), hex(&sent), "SHA-256 at B");
    expect_200s(&k, &mut a_peer, &[tid]);

    let hwm_after = worker_hwm(&k);
    eprintln!(
        "slow receiver: A done after {a_time:?} when B had consumed {} KiB; B done after \
         {b_time:?}; VmHWM {hwm_before:?} -> {hwm_after:?}",
        b_had / KIB
    );
    assert!(
        LEN - b_had <= MAX_AHEAD,
        "A finished sending when B had consumed only {} KiB of {} KiB: {} KiB were buffered \
         between them (limit {} KiB)",
        b_had / KIB,
        LEN / KIB,
        (LEN - b_had) / KIB,
        MAX_AHEAD / KIB
    );
    assert!(
        a_time > Duration::from_secs(4),
        "A sent 32 MiB in {a_time:?} to a 4 MiB/s receiver: not throttled"
    );
    assert_hwm_growth_below(&hwm_before, &hwm_after, MAX_HWM_GROWTH_KIB);
}

/// How the sender of the aborted message stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    /// Closes its connection mid-chunk.
    Close,
    /// Ends its chunk early with a `#` end-line and keeps the connection.
    HashEndLine,
}

/// Sends the head of a `len`-byte single-chunk SEND and its first `cut`
/// body bytes (BodyGen `seed`), then aborts `how`. Returns the client
/// unless it closed.
#[allow(clippy::too_many_arguments)]
fn send_and_abort(
    mut a: Client,
    to: &[&str],
    tid: &str,
    msg_id: &str,
    len: u64,
    cut: u64,
    seed: u64,
    how: Abort,
) -> Option<Client> {
    let b = |s: &str| Bytes::from(s.to_owned().into_bytes());
    let to: Vec<Bytes> = to.iter().map(|s| b(s)).collect();
    let from = vec![b(&a.uri)];
    let other = vec![
        Header::new(b"Message-ID".to_vec(), msg_id.as_bytes().to_vec()),
        Header::new(
            b"Byte-Range".to_vec(),
            format!("1-{len}/{len}").into_bytes(),
        ),
        Header::new(
            b"Content-Type".to_vec(),
            b"application/octet-stream".to_vec(),
        ),
    ];
    let head = build::request_head(tid.as_bytes(), b"SEND", &to, &from, &other, true);
    a.peer.send_raw(&head).expect("A send head");
    BodyGen::new(seed, cut)
        .for_each_piece(|p| a.peer.send_raw(p))
        .unwrap_or_else(|e| panic!("A send body: {e}"));
    match how {
        Abort::Close => {
            drop(a);
            None
        }
        Abort::HashEndLine => {
            a.peer
                .send_raw(&build::body_end(tid.as_bytes(), EndFlag::Aborted))
                .expect("A send `#` end-line");
            Some(a)
        }
    }
}

/// After an aborted transfer: a small SEND from `a` (a new client when
/// `None`) still reaches B, on the relay's existing connection or a new
/// one, and `a` gets its 200. `aborted_tid`: a response to the aborted chunk
/// A may get first (one at most).
fn relay_after_abort(
    k: &Kamailio,
    b: &Endpoint,
    b_uri: &str,
    bp: Peer,
    a: Option<Client>,
    aborted_tid: &str,
) {
    let relay = k.relay_uri("relay");
    let mut a2 = a.unwrap_or_else(|| Client::connect(k));
    let req = Request::send(&[&relay, b_uri], &[&a2.uri], b"after the abort");
    a2.peer.send_request(&req).expect("A2 send");
    let mut bp = bp;
    let f = match bp.read_frame(T) {
        Ok(f) => f,
        Err(PeerError::Closed(_)) => {
            bp = b.accept(T).unwrap_or_else(|e| {
                panic!(
                    "relay neither reused nor reopened B: {e}\n{}",
                    k.log_tail(30)
                )
            });
            bp.read_frame(T)
                .unwrap_or_else(|e| panic!("B read: {e}\n{}", k.log_tail(30)))
        }
        Err(e) => panic!("B read after the abort: {e}\nlog tail:\n{}", k.log_tail(30)),
    };
    assert_eq!(f.method().as_deref(), Some("SEND"), "{}", f.summary());
    assert_eq!(
        f.header("Message-ID").as_deref(),
        req.header("Message-ID"),
        "{}",
        f.summary()
    );
    assert_eq!(f.body, b"after the abort");
    assert_eq!(f.flag, EndFlag::Complete);
    assert_eq!(
        f.from_path(),
        vec![relay.clone(), a2.uri.clone()],
        "{}",
        f.summary()
    );
    bp.send_response(&f, 200, Some("OK")).expect("B respond");
    let mut r = a2
        .peer
        .read_response(T, &["REPORT"])
        .unwrap_or_else(|e| panic!("A response: {e}\nlog tail:\n{}", k.log_tail(30)));
    if r.tid() == aborted_tid {
        eprintln!("A got a response to its aborted chunk: {}", r.summary());
        r = a2
            .peer
            .read_response(T, &["REPORT"])
            .unwrap_or_else(|e| panic!("A response: {e}\nlog tail:\n{}", k.log_tail(30)));
    }
    assert_eq!(r.status_code(), Some(200), "{}", r.summary());
    assert_eq!(r.tid(), req.tid, "{}", r.summary());
    a2.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("A after its 200: {e}"));
}

fn abort_case(cut: u64, how: Abort) {
    const LEN: u64 = 10 * MIB;
    /// The `#` must follow the last byte promptly.
    const ABORT_TIMEOUT: Duration = Duration::from_secs(10);
    let mut k = start_relay(MAX_CHUNK as i64, &[]);
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let a = Client::connect(&k);
    let a_uri = a.uri.clone();
    let tid = msrp_tools::ids::transaction_id();
    let msg_id = msrp_tools::ids::message_id();
    let sender = {
        let (to1, to2, tid, msg_id) = (relay.clone(), b_uri.clone(), tid.clone(), msg_id.clone());
        std::thread::spawn(move || {
            send_and_abort(a, &[&to1, &to2], &tid, &msg_id, LEN, cut, 6, how)
        })
    };
    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)));
    let mut hasher = Sha256::new();
    let (chunks, err) = try_receive_message(
        &mut bp,
        &msg_id,
        std::slice::from_ref(&b_uri),
        &[relay.clone(), a_uri.clone()],
        ABORT_TIMEOUT,
        |p| hasher.update(p),
    );
    let a = sender.join().expect("sender thread");
    let received: u64 = chunks.iter().map(|c| c.len).sum();
    if let Some(e) = err {
        let last = chunks.last().map(|c| c.summary.clone()).unwrap_or_default();
        let warn = k
            .log()
            .lines()
            .filter(|l| l.contains("WARNING") || l.contains("ERROR"))
            .filter(|l| l.contains("msrp_relay"))
            .collect::<Vec<_>>()
            .join("\n");
        panic!(
            "the relay never signalled the abort ({how:?} after {cut} bytes) to B: B got \
             {received} bytes in {} chunks, the last ending with `{}`, then: {e}\nlast chunk: \
             {last}\nrelay warnings/errors:\n{warn}",
            chunks.len(),
            chunks
                .last()
                .map(|c| char::from(c.flag.as_byte()))
                .unwrap_or('?'),
        );
    }
    let last = chunks.last().unwrap();
    assert_eq!(
        last.flag,
        EndFlag::Aborted,
        "the chunk in progress must end with `#`: {}",
        last.summary
    );
    let total = check_chunks(&chunks, MAX_CHUNK, true, Some(LEN), EndFlag::Aborted);
    assert_eq!(
        total,
        cut,
        "B must get every byte A sent before aborting ({} chunks, last: {})",
        chunks.len(),
        last.summary
    );
    let got: [u8; 32] = hasher.finalize().into();
    assert_eq!(
        hex(&got),
        hex(&BodyGen::new(6, cut).sha256()),
        "bytes at B are not A's first {cut} bytes"
    );
    std::thread::sleep(Duration::from_millis(200));
    if let Some(l) = log_has_panic(&k) {
        panic!(
            "relay log shows a panic: {l}\nlog tail:\n{}",
            k.log_tail(30)
        );
    }
    assert!(k.is_running(), "kamailio died");
    relay_after_abort(&k, &b, &b_uri, bp, a, &tid);
    if let Some(l) = log_has_panic(&k) {
        panic!(
            "relay log shows a panic: {l}\nlog tail:\n{}",
            k.log_tail(30)
        );
    }
}

/// 6a. A closes its socket after ~3 MiB of a 10 MiB single-chunk SEND (in
///     the middle of an outgoing chunk): B's chunk in progress ends with
///     `#`; the relay keeps working for a new client.
#[test]
fn sender_close_mid_chunk_aborts_with_hash() {
    abort_case(3 * MIB + 1000, Abort::Close);
}

/// 6b. Same, but A closes exactly at an outgoing chunk boundary (3 MiB is a
///     multiple of 16384): A's chunk is cut short, so B must see a `#` (e.g.
///     an empty `#` chunk), not a silent stop after a `+`.
#[test]
fn sender_close_at_chunk_boundary_aborts_with_hash() {
    abort_case(3 * MIB, Abort::Close);
}

/// 6c. A ends its 10 MiB chunk early with a `#` end-line exactly at an
///     outgoing chunk boundary (3 MiB) and keeps its connection: B sees
///     `#`, and A's next SEND on the same connection is relayed.
#[test]
fn sender_hash_end_line_at_chunk_boundary_is_relayed() {
    abort_case(3 * MIB, Abort::HashEndLine);
}

/// 7. Failure-Report: `no` and `partial` get no 200 from the relay; `yes`
///    and absent get exactly one. B receives all four with the header as
///    sent.
#[test]
fn failure_report_controls_relay_200() {
    let k = start_relay(MAX_CHUNK as i64, &[]);
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let mut a = Client::connect(&k);
    let mut bp: Option<Peer> = None;
    for fr in [Some("no"), Some("partial"), Some("yes"), None] {
        let body = format!("Failure-Report {fr:?}");
        let mut req = Request::send(&[&relay, &b_uri], &[&a.uri], body.as_bytes());
        if let Some(v) = fr {
            req = req.with_header("Failure-Report", v);
        }
        a.peer.send_request(&req).expect("A send");
        let mut p = match bp.take() {
            Some(p) => p,
            None => b
                .accept(T)
                .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30))),
        };
        let f = p
            .read_frame(T)
            .unwrap_or_else(|e| panic!("B read ({fr:?}): {e}\nlog tail:\n{}", k.log_tail(30)));
        assert_eq!(f.body, body.as_bytes(), "{}", f.summary());
        assert_eq!(f.header("Failure-Report").as_deref(), fr, "{}", f.summary());
        // B answers as RFC 4975 §7.1.1 asks: `no` never, `partial` only
        // for errors; the relay must not pass B's answers to A anyway.
        if !matches!(fr, Some("no") | Some("partial")) {
            p.send_response(&f, 200, Some("OK")).expect("B respond");
        }
        match fr {
            Some("no") | Some("partial") => a
                .peer
                .expect_nothing(QUIET)
                .unwrap_or_else(|e| panic!("A got something for Failure-Report {fr:?}: {e}")),
            _ => expect_200s(&k, &mut a.peer, std::slice::from_ref(&req.tid)),
        }
        bp = Some(p);
    }
}
