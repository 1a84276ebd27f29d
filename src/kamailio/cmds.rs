//! The cfg script functions and their KEMI exports, generated from the one
//! declaration in `msrp_engine::script_functions!`: per function a cfg
//! wrapper (parameters read through the fixup its signature implies), a
//! KEMI wrapper when it has a KEMI name, and their table entries
//! ([`CMD_LIST`], [`KEMI_LIST`]). The handlers are safe Rust in
//! `msrp_engine::script::functions`; [`finish`] is the one trampoline from
//! their [`Outcome`] to Kamailio's 1 / -1. Each entry runs under [`guard`].

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

use super::guard::guard;
use super::kemi::{kfn, KemiParam, Msg};
use super::sys;
use super::table;
use msrp_engine::script::functions::{self as handlers, FnError, Outcome, ParamKind};

/// `cmd_function`: what the core calls for up to two parameters.
pub(super) type CmdFn = unsafe extern "C" fn(Msg, *mut c_char, *mut c_char) -> c_int;
/// `cmd_function3` (sr_module.h), called for three parameters.
type CmdFn3 = unsafe extern "C" fn(Msg, *mut c_char, *mut c_char, *mut c_char) -> c_int;
type FixupFn = unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int;

/// The script's value of a handler's outcome: 1 true/success, -1
/// false/failure (never 0: that would stop the route); failures are logged
/// at the level the error asks for.
fn finish(name: &str, r: Outcome) -> c_int {
    match r {
        Ok(true) => 1,
        Ok(false) => -1,
        Err(e) => {
            log::log!(e.level(), "{name}: {e}");
            -1
        }
    }
}

/// A parameter type of the declaration (`Str`, `Int`): how the cfg and the
/// KEMI wrappers read it.
trait Arg {
    type Value;
    type Kemi: KemiParam;
    const KIND: ParamKind;
    /// # Safety
    /// `p` is this parameter of a call for `m`, fixed up with the fixup
    /// [`fixups`] chose for the function's parameter kinds.
    unsafe fn from_cfg(m: Msg, p: *mut c_char) -> Option<Self::Value>;
    /// # Safety
    /// `k` is this parameter as the KEMI engine passed it.
    unsafe fn from_kemi(k: Self::Kemi) -> Option<Self::Value>;
}

/// A string parameter (`fixup_spve_*`; KEMI `str *`).
struct Str;
/// An integer parameter (`fixup_igp_*`; KEMI `int`).
struct Int;

impl Arg for Str {
    type Value = Vec<u8>;
    type Kemi = *mut sys::str_;
    const KIND: ParamKind = ParamKind::Str;

    unsafe fn from_cfg(m: Msg, p: *mut c_char) -> Option<Vec<u8>> {
        if p.is_null() {
            return None;
        }
        let mut s: *const c_char = ptr::null();
        let mut len: c_int = 0;
        // SAFETY: p is a gparam_t produced by fixup_spve_* (the contract);
        // the shim evaluates it for m and returns a pointer/length valid
        // until the next evaluation.
        let rc = unsafe { sys::msrp_shim_get_svalue(m, p.cast(), &mut s, &mut len) };
        if rc != 0 || s.is_null() || len < 0 {
            return None;
        }
        // SAFETY: s points to len readable bytes (see above); copied now.
        Some(unsafe { std::slice::from_raw_parts(s.cast::<u8>(), len as usize) }.to_vec())
    }

    unsafe fn from_kemi(k: *mut sys::str_) -> Option<Vec<u8>> {
        if k.is_null() {
            return None;
        }
        // SAFETY: a non-null `str *` from the KEMI engine (the contract).
        let s = unsafe { &*k };
        if s.s.is_null() || s.len < 0 {
            return Some(Vec::new());
        }
        // SAFETY: s.s points to s.len bytes.
        Some(unsafe { std::slice::from_raw_parts(s.s.cast::<u8>(), s.len as usize) }.to_vec())
    }
}

impl Arg for Int {
    type Value = i32;
    type Kemi = c_int;
    const KIND: ParamKind = ParamKind::Int;

    unsafe fn from_cfg(m: Msg, p: *mut c_char) -> Option<i32> {
        let mut v: c_int = 0;
        // SAFETY: p was fixed up with fixup_igp_null for m (the contract).
        (unsafe { sys::msrp_shim_get_ivalue(m, p.cast(), &mut v) } == 0).then_some(v)
    }

    unsafe fn from_kemi(k: c_int) -> Option<i32> {
        Some(k)
    }
}

/// The core's fixup (and its free) for parameters of these kinds: strings
/// are evaluated per call (`$var`, string expressions), one integer may be
/// a `$var` too. Other mixes fail the build.
const fn fixups(kinds: &[ParamKind]) -> (Option<FixupFn>, Option<FixupFn>) {
    match kinds {
        [] => (None, None),
        [ParamKind::Int] => (Some(sys::fixup_igp_null), Some(sys::fixup_free_igp_null)),
        _ => {
            let mut i = 0;
            while i < kinds.len() {
                assert!(
                    matches!(kinds[i], ParamKind::Str),
                    "script functions take strings, or one integer"
                );
                i += 1;
            }
            (Some(sys::fixup_spve_all), Some(sys::fixup_free_spve_all))
        }
    }
}

/// The `cmd_export_t` of a function: `name`, wrapper `f`, its parameters'
/// fixups; callable from any route (ANY_ROUTE).
const fn cmd(name: &'static CStr, f: CmdFn, kinds: &[ParamKind]) -> sys::cmd_export_t {
    let (fixup, free_fixup) = fixups(kinds);
    sys::cmd_export_t {
        name: table::c_ptr(name),
        function: Some(f),
        param_no: kinds.len() as c_int,
        fixup,
        free_fixup,
        flags: u32::MAX,
    }
}

/// The value of parameter `$p` read by `$read`, or the function fails
/// with a log line naming it.
macro_rules! arg {
    ($read:expr, $what:expr, $p:ident) => {
        match $read {
            Some(v) => v,
            None => return finish($what, Err(FnError::Param(stringify!($p)))),
        }
    };
}

/// The cfg wrapper `cfg` and table entry `CMD` of one function, by arity
/// (the core calls `cmd_function` for up to two parameters and
/// `cmd_function3` for three).
macro_rules! cfg_entry {
    ($h:ident $name:literal ( $($p:ident : $k:ident),* ) [$m:ident $(, $unused:ident)*]) => {
        const WHAT: &str = concat!($name, "()");

        unsafe extern "C" fn cfg($m: Msg, $($p: *mut c_char,)* $($unused: *mut c_char),*) -> c_int {
            let _ = $m;
            guard(WHAT, -1, || {
                // SAFETY: the core passes each parameter fixed up with the
                // fixup `CMD` names for these kinds.
                $( let $p = arg!(unsafe { <$k as Arg>::from_cfg($m, $p) }, WHAT, $p); )*
                finish(WHAT, handlers::$h($($p),*))
            })
        }
    };
}

macro_rules! cmd_entry {
    ($h:ident $name:literal ()) => {
        cfg_entry!($h $name () [m, _a, _b]);
        pub(super) const CMD: sys::cmd_export_t = cmd(table::c_lit(concat!($name, "\0")), cfg, &[]);
    };
    ($h:ident $name:literal ($a:ident : $ka:ident)) => {
        cfg_entry!($h $name ($a: $ka) [m, _b]);
        pub(super) const CMD: sys::cmd_export_t =
            cmd(table::c_lit(concat!($name, "\0")), cfg, &[<$ka as Arg>::KIND]);
    };
    ($h:ident $name:literal ($a:ident : $ka:ident, $b:ident : $kb:ident)) => {
        cfg_entry!($h $name ($a: $ka, $b: $kb) [m]);
        pub(super) const CMD: sys::cmd_export_t = cmd(
            table::c_lit(concat!($name, "\0")),
            cfg,
            &[<$ka as Arg>::KIND, <$kb as Arg>::KIND],
        );
    };
    ($h:ident $name:literal ($a:ident : $ka:ident, $b:ident : $kb:ident, $c:ident : $kc:ident)) => {
        cfg_entry!($h $name ($a: $ka, $b: $kb, $c: $kc) [m]);
        pub(super) const CMD: sys::cmd_export_t = cmd(
            table::c_lit(concat!($name, "\0")),
            // SAFETY: the core calls a function with three parameters
            // through this pointer as `cmd_function3` (sr_module.h), exactly
            // as C modules store theirs.
            unsafe { std::mem::transmute::<CmdFn3, CmdFn>(cfg) },
            &[<$ka as Arg>::KIND, <$kb as Arg>::KIND, <$kc as Arg>::KIND],
        );
    };
}

/// The KEMI wrapper `kemi` and table entry `KEMI` of one function.
macro_rules! kemi_entry {
    ($h:ident $kemi:literal ( $($p:ident : $k:ident),* )) => {
        const KEMI_WHAT: &str = concat!("KSR.msrp_relay.", $kemi);

        unsafe extern "C" fn kemi(_m: Msg, $($p: <$k as Arg>::Kemi),*) -> c_int {
            guard(KEMI_WHAT, -1, || {
                // SAFETY: parameters as the KEMI engine passes them for the
                // types `KEMI` declares.
                $( let $p = arg!(unsafe { <$k as Arg>::from_kemi($p) }, KEMI_WHAT, $p); )*
                finish(KEMI_WHAT, handlers::$h($($p),*))
            })
        }

        pub(super) const KEMI: sys::sr_kemi_t =
            kfn::<unsafe extern "C" fn(Msg, $(<$k as Arg>::Kemi),*) -> c_int>(
                table::c_lit(concat!($kemi, "\0")),
                kemi,
            );
    };
}

/// `$h::KEMI` (the literal only selects the functions that have one).
macro_rules! kemi_item {
    ($h:ident $kemi:literal) => {
        $h::KEMI
    };
}

macro_rules! function_exports {
    ($( $(#[doc = $doc:literal])+ $h:ident $name:literal $params:tt
        $(kemi $kemi:literal)? $(cfg_only)? ; )*) => {
        $(
            mod $h {
                use super::*;
                cmd_entry!($h $name $params);
                $( kemi_entry!($h $kemi $params); )?
            }
        )*

        /// The cfg functions, in declaration order.
        pub(super) const CMD_LIST: &[sys::cmd_export_t] = &[ $( $h::CMD ),* ];

        /// The KEMI functions (`KSR.msrp_relay.*`), in declaration order.
        pub(super) const KEMI_LIST: &[sys::sr_kemi_t] = &[ $( $( kemi_item!($h $kemi), )? )* ];
    };
}

msrp_engine::script_functions!(function_exports);
