//! Helpers shared by the integration tests.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use msrp_core::{EndFlag, Event, HeaderRef, Limits, ParseError, Parser, StartLine};

/// A comparable rendering of parser output, with consecutive Body pieces
/// merged (how the body is cut into pieces depends on the read sizes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Head {
        raw: Bytes,
        tid: Bytes,
        start: StartLine,
        headers: Vec<(Bytes, Bytes)>,
        has_body: bool,
    },
    Body(Vec<u8>),
    End(EndFlag),
}

/// Everything the parser produced, plus how it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<Ev>,
    pub error: Option<ParseError>,
    /// `in_frame()` after all input was consumed.
    pub in_frame: bool,
    /// Bytes left unconsumed in the buffer at the end (only meaningful
    /// without error).
    pub leftover: usize,
}

fn push(events: &mut Vec<Ev>, ev: Event) {
    match ev {
        Event::Head(h) => events.push(Ev::Head {
            raw: h.raw.clone(),
            tid: h.transaction_id.clone(),
            start: h.start.clone(),
            headers: h
                .headers()
                .map(|HeaderRef { name, value }| (h.bytes_of(name), h.bytes_of(value)))
                .collect(),
            has_body: h.has_body,
        }),
        Event::Body(b) => {
            assert!(!b.is_empty(), "empty Body event");
            if let Some(Ev::Body(prev)) = events.last_mut() {
                prev.extend_from_slice(&b);
            } else {
                events.push(Ev::Body(b.to_vec()));
            }
        }
        Event::End(f) => events.push(Ev::End(f)),
    }
}

/// Feeds `chunks` one after another, draining events after each.
pub fn run_chunks<'a>(limits: Limits, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = Parser::new(limits);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match parser.next(&mut buf) {
                Ok(Some(ev)) => push(&mut events, ev),
                Ok(None) => break,
                Err(e) => {
                    // Errors are sticky.
                    assert_eq!(parser.next(&mut buf).err(), Some(e.clone()));
                    return Outcome {
                        events,
                        error: Some(e),
                        in_frame: parser.in_frame(),
                        leftover: buf.len(),
                    };
                }
            }
        }
    }
    Outcome {
        events,
        error: None,
        in_frame: parser.in_frame(),
        leftover: buf.len(),
    }
}

pub fn run_whole(limits: Limits, input: &[u8]) -> Outcome {
    run_chunks(limits, [input])
}

pub fn run_split(limits: Limits, input: &[u8], at: usize) -> Outcome {
    run_chunks(limits, [&input[..at], &input[at..]])
}

pub fn run_bytewise(limits: Limits, input: &[u8]) -> Outcome {
    run_chunks(limits, input.chunks(1))
}

/// Concatenated body of the `n`th frame in `events`.
pub fn body_of(events: &[Ev], n: usize) -> Vec<u8> {
    let mut frame = 0;
    let mut out = Vec::new();
    for ev in events {
        match ev {
            Ev::Body(b) if frame == n => out.extend_from_slice(b),
            Ev::End(_) => frame += 1,
            _ => {}
        }
    }
    out
}
