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
    SendIn,
    AuthIn,
    ReportIn,
    OtherRequestsIn,
    ReportsTimeout,
    ReportsErrorResponse,
    ReportsUnreachable,
    ReportsNextHopClosed,
    ReportsNotOwnUri,
    ReportsSenderStalled,
    ReportsTooLarge,
    TlsHandshakeFailures,
    TlsErrors,
    WsProtocolErrors,
    WsHandshakeFailures,
    ConnectionsTcp,
    ConnectionsTls,
    ConnectionsWs,
    ConnectionsWss,
    SessionsActive,
    BytesQueued,
    DnsLookups,
    DnsFailures,
}

impl Stat {
    /// (name, description) of every counter, in `Stat` order.
    pub const ALL: [(&'static str, &'static str); 39] = [
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
        ("send_in", "SEND requests received"),
        ("auth_in", "AUTH requests received"),
        ("report_in", "REPORT requests received"),
        ("other_requests_in", "requests of other methods received"),
        ("reports_timeout", "REPORTs sent: no response in time (408)"),
        (
            "reports_error_response",
            "REPORTs sent: next hop error response",
        ),
        ("reports_unreachable", "REPORTs sent: next hop unreachable"),
        (
            "reports_next_hop_closed",
            "REPORTs sent: next hop connection lost",
        ),
        (
            "reports_not_own_uri",
            "REPORTs sent: first To-Path URI not this relay",
        ),
        (
            "reports_sender_stalled",
            "REPORTs sent: sender stopped mid-chunk for frame_timeout",
        ),
        (
            "reports_too_large",
            "REPORTs sent: message over max_message_size (413)",
        ),
        (
            "tls_handshake_failures",
            "TLS handshakes that failed (certificate, protocol, version) or the peer abandoned (alert, close, silence)",
        ),
        (
            "tls_errors",
            "TLS connections closed for a bad record after the handshake",
        ),
        (
            "ws_protocol_errors",
            "WebSocket upgrades refused and connections closed for bad frames",
        ),
        (
            "ws_handshake_failures",
            "WebSocket upgrades the peer abandoned (closed or silent before a complete upgrade request)",
        ),
        // gauges, refreshed once a second (see engine::gauges)
        (
            "connections_tcp",
            "MSRP connections open now over plain TCP",
        ),
        ("connections_tls", "MSRP connections open now over TLS"),
        ("connections_ws", "MSRP connections open now over WebSocket"),
        (
            "connections_wss",
            "MSRP connections open now over secure WebSocket",
        ),
        (
            "sessions_active",
            "sessions in the connection map (AUTH Use-Path)",
        ),
        ("bytes_queued", "bytes waiting in the relay's output queues"),
        (
            "dns_lookups",
            "next-hop host names looked up (not in the cache)",
        ),
        (
            "dns_failures",
            "lookups that failed (NXDOMAIN, no address, no answer within dns_timeout)",
        ),
    ];

    /// The open-connections gauge of `transport`.
    pub fn connections(transport: crate::transport::Kind) -> Stat {
        use crate::transport::Kind;
        match transport {
            Kind::Tcp => Stat::ConnectionsTcp,
            Kind::Tls => Stat::ConnectionsTls,
            Kind::Ws => Stat::ConnectionsWs,
            Kind::Wss => Stat::ConnectionsWss,
        }
    }

    /// Per-method counter of a received request.
    pub fn request_in(method: Option<&[u8]>) -> Stat {
        match method {
            Some(b"SEND") => Stat::SendIn,
            Some(b"AUTH") => Stat::AuthIn,
            Some(b"REPORT") => Stat::ReportIn,
            _ => Stat::OtherRequestsIn,
        }
    }

    /// Counter of a REPORT sent for `cause`.
    pub fn report(cause: super::txtable::Cause) -> Stat {
        use super::txtable::Cause;
        match cause {
            Cause::Timeout => Stat::ReportsTimeout,
            Cause::ErrorResponse => Stat::ReportsErrorResponse,
            Cause::Unreachable => Stat::ReportsUnreachable,
            Cause::NextHopClosed => Stat::ReportsNextHopClosed,
            Cause::NotOwnUri => Stat::ReportsNotOwnUri,
            Cause::SenderStalled => Stat::ReportsSenderStalled,
            Cause::TooLarge => Stat::ReportsTooLarge,
        }
    }
}

/// Where the engine counts, and shows its connections (RPC).
pub trait StatsSink {
    fn add(&mut self, stat: Stat, v: i64);
    /// A connection opened (`outbound`: by the relay) over `transport`;
    /// returns its listing slot, if it got one.
    fn conn_opened(
        &mut self,
        _id: u64,
        _peer: std::net::SocketAddr,
        _local: std::net::SocketAddr,
        _outbound: bool,
        _transport: crate::transport::Kind,
    ) -> Option<u32> {
        None
    }
    fn conn_closed(&mut self, _slot: u32) {}
    /// The read-rate limit of a listed connection changed (0: none).
    fn conn_read_rate(&mut self, _slot: u32, _bytes_per_second: u64) {}
    /// The worker and connection ID of a plain TCP connection a peer at
    /// `peer` opened to this relay, on any worker (from the shared
    /// listing).
    fn find_inbound(&self, _peer: std::net::SocketAddr) -> Option<(usize, u64)> {
        None
    }
}
