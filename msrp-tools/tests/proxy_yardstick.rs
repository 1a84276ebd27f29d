//! The `proxy-yardstick` executable: bad usage (exit 2), a reference that
//! cannot start (exit 1, named), and a short real run against a reference
//! proxy with tcpproxy.c's command line (here a threaded Python copier, so
//! the repository depends on no C source outside it).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

fn yardstick(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proxy-yardstick"))
        .args(args)
        .output()
        .expect("run proxy-yardstick")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `LISTEN_PORT HOST PORT`: listens on 127.0.0.1, one connection to the
/// target per client, copies both ways, passes a close on.
const REFERENCE: &str = r#"#!/usr/bin/env python3
import socket, sys, threading
lp, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lp))
ls.listen(64)
def pipe(a, b):
    try:
        while True:
            d = a.recv(262144)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
while True:
    c, _ = ls.accept()
    t = socket.create_connection((host, port))
    for a, b in ((c, t), (t, c)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"#;

fn reference_script() -> PathBuf {
    let p = std::env::temp_dir().join(format!("yardstick-ref-{}.py", std::process::id()));
    std::fs::write(&p, REFERENCE).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn zero_rounds_is_bad_usage() {
    let out = yardstick(&["/bin/true", "--rounds", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--rounds and --sessions must be at least 1"));
}

#[test]
fn a_reference_that_does_not_start_is_named() {
    let out = yardstick(&["/nonexistent/tcpproxy", "--rounds", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("start /nonexistent/tcpproxy"));
}

#[test]
fn a_short_run_reports_both_proxies_every_round_and_the_ratios() {
    let script = reference_script();
    let out = yardstick(&[
        script.to_str().unwrap(),
        "--rounds",
        "2",
        "--secs",
        "1",
        "--sessions",
        "4",
        "--size-mib",
        "16",
    ]);
    let _ = std::fs::remove_file(&script);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    // The order alternates: msrp-bench's proxy first in round 0, second in 1.
    let pos = |s: &str| {
        stdout
            .find(s)
            .unwrap_or_else(|| panic!("no {s:?} in\n{stdout}"))
    };
    assert!(pos("round 0 msrp-bench") < pos("round 0 reference"));
    assert!(pos("round 1 reference") < pos("round 1 msrp-bench"));
    for line in ["CPU us per message", "CPU s per GiB", "MB/s  "] {
        pos(line);
    }
    // A 16 MiB transfer may count no CPU tick: no ratio then, never "inf".
    assert!(
        !stdout.contains("inf") && !stdout.contains("NaN"),
        "{stdout}"
    );
}
