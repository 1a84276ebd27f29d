//! Shared-memory listing of the workers' MSRP connections, for the RPC
//! command `msrp_relay.connections` and for other workers finding a peer's
//! own connection by its address (a hash table keyed by peer, [`ShmList`]).

use std::net::SocketAddr;

use msrp_engine::transport::Kind;

use super::shm::{fill, text, unix_now, Keyed, ShmList};

const ADDR_MAX: usize = 48;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slot {
    used: bool,
    outbound: bool,
    transport: Kind,
    worker: u8,
    peer_len: u8,
    local_len: u8,
    id: u64,
    /// unix seconds
    opened: u64,
    /// Read-rate limit, bytes per second (0: none).
    read_rate: u64,
    peer: [u8; ADDR_MAX],
    local: [u8; ADDR_MAX],
}

impl Keyed for Slot {
    const EMPTY: Slot = Slot {
        used: false,
        outbound: false,
        transport: Kind::Tcp,
        worker: 0,
        peer_len: 0,
        local_len: 0,
        id: 0,
        opened: 0,
        read_rate: 0,
        peer: [0; ADDR_MAX],
        local: [0; ADDR_MAX],
    };

    fn used(&self) -> bool {
        self.used
    }

    /// Other workers find a peer's own connection by its address.
    fn key(&self) -> &[u8] {
        &self.peer[..self.peer_len as usize]
    }
}

static SLOTS: ShmList<Slot> = ShmList::new();

/// After many closes: this process stops counting the listing's pages in
/// its RSS (see [`ShmList::release_pages`]).
pub fn release_pages() {
    SLOTS.release_pages()
}

/// mod_init: room for `n` listed connections (more are counted, not listed).
pub fn init(n: usize) -> Result<(), String> {
    SLOTS.init(n)
}

pub fn add(
    worker: u8,
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    outbound: bool,
    transport: Kind,
) -> Option<u32> {
    let mut s = Slot {
        used: true,
        outbound,
        transport,
        worker,
        id,
        opened: unix_now(),
        ..Slot::EMPTY
    };
    s.peer_len = fill(&mut s.peer, peer.to_string().as_bytes());
    s.local_len = fill(&mut s.local, local.to_string().as_bytes());
    SLOTS.add(s)
}

/// The worker and ID of a plain TCP connection `peer` opened to the relay.
pub fn find_inbound(peer: SocketAddr) -> Option<(usize, u64)> {
    let p = peer.to_string();
    SLOTS.find(p.as_bytes(), |x| {
        (!x.outbound && x.transport == Kind::Tcp).then_some((x.worker as usize, x.id))
    })
}

/// The read-rate limit of the connection in `slot` changed.
pub fn set_read_rate(slot: u32, bytes_per_second: u64) {
    SLOTS.update(slot, |s| s.read_rate = bytes_per_second)
}

pub fn remove(slot: u32) {
    SLOTS.remove(slot)
}

/// One listed connection.
pub struct View {
    pub id: u64,
    pub worker: u8,
    pub direction: &'static str,
    pub transport: &'static str,
    pub peer: String,
    pub local: String,
    pub age: u64,
    /// Bytes per second (0: no limit).
    pub read_rate: u64,
}

/// Listed connections for RPC, the first `limit`.
pub fn list(limit: usize) -> Vec<View> {
    let now = unix_now();
    SLOTS.view(limit, |x| {
        Some(View {
            id: x.id,
            worker: x.worker,
            direction: if x.outbound { "out" } else { "in" },
            transport: x.transport.name(),
            peer: text(&x.peer, x.peer_len),
            local: text(&x.local, x.local_len),
            age: now.saturating_sub(x.opened),
            read_rate: x.read_rate,
        })
    })
}
