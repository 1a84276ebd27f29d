//! RPC commands (kamcmd): `msrp_relay.transactions` lists the outstanding
//! forwarded SEND chunks of the shared transaction table (a request enters
//! it once it has waited for its response for
//! [`PUBLISH_AFTER`](msrp_engine::tracker::PUBLISH_AFTER), 100 ms: those
//! answered sooner, nearly all, are never listed);
//! `msrp_relay.reports` shows table usage and REPORT counters by cause;
//! `msrp_relay.tls_reload` ([`super::tlsreload`]) reads the TLS files
//! again.

use std::ffi::{c_char, c_int, c_void, CStr};

use super::rpccall::{serve, Call, Struct};
use super::sys;
use super::table;
use super::table::Exported;
use super::txtable;

/// Entries `msrp_relay.transactions` lists by default, and at most (an
/// entry is ~190 bytes of reply; kamcmd takes replies up to 128 KiB).
const LIST_DEFAULT: usize = 100;
const LIST_MAX: usize = 500;

/// The `unsafe extern "C"` entry `$entry` of an RPC command whose body is
/// the safe `fn(&Call)` `$body`.
macro_rules! rpc_entry {
    ($entry:ident, $what:literal, $body:path) => {
        unsafe extern "C" fn $entry(rpc: *mut sys::rpc_t, ctx: *mut c_void) {
            // SAFETY: rpc and ctx are the core's arguments to this RPC
            // function.
            unsafe { serve($what, rpc, ctx, $body) }
        }
    };
}

/// Opens a reply struct holding the table usage (`<used_name>`, capacity).
fn usage_struct<'a>(
    call: &'a Call,
    used_name: &str,
    used: u32,
    capacity: u32,
) -> Option<Struct<'a>> {
    let s = call.add_struct()?;
    s.int(used_name, used).int("capacity", capacity);
    Some(s)
}

rpc_entry!(
    rpc_transactions,
    "rpc msrp_relay.transactions",
    transactions
);
/// `msrp_relay.transactions [N]`: table usage, then one struct per
/// outstanding forwarded request (at most N).
fn transactions(call: &Call) {
    // optional argument: how many entries to list
    let n = call.optional_int(LIST_DEFAULT as c_int);
    let limit = (n.max(0) as usize).min(LIST_MAX);
    let Some(txtable::Snapshot {
        entries,
        used,
        capacity,
        ..
    }) = txtable::snapshot(limit)
    else {
        call.fault(500, "transaction table not initialised");
        return;
    };
    if usage_struct(call, "used", used, capacity).is_none() {
        return;
    }
    for e in entries {
        let Some(s) = call.add_struct() else {
            return;
        };
        let range = format!(
            "{}-*/{}",
            e.range_start,
            e.total.map_or("*".to_string(), |t| t.to_string())
        );
        let expires = e
            .expires_in_ms
            .map_or("sending".to_string(), |ms| format!("{ms} ms"));
        s.str("tid", &e.tid)
            .int("worker", e.worker)
            .str("state", e.state)
            .str("message_id", &e.message_id)
            .str("origin", &e.origin)
            .str("failure_report", e.failure_report)
            .str("byte_range", &range)
            .str("expires_in", &expires)
            .int("age_ms", e.age_ms);
    }
}

rpc_entry!(rpc_reports, "rpc msrp_relay.reports", reports);
/// `msrp_relay.reports`: one struct, table usage and REPORT counters.
fn reports(call: &Call) {
    let Some(txtable::Snapshot {
        used,
        capacity,
        counters,
        ..
    }) = txtable::snapshot(0)
    else {
        call.fault(500, "transaction table not initialised");
        return;
    };
    let Some(s) = usage_struct(call, "outstanding", used, capacity) else {
        return;
    };
    for (name, v) in counters {
        s.int(name, v);
    }
}

rpc_entry!(rpc_cmaplist, "rpc msrp_relay.cmaplist", cmaplist);
/// `msrp_relay.cmaplist`: one struct per connection-map session.
fn cmaplist(call: &Call) {
    for e in super::cmapshm::list(usize::MAX) {
        let Some(s) = call.add_struct() else {
            return;
        };
        s.str("SESSID", &e.session)
            .str("PEER", &e.peer)
            .str("ADDR", &e.addr)
            .int("CONID", e.conid)
            .int("WORKER", e.worker)
            .int("EXPIRES", e.expires_in.max(0));
    }
}

rpc_entry!(rpc_sessions, "rpc msrp_relay.sessions", sessions);
/// `msrp_relay.sessions`: one struct per session with its accounting (at
/// most 500; counters at most a second old; bytes as decimal text, exact
/// past 2^31).
fn sessions(call: &Call) {
    let now = super::shm::unix_now();
    for e in super::cmapshm::list(LIST_MAX) {
        let Some(s) = call.add_struct() else {
            return;
        };
        let u = e.usage;
        s.str("SESSION", &e.session)
            .str("USER", &e.user)
            .str("TRANSPORT", e.transport)
            .str("PEER", &e.peer)
            .str("ADDR", &e.addr)
            .int("CONID", e.conid)
            .int("WORKER", e.worker)
            .int("START", e.start)
            .int("DURATION", now.saturating_sub(e.start))
            .int("MSGS_IN", u.msgs_in)
            .str("BYTES_IN", &u.bytes_in.to_string())
            .int("MSGS_OUT", u.msgs_out)
            .str("BYTES_OUT", &u.bytes_out.to_string())
            .int("EXPIRES", e.expires_in.max(0));
    }
}

rpc_entry!(rpc_connections, "rpc msrp_relay.connections", connections);
/// `msrp_relay.connections`: one struct per connection (at most 500).
fn connections(call: &Call) {
    for e in super::connlist::list(LIST_MAX) {
        let Some(s) = call.add_struct() else {
            return;
        };
        s.int("ID", e.id)
            .int("WORKER", e.worker)
            .str("DIRECTION", e.direction)
            .str("TRANSPORT", e.transport)
            .str("PEER", &e.peer)
            .str("LOCAL", &e.local)
            .int("AGE", e.age)
            .int("READ_RATE", e.read_rate);
    }
}

rpc_entry!(
    rpc_tls_reload,
    "rpc msrp_relay.tls_reload",
    super::tlsreload::rpc_tls_reload
);

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
static DOC_SESSIONS: Exported<Doc> = Exported::new(doc(
    c"List the sessions with their accounting (at most 500): AUTH user, transport, start, messages and bytes each way.",
));
static DOC_TRANSACTIONS: Exported<Doc> = Exported::new(doc(
    c"List the outstanding forwarded requests (transaction table; those unanswered for over 100 ms): usage, then up to N entries (default 100, max 500).",
));
static DOC_TLS_RELOAD: Exported<Doc> = Exported::new(doc(
    c"Read the TLS certificate, key and CA files again; new handshakes use them, established connections go on. A missing or bad file is an error naming it and nothing changes.",
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
    rpc(c"msrp_relay.sessions", rpc_sessions, &DOC_SESSIONS),
    rpc(
        c"msrp_relay.transactions",
        rpc_transactions,
        &DOC_TRANSACTIONS,
    ),
    rpc(c"msrp_relay.reports", rpc_reports, &DOC_REPORTS),
    rpc(c"msrp_relay.tls_reload", rpc_tls_reload, &DOC_TLS_RELOAD),
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
