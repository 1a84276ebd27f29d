//! What the protocol side sees of a connection's TLS/WebSocket layer
//! (the driver's `Socket` makes it).

/// What the protocol side needs to know of a connection's TLS/WebSocket
/// layer: its control answers count against the peer's queue, its backlog
/// is output, and a TLS session is confirmed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerView {
    /// Control answers the peer has not taken yet.
    pub replies: usize,
    /// Bytes produced for the socket wait to be written.
    pub backlogged: bool,
    /// TLS handshake done (as a client: the server sent data).
    pub confirmed: bool,
    /// The TLS handshake is still going on (when it ends, output that
    /// waited for it can go).
    pub handshaking: bool,
}

impl LayerView {
    /// No layer: plain TCP or a link.
    pub const NONE: LayerView = LayerView {
        replies: 0,
        backlogged: false,
        confirmed: true,
        handshaking: false,
    };
}
