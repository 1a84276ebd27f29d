//! Per-session accounting (issue 23): what each session handed out by
//! `msrp_cmap_save()` (a Use-Path URI bound to the AUTH's connection, RFC
//! 4976 §6.3) carried, for `msrp_relay.sessions` and
//! `event_route[msrp:session-end]`.
//!
//! What is counted, on the connection the session is bound to, by the
//! worker that holds it:
//! * "in": what the AUTHed client sent to the relay on that connection;
//!   "out": what the relay wrote to the client on it. The holding worker
//!   writes to the connection even when the other party sits on another
//!   worker (that worker hands the request over its link), so both ways
//!   are seen in one place.
//! * A message is a complete SEND: counted once, when the end-line of its
//!   last chunk (`$`, RFC 4975 §7.1) passes, however the sender or the
//!   relay chunked it. An aborted (`#`) message counts no message, but its
//!   bytes. Bytes are SEND body bytes (no heads, no responses, no REPORTs).
//! * A connection with several sessions (a client that AUTHed more than
//!   once) counts its traffic to the newest one.
//!
//! The counters live in the connection map's [`Entry`](crate::cmap::Entry);
//! a session that ends becomes an [`Ended`] record, which the host hands to
//! the script (`$msrp(...)` keys, [`Ended::pv`]).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::kind::Kind;
use crate::script::{PvKey, PvValue};

/// Messages and bytes each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Complete SEND messages from the client.
    pub msgs_in: u64,
    /// SEND body bytes from the client.
    pub bytes_in: u64,
    /// Complete SEND messages the relay wrote to the client.
    pub msgs_out: u64,
    /// SEND body bytes the relay wrote to the client.
    pub bytes_out: u64,
}

/// The accounting state of one session.
#[derive(Debug, Clone)]
pub struct Acct {
    /// The Digest user name of the AUTH (`username` of its Authorization
    /// header: the user the script authenticated); empty without one.
    pub user: String,
    pub transport: Kind,
    /// Wall-clock start (the AUTH), for records.
    pub start: SystemTime,
    /// The same instant on the monotonic clock, for the duration.
    pub started: Instant,
    pub usage: Usage,
    /// Counters changed since the shared copy was last updated.
    pub dirty: bool,
}

impl Acct {
    pub fn new(user: String, transport: Kind) -> Self {
        Acct {
            user,
            transport,
            start: SystemTime::now(),
            started: Instant::now(),
            usage: Usage::default(),
            dirty: false,
        }
    }

    /// Start time in unix seconds.
    pub fn start_unix(&self) -> u64 {
        self.start
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// The `username` parameter of a Digest `Authorization` header value
/// (RFC 4976 §9.1 reuses SIP's Digest), unquoted; `None` without one.
pub fn digest_user(authorization: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(authorization).ok()?.trim();
    let params = s
        .strip_prefix("Digest")
        .or_else(|| s.strip_prefix("digest"))?;
    for p in params.split(',') {
        let Some((name, value)) = p.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("username") {
            let v = value.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            return Some(v.to_string());
        }
    }
    None
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Its `Expires` passed (no new AUTH moved it on).
    Expired,
    /// Its connection closed (either side, or the relay closing it).
    Closed,
    /// The relay stopped with the session open.
    Shutdown,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Closed => "closed",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// A session that ended: what `event_route[msrp:session-end]` sees.
#[derive(Debug, Clone)]
pub struct Ended {
    pub session: String,
    pub conid: i64,
    /// The client's URI (first From-Path URI of its AUTH).
    pub peer: Bytes,
    pub addr: SocketAddr,
    pub acct: Acct,
    pub reason: EndReason,
    pub duration: Duration,
    /// Decimal texts of the integer values (the string view of `$msrp`).
    texts: Texts,
}

#[derive(Debug, Clone, Default)]
struct Texts {
    msgs_in: String,
    bytes_in: String,
    msgs_out: String,
    bytes_out: String,
    start: String,
    duration: String,
    srcaddr: String,
}

/// Whose session ended: the connection and the client of its AUTH.
#[derive(Debug, Clone)]
pub struct Party {
    pub conid: i64,
    /// The client's URI (first From-Path URI of its AUTH).
    pub peer: Bytes,
    pub addr: SocketAddr,
}

impl Ended {
    pub fn new(session: String, who: Party, acct: Acct, reason: EndReason, now: Instant) -> Self {
        let duration = now.saturating_duration_since(acct.started);
        let u = acct.usage;
        let texts = Texts {
            msgs_in: u.msgs_in.to_string(),
            bytes_in: u.bytes_in.to_string(),
            msgs_out: u.msgs_out.to_string(),
            bytes_out: u.bytes_out.to_string(),
            start: acct.start_unix().to_string(),
            duration: duration.as_secs().to_string(),
            srcaddr: format!("msrp://{}", who.addr),
        };
        Ended {
            session,
            conid: who.conid,
            peer: who.peer,
            addr: who.addr,
            acct,
            reason,
            duration,
            texts,
        }
    }

    /// `$msrp(key)` in `event_route[msrp:session-end]`: the session's
    /// values; `None` for keys of frames (they are null there).
    pub fn pv(&self, key: PvKey) -> Option<PvValue<'_>> {
        // counters can pass 2^31: the string view is exact (Kamailio 5.6
        // holds the integer view in a C int)
        fn int(v: u64, s: &str) -> PvValue<'_> {
            PvValue::IntStr(i64::try_from(v).unwrap_or(i64::MAX), s.as_bytes())
        }
        let u = &self.acct.usage;
        let t = &self.texts;
        Some(match key {
            PvKey::Session => PvValue::Str(self.session.as_bytes()),
            PvKey::AcctUser => PvValue::Str(self.acct.user.as_bytes()),
            PvKey::MsgsIn => int(u.msgs_in, &t.msgs_in),
            PvKey::BytesIn => int(u.bytes_in, &t.bytes_in),
            PvKey::MsgsOut => int(u.msgs_out, &t.msgs_out),
            PvKey::BytesOut => int(u.bytes_out, &t.bytes_out),
            PvKey::SessionStart => int(self.acct.start_unix(), &t.start),
            PvKey::SessionDuration => int(self.duration.as_secs(), &t.duration),
            PvKey::EndReason => PvValue::Str(self.reason.as_str().as_bytes()),
            PvKey::Transport => PvValue::Str(self.acct.transport.name().as_bytes()),
            PvKey::ConId => PvValue::Int(self.conid),
            PvKey::SrcAddr => PvValue::Str(t.srcaddr.as_bytes()),
            PvKey::Peer => PvValue::Str(&self.peer),
            _ => return None,
        })
    }
}

thread_local! {
    static ENDED: RefCell<Option<Ended>> = const { RefCell::new(None) };
}

/// Makes `e` the ending session for the duration of `f` (the route run).
pub fn with_ended<R>(e: Ended, f: impl FnOnce() -> R) -> (Ended, R) {
    ENDED.with(|c| *c.borrow_mut() = Some(e));
    let r = f();
    let e = ENDED
        .with(|c| c.borrow_mut().take())
        .expect("ended session present during route");
    (e, r)
}

/// Runs `f` on the ending session, if the session-end route runs for one.
pub fn ended<R>(f: impl FnOnce(&Ended) -> R) -> Option<R> {
    ENDED.with(|c| c.borrow().as_ref().map(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_user_is_the_username_parameter() {
        let h = br#"Digest username="alice", realm="r", nonce="n,1", uri="msrp://x", response="0""#;
        assert_eq!(digest_user(h).as_deref(), Some("alice"));
        assert_eq!(
            digest_user(b"Digest realm=\"r\", UserName=bob").as_deref(),
            Some("bob")
        );
        assert_eq!(digest_user(b"Basic YWxpY2U6eA=="), None);
        assert_eq!(digest_user(b"Digest realm=\"r\""), None);
    }

    #[test]
    fn ended_values_as_the_script_sees_them() {
        let mut acct = Acct::new("alice".into(), Kind::Wss);
        acct.usage = Usage {
            msgs_in: 2,
            bytes_in: 5_000_000_000,
            msgs_out: 1,
            bytes_out: 7,
        };
        let started = acct.started;
        let who = Party {
            conid: 9,
            peer: Bytes::from_static(b"msrp://a.example:1/s;tcp"),
            addr: "127.0.0.1:4000".parse().unwrap(),
        };
        let x = Ended::new(
            "S1".into(),
            who,
            acct,
            EndReason::Closed,
            started + Duration::from_secs(61),
        );
        assert_eq!(x.pv(PvKey::Session), Some(PvValue::Str(b"S1")));
        assert_eq!(x.pv(PvKey::AcctUser), Some(PvValue::Str(b"alice")));
        assert_eq!(x.pv(PvKey::MsgsIn), Some(PvValue::IntStr(2, b"2")));
        assert_eq!(
            x.pv(PvKey::BytesIn),
            Some(PvValue::IntStr(5_000_000_000, b"5000000000"))
        );
        assert_eq!(x.pv(PvKey::MsgsOut), Some(PvValue::IntStr(1, b"1")));
        assert_eq!(x.pv(PvKey::BytesOut), Some(PvValue::IntStr(7, b"7")));
        assert_eq!(
            x.pv(PvKey::SessionDuration),
            Some(PvValue::IntStr(61, b"61"))
        );
        assert_eq!(x.pv(PvKey::EndReason), Some(PvValue::Str(b"closed")));
        assert_eq!(x.pv(PvKey::Transport), Some(PvValue::Str(b"wss")));
        assert_eq!(
            x.pv(PvKey::SrcAddr),
            Some(PvValue::Str(b"msrp://127.0.0.1:4000"))
        );
        assert_eq!(x.pv(PvKey::ConId), Some(PvValue::Int(9)));
        assert_eq!(x.pv(PvKey::Method), None);
        let (_, r) = with_ended(x, || ended(|e| e.reason));
        assert_eq!(r, Some(EndReason::Closed));
        assert!(ended(|_| ()).is_none());
    }
}
