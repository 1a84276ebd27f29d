//! Bad module parameters stop Kamailio at start-up, with a log line that
//! names the parameter (the values are declared and checked in
//! msrp-engine/src/config.rs).

mod common;

use common::*;

/// Starts Kamailio with `opts`, expects it to exit during start-up with an
/// ERROR log line containing `needle`, and removes its kept directory.
fn start_fails(opts: RelayOpts, needle: &str) {
    let err = match Kamailio::try_start("msrp-relay-modparams", &module_so(), &opts) {
        Ok(k) => panic!(
            "kamailio started with bad modparams {:?}; log tail:\n{}",
            opts.modparams,
            k.log_tail(30)
        ),
        Err(e) => e,
    };
    assert!(
        err.contains("kamailio exited during start-up"),
        "kamailio did not stop at start-up: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("ERROR") && l.contains(needle)),
        "no ERROR line with {needle:?} in:\n{err}"
    );
    if let Some(dir) = err
        .rsplit_once("(kept ")
        .and_then(|(_, rest)| rest.strip_suffix(" for inspection)"))
    {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn zero_workers_stop_kamailio() {
    start_fails(
        RelayOpts::default().modparam_int("workers", 0),
        "invalid configuration: workers = 0 is out of range (1..=64)",
    );
}

#[test]
fn garbage_listen_stops_kamailio() {
    start_fails(
        RelayOpts::default().modparam_str("listen", "garbage:x"),
        "modparam listen: 'garbage:x' is not of the form PROTO:IP:PORT (PROTO tcp, tls, ws or wss)",
    );
}

/// A TLS listener without a certificate, and a certificate file that is
/// not there, each stop Kamailio with a line naming what is wrong.
#[test]
fn tls_without_usable_certificate_stops_kamailio() {
    let port = free_tcp_port();
    start_fails(
        RelayOpts::default().modparam_str("listen", &format!("tls:127.0.0.1:{port}")),
        &format!(
            "listen tls:127.0.0.1:{port}: a tls:/wss: listener needs tls_certificate and tls_private_key"
        ),
    );
    start_fails(
        RelayOpts::default()
            .modparam_str("tls_certificate", "/nonexistent/relay.pem")
            .modparam_str("tls_private_key", "/nonexistent/relay.key"),
        "tls_certificate /nonexistent/relay.pem: ",
    );
}

#[test]
fn inverted_watermarks_stop_kamailio() {
    start_fails(
        RelayOpts::default()
            .modparam_int("queue_high_watermark", 65536)
            .modparam_int("queue_low_watermark", 65536),
        "queue_low_watermark (65536) must be below queue_high_watermark (65536)",
    );
}

/// Every out-of-range value is reported at once, each naming its parameter.
#[test]
fn all_range_errors_reported_together() {
    start_fails(
        RelayOpts::default()
            .modparam_int("msrp_max_chunk_size", 100)
            .modparam_int("transaction_timeout", 0),
        "msrp_max_chunk_size = 100 is out of range (0 or 2048..=16777216); \
         transaction_timeout = 0 is out of range (1..=3600)",
    );
}

/// A parameter the module does not declare is refused by Kamailio itself
/// (the exported table holds the declared names only).
#[test]
fn unknown_parameter_stops_kamailio() {
    start_fails(
        RelayOpts::default().modparam_int("worker", 2),
        "parameter <worker> of type <2:int> not found in module <msrp_relay>",
    );
}

/// Every declared parameter is exported with the type its setter expects:
/// Kamailio starts with each of them set (ints at their default).
#[test]
fn every_declared_parameter_is_accepted() {
    use msrp_engine::config::{ParamKind, PARAMS};
    let certs = msrp_tools::tls::Certs::for_tests().expect("test certificates");
    let file = |name: &str| certs.dir().join(name).display().to_string();
    let mut opts = RelayOpts::default();
    for d in PARAMS {
        opts = match (d.name, d.kind) {
            (_, ParamKind::Int(spec)) => opts.modparam_int(d.name, spec.default),
            (_, ParamKind::Accepted) => opts.modparam_int(d.name, 1),
            // the harness sets one listen already; a second one:
            ("listen", _) => {
                opts.listen_ports = 2;
                opts
            }
            ("alias", _) => opts.modparam_str(d.name, "relay.example.net"),
            ("use_path_addr", _) => opts.modparam_str(d.name, "relay.example.net:2855"),
            // empty: frames keep going to the event route
            ("event_callback", _) => opts.modparam_str(d.name, ""),
            ("tls_certificate", _) => opts.modparam_str(d.name, &file("relay.pem")),
            ("tls_private_key", _) => opts.modparam_str(d.name, &file("relay.key")),
            ("tls_ca_list", _) => opts.modparam_str(d.name, &file("ca.pem")),
            ("tls_verify_client", _) => opts.modparam_str(d.name, "optional"),
            ("tls_min_version", _) => opts.modparam_str(d.name, "1.2"),
            ("tls_sni_cert", _) => opts.modparam_str(
                d.name,
                &format!(
                    "endpoint.test={};key={}",
                    file("endpoint.pem"),
                    file("endpoint.key")
                ),
            ),
            ("ws_allowed_origins", _) => opts.modparam_str(d.name, "https://chat.example.com"),
            ("dns_server", _) => opts.modparam_str(d.name, "127.0.0.1:53"),
            (name, kind) => panic!("no test value for {name} ({kind:?})"),
        };
    }
    let k = Kamailio::start(opts);
    assert!(
        k.wait_for_log("msrp_relay ready: 2 listener(s)", T),
        "not ready with every parameter set:\n{}",
        k.log_tail(30)
    );
    let log = k.log();
    assert!(
        !log.contains("ERROR"),
        "errors with every parameter set:\n{}",
        k.log_tail(30)
    );
    // both listeners answer
    for addr in k.relay_addrs() {
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    }
}

/// A listener's own `ca_list=` is read in mod_init like `tls_ca_list`: a
/// missing file stops Kamailio with a line naming the option and the file;
/// an option on a plain listener too.
#[test]
fn listener_tls_options_are_checked_at_start_up() {
    let certs = msrp_tools::tls::Certs::for_tests().expect("test certificates");
    let port = free_tcp_port();
    start_fails(
        RelayOpts::default().tls_certs(&certs).modparam_str(
            "listen",
            &format!("tls:127.0.0.1:{port};verify_client=required;ca_list=/nonexistent/ca.pem"),
        ),
        "listen ca_list /nonexistent/ca.pem: ",
    );
    start_fails(
        RelayOpts::default()
            .modparam_str("listen", &format!("ws:127.0.0.1:{port};verify_client=off")),
        &format!("listen ws:127.0.0.1:{port};verify_client=off: verify_client=, ca_list= and min_version= are for tls:/wss: listeners"),
    );
}
