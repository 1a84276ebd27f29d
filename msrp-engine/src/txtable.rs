//! The transaction table as the engine sees it: outgoing SEND chunks whose
//! failure the relay must report (RFC 4976 §6.4.1). The Kamailio layer keeps
//! it in shared memory (visible to the timer process that expires entries
//! and to RPC); the engine keeps the full per-transaction data locally and
//! refers to table entries by [`TxSlot`]. The shared table's own logic
//! (free list, generations, expiry, listing) is [`slots`].

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use msrp_core::FailureReport;

pub mod slots;

/// A table entry: index plus generation (a reused index never matches an
/// old handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxSlot {
    pub index: u32,
    pub generation: u32,
}

/// What an entry records (shown by RPC).
#[derive(Debug)]
pub struct TxInfo<'a> {
    pub tid: &'a [u8],
    pub message_id: &'a [u8],
    pub origin: SocketAddr,
    pub failure_report: FailureReport,
    /// Byte-Range of the outgoing chunk: start, total (`None` = `*`).
    pub range_start: u64,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("transaction table full ({capacity} entries; raise modparam max_transactions)")]
pub struct TableFull {
    pub capacity: u32,
}

/// Why the relay sent (or would have sent) a REPORT; counted per cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Cause {
    /// No response within transaction_timeout (408).
    Timeout = 0,
    /// The next hop answered with an error code.
    ErrorResponse = 1,
    /// The next hop could not be reached (connect failed, bad URI).
    Unreachable = 2,
    /// The next hop's connection closed or failed with transactions open.
    NextHopClosed = 3,
    /// The first To-Path URI was not this relay's.
    NotOwnUri = 4,
    /// The sender stopped sending a SEND body mid-chunk for frame_timeout.
    SenderStalled = 5,
    /// The message is larger than the connection's max_message_size.
    TooLarge = 6,
}

impl Cause {
    pub const ALL: [Cause; 7] = [
        Cause::Timeout,
        Cause::ErrorResponse,
        Cause::Unreachable,
        Cause::NextHopClosed,
        Cause::NotOwnUri,
        Cause::SenderStalled,
        Cause::TooLarge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cause::Timeout => "timeout",
            Cause::ErrorResponse => "error_response",
            Cause::Unreachable => "unreachable",
            Cause::NextHopClosed => "next_hop_closed",
            Cause::NotOwnUri => "not_own_uri",
            Cause::SenderStalled => "sender_stalled",
            Cause::TooLarge => "too_large",
        }
    }
}

/// Counters besides the per-cause REPORT counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A REPORT was sent for this cause.
    Report(Cause),
    /// A REPORT could not be sent: its origin connection was gone.
    ReportDropped,
    /// An entry could not be stored: table full.
    TableFull,
}

pub trait TxTable {
    fn insert(&mut self, info: &TxInfo<'_>) -> Result<TxSlot, TableFull>;
    /// Starts the response timer (RFC 4976 §6.4.1: from the last byte sent).
    fn arm(&mut self, slot: TxSlot, timeout: Duration);
    fn remove(&mut self, slot: TxSlot);
    /// Entries of this worker that the timer found expired (and frees them).
    fn take_expired(&mut self) -> Vec<TxSlot>;
    fn count(&mut self, event: Event);
    /// Descriptor that becomes readable when the timer expired entries of
    /// this worker.
    fn wakeup_fd(&self) -> Option<RawFd>;
    /// Consumes the wake-up.
    fn clear_wakeup(&mut self);
    /// Whether the engine must ask for expired entries on every loop pass
    /// (a table without a timer of its own to wake it).
    fn poll_expired(&self) -> bool {
        false
    }
}
