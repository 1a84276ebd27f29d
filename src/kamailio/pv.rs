//! `$msrp(key)`: the pseudo-variable's name parser and getter over the
//! frame the event route runs for. Each entry runs under [`guard`].

use std::ffi::{c_char, c_int};

use super::guard::guard;
use super::sys;
use msrp_engine::acct;
use msrp_engine::script::{self, PvKey, PvValue};

pub(super) unsafe extern "C" fn pv_parse_msrp_name(
    sp: *mut sys::pv_spec_t,
    input: *mut sys::str_,
) -> c_int {
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

pub(super) unsafe extern "C" fn pv_get_msrp(
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
        // event_route[msrp:session-end]: the ended session's values
        let ended = acct::ended(|e| {
            let v = e.pv(key).unwrap_or(PvValue::Null);
            // SAFETY: string values point into the ended session's record,
            // which lives until the route run for it ends.
            unsafe { set_pv(msg, param, res, v) }
        });
        if let Some(r) = ended {
            return r;
        }
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
    // The integer argument of pv_get_sintval & co. is `int` in Kamailio 5.6
    // and `long` in 6.0: `as _` casts to whichever the headers declare
    // (truncating to 32 bits where the core only holds an int).
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        match v {
            PvValue::Null => sys::pv_get_null(msg, param, res),
            PvValue::Str(b) => {
                let mut s = mk(b);
                sys::pv_get_strval(msg, param, res, &mut s)
            }
            PvValue::Int(i) => sys::pv_get_sintval(msg, param, res, i as _),
            PvValue::StrInt(b, i) => {
                let mut s = mk(b);
                sys::pv_get_strintval(msg, param, res, &mut s, i as _)
            }
            PvValue::IntStr(i, b) => {
                let mut s = mk(b);
                sys::pv_get_intstrval(msg, param, res, i as _, &mut s)
            }
        }
    }
}
