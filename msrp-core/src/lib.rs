//! Sans-IO core of the MSRP protocol (RFC 4975) as used by an MSRP relay
//! (RFC 4976).
//!
//! This crate performs no I/O, reads no clock and uses no randomness: the
//! caller feeds received bytes into a [`Parser`] and writes the bytes produced
//! by the [`build`] functions. Everything that comes from the network is
//! treated as untrusted: malformed input yields typed errors, never panics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod build;
pub mod head;
pub mod headers;
pub mod parser;
pub mod path;
pub mod uri;

mod syntax;

pub use head::{FrameHead, HeadError, Header, StartLine};
pub use headers::{ByteRange, FailureReport, Status};
pub use parser::{EndFlag, Event, Limits, ParseError, Parser};
pub use uri::{Host, MsrpUri, UriError};
