//! The `{msrpuri.key}` transformation (as the stock msrp module's): parts of
//! an MSRP URI — `scheme user userinfo host port session proto params`.
//! Registered from `mod_register` (exports.rs), which the core calls when
//! it loads the module (before modparams).

use std::cell::RefCell;
use std::ffi::{c_char, c_int};

use msrp_core::MsrpUri;

use super::exports::Exported;
use super::guard::guard;
use super::sys;
use super::table;

/// Keys of `{msrpuri.key}`, as `trans_t.subtype`.
const KEYS: [&str; 8] = [
    "scheme", "user", "userinfo", "host", "port", "session", "proto", "params",
];
/// `trans_t.type` for this class (any value private to the class).
const TR_MSRPURI: c_int = 0x4d53; // "MS"

thread_local! {
    /// The last result: the core reads it after the call returns.
    static RESULT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One part of `uri`; an absent part is empty.
pub fn uri_part(uri: &[u8], key: usize) -> Option<String> {
    let u = MsrpUri::parse(uri).ok()?;
    let user = u.user.clone().unwrap_or_default();
    Some(match *KEYS.get(key)? {
        "scheme" => if u.secure { "msrps" } else { "msrp" }.to_string(),
        "user" => user.split(':').next().unwrap_or("").to_string(),
        "userinfo" => user,
        "host" => match &u.host {
            msrp_core::Host::Ipv4(a) => a.to_string(),
            msrp_core::Host::Ipv6(a) => format!("[{a}]"),
            msrp_core::Host::Name(n) => n.clone(),
        },
        "port" => u.port.map(|p| p.to_string()).unwrap_or_default(),
        "session" => u.session_id.clone().unwrap_or_default(),
        "proto" => u.transport.clone(),
        _ => u
            .params
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect::<Vec<_>>()
            .join(";"),
    })
}

unsafe extern "C" fn tr_eval_msrpuri(
    _msg: *mut sys::sip_msg,
    _tp: *mut sys::tr_param_t,
    subtype: c_int,
    val: *mut sys::pv_value_t,
) -> c_int {
    guard("{msrpuri}", -1, || {
        if val.is_null() {
            return -1;
        }
        // SAFETY: val is the value being transformed, owned by the core.
        let v = unsafe { &mut *val };
        if v.flags & sys::PV_VAL_STR as c_int == 0 || v.rs.s.is_null() || v.rs.len <= 0 {
            return -1;
        }
        // SAFETY: rs points to rs.len readable bytes (PV_VAL_STR).
        let input = unsafe { std::slice::from_raw_parts(v.rs.s.cast::<u8>(), v.rs.len as usize) };
        let Some(part) = uri_part(input, subtype as usize) else {
            log::error!("invalid MSRP URI [{}]", String::from_utf8_lossy(input));
            return -1;
        };
        RESULT.with(|r| {
            let mut r = r.borrow_mut();
            r.clear();
            r.extend_from_slice(part.as_bytes());
            // SAFETY: a plain C struct; the string points into RESULT,
            // which stays untouched until the next evaluation.
            *v = unsafe { std::mem::zeroed() };
            v.flags = sys::PV_VAL_STR as _;
            v.rs.s = r.as_ptr() as *mut c_char;
            v.rs.len = r.len() as c_int;
        });
        0
    })
}

unsafe extern "C" fn tr_parse_msrpuri(input: *mut sys::str_, t: *mut sys::trans_t) -> *mut c_char {
    guard("{msrpuri} parse", std::ptr::null_mut(), || {
        if input.is_null() || t.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: the core passes the text after "msrpuri." and the
        // transformation being built.
        let (s, t) = unsafe { (&*input, &mut *t) };
        if s.s.is_null() || s.len <= 0 {
            return std::ptr::null_mut();
        }
        // SAFETY: s.s points to s.len bytes.
        let text = unsafe { std::slice::from_raw_parts(s.s.cast::<u8>(), s.len as usize) };
        let end = text
            .iter()
            .position(|&c| c == b',' || c == b'}')
            .unwrap_or(text.len());
        let name = String::from_utf8_lossy(&text[..end])
            .trim()
            .to_ascii_lowercase();
        let Some(key) = KEYS.iter().position(|k| *k == name) else {
            log::error!("unknown transformation msrpuri.{name}");
            return std::ptr::null_mut();
        };
        t.type_ = TR_MSRPURI;
        t.subtype = key as c_int;
        t.trf = Some(tr_eval_msrpuri);
        t.name = sys::str_ {
            s: s.s,
            len: end as c_int,
        };
        // SAFETY: end <= s.len: the returned pointer stays in the input.
        unsafe { s.s.add(end) }
    })
}

const TRANS_LIST: &[sys::tr_export_t] = &[sys::tr_export_t {
    tclass: table::static_str(c"msrpuri"),
    tparse: Some(tr_parse_msrpuri),
}];

pub(super) static TRANS: Exported<[sys::tr_export_t; TRANS_LIST.len() + 1]> =
    Exported::new(table::null_terminated(
        TRANS_LIST,
        sys::tr_export_t {
            tclass: table::NULL_STR,
            tparse: None,
        },
    ));
