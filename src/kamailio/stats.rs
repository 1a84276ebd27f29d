//! Kamailio counters for [`Stat`], registered in mod_init (group
//! `msrp_relay`).

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use super::sys;
use msrp_engine::stats::{Stat, StatsSink};

static HANDLES: OnceLock<Vec<u16>> = OnceLock::new();

/// Registers every counter (mod_init only).
pub fn register() -> Result<(), String> {
    let mut ids = Vec::with_capacity(Stat::ALL.len());
    for (name, doc) in Stat::ALL {
        let mut h = sys::counter_handle_t { id: 0 };
        // The core keeps the name/doc pointers: leak them.
        let n = CString::new(name).map_err(|e| e.to_string())?.into_raw();
        let d = CString::new(doc).map_err(|e| e.to_string())?.into_raw();
        // SAFETY: called from mod_init, before counters_prefork_init; the
        // strings live forever.
        let rc = unsafe {
            sys::counter_register(
                &mut h,
                c"msrp_relay".as_ptr(),
                n as *const c_char,
                0,
                None,
                std::ptr::null_mut(),
                d as *const c_char,
                0,
            )
        };
        if rc < 0 {
            return Err(format!("cannot register counter msrp_relay.{name}"));
        }
        ids.push(h.id);
    }
    let _ = HANDLES.set(ids);
    Ok(())
}

/// The worker's sink.
pub struct Counters {
    pub worker: u8,
}

impl StatsSink for Counters {
    fn conn_opened(
        &mut self,
        id: u64,
        peer: std::net::SocketAddr,
        local: std::net::SocketAddr,
        outbound: bool,
        transport: msrp_engine::transport::Kind,
    ) -> Option<u32> {
        super::connlist::add(self.worker, id, peer, local, outbound, transport)
    }

    fn conn_closed(&mut self, slot: u32) {
        super::connlist::remove(slot)
    }

    fn conn_read_rate(&mut self, slot: u32, bytes_per_second: u64) {
        super::connlist::set_read_rate(slot, bytes_per_second)
    }

    fn find_inbound(&self, peer: std::net::SocketAddr) -> Option<(usize, u64)> {
        super::connlist::find_inbound(peer)
    }

    fn add(&mut self, stat: Stat, v: i64) {
        if let Some(id) = HANDLES.get().and_then(|h| h.get(stat as usize)) {
            // SAFETY: the handle was registered in mod_init; counter_add
            // writes this process's row.
            unsafe { sys::msrp_shim_counter_add(*id, v as i32) };
        }
    }
}
