//! Statistics the relay keeps (Kamailio counters, group `msrp_relay`:
//! `kamcmd stats.get_statistics msrp_relay:` or `kamcmd cnt.grp_get_all
//! msrp_relay`). Counters are per process and summed by Kamailio.

/// One counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Stat {
    RequestsIn = 0,
    RepliesIn,
    RequestsForwarded,
    RepliesForwarded,
    ChunksOut,
    ChunksSplit,
    BytesIn,
    BytesOut,
    RepliesSent,
    ReportsSent,
    ReportsDropped,
    ConnectionsAccepted,
    ConnectionsOpened,
    ConnectionsActive,
    ParseErrors,
    ConnectFailures,
}

impl Stat {
    /// (name, description) of every counter, in `Stat` order.
    pub const ALL: [(&'static str, &'static str); 16] = [
        ("requests_in", "MSRP requests received"),
        ("replies_in", "MSRP responses received"),
        ("requests_forwarded", "requests forwarded (msrp_relay())"),
        (
            "replies_forwarded",
            "responses passed back to their transaction",
        ),
        ("chunks_out", "request chunks sent to next hops"),
        ("chunks_split", "extra chunks created by re-chunking"),
        ("bytes_in", "bytes read from MSRP connections"),
        ("bytes_out", "bytes written to MSRP connections"),
        ("replies_sent", "responses the relay or the script sent"),
        ("reports_sent", "REPORTs the relay generated"),
        ("reports_dropped", "REPORTs dropped: sender connection gone"),
        ("connections_accepted", "connections accepted"),
        ("connections_opened", "connections opened to next hops"),
        ("connections_active", "connections open now"),
        ("parse_errors", "connections closed for malformed MSRP"),
        ("connect_failures", "next hops that could not be reached"),
    ];
}

/// Where the engine counts.
pub trait StatsSink {
    fn add(&mut self, stat: Stat, v: i64);
}
