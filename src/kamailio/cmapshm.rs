//! Shared-memory copy of the workers' connection maps, so the RPC command
//! `msrp_relay.cmaplist` (run by the ctl process) can list them.

use std::sync::OnceLock;
use std::time::Instant;

use super::shm::{fill, unix_now, ShmSlots};
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

static SLOTS: OnceLock<ShmSlots<Slot>> = OnceLock::new();

/// mod_init: room for `n` listed sessions.
pub fn init(n: usize) -> Result<(), String> {
    if SLOTS.get().is_none() {
        let _ = SLOTS.set(ShmSlots::alloc(n, EMPTY)?);
    }
    Ok(())
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
        let addr = e.addr.to_string();
        SLOTS.get()?.locked(|slots| {
            let (i, s) = slots.iter_mut().enumerate().find(|(_, s)| !s.used)?;
            s.used = true;
            s.worker = self.worker;
            s.conid = e.conid;
            s.expires = unix_now() + left;
            s.session_len = fill(&mut s.session, session.as_bytes());
            s.peer_len = fill(&mut s.peer, &e.peer);
            s.addr_len = fill(&mut s.addr, addr.as_bytes());
            Some(i as u32)
        })?
    }

    fn remove(&self, index: u32) {
        if let Some(t) = SLOTS.get() {
            t.locked(|slots| {
                if let Some(s) = slots.get_mut(index as usize) {
                    *s = EMPTY;
                }
            });
        }
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
    let s = |b: &[u8], n: u8| String::from_utf8_lossy(&b[..n as usize]).into_owned();
    SLOTS
        .get()
        .and_then(|t| {
            t.locked(|slots| {
                slots
                    .iter()
                    .filter(|x| x.used && x.expires as i64 > now)
                    .map(|x| View {
                        session: s(&x.session, x.session_len),
                        peer: s(&x.peer, x.peer_len),
                        addr: s(&x.addr, x.addr_len),
                        conid: x.conid,
                        worker: x.worker,
                        expires_in: x.expires as i64 - now,
                    })
                    .collect()
            })
        })
        .unwrap_or_default()
}
