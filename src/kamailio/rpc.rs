//! RPC commands (kamcmd): `msrp_relay.transactions` lists the outstanding
//! forwarded SEND chunks of the shared transaction table;
//! `msrp_relay.reports` shows table usage and REPORT counters by cause.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use super::exports::Exported;
use super::sys;
use super::table;
use super::txtable;

/// Entries `msrp_relay.transactions` lists by default, and at most (an
/// entry is ~190 bytes of reply; kamcmd takes replies up to 128 KiB).
const LIST_DEFAULT: usize = 100;
const LIST_MAX: usize = 500;

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "?")).unwrap_or_default()
}

/// # Safety
/// rpc/ctx as handed to an RPC function by the core.
unsafe fn fault(rpc: *mut sys::rpc_t, ctx: *mut c_void, code: c_int, msg: &str) {
    let m = cstring(msg);
    // SAFETY: rpc is the core's rpc_t; fault takes (ctx, code, fmt, ...):
    // the message is passed through "%s".
    unsafe {
        if let Some(f) = (*rpc).fault {
            f(ctx, code, c"%s".as_ptr() as *mut c_char, m.as_ptr());
        }
    }
}

/// Opens a reply struct holding the table usage (`<used_name>`, capacity);
/// returns its handle for more members.
///
/// # Safety
/// rpc/ctx as handed to an RPC function by the core.
unsafe fn usage_struct(
    rpc: *mut sys::rpc_t,
    ctx: *mut c_void,
    used_name: &CStr,
    used: u32,
    capacity: u32,
) -> Option<*mut c_void> {
    // SAFETY: the caller's contract; "{" returns a struct handle in h and
    // "dd" takes two (name, int) pairs.
    unsafe {
        let (add, struct_add) = ((*rpc).add?, (*rpc).struct_add?);
        let mut h: *mut c_void = std::ptr::null_mut();
        if add(ctx, c"{".as_ptr() as *mut c_char, &mut h) < 0 {
            return None;
        }
        struct_add(
            h,
            c"dd".as_ptr() as *mut c_char,
            used_name.as_ptr(),
            used as c_int,
            c"capacity".as_ptr(),
            capacity as c_int,
        );
        Some(h)
    }
}

unsafe extern "C" fn rpc_transactions(rpc: *mut sys::rpc_t, ctx: *mut c_void) {
    super::guard::guard("rpc msrp_relay.transactions", (), || {
        // optional argument: how many entries to list
        let mut n: c_int = LIST_DEFAULT as c_int;
        // SAFETY: rpc/ctx from the core; "*d" scans an optional int into n.
        unsafe {
            if let Some(scan) = (*rpc).scan {
                scan(ctx, c"*d".as_ptr() as *mut c_char, &mut n as *mut c_int);
            }
        }
        let limit = (n.max(0) as usize).min(LIST_MAX);
        let Some(txtable::Snapshot {
            entries,
            used,
            capacity,
            ..
        }) = txtable::snapshot(limit)
        else {
            // SAFETY: arguments from the core.
            unsafe { fault(rpc, ctx, 500, "transaction table not initialised") };
            return;
        };
        // SAFETY: rpc/ctx from the core; variadic arguments match the format
        // strings ("s": NUL-terminated char*, "d": int); the CStrings live
        // until the calls return.
        unsafe {
            let (Some(add), Some(struct_add)) = ((*rpc).add, (*rpc).struct_add) else {
                return;
            };
            if usage_struct(rpc, ctx, c"used", used, capacity).is_none() {
                return;
            }
            for e in entries {
                let mut eh: *mut c_void = std::ptr::null_mut();
                if add(ctx, c"{".as_ptr() as *mut c_char, &mut eh) < 0 {
                    return;
                }
                let tid = cstring(&e.tid);
                let state = cstring(e.state);
                let msgid = cstring(&e.message_id);
                let origin = cstring(&e.origin);
                let fr = cstring(e.failure_report);
                let range = cstring(&format!(
                    "{}-*/{}",
                    e.range_start,
                    e.total.map_or("*".to_string(), |t| t.to_string())
                ));
                let expires = cstring(
                    &e.expires_in_ms
                        .map_or("sending".to_string(), |ms| format!("{ms} ms")),
                );
                struct_add(
                    eh,
                    c"sdssssssd".as_ptr() as *mut c_char,
                    c"tid".as_ptr(),
                    tid.as_ptr(),
                    c"worker".as_ptr(),
                    e.worker as c_int,
                    c"state".as_ptr(),
                    state.as_ptr(),
                    c"message_id".as_ptr(),
                    msgid.as_ptr(),
                    c"origin".as_ptr(),
                    origin.as_ptr(),
                    c"failure_report".as_ptr(),
                    fr.as_ptr(),
                    c"byte_range".as_ptr(),
                    range.as_ptr(),
                    c"expires_in".as_ptr(),
                    expires.as_ptr(),
                    c"age_ms".as_ptr(),
                    e.age_ms.min(i32::MAX as u64) as c_int,
                );
            }
        }
    })
}

unsafe extern "C" fn rpc_reports(rpc: *mut sys::rpc_t, ctx: *mut c_void) {
    super::guard::guard("rpc msrp_relay.reports", (), || {
        let Some(txtable::Snapshot {
            used,
            capacity,
            counters,
            ..
        }) = txtable::snapshot(0)
        else {
            // SAFETY: arguments from the core.
            unsafe { fault(rpc, ctx, 500, "transaction table not initialised") };
            return;
        };
        // SAFETY: as in rpc_transactions.
        unsafe {
            let Some(struct_add) = (*rpc).struct_add else {
                return;
            };
            let Some(h) = usage_struct(rpc, ctx, c"outstanding", used, capacity) else {
                return;
            };
            for (name, v) in counters {
                let n = cstring(name);
                struct_add(
                    h,
                    c"d".as_ptr() as *mut c_char,
                    n.as_ptr(),
                    v.min(i32::MAX as u64) as c_int,
                );
            }
        }
    })
}

unsafe extern "C" fn rpc_cmaplist(rpc: *mut sys::rpc_t, ctx: *mut c_void) {
    super::guard::guard("rpc msrp_relay.cmaplist", (), || {
        let list = super::cmapshm::list();
        // SAFETY: rpc/ctx from the core; "s" takes NUL-terminated char*,
        // "d" int; the CStrings live until the calls return.
        unsafe {
            let (Some(add), Some(struct_add)) = ((*rpc).add, (*rpc).struct_add) else {
                return;
            };
            for e in list {
                let mut h: *mut c_void = std::ptr::null_mut();
                if add(ctx, c"{".as_ptr() as *mut c_char, &mut h) < 0 {
                    return;
                }
                let (sess, peer, addr) = (cstring(&e.session), cstring(&e.peer), cstring(&e.addr));
                struct_add(
                    h,
                    c"sssddd".as_ptr() as *mut c_char,
                    c"SESSID".as_ptr(),
                    sess.as_ptr(),
                    c"PEER".as_ptr(),
                    peer.as_ptr(),
                    c"ADDR".as_ptr(),
                    addr.as_ptr(),
                    c"CONID".as_ptr(),
                    e.conid as c_int,
                    c"WORKER".as_ptr(),
                    e.worker as c_int,
                    c"EXPIRES".as_ptr(),
                    e.expires_in.clamp(0, i32::MAX as i64) as c_int,
                );
            }
        }
    })
}

unsafe extern "C" fn rpc_connections(rpc: *mut sys::rpc_t, ctx: *mut c_void) {
    super::guard::guard("rpc msrp_relay.connections", (), || {
        let list = super::connlist::list();
        // SAFETY: as in rpc_cmaplist.
        unsafe {
            let (Some(add), Some(struct_add)) = ((*rpc).add, (*rpc).struct_add) else {
                return;
            };
            for e in list.into_iter().take(LIST_MAX) {
                let mut h: *mut c_void = std::ptr::null_mut();
                if add(ctx, c"{".as_ptr() as *mut c_char, &mut h) < 0 {
                    return;
                }
                let (dir, peer, local) =
                    (cstring(e.direction), cstring(&e.peer), cstring(&e.local));
                struct_add(
                    h,
                    c"ddsssd".as_ptr() as *mut c_char,
                    c"ID".as_ptr(),
                    e.id.min(i32::MAX as u64) as c_int,
                    c"WORKER".as_ptr(),
                    e.worker as c_int,
                    c"DIRECTION".as_ptr(),
                    dir.as_ptr(),
                    c"PEER".as_ptr(),
                    peer.as_ptr(),
                    c"LOCAL".as_ptr(),
                    local.as_ptr(),
                    c"AGE".as_ptr(),
                    e.age.min(i32::MAX as u64) as c_int,
                );
            }
        }
    })
}

/// A `doc_str` array: one line of help, then the terminating NULL.
type Doc = [*const c_char; 2];

const fn doc(line: &'static CStr) -> Doc {
    [line.as_ptr(), std::ptr::null()]
}

static DOC_CONNECTIONS: Exported<Doc> =
    Exported::new(doc(c"List the relay's MSRP connections (at most 500)."));
static DOC_CMAPLIST: Exported<Doc> = Exported::new(doc(
    c"List the connection map: sessions handed out by msrp_cmap_save().",
));
static DOC_TRANSACTIONS: Exported<Doc> = Exported::new(doc(
    c"List the outstanding forwarded requests (transaction table): usage, then up to N entries (default 100, max 500).",
));
static DOC_REPORTS: Exported<Doc> =
    Exported::new(doc(c"Transaction table usage and REPORTs sent, by cause."));

const fn rpc(
    name: &'static CStr,
    function: unsafe extern "C" fn(*mut sys::rpc_t, *mut c_void),
    doc: &'static Exported<Doc>,
) -> sys::rpc_export_t {
    sys::rpc_export_t {
        name: name.as_ptr(),
        function: Some(function),
        doc_str: doc.get().cast(),
        flags: 0,
    }
}

const RPC_LIST: &[sys::rpc_export_t] = &[
    rpc(c"msrp_relay.connections", rpc_connections, &DOC_CONNECTIONS),
    rpc(c"msrp_relay.cmaplist", rpc_cmaplist, &DOC_CMAPLIST),
    rpc(
        c"msrp_relay.transactions",
        rpc_transactions,
        &DOC_TRANSACTIONS,
    ),
    rpc(c"msrp_relay.reports", rpc_reports, &DOC_REPORTS),
];

pub static RPC: Exported<[sys::rpc_export_t; RPC_LIST.len() + 1]> =
    Exported::new(table::null_terminated(
        RPC_LIST,
        sys::rpc_export_t {
            name: std::ptr::null(),
            function: None,
            doc_str: std::ptr::null_mut(),
            flags: 0,
        },
    ));
