//! Requests that cross MSRP workers: the session or connection another
//! worker holds is found through the shared-memory lists at any scale.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(10);

/// AUTHs `n` times over `c`'s connection (pipelined, in batches); the
/// Use-Paths the relay granted, in order.
fn auth_many(k: &Kamailio, c: &mut Client, n: usize) -> Vec<String> {
    let mut paths = Vec::with_capacity(n);
    while paths.len() < n {
        let batch = (n - paths.len()).min(500);
        for _ in 0..batch {
            let req = Request {
                method: "AUTH".into(),
                body: None,
                ..Request::send(&[&k.relay_uri("relay")], &[&c.uri], b"")
            };
            c.peer.send_request(&req).expect("AUTH");
        }
        for _ in 0..batch {
            let resp = c.peer.read_response(T, &[]).unwrap_or_else(|e| {
                panic!("AUTH {} response: {e}\n{}", paths.len(), k.log_tail(20))
            });
            assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
            paths.push(resp.header("Use-Path").expect("Use-Path").trim().to_owned());
        }
    }
    paths
}

/// Issue 19: the shm connection-map mirror used to hold 4096 sessions, so
/// a session saved after those was not found by the other worker. With
/// two workers, B (on one) AUTHs 5001 sessions and A (on the other) sends
/// to the last one's Use-Path: it reaches B and B's 200 reaches A.
#[test]
fn session_5001_is_found_by_another_worker() {
    let route = r#"if ($msrp(method) == "AUTH") { msrp_cmap_save(); exit; }
    msrp_relay();"#;
    let k = Kamailio::start(RelayOpts::default().route(route).modparam_int("workers", 2));
    let (mut a, mut b) = clients_on_two_workers(&k);
    assert_ne!(worker_of(&k, &a), worker_of(&k, &b));
    // B's URI names an address nobody listens on, so only its session
    // (not its connection's address) leads to it
    b.uri = format!("msrp://127.0.0.1:9/{};tcp", msrp_tools::ids::session_id());
    let paths = auth_many(&k, &mut b, 5001);
    for n in [5000, 0] {
        reaches(&k, &mut a, &mut b, &paths[n], n);
    }
}

/// A sends to `use_path` (session `n` of B, held by another worker): the
/// SEND reaches B and B's 200 reaches A.
fn reaches(k: &Kamailio, a: &mut Client, b: &mut Client, use_path: &str, n: usize) {
    let body = format!("to session {n}");
    let req = Request::send(&[use_path, &b.uri], &[&a.uri], body.as_bytes());
    a.peer.send_request(&req).expect("send SEND");
    let got = b.peer.read_frame(T).unwrap_or_else(|e| {
        panic!(
            "SEND to session {n} did not reach B: {e}\n{}",
            k.log_tail(30)
        )
    });
    assert_eq!(got.body, body.as_bytes(), "{}", got.summary());
    assert_eq!(got.to_path(), vec![b.uri.clone()], "{}", got.summary());
    b.peer.send_hop_response(&got, 200, None).expect("200");
    let resp = a.peer.read_response(T, &[]).expect("A's 200");
    assert_eq!((resp.status_code(), resp.tid()), (Some(200), req.tid));
}

/// Kamailio's shared memory in use (`core.shmmem` used), bytes.
fn shm_used(k: &Kamailio) -> i64 {
    let out = k.kamcmd(&["core.shmmem"]);
    rpc_number(&out, "used").unwrap_or_else(|| panic!("no used in core.shmmem:\n{out}"))
}

fn rpc_number(out: &str, name: &str) -> Option<i64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
}

/// `read()` once its growth from `base` is under a third of `peak - base`,
/// or after 10 s (the closes are read, then memory given back).
fn fallen_to_a_third(read: impl Fn() -> i64, base: i64, peak: i64) -> i64 {
    let mut now = peak;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        now = read();
        if now - base < (peak - base) / 3 {
            break;
        }
    }
    now
}

/// Shared-memory pages resident in the MSRP workers (`RssShmem`), KiB.
fn workers_rss_shmem(k: &Kamailio) -> i64 {
    k.worker_pids()
        .into_iter()
        .map(|p| {
            let st = std::fs::read_to_string(format!("/proc/{p}/status")).expect("status");
            st.lines()
                .find_map(|l| l.strip_prefix("RssShmem:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
                .expect("RssShmem")
        })
        .sum()
}

/// Issue 19 item 3: once the sessions close, the listing's record segments
/// go back to Kamailio's shm (all but one, kept so a list at a segment
/// boundary does not allocate and free on every session) and their pages
/// to the kernel (out of the workers' RSS); sessions saved afterwards are
/// found by the other worker as before.
#[test]
fn closed_sessions_give_the_listing_memory_back() {
    let route = r#"if ($msrp(method) == "AUTH") { msrp_cmap_save(); exit; }
    msrp_relay();"#;
    let k = Kamailio::start(RelayOpts::default().route(route).modparam_int("workers", 2));
    let (used0, rss0) = (shm_used(&k), workers_rss_shmem(&k));
    let (_, mut b) = clients_on_two_workers(&k);
    // four segments of 4096 records
    auth_many(&k, &mut b, 3 * 4096 + 1);
    let (used1, rss1) = (shm_used(&k), workers_rss_shmem(&k));
    assert!(used1 - used0 > 3 * 4096 * 100, "{used0} -> {used1}");
    drop(b);
    let used2 = fallen_to_a_third(|| shm_used(&k), used0, used1);
    let rss2 = workers_rss_shmem(&k);
    assert!(
        used2 - used0 < (used1 - used0) / 3,
        "shm used {used0} -> {used1} with the sessions -> {used2} after\n{}",
        k.log_tail(20)
    );
    assert!(
        rss2 - rss0 < (rss1 - rss0) / 3,
        "workers' RssShmem {rss0} -> {rss1} -> {rss2} KiB"
    );
    let (mut a, mut b) = clients_on_two_workers(&k);
    b.uri = format!("msrp://127.0.0.1:9/{};tcp", msrp_tools::ids::session_id());
    let paths = auth_many(&k, &mut b, 5001);
    for n in [5000, 0] {
        reaches(&k, &mut a, &mut b, &paths[n], n);
    }
}

/// After a close wave (1,024 or more connections of one worker) it also drops
/// its own mappings of the listings' pages: the bucket heads and the
/// segment kept for reuse stay in shm, but stop counting in the RSS of
/// every worker that touched them while the sessions were there.
#[test]
fn a_close_wave_drops_the_listing_pages_from_the_workers() {
    let route = r#"if ($msrp(method) == "AUTH") { msrp_cmap_save(); exit; }
    msrp_relay();"#;
    let k = Kamailio::start(RelayOpts::default().route(route).modparam_int("workers", 1));
    let rss0 = workers_rss_shmem(&k);
    let mut clients: Vec<Client> = (0..1100).map(|_| Client::connect(&k)).collect();
    for c in &mut clients {
        auth_many(&k, c, 1);
    }
    let rss1 = workers_rss_shmem(&k);
    assert!(rss1 - rss0 > 256, "RssShmem {rss0} -> {rss1} KiB");
    drop(clients);
    let rss2 = fallen_to_a_third(|| workers_rss_shmem(&k), rss0, rss1);
    assert!(
        rss2 - rss0 < (rss1 - rss0) / 3,
        "workers' RssShmem {rss0} -> {rss1} -> {rss2} KiB\n{}",
        k.log_tail(20)
    );
}

/// Two workers, A and B on different ones, small buffers and watermarks;
/// B's URI names an address nobody listens on, so A's requests reach B
/// only through its session, over the link between the workers. B's
/// Use-Path is returned.
fn crossing_pair(extra: &[(&str, i64)]) -> (Kamailio, Client, Client, String) {
    let route = r#"if ($msrp(method) == "AUTH") { msrp_cmap_save(); exit; }
    msrp_relay();"#;
    let mut opts = RelayOpts::default()
        .route(route)
        .modparam_int("workers", 2)
        .modparam_int("msrp_max_chunk_size", 16384)
        .modparam_int("socket_sndbuf", 16384)
        .modparam_int("queue_high_watermark", 65536)
        .modparam_int("queue_low_watermark", 16384);
    for (name, v) in extra {
        opts = opts.modparam_int(name, *v);
    }
    let k = Kamailio::start(opts);
    let (a, mut b) = clients_on_two_workers(&k);
    assert_ne!(worker_of(&k, &a), worker_of(&k, &b));
    b.uri = format!("msrp://127.0.0.1:9/{};tcp", msrp_tools::ids::session_id());
    let path = auth_many(&k, &mut b, 1).remove(0);
    (k, a, b, path)
}

/// The bodies of the frames B reads until it has `len` bytes, each frame
/// shown to `each` first.
fn receive(
    k: &Kamailio,
    b: &mut Client,
    len: usize,
    mut each: impl FnMut(&ReceivedFrame),
) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    while got.len() < len {
        let f = b.peer.read_frame(T).unwrap_or_else(|e| {
            panic!(
                "B stopped receiving after {} bytes: {e}\n{}",
                got.len(),
                k.log_tail(30)
            )
        });
        each(&f);
        got.extend_from_slice(&f.body);
    }
    got
}

/// Back-pressure across workers: B does not read for a second, then reads
/// slowly, while A sends 8 MiB in one chunk. B's socket, its worker's
/// queue, the ring between the workers (512 KiB) and A's worker's queue
/// fill, so A's worker waits for the other to make room in the ring.
/// `Failure-Report: no`: no 200 comes back over the other ring to wake
/// it, only the ring's "writer waits for space" wake does. Every byte
/// reaches B in order, re-chunked.
#[test]
fn crossing_flow_under_back_pressure_delivers_every_byte_in_order() {
    const LEN: usize = 8 * 1024 * 1024;
    let (k, a, mut b, path) = crossing_pair(&[]);
    let body: Vec<u8> = (0..LEN as u32).map(|i| (i % 251) as u8).collect();
    let req = Request::send(&[&path, &b.uri], &[&a.uri], &body).with_header("Failure-Report", "no");
    let wire = req.to_wire();
    let mut writer = a.peer.try_clone_stream().expect("clone A");
    let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &wire));
    std::thread::sleep(Duration::from_secs(1));
    let mut frames = 0;
    let got = receive(&k, &mut b, LEN, |f| {
        assert!(f.body.len() <= 16384, "{}", f.summary());
        frames += 1;
        if frames % 64 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    sender.join().expect("sender").expect("A sends");
    assert!(got == body, "the message changed on its way across workers");
    drop(a);
}

/// B's connection (held by the other worker) closes in the middle of A's
/// 4 MiB SEND: the worker holding it tells the other over the link why the
/// chunk failed, and A gets its REPORT `408 Next Hop Connection Lost` for
/// the message, as when B's connection is with A's own worker.
#[test]
fn owner_connection_closing_mid_transfer_reports_to_the_sender() {
    const LEN: usize = 4 * 1024 * 1024;
    let (k, mut a, mut b, path) = crossing_pair(&[]);
    let body = vec![b'x'; LEN];
    let req =
        Request::send(&[&path, &b.uri], &[&a.uri], &body).with_header("Failure-Report", "yes");
    let msg_id = req.header("Message-ID").expect("Message-ID").to_owned();
    let wire = req.to_wire();
    let mut writer = a.peer.try_clone_stream().expect("clone A");
    // (A's writes may fail once the relay gives up on the message)
    std::thread::spawn(move || std::io::Write::write_all(&mut writer, &wire));
    let mut seen = 0;
    while seen < 300 * 1024 {
        let f = b
            .peer
            .read_frame(T)
            .unwrap_or_else(|e| panic!("B read after {seen} bytes: {e}\n{}", k.log_tail(30)));
        seen += f.body.len();
        b.peer.send_hop_response(&f, 200, None).expect("200");
    }
    std::thread::sleep(Duration::from_millis(100));
    drop(b);
    let mut report = None;
    for _ in 0..3 {
        let f = a
            .peer
            .read_frame(T)
            .unwrap_or_else(|e| panic!("A got no REPORT: {e}\n{}", k.log_tail(30)));
        if f.method().as_deref() == Some("REPORT") {
            report = Some(f);
            break;
        }
    }
    let r = report.expect("a REPORT among A's first three frames");
    assert_eq!(r.header("Message-ID").as_deref(), Some(msg_id.as_str()));
    let status = r.header("Status").unwrap_or_default();
    assert!(
        status.starts_with("000 408 Next Hop Connection Lost"),
        "{}\n{}",
        r.summary(),
        k.log_tail(30)
    );
}

/// "partial" chunks across workers: B sends no 200 for them (RFC 4975
/// §7.1.4), so the worker holding B's connection must not count them
/// against B's request window of 1,024 unanswered requests. 20 MiB
/// re-chunked at 16 KiB is 1,280 chunks: with them counted, B stopped
/// receiving after 16 MiB until the transaction timeout (60 s here). An
/// error response to one of them still reaches A as a REPORT.
#[test]
fn partial_chunks_across_workers_do_not_fill_the_window() {
    const LEN: usize = 20 * 1024 * 1024;
    let (k, mut a, mut b, path) = crossing_pair(&[("transaction_timeout", 60)]);
    let body: Vec<u8> = (0..LEN as u32).map(|i| (i % 251) as u8).collect();
    let req =
        Request::send(&[&path, &b.uri], &[&a.uri], &body).with_header("Failure-Report", "partial");
    let msg_id = req.header("Message-ID").expect("Message-ID").to_owned();
    let wire = req.to_wire();
    let mut writer = a.peer.try_clone_stream().expect("clone A");
    let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &wire));
    let mut last = None;
    let got = receive(&k, &mut b, LEN, |f| {
        assert_eq!(f.header("Failure-Report").as_deref(), Some("partial"));
        last = Some(f.clone());
    });
    sender.join().expect("sender").expect("A sends");
    assert!(got == body, "the message changed on its way across workers");
    let last = last.expect("a chunk");
    b.peer
        .send_hop_response(&last, 413, Some("Too Large"))
        .expect("413");
    let r = a
        .peer
        .read_frame(T)
        .unwrap_or_else(|e| panic!("A got no REPORT: {e}\n{}", k.log_tail(30)));
    assert_eq!(r.method().as_deref(), Some("REPORT"), "{}", r.summary());
    assert_eq!(r.header("Message-ID").as_deref(), Some(msg_id.as_str()));
    let status = r.header("Status").unwrap_or_default();
    assert!(status.starts_with("000 413"), "{}", r.summary());
}

/// A client whose connection worker `w` accepted.
fn client_on(k: &Kamailio, w: Option<u64>) -> Client {
    for _ in 0..60 {
        let c = Client::connect(k);
        let on = (0..100).find_map(|_| {
            let on = worker_of(k, &c);
            if on.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            on
        });
        if on == w {
            return c;
        }
    }
    panic!("60 connections, none on worker {w:?}");
}

/// One slow receiver does not hold back other sessions crossing the same
/// pair of workers: B1 reads nothing while A streams 8 MiB to it, and A2
/// (on A's worker) still reaches B2 (on B1's worker) at once. The worker
/// holding B1 takes in what is under way for it and pauses its chunks at
/// A's worker. Before, it stopped reading the whole link, and B2 got
/// nothing until B1 read. B1 then gets every byte in order.
#[test]
fn a_slow_receiver_does_not_hold_back_other_crossing_sessions() {
    const LEN: usize = 8 * 1024 * 1024;
    let (k, a, mut b1, path1) = crossing_pair(&[]);
    let mut a2 = client_on(&k, worker_of(&k, &a));
    let mut b2 = client_on(&k, worker_of(&k, &b1));
    b2.uri = format!("msrp://127.0.0.1:9/{};tcp", msrp_tools::ids::session_id());
    let path2 = auth_many(&k, &mut b2, 1).remove(0);
    let body: Vec<u8> = (0..LEN as u32).map(|i| (i % 251) as u8).collect();
    let req =
        Request::send(&[&path1, &b1.uri], &[&a.uri], &body).with_header("Failure-Report", "no");
    let wire = req.to_wire();
    let mut writer = a.peer.try_clone_stream().expect("clone A");
    let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &wire));
    std::thread::sleep(Duration::from_secs(1));
    for n in 0..20 {
        let text = format!("message {n} to B2");
        let req = Request::send(&[&path2, &b2.uri], &[&a2.uri], text.as_bytes());
        a2.peer.send_request(&req).expect("A2 SEND");
        let got = b2.peer.read_frame(T).unwrap_or_else(|e| {
            panic!(
                "B2 got no message {n} while B1 does not read: {e}\n{}",
                k.log_tail(30)
            )
        });
        assert_eq!(got.body, text.as_bytes(), "{}", got.summary());
        b2.peer.send_hop_response(&got, 200, None).expect("200");
        let resp = a2.peer.read_response(T, &[]).expect("A2's 200");
        assert_eq!(resp.status_code(), Some(200));
    }
    let got = receive(&k, &mut b1, LEN, |_| {});
    sender.join().expect("sender").expect("A sends");
    assert!(got == body, "the message changed on its way across workers");
}
