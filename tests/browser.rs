//! Real-browser tests of `examples/web`: Debian's Chromium, headless,
//! driven over the DevTools protocol by `tests/browser/driver.mjs` (node),
//! loads the example page from a local HTTP server against
//!
//! * the shipped `cfg/kamailio-tls.cfg` (only ports and certificate paths
//!   changed) on `wss:`, trusting the relay's test certificate by its SPKI
//!   pin only: two pages AUTH with Digest, chat both ways, send a 5 MiB
//!   file in 64 KiB chunks and a 1 MiB file as one message (SHA-256 checked
//!   by the receiving page against the sender's), a message to a page that
//!   disconnected is shown with its REPORT, and a message over
//!   `ws_max_message_size` is closed with 1009;
//! * a relay with a plain `ws:` listener and `ws_allowed_origins` set to
//!   the page's origin: two pages AUTH and chat both ways; the same page
//!   served from another origin is refused with 403.
//!
//! Chromium or node missing is a failure, never a skip (`make deps`
//! installs both).

mod common;
#[allow(dead_code)] // wsutil's helpers for tests/ws.rs need it
#[path = "common/rawws.rs"]
mod rawws;
#[allow(dead_code)] // this test uses start_shipped_tls_cfg, stat, assert_logged
#[path = "common/wsutil.rs"]
mod wsutil;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use msrp_tools::tls::Certs;
use msrp_tools::Transport;

use common::*;
use wsutil::*;

/// `ws_max_message_size` of the shipped `cfg/kamailio-tls.cfg`.
const WS_MAX_MESSAGE: usize = 1_114_112;

/// The driver's whole run may take this long (it takes a few seconds).
const DRIVER_LIMIT: Duration = Duration::from_secs(120);

/// AUTH without a challenge (Digest is tested on `wss:`), then only
/// AUTHed sessions, as in the shipped configuration.
const WS_ROUTE: &str = r#"if (msrp_is_reply()) { msrp_relay(); exit; }
    if ($msrp(method) == "AUTH" && $msrp(nexthops) == 0) { msrp_cmap_save(); exit; }
    if (msrp_cmap_lookup()) { msrp_relay(); exit; }
    msrp_reply("403", "Forbidden");"#;

fn required(name: &str) -> PathBuf {
    msrp_tools::kamailio::find_exe(name).unwrap_or_else(|| {
        panic!("`{name}` not found in PATH: `make deps` installs Debian's chromium and nodejs")
    })
}

fn json_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn path_str(p: &Path) -> String {
    json_str(&p.to_string_lossy())
}

/// Runs the driver with `config` (JSON); its output, or a panic with it.
fn run_driver(config: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(required("node"))
        .arg(root.join("tests/browser/driver.mjs"))
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start node: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for node") {
            break Some(s);
        }
        if started.elapsed() > DRIVER_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    let _ = child.stdout.take().map(|mut o| o.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    let text = format!("{out}{err}");
    match status {
        Some(s) if s.success() => text,
        Some(s) => panic!("browser test failed ({s}):\n{text}"),
        None => panic!("browser test still running after {DRIVER_LIMIT:?}:\n{text}"),
    }
}

#[test]
fn example_page_in_chromium_over_wss_and_ws() {
    let chromium = required("chromium");
    let certs = Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"));
    let k = start_shipped_tls_cfg(&certs);
    let wss = k.transport_addr(Transport::Wss).expect("wss listener");
    let http_port = free_tcp_port();
    let w = Kamailio::start(
        RelayOpts::default()
            .route(WS_ROUTE)
            .listen_transport(Transport::Ws)
            .modparam_str(
                "ws_allowed_origins",
                &format!("http://127.0.0.1:{http_port}"),
            )
            .global(&kex()),
    );
    let ws = w.transport_addr(Transport::Ws).expect("ws listener");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = format!(
        "{{\"chromium\": {}, \"webDir\": {}, \"httpPort\": {http_port}, \"wssUrl\": \"wss://{wss}/\", \
         \"wsUrl\": \"ws://{ws}/\", \"cert\": {}, \"tmp\": {}, \"wsMaxMessage\": {WS_MAX_MESSAGE}}}",
        path_str(&chromium),
        path_str(&root.join("examples/web")),
        path_str(&certs.relay().cert_chain),
        path_str(&std::env::temp_dir()),
    );
    let out = run_driver(&config);
    eprintln!("{out}");
    // the relays saw it the same way
    let too_big = format!("WebSocket: message over {WS_MAX_MESSAGE} bytes");
    assert_logged(&k, "127.0.0.1:", &too_big);
    let origin = format!("WebSocket: Origin http://localhost:{http_port} not allowed");
    assert_logged(&w, "127.0.0.1:", &origin);
    assert_eq!(
        stat(&k, "tls_handshake_failures"),
        0,
        "TLS handshakes failed"
    );
}
