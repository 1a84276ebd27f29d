//! Shared-memory listing of the workers' MSRP connections, for the RPC
//! command `msrp_relay.connections`.

use std::net::SocketAddr;
use std::sync::OnceLock;

use super::shm::{fill, unix_now, ShmSlots};

const ADDR_MAX: usize = 48;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slot {
    used: bool,
    outbound: bool,
    worker: u8,
    peer_len: u8,
    local_len: u8,
    id: u64,
    /// unix seconds
    opened: u64,
    peer: [u8; ADDR_MAX],
    local: [u8; ADDR_MAX],
}

const EMPTY: Slot = Slot {
    used: false,
    outbound: false,
    worker: 0,
    peer_len: 0,
    local_len: 0,
    id: 0,
    opened: 0,
    peer: [0; ADDR_MAX],
    local: [0; ADDR_MAX],
};

static SLOTS: OnceLock<ShmSlots<Slot>> = OnceLock::new();

/// mod_init: room for `n` listed connections (more are counted, not listed).
pub fn init(n: usize) -> Result<(), String> {
    if SLOTS.get().is_none() {
        let _ = SLOTS.set(ShmSlots::alloc(n, EMPTY)?);
    }
    Ok(())
}

pub fn add(
    worker: u8,
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    outbound: bool,
) -> Option<u32> {
    let (p, l) = (peer.to_string(), local.to_string());
    SLOTS.get()?.locked(|slots| {
        let (i, s) = slots.iter_mut().enumerate().find(|(_, s)| !s.used)?;
        *s = Slot {
            used: true,
            outbound,
            worker,
            peer_len: 0,
            local_len: 0,
            id,
            opened: unix_now(),
            peer: [0; ADDR_MAX],
            local: [0; ADDR_MAX],
        };
        s.peer_len = fill(&mut s.peer, p.as_bytes());
        s.local_len = fill(&mut s.local, l.as_bytes());
        Some(i as u32)
    })?
}

pub fn remove(slot: u32) {
    if let Some(t) = SLOTS.get() {
        t.locked(|slots| {
            if let Some(s) = slots.get_mut(slot as usize) {
                *s = EMPTY;
            }
        });
    }
}

/// One listed connection.
pub struct View {
    pub id: u64,
    pub worker: u8,
    pub direction: &'static str,
    pub peer: String,
    pub local: String,
    pub age: u64,
}

pub fn list() -> Vec<View> {
    let now = unix_now();
    let s = |b: &[u8], n: u8| String::from_utf8_lossy(&b[..n as usize]).into_owned();
    SLOTS
        .get()
        .and_then(|t| {
            t.locked(|slots| {
                slots
                    .iter()
                    .filter(|x| x.used)
                    .map(|x| View {
                        id: x.id,
                        worker: x.worker,
                        direction: if x.outbound { "out" } else { "in" },
                        peer: s(&x.peer, x.peer_len),
                        local: s(&x.local, x.local_len),
                        age: now.saturating_sub(x.opened),
                    })
                    .collect()
            })
        })
        .unwrap_or_default()
}
