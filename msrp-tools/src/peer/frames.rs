//! Writing requests and responses, and reading frames with a deadline.

use super::*;

impl Peer {
    /// Sends a complete request (head, body if any, end-line).
    pub fn send_request(&mut self, req: &Request) -> Result<(), PeerError> {
        self.send_raw(&req.to_wire())
    }

    /// Sends `req`'s head followed by a body of `body.remaining()` bytes
    /// produced by `body` in 64 KiB pieces, then the end-line with
    /// `req.flag`. `req.body` is ignored. Returns the body's SHA-256.
    pub fn send_request_streaming(
        &mut self,
        req: &Request,
        body: BodyGen,
    ) -> Result<[u8; 32], PeerError> {
        let head = req.head_bytes(true);
        self.send_raw(&head)?;
        let mut hasher = Sha256::new();
        let mut failed: Option<PeerError> = None;
        let io = &mut self.io;
        let r = body.for_each_piece(|piece| {
            hasher.update(piece);
            match io {
                Io::Stream(s) => s.write_all(piece),
                Io::Ws(ws) => ws
                    .send(Message::Binary(Bytes::copy_from_slice(piece)))
                    .map_err(|e| {
                        let e = ws_write_error(e);
                        let io_err = io::Error::other(e.to_string());
                        failed = Some(e);
                        io_err
                    }),
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        r?;
        self.send_raw(&build::body_end(req.tid.as_bytes(), req.flag))?;
        Ok(hasher.finalize().into())
    }

    /// Answers a received request following the paths rule this project's
    /// relay relies on: To-Path = the request's whole From-Path, From-Path =
    /// the request's first To-Path URI (the responder's own URI).
    pub fn send_response(
        &mut self,
        to: &ReceivedFrame,
        code: u16,
        comment: Option<&str>,
    ) -> Result<(), PeerError> {
        let to_path = to
            .head
            .from_path()
            .map_err(|e| PeerError::Protocol(format!("request has no usable From-Path: {e}")))?;
        self.respond_with_to_path(to, to_path, code, comment)
    }

    /// Answers a received request hop-by-hop only: To-Path = the first
    /// From-Path URI (the previous hop), From-Path = the first To-Path URI.
    /// This is what Kamailio's stock `msrp_reply()` does for SEND.
    pub fn send_hop_response(
        &mut self,
        to: &ReceivedFrame,
        code: u16,
        comment: Option<&str>,
    ) -> Result<(), PeerError> {
        let mut to_path = to
            .head
            .from_path()
            .map_err(|e| PeerError::Protocol(format!("request has no usable From-Path: {e}")))?;
        to_path.truncate(1);
        self.respond_with_to_path(to, to_path, code, comment)
    }

    fn respond_with_to_path(
        &mut self,
        to: &ReceivedFrame,
        to_path: Vec<Bytes>,
        code: u16,
        comment: Option<&str>,
    ) -> Result<(), PeerError> {
        let mut from_path = to
            .head
            .to_path()
            .map_err(|e| PeerError::Protocol(format!("request has no usable To-Path: {e}")))?;
        from_path.truncate(1);
        let frame = build::response_frame(
            &to.head.transaction_id,
            code,
            comment.map(str::as_bytes),
            &to_path,
            &from_path,
            &[],
        );
        self.send_raw(&frame)
    }

    /// Sends a response with explicit paths and transaction id.
    pub fn send_response_raw(
        &mut self,
        tid: &str,
        code: u16,
        comment: Option<&str>,
        to_path: &[&str],
        from_path: &[&str],
    ) -> Result<(), PeerError> {
        let to: Vec<Bytes> = to_path
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let from: Vec<Bytes> = from_path
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let frame = build::response_frame(
            tid.as_bytes(),
            code,
            comment.map(str::as_bytes),
            &to,
            &from,
            &[],
        );
        self.send_raw(&frame)
    }

    /// Reads one complete frame, keeping its body in memory.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<ReceivedFrame, PeerError> {
        self.read_frame_inner(timeout, true)
    }

    /// Reads one complete frame, only hashing and counting its body.
    pub fn read_frame_hashed(&mut self, timeout: Duration) -> Result<ReceivedFrame, PeerError> {
        self.read_frame_inner(timeout, false)
    }

    /// Reads frames until a response arrives, skipping requests whose method
    /// is in `skip` (e.g. `["REPORT"]`). Errors on any other request.
    pub fn read_response(
        &mut self,
        timeout: Duration,
        skip: &[&str],
    ) -> Result<ReceivedFrame, PeerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.read_frame(left)?;
            match f.method() {
                None => return Ok(f),
                Some(m) if skip.iter().any(|s| s.eq_ignore_ascii_case(&m)) => continue,
                Some(_) => {
                    return Err(PeerError::Protocol(format!(
                        "expected a response, got request {}",
                        f.summary()
                    )))
                }
            }
        }
    }

    /// Reads one complete frame, handing each body piece to `on_body` as it
    /// arrives (the returned frame's `body` is empty).
    pub fn read_frame_streaming(
        &mut self,
        timeout: Duration,
        on_body: impl FnMut(&[u8]),
    ) -> Result<ReceivedFrame, PeerError> {
        self.read_frame_inner_with(timeout, false, on_body)
    }

    fn read_frame_inner(
        &mut self,
        timeout: Duration,
        keep_body: bool,
    ) -> Result<ReceivedFrame, PeerError> {
        self.read_frame_inner_with(timeout, keep_body, |_| {})
    }

    fn read_frame_inner_with(
        &mut self,
        timeout: Duration,
        keep_body: bool,
        mut on_body: impl FnMut(&[u8]),
    ) -> Result<ReceivedFrame, PeerError> {
        let deadline = Instant::now() + timeout;
        let mut head: Option<FrameHead> = None;
        let mut body = Vec::new();
        let mut hasher = Sha256::new();
        let mut body_len = 0u64;
        loop {
            while let Some(event) = self.parser.next(&mut self.buf).map_err(PeerError::Parse)? {
                match event {
                    Event::Head(h) => {
                        if let Some(old) = &head {
                            return Err(PeerError::Protocol(format!(
                                "second head before end-line of {}",
                                String::from_utf8_lossy(&old.raw)
                            )));
                        }
                        head = Some(h);
                    }
                    Event::Body(piece) => {
                        hasher.update(&piece);
                        on_body(&piece);
                        body_len += piece.len() as u64;
                        if keep_body {
                            body.extend_from_slice(&piece);
                        }
                    }
                    Event::End(flag) => {
                        let Some(head) = head.take() else {
                            return Err(PeerError::Protocol("end-line without head".into()));
                        };
                        return Ok(ReceivedFrame {
                            head,
                            body,
                            body_sha256: hasher.finalize().into(),
                            body_len,
                            flag,
                        });
                    }
                }
            }
            let pending = |buffered: usize| match &head {
                Some(h) => format!(
                    "inside frame {} after {body_len} body bytes",
                    String::from_utf8_lossy(&h.raw).lines().next().unwrap_or("")
                ),
                None => format!("waiting for a frame ({buffered} bytes buffered)"),
            };
            match self.fill(deadline) {
                Ok(()) => {}
                Err(PeerError::Timeout(_)) => {
                    return Err(PeerError::Timeout(pending(self.buf.len())))
                }
                Err(PeerError::Closed(_)) => {
                    return Err(PeerError::Closed(pending(self.buf.len())))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads more bytes into the buffer, waiting at most until `deadline`.
    /// Over a WebSocket it reads one message, which may add nothing (a
    /// ping, answered here, or a pong).
    fn fill(&mut self, deadline: Instant) -> Result<(), PeerError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PeerError::Timeout(String::new()));
        }
        self.io.tcp().set_read_timeout(Some(left))?;
        let ws = match &mut self.io {
            Io::Ws(ws) => ws,
            Io::Stream(s) => {
                let mut piece = [0u8; READ_PIECE];
                let n = match s.read(&mut piece) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                if n == 0 {
                    return Err(PeerError::Closed("EOF".into()));
                }
                self.buf.extend_from_slice(&piece[..n]);
                return Ok(());
            }
        };
        match ws.read() {
            Ok(Message::Binary(b)) => self.buf.extend_from_slice(&b),
            Ok(Message::Text(t)) => self.buf.extend_from_slice(t.as_bytes()),
            Ok(Message::Ping(_)) => {
                // tungstenite queued the pong; send it now.
                match ws.flush() {
                    Ok(()) => {}
                    Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                    Err(e) => return Err(ws_write_error(e)),
                }
            }
            Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => {}
            Ok(Message::Close(frame)) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.as_str().to_owned())
                });
                self.ws_close = Some((code, reason.clone()));
                // tungstenite queued the Close reply; send it if we can.
                let _ = ws.flush();
                return Err(PeerError::Closed(format!(
                    "WebSocket Close {code} {reason:?}"
                )));
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(tungstenite::Error::Io(e)) => return Err(e.into()),
            Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                return Err(PeerError::Closed("WebSocket closed".into()))
            }
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => {
                return Err(PeerError::Closed(
                    "EOF without a WebSocket closing handshake".into(),
                ))
            }
            Err(e) => return Err(PeerError::Ws(e)),
        }
        Ok(())
    }

    /// Waits until the other side closes the connection (EOF or reset).
    /// Returns the bytes that arrived before the close (including any left
    /// unparsed in the buffer).
    pub fn expect_closed(&mut self, timeout: Duration) -> Result<Vec<u8>, PeerError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(()) => {}
                Err(PeerError::Closed(_)) => return Ok(self.buf.split().to_vec()),
                Err(PeerError::Timeout(_)) => {
                    return Err(PeerError::Timeout(format!(
                        "connection still open after {timeout:?} ({} bytes received: {:?})",
                        self.buf.len(),
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Succeeds if nothing arrives (and the connection stays open) for
    /// `duration` (WebSocket pings and pongs do not count).
    pub fn expect_nothing(&mut self, duration: Duration) -> Result<(), PeerError> {
        if !self.buf.is_empty() {
            return Err(PeerError::Protocol(format!(
                "unexpected buffered data: {:?}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
            )));
        }
        let deadline = Instant::now() + duration;
        loop {
            match self.fill(deadline) {
                Err(PeerError::Timeout(_)) => return Ok(()),
                Ok(()) if self.buf.is_empty() => {}
                Ok(()) => {
                    return Err(PeerError::Protocol(format!(
                        "unexpected data: {:?}",
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }
}
