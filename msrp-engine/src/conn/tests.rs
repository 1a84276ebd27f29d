//! The connection's phase replaces the flags connected/eof/closing: each
//! transition here is one the engine makes (wire.rs, output.rs, limits.rs,
//! authfail.rs), and the questions the engine asks give the answers the
//! flags gave.

use std::net::SocketAddr;
use std::time::Instant;

use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn cfg() -> crate::config::Config {
    crate::testing::config(Vec::new())
}

const TLS_PENDING: LayerView = LayerView {
    replies: 0,
    backlogged: true,
    confirmed: false,
    handshaking: true,
};

#[test]
fn accepted_plain_connections_are_open() {
    let c = ConnState::new(addr(1), addr(2), None, &cfg(), Instant::now());
    assert_eq!(c.phase, Phase::Open);
    assert!(c.is_connected() && c.established() && !c.eof() && !c.closing());
}

#[test]
fn dialled_tls_next_hops_dial_then_handshake_then_open() {
    let mut c = ConnState::new(addr(1), addr(2), Some(addr(1)), &cfg(), Instant::now())
        .layered(Kind::Tls, TLS_PENDING);
    assert_eq!(c.phase, Phase::Dialling);
    assert!(!c.is_connected() && !c.established());
    assert!(c.has_output(), "the ClientHello waits in the layer");
    c.connected();
    assert_eq!(c.phase, Phase::Handshaking);
    assert!(c.is_connected() && !c.established());
    c.layer_seen(LayerView {
        confirmed: true,
        ..TLS_PENDING
    });
    assert_eq!(c.phase, Phase::Open);
    assert!(c.established());
}

#[test]
fn a_connect_completing_twice_changes_nothing() {
    let mut c = ConnState::new(addr(1), addr(2), Some(addr(1)), &cfg(), Instant::now());
    c.connected();
    assert_eq!(c.phase, Phase::Open);
    c.close_after_flush();
    c.connected();
    assert_eq!(c.phase, Phase::Closing);
}

#[test]
fn eof_drains_then_flushes_and_is_remembered() {
    let mut c = ConnState::new(addr(1), addr(2), None, &cfg(), Instant::now());
    c.peer_closed();
    assert_eq!(c.phase, Phase::Draining { flushing: false });
    assert!(c.eof() && !c.closing());
    // half-close: the answers queued for the peer are written first
    c.close_after_flush();
    assert_eq!(c.phase, Phase::Draining { flushing: true });
    assert!(c.eof() && c.closing());
    c.peer_closed();
    assert!(c.eof() && c.closing());
}

#[test]
fn the_relay_closing_first_is_not_an_eof() {
    let mut c = ConnState::new(addr(1), addr(2), None, &cfg(), Instant::now())
        .layered(Kind::Ws, LayerView::NONE);
    c.close_after_flush();
    assert_eq!(c.phase, Phase::Closing);
    // (a WebSocket the relay closes lingers only when the peer did not close)
    assert!(c.closing() && !c.eof());
    c.peer_closed();
    assert!(c.closing() && c.eof());
}

#[test]
fn a_handshake_ended_by_eof_was_never_established() {
    let mut c = ConnState::new(addr(1), addr(2), None, &cfg(), Instant::now())
        .layered(Kind::Tls, TLS_PENDING);
    assert_eq!(c.phase, Phase::Handshaking);
    c.peer_closed();
    assert!(c.eof() && !c.established());
}

#[test]
fn layer_replies_count_against_the_peers_queue() {
    let mut c = ConnState::new(addr(1), addr(2), None, &cfg(), Instant::now());
    c.queue_own(
        Bytes::from_static(b"MSRP t 200 OK\r\n-------t$\r\n"),
        Instant::now(),
    );
    let own = c.own_queued();
    c.layer_seen(LayerView {
        replies: 10,
        backlogged: false,
        confirmed: true,
        handshaking: false,
    });
    assert_eq!(c.own_queued(), own + 10);
    assert_eq!(c.queued(), own + 10);
}
