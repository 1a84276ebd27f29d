//! KEMI exports (Lua/Python/JS routing scripts): the `sr_kemi_t` table of
//! `KSR.msrp_relay.*` — the stock module's KEMI functions under this
//! module's name — built from the entries `cmds.rs` generates from the
//! script functions' declaration, and the typing that derives each entry's
//! parameter types from its wrapper's signature. Registered from
//! `mod_register`.

use std::ffi::{c_int, c_void, CStr};

use super::exports::{self, Exported};
use super::sys;
use super::table;

const N: c_int = sys::SR_KEMIP_NONE as c_int;
const S: c_int = sys::SR_KEMIP_STR as c_int;
const I: c_int = sys::SR_KEMIP_INT as c_int;

/// A KEMI parameter type and its `SR_KEMIP_*` code.
pub(super) trait KemiParam {
    const TYPE: c_int;
}

impl KemiParam for *mut sys::str_ {
    const TYPE: c_int = S;
}

impl KemiParam for c_int {
    const TYPE: c_int = I;
}

pub(super) type Msg = *mut sys::sip_msg;

/// A KEMI function pointer type (returning int); `PTYPES` is what the
/// engine passes it, derived from its parameter types.
pub(super) trait KemiFn: Copy {
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

/// The KEMI entry `KSR.msrp_relay.<name>` for `f`: the parameter types
/// the engine passes come from `F`, the wrapper's own signature.
pub(super) const fn kfn<F: KemiFn>(name: &'static CStr, f: F) -> sys::sr_kemi_t {
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

pub static KEMI: Exported<[sys::sr_kemi_t; super::cmds::KEMI_LIST.len() + 1]> =
    Exported::new(table::null_terminated(
        super::cmds::KEMI_LIST,
        sys::sr_kemi_t {
            mname: table::NULL_STR,
            fname: table::NULL_STR,
            rtype: 0,
            func: std::ptr::null_mut(),
            ptypes: [0; 6],
        },
    ));
