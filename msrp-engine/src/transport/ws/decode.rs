//! The peer's frames back into the MSRP byte stream (RFC 6455 §5), streamed:
//! a data frame's header is consumed as soon as it is complete and its
//! payload handed on as far as it has arrived.

use bytes::{Buf, BytesMut};

use super::utf8::Utf8Tail;
use super::{
    apply_mask, close_frame, control_frame, Role, WsError, WsLimits, MAX_CONTROL_PAYLOAD,
    OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};

/// What the connection is after a [`Decoder::decode`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// More frames may come.
    Open,
    /// A close frame was received; the reply close frame has been appended
    /// to `reply` (unless [`Decoder::close_sent`] said one was sent
    /// already, or [`Decoder::hold_close_reply`] holds it). Further input
    /// is ignored.
    Closed,
}

/// The most a decoder leaves undecoded: a whole control frame (a 6-byte
/// header with its mask key, 125 bytes of payload); a data frame header
/// takes at most 14.
const MAX_HELD: usize = 6 + MAX_CONTROL_PAYLOAD;

/// A parsed frame header.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    /// Header bytes (2 to 14).
    size: usize,
}

/// The data frame whose payload is being received.
#[derive(Debug, Clone, Copy)]
struct DataFrame {
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes received so far, which is where the mask key stands.
    offset: u64,
}

/// The data message in progress, from its first frame to its FIN frame.
#[derive(Debug, Clone, Copy)]
struct Message {
    text: bool,
    /// Payload announced so far, over all its frames.
    len: u64,
}

/// Decodes the frames one peer sends; see [`Decoder::decode`].
#[derive(Debug, Clone)]
pub struct Decoder {
    role: Role,
    limits: WsLimits,
    frame: Option<DataFrame>,
    message: Option<Message>,
    utf8: Utf8Tail,
    closed: bool,
    close_sent: bool,
    /// The reply to the peer's close waits for [`Decoder::take_close_reply`].
    hold_close: bool,
    held_close: Option<Vec<u8>>,
    /// The first error, returned again by every later call.
    failed: Option<WsError>,
}

impl Decoder {
    /// A decoder for the frames the peer of a `role` endpoint sends.
    pub fn new(role: Role, limits: WsLimits) -> Decoder {
        Decoder {
            role,
            limits,
            frame: None,
            message: None,
            utf8: Utf8Tail::default(),
            closed: false,
            close_sent: false,
            hold_close: false,
            held_close: None,
            failed: None,
        }
    }

    /// This side's role (the one its close frames are encoded for).
    pub fn role(&self) -> Role {
        self.role
    }

    /// Tells the decoder this side has sent a close frame itself, so the
    /// peer's close is the answer to it and gets no reply.
    pub fn close_sent(&mut self) {
        self.close_sent = true;
    }

    /// Keeps the reply to the peer's close frame out of `reply`, for
    /// [`Self::take_close_reply`]: after its Close an endpoint sends no
    /// more data (RFC 6455 §5.5.1), so the relay first writes what it has
    /// queued for the peer (responses, REPORTs), then the reply.
    pub fn hold_close_reply(&mut self) {
        self.hold_close = true;
    }

    /// The held reply to the peer's close frame, once.
    pub fn take_close_reply(&mut self) -> Option<Vec<u8>> {
        self.held_close.take()
    }

    /// Consumes whole or partial frames from the front of `input`, leaving
    /// only an incomplete frame header (or an incomplete control frame, at
    /// most 131 bytes) there. Appends unmasked data payload (text, binary,
    /// continuation) to `out` — the MSRP byte stream — as far as it came,
    /// and control replies to `reply`: a pong per ping (same payload), the
    /// close reply for a close.
    ///
    /// An error is a protocol violation: send [`WsError::close_frame`] for
    /// this decoder's role and close. Errors are sticky; `out` holds the
    /// payload decoded before the offending frame or piece.
    pub fn decode(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        reply: &mut Vec<u8>,
    ) -> Result<Status, WsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.run(input, out, reply);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// [`Self::decode`] for input lent as slices, e.g. the plaintext rustls
    /// hands out record by record: the payload is unmasked straight into
    /// `out`, so each byte is copied once from the decrypted record to the
    /// MSRP stream (decrypting into a buffer for [`Self::decode`] took one
    /// more pass over every byte, and a copy into a grown `out` whenever a
    /// frame ended inside a read). What cannot be decoded yet, an
    /// incomplete header or control frame (at most 131 bytes), is kept in
    /// `held` and decoded first by the next call.
    pub fn decode_slice(
        &mut self,
        input: &[u8],
        held: &mut BytesMut,
        out: &mut BytesMut,
        reply: &mut Vec<u8>,
    ) -> Result<Status, WsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.run_slice(input, held, out, reply);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// [`Self::decode_slice`] without the sticky error.
    fn run_slice(
        &mut self,
        mut input: &[u8],
        held: &mut BytesMut,
        out: &mut BytesMut,
        reply: &mut Vec<u8>,
    ) -> Result<Status, WsError> {
        if !held.is_empty() {
            // with this many more bytes what is held is complete
            let take = input.len().min(MAX_HELD);
            held.extend_from_slice(&input[..take]);
            if self.run(held, out, reply)? == Status::Closed {
                return Ok(Status::Closed);
            }
            if held.len() > take {
                // still incomplete: `input` was shorter than `take` allows
                held.extend_from_slice(&input[take..]);
                return Ok(Status::Open);
            }
            // what is left of `held` is the end of `input[..take]`
            input = &input[take - held.len()..];
            held.clear();
        }
        loop {
            if self.closed {
                return Ok(Status::Closed);
            }
            if self.frame.is_some() {
                let n = self.due(input.len());
                if n == 0 && self.frame.is_some_and(|f| f.remaining > 0) {
                    return Ok(Status::Open);
                }
                let start = out.len();
                out.extend_from_slice(&input[..n]);
                if let Err(e) = self.unmask(&mut out[start..]) {
                    out.truncate(start);
                    return Err(e);
                }
                input = &input[n..];
                self.took(n)?;
                continue;
            }
            let Some(h) = parse_header(input, self.role)? else {
                held.extend_from_slice(input);
                return Ok(Status::Open);
            };
            if h.opcode >= OP_CLOSE {
                let total = h.size + h.len as usize;
                if input.len() < total {
                    held.extend_from_slice(input);
                    return Ok(Status::Open);
                }
                let mut frame = [0u8; MAX_CONTROL_PAYLOAD];
                let payload = &mut frame[..h.len as usize];
                payload.copy_from_slice(&input[h.size..total]);
                if let Some(key) = h.mask {
                    apply_mask(payload, key, 0);
                }
                self.control(h.opcode, payload, reply)?;
                input = &input[total..];
            } else {
                self.start_data(&h)?;
                input = &input[h.size..];
            }
        }
    }

    /// [`Self::decode`] without the sticky error.
    fn run(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        reply: &mut Vec<u8>,
    ) -> Result<Status, WsError> {
        loop {
            if self.closed {
                input.clear();
                return Ok(Status::Closed);
            }
            if self.frame.is_some() {
                if !self.payload(input, out)? {
                    return Ok(Status::Open);
                }
                continue;
            }
            let Some(h) = parse_header(input, self.role)? else {
                return Ok(Status::Open);
            };
            if h.opcode >= OP_CLOSE {
                // at most 125 bytes: wait for all of it, no buffer of our own
                let total = h.size + h.len as usize;
                if input.len() < total {
                    return Ok(Status::Open);
                }
                let mut frame = input.split_to(total);
                let payload = &mut frame[h.size..];
                if let Some(key) = h.mask {
                    apply_mask(payload, key, 0);
                }
                self.control(h.opcode, payload, reply)?;
            } else {
                self.start_data(&h)?;
                input.advance(h.size);
            }
        }
    }

    /// Moves the payload of the current data frame that has arrived from
    /// `input` to `out`. True when the frame is complete.
    fn payload(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, WsError> {
        let n = self.due(input.len());
        if n == 0 && self.frame.is_some_and(|f| f.remaining > 0) {
            return Ok(false);
        }
        let mut piece = input.split_to(n);
        self.unmask(&mut piece)?;
        // no copy when `out` is empty (the engine drains it after each call)
        out.unsplit(piece);
        self.took(n)
    }

    /// How many of `available` bytes belong to the current frame's payload.
    fn due(&self, available: usize) -> usize {
        self.frame.map_or(0, |f| {
            usize::try_from(f.remaining).map_or(available, |r| r.min(available))
        })
    }

    /// Unmasks the next piece of the current frame's payload in place and
    /// checks it when the message is text.
    fn unmask(&mut self, piece: &mut [u8]) -> Result<(), WsError> {
        let Some(f) = self.frame else {
            return Ok(());
        };
        if let Some(key) = f.mask {
            apply_mask(piece, key, f.offset);
        }
        if self.message.is_some_and(|m| m.text) {
            self.utf8.feed(piece)?;
        }
        Ok(())
    }

    /// Counts `n` bytes of the current frame's payload as handed on. True
    /// when the frame is complete.
    fn took(&mut self, n: usize) -> Result<bool, WsError> {
        let Some(f) = self.frame.as_mut() else {
            return Ok(true);
        };
        f.offset += n as u64;
        f.remaining -= n as u64;
        if f.remaining > 0 {
            return Ok(false);
        }
        let fin = f.fin;
        self.frame = None;
        if fin {
            if self.message.is_some_and(|m| m.text) {
                self.utf8.finish()?;
            }
            self.message = None;
        }
        Ok(true)
    }

    /// Checks a data frame header against the message in progress and the
    /// size limit, and makes it the current frame.
    fn start_data(&mut self, h: &Header) -> Result<(), WsError> {
        let message = match (h.opcode, self.message.as_mut()) {
            (OP_CONTINUATION, Some(m)) => m,
            (OP_CONTINUATION, None) => return Err(WsError::UnexpectedContinuation),
            (_, Some(_)) => return Err(WsError::MessageInProgress),
            (_, None) => self.message.insert(Message {
                text: h.opcode == OP_TEXT,
                len: 0,
            }),
        };
        let len = message.len.saturating_add(h.len);
        let max = self.limits.max_message;
        if max != 0 && len > max as u64 {
            return Err(WsError::TooBig(max));
        }
        message.len = len;
        self.frame = Some(DataFrame {
            fin: h.fin,
            mask: h.mask,
            remaining: h.len,
            offset: 0,
        });
        Ok(())
    }

    /// Answers a complete, unmasked control frame.
    fn control(&mut self, opcode: u8, payload: &[u8], reply: &mut Vec<u8>) -> Result<(), WsError> {
        match opcode {
            OP_PING => reply.extend_from_slice(&control_frame(self.role, OP_PONG, payload)),
            OP_PONG => {}
            _ => {
                let code = close_payload(payload)?;
                if !self.close_sent {
                    // echo the peer's code (RFC 6455 §5.5.1), no reason
                    let frame = match code {
                        Some(code) => close_frame(self.role, code, ""),
                        None => control_frame(self.role, OP_CLOSE, &[]),
                    };
                    match self.hold_close {
                        true => self.held_close = Some(frame),
                        false => reply.extend_from_slice(&frame),
                    }
                }
                self.closed = true;
            }
        }
        Ok(())
    }
}

/// The status code of a close frame payload (none when empty): a code an
/// endpoint may send (RFC 6455 §7.4) and a UTF-8 reason.
fn close_payload(payload: &[u8]) -> Result<Option<u16>, WsError> {
    let (code, reason) = match payload {
        [] => return Ok(None),
        [_] => return Err(WsError::CloseLength),
        [a, b, reason @ ..] => (u16::from_be_bytes([*a, *b]), reason),
    };
    // 1004 to 1006 and 1015 are reserved or for local use only; 1016..3000
    // are unassigned
    if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
        return Err(WsError::CloseCode(code));
    }
    std::str::from_utf8(reason).map_err(|_| WsError::CloseReason)?;
    Ok(Some(code))
}

/// The frame header at the front of `buf`, `None` while incomplete. The
/// checks that need only the first two bytes come first, so a bad frame
/// fails as soon as they arrive.
fn parse_header(buf: &[u8], role: Role) -> Result<Option<Header>, WsError> {
    let &[b0, b1, ..] = buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WsError::Reserved);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(WsError::Opcode(opcode));
    }
    let masked = b1 & 0x80 != 0;
    if masked != role.expects_masked() {
        return Err(WsError::Mask { masked });
    }
    let len7 = b1 & 0x7f;
    if opcode >= OP_CLOSE {
        if !fin {
            return Err(WsError::ControlFragmented);
        }
        if usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(WsError::ControlTooLong);
        }
    }
    let (len, at) = match len7 {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                (u64::from_be_bytes(w), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 {
        return Err(WsError::LengthOverflow);
    }
    let (mask, size) = if masked {
        match buf.get(at..at + 4) {
            Some(k) => (Some([k[0], k[1], k[2], k[3]]), at + 4),
            None => return Ok(None),
        }
    } else {
        (None, at)
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        len,
        size,
    }))
}
