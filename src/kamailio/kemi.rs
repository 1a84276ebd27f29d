//! KEMI exports (Lua/Python/JS routing scripts): `KSR.msrp_relay.relay()`,
//! `reply(code, text, hdrs)`, `is_request()`, `is_reply()`,
//! `set_dst(addr, sock)`, `relay_flags(n)`, `reply_flags(n)`,
//! `set_read_rate(bytes_per_second)`,
//! `cmap_save()`, `cmap_lookup()` — the stock module's KEMI functions under
//! this module's name. Registered from `mod_register`.

use std::ffi::{c_int, c_void, CStr};

use super::cmds;
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
    guard("KSR.msrp_relay.relay", -1, cmds::do_relay)
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
        cmds::do_reply(c, t, h)
    })
}

unsafe extern "C" fn ki_is_request(_m: *mut sys::sip_msg) -> c_int {
    guard("KSR.msrp_relay.is_request", -1, || cmds::do_is(true))
}

unsafe extern "C" fn ki_is_reply(_m: *mut sys::sip_msg) -> c_int {
    guard("KSR.msrp_relay.is_reply", -1, || cmds::do_is(false))
}

unsafe extern "C" fn ki_set_dst(
    _m: *mut sys::sip_msg,
    addr: *mut sys::str_,
    _sock: *mut sys::str_,
) -> c_int {
    guard("KSR.msrp_relay.set_dst", -1, || {
        // SAFETY: parameter from the KEMI engine.
        match unsafe { kstr(addr) } {
            Some(a) => cmds::do_set_dst(&a),
            None => -1,
        }
    })
}

unsafe extern "C" fn ki_relay_flags(_m: *mut sys::sip_msg, flags: c_int) -> c_int {
    guard("KSR.msrp_relay.relay_flags", -1, || {
        cmds::do_relay_flags(flags)
    })
}

unsafe extern "C" fn ki_reply_flags(_m: *mut sys::sip_msg, _flags: c_int) -> c_int {
    guard("KSR.msrp_relay.reply_flags", -1, || 1)
}

unsafe extern "C" fn ki_set_read_rate(_m: *mut sys::sip_msg, rate: c_int) -> c_int {
    guard("KSR.msrp_relay.set_read_rate", -1, || {
        cmds::do_set_read_rate(i64::from(rate))
    })
}

unsafe extern "C" fn ki_cmap_save(_m: *mut sys::sip_msg) -> c_int {
    guard("KSR.msrp_relay.cmap_save", -1, cmds::do_cmap_save)
}

unsafe extern "C" fn ki_cmap_lookup(_m: *mut sys::sip_msg) -> c_int {
    guard("KSR.msrp_relay.cmap_lookup", -1, cmds::do_cmap_lookup)
}

const N: c_int = sys::SR_KEMIP_NONE as c_int;
const S: c_int = sys::SR_KEMIP_STR as c_int;
const I: c_int = sys::SR_KEMIP_INT as c_int;

/// A KEMI parameter type and its `SR_KEMIP_*` code.
trait KemiParam {
    const TYPE: c_int;
}

impl KemiParam for *mut sys::str_ {
    const TYPE: c_int = S;
}

impl KemiParam for c_int {
    const TYPE: c_int = I;
}

type Msg = *mut sys::sip_msg;

/// A KEMI function pointer type (returning int); `PTYPES` is what the
/// engine passes it, derived from its parameter types.
trait KemiFn: Copy {
    const PTYPES: [c_int; 6];
}

impl KemiFn for unsafe extern "C" fn(Msg) -> c_int {
    const PTYPES: [c_int; 6] = [N; 6];
}

impl<A: KemiParam> KemiFn for unsafe extern "C" fn(Msg, A) -> c_int {
    const PTYPES: [c_int; 6] = [A::TYPE, N, N, N, N, N];
}

impl<A: KemiParam, B: KemiParam> KemiFn for unsafe extern "C" fn(Msg, A, B) -> c_int {
    const PTYPES: [c_int; 6] = [A::TYPE, B::TYPE, N, N, N, N];
}

impl<A: KemiParam, B: KemiParam, C: KemiParam> KemiFn
    for unsafe extern "C" fn(Msg, A, B, C) -> c_int
{
    const PTYPES: [c_int; 6] = [A::TYPE, B::TYPE, C::TYPE, N, N, N];
}

type Ki0 = unsafe extern "C" fn(Msg) -> c_int;
type KiInt = unsafe extern "C" fn(Msg, c_int) -> c_int;
type KiStr2 = unsafe extern "C" fn(Msg, *mut sys::str_, *mut sys::str_) -> c_int;
type KiStr3 = unsafe extern "C" fn(Msg, *mut sys::str_, *mut sys::str_, *mut sys::str_) -> c_int;

/// The KEMI entry `KSR.msrp_relay.<name>` for `f`: `kfn::<KiStr2>(..)`
/// only accepts a function of that signature, and the parameter types
/// the engine uses come from it.
const fn kfn<F: KemiFn>(name: &'static CStr, f: F) -> sys::sr_kemi_t {
    /// KEMI stores every function as `void *`.
    union FnPtr<F: Copy> {
        f: F,
        p: *mut c_void,
    }
    assert!(std::mem::size_of::<F>() == std::mem::size_of::<*mut c_void>());
    sys::sr_kemi_t {
        mname: table::static_str(exports::MODULE_NAME),
        fname: table::static_str(name),
        rtype: I,
        // SAFETY: KemiFn is implemented for function pointer types only,
        // which (asserted above) have the size of `void *`, as C assumes
        // when it stores them there.
        func: unsafe { FnPtr { f }.p },
        ptypes: F::PTYPES,
    }
}

const KEMI_LIST: &[sys::sr_kemi_t] = &[
    kfn::<Ki0>(c"relay", ki_relay),
    kfn::<KiStr3>(c"reply", ki_reply),
    kfn::<Ki0>(c"is_request", ki_is_request),
    kfn::<Ki0>(c"is_reply", ki_is_reply),
    kfn::<KiStr2>(c"set_dst", ki_set_dst),
    kfn::<KiInt>(c"relay_flags", ki_relay_flags),
    kfn::<KiInt>(c"reply_flags", ki_reply_flags),
    kfn::<KiInt>(c"set_read_rate", ki_set_read_rate),
    kfn::<Ki0>(c"cmap_save", ki_cmap_save),
    kfn::<Ki0>(c"cmap_lookup", ki_cmap_lookup),
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
