//! The requests a [`Peer`](super::Peer) sends and the frames it reads.

use bytes::{Bytes, BytesMut};
use msrp_core::{build, EndFlag, FrameHead, Header};

use crate::ids;

/// An MSRP request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Transaction identifier.
    pub tid: String,
    /// Method, e.g. `SEND`.
    pub method: String,
    /// To-Path URIs, first hop first.
    pub to_path: Vec<String>,
    /// From-Path URIs, nearest hop first.
    pub from_path: Vec<String>,
    /// Headers after To-Path and From-Path, in order (Message-ID, Byte-Range,
    /// Failure-Report, Content-Type, ...).
    pub headers: Vec<(String, String)>,
    /// Body; `None` sends a frame without a body section.
    pub body: Option<Vec<u8>>,
    /// End-line flag.
    pub flag: EndFlag,
}

impl Request {
    /// A request with a fresh transaction id, no headers besides the paths,
    /// no body and the `$` flag.
    pub fn new(method: &str, to_path: &[&str], from_path: &[&str]) -> Self {
        Request {
            tid: ids::transaction_id(),
            method: method.to_owned(),
            to_path: to_path.iter().map(|s| (*s).to_owned()).collect(),
            from_path: from_path.iter().map(|s| (*s).to_owned()).collect(),
            headers: Vec::new(),
            body: None,
            flag: EndFlag::Complete,
        }
    }

    /// A complete single-chunk SEND: fresh Message-ID, `Byte-Range: 1-N/N`,
    /// `Content-Type: text/plain`.
    pub fn send(to_path: &[&str], from_path: &[&str], body: &[u8]) -> Self {
        let mut r = Self::new("SEND", to_path, from_path);
        let n = body.len();
        r.headers = vec![
            ("Message-ID".into(), ids::message_id()),
            ("Byte-Range".into(), format!("1-{n}/{n}")),
            ("Content-Type".into(), "text/plain".into()),
        ];
        r.body = Some(body.to_vec());
        r
    }

    /// Head of a complete single-chunk SEND of `len` bytes whose body will be
    /// streamed with [`Peer::send_request_streaming`] (`body` stays `None`).
    pub fn send_streaming(to_path: &[&str], from_path: &[&str], len: u64) -> Self {
        let mut r = Self::new("SEND", to_path, from_path);
        r.headers = vec![
            ("Message-ID".into(), ids::message_id()),
            ("Byte-Range".into(), format!("1-{len}/{len}")),
            ("Content-Type".into(), "application/octet-stream".into()),
        ];
        r
    }

    /// Adds (appends) a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The value of the first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn head_bytes(&self, has_body: bool) -> BytesMut {
        let to = to_bytes_vec(&self.to_path);
        let from = to_bytes_vec(&self.from_path);
        let other: Vec<Header> = self
            .headers
            .iter()
            .map(|(n, v)| Header::new(n.clone().into_bytes(), v.clone().into_bytes()))
            .collect();
        build::request_head(
            self.tid.as_bytes(),
            self.method.as_bytes(),
            &to,
            &from,
            &other,
            has_body,
        )
    }

    /// The complete wire form of this request.
    pub fn to_wire(&self) -> Vec<u8> {
        let head = self.head_bytes(self.body.is_some());
        let mut out = head.to_vec();
        match &self.body {
            Some(body) => {
                out.extend_from_slice(body);
                out.extend_from_slice(&build::body_end(self.tid.as_bytes(), self.flag));
            }
            None => out.extend_from_slice(&build::end_line(self.tid.as_bytes(), self.flag)),
        }
        out
    }
}

fn to_bytes_vec(v: &[String]) -> Vec<Bytes> {
    v.iter()
        .map(|s| Bytes::from(s.clone().into_bytes()))
        .collect()
}

/// One complete frame read from the connection.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// Start line and headers.
    pub head: FrameHead,
    /// The body (empty when read with [`Peer::read_frame_hashed`]).
    pub body: Vec<u8>,
    /// SHA-256 of the body.
    pub body_sha256: [u8; 32],
    /// Body length in bytes.
    pub body_len: u64,
    /// End-line flag.
    pub flag: EndFlag,
}

impl ReceivedFrame {
    /// Transaction id as text.
    pub fn tid(&self) -> String {
        String::from_utf8_lossy(&self.head.transaction_id).into_owned()
    }

    /// Method of a request.
    pub fn method(&self) -> Option<String> {
        self.head
            .method()
            .map(|m| String::from_utf8_lossy(m).into_owned())
    }

    /// Status code of a response.
    pub fn status_code(&self) -> Option<u16> {
        self.head.status_code()
    }

    /// First header with this name, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head
            .header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Header names in received order.
    pub fn header_names(&self) -> Vec<String> {
        self.head
            .headers()
            .map(|h| String::from_utf8_lossy(h.name).into_owned())
            .collect()
    }

    /// To-Path URIs (empty if absent or malformed).
    pub fn to_path(&self) -> Vec<String> {
        self.head.to_path().map(strings).unwrap_or_default()
    }

    /// From-Path URIs (empty if absent or malformed).
    pub fn from_path(&self) -> Vec<String> {
        self.head.from_path().map(strings).unwrap_or_default()
    }

    /// Short description for assertion messages.
    pub fn summary(&self) -> String {
        format!(
            "{} ({} body bytes, flag {:?})",
            String::from_utf8_lossy(&self.head.raw).trim_end(),
            self.body_len,
            self.flag
        )
    }
}

fn strings(v: Vec<Bytes>) -> Vec<String> {
    v.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}
