//! Drop-in compatibility with Kamailio's stock `msrp` module: the two
//! example configs of the stock module's README (Example 1.17, htable-based
//! connection tracking; Example 1.18, `msrp_cmap_*`), run as they are
//! printed there with only the module name and the environment adapted;
//! AUTH with HTTP Digest through the auth module (RFC 4976 §5), Use-Path /
//! Expires / 423 (RFC 4976 §6.3), SENDs between two AUTHed clients both
//! ways (RFC 4976 §6.4, §7.1), 481 for unknown sessions, cmap entries dying
//! with their connection, `msrp_set_dst()`, and every `$msrp(...)` key
//! against the stock semantics (`msrp_vars.c`).
//!
//! The stock configs are read from the stock module's README in the Kamailio
//! source tree the module is built against (`$KAMAILIO_SRC`, else
//! `kamailio-headers/src`, see kamailio-headers/fetch.sh); every adaptation
//! is a literal substitution that must match exactly as often as expected.

mod common;
#[path = "common/digest.rs"]
mod digest;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use common::*;

/// User, realm and password of the stock examples (`$var(passwd) =
/// "xyz123"`, `pv_www_authenticate("myrealm", ...)`; any user name), and
/// the user the shipped auth cfg's database gets.
const USER: &str = "alice";
const REALM: &str = "myrealm";
const PASSWD: &str = "xyz123";

/// How long a peer waits to be sure nothing (more) arrives.
const QUIET: Duration = Duration::from_millis(400);

// ------------------------------------------------------------ stock configs

/// Which stock example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Example {
    /// "Example 1.17. Event Route (using htable for MSRP connection tracking)"
    Htable,
    /// "Example 1.18. Event Route (using msrp_cmap_ functions for connection
    /// tracking)"
    Cmap,
}

fn stock_readme_path() -> PathBuf {
    let src = std::env::var_os("KAMAILIO_SRC").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kamailio-headers/src"),
        PathBuf::from,
    );
    src.join("src/modules/msrp/README")
}

/// The config text of a stock example, verbatim from the stock README (the
/// lines between the `...` markers after the example's title).
fn stock_example(ex: Example) -> String {
    let path = stock_readme_path();
    let readme = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the stock msrp README {}: {e} (run kamailio-headers/fetch.sh or set KAMAILIO_SRC)",
            path.display()
        )
    });
    let title = match ex {
        Example::Htable => "Example 1.17. Event Route",
        Example::Cmap => "Example 1.18. Event Route",
    };
    let at = readme
        .find(title)
        .unwrap_or_else(|| panic!("{title:?} not found in {}", path.display()));
    let rest = &readme[at..];
    let start = rest.find("\n...\n").expect("opening ... of the example") + 5;
    let len = rest[start..]
        .find("\n...\n")
        .expect("closing ... of the example");
    let text = rest[start..start + len + 1].to_owned();
    assert!(text.trim_start().starts_with("#!KAMAILIO"), "{text}");
    assert!(text.contains("event_route[msrp:frame-in]"), "{text}");
    text
}

/// Replaces `from` by `to`, asserting it occurs exactly `count` times.
fn subst(text: &str, from: &str, to: &str, count: usize) -> String {
    let n = text.matches(from).count();
    assert_eq!(n, count, "{from:?} occurs {n} times in the stock config");
    text.replace(from, to)
}

/// The stock example adapted to this environment, and nothing else:
/// - `msrp.so` -> this module (absolute path), `modparam("msrp", ...)` ->
///   `modparam("msrp_relay", ...)`;
/// - Kamailio's own `listen=127.0.0.1:5060` -> a free UDP port; the MSRP
///   listener is this module's `listen` modparam on a free TCP port, and
///   the address `msrp://127.0.0.1:5060` the examples hand out in Use-Path
///   (cmap: `use_path_addr`; htable: the Use-Path literal) names that port;
/// - `mpath` -> Debian's module directory; `mi_fifo.so` (gone in 5.x) and its
///   modparam dropped; the ctl socket in the instance's directory.
fn adapted_example(ex: Example, v: &CfgVars) -> String {
    let so = module_so();
    let msrp_port = v.msrp_ports[0];
    let mut cfg = stock_example(ex);
    cfg = subst(
        &cfg,
        "listen=127.0.0.1:5060\n",
        &format!("listen=udp:127.0.0.1:{}\n", v.sip_port),
        1,
    );
    cfg = subst(
        &cfg,
        "mpath=\"modules_k/:modules/\"\n",
        &format!("mpath=\"{}\"\n", kamailio_modules()),
        1,
    );
    cfg = subst(&cfg, "loadmodule \"mi_fifo.so\"\n", "", 1);
    cfg = subst(
        &cfg,
        "modparam(\"mi_fifo\", \"fifo_name\", \"/tmp/kamailio_fifo\")\n",
        "",
        1,
    );
    cfg = subst(
        &cfg,
        "loadmodule \"ctl.so\"\n",
        &format!(
            "loadmodule \"ctl.so\"\nmodparam(\"ctl\", \"binrpc\", \"unix:{}/kamailio_ctl\")\n",
            v.dir.display()
        ),
        1,
    );
    cfg = subst(
        &cfg,
        "loadmodule \"msrp.so\"\n",
        &format!(
            "loadmodule \"{}\"\nmodparam(\"msrp_relay\", \"listen\", \"tcp:127.0.0.1:{msrp_port}\")\n",
            so.display()
        ),
        1,
    );
    let modparams = match ex {
        Example::Htable => 0,
        Example::Cmap => 2,
    };
    cfg = subst(
        &cfg,
        "modparam(\"msrp\", ",
        "modparam(\"msrp_relay\", ",
        modparams,
    );
    cfg = subst(
        &cfg,
        "msrp://127.0.0.1:5060",
        &format!("msrp://127.0.0.1:{msrp_port}"),
        1,
    );
    cfg
}

fn start_example(ex: Example) -> Kamailio {
    for m in [
        "sl", "kex", "ctl", "pv", "auth", "cfgutils", "htable", "xlog",
    ] {
        let p = PathBuf::from(kamailio_modules()).join(format!("{m}.so"));
        assert!(
            p.is_file(),
            "{} missing: the stock examples need Debian's kamailio package (auth, htable, cfgutils, kex)",
            p.display()
        );
    }
    Kamailio::start_custom(1, |v| adapted_example(ex, v))
}

// ------------------------------------------------------------ AUTH helpers

/// An AUTH to the relay (To-Path: the relay URI only).
fn auth_request(relay: &str, client: &str, hdrs: &[(&str, String)]) -> Request {
    let mut r = Request::new("AUTH", &[relay], &[client]);
    for (n, v) in hdrs {
        r.headers.push(((*n).to_owned(), v.clone()));
    }
    r
}

/// Sends `req` and reads its response, checking transaction id and the
/// response paths of a non-SEND request (RFC 4975 §7.2: To-Path = the
/// request's From-Path, From-Path = the responder's URI).
fn transact(k: &Kamailio, peer: &mut Peer, req: &Request) -> ReceivedFrame {
    peer.send_request(req)
        .unwrap_or_else(|e| panic!("send {}: {e}", req.method));
    let resp = peer.read_response(T, &[]).unwrap_or_else(|e| {
        panic!(
            "no response to {} {}: {e}\nlog tail:\n{}",
            req.method,
            req.tid,
            k.log_tail(40)
        )
    });
    assert_eq!(resp.tid(), req.tid, "{}", resp.summary());
    assert_eq!(resp.to_path(), req.from_path, "{}", resp.summary());
    assert_eq!(
        resp.from_path(),
        vec![req.to_path[0].clone()],
        "{}",
        resp.summary()
    );
    resp
}

/// AUTH without credentials: must get 401 with a Digest challenge for
/// "myrealm" offering qop=auth. Returns the challenge parameters.
fn challenge(
    k: &Kamailio,
    c: &mut Client,
    relay: &str,
    expires: Option<u64>,
) -> HashMap<String, String> {
    let mut hdrs = Vec::new();
    if let Some(e) = expires {
        hdrs.push(("Expires", e.to_string()));
    }
    let req = auth_request(relay, &c.uri, &hdrs);
    let resp = transact(k, &mut c.peer, &req);
    assert_eq!(resp.status_code(), Some(401), "{}", resp.summary());
    let wa = resp
        .header("WWW-Authenticate")
        .unwrap_or_else(|| panic!("401 without WWW-Authenticate: {}", resp.summary()));
    let chal = digest::params(&wa);
    assert_eq!(chal.get("realm").map(String::as_str), Some(REALM), "{wa}");
    assert!(chal.get("nonce").is_some_and(|n| !n.is_empty()), "{wa}");
    assert!(
        chal.get("qop")
            .is_some_and(|q| q.split(',').any(|x| x.trim() == "auth")),
        "{wa}"
    );
    chal
}

/// The full RFC 4976 §5 exchange: AUTH, 401, AUTH with Authorization
/// (password `pass`, optional Expires). Returns the final response.
fn auth_with(
    k: &Kamailio,
    c: &mut Client,
    relay: &str,
    pass: &str,
    expires: Option<u64>,
) -> ReceivedFrame {
    auth_as(k, c, relay, USER, pass, expires)
}

/// [`auth_with`] as `user`.
fn auth_as(
    k: &Kamailio,
    c: &mut Client,
    relay: &str,
    user: &str,
    pass: &str,
    expires: Option<u64>,
) -> ReceivedFrame {
    let chal = challenge(k, c, relay, expires);
    let mut hdrs = vec![(
        "Authorization",
        digest::authorization(&chal, user, pass, relay, 1),
    )];
    if let Some(e) = expires {
        hdrs.push(("Expires", e.to_string()));
    }
    let req = auth_request(relay, &c.uri, &hdrs);
    transact(k, &mut c.peer, &req)
}

/// A client AUTHed at the relay.
struct Authed {
    c: Client,
    use_path: String,
}

/// AUTHs `c` successfully; checks the 200's Use-Path and Expires.
fn authed(k: &Kamailio, mut c: Client, expires: Option<u64>, want_expires: u64) -> Authed {
    let relay = relay_auth_uri(k);
    let resp = auth_with(k, &mut c, &relay, PASSWD, expires);
    assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
    let use_path = resp
        .header("Use-Path")
        .unwrap_or_else(|| panic!("200 to AUTH without Use-Path: {}", resp.summary()))
        .trim()
        .to_owned();
    let prefix = format!("msrp://127.0.0.1:{}/", k.relay_addr().port());
    let session = use_path
        .strip_prefix(&prefix)
        .and_then(|s| s.strip_suffix(";tcp"))
        .unwrap_or_else(|| panic!("Use-Path {use_path:?} is not {prefix}<session>;tcp"));
    assert!(
        !session.is_empty() && !session.contains(['/', ';', ' ']),
        "Use-Path session {session:?}"
    );
    assert_eq!(
        resp.header("Expires").map(|e| e.trim().to_owned()),
        Some(want_expires.to_string()),
        "{}",
        resp.summary()
    );
    Authed { c, use_path }
}

/// The URI a client sends its AUTH to (RFC 4976 §5: no session part).
fn relay_auth_uri(k: &Kamailio) -> String {
    format!("msrp://127.0.0.1:{};tcp", k.relay_addr().port())
}

/// `msrp://127.0.0.1:PORT` of a client (`$msrp(srcaddr)` of its frames).
fn addr_uri(p: &Peer) -> String {
    format!("msrp://{}", p.local_addr())
}

// ------------------------------------------------------------ SEND helpers

/// `from` sends a SEND to `to` through `to`'s Use-Path (To-Path: <to's
/// Use-Path> <to's URI>, From-Path: <from's URI>, RFC 4976 §6.4 with the
/// sender using no relay of its own). `to` must receive it on its AUTHed
/// connection with To-Path <to's URI> and From-Path <Use-Path> <from's URI>,
/// answer 200 hop by hop, and `from` must get exactly one 200.
fn send_via_use_path(k: &Kamailio, from: &mut Authed, to: &mut Authed, body: &[u8]) {
    let req = Request::send(&[&to.use_path, &to.c.uri], &[&from.c.uri], body);
    from.c.peer.send_request(&req).expect("send SEND");
    let got = to.c.peer.read_frame(T).unwrap_or_else(|e| {
        panic!(
            "SEND via Use-Path {} did not reach its client: {e}\nlog tail:\n{}",
            to.use_path,
            k.log_tail(40)
        )
    });
    assert_eq!(got.method().as_deref(), Some("SEND"), "{}", got.summary());
    assert_ne!(got.tid(), req.tid, "relay must use a new transaction id");
    assert_eq!(got.to_path(), vec![to.c.uri.clone()], "{}", got.summary());
    assert_eq!(
        got.from_path(),
        vec![to.use_path.clone(), from.c.uri.clone()],
        "{}",
        got.summary()
    );
    assert_eq!(
        got.header("Message-ID").as_deref(),
        req.header("Message-ID"),
        "{}",
        got.summary()
    );
    assert_eq!(got.body, body);
    assert_eq!(got.flag, EndFlag::Complete);
    to.c.peer
        .send_hop_response(&got, 200, Some("OK"))
        .expect("answer 200");
    let resp = from
        .c
        .peer
        .read_response(T, &[])
        .unwrap_or_else(|e| panic!("no 200 to the SEND: {e}\nlog tail:\n{}", k.log_tail(40)));
    assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
    assert_eq!(resp.tid(), req.tid, "{}", resp.summary());
    assert_eq!(
        resp.to_path(),
        vec![from.c.uri.clone()],
        "{}",
        resp.summary()
    );
    assert_eq!(
        resp.from_path(),
        vec![to.use_path.clone()],
        "{}",
        resp.summary()
    );
    from.c
        .peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("sender got more than one response: {e}"));
    to.c.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("receiver got more than the SEND: {e}"));
}

/// A SEND whose first To-Path URI is `first` must get 481 (and reach
/// nobody: `others` get nothing).
fn send_gets_481(
    k: &Kamailio,
    from: &mut Client,
    first: &str,
    last: &str,
    others: &mut [&mut Peer],
) {
    let req = Request::send(&[first, last], &[&from.uri], b"to nowhere");
    from.peer.send_request(&req).expect("send SEND");
    let resp = from
        .peer
        .read_response(T, &[])
        .unwrap_or_else(|e| panic!("no response: {e}\nlog tail:\n{}", k.log_tail(40)));
    assert_eq!(resp.status_code(), Some(481), "{}", resp.summary());
    assert_eq!(resp.tid(), req.tid, "{}", resp.summary());
    assert_eq!(resp.to_path(), vec![from.uri.clone()], "{}", resp.summary());
    from.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("more than the 481: {e}"));
    for p in others {
        p.expect_nothing(Duration::from_millis(100))
            .unwrap_or_else(|e| panic!("a SEND to an unknown session reached a client: {e}"));
    }
}

/// Starts a stock example and AUTHs two clients: A without Expires (gets
/// the maximum, 3600), B with Expires 1800 for the cmap example (the htable
/// example answers any Expires header with 423, so B sends none there).
fn two_authed(ex: Example) -> (Kamailio, Authed, Authed) {
    let k = start_example(ex);
    let a = authed(&k, Client::connect(&k), None, 3600);
    let b = match ex {
        Example::Cmap => authed(&k, Client::connect(&k), Some(1800), 1800),
        Example::Htable => authed(&k, Client::connect(&k), None, 3600),
    };
    assert_ne!(a.use_path, b.use_path, "two AUTHs got the same Use-Path");
    (k, a, b)
}

// ------------------------------------------------------------ Example 1.18

/// Example 1.18: AUTH with HTTP Digest through `pv_www_authenticate()` /
/// `auth_get_www_authenticate()` on the SIP message built from the MSRP
/// head; a wrong password gets 401 again; Expires out of
/// [auth_min_expires, auth_max_expires] (defaults 60, 3600) gets 423 with
/// Min-Expires / Max-Expires; a valid AUTH gets 200 with Use-Path and
/// Expires (RFC 4976 §6.3).
#[test]
fn stock_cmap_example_auth_digest_and_expires() {
    let k = start_example(Example::Cmap);
    let relay = relay_auth_uri(&k);
    let mut a = Client::connect(&k);

    // Wrong password: refused with a new challenge.
    let resp = auth_with(&k, &mut a, &relay, "wrong-password", None);
    assert_eq!(resp.status_code(), Some(401), "{}", resp.summary());
    assert!(
        resp.header("WWW-Authenticate").is_some(),
        "{}",
        resp.summary()
    );
    assert!(resp.header("Use-Path").is_none(), "{}", resp.summary());

    // Expires below the minimum.
    let resp = auth_with(&k, &mut a, &relay, PASSWD, Some(10));
    assert_eq!(resp.status_code(), Some(423), "{}", resp.summary());
    assert_eq!(
        resp.header("Min-Expires").as_deref(),
        Some("60"),
        "{}",
        resp.summary()
    );
    assert!(resp.header("Use-Path").is_none(), "{}", resp.summary());

    // Expires above the maximum.
    let resp = auth_with(&k, &mut a, &relay, PASSWD, Some(100_000));
    assert_eq!(resp.status_code(), Some(423), "{}", resp.summary());
    assert_eq!(
        resp.header("Max-Expires").as_deref(),
        Some("3600"),
        "{}",
        resp.summary()
    );
    assert!(resp.header("Use-Path").is_none(), "{}", resp.summary());

    // Valid, explicit Expires (bounds inclusive) and default (the maximum).
    let a = authed(&k, a, Some(60), 60);
    let b = authed(&k, Client::connect(&k), None, 3600);
    let c = authed(&k, Client::connect(&k), Some(3600), 3600);
    assert_ne!(a.use_path, b.use_path);
    assert_ne!(b.use_path, c.use_path);
}

/// Example 1.18: A and B AUTHed; A's SEND through B's Use-Path reaches B on
/// B's own connection (the relay opens no connection: relay flag 1) with
/// the paths rewritten, B's 200 is consumed and A gets the script's 200
/// only; the same from B to A; a SEND to an unknown session gets 481.
#[test]
fn stock_cmap_example_send_both_ways() {
    let (k, mut a, mut b) = two_authed(Example::Cmap);
    send_via_use_path(&k, &mut a, &mut b, b"Hello B, this is A.");
    send_via_use_path(&k, &mut b, &mut a, b"Hello A, B here.\r\nSecond line.");
    // Several in a row on the same connections.
    for i in 0..3 {
        send_via_use_path(&k, &mut a, &mut b, format!("A->B {i}").as_bytes());
        send_via_use_path(&k, &mut b, &mut a, format!("B->A {i}").as_bytes());
    }
    // Unknown session on the relay's address.
    let unknown = k.relay_uri(&msrp_tools::ids::random_alnum(22));
    let b_uri = b.c.uri.clone();
    send_gets_481(&k, &mut a.c, &unknown, &b_uri, &mut [&mut b.c.peer]);
    // Still working afterwards.
    send_via_use_path(&k, &mut a, &mut b, b"after the 481");
}

/// Example 1.18 with the paths of RFC 4976 §6.4 where both clients use the
/// relay: A's To-Path is <A's Use-Path> <B's Use-Path> <B>. The script
/// answers 200 and relays to the next hop, B's Use-Path, which is the relay
/// itself (stock: a TCP connection to its own listener); there the frame
/// has one next hop and goes to B's connection through the cmap. B gets
/// To-Path <B>, From-Path <B's Use-Path> <A's Use-Path> <A>.
#[test]
fn stock_cmap_example_both_clients_behind_the_relay() {
    let (k, mut a, mut b) = two_authed(Example::Cmap);
    let body = b"through both Use-Paths";
    let req = Request::send(&[&a.use_path, &b.use_path, &b.c.uri], &[&a.c.uri], body);
    a.c.peer.send_request(&req).expect("send SEND");
    let got =
        b.c.peer
            .read_frame(T)
            .unwrap_or_else(|e| panic!("SEND did not reach B: {e}\nlog tail:\n{}", k.log_tail(40)));
    assert_eq!(got.method().as_deref(), Some("SEND"), "{}", got.summary());
    assert_eq!(got.to_path(), vec![b.c.uri.clone()], "{}", got.summary());
    assert_eq!(
        got.from_path(),
        vec![b.use_path.clone(), a.use_path.clone(), a.c.uri.clone()],
        "{}",
        got.summary()
    );
    assert_eq!(got.body, body);
    b.c.peer
        .send_hop_response(&got, 200, Some("OK"))
        .expect("answer 200");
    let resp =
        a.c.peer
            .read_response(T, &[])
            .unwrap_or_else(|e| panic!("no 200: {e}\nlog tail:\n{}", k.log_tail(40)));
    assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
    assert_eq!(resp.tid(), req.tid);
    a.c.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("A got more than one response: {e}"));
    b.c.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("B got more than the SEND: {e}"));
}

/// Example 1.18: a cmap entry dies with its connection: once B has closed
/// its AUTHed connection, A's SEND through B's Use-Path gets 481.
#[test]
fn stock_cmap_entry_dies_with_its_connection() {
    let (k, mut a, mut b) = two_authed(Example::Cmap);
    send_via_use_path(&k, &mut a, &mut b, b"while B is there");
    let Authed { c, use_path } = b;
    let b_uri = c.uri.clone();
    drop(c);
    // Let the relay see the close.
    std::thread::sleep(Duration::from_millis(500));
    send_gets_481(&k, &mut a.c, &use_path, &b_uri, &mut []);
    // A new AUTH from B works again (and gets a new session).
    let mut b2 = authed(&k, Client::connect(&k), None, 3600);
    assert_ne!(b2.use_path, use_path);
    send_via_use_path(&k, &mut a, &mut b2, b"to the new B");
}

// ------------------------------------------------------------ Example 1.17

/// Example 1.17 (htable), the parts that do not forward: AUTH with Digest
/// (wrong password: 401); the script's own 423s (MSRP_MIN_EXPIRES 1800,
/// MSRP_MAX_EXPIRES 3600; note the stock script answers 423 to *any*
/// Expires header, so valid AUTHs here carry none); the Use-Path the script
/// builds (`msrp://127.0.0.1:<port>/s.<pid>.<cnt>.<random>;tcp`, session
/// saved in htable with `$msrp(srcaddr)` / `$msrp(srcsock)`), Expires 3600;
/// a SEND to a session not in htable: 481 (and reaches nobody).
#[test]
fn stock_htable_example_auth_and_481() {
    let k = start_example(Example::Htable);
    let relay = relay_auth_uri(&k);
    let mut c = Client::connect(&k);
    let resp = auth_with(&k, &mut c, &relay, "wrong-password", None);
    assert_eq!(resp.status_code(), Some(401), "{}", resp.summary());
    let resp = auth_with(&k, &mut c, &relay, PASSWD, Some(10));
    assert_eq!(resp.status_code(), Some(423), "{}", resp.summary());
    assert_eq!(
        resp.header("Min-Expires").as_deref(),
        Some("1800"),
        "{}",
        resp.summary()
    );
    let resp = auth_with(&k, &mut c, &relay, PASSWD, Some(100_000));
    assert_eq!(resp.status_code(), Some(423), "{}", resp.summary());
    assert_eq!(
        resp.header("Max-Expires").as_deref(),
        Some("3600"),
        "{}",
        resp.summary()
    );
    drop(c);

    let mut a = authed(&k, Client::connect(&k), None, 3600);
    let mut b = authed(&k, Client::connect(&k), None, 3600);
    assert_ne!(a.use_path, b.use_path);
    let prefix = format!("msrp://127.0.0.1:{}/s.", k.relay_addr().port());
    assert!(a.use_path.starts_with(&prefix), "{}", a.use_path);
    let unknown = k.relay_uri("s.0.0.0");
    let b_uri = b.c.uri.clone();
    send_gets_481(&k, &mut a.c, &unknown, &b_uri, &mut [&mut b.c.peer]);
    let a_uri = a.c.uri.clone();
    send_gets_481(&k, &mut b.c, &unknown, &a_uri, &mut [&mut a.c.peer]);
}

/// Example 1.17 (htable), forwarding: a SEND through B's Use-Path is sent
/// with `msrp_relay_flags("1")` + `msrp_set_dst($sht(...::srcaddr),
/// $sht(...::srcsock))`, i.e. to the address B's AUTH came from, over an
/// existing connection only. Stock finds B's own (inbound) connection by
/// that address, so B receives the SEND on it; the same from B to A.
#[test]
fn stock_htable_example_send_through_msrp_set_dst() {
    let (k, mut a, mut b) = two_authed(Example::Htable);
    send_via_use_path(&k, &mut a, &mut b, b"Hello B (htable)");
    send_via_use_path(&k, &mut b, &mut a, b"Hello A (htable)");
}

// ------------------------------------------------------------ msrp_set_dst

/// `msrp_set_dst(addr, sock)` overrides the next hop: a SEND whose To-Path
/// next hop is a bogus address goes to B's address instead, paths rewritten
/// as usual.
#[test]
fn msrp_set_dst_overrides_the_next_hop() {
    let b = Endpoint::bind().expect("bind B");
    let route = format!(
        r#"if (msrp_is_reply()) {{ msrp_relay(); exit; }}
    msrp_set_dst("msrp://127.0.0.1:{}", "tcp:127.0.0.1:5060");
    msrp_relay();"#,
        b.addr().port()
    );
    let k = Kamailio::start(RelayOpts::default().route(&route));
    let relay = k.relay_uri("relay");
    let bogus = "msrp://192.0.2.1:9/bogus;tcp";
    let mut a = Client::connect(&k);
    let mut bp: Option<Peer> = None;
    for i in 0..2 {
        let body = format!("set_dst {i}");
        let req = Request::send(&[&relay, bogus], &[&a.uri], body.as_bytes());
        a.peer.send_request(&req).expect("A send");
        let p = bp.get_or_insert_with(|| {
            b.accept(T)
                .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(40)))
        });
        let got = p
            .read_frame(T)
            .unwrap_or_else(|e| panic!("B read: {e}\nlog tail:\n{}", k.log_tail(40)));
        assert_eq!(got.method().as_deref(), Some("SEND"), "{}", got.summary());
        assert_eq!(got.to_path(), vec![bogus.to_owned()], "{}", got.summary());
        assert_eq!(
            got.from_path(),
            vec![relay.clone(), a.uri.clone()],
            "{}",
            got.summary()
        );
        assert_eq!(got.body, body.as_bytes());
        p.send_hop_response(&got, 200, Some("OK")).expect("B 200");
        let resp = a
            .peer
            .read_response(T, &[])
            .unwrap_or_else(|e| panic!("A: {e}\nlog tail:\n{}", k.log_tail(40)));
        assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
        assert_eq!(resp.tid(), req.tid);
        a.peer
            .expect_nothing(QUIET)
            .unwrap_or_else(|e| panic!("A: {e}"));
    }
    b.expect_no_accept(QUIET)
        .unwrap_or_else(|e| panic!("second connection to B: {e}"));
}

// ------------------------------------------------------------ $msrp(...)

/// A route answering every request with the `$msrp(...)` values in headers
/// (multi-line values hex-encoded).
const PV_ROUTE: &str = r#"if ($msrp(body) == $null) { $var(bn) = "null"; } else { $var(bn) = "set"; }
    msrp_reply("200", "OK", "X-Method: $msrp(method)\r\nX-Transid: $msrp(transid)\r\nX-Msgid: $msrp(msgid)\r\nX-Code: $msrp(code)\r\nX-Reason: $msrp(reason)\r\nX-Crthop: $msrp(crthop)\r\nX-Nexthop: $msrp(nexthop)\r\nX-Lasthop: $msrp(lasthop)\r\nX-Prevhop: $msrp(prevhop)\r\nX-Firsthop: $msrp(firsthop)\r\nX-Prevhops: $msrp(prevhops)\r\nX-Nexthops: $msrp(nexthops)\r\nX-Sessid: $msrp(sessid)\r\nX-Srcaddr: $msrp(srcaddr)\r\nX-Srcsock: $msrp(srcsock)\r\nX-Conid: $msrp(conid)\r\nX-Buflen: $msrp(buflen)\r\nX-Bodylen: $msrp(bodylen)\r\nX-Body-Is: $var(bn)\r\nX-Buf-Hex: $(msrp(buf){s.encode.hexa})\r\nX-Hdrs-Hex: $(msrp(hdrs){s.encode.hexa})\r\nX-Body-Hex: $(msrp(body){s.encode.hexa})\r\n");
    exit;"#;

/// The `X-...` values of a PV_ROUTE answer.
fn pv_values(k: &Kamailio, resp: &ReceivedFrame) -> HashMap<String, String> {
    assert_eq!(
        resp.status_code(),
        Some(200),
        "{}\n{}",
        resp.summary(),
        k.log_tail(30)
    );
    resp.head
        .headers()
        .filter_map(|h| {
            let n = String::from_utf8_lossy(h.name).into_owned();
            let v = String::from_utf8_lossy(h.value).trim().to_owned();
            n.strip_prefix("X-").map(|n| (n.to_ascii_lowercase(), v))
        })
        .collect()
}

/// Hex-decoded value (case-insensitive hex, as `{s.encode.hexa}` gives).
fn unhex(v: &HashMap<String, String>, key: &str) -> String {
    let s = v
        .get(key)
        .unwrap_or_else(|| panic!("no X-{key} in {v:#?}"))
        .to_ascii_lowercase();
    assert!(s.len() % 2 == 0, "odd hex {s:?}");
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("hex {s:?}")))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Collects every `$msrp(key)` that differs from its expected value, so one
/// run reports all of them.
#[derive(Default)]
struct PvCheck {
    bad: Vec<String>,
}

impl PvCheck {
    fn eq(&mut self, frame: &str, key: &str, got: Option<&str>, want: &str) {
        if got != Some(want) {
            self.bad.push(format!(
                "{frame}: $msrp({key}) = {got:?}, expected {want:?}"
            ));
        }
    }

    /// Plain value `X-<key>`.
    fn plain(&mut self, frame: &str, v: &HashMap<String, String>, key: &str, want: &str) {
        self.eq(frame, key, v.get(key).map(String::as_str), want);
    }

    /// Hex-encoded value `X-<key>-Hex`.
    fn hexed(&mut self, frame: &str, v: &HashMap<String, String>, key: &str, want: &str) {
        let got = unhex(v, &format!("{key}-hex"));
        self.eq(frame, key, Some(&got), want);
    }

    fn finish(self, frames: &str) {
        assert!(
            self.bad.is_empty(),
            "$msrp(...) values differing from the stock semantics:\n  {}\nframes sent:\n{frames}",
            self.bad.join("\n  ")
        );
    }
}

/// Every `$msrp(...)` key against known request frames, with the stock
/// semantics of msrp_vars.c / msrp_parser.c: crthop = first To-Path URI,
/// nexthop = second, lasthop = last, nexthops = To-Path count - 1, prevhop =
/// first From-Path URI, firsthop = last From-Path URI, prevhops = From-Path
/// count, sessid = session of the first To-Path URI, srcaddr =
/// msrp://IP:PORT of the peer, srcsock = tcp:IP:PORT of the local socket,
/// conid = the connection's id, code/reason null for requests, buf/buflen =
/// the whole frame as received (start line through end-line: stock's
/// `mf->buf`, whose parser finds the end-line at its very end), hdrs = the
/// header lines after the start line up to the blank line (or up to the
/// end-line for a frame without body). body/bodylen = the content (RFC 4975
/// `data`; stock's parser includes the CRLF before the end-line in
/// `mbody`, a framing artefact this test does not require). A frame without
/// body: body null, bodylen 0; nexthop/sessid null when absent.
#[test]
fn msrp_pv_keys_match_stock_semantics() {
    let k = Kamailio::start(RelayOpts::default().route(PV_ROUTE));
    let port = k.relay_addr().port();
    let relay = k.relay_uri("sessX1");
    let hop2 = "msrp://127.0.0.1:9/hop2;tcp";
    let last = "msrp://127.0.0.1:7/bob;tcp";
    let prev = "msrp://127.0.0.1:8/prev;tcp";
    let mut a = Client::connect(&k);
    let srcaddr = addr_uri(&a.peer);
    let srcsock = format!("tcp:127.0.0.1:{port}");
    let mut check = PvCheck::default();

    // 1. A SEND with a body, three To-Path and two From-Path URIs.
    let body = "pv body\r\nline two";
    let req = Request::send(&[&relay, hop2, last], &[prev, &a.uri], body.as_bytes());
    let text = String::from_utf8_lossy(&req.to_wire()).into_owned();
    a.peer.send_request(&req).expect("send");
    let resp = a
        .peer
        .read_response(T, &[])
        .unwrap_or_else(|e| panic!("no answer: {e}\nlog tail:\n{}", k.log_tail(40)));
    assert_eq!(resp.tid(), req.tid);
    let v = pv_values(&k, &resp);
    let f = "SEND with body";
    let start_line_end = text.find("\r\n").unwrap() + 2;
    let blank = text.find("\r\n\r\n").unwrap() + 2;
    for (key, want) in [
        ("method", "SEND"),
        ("transid", req.tid.as_str()),
        ("msgid", req.header("Message-ID").unwrap()),
        ("code", "<null>"),
        ("reason", "<null>"),
        ("crthop", relay.as_str()),
        ("nexthop", hop2),
        ("lasthop", last),
        ("prevhop", prev),
        ("firsthop", a.uri.as_str()),
        ("prevhops", "2"),
        ("nexthops", "2"),
        ("sessid", "sessX1"),
        ("srcaddr", srcaddr.as_str()),
        ("srcsock", srcsock.as_str()),
        ("body-is", "set"),
        ("bodylen", &body.len().to_string()),
        ("buflen", &text.len().to_string()),
    ] {
        check.plain(f, &v, key, want);
    }
    let conid = v.get("conid").cloned().unwrap_or_default();
    if conid.parse::<i64>().is_err() {
        check
            .bad
            .push(format!("{f}: $msrp(conid) = {conid:?} is not an integer"));
    }
    check.hexed(f, &v, "body", body);
    check.hexed(f, &v, "hdrs", &text[start_line_end..blank]);
    check.hexed(f, &v, "buf", &text);

    // 2. A frame without body on the same connection: AUTH to the relay.
    let auth_to = format!("msrp://127.0.0.1:{port};tcp");
    let req2 = Request::new("AUTH", &[&auth_to], &[&a.uri]);
    let text2 = String::from_utf8_lossy(&req2.to_wire()).into_owned();
    a.peer.send_request(&req2).expect("send AUTH");
    let resp2 = a
        .peer
        .read_response(T, &[])
        .unwrap_or_else(|e| panic!("no answer: {e}\nlog tail:\n{}", k.log_tail(40)));
    let v2 = pv_values(&k, &resp2);
    let f = "AUTH without body";
    for (key, want) in [
        ("method", "AUTH"),
        ("transid", req2.tid.as_str()),
        ("msgid", "<null>"),
        ("code", "<null>"),
        ("reason", "<null>"),
        ("crthop", auth_to.as_str()),
        ("nexthop", "<null>"),
        ("lasthop", auth_to.as_str()),
        ("prevhop", a.uri.as_str()),
        ("firsthop", a.uri.as_str()),
        ("prevhops", "1"),
        ("nexthops", "0"),
        ("sessid", "<null>"),
        ("srcaddr", srcaddr.as_str()),
        ("srcsock", srcsock.as_str()),
        ("conid", conid.as_str()),
        ("body-is", "null"),
        ("bodylen", "0"),
        ("buflen", &text2.len().to_string()),
    ] {
        check.plain(f, &v2, key, want);
    }
    let start_line_end = text2.find("\r\n").unwrap() + 2;
    let end_line = text2.rfind("-------").unwrap();
    check.hexed(f, &v2, "hdrs", &text2[start_line_end..end_line]);
    check.hexed(f, &v2, "buf", &text2);

    // 3. Another connection: another conid and srcaddr.
    let mut c = Client::connect(&k);
    let req3 = Request::send(&[&relay, last], &[&c.uri], b"x");
    c.peer.send_request(&req3).expect("send");
    let resp3 = c
        .peer
        .read_response(T, &[])
        .unwrap_or_else(|e| panic!("no answer: {e}\nlog tail:\n{}", k.log_tail(40)));
    let v3 = pv_values(&k, &resp3);
    let f = "SEND on a second connection";
    if v3.get("conid") == Some(&conid) {
        check.bad.push(format!(
            "{f}: same $msrp(conid) {conid:?} as the first connection"
        ));
    }
    check.plain(f, &v3, "srcaddr", &addr_uri(&c.peer));
    check.plain(f, &v3, "nexthops", "1");
    check.plain(f, &v3, "nexthop", last);
    check.plain(f, &v3, "lasthop", last);
    check.finish(&format!("{text}\n{text2}"));
}

/// `$msrp(code)` / `$msrp(reason)` of a response frame (and `method` null):
/// an AUTH relayed to B (stock configs relay AUTH with next hops), B's 401
/// runs the route, which logs the values and relays the response to A.
#[test]
fn msrp_pv_code_and_reason_of_a_response() {
    let route = r#"if (msrp_is_reply()) {
        xlog("L_INFO", "PV-RESPONSE code=[$msrp(code)] reason=[$msrp(reason)] method=[$msrp(method)] transid=[$msrp(transid)] crthop=[$msrp(crthop)] prevhop=[$msrp(prevhop)] nexthops=[$msrp(nexthops)] bodylen=[$msrp(bodylen)]\n");
        if ($msrp(code) == 401) {
            xlog("L_INFO", "PV-RESPONSE code is the integer 401\n");
        }
        msrp_relay();
        exit;
    }
    msrp_relay();"#;
    let k = Kamailio::start(RelayOpts::default().route(route));
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let mut a = Client::connect(&k);
    let req = Request::new("AUTH", &[&relay, &b_uri], &[&a.uri]);
    a.peer.send_request(&req).expect("A AUTH");
    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(40)));
    let got = bp
        .read_frame(T)
        .unwrap_or_else(|e| panic!("B read: {e}\nlog tail:\n{}", k.log_tail(40)));
    assert_eq!(got.method().as_deref(), Some("AUTH"), "{}", got.summary());
    bp.send_response(&got, 401, Some("Go Away Please"))
        .expect("B 401");
    let resp = a
        .peer
        .read_response(T, &[])
        .unwrap_or_else(|e| panic!("A: {e}\nlog tail:\n{}", k.log_tail(40)));
    assert_eq!(resp.status_code(), Some(401), "{}", resp.summary());
    assert_eq!(resp.tid(), req.tid, "{}", resp.summary());
    let want = format!(
        "PV-RESPONSE code=[401] reason=[Go Away Please] method=[<null>] transid=[{}] crthop=[{relay}] prevhop=[{b_uri}] nexthops=[1] bodylen=[0]",
        got.tid()
    );
    assert!(
        k.wait_for_log(&want, T),
        "log lacks {want:?}:\n{}",
        k.log_tail(40)
    );
    assert!(
        k.wait_for_log("PV-RESPONSE code is the integer 401", T),
        "$msrp(code) does not compare as the integer 401:\n{}",
        k.log_tail(40)
    );
}

// ------------------------------------------------ the shipped auth cfg

/// cfg/kamailio-auth.cfg as shipped, with only ports, paths, the number
/// of workers and a 2-second transaction_timeout (for the timeout case)
/// changed; its credentials database (in the instance's directory) holds
/// [`USER`] with [`PASSWD`].
fn start_shipped_auth_cfg(workers: u32) -> Kamailio {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cfg/kamailio-auth.cfg"
    ))
    .expect("read cfg/kamailio-auth.cfg");
    Kamailio::start_custom(1, |v| {
        let port = v.msrp_ports[0];
        let mut cfg = subst(
            &shipped,
            "listen=udp:127.0.0.1:5060",
            &format!("listen=udp:127.0.0.1:{}", v.sip_port),
            1,
        );
        cfg = subst(
            &cfg,
            "unix:/run/kamailio/kamailio_ctl",
            &format!("unix:{}/kamailio_ctl", v.dir.display()),
            1,
        );
        let db = make_auth_db(&v.dir, &[(USER, PASSWD)]);
        cfg = subst(
            &cfg,
            SHIPPED_AUTH_DB_URL,
            &format!("sqlite:///{}", db.display()),
            1,
        );
        cfg = subst(
            &cfg,
            "loadmodule \"msrp_relay.so\"",
            &format!(
                "loadmodule \"{}\"\nmodparam(\"msrp_relay\", \"workers\", {workers})\nmodparam(\"msrp_relay\", \"transaction_timeout\", 2)",
                module_so().display()
            ),
            1,
        );
        cfg = subst(
            &cfg,
            "tcp:127.0.0.1:2855",
            &format!("tcp:127.0.0.1:{port}"),
            1,
        );
        subst(
            &cfg,
            "\"127.0.0.1:2855\"",
            &format!("\"127.0.0.1:{port}\""),
            1,
        )
    })
}

/// The shipped auth cfg logs one line per session when it ends
/// (`event_route[msrp:session-end]`), with the authenticated user and
/// exactly what the session carried.
#[test]
fn shipped_auth_cfg_logs_one_line_per_session() {
    let k = start_shipped_auth_cfg(1);
    let mut a = authed(&k, Client::connect(&k), None, 3600);
    let mut b = authed(&k, Client::connect(&k), None, 3600);
    send_via_use_path(&k, &mut a, &mut b, b"accounted");
    send_via_use_path(&k, &mut b, &mut a, b"back");
    let session = a
        .use_path
        .rsplit('/')
        .next()
        .and_then(|s| s.strip_suffix(";tcp"))
        .expect("session in Use-Path")
        .to_owned();
    let client = addr_uri(&a.c.peer);
    drop(a);
    let needle = format!("MSRP session {session} ");
    let line = k
        .wait_for_log_line(T, |l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no line for {session}\n{}", k.log_tail(20)));
    let want = format!("{needle}user={USER} transport=tcp client={client} start=");
    assert!(line.contains(&want), "{line}\nexpected {want}");
    let want = " msgs_in=1 bytes_in=9 msgs_out=1 bytes_out=4 end=closed";
    assert!(line.contains(want), "{line}\nexpected {want}");
    assert_eq!(k.log().matches("MSRP session ").count(), 1, "B's is open");
    drop(b);
}

/// The shipped auth cfg, flow `[U_B, B]` (the stock examples' style): B gets
/// A's SEND over its AUTHed connection.
#[test]
fn shipped_auth_cfg_relays_through_the_peers_use_path() {
    let k = start_shipped_auth_cfg(1);
    let mut a = authed(&k, Client::connect(&k), None, 3600);
    let mut b = authed(&k, Client::connect(&k), None, 3600);
    send_via_use_path(&k, &mut a, &mut b, b"stock style");
    send_via_use_path(&k, &mut b, &mut a, b"and back");
}

/// The shipped auth cfg, flow `[U_A, U_B, B]` (RFC 4976 §6.4: the sender's
/// own relay URI first): B gets To-Path <B>, From-Path <U_B> <U_A> <A>, and
/// the relay does not connect to itself to get there.
#[test]
fn shipped_auth_cfg_relays_own_relay_first_without_connecting_to_itself() {
    let k = start_shipped_auth_cfg(1);
    let mut a = authed(&k, Client::connect(&k), None, 3600);
    let mut b = authed(&k, Client::connect(&k), None, 3600);
    own_relay_first(&k, &mut a, &mut b);
}

/// A sends to B with To-Path <U_A> <U_B> <B>; checks what B gets and that A
/// gets one 200, and that the relay opened no connection (not to itself).
fn own_relay_first(k: &Kamailio, a: &mut Authed, b: &mut Authed) {
    let req = Request::send(&[&a.use_path, &b.use_path, &b.c.uri], &[&a.c.uri], b"rfc");
    a.c.peer.send_request(&req).expect("send");
    let got =
        b.c.peer
            .read_frame(T)
            .unwrap_or_else(|e| panic!("SEND did not reach B: {e}\n{}", k.log_tail(40)));
    assert_eq!(got.to_path(), vec![b.c.uri.clone()], "{}", got.summary());
    assert_eq!(
        got.from_path(),
        vec![b.use_path.clone(), a.use_path.clone(), a.c.uri.clone()],
        "{}",
        got.summary()
    );
    assert!(got.header("Relay-Conid").is_none(), "{}", got.summary());
    b.c.peer.send_hop_response(&got, 200, None).expect("200");
    let resp = a.c.peer.read_response(T, &[]).expect("A's 200");
    assert_eq!((resp.status_code(), resp.tid()), (Some(200), req.tid));
    a.c.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("A got more than its 200: {e}"));
    assert_eq!(
        relay_stat(k, "connections_opened"),
        0,
        "the relay connected to itself"
    );
}

/// A's next two frames are the relay's 200 and a REPORT whose Status
/// starts with `status`, in either order.
fn ok_and_report(a: &mut Authed, status: &str) {
    let mut frames = [
        a.c.peer.read_frame(T).expect("A: first frame"),
        a.c.peer.read_frame(T).expect("A: second frame"),
    ];
    frames.sort_by_key(|f| f.method().is_some());
    assert_eq!(
        frames[0].status_code(),
        Some(200),
        "{}",
        frames[0].summary()
    );
    let got = frames[1].header("Status").unwrap_or_default();
    assert!(got.starts_with(status), "{}", frames[1].summary());
}

/// The shipped auth cfg with two workers, A and B accepted by different
/// workers: every flow crosses the link between them, both ways, and a
/// next-hop error still becomes A's REPORT.
#[test]
fn shipped_auth_cfg_relays_across_workers() {
    across_workers(2);
}

/// As above with four workers.
#[test]
fn shipped_auth_cfg_relays_across_four_workers() {
    across_workers(4);
}

fn across_workers(workers: u32) {
    let k = start_shipped_auth_cfg(workers);
    let (ca, cb) = clients_on_two_workers(&k);
    assert_ne!(worker_of(&k, &ca), worker_of(&k, &cb));
    let mut a = authed(&k, ca, None, 3600);
    let mut b = authed(&k, cb, None, 3600);
    send_via_use_path(&k, &mut a, &mut b, b"across workers");
    send_via_use_path(&k, &mut b, &mut a, b"and back");
    own_relay_first(&k, &mut a, &mut b);
    to_reachable_peer(&k, &mut a);
    to_reachable_peer(&k, &mut b);
    // B answers with its own Use-Path first and A's own address next
    // (To-Path <U_B> <A>): A's connection, on the other worker, is found by
    // its address as Kamailio's TCP layer would
    let req = Request::send(&[&b.use_path, &a.c.uri], &[&b.c.uri], b"by address");
    b.c.peer.send_request(&req).expect("send");
    let got =
        a.c.peer
            .read_frame(T)
            .unwrap_or_else(|e| panic!("SEND did not reach A: {e}\n{}", k.log_tail(40)));
    assert_eq!(got.body, b"by address");
    assert_eq!(got.to_path(), vec![a.c.uri.clone()], "{}", got.summary());
    assert_eq!(
        got.from_path(),
        vec![b.use_path.clone(), b.c.uri.clone()],
        "{}",
        got.summary()
    );
    a.c.peer.send_hop_response(&got, 200, None).expect("200");
    let resp = b.c.peer.read_response(T, &[]).expect("B's 200");
    assert_eq!((resp.status_code(), resp.tid()), (Some(200), req.tid));
    // a large message crosses re-chunked, every byte in order
    let body: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let req = Request::send(&[&b.use_path, &b.c.uri], &[&a.c.uri], &body);
    let wire = req.to_wire();
    let mut writer = a.c.peer.try_clone_stream().expect("clone A");
    let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &wire));
    let mut got = Vec::new();
    while got.len() < body.len() {
        let f = b.c.peer.read_frame(T).expect("B reads a chunk");
        assert!(f.body.len() <= 16384, "{}", f.summary());
        got.extend_from_slice(&f.body);
        b.c.peer.send_hop_response(&f, 200, None).expect("200");
    }
    sender.join().expect("sender").expect("A sends");
    assert!(got == body, "the message changed on its way across workers");
    let resp = a.c.peer.read_response(T, &[]).expect("A's 200");
    assert_eq!((resp.status_code(), resp.tid()), (Some(200), req.tid));
    // B refuses: A gets the relay's 200 and a REPORT with B's code
    let req = Request::send(&[&b.use_path, &b.c.uri], &[&a.c.uri], b"refused");
    a.c.peer.send_request(&req).expect("send");
    let got = b.c.peer.read_frame(T).expect("B reads");
    b.c.peer
        .send_hop_response(&got, 403, Some("Forbidden"))
        .expect("403");
    ok_and_report(&mut a, "000 403 Forbidden");
    // B stays silent: the response timeout still becomes A's REPORT
    let req = Request::send(&[&b.use_path, &b.c.uri], &[&a.c.uri], b"silence");
    a.c.peer.send_request(&req).expect("send");
    b.c.peer.read_frame(T).expect("B reads and never answers");
    ok_and_report(&mut a, "000 408 ");
    a.c.peer
        .expect_nothing(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("a second REPORT for the silent SEND: {e}"));
    // B's connection closes with A's SEND unanswered: the worker holding it
    // answers 408 over the link and A gets its REPORT
    let req = Request::send(&[&b.use_path, &b.c.uri], &[&a.c.uri], b"lost");
    a.c.peer.send_request(&req).expect("send");
    b.c.peer.read_frame(T).expect("B reads, then goes away");
    drop(b);
    ok_and_report(&mut a, "000 408 ");
}

/// The shipped auth cfg checks credentials against its SQLite subscriber
/// table (auth_db): the right password gets 200; a wrong one and an
/// unknown user get 401 (and the connection stays: two failures, then the
/// right password, 200); a user added to the database while the relay runs
/// can AUTH at once, and a removed one no longer can.
#[test]
fn shipped_auth_cfg_checks_credentials_in_its_database() {
    let k = start_shipped_auth_cfg(1);
    let relay = relay_auth_uri(&k);
    let _alice = authed(&k, Client::connect(&k), None, 3600);

    let mut c = Client::connect(&k);
    let wrong = auth_as(&k, &mut c, &relay, USER, "not-the-password", None);
    assert_eq!(wrong.status_code(), Some(401), "{}", wrong.summary());
    assert!(
        wrong.header("WWW-Authenticate").is_some(),
        "{}",
        wrong.summary()
    );
    let unknown = auth_as(&k, &mut c, &relay, "mallory", PASSWD, None);
    assert_eq!(unknown.status_code(), Some(401), "{}", unknown.summary());
    let right = auth_as(&k, &mut c, &relay, USER, PASSWD, None);
    assert_eq!(right.status_code(), Some(200), "{}", right.summary());
    for (user, rc) in [(USER, -2), ("mallory", -3)] {
        let line = format!("MSRP AUTH of user {user} from 127.0.0.1:");
        assert!(
            k.log()
                .lines()
                .any(|l| l.contains(&line) && l.contains(&format!("failed ({rc})"))),
            "no log line {line:?} ... ({rc}):\n{}",
            k.log_tail(30)
        );
    }

    let db = k.dir().join("msrp-auth.sqlite");
    let db = db.to_str().expect("UTF-8 path");
    let mut b = Client::connect(&k);
    let before = auth_as(&k, &mut b, &relay, "bob", "bobs-secret", None);
    assert_eq!(before.status_code(), Some(401), "{}", before.summary());
    auth_db(&["add", db, "bob", "bobs-secret"]);
    let after = auth_as(&k, &mut b, &relay, "bob", "bobs-secret", None);
    assert_eq!(after.status_code(), Some(200), "{}", after.summary());
    assert!(after.header("Use-Path").is_some(), "{}", after.summary());
    auth_db(&["remove", db, "bob"]);
    let mut b2 = Client::connect(&k);
    let removed = auth_as(&k, &mut b2, &relay, "bob", "bobs-secret", None);
    assert_eq!(removed.status_code(), Some(401), "{}", removed.summary());
}

/// RFC 4976 §6.3 with the shipped `max_auth_failures` 3: after the third
/// AUTH with wrong credentials in a row, the relay writes its 401 and
/// closes the connection, with a log line naming the peer; challenges
/// (AUTHs without credentials) do not count.
#[test]
fn shipped_auth_cfg_closes_a_connection_after_three_failed_auths() {
    let k = start_shipped_auth_cfg(1);
    let relay = relay_auth_uri(&k);
    let mut c = Client::connect(&k);
    let peer = c.peer.local_addr();
    for i in 1..=3 {
        let r = auth_as(&k, &mut c, &relay, USER, &format!("guess-{i}"), None);
        assert_eq!(r.status_code(), Some(401), "attempt {i}: {}", r.summary());
    }
    c.peer.expect_closed(T).unwrap_or_else(|e| {
        panic!(
            "the connection stayed open after 3 failed AUTHs: {e}\n{}",
            k.log_tail(20)
        )
    });
    let line = format!("with {peer}: 3 failed AUTHs in a row (max_auth_failures 3");
    assert!(k.wait_for_log(&line, T), "no {line:?}:\n{}", k.log_tail(20));
    // others are not affected
    let _alice = authed(&k, Client::connect(&k), None, 3600);
}

/// The shipped auth cfg, flow `[U_A, X]` (RFC 4976 §5: a client behind the
/// relay, its peer reachable directly): the SEND goes on to X; it used to
/// be sent back to A over A's own session.
#[test]
fn shipped_auth_cfg_relays_to_a_directly_reachable_peer() {
    let k = start_shipped_auth_cfg(1);
    let mut a = authed(&k, Client::connect(&k), None, 3600);
    to_reachable_peer(&k, &mut a);
}

/// A sends with To-Path <U_A> <X> to a plain endpoint X: the relay connects
/// to X, X gets To-Path <X> and From-Path <U_A> <A>, A gets one 200.
fn to_reachable_peer(k: &Kamailio, a: &mut Authed) {
    let x = Endpoint::bind().expect("bind X");
    let x_uri = x.uri("x");
    let req = Request::send(&[&a.use_path, &x_uri], &[&a.c.uri], b"to X");
    a.c.peer.send_request(&req).expect("send");
    let mut xp = x
        .accept(T)
        .unwrap_or_else(|e| panic!("the relay did not connect to X: {e}\n{}", k.log_tail(40)));
    let got = xp.read_frame(T).expect("X reads");
    assert_eq!(got.body, b"to X");
    assert_eq!(got.to_path(), vec![x_uri.clone()], "{}", got.summary());
    assert_eq!(
        got.from_path(),
        vec![a.use_path.clone(), a.c.uri.clone()],
        "{}",
        got.summary()
    );
    xp.send_hop_response(&got, 200, None).expect("200");
    let resp = a.c.peer.read_response(T, &[]).expect("A's 200");
    assert_eq!((resp.status_code(), resp.tid()), (Some(200), req.tid));
    a.c.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("A got its own SEND back or more: {e}"));
}
