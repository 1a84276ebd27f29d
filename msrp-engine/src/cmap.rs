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
use rustc_hash::FxHashMap as HashMap;

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
}

/// Keeps a copy of the map where other processes can read it (RPC, and the
/// other workers).
pub trait Mirror {
    fn add(&self, session: &str, e: &Entry) -> Option<u32>;
    fn remove(&self, index: u32);
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

    /// The live entry for `session`; an expired one is removed.
    pub fn lookup(&mut self, session: &str, now: Instant) -> Option<Entry> {
        match self.by_session.get(session) {
            Some(e) if e.expires > now => Some(e.clone()),
            Some(_) => {
                if let Some(e) = self.by_session.remove(session) {
                    self.unmirror(&e);
                    self.unindex(e.conid, session);
                }
                None
            }
            None => None,
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

    /// Drops the entries of a closed connection.
    pub fn remove_connection(&mut self, conid: i64) {
        for session in self.by_conn.remove(&conid).unwrap_or_default() {
            if let Some(e) = self.by_session.remove(&session) {
                self.unmirror(&e);
            }
        }
    }

    /// Drops expired entries.
    pub fn expire(&mut self, now: Instant) {
        let (mirror, by_conn) = (&self.mirror, &mut self.by_conn);
        self.by_session.retain(|session, e| {
            let keep = e.expires > now;
            if !keep {
                if let (Some(m), Some(i)) = (mirror, e.mirror) {
                    m.remove(i);
                }
                if let Some(v) = by_conn.get_mut(&e.conid) {
                    v.retain(|s| s != session);
                    if v.is_empty() {
                        by_conn.remove(&e.conid);
                    }
                }
            }
            keep
        });
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
}
