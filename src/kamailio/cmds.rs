//! The cfg script functions (`msrp_relay()`, `msrp_reply()`, ...): their
//! `w_*` entry points, and the `do_*` bodies the KEMI exports share. Each
//! entry runs under [`guard`].

use std::ffi::{c_char, c_int};
use std::ptr;

use super::guard::guard;
use super::sys;
use msrp_engine::config;
use msrp_engine::script;

/// Script return codes: 1 true/success, -1 false/failure (never 0: that
/// would stop the route).
fn ret(ok: bool) -> c_int {
    if ok {
        1
    } else {
        -1
    }
}

pub(super) unsafe extern "C" fn w_msrp_relay(
    _m: *mut sys::sip_msg,
    _a: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_relay()", -1, do_relay)
}

// ---- shared by the cfg functions and KEMI --------------------------------

pub(super) fn do_relay() -> c_int {
    match script::current(|f| f.relay()) {
        Some(()) => 1,
        None => {
            log::error!("msrp_relay(): {}", script::ScriptError::NoFrame);
            -1
        }
    }
}

/// `msrp_is_request()` (want_request) / `msrp_is_reply()`.
pub(super) fn do_is(want_request: bool) -> c_int {
    ret(script::current(|f| f.head.is_request() == want_request).unwrap_or(false))
}

pub(super) fn do_cmap_save() -> c_int {
    let Some(cfg) = config::get() else {
        return -1;
    };
    script_result(
        script::current(|f| {
            f.cmap_save(
                cfg.auth_min_expires,
                cfg.auth_max_expires,
                cfg.use_path_addr.as_deref(),
            )
        }),
        "msrp_cmap_save()",
    )
}

pub(super) fn do_cmap_lookup() -> c_int {
    script_result(script::current(|f| f.cmap_lookup()), "msrp_cmap_lookup()")
}

pub(super) fn do_set_dst(addr: &[u8]) -> c_int {
    script_result(script::current(|f| f.set_dst(addr)), "msrp_set_dst()")
}

pub(super) fn do_relay_flags(flags: i32) -> c_int {
    ret(script::current(|f| f.set_relay_flags(flags as u32)).is_some())
}

/// `msrp_set_read_rate(bytes_per_second)`: a value out of range is a
/// config mistake, logged as an error (the limit stays as it was).
pub(super) fn do_set_read_rate(bytes_per_second: i64) -> c_int {
    match script::current(|f| f.set_read_rate(bytes_per_second)) {
        Some(Ok(())) => 1,
        Some(Err(e)) => {
            log::error!("msrp_set_read_rate(): {e}");
            -1
        }
        None => {
            log::error!("msrp_set_read_rate(): {}", script::ScriptError::NoFrame);
            -1
        }
    }
}

/// Reads a fixed-up string parameter.
///
/// # Safety
/// `msg` and `p` come from the core for a parameter fixed up with a spve
/// fixup.
unsafe fn svalue(msg: *mut sys::sip_msg, p: *mut c_char) -> Option<Vec<u8>> {
    if p.is_null() {
        return None;
    }
    let mut s: *const c_char = ptr::null();
    let mut len: c_int = 0;
    // SAFETY: p is a gparam_t produced by fixup_spve_*; the shim evaluates it
    // for msg and returns a pointer/length valid until the next evaluation.
    let rc = unsafe { sys::msrp_shim_get_svalue(msg, p.cast(), &mut s, &mut len) };
    if rc != 0 || s.is_null() || len < 0 {
        return None;
    }
    // SAFETY: s points to len readable bytes (see above); we copy them now.
    Some(unsafe { std::slice::from_raw_parts(s.cast::<u8>(), len as usize) }.to_vec())
}

pub(super) fn do_reply(
    code: Option<Vec<u8>>,
    text: Option<Vec<u8>>,
    hdrs: Option<Vec<u8>>,
) -> c_int {
    let (Some(code), Some(text)) = (code, text) else {
        log::error!("msrp_reply(): cannot evaluate parameters");
        return -1;
    };
    let hdrs = hdrs.unwrap_or_default();
    match script::current(|f| f.reply(&code, &text, &hdrs)) {
        Some(Ok(())) => 1,
        Some(Err(e)) => {
            log::debug!("msrp_reply(): {e}");
            -1
        }
        None => {
            log::error!("msrp_reply(): {}", script::ScriptError::NoFrame);
            -1
        }
    }
}

pub(super) unsafe extern "C" fn w_msrp_reply2(
    m: *mut sys::sip_msg,
    code: *mut c_char,
    text: *mut c_char,
) -> c_int {
    guard("msrp_reply()", -1, || {
        // SAFETY: parameters fixed up by fixup_spve_spve for this function.
        let (c, t) = unsafe { (svalue(m, code), svalue(m, text)) };
        do_reply(c, t, None)
    })
}

pub(super) unsafe extern "C" fn w_msrp_reply3(
    m: *mut sys::sip_msg,
    code: *mut c_char,
    text: *mut c_char,
    hdrs: *mut c_char,
) -> c_int {
    guard("msrp_reply()", -1, || {
        // SAFETY: parameters fixed up by fixup_spve_all for this function.
        let (c, t, h) = unsafe { (svalue(m, code), svalue(m, text), svalue(m, hdrs)) };
        if h.is_none() {
            log::error!("msrp_reply(): cannot evaluate the headers parameter");
            return -1;
        }
        do_reply(c, t, h)
    })
}

pub(super) unsafe extern "C" fn w_msrp_is_request(
    _m: *mut sys::sip_msg,
    _a: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_is_request()", -1, || do_is(true))
}

pub(super) unsafe extern "C" fn w_msrp_is_reply(
    _m: *mut sys::sip_msg,
    _a: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_is_reply()", -1, || do_is(false))
}

/// Script result of a connection-map call, as the stock module: 1 ok,
/// negative on failure (the reason logged at debug level).
fn script_result(r: Option<Result<(), script::ScriptError>>, what: &str) -> c_int {
    match r {
        Some(Ok(())) => 1,
        Some(Err(e)) => {
            log::debug!("{what}: {e}");
            -1
        }
        None => {
            log::error!("{what}: {}", script::ScriptError::NoFrame);
            -1
        }
    }
}

pub(super) unsafe extern "C" fn w_msrp_cmap_save(
    _m: *mut sys::sip_msg,
    _a: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_cmap_save()", -1, do_cmap_save)
}

pub(super) unsafe extern "C" fn w_msrp_cmap_lookup(
    _m: *mut sys::sip_msg,
    _a: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_cmap_lookup()", -1, do_cmap_lookup)
}

pub(super) unsafe extern "C" fn w_msrp_set_dst(
    m: *mut sys::sip_msg,
    addr: *mut c_char,
    sock: *mut c_char,
) -> c_int {
    guard("msrp_set_dst()", -1, || {
        // SAFETY: parameters fixed up by fixup_spve_all for this function.
        let (a, s) = unsafe { (svalue(m, addr), svalue(m, sock)) };
        let Some(a) = a else {
            log::error!("msrp_set_dst(): cannot evaluate the address");
            return -1;
        };
        if let Some(s) = s.filter(|s| !s.is_empty()) {
            log::debug!(
                "msrp_set_dst(): local socket {} ignored: the module sends from its own sockets",
                String::from_utf8_lossy(&s)
            );
        }
        do_set_dst(&a)
    })
}

/// # Safety
/// `p` is a parameter fixed up with fixup_igp_null for `m`.
unsafe fn ivalue(m: *mut sys::sip_msg, p: *mut c_char) -> Option<i32> {
    let mut v: c_int = 0;
    // SAFETY: see the function contract.
    (unsafe { sys::msrp_shim_get_ivalue(m, p.cast(), &mut v) } == 0).then_some(v)
}

pub(super) unsafe extern "C" fn w_msrp_relay_flags(
    m: *mut sys::sip_msg,
    flags: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_relay_flags()", -1, || {
        // SAFETY: fixed up by fixup_igp_null.
        let Some(v) = (unsafe { ivalue(m, flags) }) else {
            log::error!("msrp_relay_flags(): cannot evaluate the flags");
            return -1;
        };
        do_relay_flags(v)
    })
}

pub(super) unsafe extern "C" fn w_msrp_set_read_rate(
    m: *mut sys::sip_msg,
    rate: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_set_read_rate()", -1, || {
        // SAFETY: fixed up by fixup_igp_null.
        let Some(v) = (unsafe { ivalue(m, rate) }) else {
            log::error!("msrp_set_read_rate(): cannot evaluate the rate");
            return -1;
        };
        do_set_read_rate(i64::from(v))
    })
}

/// Accepted for stock configs: replies always go back on the connection the
/// request came on, so there are no reply flags to apply.
pub(super) unsafe extern "C" fn w_msrp_reply_flags(
    m: *mut sys::sip_msg,
    flags: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_reply_flags()", -1, || {
        // SAFETY: fixed up by fixup_igp_null.
        ret(unsafe { ivalue(m, flags) }.is_some())
    })
}

/// Panics on purpose when `test_mode` is 1, so the test-suite can prove the
/// guard keeps Kamailio serving.
pub(super) unsafe extern "C" fn w_msrp_test_panic(
    _m: *mut sys::sip_msg,
    _a: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_test_panic()", -1, || {
        if config::get().is_some_and(|c| c.test_mode) {
            panic!("msrp_test_panic() called: deliberate panic for the FFI guard test");
        }
        log::error!("msrp_test_panic() needs modparam(\"msrp_relay\", \"test_mode\", 1)");
        -1
    })
}
