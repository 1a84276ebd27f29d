//! Per-session accounting in the engine (no Kamailio): a session made by
//! `cmap_save` on an AUTH counts the client's SENDs and what the relay
//! writes to it, and the host hears once when it ends: closed when its
//! connection closes, shutdown for one still open when the engine stops.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::Duration;

use msrp_engine::acct::{EndReason, Ended, Usage};
use msrp_engine::engine::{Engine, Host};
use msrp_engine::script::FrameCtx;
use msrp_engine::testing::{self, MemTable, NoStats};
use msrp_engine::transport::Kind;
use msrp_tools::endpoint::Endpoint;
use msrp_tools::peer::{Peer, Request};

const T: Duration = Duration::from_secs(5);

/// Saves a session for an AUTH, relays everything else, and reports the
/// sessions that end.
struct Sessions(Sender<Ended>);

impl Host for Sessions {
    fn run_route(&mut self, mut ctx: FrameCtx) -> FrameCtx {
        if ctx.head.method() == Some(b"AUTH") {
            ctx.cmap_save(1, 3600, None).expect("cmap_save");
        } else {
            ctx.relay();
        }
        ctx
    }
    fn tick(&mut self) {}
    fn session_end(&mut self, ended: Ended) {
        let _ = self.0.send(ended);
    }
}

/// AUTHs `p` as `user`; returns the session ID of its Use-Path.
fn auth(p: &mut Peer, relay: &str, uri: &str, user: &str) -> String {
    let req = Request::new("AUTH", &[relay], &[uri])
        .with_header("Authorization", &format!("Digest username=\"{user}\""));
    p.send_request(&req).expect("AUTH");
    let r = p.read_frame(T).expect("AUTH answer");
    assert_eq!(r.status_code(), Some(200), "{}", r.summary());
    let use_path = r.header("Use-Path").expect("Use-Path");
    let session = use_path
        .rsplit('/')
        .next()
        .and_then(|s| s.split(';').next());
    session.expect("session").to_owned()
}

#[test]
fn sessions_are_counted_and_end_closed_or_at_shutdown() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let mut cfg = testing::config(vec![addr]);
    cfg.max_chunk_size = 4096;
    let cfg: &'static _ = Box::leak(Box::new(cfg));
    let (tx, ended) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let engine = std::thread::spawn(move || {
        let mut e = Engine::new(
            cfg,
            vec![(l, Kind::Tcp)],
            Sessions(tx),
            Box::new(MemTable::default()),
            Box::new(NoStats),
            7,
        )
        .expect("engine");
        e.run_while(|| !s.load(Ordering::Relaxed)).expect("run");
        e.shutdown();
    });
    let relay = format!("msrp://{addr};tcp");
    let mut a = Peer::connect(addr).expect("A");
    let a_uri = format!("msrp://{}/a;tcp", a.local_addr());
    let a_session = auth(&mut a, &relay, &a_uri, "alice");
    let mut c = Peer::connect(addr).expect("C");
    let c_uri = format!("msrp://{}/c;tcp", c.local_addr());
    let c_session = auth(&mut c, &relay, &c_uri, "carol");

    // A -> B: 10,000 bytes, re-chunked to 4 KiB for B
    let b = Endpoint::bind().expect("B");
    let body = vec![b'm'; 10_000];
    let req = Request::send(&[&relay, &b.uri("b")], &[&a_uri], &body);
    a.send_request(&req).expect("A's SEND");
    let mut bp = b.accept(T).expect("the relay connects to B");
    let mut got = 0;
    while got < body.len() {
        let f = bp.read_frame(T).expect("chunk at B");
        got += f.body.len();
        bp.send_response(&f, 200, None).expect("B's 200");
    }
    assert_eq!(a.read_frame(T).expect("A's 200").status_code(), Some(200));
    // B -> A over A's session, in two chunks of 3 + 4 bytes
    let a_use_path = format!("msrp://{addr}/{a_session};tcp");
    let mut part = Request::send(&[&a_use_path, &a_uri], &[&b.uri("b")], b"abc");
    part.headers[1].1 = "1-3/7".into();
    part.flag = msrp_tools::EndFlag::Continued;
    let mut last = Request::send(&[&a_use_path, &a_uri], &[&b.uri("b")], b"defg");
    last.headers[0].1 = part.headers[0].1.clone();
    last.headers[1].1 = "4-7/7".into();
    for r in [&part, &last] {
        bp.send_request(r).expect("B's SEND");
        let f = a.read_frame(T).expect("chunk at A");
        a.send_response(&f, 200, None).expect("A's 200");
        assert_eq!(bp.read_frame(T).expect("B's 200").status_code(), Some(200));
    }

    drop(a);
    let e = ended.recv_timeout(T).expect("A's session ends");
    assert_eq!(
        (e.session.as_str(), e.reason),
        (a_session.as_str(), EndReason::Closed)
    );
    assert_eq!(e.acct.user, "alice");
    let want = Usage {
        msgs_in: 1,
        bytes_in: 10_000,
        msgs_out: 1,
        bytes_out: 7,
    };
    assert_eq!(e.acct.usage, want);
    assert!(ended.recv_timeout(Duration::from_millis(300)).is_err());

    stop.store(true, Ordering::Relaxed);
    engine.join().expect("engine thread");
    let e = ended.recv_timeout(T).expect("C's session ends");
    assert_eq!(
        (e.session.as_str(), e.reason),
        (c_session.as_str(), EndReason::Shutdown)
    );
    assert_eq!(
        (e.acct.user.as_str(), e.acct.usage),
        ("carol", Usage::default())
    );
    drop(c);
}
