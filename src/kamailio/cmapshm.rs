//! Shared-memory copy of the workers' connection maps, so the RPC command
//! `msrp_relay.cmaplist` (run by the ctl process) can list them and other
//! workers find a session's worker and connection (a hash table keyed by
//! session ID, [`ShmList`]).

use std::time::Instant;

use super::shm::{fill, text, unix_now, Keyed, ShmList};
use msrp_engine::cmap::{Entry, Mirror};

const SESSION_MAX: usize = 32;
const PEER_MAX: usize = 128;
const ADDR_MAX: usize = 48;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slot {
    used: bool,
    worker: u8,
    session_len: u8,
    peer_len: u8,
    addr_len: u8,
    conid: i64,
    /// unix seconds
    expires: u64,
    session: [u8; SESSION_MAX],
    peer: [u8; PEER_MAX],
    addr: [u8; ADDR_MAX],
}

impl Keyed for Slot {
    const EMPTY: Slot = Slot {
        used: false,
        worker: 0,
        session_len: 0,
        peer_len: 0,
        addr_len: 0,
        conid: 0,
        expires: 0,
        session: [0; SESSION_MAX],
        peer: [0; PEER_MAX],
        addr: [0; ADDR_MAX],
    };

    fn used(&self) -> bool {
        self.used
    }

    /// Other workers find a session by its ID.
    fn key(&self) -> &[u8] {
        &self.session[..self.session_len as usize]
    }
}

static SLOTS: ShmList<Slot> = ShmList::new();

/// mod_init: room for `n` listed sessions.
pub fn init(n: usize) -> Result<(), String> {
    SLOTS.init(n)
}

/// A worker's writer.
pub struct ShmMirror {
    pub worker: u8,
}

impl Mirror for ShmMirror {
    fn add(&self, session: &str, e: &Entry) -> Option<u32> {
        let left = e
            .expires
            .saturating_duration_since(Instant::now())
            .as_secs();
        let mut s = Slot {
            used: true,
            worker: self.worker,
            conid: e.conid,
            expires: unix_now() + left,
            ..Slot::EMPTY
        };
        s.session_len = fill(&mut s.session, session.as_bytes());
        s.peer_len = fill(&mut s.peer, &e.peer);
        s.addr_len = fill(&mut s.addr, e.addr.to_string().as_bytes());
        SLOTS.add(s)
    }

    fn remove(&self, index: u32) {
        SLOTS.remove(index)
    }

    fn find(&self, session: &str) -> Option<(usize, i64)> {
        let now = unix_now();
        SLOTS.find(session.as_bytes(), |x| {
            (x.expires > now).then_some((x.worker as usize, x.conid))
        })
    }
}

/// One listed session.
pub struct View {
    pub session: String,
    pub peer: String,
    pub addr: String,
    pub conid: i64,
    pub worker: u8,
    pub expires_in: i64,
}

/// Live entries for RPC.
pub fn list() -> Vec<View> {
    let now = unix_now() as i64;
    SLOTS.view(|x| {
        (x.expires as i64 > now).then(|| View {
            session: text(&x.session, x.session_len),
            peer: text(&x.peer, x.peer_len),
            addr: text(&x.addr, x.addr_len),
            conid: x.conid,
            worker: x.worker,
            expires_in: x.expires as i64 - now,
        })
    })
}
