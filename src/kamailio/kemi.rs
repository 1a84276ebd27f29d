//! KEMI exports (Lua/Python/JS routing scripts): `KSR.msrp_relay.relay()`,
//! `reply(code, text, hdrs)`, `is_request()`, `is_reply()`,
//! `set_dst(addr, sock)`, `relay_flags(n)`, `reply_flags(n)`,
//! `cmap_save()`, `cmap_lookup()` — the stock module's KEMI functions under
//! this module's name. Registered from `mod_register`.

use std::ffi::{c_int, c_void, CStr};

use super::exports::{self, Exported};
use super::guard::guard;
use super::sys;
use super::table;

/// Bytes of a KEMI `str*` parameter.
///
/// # Safety
/// `p` is null or a valid `str` from the KEMI engine.
unsafe fn kstr(p: *mut sys::str_) -> Option<Vec<u8>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: see the contract.
    let s = unsafe { &*p };
    if s.s.is_null() || s.len < 0 {
        return Some(Vec::new());
    }
    // SAFETY: s.s points to s.len bytes.
    Some(unsafe { std::slice::from_raw_parts(s.s.cast::<u8>(), s.len as usize) }.to_vec())
}

unsafe extern "C" fn ki_relay(_m: *mut sys::sip_msg) -> c_int {
    guard("KSR.msrp_relay.relay", -1, exports::do_relay)
}

unsafe extern "C" fn ki_reply(
    _m: *mut sys::sip_msg,
    code: *mut sys::str_,
    text: *mut sys::str_,
    hdrs: *mut sys::str_,
) -> c_int {
    guard("KSR.msrp_relay.reply", -1, || {
        // SAFETY: parameters from the KEMI engine.
        let (c, t, h) = unsafe { (kstr(code), kstr(text), kstr(hdrs)) };
        exports::do_reply(c, t, h)
    })
}

unsafe extern "C" fn ki_is_request(_m: *mut sys::sip_msg) -> c_int {
    guard("KSR.msrp_relay.is_request", -1, || exports::do_is(true))
}

unsafe extern "C" fn ki_is_reply(_m: *mut sys::sip_msg) -> c_int {
    guard("KSR.msrp_relay.is_reply", -1, || exports::do_is(false))
}

unsafe extern "C" fn ki_set_dst(
    _m: *mut sys::sip_msg,
    addr: *mut sys::str_,
    _sock: *mut sys::str_,
) -> c_int {
    guard("KSR.msrp_relay.set_dst", -1, || {
        // SAFETY: parameter from the KEMI engine.
        match unsafe { kstr(addr) } {
            Some(a) => exports::do_set_dst(&a),
            None => -1,
        }
    })
}

unsafe extern "C" fn ki_relay_flags(_m: *mut sys::sip_msg, flags: c_int) -> c_int {
    guard("KSR.msrp_relay.relay_flags", -1, || {
        exports::do_relay_flags(flags)
    })
}

unsafe extern "C" fn ki_reply_flags(_m: *mut sys::sip_msg, _flags: c_int) -> c_int {
    guard("KSR.msrp_relay.reply_flags", -1, || 1)
}

unsafe extern "C" fn ki_cmap_save(_m: *mut sys::sip_msg) -> c_int {
    guard("KSR.msrp_relay.cmap_save", -1, exports::do_cmap_save)
}

unsafe extern "C" fn ki_cmap_lookup(_m: *mut sys::sip_msg) -> c_int {
    guard("KSR.msrp_relay.cmap_lookup", -1, exports::do_cmap_lookup)
}

const N: c_int = sys::SR_KEMIP_NONE as c_int;
const S: c_int = sys::SR_KEMIP_STR as c_int;
const I: c_int = sys::SR_KEMIP_INT as c_int;

const fn kfn(name: &'static CStr, f: *mut c_void, p: [c_int; 6]) -> sys::sr_kemi_t {
    sys::sr_kemi_t {
        mname: table::static_str(exports::MODULE_NAME),
        fname: table::static_str(name),
        rtype: I,
        func: f,
        ptypes: p,
    }
}

const KEMI_LIST: &[sys::sr_kemi_t] = &[
    kfn(c"relay", ki_relay as *mut c_void, [N; 6]),
    kfn(c"reply", ki_reply as *mut c_void, [S, S, S, N, N, N]),
    kfn(c"is_request", ki_is_request as *mut c_void, [N; 6]),
    kfn(c"is_reply", ki_is_reply as *mut c_void, [N; 6]),
    kfn(c"set_dst", ki_set_dst as *mut c_void, [S, S, N, N, N, N]),
    kfn(
        c"relay_flags",
        ki_relay_flags as *mut c_void,
        [I, N, N, N, N, N],
    ),
    kfn(
        c"reply_flags",
        ki_reply_flags as *mut c_void,
        [I, N, N, N, N, N],
    ),
    kfn(c"cmap_save", ki_cmap_save as *mut c_void, [N; 6]),
    kfn(c"cmap_lookup", ki_cmap_lookup as *mut c_void, [N; 6]),
];

pub static KEMI: Exported<[sys::sr_kemi_t; KEMI_LIST.len() + 1]> =
    Exported::new(table::null_terminated(
        KEMI_LIST,
        sys::sr_kemi_t {
            mname: table::NULL_STR,
            fname: table::NULL_STR,
            rtype: 0,
            func: std::ptr::null_mut(),
            ptypes: [0; 6],
        },
    ));
