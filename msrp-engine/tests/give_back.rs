//! After many connections closed, the worker gives memory back once the
//! closing is over (`Host::release_memory`, Kamailio: `malloc_trim`); a
//! few closes do not trigger it.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use msrp_engine::engine::{Engine, Host};
use msrp_engine::script::FrameCtx;
use msrp_engine::testing::{self, MemTable, NoStats};
use msrp_engine::transport::Kind;

/// Relays everything and counts `release_memory` calls.
struct Counting(Arc<AtomicUsize>);

impl Host for Counting {
    fn run_route(&mut self, mut ctx: FrameCtx) -> FrameCtx {
        ctx.relay();
        ctx
    }
    fn tick(&mut self) {}
    fn release_memory(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Opens `n + kept` connections to a fresh engine and closes `n`; returns
/// the release count seen within `wait` after they closed.
fn releases_after(n: usize, kept: usize, wait: Duration) -> usize {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let cfg = testing::config(vec![addr]);
    let cfg: &'static _ = Box::leak(Box::new(cfg));
    let (count, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (c, s) = (count.clone(), stop.clone());
    let engine = std::thread::spawn(move || {
        let mut e = Engine::new(
            cfg,
            vec![(l, Kind::Tcp)],
            Counting(c),
            Box::new(MemTable::default()),
            Box::new(NoStats),
            7,
        )
        .expect("engine");
        e.run_while(|| !s.load(Ordering::Relaxed)).expect("run");
    });
    // All opened (the engine accepts them), then all closed.
    let mut conns: Vec<TcpStream> = (0..n + kept)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let _kept = conns.split_off(n);
    std::thread::sleep(Duration::from_millis(300));
    drop(conns);
    let end = Instant::now() + wait;
    while count.load(Ordering::SeqCst) == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = count.load(Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    engine.join().expect("engine thread");
    seen
}

#[test]
fn memory_goes_back_after_a_wave_of_closes_only() {
    // 1,100 closes (>= 1024): given back within a few sweeps (1 s each).
    assert_eq!(releases_after(1100, 0, Duration::from_secs(6)), 1);
    // 20 closes: not worth a trim.
    assert_eq!(releases_after(20, 0, Duration::from_millis(1500)), 0);
}

#[test]
fn a_smaller_wave_counts_when_it_closed_most_of_the_worker() {
    // 400 closed, none left (a worker that held few sessions): given back
    assert_eq!(releases_after(400, 0, Duration::from_secs(6)), 1);
    // 400 closed of 1,000: not a wave for this worker
    assert_eq!(releases_after(400, 600, Duration::from_millis(2500)), 0);
}
