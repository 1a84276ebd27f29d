//! What the cfg script sees while `event_route[msrp:frame-in]` runs for one
//! frame: the frame head and connection facts behind `$msrp(...)`, and the
//! decisions the script functions record (`msrp_relay()`, `msrp_reply()`),
//! which the engine carries out after the route returns.
//!
//! No unsafe and no Kamailio calls here: the boundary layer maps script
//! functions and PV getters onto these methods.

use std::cell::RefCell;
use std::net::SocketAddr;

use bytes::Bytes;
use msrp_core::{FrameHead, StartLine};

/// One incoming frame as the script sees it.
#[derive(Debug)]
pub struct FrameCtx {
    pub head: FrameHead,
    /// Body bytes already received when the route runs (the whole body for
    /// frames that arrived in one read; empty for streamed bodies).
    pub body: Bytes,
    /// true when `body` is the complete body of the frame.
    pub body_complete: bool,
    /// Flag of the frame's end-line when known (for `$msrp(buf)`).
    pub end_flag: u8,
    pub conid: i64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The transport of the connection the frame came on.
    pub transport: Kind,
    pub actions: Actions,
    /// Storage for computed PV strings: they must outlive the getter call
    /// (Kamailio keeps pointers to them while the statement runs).
    scratch: Vec<Box<[u8]>>,
}

#[derive(Debug, Default)]
pub struct Actions {
    /// `msrp_relay()` was called.
    pub relay: bool,
    /// Complete frames `msrp_reply()` produced, in order, with their codes.
    pub replies: Vec<(u16, Bytes)>,
    /// Where `msrp_relay()` sends the request instead of the next To-Path
    /// hop (`msrp_cmap_lookup()`, `msrp_set_dst()`).
    pub dst: Option<Dst>,
    /// `msrp_relay_flags()`: 1 = do not open a new connection.
    pub relay_flags: u32,
    /// `msrp_set_read_rate()`: the new read-rate limit of the frame's
    /// connection, bytes per second (0: none).
    pub read_rate: Option<u64>,
    /// `msrp_set_max_message_size()`: the connection's new limit (0: none).
    pub max_message_size: Option<u64>,
}

/// A destination chosen by the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dst {
    /// An address (`msrp_set_dst`).
    Addr(SocketAddr),
}

/// `msrp_relay_flags()` bit: never open a new connection for the frame.
pub const RELAY_FLAG_NO_NEW_CONNECTION: u32 = 1;

pub mod functions;
mod pv;
mod reply;

use crate::kind::Kind;
use crate::route::session_of;
use pv::method_id;
pub use pv::{PvKey, PvValue};
pub use reply::{reply_frame, OwnAnswer};

thread_local! {
    static CURRENT: RefCell<Option<FrameCtx>> = const { RefCell::new(None) };
}

/// Makes `ctx` the current frame for the duration of `f` (the route run) and
/// returns it with the recorded actions.
pub fn with_current<R>(ctx: FrameCtx, f: impl FnOnce() -> R) -> (FrameCtx, R) {
    CURRENT.with(|c| *c.borrow_mut() = Some(ctx));
    let r = f();
    let ctx = CURRENT
        .with(|c| c.borrow_mut().take())
        .expect("current frame present during route");
    (ctx, r)
}

/// Runs `f` on the current frame, if a route is running for one.
pub fn current<R>(f: impl FnOnce(&mut FrameCtx) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow_mut().as_mut().map(f))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    #[error("no MSRP frame is being processed (function used outside event_route[msrp:frame-in])")]
    NoFrame,
    #[error("cannot reply to a response")]
    ReplyToResponse,
    #[error("REPORT requests take no responses")]
    ReplyToReport,
    #[error("invalid status code {} (expected 3 digits, 200..=999)", .0.escape_default())]
    BadCode(String),
    #[error("frame has no {0} header")]
    MissingHeader(&'static str),
    #[error("msrp_cmap_save() is for AUTH requests only")]
    NotAuth,
    #[error("msrp_cmap_lookup() is not for AUTH requests")]
    IsAuth,
    #[error("Expires {0} out of range: answered 423")]
    ExpiresOutOfRange(u64),
    #[error("no session ID in the first To-Path URI")]
    NoSession,
    #[error("unknown or expired session {0}")]
    UnknownSession(String),
    #[error("not an MSRP URI or address: {0}")]
    BadAddress(String),
    #[error("no randomness available for a session ID")]
    NoRandom,
    #[error("read rate {value} out of range ({range} bytes per second)")]
    BadReadRate { value: i64, range: String },
}

/// The `host:port` of the Use-Path URI handed to a client that AUTHed over
/// a `transport` connection arriving at `local`: `use_path_addr`'s host (or
/// the local address): as given for plain TCP, with the listener's own port
/// for TLS and WebSocket (one `use_path_addr` serves every listener).
pub fn use_path_authority(
    use_path_addr: Option<&str>,
    local: SocketAddr,
    transport: Kind,
) -> String {
    let Some(a) = use_path_addr else {
        return local.to_string();
    };
    let a = a
        .trim()
        .trim_start_matches("msrp://")
        .trim_start_matches("msrps://")
        .trim_end_matches('/');
    if transport == Kind::Tcp {
        return a.to_string();
    }
    format!("{}:{}", host_of(a), local.port())
}

/// The host of `host[:port]` or `[v6][:port]`.
fn host_of(a: &str) -> &str {
    if a.starts_with('[') {
        return a.find(']').map_or(a, |i| &a[..=i]);
    }
    match a.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h,
        _ => a,
    }
}

impl FrameCtx {
    pub fn new(head: FrameHead, conid: i64, peer: SocketAddr, local: SocketAddr) -> Self {
        FrameCtx {
            head,
            body: Bytes::new(),
            body_complete: false,
            end_flag: b'$',
            conid,
            peer,
            local,
            transport: Kind::Tcp,
            actions: Actions::default(),
            scratch: Vec::new(),
        }
    }

    /// The frame came over a `transport` connection.
    pub fn over(mut self, transport: Kind) -> Self {
        self.transport = transport;
        self
    }

    fn keep(&mut self, v: Vec<u8>) -> &[u8] {
        self.scratch.push(v.into_boxed_slice());
        self.scratch.last().map(|b| &b[..]).unwrap_or(&[])
    }

    fn path_list(&self, to: bool) -> Vec<Bytes> {
        let r = if to {
            self.head.to_path()
        } else {
            self.head.from_path()
        };
        r.unwrap_or_default()
    }

    /// Value of `$msrp(key)`.
    pub fn pv(&mut self, key: PvKey) -> PvValue<'_> {
        match key {
            PvKey::Buf => {
                let v = self.frame_bytes();
                PvValue::Str(self.keep(v))
            }
            PvKey::Body => {
                if self.head.has_body {
                    PvValue::Str(&self.body)
                } else {
                    PvValue::Null
                }
            }
            PvKey::Code | PvKey::Method | PvKey::Reason => self.pv_start_line(key),
            PvKey::Hdrs => {
                // header lines after the start line
                let raw = &self.head.raw;
                match raw.windows(2).position(|w| w == b"\r\n") {
                    Some(p) => PvValue::Str(&self.head.raw[p + 2..]),
                    None => PvValue::Null,
                }
            }
            PvKey::MsgId => match self.head.message_id() {
                Some(m) => PvValue::Str(m),
                None => PvValue::Null,
            },
            PvKey::BufLen => PvValue::Int(self.frame_bytes().len() as i64),
            PvKey::SessId
            | PvKey::CrtHop
            | PvKey::NextHop
            | PvKey::LastHop
            | PvKey::PrevHop
            | PvKey::FirstHop
            | PvKey::PrevHops
            | PvKey::NextHops => self.pv_path(key),
            PvKey::BodyLen => PvValue::Int(self.body.len() as i64),
            PvKey::TransId => PvValue::Str(&self.head.transaction_id),
            PvKey::SrcAddr => {
                let v = format!("msrp://{}", self.peer).into_bytes();
                PvValue::Str(self.keep(v))
            }
            PvKey::SrcSock => {
                let v = format!("{}:{}", self.transport.name(), self.local).into_bytes();
                PvValue::Str(self.keep(v))
            }
            PvKey::ConId => PvValue::Int(self.conid),
            PvKey::Transport => PvValue::Str(self.transport.name().as_bytes()),
            // values of a session that ended (crate::acct): null for a frame
            PvKey::Session
            | PvKey::AcctUser
            | PvKey::MsgsIn
            | PvKey::BytesIn
            | PvKey::MsgsOut
            | PvKey::BytesOut
            | PvKey::SessionStart
            | PvKey::SessionDuration
            | PvKey::EndReason
            | PvKey::Peer => PvValue::Null,
        }
    }

    /// `$msrp(code)`, `$msrp(method)`, `$msrp(reason)`: from the start line.
    fn pv_start_line(&mut self, key: PvKey) -> PvValue<'_> {
        if let (PvKey::Code, StartLine::Response { code, .. }) = (key, &self.head.start) {
            let c = i64::from(*code);
            let s = code.to_string().into_bytes();
            return PvValue::IntStr(c, self.keep(s));
        }
        match (key, &self.head.start) {
            (PvKey::Method, StartLine::Request { method }) => {
                PvValue::StrInt(method, method_id(method))
            }
            (
                PvKey::Reason,
                StartLine::Response {
                    comment: Some(c), ..
                },
            ) => PvValue::Str(c),
            _ => PvValue::Null,
        }
    }

    /// The session ID and the hops: from To-Path and From-Path.
    fn pv_path(&mut self, key: PvKey) -> PvValue<'_> {
        let to = self.path_list(true);
        let from = self.path_list(false);
        match key {
            PvKey::SessId => match to.first().and_then(|u| session_of(u)) {
                Some(s) => {
                    let v = s.to_vec();
                    PvValue::Str(self.keep(v))
                }
                None => PvValue::Null,
            },
            PvKey::CrtHop => self.owned(to.first()),
            PvKey::NextHop => self.owned(to.get(1)),
            PvKey::LastHop => self.owned(to.last()),
            PvKey::PrevHop => self.owned(from.first()),
            PvKey::FirstHop => self.owned(from.last()),
            PvKey::PrevHops => PvValue::Int(from.len() as i64),
            PvKey::NextHops => PvValue::Int(to.len().saturating_sub(1) as i64),
            _ => PvValue::Null,
        }
    }

    fn owned(&mut self, b: Option<&Bytes>) -> PvValue<'_> {
        match b {
            Some(b) => {
                let v = b.to_vec();
                PvValue::Str(self.keep(v))
            }
            None => PvValue::Null,
        }
    }

    /// The frame as received, as the stock module's `$msrp(buf)`: head,
    /// body section and end-line; for a body still streaming in, the head
    /// and what is known of the body.
    fn frame_bytes(&self) -> Vec<u8> {
        let mut v = self.head.raw.to_vec();
        if self.head.has_body {
            v.extend_from_slice(b"\r\n");
            v.extend_from_slice(&self.body);
            if !self.body_complete {
                return v;
            }
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"-------");
        v.extend_from_slice(&self.head.transaction_id);
        v.push(self.end_flag);
        v.extend_from_slice(b"\r\n");
        v
    }

    /// `msrp_relay()`.
    pub fn relay(&mut self) {
        self.actions.relay = true;
    }

    /// `msrp_cmap_save()`: binds a fresh relay URI to this AUTH's
    /// connection and answers 200 with `Use-Path` and `Expires`; an Expires
    /// out of [min, max] gets 423 with Min-Expires/Max-Expires (RFC 4976
    /// §6.3).
    pub fn cmap_save(
        &mut self,
        min_expires: u64,
        max_expires: u64,
        use_path_addr: Option<&str>,
    ) -> Result<(), ScriptError> {
        if self.head.method() != Some(b"AUTH") {
            return Err(ScriptError::NotAuth);
        }
        let expires = self
            .head
            .header("Expires")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(max_expires);
        if expires < min_expires || expires > max_expires {
            let h = if expires < min_expires {
                format!("Min-Expires: {min_expires}\r\n")
            } else {
                format!("Max-Expires: {max_expires}\r\n")
            };
            let f = reply_frame(&self.head, 423, b"Interval Out-of-Bounds", h.as_bytes())?;
            self.actions.replies.push((423, f));
            return Err(ScriptError::ExpiresOutOfRange(expires));
        }
        let peer = self
            .head
            .from_path()
            .ok()
            .and_then(|p| p.into_iter().next())
            .ok_or(ScriptError::MissingHeader("From-Path"))?;
        let session = super::cmap::new_session_id().ok_or(ScriptError::NoRandom)?;
        let authority = use_path_authority(use_path_addr, self.local, self.transport);
        let use_path = format!(
            "{}://{authority}/{session};{}",
            self.transport.scheme(),
            self.transport.uri_transport()
        );
        let user = self
            .head
            .header("Authorization")
            .and_then(super::acct::digest_user)
            .unwrap_or_default();
        super::cmap::with(|m| {
            m.insert(
                session,
                super::cmap::Entry {
                    conid: self.conid,
                    peer,
                    addr: self.peer,
                    expires: std::time::Instant::now() + std::time::Duration::from_secs(expires),
                    mirror: None,
                    acct: super::acct::Acct::new(user, self.transport),
                },
            )
        });
        let hdrs = format!("Use-Path: {use_path}\r\nExpires: {expires}\r\n");
        let f = reply_frame(&self.head, 200, b"OK", hdrs.as_bytes())?;
        self.actions.replies.push((200, f));
        Ok(())
    }

    /// `msrp_cmap_lookup()`: whether the session ID of the first To-Path URI
    /// is one this relay handed out (and has not expired), on any worker. Where the
    /// request then goes is the engine's routing (RFC 4976 §6.4, see
    /// `route::plan`): over that session's connection when it is another
    /// client's, on to the next To-Path hop when it is the sender's own.
    pub fn cmap_lookup(&mut self) -> Result<(), ScriptError> {
        if self.head.method() == Some(b"AUTH") {
            return Err(ScriptError::IsAuth);
        }
        let to = self.path_list(true);
        let session = to
            .first()
            .and_then(|u| session_of(u))
            .ok_or(ScriptError::NoSession)?;
        let session = String::from_utf8_lossy(session).into_owned();
        let known = super::cmap::with(|m| {
            m.lookup(&session, std::time::Instant::now()).is_some()
                || m.find_elsewhere(&session).is_some()
        });
        if !known {
            return Err(ScriptError::UnknownSession(session));
        }
        Ok(())
    }

    /// `msrp_set_dst(addr, sock)`: `addr` is an MSRP URI or `msrp://IP:PORT`;
    /// `sock` (the local socket) is accepted for compatibility: the relay
    /// sends from its own sockets.
    pub fn set_dst(&mut self, addr: &[u8]) -> Result<(), ScriptError> {
        let s = String::from_utf8_lossy(addr).into_owned();
        let hostport = s
            .trim()
            .trim_start_matches("msrps://")
            .trim_start_matches("msrp://");
        let hostport = hostport.split(['/', ';']).next().unwrap_or("");
        let sa: SocketAddr = hostport
            .parse()
            .map_err(|_| ScriptError::BadAddress(s.clone()))?;
        self.actions.dst = Some(Dst::Addr(sa));
        Ok(())
    }

    /// `msrp_relay_flags(flags)`.
    pub fn set_relay_flags(&mut self, flags: u32) {
        self.actions.relay_flags = flags;
    }

    /// `msrp_set_read_rate(bytes_per_second)`: from now on the frame's
    /// connection is read at most this fast (0: no limit); the range is
    /// `max_read_rate`'s.
    pub fn set_read_rate(&mut self, bytes_per_second: i64) -> Result<(), ScriptError> {
        let spec = crate::config::Param::MaxReadRate.int_spec();
        if !spec.allows(bytes_per_second) {
            return Err(ScriptError::BadReadRate {
                value: bytes_per_second,
                range: spec.range_text(),
            });
        }
        self.actions.read_rate = Some(bytes_per_second as u64);
        Ok(())
    }

    /// `msrp_set_max_message_size(n)`: from this frame on, for its
    /// connection.
    pub fn set_max_message_size(&mut self, n: u64) {
        self.actions.max_message_size = Some(n);
    }

    /// `msrp_reply(code, text [, hdrs])`: see [`reply_frame`].
    pub fn reply(&mut self, code: &[u8], text: &[u8], hdrs: &[u8]) -> Result<(), ScriptError> {
        let code_n: u16 = std::str::from_utf8(code)
            .ok()
            .filter(|s| s.len() == 3)
            .and_then(|s| s.parse().ok())
            .filter(|c| (200..=999).contains(c))
            .ok_or_else(|| ScriptError::BadCode(String::from_utf8_lossy(code).into_owned()))?;
        let frame = reply_frame(&self.head, code_n, text, hdrs)?;
        self.actions.replies.push((code_n, frame));
        Ok(())
    }
}
