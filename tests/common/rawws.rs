//! A WebSocket client at the byte level (RFC 6455), for tests that must see
//! what a library hides: the HTTP status of a refused upgrade and whether
//! the connection closes after it, every received frame (FIN, opcode,
//! fragments, pongs, close codes), and frames a library would never send
//! (unmasked ones, via [`RawWs::send`]). Plain `ws:` only; it shares no code
//! with the relay's WebSocket layer or with tungstenite.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use msrp_tools::ws::{client_frame, opcode};

/// The key of RFC 6455 §1.3's example, and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// One received WebSocket message: a control frame, or a data message
/// reassembled from `frames` frames.
#[derive(Debug)]
pub struct WsMsg {
    pub opcode: u8,
    pub payload: Vec<u8>,
    pub frames: usize,
}

impl WsMsg {
    /// Close code of a close frame (1005 when it has none).
    pub fn close_code(&self) -> u16 {
        match self.payload.get(..2) {
            Some(c) => u16::from_be_bytes([c[0], c[1]]),
            None => 1005,
        }
    }
}

pub struct RawWs {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// A data message whose final fragment has not arrived: (opcode,
    /// payload so far, frames).
    partial: Option<(u8, Vec<u8>, usize)>,
}

impl RawWs {
    /// Connects and sends an upgrade request for `/` with `extra` header
    /// lines (e.g. `Sec-WebSocket-Protocol: msrp`). Returns the client and
    /// the response head; after a 101 the accept value is checked.
    pub fn upgrade(addr: SocketAddr, extra: &[&str]) -> (RawWs, String) {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        tcp.set_nodelay(true).expect("nodelay");
        tcp.set_write_timeout(Some(Duration::from_secs(30)))
            .expect("write timeout");
        let mut ws = RawWs {
            tcp,
            buf: Vec::new(),
            partial: None,
        };
        let mut req = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
        );
        for h in extra {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        ws.send(req.as_bytes()).expect("send the upgrade request");
        let deadline = Instant::now() + Duration::from_secs(5);
        let end = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            ws.fill(deadline)
                .unwrap_or_else(|e| panic!("upgrade response from {addr}: {e}"));
        };
        let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
        ws.buf.drain(..end);
        if head.starts_with("HTTP/1.1 101 ") {
            assert!(
                head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
                "wrong accept value:\n{head}"
            );
        }
        (ws, head)
    }

    /// An upgrade offering `msrp` that must succeed.
    pub fn open(addr: SocketAddr) -> RawWs {
        let (ws, head) = RawWs::upgrade(addr, &["Sec-WebSocket-Protocol: msrp"]);
        assert!(
            head.starts_with("HTTP/1.1 101 ") && head.contains("Sec-WebSocket-Protocol: msrp\r\n"),
            "upgrade not accepted with subprotocol msrp:\n{head}"
        );
        ws
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.tcp.local_addr().expect("local_addr")
    }

    /// Writes bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tcp.write_all(bytes)
    }

    /// Sends one masked, unfragmented frame.
    pub fn send_msg(&mut self, op: u8, payload: &[u8]) {
        self.send(&client_frame(true, op, payload))
            .unwrap_or_else(|e| panic!("send a WebSocket frame: {e}"));
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out".into());
        }
        self.tcp.set_read_timeout(Some(left)).expect("read timeout");
        let mut piece = [0u8; 65536];
        match self.tcp.read(&mut piece) {
            Ok(0) => Err("EOF".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&piece[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err("timed out".into())
            }
            Err(e) => Err(format!("read error: {e}")),
        }
    }

    /// One frame: (FIN, opcode, payload). A server frame must be unmasked.
    fn read_frame(&mut self, deadline: Instant) -> Result<(bool, u8, Vec<u8>), String> {
        loop {
            if let Some((hlen, plen)) = self.frame_len()? {
                if self.buf.len() >= hlen + plen {
                    let (b0, b1) = (self.buf[0], self.buf[1]);
                    if b1 & 0x80 != 0 {
                        return Err("the server sent a masked frame".into());
                    }
                    if b0 & 0x70 != 0 {
                        return Err(format!("RSV bits set in frame byte {b0:#04x}"));
                    }
                    let payload = self.buf[hlen..hlen + plen].to_vec();
                    self.buf.drain(..hlen + plen);
                    return Ok((b0 & 0x80 != 0, b0 & 0x0f, payload));
                }
            }
            self.fill(deadline)?;
        }
    }

    /// Header and payload length of the frame at the start of `buf`, once
    /// its header has arrived.
    fn frame_len(&self) -> Result<Option<(usize, usize)>, String> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let (hlen, len) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as u64),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (10, u64::from_be_bytes(n))
            }
            126 | 127 => return Ok(None),
            n => (2, n as u64),
        };
        let len = usize::try_from(len).map_err(|_| format!("frame length {len}"))?;
        Ok(Some((hlen + if b[1] & 0x80 != 0 { 4 } else { 0 }, len)))
    }

    /// The next message: a control frame as it is, or a whole data message
    /// (its fragments joined). Fragmentation errors are errors.
    pub fn read_message(&mut self, timeout: Duration) -> Result<WsMsg, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let (fin, op, payload) = self.read_frame(deadline)?;
            if op >= 8 {
                if !fin || payload.len() > 125 {
                    return Err(format!("bad control frame (opcode {op}, fin {fin})"));
                }
                return Ok(WsMsg {
                    opcode: op,
                    payload,
                    frames: 1,
                });
            }
            let (op, mut data, frames) = match (op, self.partial.take()) {
                (opcode::CONTINUATION, Some(p)) => p,
                (opcode::CONTINUATION, None) => {
                    return Err("continuation frame without a message".into())
                }
                (opcode::TEXT | opcode::BINARY, None) => (op, Vec::new(), 0),
                (opcode::TEXT | opcode::BINARY, Some(p)) => {
                    return Err(format!(
                        "a new data message began after {} bytes of an unfinished one",
                        p.1.len()
                    ))
                }
                _ => return Err(format!("reserved opcode {op}")),
            };
            data.extend_from_slice(&payload);
            if fin {
                return Ok(WsMsg {
                    opcode: op,
                    payload: data,
                    frames: frames + 1,
                });
            }
            self.partial = Some((op, data, frames + 1));
        }
    }

    /// Waits for the other side to close the TCP connection (EOF or reset),
    /// with nothing more arriving.
    pub fn expect_eof(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(()) => {}
                Err(e) if e == "EOF" || e.contains("reset") => break,
                Err(e) => return Err(format!("connection still open: {e}")),
            }
        }
        match self.buf.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "{} bytes before the close: {:?}",
                self.buf.len(),
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(120)])
            )),
        }
    }
}
