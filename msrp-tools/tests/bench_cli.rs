//! The `msrp-bench` executable as the Makefile and README use it: --help,
//! bad usage (exit 2), the TCP proxy child mode, and one tiny benchmark
//! run against a real Kamailio (exit 0 and every summary section), and
//! tiny `--idle` scale runs (plain and TLS).

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msrp-bench"))
        .args(args)
        .output()
        .expect("run msrp-bench")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_lists_every_option_with_its_doc() {
    let out = bench(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for opt in [
        "--spawn-relay",
        "--module <PATH>",
        "--max-chunk <N>",
        "--workers <N>",
        "--use-path",
        "--modparam <NAME=VALUE>",
        "--transport <T>",
        "--certs <DIR>",
        "--ws-origin <ORIGIN>",
        "--relay <HOST:PORT>",
        "--bind <IP>",
        "--size <SIZE>",
        "--small-size <SIZE>",
        "--runs <N>",
        "--sessions <N>",
        "--endpoints <N>",
        "--msg-size <SIZE>",
        "--duration <SECS>",
        "--quick",
        "--idle <N>",
        "--idle-per-client <N>",
        "--idle-sources <N>",
        "soak",
        "Exit status: 0 when",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}:\n{help}");
    }
    assert!(help.contains("[default: 256M; --quick 32M]"), "{help}");
    let soak = bench(&["soak", "--help"]);
    assert_eq!(soak.status.code(), Some(0));
    let soak = text(&soak.stdout);
    assert!(soak.contains("--duration <SECONDS>") && soak.contains("[default: 3600]"));
}

#[test]
fn bad_usage_exits_2_with_the_reason() {
    for (args, reason) in [
        (
            &[][..],
            "give exactly one of --spawn-relay and --relay HOST:PORT",
        ),
        (
            &["--relay", "127.0.0.1:1", "--workers", "2"],
            "need --spawn-relay",
        ),
        (&["--spawn-relay", "--runs", "0"], "must be at least 1"),
        (&["--spawn-relay", "--size", "12Q"], "bad size"),
        (
            &["--spawn-relay", "--transport", "udp"],
            "unknown transport",
        ),
        (&["--spawn-relay", "--bogus"], "--bogus"),
        (&["soak", "--duration", "x"], "--duration"),
        (&["--spawn-relay", "soak"], "soak"),
    ] {
        let out = bench(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(reason), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn the_tcp_proxy_child_mode_comes_before_option_parsing() {
    let out = bench(&[msrp_tools::tcpproxy::CHILD_ARG]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("usage: --tcp-proxy-child BIND_IP DEST_ADDR"));
}

/// A real (tiny) run: relay, TCP proxy and direct paths, memory figures;
/// every byte and message verified by the tool itself.
#[test]
fn a_tiny_run_against_a_spawned_relay_prints_every_section() {
    let so = msrp_tools::kamailio::find_module_so().expect("the module (MSRP_RELAY_SO)");
    let so = so.to_str().expect("module path");
    let out = bench(&[
        "--spawn-relay",
        "--module",
        so,
        "--quick",
        "--size",
        "2M",
        "--small-size",
        "512K",
        "--runs",
        "1",
        "--sessions",
        "2",
        "--endpoints",
        "2",
        "--duration",
        "0.3",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in [
        "quick run (small sizes and durations)",
        "relay: spawned kamailio",
        "B endpoints: 2 on 127.0.0.1",
        "relay 512 KiB (memory): 512 KiB in",
        "relay  run 1/1: 2 MiB in",
        "proxy  run 1/1: 2 MiB in",
        "direct run 1/1: 2 MiB in",
        "relay  1 KiB x 2 sessions: ",
        "==== msrp-bench summary ====",
        "throughput, one 2 MiB single-chunk SEND, median of 1",
        "message rate, 1 KiB SEND + 200 round trips, 2 sessions over 2 B endpoints, 0.3 s:",
        "relay memory (MSRP worker VmHWM",
        "  target flat: 2 MiB growth",
        "data:     every body byte verified at B",
        "relay log: no warnings or errors",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
}

/// `--idle`: idle AUTHed sessions held by two child processes from two
/// source addresses, over `transport`; the summary has every figure.
fn tiny_idle_run(transport: &str, idle: &str) -> String {
    let so = msrp_tools::kamailio::find_module_so().expect("the module (MSRP_RELAY_SO)");
    let so = so.to_str().expect("module path");
    let out = bench(&[
        "--spawn-relay",
        "--module",
        so,
        "--workers",
        "2",
        "--transport",
        transport,
        "--idle",
        idle,
        "--idle-per-client",
        "100",
        "--idle-sources",
        "2",
        "--sessions",
        "2",
        "--duration",
        "0.3",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in [
        format!("opened {idle} in "),
        format!("scale:    {idle} idle AUTHed sessions over {transport} held by 2 client processes from 2 source addresses, 2 active pairs"),
        "KiB per idle session (target <= ".into(),
        "workers' RSS after they closed: ".into(),
        "active pairs' round trip p99: ".into(),
        "relay log: no warnings or errors".into(),
    ] {
        assert!(stdout.contains(&line), "no {line:?} in:\n{stdout}");
    }
    stdout
}

#[test]
fn a_tiny_idle_run_holds_plain_sessions_from_several_processes() {
    let out = tiny_idle_run("tcp", "200");
    assert!(out.contains("2 pairs, 200 idle sessions: "), "{out}");
}

#[test]
fn a_tiny_idle_run_holds_tls_sessions() {
    tiny_idle_run("tls", "150");
}

#[test]
fn the_idle_child_mode_names_bad_arguments() {
    let out = bench(&[msrp_tools::idle::CHILD_ARG, "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("expected RELAY URI TRANSPORT COUNT SOURCES CERTS"));
}
