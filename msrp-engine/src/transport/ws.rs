//! STUB (replaced by the WebSocket codec branch).
#![allow(dead_code, unused_variables, clippy::ptr_arg)]
use bytes::BytesMut;

#[derive(Debug, Clone, Copy)]
pub enum Role {
    Server,
    Client,
}
#[derive(Debug, Clone)]
pub struct WsLimits {
    pub max_message: usize,
    pub max_handshake: usize,
}
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct WsError;
impl WsError {
    pub fn close_code(&self) -> u16 {
        1002
    }
    pub fn close_frame(&self, role: Role) -> Vec<u8> {
        Vec::new()
    }
}
pub enum Handshake {
    Incomplete,
    Accepted {
        response: Vec<u8>,
        consumed: usize,
        origin: Option<String>,
    },
    Refused {
        response: Vec<u8>,
        error: WsError,
    },
}
pub fn server_handshake(input: &[u8], origins: &[String], limits: &WsLimits) -> Handshake {
    Handshake::Refused {
        response: Vec::new(),
        error: WsError,
    }
}
pub struct Decoder;
pub enum Status {
    Open,
    Closed,
}
impl Decoder {
    pub fn new(role: Role, limits: WsLimits) -> Decoder {
        Decoder
    }
    pub fn decode(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        reply: &mut Vec<u8>,
    ) -> Result<Status, WsError> {
        Err(WsError)
    }
}
pub struct MessageWriter;
impl MessageWriter {
    pub fn new(role: Role) -> Self {
        MessageWriter
    }
    pub fn piece_header(&mut self, len: usize, last: bool, out: &mut Vec<u8>) {}
}
pub fn close_frame(role: Role, code: u16, reason: &str) -> Vec<u8> {
    Vec::new()
}
