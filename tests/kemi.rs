//! KEMI: the module's functions under `KSR.msrp_relay` and the
//! `event_callback` modparam, with the Lua routing script shipped in
//! cfg/msrp-relay.lua (app_lua from Debian's kamailio-lua-modules).

mod common;

use std::path::Path;

use common::*;

fn start_lua(lua: &Path) -> Kamailio {
    Kamailio::start_custom(1, |v| {
        format!(
            r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
disable_tcp=yes
listen=udp:127.0.0.1:{sip}
mpath="{mpath}"
loadmodule "ctl.so"
loadmodule "pv.so"
loadmodule "app_lua.so"
loadmodule "{so}"
modparam("ctl", "binrpc", "unix:{dir}/kamailio_ctl")
modparam("app_lua", "load", "{lua}")
modparam("msrp_relay", "listen", "tcp:127.0.0.1:{msrp}")
modparam("msrp_relay", "event_callback", "ksr_msrp_event")
cfgengine "lua"
"#,
            sip = v.sip_port,
            mpath = kamailio_modules(),
            so = module_so().display(),
            dir = v.dir.display(),
            lua = lua.display(),
            msrp = v.msrp_ports[0],
        )
    })
}

/// The shipped Lua script relays A -> B (new tid, paths rewritten, the
/// relay's own 200 to A) and answers 481 to a SEND addressed to the relay
/// itself, through KSR.msrp_relay.relay()/reply()/is_reply().
#[test]
fn shipped_lua_script_relays_and_replies() {
    let lua = Path::new(env!("CARGO_MANIFEST_DIR")).join("cfg/msrp-relay.lua");
    let k = start_lua(&lua);
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, None, b"through Lua");
    assert!(
        k.wait_for_log("MSRP SEND", T),
        "the Lua script's log line is missing:\n{}",
        k.log_tail(20)
    );

    // A SEND for the relay itself: the script answers 481.
    let req = Request::send(&[&k.relay_uri("relay")], &[&a.uri], b"to nobody");
    a.peer.send_request(&req).expect("A send");
    let f = a
        .peer
        .read_frame(T)
        .unwrap_or_else(|e| panic!("A expected a 481: {e}\n{}", k.log_tail(20)));
    assert_eq!(f.status_code(), Some(481), "{}", f.summary());
    assert_eq!(f.tid(), req.tid);
    drop(bp);
}

/// `KSR.msrp_relay.set_read_rate(n)` limits the frame's connection (the
/// connections RPC shows it) and refuses an out-of-range rate with an
/// error naming it.
#[test]
fn kemi_set_read_rate_limits_the_connection() {
    let lua = std::env::temp_dir().join(format!("msrp-kemi-rate-{}.lua", std::process::id()));
    std::fs::write(
        &lua,
        r#"function ksr_msrp_event(evname)
    if KSR.msrp_relay.is_reply() > 0 then KSR.msrp_relay.relay() return 1 end
    if KSR.msrp_relay.set_read_rate(5) > 0 then KSR.err("KEMI-RATE bad rate accepted\n") end
    if KSR.msrp_relay.set_read_rate(2048) > 0 then KSR.info("KEMI-RATE set\n") end
    KSR.msrp_relay.relay()
    return 1
end
"#,
    )
    .expect("write the Lua script");
    let k = start_lua(&lua);
    let b = Endpoint::bind().expect("bind B");
    let mut a = Client::connect(&k);
    let _bp = relay_small_send(&k, &mut a, &b, &b.uri("bob"), None, b"rate me");
    assert!(k.wait_for_log("KEMI-RATE set", T), "{}", k.log_tail(20));
    assert!(!k.log().contains("KEMI-RATE bad rate accepted"));
    assert!(
        k.log()
            .contains("KSR.msrp_relay.set_read_rate: read rate 5 out of range"),
        "{}",
        k.log_tail(20)
    );
    let peer = a.peer.local_addr().to_string();
    assert_eq!(conn_field(&k, &peer, "READ_RATE"), "2048");
    // (every Kamailio process loads the script, some late: keep it until
    // Kamailio is gone)
    drop(k);
    let _ = std::fs::remove_file(&lua);
}

/// The `event_callback` runs with evname "msrp:session-end" when a session
/// ends, with the session's values in `$msrp(...)`.
#[test]
fn kemi_callback_runs_at_session_end() {
    let lua = std::env::temp_dir().join(format!("msrp-kemi-end-{}.lua", std::process::id()));
    std::fs::write(
        &lua,
        r#"function ksr_msrp_event(evname)
    if evname == "msrp:session-end" then
        KSR.info("KEMI-END " .. KSR.pv.gete("$msrp(session)") .. " " .. KSR.pv.gete("$msrp(acct_user)")
            .. " " .. KSR.pv.gete("$msrp(msgs_in)") .. " " .. KSR.pv.gete("$msrp(bytes_in)")
            .. " " .. KSR.pv.gete("$msrp(msgs_out)") .. " " .. KSR.pv.gete("$msrp(bytes_out)")
            .. " " .. KSR.pv.gete("$msrp(end_reason)") .. "\n")
        return 1
    end
    if KSR.msrp_relay.is_reply() > 0 then KSR.msrp_relay.relay() return 1 end
    if KSR.pv.gete("$msrp(method)") == "AUTH" then KSR.msrp_relay.cmap_save() return 1 end
    KSR.msrp_relay.relay()
    return 1
end
"#,
    )
    .expect("write the Lua script");
    let k = start_lua(&lua);
    let mut a = auth_unchecked(&k, Client::connect(&k), "dave", 600);
    let b = Endpoint::bind().expect("bind B");
    let _bp = relay_small_send(&k, &mut a.c, &b, &b.uri("bob"), None, b"kemi");
    drop(a.c);
    let want = format!("KEMI-END {} dave 1 4 0 0 closed", a.id);
    assert!(k.wait_for_log(&want, T), "{want}\n{}", k.log_tail(20));
    drop(k);
    let _ = std::fs::remove_file(&lua);
}
