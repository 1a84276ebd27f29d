use super::*;
use proptest::prelude::*;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Ring memory on the heap, shared by the two ends (safe: a lock around
/// the bytes).
struct Heap(Arc<(RingControl, Mutex<Vec<u8>>)>);

impl Heap {
    fn new(cap: usize) -> (Heap, Heap) {
        let a = Arc::new((RingControl::default(), Mutex::new(vec![0u8; cap])));
        (Heap(a.clone()), Heap(a))
    }
}

impl RingMemory for Heap {
    fn control(&self) -> &RingControl {
        &self.0 .0
    }
    fn capacity(&self) -> usize {
        self.0 .1.lock().unwrap().len()
    }
    fn copy_in(&self, at: usize, src: &[u8]) {
        self.0 .1.lock().unwrap()[at..at + src.len()].copy_from_slice(src);
    }
    fn read_bytes(&self, at: usize, len: usize, f: &mut dyn FnMut(&[u8])) {
        f(&self.0 .1.lock().unwrap()[at..at + len]);
    }
}

/// Two linked ends over rings of `cap` bytes, unix sockets for eventfds;
/// also each end's wake socket to read the wakes from.
fn pair(cap: usize) -> ((RingLink, UnixStream), (RingLink, UnixStream)) {
    let (ab_tx, ab_rx) = Heap::new(cap);
    let (ba_tx, ba_rx) = Heap::new(cap);
    let (a_wake, a_waker) = UnixStream::pair().unwrap();
    let (b_wake, b_waker) = UnixStream::pair().unwrap();
    for s in [&a_wake, &b_wake, &a_waker, &b_waker] {
        s.set_nonblocking(true).unwrap();
    }
    let a_wake2 = a_wake.try_clone().unwrap();
    let b_wake2 = b_wake.try_clone().unwrap();
    let a = RingLink::new(
        Box::new(ab_tx),
        Box::new(ba_rx),
        a_wake.into(),
        b_waker.into(),
    );
    let b = RingLink::new(
        Box::new(ba_tx),
        Box::new(ab_rx),
        b_wake.into(),
        a_waker.into(),
    );
    ((a, a_wake2), (b, b_wake2))
}

/// Wakes waiting on `s` (each is 8 bytes).
fn wakes(mut s: &UnixStream) -> usize {
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while let Ok(k) = s.read(&mut buf) {
        if k == 0 {
            break;
        }
        n += k / 8;
    }
    n
}

#[test]
fn runs_split_at_the_wrap() {
    assert_eq!(runs(0, 10, 16), (0, 10, 0));
    assert_eq!(runs(12, 10, 16), (12, 4, 6));
    assert_eq!(runs(16, 16, 16), (0, 16, 0));
    assert_eq!(runs(31, 1, 16), (15, 1, 0));
    assert_eq!(runs(u64::MAX - 15, 0, 16), (0, 0, 0));
    assert_eq!(room(20, 4, 16), 0);
    assert_eq!(room(20, 20, 16), 16);
}

#[test]
fn full_ring_blocks_and_the_reader_wakes_the_writer() {
    let ((a, a_wake), (b, b_wake)) = pair(8);
    assert_eq!(a.write_vectored(&[IoSlice::new(b"0123456789")]).unwrap(), 8);
    let e = a.write_vectored(&[IoSlice::new(b"89")]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    // b was not asleep: no wake for the bytes
    assert_eq!(wakes(&b_wake), 0);
    let mut got = BytesMut::new();
    assert_eq!(b.read_append(&mut got, 3).unwrap(), 3);
    // a waited for space: one wake, and only one
    assert_eq!(wakes(&a_wake), 1);
    assert_eq!(b.read_append(&mut got, 100).unwrap(), 5);
    assert_eq!(wakes(&a_wake), 0);
    assert_eq!(&got[..], b"01234567");
    let e = b.read_append(&mut got, 100).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
}

#[test]
fn a_sleeping_reader_is_woken_once_and_a_busy_one_never() {
    let ((a, _), (b, b_wake)) = pair(64);
    let mut got = BytesMut::new();
    // the last read found nothing: b sleeps, a's write wakes it
    assert!(b.read_append(&mut got, 64).is_err());
    assert!(!b.before_sleep());
    a.write_vectored(&[IoSlice::new(b"x")]).unwrap();
    a.write_vectored(&[IoSlice::new(b"y")]).unwrap();
    assert_eq!(wakes(&b_wake), 1);
    b.after_sleep();
    // bytes that came between the read and the sleep: read, no wake
    assert_eq!(b.read_append(&mut got, 64).unwrap(), 2);
    assert!(b.read_append(&mut got, 64).is_err());
    a.write_vectored(&[IoSlice::new(b"z")]).unwrap();
    assert!(b.before_sleep());
    assert_eq!(wakes(&b_wake), 0);
    // not drained to empty (b stopped reading on its own): no wake asked
    b.read_append(&mut got, 64).unwrap();
    a.write_vectored(&[IoSlice::new(b"w")]).unwrap();
    assert!(!b.before_sleep());
    b.after_sleep();
    assert_eq!(&got[..], b"xyz");
}

#[derive(Debug, Clone)]
enum Op {
    /// A vectored write of slices of these lengths.
    Write(Vec<usize>),
    /// A read of at most this many bytes.
    Read(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        proptest::collection::vec(0usize..40, 0..5).prop_map(Op::Write),
        (1usize..50).prop_map(Op::Read),
    ]
}

proptest! {
    /// Whatever the split of writes and reads, the bytes come out in order,
    /// none lost, none made up; a write takes exactly what fits.
    #[test]
    fn bytes_come_out_in_order(cap in 1usize..48, ops in proptest::collection::vec(op(), 0..200)) {
        let ((a, _), (b, _)) = pair(cap);
        let (mut sent, mut got) = (Vec::new(), BytesMut::new());
        let mut next = 0u8;
        for op in ops {
            match op {
                Op::Write(lens) => {
                    let bufs: Vec<Vec<u8>> = lens.iter().map(|&n| {
                        (0..n).map(|_| { next = next.wrapping_add(1); next }).collect()
                    }).collect();
                    let flat: Vec<u8> = bufs.concat();
                    let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
                    let free = cap - (sent.len() - got.len());
                    match a.write_vectored(&slices) {
                        Ok(n) => {
                            prop_assert_eq!(n, flat.len().min(free));
                            sent.extend_from_slice(&flat[..n]);
                        }
                        Err(e) => {
                            prop_assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                            prop_assert!(free == 0 && !flat.is_empty());
                        }
                    }
                    // bytes not taken are offered again later: keep the
                    // sequence continuous
                    next = sent.last().copied().unwrap_or(0);
                }
                Op::Read(max) => {
                    let before = got.len();
                    match b.read_append(&mut got, max) {
                        Ok(n) => prop_assert_eq!(n, (sent.len() - before).min(max)),
                        Err(_) => prop_assert_eq!(sent.len(), before),
                    }
                }
            }
            prop_assert_eq!(&got[..], &sent[..got.len()]);
        }
    }
}

/// A writer thread and a reader thread, each waiting in poll as a worker
/// does: every byte arrives in order and no wake is lost (a lost one
/// would leave both waiting: the test gives up after 10 s of silence).
#[test]
fn two_threads_lose_no_wake() {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use std::os::fd::AsRawFd;

    const TOTAL: usize = 3_000_000;
    let ((a, a_wake), (b, b_wake)) = pair(4096);
    fn wait(link: &RingLink, wake: &UnixStream, poll: &mut Poll, ev: &mut Events) {
        if link.before_sleep() {
            return;
        }
        poll.poll(ev, Some(Duration::from_secs(10))).unwrap();
        link.after_sleep();
        assert!(!ev.is_empty(), "a wake was lost");
        wakes(wake);
    }
    fn poller(wake: &UnixStream) -> (Poll, Events) {
        let poll = Poll::new().unwrap();
        let fd = wake.as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
            .unwrap();
        (poll, Events::with_capacity(4))
    }
    let writer = std::thread::spawn(move || {
        let (mut poll, mut ev) = poller(&a_wake);
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        let mut off = 0;
        while off < TOTAL {
            let end = (off + 1 + off % 3000).min(TOTAL);
            let (x, y) = data[off..end].split_at((end - off) / 2);
            match a.write_vectored(&[IoSlice::new(x), IoSlice::new(y)]) {
                Ok(n) => off += n,
                Err(_) => wait(&a, &a_wake, &mut poll, &mut ev),
            }
        }
    });
    let (mut poll, mut ev) = poller(&b_wake);
    let mut got = BytesMut::new();
    while got.len() < TOTAL {
        let max = 1 + got.len() % 5000;
        if b.read_append(&mut got, max).is_err() {
            wait(&b, &b_wake, &mut poll, &mut ev);
        }
    }
    writer.join().unwrap();
    assert!(got.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
}
