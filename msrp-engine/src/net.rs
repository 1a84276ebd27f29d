//! Socket set-up for the relay's own sockets: listeners bound in mod_init
//! (before Kamailio forks and drops privileges) and per-connection options.
//! SO_RCVBUF/SO_SNDBUF are set on the listener so accepted connections
//! negotiate their TCP window with them (small windows = the flow control the
//! operator asked for).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use super::config::Config;

/// Binds a non-blocking listening socket with the configured buffer sizes.
pub fn listen(addr: SocketAddr, cfg: &Config) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if cfg.so_rcvbuf > 0 {
        s.set_recv_buffer_size(cfg.so_rcvbuf)?;
    }
    if cfg.so_sndbuf > 0 {
        s.set_send_buffer_size(cfg.so_sndbuf)?;
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// TCP keepalive of the relay's connections: first probe after 60 s of
/// silence, then every 10 s, 6 probes.
const KEEPALIVE: TcpKeepalive = TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(10))
    .with_retries(6);

/// Per-connection options: keepalive, no Nagle delay (MSRP frames are written whole or
/// streamed), and the configured buffer sizes.
pub fn tune(stream: &std::net::TcpStream, cfg: &Config) {
    let s = SockRef::from(stream);
    let _ = s.set_nodelay(true);
    // A peer that vanished without a FIN (host down, NAT state lost) is
    // found within about two minutes of silence, not hours.
    let _ = s.set_tcp_keepalive(&KEEPALIVE);
    if cfg.so_rcvbuf > 0 {
        let _ = s.set_recv_buffer_size(cfg.so_rcvbuf);
    }
    if cfg.so_sndbuf > 0 {
        let _ = s.set_send_buffer_size(cfg.so_sndbuf);
    }
}
