//! Random streams, fragmentations, pings and read splits.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

/// MSRP-like bytes: frames, UTF-8 text (with multi-byte characters to cut),
/// and arbitrary binary.
fn segment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://b.example:8888/9di;ws\r\n\r\n".to_vec()),
        Just(b"\r\n-------a786hjs2$\r\n".to_vec()),
        any::<String>().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

/// Sorted distinct positions in `0..=len` from random indices.
fn positions(idx: &[Index], len: usize) -> Vec<usize> {
    let mut p: Vec<usize> = idx.iter().map(|i| i.index(len + 1)).collect();
    p.sort_unstable();
    p.dedup();
    p
}

/// A simple generator for the mask keys, so that a failure reproduces.
fn next_key(state: &mut u64) -> [u8; 4] {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let b = (*state >> 32).to_le_bytes();
    [b[0], b[1], b[2], b[3]]
}

/// The plan of one test case.
#[derive(Debug, Clone)]
struct Plan {
    stream: Vec<u8>,
    message_cuts: Vec<Index>,
    fragment_cuts: Vec<Index>,
    pings: Vec<(Index, Vec<u8>)>,
    prefer_text: bool,
    seed: u64,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        proptest::collection::vec(segment(), 0..12),
        proptest::collection::vec(any::<Index>(), 0..12),
        proptest::collection::vec(any::<Index>(), 0..24),
        proptest::collection::vec(
            (
                any::<Index>(),
                proptest::collection::vec(any::<u8>(), 0..=125),
            ),
            0..6,
        ),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(segs, message_cuts, fragment_cuts, pings, prefer_text, seed)| Plan {
                stream: segs.concat(),
                message_cuts,
                fragment_cuts,
                pings,
                prefer_text,
                seed,
            },
        )
}

/// Encodes the plan as a client would (masked, fragmented, pings between
/// frames); returns the bytes and the pongs a server owes.
fn encode(p: &Plan) -> (Vec<u8>, Vec<u8>) {
    let len = p.stream.len();
    let mut key = p.seed;
    let mut ends = positions(&p.message_cuts, len);
    ends.push(len);
    ends.dedup();
    let frags = positions(&p.fragment_cuts, len);
    // frames in order, each (opcode, fin, range)
    let mut frames = Vec::new();
    let mut start = 0;
    for &end in &ends {
        let text = p.prefer_text && std::str::from_utf8(&p.stream[start..end]).is_ok();
        let mut op = if text { OP_TEXT } else { OP_BINARY };
        let mut from = start;
        for &cut in frags.iter().filter(|&&c| c > start && c < end) {
            frames.push((op, false, from..cut));
            op = OP_CONTINUATION;
            from = cut;
        }
        frames.push((op, true, from..end));
        start = end;
    }
    let mut pings: Vec<(usize, &[u8])> = p
        .pings
        .iter()
        .map(|(i, payload)| (i.index(frames.len() + 1), payload.as_slice()))
        .collect();
    pings.sort_by_key(|x| x.0);
    let (mut bytes, mut pongs) = (Vec::new(), Vec::new());
    let mut next_ping = pings.iter().peekable();
    for (i, (op, fin, range)) in frames.iter().enumerate() {
        while let Some((_, payload)) = next_ping.next_if(|(at, _)| *at == i) {
            bytes.extend(masked(OP_PING, true, payload, next_key(&mut key)));
            pongs.extend(plain(OP_PONG, true, payload));
        }
        bytes.extend(masked(
            *op,
            *fin,
            &p.stream[range.clone()],
            next_key(&mut key),
        ));
    }
    for (_, payload) in next_ping {
        bytes.extend(masked(OP_PING, true, payload, next_key(&mut key)));
        pongs.extend(plain(OP_PONG, true, payload));
    }
    (bytes, pongs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_frames_in_random_reads_give_back_the_stream(
        p in plan(),
        reads in proptest::collection::vec(any::<Index>(), 0..40),
    ) {
        let (mut bytes, pongs) = encode(&p);
        let fed = feed_cut(Role::Server, WsLimits::default(), &bytes, &positions(&reads, bytes.len()));
        prop_assert_eq!(fed.result, Ok(Status::Open));
        prop_assert_eq!(&fed.out, &p.stream);
        prop_assert_eq!(&fed.reply, &pongs);
        prop_assert_eq!(fed.left, 0);
        let cuts = positions(&reads, bytes.len());
        let lent = feed_slices(Role::Server, WsLimits::default(), &bytes, &cuts);
        prop_assert_eq!(lent.result, Ok(Status::Open));
        prop_assert_eq!(&lent.out, &p.stream);
        prop_assert_eq!(&lent.reply, &pongs);
        prop_assert_eq!(lent.left, 0);
        // and a close at the end closes
        bytes.extend(masked(OP_CLOSE, true, b"\x03\xe8", [1, 2, 3, 4]));
        let cuts = positions(&reads, bytes.len());
        for fed in [
            feed_cut(Role::Server, WsLimits::default(), &bytes, &cuts),
            feed_slices(Role::Server, WsLimits::default(), &bytes, &cuts),
        ] {
            prop_assert_eq!(fed.result, Ok(Status::Closed));
            prop_assert_eq!(&fed.out, &p.stream);
            prop_assert!(fed.reply.ends_with(&[0x88, 2, 0x03, 0xe8]));
        }
    }

    #[test]
    fn writer_pieces_round_trip_both_ways(
        stream in proptest::collection::vec(segment(), 0..10),
        cuts in proptest::collection::vec(any::<Index>(), 0..20),
        lasts in proptest::collection::vec(any::<bool>(), 20),
        reads in proptest::collection::vec(any::<Index>(), 0..20),
    ) {
        let stream = stream.concat();
        let mut bounds = positions(&cuts, stream.len());
        bounds.push(stream.len());
        let (mut server, mut client) = (MessageWriter::new(Role::Server), MessageWriter::new(Role::Client));
        let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
        let mut from = 0;
        for (i, &to) in bounds.iter().enumerate() {
            let last = i + 1 == bounds.len() || lasts[i % lasts.len()];
            server.piece_header(to - from, last, &mut to_client);
            to_client.extend_from_slice(&stream[from..to]);
            client.piece_masked(&stream[from..to], last, &mut to_server);
            from = to;
        }
        for (role, bytes) in [(Role::Client, &to_client), (Role::Server, &to_server)] {
            let fed = feed_cut(role, WsLimits::default(), bytes, &positions(&reads, bytes.len()));
            prop_assert_eq!(fed.result, Ok(Status::Open));
            prop_assert_eq!(&fed.out, &stream);
            prop_assert!(fed.reply.is_empty());
        }
    }
}
