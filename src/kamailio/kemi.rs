//! KEMI exports (Lua/Python/JS routing scripts): `KSR.msrp_relay.relay()`,
//! `reply(code, text, hdrs)`, `is_request()`, `is_reply()`,
//! `set_dst(addr, sock)`, `relay_flags(n)`, `reply_flags(n)`,
//! `cmap_save()`, `cmap_lookup()` — the stock module's KEMI functions under
//! this module's name. Registered from `mod_register`.

use std::ffi::{c_char, c_int, c_void};

use super::exports::{self, Exported};
use super::guard::guard;
use super::sys;

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

const fn kfn(
    name: &'static std::ffi::CStr,
    len: c_int,
    f: *mut c_void,
    p: [c_int; 6],
) -> sys::sr_kemi_t {
    sys::sr_kemi_t {
        mname: sys::str_ {
            s: c"msrp_relay".as_ptr() as *mut c_char,
            len: 10,
        },
        fname: sys::str_ {
            s: name.as_ptr() as *mut c_char,
            len,
        },
        rtype: I,
        func: f,
        ptypes: p,
    }
}

pub static KEMI: Exported<[sys::sr_kemi_t; 10]> = Exported::new([
    kfn(c"relay", 5, ki_relay as *mut c_void, [N; 6]),
    kfn(c"reply", 5, ki_reply as *mut c_void, [S, S, S, N, N, N]),
    kfn(c"is_request", 10, ki_is_request as *mut c_void, [N; 6]),
    kfn(c"is_reply", 8, ki_is_reply as *mut c_void, [N; 6]),
    kfn(c"set_dst", 7, ki_set_dst as *mut c_void, [S, S, N, N, N, N]),
    kfn(
        c"relay_flags",
        11,
        ki_relay_flags as *mut c_void,
        [I, N, N, N, N, N],
    ),
    kfn(
        c"reply_flags",
        11,
        ki_reply_flags as *mut c_void,
        [I, N, N, N, N, N],
    ),
    kfn(c"cmap_save", 9, ki_cmap_save as *mut c_void, [N; 6]),
    kfn(c"cmap_lookup", 11, ki_cmap_lookup as *mut c_void, [N; 6]),
    sys::sr_kemi_t {
        mname: sys::str_ {
            s: std::ptr::null_mut(),
            len: 0,
        },
        fname: sys::str_ {
            s: std::ptr::null_mut(),
            len: 0,
        },
        rtype: 0,
        func: std::ptr::null_mut(),
        ptypes: [0; 6],
    },
]);
