//! Shared-memory copy of the workers' connection maps, so the RPC commands
//! `msrp_relay.cmaplist` and `msrp_relay.sessions` (run by the ctl process)
//! can list them and other workers find a session's worker and connection
//! (a hash table keyed by session ID, [`ShmList`]).

use std::time::Instant;

use super::shm::{fill, text, unix_now, Keyed, ShmList};
use msrp_engine::acct::Usage;
use msrp_engine::cmap::{Entry, Mirror};
use msrp_engine::transport::Kind;

const SESSION_MAX: usize = 32;
const PEER_MAX: usize = 128;
const ADDR_MAX: usize = 48;
/// AUTH user names longer than this are listed cut (the session-end route
/// gets them whole).
const USER_MAX: usize = 64;
const KINDS: [Kind; 4] = [Kind::Tcp, Kind::Tls, Kind::Ws, Kind::Wss];

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slot {
    used: bool,
    worker: u8,
    session_len: u8,
    peer_len: u8,
    addr_len: u8,
    user_len: u8,
    /// index in KINDS
    transport: u8,
    conid: i64,
    /// unix seconds
    expires: u64,
    /// unix seconds
    start: u64,
    /// msgs in, bytes in, msgs out, bytes out (updated once a second)
    usage: [u64; 4],
    session: [u8; SESSION_MAX],
    peer: [u8; PEER_MAX],
    addr: [u8; ADDR_MAX],
    user: [u8; USER_MAX],
}

impl Keyed for Slot {
    const EMPTY: Slot = Slot {
        used: false,
        worker: 0,
        session_len: 0,
        peer_len: 0,
        addr_len: 0,
        user_len: 0,
        transport: 0,
        conid: 0,
        expires: 0,
        start: 0,
        usage: [0; 4],
        session: [0; SESSION_MAX],
        peer: [0; PEER_MAX],
        addr: [0; ADDR_MAX],
        user: [0; USER_MAX],
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

/// After many closes: this process stops counting the listing's pages in
/// its RSS (see [`ShmList::release_pages`]).
pub fn release_pages() {
    SLOTS.release_pages()
}

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
            start: e.acct.start_unix(),
            transport: KINDS
                .iter()
                .position(|k| *k == e.acct.transport)
                .unwrap_or(0) as u8,
            usage: usage(&e.acct.usage),
            ..Slot::EMPTY
        };
        s.session_len = fill(&mut s.session, session.as_bytes());
        s.peer_len = fill(&mut s.peer, &e.peer);
        s.addr_len = fill(&mut s.addr, e.addr.to_string().as_bytes());
        s.user_len = fill(&mut s.user, e.acct.user.as_bytes());
        SLOTS.add(s)
    }

    fn remove(&self, index: u32) {
        SLOTS.remove(index)
    }

    fn update(&self, index: u32, e: &Entry) {
        // (the record is the entry's until the entry removes it)
        let u = usage(&e.acct.usage);
        SLOTS.update(index, |s| s.usage = u)
    }

    fn find(&self, session: &str) -> Option<(usize, i64)> {
        let now = unix_now();
        SLOTS.find(session.as_bytes(), |x| {
            (x.expires > now).then_some((x.worker as usize, x.conid))
        })
    }
}

fn usage(u: &Usage) -> [u64; 4] {
    [u.msgs_in, u.bytes_in, u.msgs_out, u.bytes_out]
}

/// One listed session.
pub struct View {
    pub session: String,
    pub peer: String,
    pub addr: String,
    pub conid: i64,
    pub worker: u8,
    pub expires_in: i64,
    pub user: String,
    pub transport: &'static str,
    /// unix seconds
    pub start: u64,
    pub usage: Usage,
}

/// Live entries for RPC, the first `limit`.
pub fn list(limit: usize) -> Vec<View> {
    let now = unix_now() as i64;
    SLOTS.view(limit, |x| {
        (x.expires as i64 > now).then(|| View {
            session: text(&x.session, x.session_len),
            peer: text(&x.peer, x.peer_len),
            addr: text(&x.addr, x.addr_len),
            conid: x.conid,
            worker: x.worker,
            expires_in: x.expires as i64 - now,
            user: text(&x.user, x.user_len),
            transport: KINDS
                .get(usize::from(x.transport))
                .map_or("tcp", |k| k.name()),
            start: x.start,
            usage: Usage {
                msgs_in: x.usage[0],
                bytes_in: x.usage[1],
                msgs_out: x.usage[2],
                bytes_out: x.usage[3],
            },
        })
    })
}
