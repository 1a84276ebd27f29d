//! The name of one connection of a worker inside the relay. The mio driver
//! maps it to a `mio::Token` where it registers sockets and reads events;
//! nothing else in the engine sees tokens, so a driver without mio (issue 22)
//! keeps the same core.

use std::fmt;

/// A connection of this worker: the same number is its `conid` in scripts
/// (`$msrp(conid)`), the connection map and the RPC listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// The ID scripts, the connection map and `Relay-Conid` carry.
    pub fn conid(self) -> i64 {
        self.0 as i64
    }

    /// The connection a script or connection-map `conid` names.
    pub fn from_conid(conid: i64) -> ConnId {
        ConnId(conid as u64)
    }
}

/// Printed as the bare number, as log lines always showed it.
impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
