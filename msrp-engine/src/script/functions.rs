//! The cfg script functions (`msrp_relay()`, `msrp_reply()`, ...), declared
//! once in [`script_functions!`](crate::script_functions): name, parameters,
//! KEMI name, documentation and handler. From that one list come the
//! boundary's `cmd_export_t` entries with their fixups and wrappers, the
//! KEMI exports (`KSR.msrp_relay.*`), the [`FUNCTIONS`] table and the
//! README's list of functions ([`readme_list`], checked by a test).
//!
//! The handlers below are safe Rust over the current frame
//! ([`super::current`]); they return an [`Outcome`], which one trampoline
//! in the boundary maps to Kamailio's 1 / -1 (never 0: that would stop the
//! route) and a log line.

use super::{current, ScriptError};
use crate::config;

/// Every script function, handed to the macro `$callback` as one item per
/// function: `doc handler "cfg_name" (param: Kind, ...) kemi "kemi_name";`
/// (or `cfg_only;` for a function without a KEMI export). `Kind` is `Str`
/// (a string; in the cfg any `$var`/string expression, fixed up with
/// `fixup_spve_*`) or `Int` (an integer or `$var`, `fixup_igp_*`); the
/// handler of the same name in this module takes them as `Vec<u8>` / `i32`,
/// in order. The doc comment is the README's text for the function.
#[macro_export]
macro_rules! script_functions {
    ($callback:ident) => {
        $callback! {
            /// forward the current request to the next To-Path hop (see
            /// above), or route the current response to a non-SEND request
            /// back to the connection and transaction it answers. The body
            /// streams through after the route returns. Returns 1.
            relay "msrp_relay" () kemi "relay";
            /// answer the current request on its connection (as the stock
            /// module: To-Path is the previous hop for SEND, the whole
            /// From-Path otherwise; From-Path the relay's URI; Message-ID
            /// copied; `hdrs` appended, each header line ending in `\r\n`).
            /// -1 for responses and REPORTs.
            reply "msrp_reply" (code: Str, text: Str, hdrs: Str) kemi "reply";
            /// `msrp_reply(code, text, "")`.
            reply_no_headers "msrp_reply" (code: Str, text: Str) cfg_only;
            /// 1 when the current frame is a request.
            is_request "msrp_is_request" () kemi "is_request";
            /// 1 when the current frame is a response.
            is_reply "msrp_is_reply" () kemi "is_reply";
            /// for an AUTH addressed to the relay: answers 200 with
            /// `Use-Path: msrp://<use_path_addr>/<session>;tcp` (a
            /// 22-character session ID, 128 random bits from the OS) and
            /// `Expires`, and binds that session to the AUTH's connection
            /// until it expires or the connection closes; 423 with
            /// `Min-Expires`/`Max-Expires` when `Expires` is out of range
            /// (returns -1).
            cmap_save "msrp_cmap_save" () kemi "cmap_save";
            /// returns 1 when the first To-Path URI carries a session
            /// handed out by `msrp_cmap_save()` (not expired, on any
            /// worker), -1 otherwise (the stock example then answers 481).
            /// Where `msrp_relay()` sends the request is the module's
            /// routing (RFC 4976 §6.4), with or without this call: a
            /// To-Path URI of this relay with another client's session
            /// means "over that client's connection" (`[U_B, B]`, the stock
            /// style, and `[U_A, U_B, B]` of RFC 4976 §6.4, where both of
            /// this relay's URIs move to From-Path and the relay never
            /// connects to itself); the sender's own session (`[U_A, X]`,
            /// RFC 4976 §5) or a relay URI without a known session means
            /// "on to the next To-Path URI". A next hop counts as this
            /// relay only when it is a listen address, an `alias` or
            /// `use_path_addr` (another host on the same port is a next
            /// hop).
            cmap_lookup "msrp_cmap_lookup" () kemi "cmap_lookup";
            /// send the frame to `addr` (`msrp://IP:PORT` or an MSRP URI)
            /// instead of the next To-Path hop; `sock` is accepted and
            /// ignored (the module sends from its own sockets).
            set_dst "msrp_set_dst" (addr: Str, sock: Str) kemi "set_dst";
            /// 1: do not open a new connection for this frame (fails when
            /// none exists).
            relay_flags "msrp_relay_flags" (flags: Int) kemi "relay_flags";
            /// accepted for stock configs: replies always go back on the
            /// connection the request came on.
            reply_flags "msrp_reply_flags" (flags: Int) kemi "reply_flags";
            /// from now on read the current frame's connection at most this
            /// fast, in bytes per second (0: no limit; otherwise
            /// 1024..=1073741824, the range of `max_read_rate`, which it
            /// overrides for this connection); see Read-rate limits. An
            /// out-of-range value is logged as an error naming it and
            /// returns -1 (the limit stays).
            set_read_rate "msrp_set_read_rate" (bytes_per_second: Int) kemi "set_read_rate";
            /// largest message (bytes, 0 = no limit) the current frame's
            /// connection may send from this frame on, instead of
            /// `max_message_size` (e.g. per user class in the AUTH route);
            /// a SEND over it gets 413. -1 for a negative size.
            set_max_message_size "msrp_set_max_message_size" (size: Int) kemi "set_max_message_size";
            /// panics inside Rust when `test_mode` is 1 (proves the FFI
            /// guard: the panic is logged, the function returns -1,
            /// Kamailio goes on).
            test_panic "msrp_test_panic" () cfg_only;
        }
    };
}

/// What a script function's handler returns: `Ok(true)` is 1 for the
/// script, `Ok(false)` -1 without a log line, an error -1 with one.
pub type Outcome = Result<bool, FnError>;

/// Why a script function failed.
#[derive(Debug, thiserror::Error)]
pub enum FnError {
    /// The frame or the call does not allow it (as the stock module, logged
    /// at debug level); `NoFrame` is a script error (logged as an error).
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// A parameter could not be evaluated.
    #[error("cannot evaluate parameter {0}")]
    Param(&'static str),
    /// The module is not set up for this call.
    #[error("{0}")]
    Setup(&'static str),
    /// A parameter that must not be negative was.
    #[error("parameter {0} must not be negative")]
    Negative(&'static str),
}

impl FnError {
    /// The level the boundary logs this failure at.
    pub fn level(&self) -> log::Level {
        match self {
            // (an out-of-range rate is a config mistake, not a frame's)
            FnError::Script(ScriptError::NoFrame | ScriptError::BadReadRate { .. })
            | FnError::Param(_)
            | FnError::Setup(_)
            | FnError::Negative(_) => log::Level::Error,
            FnError::Script(_) => log::Level::Debug,
        }
    }
}

/// Runs `f` on the current frame; no frame is [`ScriptError::NoFrame`].
fn on_frame<R>(f: impl FnOnce(&mut super::FrameCtx) -> R) -> Result<R, FnError> {
    current(f).ok_or(FnError::Script(ScriptError::NoFrame))
}

pub fn relay() -> Outcome {
    on_frame(|f| f.relay())?;
    Ok(true)
}

pub fn reply(code: Vec<u8>, text: Vec<u8>, hdrs: Vec<u8>) -> Outcome {
    on_frame(|f| f.reply(&code, &text, &hdrs))??;
    Ok(true)
}

pub fn reply_no_headers(code: Vec<u8>, text: Vec<u8>) -> Outcome {
    reply(code, text, Vec::new())
}

/// Outside a route there is no frame, hence neither a request nor a reply.
pub fn is_request() -> Outcome {
    Ok(current(|f| f.head.is_request()).unwrap_or(false))
}

pub fn is_reply() -> Outcome {
    Ok(current(|f| !f.head.is_request()).unwrap_or(false))
}

pub fn cmap_save() -> Outcome {
    let cfg = config::get().ok_or(FnError::Setup("the module is not initialised"))?;
    on_frame(|f| {
        f.cmap_save(
            cfg.auth_min_expires,
            cfg.auth_max_expires,
            cfg.use_path_addr.as_deref(),
        )
    })??;
    Ok(true)
}

pub fn cmap_lookup() -> Outcome {
    on_frame(|f| f.cmap_lookup())??;
    Ok(true)
}

pub fn set_dst(addr: Vec<u8>, sock: Vec<u8>) -> Outcome {
    if !sock.is_empty() {
        log::debug!(
            "msrp_set_dst(): local socket {} ignored: the module sends from its own sockets",
            String::from_utf8_lossy(&sock)
        );
    }
    on_frame(|f| f.set_dst(&addr))??;
    Ok(true)
}

pub fn relay_flags(flags: i32) -> Outcome {
    on_frame(|f| f.set_relay_flags(flags as u32))?;
    Ok(true)
}

pub fn set_max_message_size(size: i32) -> Outcome {
    let size = u64::try_from(size).map_err(|_| FnError::Negative("size"))?;
    on_frame(|f| f.set_max_message_size(size))?;
    Ok(true)
}

pub fn reply_flags(_flags: i32) -> Outcome {
    Ok(true)
}

pub fn set_read_rate(bytes_per_second: i32) -> Outcome {
    on_frame(|f| f.set_read_rate(i64::from(bytes_per_second)))??;
    Ok(true)
}

/// Panics on purpose when `test_mode` is 1, so the test-suite can prove
/// the boundary's guard keeps Kamailio serving.
pub fn test_panic() -> Outcome {
    if config::get().is_some_and(|c| c.test_mode) {
        panic!("msrp_test_panic() called: deliberate panic for the FFI guard test");
    }
    Err(FnError::Setup(
        "msrp_test_panic() needs modparam(\"msrp_relay\", \"test_mode\", 1)",
    ))
}

/// A parameter of a script function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Str,
    Int,
}

/// One declared script function.
#[derive(Debug, Clone, Copy)]
pub struct FnDecl {
    /// The cfg name (`msrp_reply`); two declarations may share it with
    /// different parameter counts.
    pub name: &'static str,
    pub params: &'static [(&'static str, ParamKind)],
    /// `KSR.msrp_relay.<kemi>`, when exported to KEMI.
    pub kemi: Option<&'static str>,
    pub doc: &'static str,
}

macro_rules! declare_functions {
    ($( $(#[doc = $doc:literal])+ $h:ident $name:literal ( $($p:ident : $k:ident),* )
        $(kemi $kemi:literal)? $(cfg_only)? ; )*) => {
        /// Every script function, in declaration order.
        pub const FUNCTIONS: &[FnDecl] = &[
            $( FnDecl {
                name: $name,
                params: &[ $( (stringify!($p), ParamKind::$k) ),* ],
                kemi: declare_functions!(@kemi $($kemi)?),
                doc: concat!($($doc, "\n"),+),
            }, )*
        ];

        /// Every declared handler exists with the declared parameters.
        #[allow(dead_code)]
        fn handlers_match_the_declaration() {
            $( let _: fn($(declare_functions!(@ty $k)),*) -> Outcome = $h; )*
        }
    };
    (@kemi) => { None };
    (@kemi $k:literal) => { Some($k) };
    (@ty Str) => { Vec<u8> };
    (@ty Int) => { i32 };
}

crate::script_functions!(declare_functions);

/// The README's list of script functions, rendered from the declaration.
pub fn readme_list() -> String {
    let mut out = String::new();
    for f in FUNCTIONS {
        let params: Vec<&str> = f.params.iter().map(|(n, _)| *n).collect();
        out.push_str(&format!("- `{}({})`", f.name, params.join(", ")));
        if let Some(k) = f.kemi {
            out.push_str(&format!(" (KEMI `KSR.msrp_relay.{k}()`)"));
        }
        out.push(':');
        for line in f.doc.lines() {
            out.push_str("\n  ");
            out.push_str(line.strip_prefix(' ').unwrap_or(line));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
