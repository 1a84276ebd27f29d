//! Issue 19 item 3 over TLS, against a real Kamailio: once a wave of idle
//! TLS sessions has closed, the worker's private memory is back where it
//! was. Two things kept it up before: rustls' default session cache (its
//! entries, allocated among the connections, pinned their heap pages; now
//! `transport/tls/sessions.rs`) and glibc's per-thread cache of freed
//! chunks, which `malloc_trim` leaves alone (now emptied first,
//! `src/kamailio/heap.rs`).

mod common;

use std::time::{Duration, Instant};

use msrp_tools::idle::{open, IdleSpec};
use msrp_tools::load::Dialer;
use msrp_tools::process;
use msrp_tools::tls::Certs;
use msrp_tools::Transport;

use common::*;

/// Private memory (`RssAnon`) of the MSRP workers, KiB.
fn anon_kib(k: &Kamailio) -> u64 {
    k.worker_pids()
        .into_iter()
        .map(|p| process::status_kib(p, "RssAnon").expect("RssAnon"))
        .sum()
}

/// `n` idle AUTHed TLS sessions opened, then closed; the workers' private
/// memory while they were open.
fn wave(k: &Kamailio, certs: &Certs, n: usize) -> u64 {
    let relay = k.transport_addr(Transport::Tls).expect("tls listener");
    let spec = IdleSpec {
        relay,
        relay_uri: Transport::Tls.uri("127.0.0.1", relay.port(), "relay"),
        transport: Transport::Tls,
        certs: Some(certs.dir().to_path_buf()),
        count: n,
        sources: vec!["127.0.0.1".parse().unwrap()],
    };
    let dialer = Dialer::to_test_relay(Transport::Tls, Some(certs), None).expect("dialer");
    let conns = open(&spec, &dialer).unwrap_or_else(|e| panic!("{e}\n{}", k.log_tail(20)));
    let with = anon_kib(k);
    drop(conns);
    with
}

/// The workers' private memory once it has not moved for 3 s: the worker
/// gives memory back at its first once-a-second sweep after a second with
/// no close.
fn settled(k: &Kamailio) -> u64 {
    let end = Instant::now() + Duration::from_secs(30);
    let (mut last, mut since) = (anon_kib(k), Instant::now());
    while Instant::now() < end && since.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(200));
        let now = anon_kib(k);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

#[test]
fn a_closed_wave_of_tls_sessions_leaves_no_private_memory_behind() {
    let certs = Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"));
    let route = r#"if ($msrp(method) == "AUTH") { msrp_cmap_save(); exit; }
    msrp_relay();"#;
    let k = Kamailio::start(
        RelayOpts::default()
            .route(route)
            .listen_transport(Transport::Tls)
            .tls_certs(&certs)
            .modparam_int("workers", 1),
    );
    // a first wave pages the TLS code in and sizes what stays sized (it
    // is not what a wave leaves behind)
    wave(&k, &certs, 1500);
    let before = settled(&k);
    let with = wave(&k, &certs, 3000);
    let after = settled(&k);
    let report = format!("worker's RssAnon {before} -> {with} -> {after} KiB");
    eprintln!("{report}");
    assert!(
        with > before + 3000 * 6,
        "the sessions cost memory: {report}"
    );
    assert!(after <= before + 256, "{report}\n{}", k.log_tail(20));
}
