//! Certificates chosen by SNI server name (`tls_sni_cert`) against a real
//! Kamailio: a client asking for the configured name gets that
//! certificate, one asking for another name or for an IP address (no SNI)
//! gets `tls_certificate`; `msrp_relay.tls_reload` reads the SNI files
//! again and refuses a certificate that does not carry its name.

mod common;

use std::time::Duration;

use msrp_tools::tls::Certs;
use msrp_tools::Transport;

use common::tlsfiles::*;
use common::*;

fn certs() -> Certs {
    Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"))
}

/// The relay's default pair from the test set, and `endpoint.test` served
/// from `sni` (replaceable files).
fn relay(c: &Certs, sni: &Files) -> Kamailio {
    let sni_cert = format!(
        "endpoint.test={};key={}",
        sni.cert().display(),
        sni.key().display()
    );
    Kamailio::start(
        RelayOpts::default()
            .listen_transport(Transport::Tls)
            .tls_certs(c)
            .modparam_str("tls_sni_cert", &sni_cert),
    )
}

#[test]
fn certificate_chosen_by_server_name_and_reloaded() {
    let c = certs();
    let sni = Files::new(&c);
    sni.install(&c.endpoint());
    let k = relay(&c, &sni);
    let default_fp = file_fingerprint(&c.relay().cert_chain);
    let endpoint_fp = file_fingerprint(&c.endpoint().cert_chain);

    assert_eq!(
        tls_client_named(&k, &c.ca(), "endpoint.test").1,
        endpoint_fp
    );
    assert_eq!(
        tls_client_named(&k, &c.ca(), "ENDPOINT.test").1,
        endpoint_fp
    );
    assert_eq!(tls_client_named(&k, &c.ca(), "relay.test").1, default_fp);
    assert_eq!(tls_client_named(&k, &c.ca(), "localhost").1, default_fp);
    assert_eq!(tls_client(&k, &c).1, default_fp, "no SNI for an IP address");

    // a certificate without the name is refused, naming the file
    sni.install(&c.other());
    let err = match k.try_kamcmd(&["msrp_relay.tls_reload"]) {
        Ok(out) | Err(out) => out,
    };
    let prefix = format!(
        "error: 500 - tls_sni_cert {}: the certificate does not carry the name endpoint.test",
        sni.cert().display()
    );
    assert!(err.starts_with(&prefix), "{err}\n{}", k.log_tail(10));
    assert_eq!(
        tls_client_named(&k, &c.ca(), "endpoint.test").1,
        endpoint_fp
    );

    // a new endpoint.test certificate (from a new CA) is served after the
    // reload, the default one stays
    let dir = sni.cert().with_file_name("new-set");
    let fresh = Certs::make_new(&dir).unwrap_or_else(|e| panic!("new certificates: {e}"));
    sni.install(&fresh.endpoint());
    let out = k.kamcmd(&["msrp_relay.tls_reload"]);
    let fresh_fp = file_fingerprint(&fresh.endpoint().cert_chain);
    let sni_file = sni.cert().display().to_string();
    assert_eq!(
        rpc_field(&out, "tls_sni_cert endpoint.test"),
        Some(sni_file),
        "{out}"
    );
    assert!(
        k.wait_for_log(
            "TLS files read again (generation 1,",
            Duration::from_secs(5)
        ),
        "the worker did not reload\n{}",
        k.log_tail(20)
    );
    assert_eq!(
        tls_client_named(&k, &fresh.ca(), "endpoint.test").1,
        fresh_fp
    );
    assert_eq!(tls_client(&k, &c).1, default_fp);
}
