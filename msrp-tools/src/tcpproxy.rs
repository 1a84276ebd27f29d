//! A plain TCP proxy: the baseline `msrp-bench` puts next to the relay.
//!
//! It forwards bytes between a client and one fixed destination, in a
//! process of its own, without looking at them: one thread, level-triggered
//! epoll, read(2)/write(2) of up to [`BUF`] bytes per direction (see
//! [`pump`]), the syscall pattern of the lean C proxy of issue 22, so that
//! the yardstick costs what a byte-blind hop must and no more. That is the cheapest possible "one more hop"
//! that copies every byte in and out of user space, as any MSRP relay must
//! (RFC 4975 has no length field: a relay has to read the body to find the
//! end-line). Comparing the relay with it separates the price of the extra
//! hop on this machine from the price of the relay's own work.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitCode, Stdio};

mod pump;
pub use pump::serve;

/// Bytes per read (the relay reads up to 256 KiB per call too).
pub const BUF: usize = 256 * 1024;

/// The argument that makes `msrp-bench` run as the proxy child.
pub const CHILD_ARG: &str = "--tcp-proxy-child";

/// A proxy child process (this executable run with [`CHILD_ARG`]); killed
/// when dropped.
pub struct ProxyChild {
    child: Child,
    addr: SocketAddr,
}

impl ProxyChild {
    /// Starts `exe CHILD_ARG BIND_IP DEST` and reads the port it listens on.
    pub fn start(
        exe: &std::path::Path,
        bind: std::net::IpAddr,
        dest: SocketAddr,
    ) -> Result<ProxyChild, String> {
        let mut child = Command::new(exe)
            .arg(CHILD_ARG)
            .arg(bind.to_string())
            .arg(dest.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start the TCP proxy ({}): {e}", exe.display()))?;
        let mut line = String::new();
        let mut out = child.stdout.take().ok_or("TCP proxy: no stdout")?;
        let mut byte = [0u8; 1];
        while !line.ends_with('\n') && line.len() < 64 {
            match out.read(&mut byte) {
                Ok(1) => line.push(char::from(byte[0])),
                _ => break,
            }
        }
        let addr = line
            .trim()
            .parse()
            .map_err(|_| format!("TCP proxy: expected its address, got {line:?}"));
        match addr {
            Ok(addr) => Ok(ProxyChild { child, addr }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Process id of the proxy.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ProxyChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When this process was started as the proxy child (first argument
/// [`CHILD_ARG`]), serves and returns its exit status; `None` otherwise.
/// `prog` names the executable in error messages.
pub fn child_mode(prog: &str) -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some(CHILD_ARG) {
        return None;
    }
    Some(match child_main(&args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prog} {CHILD_ARG}: {e}");
            ExitCode::FAILURE
        }
    })
}

/// Body of the child: `args` = [BIND_IP, DEST]. Prints the bound address on
/// stdout, then serves until killed.
pub fn child_main(args: &[String]) -> Result<(), String> {
    let [bind, dest] = args else {
        return Err(format!("usage: {CHILD_ARG} BIND_IP DEST_ADDR"));
    };
    // Die with the parent, however it ends (its interrupt path exits
    // without running destructors, so ProxyChild's Drop cannot be relied on).
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no
    // memory of ours.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: getppid(2) cannot fail and has no preconditions.
    if unsafe { libc::getppid() } == 1 {
        return Err("parent already gone".into());
    }
    let bind: std::net::IpAddr = bind.parse().map_err(|_| format!("bad IP {bind:?}"))?;
    let dest: SocketAddr = dest.parse().map_err(|_| format!("bad address {dest:?}"))?;
    let l = TcpListener::bind((bind, 0)).map_err(|e| format!("bind {bind}:0: {e}"))?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let mut so = io::stdout();
    writeln!(so, "{addr}")
        .and_then(|_| so.flush())
        .map_err(|e| e.to_string())?;
    serve(l, dest).map_err(|e| format!("TCP proxy: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Shutdown, TcpStream};

    /// Bytes go through unchanged both ways, and a close passes through.
    #[test]
    fn forwards_both_ways_and_closes() {
        let dest = TcpListener::bind("127.0.0.1:0").unwrap();
        let dest_addr = dest.local_addr().unwrap();
        let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        std::thread::spawn(move || serve(proxy, dest_addr));

        let data: Vec<u8> = (0..3 * BUF + 17).map(|i| (i * 7 % 251) as u8).collect();
        let mut a = TcpStream::connect(proxy_addr).unwrap();
        let (mut b, _) = dest.accept().unwrap();
        // a proxy that loses the close fails the test instead of hanging it
        let limit = Some(std::time::Duration::from_secs(10));
        a.set_read_timeout(limit).unwrap();
        b.set_read_timeout(limit).unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            a.write_all(&sent).unwrap();
            a.shutdown(Shutdown::Write).unwrap();
            let mut back = Vec::new();
            a.read_to_end(&mut back).unwrap();
            back
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes changed on the way");
        b.write_all(b"200 back").unwrap();
        drop(b);
        assert_eq!(writer.join().unwrap(), b"200 back");
    }
}
