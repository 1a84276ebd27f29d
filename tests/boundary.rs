//! Boundaries: a 20 MiB SEND through bounded memory, and the panic guard at
//! the FFI boundary.

mod common;

use std::time::Duration;

use sha2::{Digest, Sha256};

use common::*;

const BIG: u64 = 20 * 1024 * 1024;
const MAX_HWM_GROWTH_KIB: u64 = 8 * 1024;
const BIG_TIMEOUT: Duration = Duration::from_secs(60);

/// A 20 MiB single-chunk SEND reaches B intact (SHA-256), and the MSRP
/// workers' peak RSS grows by less than 8 MiB: the body is streamed.
#[test]
fn twenty_mib_send_streams_through_bounded_memory() {
    let k = Kamailio::start(RelayOpts::default());
    let workers = k.worker_pids();
    assert!(!workers.is_empty(), "no MSRP worker in core.psx");
    let hwm_before: Vec<u64> = workers.iter().map(|p| Kamailio::peak_rss_kib(*p)).collect();

    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let a = Client::connect(&k);
    let a_uri = a.uri.clone();
    let req = Request::send_streaming(&[&relay, &b_uri], &[&a_uri], BIG);
    let tid = req.tid.clone();
    let msg_id = req.header("Message-ID").unwrap().to_owned();

    let sender = std::thread::spawn(move || {
        let mut peer = a.peer;
        let digest = peer.send_request_streaming(&req, BodyGen::new(20, BIG));
        (peer, digest)
    });

    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)));
    // The relay may re-chunk (RFC 4976 §6.4.1): accept any number of chunks
    // of the same Message-ID, in order, until the `$` chunk.
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut chunks = 0;
    loop {
        let f = bp
            .read_frame_streaming(BIG_TIMEOUT, |piece| hasher.update(piece))
            .unwrap_or_else(|e| {
                panic!(
                    "B read after {received} bytes in {chunks} chunks: {e}\nlog tail:\n{}",
                    k.log_tail(30)
                )
            });
        chunks += 1;
        assert_eq!(f.method().as_deref(), Some("SEND"), "{}", f.summary());
        assert_eq!(f.header("Message-ID").as_deref(), Some(msg_id.as_str()));
        assert_eq!(f.to_path(), vec![b_uri.clone()]);
        assert_eq!(f.from_path(), vec![relay.clone(), a_uri.clone()]);
        if let Ok(Some(br)) = f.head.byte_range() {
            assert_eq!(br.start, received + 1, "Byte-Range start: {}", f.summary());
        }
        received += f.body_len;
        bp.send_response(&f, 200, Some("OK")).expect("B respond");
        match f.flag {
            EndFlag::Complete => break,
            EndFlag::Continued => continue,
            EndFlag::Aborted => panic!("relay aborted the SEND: {}", f.summary()),
        }
    }
    let (mut a_peer, sent) = sender.join().expect("sender thread");
    let sent = sent.unwrap_or_else(|e| panic!("A streaming send: {e}"));
    let got: [u8; 32] = hasher.finalize().into();
    assert_eq!(received, BIG, "body length at B");
    assert_eq!(hex(&got), hex(&sent), "SHA-256 of the body at B");
    assert_eq!(sent, BodyGen::new(20, BIG).sha256());

    let resp = a_peer
        .read_response(T, &["REPORT"])
        .unwrap_or_else(|e| panic!("A read response: {e}\nlog tail:\n{}", k.log_tail(30)));
    assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
    assert_eq!(resp.tid(), tid);

    for (pid, before) in workers.iter().zip(hwm_before) {
        let after = Kamailio::peak_rss_kib(*pid);
        let growth = after.saturating_sub(before);
        eprintln!("MSRP worker {pid}: VmHWM {before} -> {after} KiB ({chunks} chunk(s) at B)");
        assert!(
            growth < MAX_HWM_GROWTH_KIB,
            "MSRP worker {pid}: VmHWM grew by {growth} KiB ({before} -> {after}) during a \
             {BIG}-byte transfer (limit {MAX_HWM_GROWTH_KIB} KiB): body not streamed?"
        );
    }
}

/// `msrp_test_panic()` panics inside Rust: the guard catches it, logs it,
/// returns -1; Kamailio and the worker keep running and relaying.
#[test]
fn panic_in_script_function_is_contained() {
    let route = r#"if ($msrp(method) == "PANIC") {
        msrp_test_panic();
        xlog("L_INFO", "after-guard rc=$rc\n");
        exit;
    }
    xlog("L_INFO", "frame-in $msrp(method) tid=$msrp(transid) from $si:$sp\n");
    msrp_relay();"#;
    let mut k = Kamailio::start(
        RelayOpts::default()
            .modparam_int("test_mode", 1)
            .route(route),
    );
    let workers_before = k.worker_pids();
    assert!(!workers_before.is_empty(), "no MSRP worker in core.psx");

    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let mut a = Client::connect(&k);

    let req = Request::new("PANIC", &[&relay, &b_uri], &[&a.uri]);
    a.peer.send_request(&req).expect("A send PANIC");
    assert!(
        k.wait_for_log("after-guard rc=-1", Duration::from_secs(5)),
        "msrp_test_panic() did not return -1 to the script; log tail:\n{}",
        k.log_tail(30)
    );
    let log = k.log();
    assert!(
        log.lines()
            .any(|l| l.contains("panic") && !l.contains("after-guard")),
        "the caught panic was not logged with the word \"panic\"; log tail:\n{}",
        k.log_tail(30)
    );

    // Same connection, same worker: relaying still works.
    relay_small_send(&k, &mut a, &b, &b_uri, None, b"after the panic");
    assert!(k.is_running(), "kamailio main process died");
    let workers_after = k.worker_pids();
    assert_eq!(
        workers_before, workers_after,
        "MSRP worker(s) changed after the panic"
    );
}
