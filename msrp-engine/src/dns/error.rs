//! Why a next hop's name gave no address: what the relay logs and what the
//! `408` REPORT's sender is owed (RFC 4976 §6.4.1). Cloned to every request
//! that waited for the name and kept in the negative cache, hence `Clone`.

use std::io;
use std::sync::Arc;

use hickory_resolver::ResolveError;

/// A failed lookup of `name`, in the words an operator reads.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// The answer held no address.
    #[error("{name} has no address")]
    NoAddress { name: String },
    /// NXDOMAIN.
    #[error("{name}: no such domain (NXDOMAIN)")]
    NoSuchDomain { name: String },
    /// The name exists but has no A/AAAA records.
    #[error("{name}: no address records")]
    NoRecords { name: String },
    /// Any other failure the resolver reported.
    #[error("{name}: {error}")]
    Resolver {
        name: String,
        #[source]
        error: ResolveError,
    },
    /// The resolver gave no answer within `dns_timeout`.
    #[error("{name}: no answer from the resolver within dns_timeout ({secs} s)")]
    TimedOut { name: String, secs: u64 },
    /// The loop's own deadline (`dns_timeout` plus a grace) passed without
    /// the thread answering.
    #[error("{name}: no answer from the resolver thread")]
    ThreadSilent { name: String },
    /// The name waited `dns_timeout` for one of the `dns_concurrency` slots.
    #[error("{name}: no resolver free within dns_timeout")]
    NoSlot { name: String },
    /// The resolver's runtime could not be built.
    #[error("cannot start the resolver: {0}")]
    Runtime(#[source] Arc<io::Error>),
    /// The resolver thread (or its waker) could not be made.
    #[error("cannot start the resolver thread: {0}")]
    Thread(#[source] Arc<io::Error>),
    /// The resolver thread is gone.
    #[error("the resolver thread stopped")]
    ThreadStopped,
}
