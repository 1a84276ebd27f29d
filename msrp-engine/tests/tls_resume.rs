//! TLS session resumption on the relay's listeners (its own session cache,
//! `transport/tls/sessions.rs`): a client that comes back resumes, over
//! TLS 1.3 (tickets the relay keeps) and TLS 1.2 (session IDs), also after
//! more handshakes than the cache holds, and with a client certificate
//! (a larger session). Handshakes run in memory.

use std::sync::Arc;

use msrp_engine::config::{Listen, TlsSettings, VerifyClient};
use msrp_engine::transport::tls::TlsContext;
use msrp_engine::transport::Kind;
use msrp_tools::tls::{self, Certs, TlsVersions};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConnection};

fn context(c: &Certs, verify_client: VerifyClient) -> TlsContext {
    let s = TlsSettings {
        certificate: Some(c.relay().cert_chain),
        private_key: Some(c.relay().private_key),
        ca_list: Some(c.ca()),
        verify_client,
        ..TlsSettings::default()
    };
    let listen = Listen {
        kind: Kind::Tls,
        addr: "127.0.0.1:2856".parse().unwrap(),
        tls: Default::default(),
    };
    TlsContext::new(&s, &[listen]).expect("TLS context")
}

/// Moves records between the two until neither has any to send, and
/// returns how the client's handshake went.
fn handshake(ctx: &TlsContext, cfg: &Arc<ClientConfig>) -> HandshakeKind {
    let name = tls::server_name("127.0.0.1").unwrap();
    let mut client = ClientConnection::new(cfg.clone(), name).unwrap();
    let mut server: ServerConnection = ctx.accept(0).expect("server connection");
    while client.wants_write() || server.wants_write() {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        server.read_tls(&mut &buf[..]).unwrap();
        server.process_new_packets().expect("server side");
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        client.read_tls(&mut &buf[..]).unwrap();
        client.process_new_packets().expect("client side");
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    client.handshake_kind().expect("handshake done")
}

fn resumes(versions: TlsVersions) {
    let c = Certs::for_tests().expect("test certificates");
    let ctx = context(&c, VerifyClient::Off);
    let cfg = tls::client_config_with(&c.ca(), None, versions).unwrap();
    assert_eq!(handshake(&ctx, &cfg), HandshakeKind::Full);
    assert_eq!(handshake(&ctx, &cfg), HandshakeKind::Resumed);
    // 300 other clients (more than the 256 sessions kept) push the first
    // one's sessions out; a new session is kept again after that
    for _ in 0..300 {
        let other = tls::client_config_with(&c.ca(), None, versions).unwrap();
        assert_eq!(handshake(&ctx, &other), HandshakeKind::Full);
    }
    assert_eq!(handshake(&ctx, &cfg), HandshakeKind::Full, "evicted");
    assert_eq!(handshake(&ctx, &cfg), HandshakeKind::Resumed);
}

#[test]
fn tls13_client_resumes_with_a_ticket_the_relay_kept() {
    resumes(TlsVersions::Only13);
}

#[test]
fn tls12_client_resumes_its_session_id() {
    resumes(TlsVersions::Only12);
}

#[test]
fn client_with_a_certificate_resumes() {
    let c = Certs::for_tests().expect("test certificates");
    let ctx = context(&c, VerifyClient::Required);
    for versions in [TlsVersions::Only13, TlsVersions::Only12] {
        let cfg = tls::client_config_with(&c.ca(), Some(&c.client()), versions).unwrap();
        assert_eq!(handshake(&ctx, &cfg), HandshakeKind::Full);
        assert_eq!(handshake(&ctx, &cfg), HandshakeKind::Resumed);
    }
}
