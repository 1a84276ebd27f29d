//! Idle AUTHed sessions held open against a relay: the scale phase of
//! `msrp-bench --idle N`.
//!
//! One process may only have so many descriptors open (20,000 on the
//! development machine, `ulimit -Hn`), so the sessions are held by several
//! child processes (this executable run again with [`CHILD_ARG`]), each
//! opening its share from several 127.0.0.x source addresses: one source
//! address towards one relay port has only the ephemeral port range
//! (about 28,000 ports) to choose from.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::load::{auth, Conn, Dialer, Result};
use crate::tls::Certs;
use crate::Transport;

/// The argument that makes `msrp-bench` run as an idle-session holder.
pub const CHILD_ARG: &str = "--idle-child";

/// Threads of one child that open sessions side by side.
const OPENERS: usize = 4;

/// Bound on every connect, handshake and AUTH answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What one child opens.
#[derive(Debug, Clone)]
pub struct IdleSpec {
    pub relay: SocketAddr,
    /// The relay's URI on that listener (the AUTH's To-Path).
    pub relay_uri: String,
    pub transport: Transport,
    /// Certificates (`scripts/make-certs.sh` layout) for tls/wss.
    pub certs: Option<PathBuf>,
    pub count: usize,
    /// Source addresses, used in turn.
    pub sources: Vec<IpAddr>,
}

impl IdleSpec {
    fn args(&self) -> Vec<String> {
        let sources: Vec<String> = self.sources.iter().map(IpAddr::to_string).collect();
        vec![
            self.relay.to_string(),
            self.relay_uri.clone(),
            self.transport.name().to_owned(),
            self.count.to_string(),
            sources.join(","),
            self.certs
                .as_ref()
                .map_or("-".into(), |d| d.display().to_string()),
        ]
    }

    fn parse(a: &[String]) -> Result<IdleSpec> {
        let [relay, uri, t, count, sources, certs] = a else {
            return Err("expected RELAY URI TRANSPORT COUNT SOURCES CERTS".into());
        };
        let bad = |what: &str| format!("bad {what}");
        Ok(IdleSpec {
            relay: relay.parse().map_err(|_| bad("relay address"))?,
            relay_uri: uri.clone(),
            transport: t.parse()?,
            count: count.parse().map_err(|_| bad("count"))?,
            sources: sources
                .split(',')
                .map(|s| s.parse().map_err(|_| bad("source address")))
                .collect::<Result<_>>()?,
            certs: (certs != "-").then(|| PathBuf::from(certs)),
        })
    }
}

/// A TCP connection to `to` from `from` (any port).
fn connect_from(from: IpAddr, to: SocketAddr) -> Result<TcpStream> {
    let s = Socket::new(Domain::for_address(to), Type::STREAM, None)
        .map_err(|e| format!("socket: {e}"))?;
    s.bind(&SocketAddr::new(from, 0).into())
        .map_err(|e| format!("bind {from}: {e}"))?;
    s.connect_timeout(&to.into(), TIMEOUT)
        .map_err(|e| format!("connect {from} -> {to}: {e}"))?;
    Ok(s.into())
}

/// Session `i`: connected, AUTHed, parked. A relay worker at its
/// `max_connections` closes a new connection at once; the session then
/// tries again (up to [`ATTEMPTS`] times), as a client would reconnect.
fn open_one(spec: &IdleSpec, dialer: &Dialer, i: usize) -> Result<Conn> {
    let from = spec.sources[i % spec.sources.len()];
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let tcp = connect_from(from, spec.relay)?;
        let attempt = Conn::dial_over(tcp, spec.relay, dialer, Some(TIMEOUT))
            .and_then(|mut c| auth(&mut c, &spec.relay_uri).map(|_| c));
        match attempt {
            Ok(mut c) => {
                c.park();
                return Ok(c);
            }
            Err(e) => last = e,
        }
    }
    Err(format!("session {i}: {last} ({ATTEMPTS} attempts)"))
}

/// Tries per session (see [`open_one`]).
const ATTEMPTS: usize = 10;

/// Opens `spec.count` AUTHed sessions with [`OPENERS`] threads; each is
/// parked (its buffers given back) and held.
pub fn open(spec: &IdleSpec, dialer: &Dialer) -> Result<Vec<Conn>> {
    let per = spec.count.div_ceil(OPENERS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..OPENERS)
            .map(|t| {
                let range = (t * per)..((t + 1) * per).min(spec.count);
                s.spawn(move || {
                    range
                        .map(|i| open_one(spec, dialer, i))
                        .collect::<Result<Vec<Conn>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(spec.count);
        for h in handles {
            all.extend(h.join().map_err(|_| "an opener thread panicked")??);
        }
        Ok(all)
    })
}

/// The child: opens its sessions, prints `opened N`, holds them until a
/// line (or EOF) on stdin, closes them all and prints `closed`.
pub fn child_main(args: &[String]) -> Result<()> {
    let spec = IdleSpec::parse(args)?;
    let certs = match &spec.certs {
        Some(d) => Some(Certs::make(d).map_err(|e| e.to_string())?),
        None => None,
    };
    let dialer = Dialer::to_test_relay(spec.transport, certs.as_ref(), None)?;
    let conns = open(&spec, &dialer);
    let mut out = std::io::stdout();
    let conns = match conns {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "error {e}");
            return Err(e);
        }
    };
    writeln!(out, "opened {}", conns.len()).map_err(|e| e.to_string())?;
    let _ = out.flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(conns);
    let _ = writeln!(out, "closed");
    Ok(())
}

/// One child holding idle sessions.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// Child processes holding idle sessions; killed when dropped.
pub struct IdleChildren {
    holders: Vec<Holder>,
}

impl IdleChildren {
    /// Starts one child per spec (`exe CHILD_ARG ...`); they open their
    /// sessions side by side.
    pub fn start(exe: &Path, specs: &[IdleSpec]) -> Result<IdleChildren> {
        let mut holders = Vec::with_capacity(specs.len());
        for spec in specs {
            let mut child = Command::new(exe)
                .arg(CHILD_ARG)
                .args(spec.args())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("start an idle-session child ({}): {e}", exe.display()))?;
            let stdin = child.stdin.take();
            let stdout = BufReader::new(child.stdout.take().ok_or("idle child: no stdout")?);
            holders.push(Holder {
                child,
                stdin,
                stdout,
            });
        }
        Ok(IdleChildren { holders })
    }

    /// Waits until every child has opened its sessions: their number.
    pub fn wait_opened(&mut self) -> Result<usize> {
        let mut total = 0;
        for (i, h) in self.holders.iter_mut().enumerate() {
            let line = read_line(&mut h.stdout)?;
            match line.strip_prefix("opened ") {
                Some(n) => total += n.trim().parse::<usize>().map_err(|e| e.to_string())?,
                None => return Err(format!("idle child {i}: {}", line.trim())),
            }
        }
        Ok(total)
    }

    /// Tells every child to close its sessions and waits until it has.
    pub fn close(mut self) -> Result<Duration> {
        let t0 = Instant::now();
        for h in &mut self.holders {
            drop(h.stdin.take());
        }
        for (i, h) in self.holders.iter_mut().enumerate() {
            let line = read_line(&mut h.stdout)?;
            if line.trim() != "closed" {
                return Err(format!("idle child {i}: {}", line.trim()));
            }
            let _ = h.child.wait();
        }
        Ok(t0.elapsed())
    }
}

fn read_line(r: &mut impl BufRead) -> Result<String> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| format!("idle child: {e}"))?;
    if line.is_empty() {
        return Err("an idle child exited (see its stderr)".into());
    }
    Ok(line)
}

impl Drop for IdleChildren {
    fn drop(&mut self) {
        for h in &mut self.holders {
            let _ = h.child.kill();
            let _ = h.child.wait();
            let mut rest = Vec::new();
            let _ = h.stdout.read_to_end(&mut rest);
        }
    }
}

/// `count` sessions split over children of at most `per_child`, each
/// using every source address.
pub fn split(base: &IdleSpec, count: usize, per_child: usize) -> Vec<IdleSpec> {
    let children = count.div_ceil(per_child.max(1)).max(1);
    (0..children)
        .map(|i| IdleSpec {
            count: count / children + usize::from(i < count % children),
            ..base.clone()
        })
        .filter(|s| s.count > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_and_split() {
        let spec = IdleSpec {
            relay: "127.0.0.1:2855".parse().unwrap(),
            relay_uri: "msrp://127.0.0.1:2855/x;tcp".into(),
            transport: Transport::Tls,
            certs: Some("/tmp/c".into()),
            count: 10,
            sources: vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
        };
        let back = IdleSpec::parse(&spec.args()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{spec:?}"));
        let parts = split(&spec, 100_001, 15_000);
        assert_eq!(parts.len(), 7);
        assert_eq!(parts.iter().map(|s| s.count).sum::<usize>(), 100_001);
        assert!(parts.iter().all(|s| s.count <= 15_000));
        assert_eq!(split(&spec, 3, 15_000).len(), 1);
        assert!(IdleSpec::parse(&["x".into()]).is_err());
    }
}
