//! The module's face towards Kamailio: `mod_register`, `exports`,
//! `module_version`, `module_flags`, the parameter, function and
//! pseudo-variable tables, and the life-cycle and parameter entry points
//! (script functions are generated in `cmds.rs`, `$msrp(...)` is in
//! `pv.rs`). Each entry runs under [`guard`].

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

use super::cmds::CMD_LIST;
use super::guard::guard;
use super::pv::{pv_get_msrp, pv_parse_msrp_name};
use super::sys;
use super::table;
use msrp_engine::config;

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

/// Called by the core when it loads the module (before modparams):
/// registers the KEMI functions and the `{msrpuri.key}` transformation.
///
/// # Safety
/// Called by the Kamailio core only, with the module's path.
#[no_mangle]
pub unsafe extern "C" fn mod_register(
    path: *mut c_char,
    _dlflags: *mut c_int,
    _p1: *mut c_void,
    _p2: *mut c_void,
) -> c_int {
    guard("mod_register", -1, || {
        // SAFETY: the KEMI table and the transformation table live for the
        // process; path is the module path given by the core.
        unsafe {
            if sys::sr_kemi_modules_add(super::kemi::KEMI.get().cast()) < 0 {
                return -1;
            }
            sys::register_trans_mod(path, super::transform::TRANS.get().cast())
        }
    })
}

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
