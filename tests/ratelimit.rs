//! Read-rate limits (issue 23 item 1): modparam `max_read_rate` and
//! `msrp_set_read_rate()` make the relay read a connection slower, so TCP
//! holds its sender back. Against a real Kamailio: an 8 MiB SEND under
//! 1 MiB/s takes 7-9 s with the worker's memory flat while an unlimited
//! connection on the same worker keeps its rate; the modparam limits
//! `tls:`, `ws:` and `wss:` clients alike and the script can lift it; the
//! connections RPC shows each limit.

mod common;

use std::time::{Duration, Instant};

use msrp_tools::tls::{client_config, Certs};
use msrp_tools::Transport;
use sha2::{Digest, Sha256};

use common::chunks::*;
use common::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// The limit the tests set, bytes per second.
const RATE: i64 = MIB as i64;

/// Route: a client whose URI's session starts with `slow` is limited to
/// [`RATE`], one with `fast` has its limit lifted, one with `bad` asks for
/// an invalid rate (refused, logged).
const ROUTE: &str = r#"if ($msrp(method) == "SEND") {
        if ($msrp(firsthop) =~ "/slow") { msrp_set_read_rate(1048576); }
        if ($msrp(firsthop) =~ "/fast") { msrp_set_read_rate(0); }
        if ($msrp(firsthop) =~ "/bad") {
            if (!msrp_set_read_rate(-1)) { xlog("L_INFO", "bad rate refused\n"); }
        }
    }
    msrp_relay();"#;

/// A client URI on `peer`'s address whose session starts with `class`.
fn uri_of(peer: &Peer, scheme: &str, class: &str) -> String {
    let a = peer.local_addr();
    let s = msrp_tools::ids::session_id();
    format!("{scheme}://{}:{}/{class}{s};tcp", a.ip(), a.port())
}

/// What one transfer took.
struct Transfer {
    /// From the first byte A sent to the last chunk B received.
    b_time: Duration,
    /// How long A's writes took (until the last byte was in its socket).
    a_time: Duration,
    /// B's connection from the relay, for the next transfer.
    bp: Peer,
    /// A, for more requests.
    a: Client,
}

/// Sends a `len`-byte SEND from `a` to B through `relay` (A streams it in
/// its own thread), receives it at B (`bp`, or accepted on first use),
/// checks it arrived intact and that A gets its 200.
fn transfer(
    k: &Kamailio,
    a: Client,
    relay: &str,
    b: &Endpoint,
    bp: Option<Peer>,
    len: u64,
) -> Transfer {
    let b_uri = b.uri("bob");
    let req = Request::send_streaming(&[relay, &b_uri], &[&a.uri], len);
    let msg_id = req.header("Message-ID").expect("Message-ID").to_owned();
    let from = [relay.to_owned(), a.uri.clone()];
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut a = a;
        let sent = a.peer.send_request_streaming(&req, BodyGen::new(len, len));
        (a, req.tid, sent, start.elapsed())
    });
    let mut bp = bp.unwrap_or_else(|| {
        b.accept(FRAME_TIMEOUT)
            .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)))
    });
    let mut hasher = Sha256::new();
    let chunks = receive_message(k, &mut bp, &msg_id, &[b_uri], &from, |p| hasher.update(p));
    let b_time = start.elapsed();
    let (mut a, tid, sent, a_time) = sender.join().expect("sender thread");
    let sent = sent.unwrap_or_else(|e| panic!("A streaming send: {e}"));
    assert_eq!(
        check_chunks(&chunks, 16384, true, Some(len), EndFlag::Complete),
        len
    );
    let got: [u8; 32] = hasher.finalize().into();
    assert_eq!(hex(&got), hex(&sent), "SHA-256 at B");
    let r = a
        .peer
        .read_response(FRAME_TIMEOUT, &["REPORT"])
        .unwrap_or_else(|e| panic!("A's 200: {e}\n{}", k.log_tail(30)));
    assert_eq!(
        (r.tid(), r.status_code()),
        (tid, Some(200)),
        "{}",
        r.summary()
    );
    Transfer {
        b_time,
        a_time,
        bp,
        a,
    }
}

/// A small SEND from `a` (its route run sets the connection's limit),
/// relayed to B and answered.
fn hello(k: &Kamailio, a: &mut Client, b: &Endpoint, bp: Option<Peer>) -> Peer {
    relay_small_send(k, a, b, &b.uri("bob"), bp, b"hello")
}

/// 1. `msrp_set_read_rate(1048576)` on a plain TCP client: its 8 MiB SEND
///    reaches B in 7-9 s (one second of burst, then 1 MiB/s), A's writes
///    are held back by TCP (the relay's receive buffer is 64 KiB), and the
///    worker's VmHWM grows by less than 4 MiB. A 32 MiB SEND of an
///    unlimited client on the same worker during it takes at most four
///    times (plus a second) what it took alone. The RPC shows both limits.
#[test]
fn script_limit_reads_one_connection_slower_and_not_its_neighbour() {
    const LEN: u64 = 8 * MIB;
    const FAST_LEN: u64 = 32 * MIB;
    const MAX_HWM_GROWTH_KIB: u64 = 4 * 1024;
    let k = Kamailio::start(
        RelayOpts::default()
            .route(ROUTE)
            .modparam_int("socket_rcvbuf", 65536),
    );
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");

    // the unlimited client alone, for its rate on this machine now
    let mut fast = Client::connect(&k);
    let bp = hello(&k, &mut fast, &b, None);
    let t = transfer(&k, fast, &relay, &b, Some(bp), FAST_LEN);
    let (fast_alone, mut bp, fast) = (t.b_time, t.bp, t.a);

    let mut slow = Client::connect(&k);
    slow.uri = uri_of(&slow.peer, "msrp", "slow");
    bp = hello(&k, &mut slow, &b, Some(bp));
    let slow_peer = slow.peer.local_addr().to_string();
    let fast_peer = fast.peer.local_addr().to_string();
    assert_eq!(conn_field(&k, &slow_peer, "READ_RATE"), RATE.to_string());
    assert_eq!(conn_field(&k, &fast_peer, "READ_RATE"), "0");
    let hwm_before = worker_hwm(&k);

    // B's side of the relay for the unlimited transfer: its own endpoint
    let b2 = Endpoint::bind().expect("bind B2");
    let slow_run = {
        let relay = relay.clone();
        std::thread::scope(|s| {
            let slow_t = s.spawn(|| transfer(&k, slow, &relay, &b, Some(bp), LEN));
            // the unlimited transfer starts while the limited one runs
            std::thread::sleep(Duration::from_secs(2));
            let mut fast = fast;
            let b2p = hello(&k, &mut fast, &b2, None);
            let t = transfer(&k, fast, &relay, &b2, Some(b2p), FAST_LEN);
            let fast_during = t.b_time;
            let slow_t = slow_t.join().expect("slow transfer");
            (slow_t, fast_during)
        })
    };
    let (slow_t, fast_during) = slow_run;
    let hwm_after = worker_hwm(&k);
    eprintln!(
        "limited 8 MiB: B after {:?}, A's writes {:?}; unlimited 32 MiB alone {fast_alone:?}, \
         during {fast_during:?}; VmHWM {hwm_before:?} -> {hwm_after:?}",
        slow_t.b_time, slow_t.a_time
    );
    assert!(
        slow_t.b_time >= Duration::from_secs(7) && slow_t.b_time <= Duration::from_secs(9),
        "8 MiB under 1 MiB/s reached B after {:?} (expected 7-9 s)",
        slow_t.b_time
    );
    assert!(
        slow_t.a_time >= Duration::from_secs(2),
        "A wrote 8 MiB in {:?}: not held back by TCP",
        slow_t.a_time
    );
    assert!(
        fast_during <= fast_alone * 4 + Duration::from_secs(1),
        "the unlimited 32 MiB took {fast_during:?} beside the limited one, {fast_alone:?} alone"
    );
    assert_hwm_growth_below(&hwm_before, &hwm_after, MAX_HWM_GROWTH_KIB);
}

/// A client of `transport` (`tls`, `ws` or `wss`) with an URI of `class`.
fn client_of(k: &Kamailio, certs: &Certs, t: Transport, class: &str) -> Client {
    let addr = k.transport_addr(t).expect("listener");
    let tls = client_config(&certs.ca(), None).expect("TLS client config");
    let peer = match t {
        Transport::Tls => Peer::connect_tls(addr, "127.0.0.1", &tls),
        Transport::Ws => Peer::connect_ws(addr, &addr.to_string(), "/", None, None),
        Transport::Wss => Peer::connect_ws(
            addr,
            &addr.to_string(),
            "/",
            None,
            Some(("127.0.0.1", &tls)),
        ),
        Transport::Tcp => Peer::connect(addr),
    }
    .unwrap_or_else(|e| panic!("{t} client: {e}"));
    let uri = match t {
        Transport::Tls => uri_of(&peer, "msrps", class),
        _ => {
            let host = msrp_tools::ids::random_alnum(10).to_ascii_lowercase();
            let scheme = if t == Transport::Wss { "msrps" } else { "msrp" };
            let s = msrp_tools::ids::session_id();
            format!("{scheme}://{host}.invalid:2855/{class}{s};ws")
        }
    };
    Client { peer, uri }
}

/// 2. `max_read_rate` 1 MiB/s: a 3 MiB SEND from a `tls:`, a `ws:` and a
///    `wss:` client each takes 2-4 s (one second of burst, then 1 MiB/s of
///    MSRP bytes); the RPC lists the limit on them and none on the relay's
///    connection to B. A `wss:` client whose route lifts the limit
///    (`msrp_set_read_rate(0)`) sends its 3 MiB in under 1.5 s; an invalid
///    rate is refused with an error naming it.
#[test]
fn modparam_limits_tls_ws_and_wss_clients_and_the_script_lifts_it() {
    const LEN: u64 = 3 * MIB;
    let certs = Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"));
    let k = Kamailio::start(
        RelayOpts::default()
            .route(ROUTE)
            .modparam_int("max_read_rate", RATE)
            .listen_transport(Transport::Tls)
            .listen_transport(Transport::Ws)
            .listen_transport(Transport::Wss)
            .tls_certs(&certs),
    );
    let b = Endpoint::bind().expect("bind B");
    let mut bp: Option<Peer> = None;
    for t in [Transport::Tls, Transport::Ws, Transport::Wss] {
        let relay = k.transport_uri(t, "relay").expect("relay uri");
        let a = client_of(&k, &certs, t, "any");
        let peer = a.peer.local_addr().to_string();
        assert_eq!(conn_field(&k, &peer, "READ_RATE"), RATE.to_string(), "{t}");
        let r = transfer(&k, a, &relay, &b, bp.take(), LEN);
        eprintln!("{t}: 3 MiB under 1 MiB/s reached B after {:?}", r.b_time);
        assert!(
            r.b_time >= Duration::from_secs(2) && r.b_time <= Duration::from_secs(4),
            "{t}: 3 MiB under 1 MiB/s reached B after {:?} (expected 2-4 s)",
            r.b_time
        );
        bp = Some(r.bp);
    }
    assert_eq!(
        conn_field(&k, &b.addr().to_string(), "READ_RATE"),
        "0",
        "the relay's connection to B"
    );

    let relay = k.transport_uri(Transport::Wss, "relay").expect("wss uri");
    let mut a = client_of(&k, &certs, Transport::Wss, "fast");
    let bp = relay_small_send(&k, &mut a, &b, &b.uri("bob"), bp, b"lift it");
    let peer = a.peer.local_addr().to_string();
    assert_eq!(conn_field(&k, &peer, "READ_RATE"), "0");
    let r = transfer(&k, a, &relay, &b, Some(bp), LEN);
    eprintln!("wss, limit lifted: 3 MiB reached B after {:?}", r.b_time);
    assert!(
        r.b_time < Duration::from_millis(1500),
        "3 MiB with the limit lifted took {:?}",
        r.b_time
    );

    let mut a = client_of(&k, &certs, Transport::Ws, "bad");
    let _ = relay_small_send(&k, &mut a, &b, &b.uri("bob"), Some(r.bp), b"bad rate");
    assert!(k.wait_for_log("bad rate refused", T), "{}", k.log_tail(20));
    let log = k.log();
    assert!(
        log.contains(
            "msrp_set_read_rate(): read rate -1 out of range (0 or 1024..=1073741824 bytes per second)"
        ),
        "{}",
        k.log_tail(20)
    );
    let peer = a.peer.local_addr().to_string();
    assert_eq!(conn_field(&k, &peer, "READ_RATE"), RATE.to_string());
}
