//! CPU of the relay's read side per GiB of MSRP bytes over `tls:` and
//! `wss:`, without Kamailio and without the load client on the same
//! thread: a writer thread (a rustls client, 256 KiB WebSocket messages
//! masked as a browser does) sends over loopback TCP; the measured thread
//! runs `Layer::read` (recv, decrypt, decode) as a worker does and drops
//! what it gets. Its CPU comes from /proc/thread-self/stat (10 ms ticks:
//! run a few GiB). Compare builds in the same minutes:
//!
//! `cargo run --release -p msrp-engine --example layer_cost -- 2048`
//! (MiB per transport, default 1024).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use msrp_engine::io::ReadPool;
use msrp_engine::kind::Kind;
use msrp_engine::stream::Stream;
use msrp_engine::transport::{ws, Got, Layer, WsPolicy};
use msrp_tools::tls::{self, Certs, ClientAuth};

const MESSAGE: usize = 256 * 1024;

/// This thread's user + system CPU seconds.
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Sends `total` bytes from `a` as `kind` (tls or wss) through `client`.
fn write_side(mut client: rustls::ClientConnection, mut a: TcpStream, kind: Kind, total: usize) {
    let body: Vec<u8> = (0..MESSAGE).map(|i| (i % 251) as u8).collect();
    let mut w = ws::MessageWriter::new(ws::Role::Client);
    let mut frame = Vec::with_capacity(MESSAGE + 14);
    let mut sent = 0;
    while sent < total {
        let data = match kind.ws() {
            true => {
                frame.clear();
                w.piece_masked(&body, true, &mut frame);
                &frame[..]
            }
            false => &body[..],
        };
        client.writer().write_all(data).unwrap();
        while client.wants_write() {
            client.write_tls(&mut a).unwrap();
        }
        sent += MESSAGE;
    }
}

/// Opens a `kind` connection, streams `mib` MiB through it and returns the
/// reading thread's CPU seconds.
fn run(certs: &Certs, kind: Kind, mib: usize) -> f64 {
    let server_cfg = tls::server_config(&certs.relay(), ClientAuth::None).unwrap();
    let client_cfg: Arc<rustls::ClientConfig> = tls::client_config(&certs.ca(), None).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let b = l.accept().unwrap().0;
    let server = rustls::ServerConnection::new(server_cfg).unwrap();
    let policy = WsPolicy {
        origins: &[],
        max_message: 0,
    };
    let mut layer = Layer::accepted(kind, Some(server), policy).unwrap();
    let name = tls::server_name("127.0.0.1").unwrap();
    let mut client = rustls::ClientConnection::new(client_cfg, name).unwrap();
    client.set_buffer_limit(None);
    if kind.ws() {
        let key = ws::client_key();
        client
            .writer()
            .write_all(&ws::client_request("127.0.0.1", "/", &key))
            .unwrap();
    }
    let stream = Stream::Tcp(b);
    let (mut pool, mut rbuf) = (ReadPool::default(), BytesMut::new());
    // handshake (and upgrade) in lock step, blocking reads on both sides
    while client.is_handshaking() || !layer.ready() {
        while client.wants_write() {
            client.write_tls(&mut a).unwrap();
        }
        layer.read(&stream, &mut pool, &mut rbuf, 1 << 18).unwrap();
        layer.flush(&stream).unwrap();
        if client.is_handshaking() || !layer.ready() {
            client.read_tls(&mut a).unwrap();
            client.process_new_packets().unwrap();
        }
    }
    // the upgrade's answer and session tickets: read and dropped by a
    // thread of their own, so the socket never fills that way
    let mut back = a.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        while back.read(&mut sink).is_ok_and(|n| n > 0) {}
    });
    let total = mib << 20;
    let writer = std::thread::spawn(move || write_side(client, a, kind, total));
    let (cpu0, t0) = (thread_cpu(), Instant::now());
    let mut got = 0;
    while got < total {
        match layer.read(&stream, &mut pool, &mut rbuf, 1 << 18).unwrap() {
            Got::Data(_) => {
                got += rbuf.len();
                drop(rbuf.split());
            }
            Got::WouldBlock => {}
            Got::Eof => panic!("eof after {got} bytes"),
        }
    }
    let cpu = thread_cpu() - cpu0;
    writer.join().unwrap();
    eprintln!(
        "{}: {mib} MiB in {:.2} s, reader CPU {cpu:.2} s = {:.3} s/GiB",
        kind.name(),
        t0.elapsed().as_secs_f64(),
        cpu / (mib as f64 / 1024.0)
    );
    cpu / (mib as f64 / 1024.0)
}

fn main() {
    let mib = std::env::args()
        .nth(1)
        .map_or(1024, |s| s.parse().expect("MiB"));
    let certs = Certs::for_tests().expect("test certificates");
    let (mut tls_s, mut wss_s) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        tls_s.push(run(&certs, Kind::Tls, mib));
        wss_s.push(run(&certs, Kind::Wss, mib));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (t, w) = (median(&mut tls_s), median(&mut wss_s));
    println!(
        "reader CPU per GiB, medians of 3: tls {t:.3} s, wss {w:.3} s, wss/tls {:.2}",
        w / t
    );
}
