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
        if let Some(old) = self.by_session.insert(session, e) {
            self.unmirror(&old);
        }
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
        self.retain(|e| e.conid != conid);
    }

    /// Drops expired entries.
    pub fn expire(&mut self, now: Instant) {
        self.retain(|e| e.expires > now);
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        let mirror = &self.mirror;
        self.by_session.retain(|_, e| {
            let k = keep(e);
            if !k {
                if let (Some(m), Some(i)) = (mirror, e.mirror) {
                    m.remove(i);
                }
            }
            k
        });
    }
}
