//! Sans-IO core of the MSRP protocol (RFC 4975) as used by an MSRP relay
//! (RFC 4976).
//!
//! This crate performs no I/O, reads no clock and uses no randomness: the
//! caller feeds received bytes into a [`Parser`] and writes the bytes produced
//! by the [`build`] functions. Everything that comes from the network is
//! treated as untrusted: malformed input yields typed errors, never panics.
//!
//! ```
//! use bytes::BytesMut;
//! use msrp_core::{EndFlag, Event, Limits, Parser};
//!
//! let mut parser = Parser::new(Limits::default());
//! let mut buf = BytesMut::new();
//! // Bytes arrive from the socket in arbitrary pieces.
//! for read in [
//!     &b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://b.example.com/s;tcp\r\n"[..],
//!     b"From-Path: msrp://a.example.com/t;tcp\r\nContent-Type: text/plain\r\n\r\nHi",
//!     b" Bob\r\n-------a786hjs2$\r\n",
//! ] {
//!     buf.extend_from_slice(read);
//!     while let Some(event) = parser.next(&mut buf).expect("valid MSRP") {
//!         match event {
//!             Event::Head(head) => assert_eq!(head.method(), Some(&b"SEND"[..])),
//!             Event::Body(piece) => assert!(!piece.is_empty()),
//!             Event::End(flag) => assert_eq!(flag, EndFlag::Complete),
//!         }
//!     }
//! }
//! assert!(!parser.in_frame());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod build;
pub mod chunker;
pub mod head;
pub mod headers;
pub mod parser;
pub mod path;
pub mod uri;

mod syntax;

pub use chunker::{ChunkEvent, Chunker};
pub use head::{FrameHead, HeadError, Header, HeaderRef, StartLine};
pub use headers::{ByteRange, FailureReport, Status, MAX_POSITION};
pub use parser::{EndFlag, Event, Limits, ParseError, Parser};
pub use uri::{Host, HostRef, MsrpUri, UriError, UriParts};
