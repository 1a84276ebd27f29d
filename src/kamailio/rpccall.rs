//! One RPC call made safe: the core's `rpc_t` functions and the call's
//! context behind typed methods ([`Call`], [`Struct`]), every varargs call
//! with its format string in here, and [`serve`], which runs a command
//! under the panic guard. A leaf: the commands (`rpc.rs`,
//! `tlsreload.rs`) use it, it uses none of them.

use std::ffi::{c_char, c_int, c_void, CString};

use super::sys;

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
pub(super) unsafe fn serve(
    what: &str,
    rpc: *mut sys::rpc_t,
    ctx: *mut c_void,
    f: impl FnOnce(&Call),
) {
    super::guard::guard(what, (), || {
        // SAFETY: the caller's contract; call does not outlive this function.
        if let Some(call) = unsafe { Call::new(rpc, ctx) } {
            f(&call);
        }
    })
}
