//! The shipped `cfg/kamailio-tls.cfg` run by the harness: as shipped, with
//! only what this machine needs changed (ports, the module's path, the ctl
//! socket) and the two per-node lines a deployment changes too
//! (`MSRP_NODE`, `CERTS_DIR`).

use std::net::IpAddr;

use msrp_tools::tls::Certs;
use msrp_tools::Transport;

use msrp_tools::kamailio::free_tcp_port_on;

use super::{kamailio_modules, module_so, Kamailio};

/// Replaces `from` by `to`, asserting it occurs exactly `count` times.
pub fn subst(text: &str, from: &str, to: &str, count: usize) -> String {
    assert_eq!(text.matches(from).count(), count, "{from:?} in the cfg");
    text.replace(from, to)
}

/// `cfg/kamailio-tls.cfg` as one node of several: its listeners on `node`
/// (`tls:` on the harness's first MSRP port, `wss:` on a free one) and
/// `Use-Path` naming `node`, the certificates of `certs` (the node's own
/// `relay.pem`/`relay.key` and the CA), or a panic with the log.
pub fn start_shipped_tls_node(certs: &Certs, node: IpAddr) -> Kamailio {
    start_shipped_tls_node_at(certs, node, free_tcp_port_on(node), &[])
}

/// [`start_shipped_tls_node`] with the `tls:` listener on `tls_port` and
/// `edits` (from, to: each must occur once) made to the cfg too.
pub fn start_shipped_tls_node_at(
    certs: &Certs,
    node: IpAddr,
    tls_port: u16,
    edits: &[(&str, String)],
) -> Kamailio {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/cfg/kamailio-tls.cfg"))
            .expect("read cfg/kamailio-tls.cfg");
    let dir = std::fs::canonicalize(certs.dir()).expect("certificate directory");
    let ports = vec![tls_port];
    let r = Kamailio::try_start_custom_at("msrp-relay-it", node, ports, &[Transport::Wss], |v| {
        let pairs = [
            (
                "listen=udp:127.0.0.1:5060".to_owned(),
                format!("listen=udp:127.0.0.1:{}", v.sip_port),
            ),
            (
                "mpath=\"/usr/lib/x86_64-linux-gnu/kamailio/modules/\"".to_owned(),
                format!("mpath=\"{}\"", kamailio_modules()),
            ),
            (
                "unix:/run/kamailio/kamailio_ctl".to_owned(),
                format!("unix:{}/kamailio_ctl", v.dir.display()),
            ),
            (
                "loadmodule \"msrp_relay.so\"".to_owned(),
                format!("loadmodule \"{}\"", module_so().display()),
            ),
            (
                "\"tls:MSRP_NODE:2856;".to_owned(),
                format!("\"tls:MSRP_NODE:{};", v.msrp_ports[0]),
            ),
            (
                "\"wss:MSRP_NODE:8443;".to_owned(),
                format!("\"wss:MSRP_NODE:{};", v.transport_ports[0].1),
            ),
            (
                "!MSRP_NODE!127.0.0.1!g".to_owned(),
                format!("!MSRP_NODE!{node}!g"),
            ),
            (
                "!CERTS_DIR!/etc/kamailio/msrp-certs!g".to_owned(),
                format!("!CERTS_DIR!{}!g", dir.display()),
            ),
        ];
        let mut cfg = shipped;
        for (from, to) in pairs {
            cfg = subst(&cfg, &from, &to, 1);
        }
        for (from, to) in edits {
            cfg = subst(&cfg, from, to, 1);
        }
        cfg
    });
    r.unwrap_or_else(|e| panic!("{e}"))
}
