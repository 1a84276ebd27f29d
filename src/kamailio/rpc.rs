//! RPC commands (kamcmd): `msrp_relay.transactions` lists the outstanding
//! forwarded SEND chunks of the shared transaction table (a request enters
//! it once it has waited for its response for
//! [`PUBLISH_AFTER`](msrp_engine::tracker::PUBLISH_AFTER), 100 ms: those
//! answered sooner, nearly all, are never listed);
//! `msrp_relay.reports` shows table usage and REPORT counters by cause;
//! `msrp_relay.tls_reload` ([`super::tlsreload`]) reads the TLS files
//! again.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use super::sys;
use super::table;
use super::table::Exported;
use super::txtable;

/// Entries `msrp_relay.transactions` lists by default, and at most (an
/// entry is ~190 bytes of reply; kamcmd takes replies up to 128 KiB).
const LIST_DEFAULT: usize = 100;
const LIST_MAX: usize = 500;

/// Longest fault message sent: ctl's binrpc sends no reply at all for a
/// fault of 255 bytes or more (the string's length no longer fits the
/// header room `_rpc_fault` reserves, FAULT_START_BUF in binrpc_run.c), and
/// kamcmd then prints nothing.
const FAULT_MAX: usize = 250;

/// `msg`, or its first bytes and "..." when it is longer than [`FAULT_MAX`]
/// (cut at a character boundary).
fn fault_text(msg: &str) -> String {
    if msg.len() <= FAULT_MAX {
        return msg.to_string();
    }
    let mut end = FAULT_MAX - 3;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &msg[..end])
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "?")).unwrap_or_default()
}

/// An integer reply member: the core's `d` takes a C `int`, so larger
/// values saturate.
pub trait RpcInt: Copy {
    fn saturating_c_int(self) -> c_int;
}

impl RpcInt for i64 {
    fn saturating_c_int(self) -> c_int {
        self.clamp(c_int::MIN.into(), c_int::MAX.into()) as c_int
    }
}

impl RpcInt for u64 {
    fn saturating_c_int(self) -> c_int {
        c_int::try_from(self).unwrap_or(c_int::MAX)
    }
}

impl RpcInt for u32 {
    fn saturating_c_int(self) -> c_int {
        u64::from(self).saturating_c_int()
    }
}

impl RpcInt for u8 {
    fn saturating_c_int(self) -> c_int {
        c_int::from(self)
    }
}

/// One RPC call: the core's `rpc_t` functions and the call's context.
/// Safe, typed access to the call's argument and reply; every varargs call
/// (with its format string) is in here.
pub struct Call {
    api: sys::rpc_t,
    ctx: *mut c_void,
}

impl Call {
    /// # Safety
    /// `rpc` and `ctx` as handed to an RPC function by the core; the
    /// `Call` is used only during that function.
    unsafe fn new(rpc: *mut sys::rpc_t, ctx: *mut c_void) -> Option<Call> {
        // SAFETY: rpc is null or the core's rpc_t, valid during the call;
        // its function pointers are copied.
        let api = *unsafe { rpc.as_ref() }?;
        Some(Call { api, ctx })
    }

    /// Replies with an error, cut to [`FAULT_MAX`] bytes.
    pub fn fault(&self, code: c_int, msg: &str) {
        let Some(fault) = self.api.fault else {
            return;
        };
        let m = cstring(&fault_text(msg));
        // SAFETY: ctx is this call's; "%s" takes one NUL-terminated char*,
        // which lives until fault returns.
        unsafe { fault(self.ctx, code, c"%s".as_ptr() as *mut c_char, m.as_ptr()) };
    }

    /// The call's optional integer argument, or `default`.
    pub fn optional_int(&self, default: c_int) -> c_int {
        let mut n = default;
        if let Some(scan) = self.api.scan {
            // SAFETY: ctx is this call's; "*d" scans at most one int into
            // n, which outlives the call.
            unsafe {
                scan(
                    self.ctx,
                    c"*d".as_ptr() as *mut c_char,
                    &mut n as *mut c_int,
                )
            };
        }
        n
    }

    /// Adds a struct to the reply; `None` when the core cannot.
    pub fn add_struct(&self) -> Option<Struct<'_>> {
        let add = self.api.add?;
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: ctx is this call's; "{" adds a struct and stores its
        // handle through the one pointer argument.
        let rc = unsafe {
            add(
                self.ctx,
                c"{".as_ptr() as *mut c_char,
                &mut handle as *mut *mut c_void,
            )
        };
        (rc >= 0 && !handle.is_null()).then_some(Struct { call: self, handle })
    }
}

/// A struct of an RPC reply. Each member is added by its own `struct_add`
/// with a one-member format (`d` or `s`), so no caller writes a format
/// string or matches varargs to it.
pub struct Struct<'a> {
    call: &'a Call,
    handle: *mut c_void,
}

impl Struct<'_> {
    /// Adds member `name` with an integer value.
    pub fn int(&self, name: &str, v: impl RpcInt) -> &Self {
        if let Some(struct_add) = self.call.api.struct_add {
            let n = cstring(name);
            // SAFETY: handle is a struct of this call's reply; "d" takes
            // (char *name, int); n lives until struct_add returns (the
            // core copies it).
            unsafe {
                struct_add(
                    self.handle,
                    c"d".as_ptr() as *mut c_char,
                    n.as_ptr(),
                    v.saturating_c_int(),
                )
            };
        }
        self
    }

    /// Adds member `name` with a string value (a NUL inside becomes `?`).
    pub fn str(&self, name: &str, v: &str) -> &Self {
        if let Some(struct_add) = self.call.api.struct_add {
            let (n, v) = (cstring(name), cstring(v));
            // SAFETY: handle is a struct of this call's reply; "s" takes
            // (char *name, char *value); both live until struct_add
            // returns (the core copies them).
            unsafe {
                struct_add(
                    self.handle,
                    c"s".as_ptr() as *mut c_char,
                    n.as_ptr(),
                    v.as_ptr(),
                )
            };
        }
        self
    }
}

/// Runs RPC command `what` under the panic guard with its [`Call`].
///
/// # Safety
/// `rpc` and `ctx` as handed to the RPC function by the core.
unsafe fn serve(what: &str, rpc: *mut sys::rpc_t, ctx: *mut c_void, f: impl FnOnce(&Call)) {
    super::guard::guard(what, (), || {
        // SAFETY: the caller's contract; call does not outlive this function.
        if let Some(call) = unsafe { Call::new(rpc, ctx) } {
            f(&call);
        }
    })
}

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
