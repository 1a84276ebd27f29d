//! The module's face towards Kamailio: `exports`, `module_version`,
//! `module_flags`, the parameter, function and pseudo-variable tables, and
//! every `extern "C"` entry point. Each entry runs under [`guard`].

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

use super::guard::guard;
use super::sys;
use super::table;
use msrp_engine::config;
use msrp_engine::script::{self, PvKey, PvValue};

/// A C-visible static that Kamailio may read and write.
#[repr(transparent)]
pub struct Exported<T>(UnsafeCell<T>);
// SAFETY: Kamailio accesses these tables from one thread per process (its
// processes are forked, not threaded); Rust only hands out raw pointers.
unsafe impl<T> Sync for Exported<T> {}

impl<T> Exported<T> {
    pub const fn new(v: T) -> Self {
        Exported(UnsafeCell::new(v))
    }
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// Compared by the core with SER_FULL_VERSION (a `char *` variable).
#[no_mangle]
#[used]
pub static module_version: Exported<*const c_char> =
    Exported::new(sys::abi::SER_FULL_VERSION.as_ptr());

/// Compared by the core with SER_COMPILE_FLAGS.
#[no_mangle]
#[used]
pub static module_flags: Exported<*const c_char> =
    Exported::new(sys::abi::SER_COMPILE_FLAGS.as_ptr());

/// The module's name: `exports.name`, `modparam("msrp_relay", ...)`, and
/// the KEMI module `KSR.msrp_relay`.
pub(super) const MODULE_NAME: &CStr = c"msrp_relay";

type CmdFn = unsafe extern "C" fn(*mut sys::sip_msg, *mut c_char, *mut c_char) -> c_int;
type FixupFn = unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int;

const fn cmd(
    name: &'static CStr,
    f: CmdFn,
    params: c_int,
    fixup: Option<FixupFn>,
    free_fixup: Option<FixupFn>,
) -> sys::cmd_export_t {
    sys::cmd_export_t {
        name: table::c_ptr(name),
        function: Some(f),
        param_no: params,
        fixup,
        free_fixup,
        flags: u32::MAX, // ANY_ROUTE
    }
}

/// The cfg functions of msrp_relay. `msrp_reply/3` is called by the core with
/// a third `char *` argument (cmd_function3); the table stores it as a
/// two-argument pointer, exactly as C modules do.
const CMD_LIST: &[sys::cmd_export_t] = &[
    cmd(c"msrp_relay", w_msrp_relay, 0, None, None),
    cmd(
        c"msrp_reply",
        w_msrp_reply2,
        2,
        Some(sys::fixup_spve_spve),
        Some(sys::fixup_free_spve_spve),
    ),
    sys::cmd_export_t {
        name: table::c_ptr(c"msrp_reply"),
        // SAFETY: the core calls a 3-parameter function through this pointer
        // (sr_module.h cmd_function3); the ABI of the extra argument matches.
        function: Some(unsafe {
            std::mem::transmute::<
                unsafe extern "C" fn(
                    *mut sys::sip_msg,
                    *mut c_char,
                    *mut c_char,
                    *mut c_char,
                ) -> c_int,
                CmdFn,
            >(w_msrp_reply3)
        }),
        param_no: 3,
        fixup: Some(sys::fixup_spve_all),
        free_fixup: Some(sys::fixup_free_spve_all),
        flags: u32::MAX,
    },
    cmd(c"msrp_is_request", w_msrp_is_request, 0, None, None),
    cmd(c"msrp_is_reply", w_msrp_is_reply, 0, None, None),
    cmd(c"msrp_test_panic", w_msrp_test_panic, 0, None, None),
    cmd(c"msrp_cmap_save", w_msrp_cmap_save, 0, None, None),
    cmd(c"msrp_cmap_lookup", w_msrp_cmap_lookup, 0, None, None),
    cmd(
        c"msrp_set_dst",
        w_msrp_set_dst,
        2,
        Some(sys::fixup_spve_all),
        Some(sys::fixup_free_spve_all),
    ),
    cmd(
        c"msrp_relay_flags",
        w_msrp_relay_flags,
        1,
        Some(sys::fixup_igp_null),
        Some(sys::fixup_free_igp_null),
    ),
    cmd(
        c"msrp_reply_flags",
        w_msrp_reply_flags,
        1,
        Some(sys::fixup_igp_null),
        Some(sys::fixup_free_igp_null),
    ),
];

static CMDS: Exported<[sys::cmd_export_t; CMD_LIST.len() + 1]> =
    Exported::new(table::null_terminated(
        CMD_LIST,
        sys::cmd_export_t {
            name: ptr::null_mut(),
            function: None,
            param_no: 0,
            fixup: None,
            free_fixup: None,
            flags: 0,
        },
    ));

/// `PARAM_USE_FUNC` (sr_module.h: `1U<<(8*sizeof(int)-1)`), which bindgen
/// cannot evaluate.
const PARAM_USE_FUNC: u32 = 1 << (8 * std::mem::size_of::<c_int>() - 1);

type ParamFn = unsafe extern "C" fn(u32, *mut c_void) -> c_int;

/// The table entry of a declared parameter, set through `f`.
const fn param(p: config::Param, f: ParamFn) -> sys::param_export_t {
    let d = p.decl();
    sys::param_export_t {
        name: table::c_ptr(d.c_name),
        type_: if d.kind.takes_string() {
            sys::PARAM_STRING
        } else {
            sys::PARAM_INT
        } | PARAM_USE_FUNC,
        param_pointer: f as *mut c_void,
    }
}

/// The `param_export_t` entries, one per parameter declared in
/// `msrp_engine::modparams!`, each with its own setter ([`set_param`] for
/// that parameter: Kamailio passes a PARAM_USE_FUNC callback the value but
/// not the name).
macro_rules! param_exports {
    ($( $(#[doc = $doc:literal])+ $id:ident $name:literal $kind:ident { $($spec:tt)* } )*) => {
        const PARAM_LIST: &[sys::param_export_t] = &[
            $( param(config::Param::$id, set_param::<{ config::Param::$id as usize }>), )*
        ];
    };
}
msrp_engine::modparams!(param_exports);
const _: () = assert!(PARAM_LIST.len() == config::Param::COUNT);

static PARAMS: Exported<[sys::param_export_t; PARAM_LIST.len() + 1]> =
    Exported::new(table::null_terminated(
        PARAM_LIST,
        sys::param_export_t {
            name: ptr::null_mut(),
            type_: 0,
            param_pointer: ptr::null_mut(),
        },
    ));

const PV_LIST: &[sys::pv_export_t] = &[sys::pv_export_t {
    name: table::static_str(c"msrp"),
    type_: sys::PVT_OTHER,
    getf: Some(pv_get_msrp),
    setf: None,
    parse_name: Some(pv_parse_msrp_name),
    parse_index: None,
    init_param: None,
    iparam: 0,
}];

static PVS: Exported<[sys::pv_export_t; PV_LIST.len() + 1]> =
    Exported::new(table::null_terminated(
        PV_LIST,
        sys::pv_export_t {
            name: table::NULL_STR,
            type_: 0,
            getf: None,
            setf: None,
            parse_name: None,
            parse_index: None,
            init_param: None,
            iparam: 0,
        },
    ));

/// The module's exports structure, looked up by name with dlsym.
#[no_mangle]
#[used]
pub static exports: Exported<sys::module_exports> = Exported::new(sys::module_exports {
    name: table::c_ptr(MODULE_NAME),
    dlflags: sys::DEFAULT_DLFLAGS,
    cmds: CMDS.get().cast(),
    params: PARAMS.get().cast(),
    rpc_methods: super::rpc::RPC.get().cast(),
    pv_items: PVS.get().cast(),
    response_f: None,
    init_mod_f: Some(mod_init),
    init_child_f: Some(child_init),
    destroy_mod_f: Some(mod_destroy),
});

// ---- module life cycle -------------------------------------------------

unsafe extern "C" fn mod_init() -> c_int {
    guard("mod_init", -1, || match super::process::mod_init() {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            -1
        }
    })
}

unsafe extern "C" fn child_init(rank: c_int) -> c_int {
    guard("child_init", -1, || {
        match super::process::child_init(rank) {
            Ok(()) => 0,
            Err(e) => {
                log::error!("{e}");
                -1
            }
        }
    })
}

unsafe extern "C" fn mod_destroy() {
    guard("mod_destroy", (), || {})
}

// ---- parameters ----------------------------------------------------------

/// # Safety
/// `val` is a NUL-terminated string owned by the core (PARAM_STRING).
unsafe fn param_str<'a>(val: *mut c_void) -> Option<&'a str> {
    if val.is_null() {
        return None;
    }
    // SAFETY: for PARAM_STRING the core passes a NUL-terminated char*.
    unsafe { CStr::from_ptr(val as *const c_char) }
        .to_str()
        .ok()
}

/// The PARAM_USE_FUNC setter of parameter `config::Param::ALL[P]`.
unsafe extern "C" fn set_param<const P: usize>(_ty: u32, val: *mut c_void) -> c_int {
    let Some(&p) = config::Param::ALL.get(P) else {
        return -1;
    };
    let name = p.decl().name;
    guard(&format!("modparam {name}"), -1, || {
        let value = if p.decl().kind.takes_string() {
            // SAFETY: `param` registers this parameter as PARAM_STRING.
            match unsafe { param_str(val) } {
                Some(s) => config::ParamValue::Str(s),
                None => {
                    log::error!("modparam {name}: not a valid string");
                    return -1;
                }
            }
        } else {
            // PARAM_INT values arrive as the integer cast to a pointer.
            config::ParamValue::Int(val as isize as i64)
        };
        match config::set(p, value) {
            Ok(()) => 0,
            Err(e) => {
                log::error!("modparam {e}");
                -1
            }
        }
    })
}

// ---- cfg functions ---------------------------------------------------------

/// Script return codes: 1 true/success, -1 false/failure (never 0: that
/// would stop the route).
fn ret(ok: bool) -> c_int {
    if ok {
        1
    } else {
        -1
    }
}

unsafe extern "C" fn w_msrp_relay(
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

unsafe extern "C" fn w_msrp_reply2(
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

unsafe extern "C" fn w_msrp_reply3(
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

unsafe extern "C" fn w_msrp_is_request(
    _m: *mut sys::sip_msg,
    _a: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_is_request()", -1, || do_is(true))
}

unsafe extern "C" fn w_msrp_is_reply(
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

unsafe extern "C" fn w_msrp_cmap_save(
    _m: *mut sys::sip_msg,
    _a: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_cmap_save()", -1, do_cmap_save)
}

unsafe extern "C" fn w_msrp_cmap_lookup(
    _m: *mut sys::sip_msg,
    _a: *mut c_char,
    _b: *mut c_char,
) -> c_int {
    guard("msrp_cmap_lookup()", -1, do_cmap_lookup)
}

unsafe extern "C" fn w_msrp_set_dst(
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

unsafe extern "C" fn w_msrp_relay_flags(
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

/// Accepted for stock configs: replies always go back on the connection the
/// request came on, so there are no reply flags to apply.
unsafe extern "C" fn w_msrp_reply_flags(
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
unsafe extern "C" fn w_msrp_test_panic(
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

// ---- $msrp(key) --------------------------------------------------------------

unsafe extern "C" fn pv_parse_msrp_name(sp: *mut sys::pv_spec_t, input: *mut sys::str_) -> c_int {
    guard("$msrp(name)", -1, || {
        if sp.is_null() || input.is_null() {
            return -1;
        }
        // SAFETY: the core passes a valid str for the inner name.
        let name = unsafe {
            let s = &*input;
            if s.s.is_null() || s.len < 0 {
                return -1;
            }
            std::slice::from_raw_parts(s.s.cast::<u8>(), s.len as usize)
        };
        match PvKey::parse(name) {
            Some(k) => {
                // SAFETY: sp is the spec being parsed, owned by the core.
                unsafe { sys::msrp_shim_pv_set_name_id(sp.cast(), k as i32) };
                0
            }
            None => {
                log::error!("unknown key $msrp({})", String::from_utf8_lossy(name));
                -1
            }
        }
    })
}

unsafe extern "C" fn pv_get_msrp(
    msg: *mut sys::sip_msg,
    param: *mut sys::pv_param_t,
    res: *mut sys::pv_value_t,
) -> c_int {
    guard("$msrp(...)", -1, || {
        // SAFETY: param comes from the core for a spec parsed by
        // pv_parse_msrp_name.
        let id = unsafe { sys::msrp_shim_pv_get_name_id(param.cast()) };
        let Some(key) = PvKey::from_id(id) else {
            return -1;
        };
        let r = script::current(|f| {
            let v = f.pv(key);
            // SAFETY: string values point into the current frame context,
            // which lives until the route run for this frame ends; the core
            // uses them within the statement being executed.
            unsafe { set_pv(msg, param, res, v) }
        });
        r.unwrap_or(-1)
    })
}

/// # Safety
/// msg/param/res as passed to a PV getter; string data must outlive the
/// statement being executed.
unsafe fn set_pv(
    msg: *mut sys::sip_msg,
    param: *mut sys::pv_param_t,
    res: *mut sys::pv_value_t,
    v: PvValue<'_>,
) -> c_int {
    let mk = |b: &[u8]| sys::str_ {
        s: b.as_ptr() as *mut c_char,
        len: b.len() as c_int,
    };
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        match v {
            PvValue::Null => sys::pv_get_null(msg, param, res),
            PvValue::Str(b) => {
                let mut s = mk(b);
                sys::pv_get_strval(msg, param, res, &mut s)
            }
            PvValue::Int(i) => sys::pv_get_sintval(msg, param, res, i as c_int),
            PvValue::StrInt(b, i) => {
                let mut s = mk(b);
                sys::pv_get_strintval(msg, param, res, &mut s, i as c_int)
            }
            PvValue::IntStr(i, b) => {
                let mut s = mk(b);
                sys::pv_get_intstrval(msg, param, res, i as c_int, &mut s)
            }
        }
    }
}
