//! A fake DNS server on 127.0.0.1 (UDP) for the relay's `dns_server`: it
//! answers A queries by a table of names (RFC 1035 §4.1 wire format, just
//! enough for one question), can stay silent or answer late, and counts
//! the queries per name. Runs on its own thread until dropped.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the server does for a name.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    /// An A record with this TTL (seconds); for other types an empty
    /// NOERROR answer.
    A(Ipv4Addr, u32),
    /// The same, sent after this delay.
    Late(Ipv4Addr, u32, Duration),
    /// RCODE 3 (NXDOMAIN).
    NxDomain,
    /// No answer at all.
    Silent,
}

pub struct FakeDns {
    addr: SocketAddr,
    queries: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDns {
    /// Serves `zones` (names lower case, without the final dot); names not
    /// in it get NXDOMAIN.
    pub fn start(zones: &[(&str, Zone)]) -> FakeDns {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind fake DNS");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let zones: HashMap<String, Zone> = zones.iter().map(|(n, z)| (n.to_string(), *z)).collect();
        let queries = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || serve(sock, zones, q, s));
        FakeDns {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, for the `dns_server` modparam.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received for `name` (any type).
    pub fn queries(&self, name: &str) -> usize {
        self.queries.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    sock: UdpSocket,
    zones: HashMap<String, Zone>,
    queries: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
) {
    // late answers: (when, to, bytes)
    let mut late: Vec<(Instant, SocketAddr, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        late.retain(|(when, to, bytes)| {
            let due = *when <= now;
            if due {
                let _ = sock.send_to(bytes, to);
            }
            !due
        });
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Some((name, qtype, qend)) = question(&buf[..n]) else {
            continue;
        };
        *queries.lock().unwrap().entry(name.clone()).or_default() += 1;
        let query = &buf[..qend];
        match zones.get(&name).copied().unwrap_or(Zone::NxDomain) {
            Zone::Silent => {}
            Zone::NxDomain => {
                let _ = sock.send_to(&answer(query, 3, None), from);
            }
            Zone::A(ip, ttl) => {
                let rr = (qtype == 1).then_some((ip, ttl));
                let _ = sock.send_to(&answer(query, 0, rr), from);
            }
            Zone::Late(ip, ttl, after) => {
                let rr = (qtype == 1).then_some((ip, ttl));
                late.push((now + after, from, answer(query, 0, rr)));
            }
        }
    }
}

/// The question of a query: its name (lower case, no final dot), QTYPE,
/// and where the question ends.
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

/// A response to `query` (header and question) with `rcode` and at most
/// one A record.
fn answer(query: &[u8], rcode: u8, a: Option<(Ipv4Addr, u32)>) -> Vec<u8> {
    let mut r = query.to_vec();
    r[2] = 0x80 | (query[2] & 0x01); // QR, RD copied
    r[3] = 0x80 | rcode; // RA
    r[6..8].copy_from_slice(&u16::from(a.is_some()).to_be_bytes()); // ANCOUNT
    r[8..12].fill(0); // NSCOUNT, ARCOUNT
    if let Some((ip, ttl)) = a {
        r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]); // name -> question, A, IN
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&4u16.to_be_bytes());
        r.extend_from_slice(&ip.octets());
    }
    r
}
