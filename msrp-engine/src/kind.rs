//! The transport a listener or connection speaks (tcp, tls, ws, wss): a
//! leaf that configuration, connections, transports and the script view
//! share.

/// The protocol a listener or connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    #[default]
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Kind {
    /// From a `listen` prefix (`tcp`, `tls`, `ws`, `wss`).
    pub fn parse(s: &str) -> Option<Kind> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Kind::Tcp),
            "tls" => Some(Kind::Tls),
            "ws" => Some(Kind::Ws),
            "wss" => Some(Kind::Wss),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Ws => "ws",
            Kind::Wss => "wss",
        }
    }

    /// Carried over TLS.
    pub fn tls(self) -> bool {
        matches!(self, Kind::Tls | Kind::Wss)
    }

    /// Carried over WebSocket.
    pub fn ws(self) -> bool {
        matches!(self, Kind::Ws | Kind::Wss)
    }

    /// The MSRP URI scheme of this relay on such a connection.
    pub fn scheme(self) -> &'static str {
        if self.tls() {
            "msrps"
        } else {
            "msrp"
        }
    }

    /// The MSRP URI transport parameter (RFC 4975 §9, RFC 7977 §6).
    pub fn uri_transport(self) -> &'static str {
        if self.ws() {
            "ws"
        } else {
            "tcp"
        }
    }
}
