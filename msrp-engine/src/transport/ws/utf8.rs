//! UTF-8 checks of text messages that arrive in pieces (RFC 6455 §8.1).

use super::WsError;

/// Incremental UTF-8 validation of a text message whose payload arrives in
/// pieces: the bytes of a code point cut by a piece (or frame) boundary are
/// kept until the rest arrives.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Utf8Tail {
    buf: [u8; 4],
    len: usize,
}

impl Utf8Tail {
    /// Validates the next piece of the message.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> Result<(), WsError> {
        if self.len > 0 {
            // complete the cut code point with the first bytes of `data`
            let take = data.len().min(4 - self.len);
            let mut joined = [0u8; 4];
            joined[..self.len].copy_from_slice(&self.buf[..self.len]);
            joined[self.len..self.len + take].copy_from_slice(&data[..take]);
            let joined = &joined[..self.len + take];
            let used = match std::str::from_utf8(joined) {
                Ok(_) => joined.len(),
                Err(e) if e.valid_up_to() > 0 => e.valid_up_to(),
                Err(e) if e.error_len().is_some() => return Err(WsError::InvalidUtf8),
                Err(_) => {
                    // still cut: `data` was shorter than the rest
                    self.buf[..joined.len()].copy_from_slice(joined);
                    self.len = joined.len();
                    return Ok(());
                }
            };
            data = &data[used - self.len..];
            self.len = 0;
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(WsError::InvalidUtf8),
            Err(e) => {
                let tail = &data[e.valid_up_to()..];
                self.buf[..tail.len()].copy_from_slice(tail);
                self.len = tail.len();
                Ok(())
            }
        }
    }

    /// The message ended: a code point still cut is invalid.
    pub(super) fn finish(&mut self) -> Result<(), WsError> {
        let cut = self.len > 0;
        self.len = 0;
        if cut {
            Err(WsError::InvalidUtf8)
        } else {
            Ok(())
        }
    }
}
