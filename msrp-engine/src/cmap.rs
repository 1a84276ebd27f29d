//! The connection map (RFC 4976 §6.3): an AUTH from a client gets a fresh
//! relay URI (`Use-Path`, with a session ID of 128 random bits) bound to the
//! connection the AUTH came on; a later request whose first To-Path URI
//! carries that session ID is sent over that connection (the client may be
//! unreachable otherwise, e.g. behind NAT). Entries expire after the granted
//! `Expires` and when their connection closes.
//!
//! `msrp_cmap_save()` / `msrp_cmap_lookup()` keep the stock msrp module's
//! semantics. The map is per worker process: a connection belongs to the
//! worker that accepted it.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::acct::{Acct, EndReason, Ended, Party, Usage};

/// One AUTHed client connection.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Connection (worker token) the AUTH came on.
    pub conid: i64,
    /// First From-Path URI of the AUTH (the client).
    pub peer: Bytes,
    /// Where the connection comes from.
    pub addr: SocketAddr,
    pub expires: Instant,
    /// Index of the entry's copy for RPC listing, if it got one.
    pub mirror: Option<u32>,
    /// What the session carried (see [`crate::acct`]).
    pub acct: Acct,
}

/// Keeps a copy of the map where other processes can read it (RPC, and the
/// other workers).
pub trait Mirror {
    fn add(&self, session: &str, e: &Entry) -> Option<u32>;
    fn remove(&self, index: u32);
    /// The entry's counters changed (called at most once a second).
    fn update(&self, _index: u32, _e: &Entry) {}
    /// The worker and connection a live session of any worker is bound to.
    fn find(&self, _session: &str) -> Option<(usize, i64)> {
        None
    }
}

#[derive(Default)]
pub struct Cmap {
    by_session: HashMap<String, Entry>,
    /// The sessions of each connection: a close drops its entries without
    /// a pass over the whole map (100k sessions per node, issue 19).
    by_conn: HashMap<i64, Vec<String>>,
    mirror: Option<Box<dyn Mirror>>,
    /// Connections with sessions whose current incoming frame is a SEND
    /// (its body bytes and end-line are counted).
    sending: HashSet<i64>,
    /// Sessions whose counters changed since [`Cmap::publish`].
    dirty: Vec<String>,
    /// Sessions that ended, for the host's session-end route
    /// ([`Cmap::take_ended`]).
    ended: Vec<Ended>,
}

thread_local! {
    static CMAP: RefCell<Cmap> = RefCell::new(Cmap::default());
}

/// Runs `f` on this worker's map.
pub fn with<R>(f: impl FnOnce(&mut Cmap) -> R) -> R {
    CMAP.with(|c| f(&mut c.borrow_mut()))
}

/// Length of the session IDs `new_session_id` makes.
pub const SESSION_ID_LEN: usize = 22;

/// A session ID with 128 bits from the system's CSPRNG (RFC 4976 §6.3: at
/// least 64 bits of randomness), base62.
pub fn new_session_id() -> Option<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).ok()?;
    const A: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = u128::from_le_bytes(raw);
    let mut s = String::with_capacity(SESSION_ID_LEN);
    for _ in 0..SESSION_ID_LEN {
        s.push(A[(n % 62) as usize] as char);
        n /= 62;
    }
    Some(s)
}

impl Cmap {
    /// Installs the copy kept for RPC (worker start).
    pub fn set_mirror(&mut self, m: Box<dyn Mirror>) {
        self.mirror = Some(m);
    }

    pub fn insert(&mut self, session: String, mut e: Entry) {
        e.mirror = self.mirror.as_ref().and_then(|m| m.add(&session, &e));
        let conid = e.conid;
        if let Some(old) = self.by_session.insert(session.clone(), e) {
            self.unmirror(&old);
            self.unindex(old.conid, &session);
        }
        self.by_conn.entry(conid).or_default().push(session);
    }

    /// Forgets that `session` belongs to connection `conid`.
    fn unindex(&mut self, conid: i64, session: &str) {
        if let Some(v) = self.by_conn.get_mut(&conid) {
            v.retain(|s| s != session);
            if v.is_empty() {
                self.by_conn.remove(&conid);
            }
        }
    }

    /// Gives the maps' spare room back (after many connections closed).
    pub fn shrink(&mut self) {
        self.by_session.shrink_to_fit();
        self.by_conn.shrink_to_fit();
    }

    fn unmirror(&self, e: &Entry) {
        if let (Some(m), Some(i)) = (&self.mirror, e.mirror) {
            m.remove(i);
        }
    }

    /// The live entry for `session`; an expired one is removed (and
    /// ends).
    pub fn lookup(&mut self, session: &str, now: Instant) -> Option<Entry> {
        match self.by_session.get(session) {
            Some(e) if e.expires > now => Some(e.clone()),
            Some(_) => {
                if let Some(e) = self.by_session.remove(session) {
                    self.unmirror(&e);
                    self.unindex(e.conid, session);
                    self.end(session.to_string(), e, EndReason::Expired);
                }
                None
            }
            None => None,
        }
    }

    /// `e` ended: it waits in [`Cmap::take_ended`] for the host.
    fn end(&mut self, session: String, e: Entry, reason: EndReason) {
        let who = Party {
            conid: e.conid,
            peer: e.peer,
            addr: e.addr,
        };
        let ended = Ended::new(session, who, e.acct, reason, Instant::now());
        self.ended.push(ended);
    }

    /// The sessions that ended since the last call, oldest first.
    pub fn take_ended(&mut self) -> Vec<Ended> {
        std::mem::take(&mut self.ended)
    }

    /// Ends every session (the relay stops).
    pub fn end_all(&mut self, reason: EndReason) {
        let all: Vec<(String, Entry)> = self.by_session.drain().collect();
        self.by_conn.clear();
        self.sending.clear();
        for (session, e) in all {
            self.unmirror(&e);
            self.end(session, e, reason);
        }
    }

    /// A frame head arrived on `conid`: whether what follows is counted
    /// as the client's SEND.
    pub fn frame_in(&mut self, conid: i64, is_send: bool) {
        self.sending.remove(&conid);
        if is_send && self.by_conn.contains_key(&conid) {
            self.sending.insert(conid);
        }
    }

    /// Body bytes of the current incoming frame on `conid`.
    pub fn body_in(&mut self, conid: i64, n: usize) {
        if self.sending.contains(&conid) {
            self.count(conid, |u| u.bytes_in += n as u64);
        }
    }

    /// The end-line of the current incoming frame on `conid`; `complete`:
    /// it ended its message (`$`).
    pub fn end_in(&mut self, conid: i64, complete: bool) {
        if self.sending.remove(&conid) && complete {
            self.count(conid, |u| u.msgs_in += 1);
        }
    }

    /// SEND body bytes the relay queued on `conid`.
    pub fn body_out(&mut self, conid: i64, n: usize) {
        self.count(conid, |u| u.bytes_out += n as u64);
    }

    /// The relay queued the end-line of a SEND chunk on `conid`;
    /// `complete`: it ended its message (`$`).
    pub fn end_out(&mut self, conid: i64, complete: bool) {
        if complete {
            self.count(conid, |u| u.msgs_out += 1);
        }
    }

    /// Adds to the counters of the newest session of `conid`, if any.
    fn count(&mut self, conid: i64, f: impl FnOnce(&mut Usage)) {
        let Some(session) = self.by_conn.get(&conid).and_then(|v| v.last()) else {
            return;
        };
        if let Some(e) = self.by_session.get_mut(session) {
            f(&mut e.acct.usage);
            if !e.acct.dirty {
                e.acct.dirty = true;
                self.dirty.push(session.clone());
            }
        }
    }

    /// Hands changed counters to the mirror (once a second: the shared
    /// copy is behind one lock for every worker).
    pub fn publish(&mut self) {
        for session in std::mem::take(&mut self.dirty) {
            if let Some(e) = self.by_session.get_mut(&session) {
                e.acct.dirty = false;
                if let (Some(m), Some(i)) = (&self.mirror, e.mirror) {
                    m.update(i, e);
                }
            }
        }
    }

    /// The worker and connection of a live session another worker holds
    /// (through the mirror).
    pub fn find_elsewhere(&self, session: &str) -> Option<(usize, i64)> {
        // (the shared copy is searched under a lock: only for IDs this
        // relay could have handed out, not for every relay URI's path)
        if session.len() != SESSION_ID_LEN {
            return None;
        }
        self.mirror.as_ref()?.find(session)
    }

    /// Sessions in the map (live or not yet swept).
    pub fn len(&self) -> usize {
        self.by_session.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }

    /// Drops (ends) the entries of a closed connection.
    pub fn remove_connection(&mut self, conid: i64) {
        self.sending.remove(&conid);
        for session in self.by_conn.remove(&conid).unwrap_or_default() {
            if let Some(e) = self.by_session.remove(&session) {
                self.unmirror(&e);
                self.end(session, e, EndReason::Closed);
            }
        }
    }

    /// Drops (ends) expired entries.
    pub fn expire(&mut self, now: Instant) {
        let gone: Vec<String> = self
            .by_session
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(s, _)| s.clone())
            .collect();
        for session in gone {
            if let Some(e) = self.by_session.remove(&session) {
                self.unmirror(&e);
                self.unindex(e.conid, &session);
                self.end(session, e, EndReason::Expired);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(conid: i64, expires: Instant) -> Entry {
        Entry {
            conid,
            peer: Bytes::from_static(b"msrp://a.example:1/s;tcp"),
            addr: "127.0.0.1:1".parse().unwrap(),
            expires,
            mirror: None,
            acct: Acct::new(String::new(), crate::kind::Kind::Tcp),
        }
    }

    #[test]
    fn a_close_drops_exactly_its_connections_sessions() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut m = Cmap::default();
        m.insert("s1".into(), entry(1, later));
        m.insert("s2".into(), entry(1, later));
        m.insert("s3".into(), entry(2, later));
        // s2 re-AUTHed on connection 3: connection 1's close keeps it.
        m.insert("s2".into(), entry(3, later));
        m.remove_connection(1);
        assert!(m.lookup("s1", now).is_none());
        assert_eq!(m.lookup("s2", now).map(|e| e.conid), Some(3));
        assert_eq!(m.lookup("s3", now).map(|e| e.conid), Some(2));
        m.remove_connection(3);
        assert!(m.lookup("s2", now).is_none());
        assert!(!m.by_conn.contains_key(&1) && !m.by_conn.contains_key(&3));
        // Expiry unindexes too.
        m.insert("s4".into(), entry(4, now));
        m.expire(now + Duration::from_secs(1));
        assert!(m.lookup("s4", now).is_none() && !m.by_conn.contains_key(&4));
        assert_eq!(m.lookup("s3", now).map(|e| e.conid), Some(2));
        m.shrink();
        assert_eq!((m.by_session.len(), m.by_conn.len()), (1, 1));
    }

    /// Records the mirror's updates.
    struct Updates(std::rc::Rc<RefCell<Vec<(u32, Usage)>>>);

    impl Mirror for Updates {
        fn add(&self, _session: &str, e: &Entry) -> Option<u32> {
            Some(e.conid as u32)
        }
        fn remove(&self, _index: u32) {}
        fn update(&self, index: u32, e: &Entry) {
            self.0.borrow_mut().push((index, e.acct.usage));
        }
    }

    fn usage(msgs_in: u64, bytes_in: u64, msgs_out: u64, bytes_out: u64) -> Usage {
        Usage {
            msgs_in,
            bytes_in,
            msgs_out,
            bytes_out,
        }
    }

    #[test]
    fn sessions_count_sends_both_ways_and_end_with_their_reason() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let updates = std::rc::Rc::new(RefCell::new(Vec::new()));
        let mut m = Cmap::default();
        m.set_mirror(Box::new(Updates(updates.clone())));
        m.insert("s1".into(), entry(1, later));
        // the client's SEND in two chunks (3 + 2 bytes): one message
        m.frame_in(1, true);
        m.body_in(1, 3);
        m.end_in(1, false);
        m.frame_in(1, true);
        m.body_in(1, 2);
        m.end_in(1, true);
        // its 200 to a SEND of the relay's and an aborted SEND: bytes only
        m.frame_in(1, false);
        m.body_in(1, 100);
        m.end_in(1, true);
        m.frame_in(1, true);
        m.body_in(1, 4);
        m.end_in(1, false);
        // a connection without a session counts nowhere
        m.frame_in(2, true);
        m.body_in(2, 7);
        m.end_in(2, true);
        // the relay writes a message of 4 + 1 bytes in two chunks
        m.body_out(1, 4);
        m.end_out(1, false);
        m.body_out(1, 1);
        m.end_out(1, true);
        m.publish();
        assert_eq!(*updates.borrow(), vec![(1, usage(1, 9, 1, 5))]);
        m.publish();
        assert_eq!(updates.borrow().len(), 1, "nothing changed: no update");
        // a second AUTH on the connection: its traffic counts there now
        m.insert("s2".into(), entry(1, later));
        m.body_out(1, 10);
        m.end_out(1, true);
        m.insert("s3".into(), entry(3, now));
        m.expire(now + Duration::from_secs(1));
        m.remove_connection(1);
        let ended = m.take_ended();
        let got: Vec<(&str, EndReason, Usage)> = ended
            .iter()
            .map(|e| (e.session.as_str(), e.reason, e.acct.usage))
            .collect();
        assert_eq!(
            got,
            vec![
                ("s3", EndReason::Expired, Usage::default()),
                ("s1", EndReason::Closed, usage(1, 9, 1, 5)),
                ("s2", EndReason::Closed, usage(0, 0, 1, 10)),
            ]
        );
        assert!(m.take_ended().is_empty());
        // a look-up that finds a session expired ends it; shutdown ends the rest
        m.insert("s4".into(), entry(4, now));
        m.insert("s5".into(), entry(5, later));
        assert!(m.lookup("s4", now + Duration::from_secs(1)).is_none());
        m.end_all(EndReason::Shutdown);
        let got: Vec<(String, EndReason)> = m
            .take_ended()
            .into_iter()
            .map(|e| (e.session, e.reason))
            .collect();
        assert_eq!(
            got,
            vec![
                ("s4".to_string(), EndReason::Expired),
                ("s5".to_string(), EndReason::Shutdown)
            ]
        );
        assert!(m.is_empty() && m.by_conn.is_empty());
    }
}
