//! Receiving a re-chunked message at B and checking its chunks (used by
//! the chunking and transport tests).

use std::collections::HashSet;
use std::time::Duration;

use msrp_core::ByteRange;
use msrp_tools::body::hex;
use msrp_tools::kamailio::Kamailio;
use msrp_tools::{BodyGen, EndFlag, Endpoint, Peer, PeerError, ReceivedFrame, Request};
use sha2::{Digest, Sha256};

/// Timeout for one frame of a large transfer at B.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// What B saw of one received SEND chunk.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub msg_id: String,
    pub tid: String,
    pub range_raw: String,
    pub range: ByteRange,
    pub len: u64,
    pub flag: EndFlag,
    pub summary: String,
}

impl Chunk {
    pub fn of(f: &ReceivedFrame) -> Chunk {
        let range_raw = f.header("Byte-Range").unwrap_or_default();
        let range = match f.head.byte_range() {
            Ok(Some(r)) => r,
            other => panic!(
                "relayed SEND without a valid Byte-Range ({other:?}): {}",
                f.summary()
            ),
        };
        Chunk {
            msg_id: f.header("Message-ID").unwrap_or_default(),
            tid: f.tid(),
            range_raw,
            range,
            len: f.body_len,
            flag: f.flag,
            summary: f.summary(),
        }
    }
}

/// Reads frames of one message at B until its `$` or `#` chunk, answering
/// each non-aborted chunk with 200. Every chunk must be a SEND of
/// `msg_id` with To-Path = `to`, From-Path = `from`. Body pieces go to
/// `on_body`.
pub fn receive_message(
    k: &Kamailio,
    bp: &mut Peer,
    msg_id: &str,
    to: &[String],
    from: &[String],
    on_body: impl FnMut(&[u8]),
) -> Vec<Chunk> {
    match try_receive_message(bp, msg_id, to, from, FRAME_TIMEOUT, on_body) {
        (chunks, None) => chunks,
        (chunks, Some(e)) => panic!(
            "B read after {} bytes in {} chunks: {e}\nlog tail:\n{}",
            chunks.iter().map(|c| c.len).sum::<u64>(),
            chunks.len(),
            k.log_tail(30)
        ),
    }
}

/// [`receive_message`] that returns the chunks received so far and the
/// read error instead of panicking on one.
pub fn try_receive_message(
    bp: &mut Peer,
    msg_id: &str,
    to: &[String],
    from: &[String],
    frame_timeout: Duration,
    mut on_body: impl FnMut(&[u8]),
) -> (Vec<Chunk>, Option<PeerError>) {
    let mut chunks: Vec<Chunk> = Vec::new();
    loop {
        let f = match bp.read_frame_streaming(frame_timeout, &mut on_body) {
            Ok(f) => f,
            Err(e) => return (chunks, Some(e)),
        };
        assert_eq!(f.method().as_deref(), Some("SEND"), "{}", f.summary());
        assert_eq!(
            f.header("Message-ID").as_deref(),
            Some(msg_id),
            "{}",
            f.summary()
        );
        assert_eq!(f.to_path(), to, "To-Path of chunk {}", chunks.len());
        assert_eq!(f.from_path(), from, "From-Path of chunk {}", chunks.len());
        chunks.push(Chunk::of(&f));
        match f.flag {
            EndFlag::Continued => {
                bp.send_response(&f, 200, Some("OK")).expect("B respond");
            }
            EndFlag::Complete => {
                bp.send_response(&f, 200, Some("OK")).expect("B respond");
                return (chunks, None);
            }
            EndFlag::Aborted => return (chunks, None),
        }
    }
}

/// Checks a message's chunks as B received them: distinct transaction ids,
/// every body at most `max`, Byte-Ranges contiguous from 1 (start = previous
/// end + 1), end = start + len - 1 (or `*` when `end_known` is false), total
/// = `total`, flag `+` on all but the last, `$` on the last (unless
/// `last_flag` says otherwise). Returns the total body length.
pub fn check_chunks(
    chunks: &[Chunk],
    max: u64,
    end_known: bool,
    total: Option<u64>,
    last_flag: EndFlag,
) -> u64 {
    assert!(!chunks.is_empty(), "no chunk received");
    let mut tids = HashSet::new();
    let mut next = 1u64;
    for (i, c) in chunks.iter().enumerate() {
        let ctx = || format!("chunk {i} of {}: {}", chunks.len(), c.summary);
        assert!(tids.insert(c.tid.clone()), "duplicate tid: {}", ctx());
        assert_eq!(c.msg_id, chunks[0].msg_id, "Message-ID: {}", ctx());
        assert!(c.len <= max, "body of {} bytes > {max}: {}", c.len, ctx());
        let last = i + 1 == chunks.len();
        // Only the last chunk may be empty (e.g. a `$` or `#` that follows a
        // full chunk closed early).
        assert!(last || c.len > 0, "empty non-final chunk: {}", ctx());
        assert_eq!(c.range.start, next, "Byte-Range start: {}", ctx());
        assert_eq!(c.range.total, total, "Byte-Range total: {}", ctx());
        if !end_known {
            assert_eq!(c.range.end, None, "Byte-Range end must be `*`: {}", ctx());
        } else if !(last && last_flag == EndFlag::Aborted) {
            assert_eq!(
                c.range.end,
                Some(c.range.start + c.len - 1),
                "Byte-Range end: {}",
                ctx()
            );
        }
        let want = if last { last_flag } else { EndFlag::Continued };
        assert_eq!(c.flag, want, "end-line flag: {}", ctx());
        next += c.len;
    }
    next - 1
}

/// One message streamed A -> relay -> B and checked at B.
pub struct Transfer {
    /// What B received, chunk by chunk (each answered 200).
    pub chunks: Vec<Chunk>,
    /// A, with the relay's answers still to read.
    pub a: Peer,
    /// B's side of the relay's connection.
    pub b: Peer,
    /// A's transaction ID.
    pub tid: String,
}

/// Streams a `len`-byte SEND as one chunk from `a` (whose URI is `a_uri`)
/// through the relay URI `relay` to `b_uri` at `b`, and receives it there:
/// every chunk carries To-Path `[b_uri]` and From-Path `[relay, a_uri]`,
/// and the SHA-256 of what B got is what A sent. `on_body` sees B's body
/// pieces (e.g. to read slowly). A stays open until B has everything
/// (closing it with the relay's 200 unread would reset the connection).
#[allow(clippy::too_many_arguments)]
pub fn stream_through(
    k: &Kamailio,
    a: Peer,
    a_uri: &str,
    relay: &str,
    b: &Endpoint,
    b_uri: &str,
    len: u64,
    mut on_body: impl FnMut(&[u8]),
) -> Transfer {
    let req = Request::send_streaming(&[relay, b_uri], &[a_uri], len);
    let tid = req.tid.clone();
    let msg_id = req.header("Message-ID").unwrap_or_default().to_owned();
    let sender = std::thread::spawn(move || {
        let mut peer = a;
        let digest = peer.send_request_streaming(&req, BodyGen::new(len, len));
        (peer, digest)
    });
    let mut bp = b
        .accept(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)));
    let mut hasher = Sha256::new();
    let chunks = receive_message(
        k,
        &mut bp,
        &msg_id,
        &[b_uri.to_owned()],
        &[relay.to_owned(), a_uri.to_owned()],
        |p| {
            hasher.update(p);
            on_body(p)
        },
    );
    let (a, sent) = sender.join().expect("sender thread");
    let sent = sent.unwrap_or_else(|e| panic!("A's streaming send: {e}\n{}", k.log_tail(20)));
    let got: [u8; 32] = hasher.finalize().into();
    assert_eq!(hex(&got), hex(&sent), "SHA-256 at B");
    Transfer {
        chunks,
        a,
        b: bp,
        tid,
    }
}
