//! One measured run of a mode: the sink (B), worker Y holding B's
//! connection, worker X with the frames.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use msrp_core::{Event, Limits, Parser};
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};

use super::ring::Ring;

/// CPU the two workers spent.
pub struct Cpu {
    pub x: Duration,
    pub y: Duration,
}

const TID: &str = "a1b2c3d4e5f6a7b8";
/// What Y hands X for each of B's 200s in the ring modes (tid, code).
const ANSWER_RECORD: &[u8; 24] = b"a1b2c3d4e5f6a7b8\x00\x00\x00\x00\xc8\x00\x00\x00";

fn send_frame(body: usize, conid: bool) -> Vec<u8> {
    let mut f = format!(
        "MSRP {TID} SEND\r\nTo-Path: msrp://127.0.0.1:9/b;tcp\r\n\
         From-Path: msrp://127.0.0.1:2855/r;tcp msrp://127.0.0.1:7/a;tcp\r\n\
         Message-ID: m1\r\nByte-Range: 1-{body}/{body}\r\n"
    );
    if conid {
        f.push_str("Relay-Conid: 7\r\n");
    }
    f.push_str("Content-Type: text/plain\r\n\r\n");
    let mut f = f.into_bytes();
    f.extend((0..body).map(|i| b'a' + (i % 26) as u8));
    f.extend_from_slice(format!("\r\n-------{TID}$\r\n").as_bytes());
    f
}

fn answer_frame() -> Vec<u8> {
    format!(
        "MSRP {TID} 200 OK\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp\r\n\
         From-Path: msrp://127.0.0.1:9/b;tcp\r\n-------{TID}$\r\n"
    )
    .into_bytes()
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Bytes read from a non-blocking stream and parsed as MSRP frames.
struct Frames {
    buf: BytesMut,
    parser: Parser,
    spare: Vec<u8>,
    eof: bool,
}

impl Frames {
    fn new() -> Frames {
        Frames {
            buf: BytesMut::new(),
            parser: Parser::new(Limits::default()),
            spare: vec![0; 256 * 1024],
            eof: false,
        }
    }

    /// Reads what is there; the number of complete frames parsed.
    fn read(&mut self, s: &mut impl Read) -> io::Result<usize> {
        loop {
            match s.read(&mut self.spare) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&self.spare[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let mut ended = 0;
        while let Some(ev) = self.parser.next(&mut self.buf).map_err(io::Error::other)? {
            if let Event::End(_) = ev {
                ended += 1;
            }
        }
        Ok(ended)
    }
}

/// Writes all of `b` to a non-blocking stream (spinning while full).
fn put(s: &mut impl Write, b: &[u8]) -> io::Result<()> {
    let mut off = 0;
    while off < b.len() {
        match s.write(&b[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn poller(fds: &[&dyn AsFdDyn]) -> io::Result<OwnedFd> {
    let ep = epoll::create(CreateFlags::CLOEXEC)?;
    for (i, fd) in fds.iter().enumerate() {
        epoll::add(&ep, fd.fd(), EventData::new_u64(i as u64), EventFlags::IN)?;
    }
    Ok(ep)
}

trait AsFdDyn {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
}
impl<T: AsFd> AsFdDyn for T {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

fn wait(ep: &OwnedFd) -> io::Result<()> {
    let mut evs = Vec::with_capacity(8);
    match epoll::wait(ep, rustix::buffer::spare_capacity(&mut evs), None) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// B: reads frames and answers each with a 200, until EOF.
fn sink(l: TcpListener) -> io::Result<()> {
    let (mut s, _) = l.accept()?;
    s.set_nodelay(true)?;
    let answer = answer_frame();
    let mut frames = Frames::new();
    let mut out = Vec::new();
    loop {
        s.set_nonblocking(false)?;
        let mut first = [0u8; 1];
        if s.peek(&mut first)? == 0 {
            return Ok(());
        }
        s.set_nonblocking(true)?;
        let n = frames.read(&mut s)?;
        out.clear();
        for _ in 0..n {
            out.extend_from_slice(&answer);
        }
        s.set_nonblocking(false)?;
        s.write_all(&out)?;
        if frames.eof {
            return Ok(());
        }
    }
}

/// Runs `mode` for `n` frames; the CPU of X and Y.
pub fn run(mode: &str, n: usize, window: usize, body: usize) -> io::Result<Cpu> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let b_thread = std::thread::spawn(move || sink(l));
    let b = TcpStream::connect(addr)?;
    b.set_nodelay(true)?;
    b.set_nonblocking(true)?;
    let cpu = match mode {
        "local" => {
            let f = send_frame(body, false);
            let x = x_stream(b, &f, n, window)?;
            Cpu {
                x,
                y: Duration::ZERO,
            }
        }
        "link" => {
            let (lx, ly) = UnixStream::pair()?;
            lx.set_nonblocking(true)?;
            ly.set_nonblocking(true)?;
            let f = send_frame(body, true);
            let plain = send_frame(body, false);
            let y = std::thread::spawn(move || y_link(ly, b, &plain));
            let x = x_stream(lx, &f, n, window)?;
            Cpu {
                x,
                y: y.join().map_err(|_| io::Error::other("Y panicked"))??,
            }
        }
        _ => rings(mode == "direct", b, n, window, body)?,
    };
    b_thread
        .join()
        .map_err(|_| io::Error::other("sink panicked"))??;
    Ok(cpu)
}

/// X over a stream (B's connection itself, or the link): sends, reads and
/// parses the answers.
fn x_stream<S: Read + Write + AsFd>(
    mut s: S,
    f: &[u8],
    n: usize,
    w: usize,
) -> io::Result<Duration> {
    let t0 = thread_cpu();
    let ep = poller(&[&s])?;
    let mut answers = Frames::new();
    let (mut sent, mut done) = (0, 0);
    while done < n {
        while sent < n && sent - done < w {
            put(&mut s, f)?;
            sent += 1;
        }
        wait(&ep)?;
        done += answers.read(&mut s)?;
    }
    Ok(thread_cpu() - t0)
}

/// Y today: frames from the link to B, B's answers back over the link.
fn y_link(mut link: UnixStream, mut b: TcpStream, plain: &[u8]) -> io::Result<Duration> {
    let t0 = thread_cpu();
    let ep = poller(&[&link, &b])?;
    let answer = answer_frame();
    let (mut from_x, mut from_b) = (Frames::new(), Frames::new());
    let mut out = Vec::new();
    loop {
        wait(&ep)?;
        let k = from_x.read(&mut link)?;
        out.clear();
        for _ in 0..k {
            out.extend_from_slice(plain);
        }
        put(&mut b, &out)?;
        let k = from_b.read(&mut b)?;
        out.clear();
        for _ in 0..k {
            out.extend_from_slice(&answer);
        }
        put(&mut link, &out)?;
        if from_x.eof {
            return Ok(thread_cpu() - t0);
        }
    }
}

/// The ring modes: frames to Y through a ring (or written by X itself
/// under the connection's lock), answers back as records in a ring.
fn rings(direct: bool, b: TcpStream, n: usize, w: usize, body: usize) -> io::Result<Cpu> {
    let xy = Arc::new(Ring::new(64 * 1024)?);
    let yx = Arc::new(Ring::new(64 * 1024)?);
    let lock = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut bx = b.try_clone()?;
    let y = {
        let (xy, yx, stop) = (xy.clone(), yx.clone(), stop.clone());
        std::thread::spawn(move || y_ring(&xy, &yx, &stop, b))
    };
    let t0 = thread_cpu();
    let ep = poller(&[&yx.fd()])?;
    let f = send_frame(body, false);
    let (mut sent, mut done) = (0, 0);
    let mut rec = Vec::new();
    while done < n {
        while sent < n && sent - done < w {
            if direct {
                while lock
                    .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    std::hint::spin_loop();
                }
                put(&mut bx, &f)?;
                lock.store(false, Ordering::Release);
            } else {
                while !xy.push(&f) {
                    std::hint::spin_loop();
                }
            }
            sent += 1;
        }
        let before = done;
        while yx.pop(&mut rec) {
            done += 1;
        }
        if done == before && yx.sleep() {
            wait(&ep)?;
            yx.woke();
        }
    }
    let x = thread_cpu() - t0;
    stop.store(true, Ordering::SeqCst);
    xy.poke();
    drop(bx);
    let y = y.join().map_err(|_| io::Error::other("Y panicked"))??;
    Ok(Cpu { x, y })
}

/// Y with rings: frames from X's ring to B (none in the direct mode), B's
/// 200s parsed and handed back as records.
fn y_ring(xy: &Ring, yx: &Ring, stop: &AtomicBool, mut b: TcpStream) -> io::Result<Duration> {
    let t0 = thread_cpu();
    let ep = poller(&[&xy.fd(), &b])?;
    let mut from_b = Frames::new();
    let (mut msg, mut out) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::SeqCst) {
        out.clear();
        while xy.pop(&mut msg) {
            out.extend_from_slice(&msg);
        }
        put(&mut b, &out)?;
        let k = from_b.read(&mut b)?;
        for _ in 0..k {
            while !yx.push(ANSWER_RECORD) {
                std::hint::spin_loop();
            }
        }
        if out.is_empty() && k == 0 && xy.sleep() {
            wait(&ep)?;
            xy.woke();
        }
    }
    let y = thread_cpu() - t0;
    let _ = b.shutdown(std::net::Shutdown::Write);
    Ok(y)
}

#[cfg(test)]
mod tests {
    /// Every mode delivers and gets every answer (`run` returns only then).
    #[test]
    fn every_mode_completes() {
        for mode in crate::MODES {
            for window in [1, 5] {
                let r =
                    super::run(mode, 300, window, 100).unwrap_or_else(|e| panic!("{mode}: {e}"));
                assert!(r.x > std::time::Duration::ZERO, "{mode}");
            }
        }
    }
}
