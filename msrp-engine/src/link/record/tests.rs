use super::*;
use crate::txtable::Cause;
use proptest::prelude::*;

fn answer_of(tid: &str, code: u16) -> Record {
    Record::Answer {
        tid: Bytes::copy_from_slice(tid.as_bytes()),
        code,
    }
}

/// Feeds `wire` into a read buffer `step` bytes at a time, taking records
/// whenever one is complete (as the reader of a link does).
fn feed(wire: &[u8], step: usize) -> Vec<Result<Record, RecordError>> {
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for piece in wire.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        while starts(&buf) {
            match take(&mut buf) {
                Ok(Some(r)) => got.push(Ok(r)),
                Ok(None) => break,
                Err(e) => got.push(Err(e)),
            }
        }
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    got
}

#[test]
fn answer_round_trips() {
    let wire = answer(b"a1B2c3D4e5F6g7H8", 200);
    assert_eq!(wire.len(), HEADER + 2 + 16);
    assert_eq!(
        feed(&wire, wire.len()),
        vec![Ok(answer_of("a1B2c3D4e5F6g7H8", 200))]
    );
}

#[test]
fn incomplete_record_is_left_in_the_buffer() {
    let wire = answer(b"tid", 408);
    for cut in 0..wire.len() {
        let mut buf = BytesMut::from(&wire[..cut]);
        assert_eq!(take(&mut buf), Ok(None), "cut at {cut}");
        assert_eq!(buf.len(), cut, "nothing taken at {cut}");
    }
}

#[test]
fn split_at_every_byte() {
    let mut wire = BytesMut::new();
    for (i, code) in [200u16, 408, 413, 481].iter().enumerate() {
        wire.extend_from_slice(&answer(format!("tid{i}").as_bytes(), *code));
    }
    let want: Vec<_> = [200u16, 408, 413, 481]
        .iter()
        .enumerate()
        .map(|(i, c)| Ok(answer_of(&format!("tid{i}"), *c)))
        .collect();
    for step in 1..=wire.len() {
        assert_eq!(feed(&wire, step), want, "step {step}");
    }
}

#[test]
fn msrp_frames_do_not_start_records() {
    assert!(!starts(b"MSRP a1 SEND\r\n"));
    assert!(!starts(b""));
    assert!(starts(&answer(b"x", 200)));
}

#[test]
fn unknown_kind_is_consumed_with_an_error() {
    let mut wire = BytesMut::from(&[MARK, 9, 3, 0, 0, 0, 1, 2, 3][..]);
    wire.extend_from_slice(&answer(b"next", 200));
    assert_eq!(
        feed(&wire, 1),
        vec![Err(RecordError::UnknownKind(9)), Ok(answer_of("next", 200))]
    );
}

#[test]
fn answer_without_tid_is_an_error() {
    let wire = [MARK, KIND_ANSWER, 2, 0, 0, 0, 200, 0];
    assert_eq!(feed(&wire, 8), vec![Err(RecordError::ShortAnswer(2))]);
}

#[test]
fn overlong_tid_is_cut() {
    let tid = vec![b'x'; MAX_TID + 10];
    let got = feed(&answer(&tid, 200), 4096);
    assert_eq!(
        got,
        vec![Ok(Record::Answer {
            tid: Bytes::from(vec![b'x'; MAX_TID]),
            code: 200
        })]
    );
}

#[test]
fn a_chunk_round_trips_between_other_records() {
    let head = b"MSRP a1B2 SEND\r\nTo-Path: msrp://b:1/s;tcp\r\n\r\n";
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&answer(b"before", 200));
    wire.extend_from_slice(&start(42, true, false, b"a1B2", head));
    body(Bytes::from(vec![7u8; MAX_BODY + 10]), &mut |b| {
        wire.extend_from_slice(&b)
    });
    wire.extend_from_slice(&end(EndFlag::Continued));
    wire.extend_from_slice(&start(u64::MAX, false, true, b"x", b""));
    wire.extend_from_slice(&end(EndFlag::Aborted));
    let want = vec![
        Ok(answer_of("before", 200)),
        Ok(Record::Start {
            target: 42,
            has_body: true,
            answer_timeout: false,
            tid: Bytes::from_static(b"a1B2"),
            head: Bytes::copy_from_slice(head),
        }),
        Ok(Record::Body(Bytes::from(vec![7u8; MAX_BODY]))),
        Ok(Record::Body(Bytes::from(vec![7u8; 10]))),
        Ok(Record::End(EndFlag::Continued)),
        Ok(Record::Start {
            target: u64::MAX,
            has_body: false,
            answer_timeout: true,
            tid: Bytes::from_static(b"x"),
            head: Bytes::new(),
        }),
        Ok(Record::End(EndFlag::Aborted)),
    ];
    for step in [1, 2, 5, 7, 4096, wire.len()] {
        assert_eq!(feed(&wire, step), want, "step {step}");
    }
}

#[test]
fn failure_carries_its_cause() {
    let mut wire = BytesMut::new();
    for c in Cause::ALL {
        wire.extend_from_slice(&failed(b"tid", c));
    }
    let want: Vec<_> = Cause::ALL
        .iter()
        .map(|c| {
            Ok(Record::Failed {
                tid: Bytes::from_static(b"tid"),
                cause: *c,
            })
        })
        .collect();
    assert_eq!(feed(&wire, 3), want);
    let unknown = [MARK, KIND_FAILED, 2, 0, 0, 0, 99, b'x'];
    assert_eq!(feed(&unknown, 8), vec![Err(RecordError::BadFailed)]);
}

#[test]
fn malformed_start_and_end_are_errors() {
    // tid length 5 in a payload with room for 2
    let mut start = vec![MARK, KIND_START, 12, 0, 0, 0];
    start.extend_from_slice(&[0; 8]);
    start.extend_from_slice(&[HAS_BODY, 5, b'a', b'b']);
    assert_eq!(feed(&start, 3), vec![Err(RecordError::ShortStart(12))]);
    let bad_flag = [MARK, KIND_END, 1, 0, 0, 0, b'x'];
    assert_eq!(feed(&bad_flag, 1), vec![Err(RecordError::BadEnd)]);
    let short_pause = [MARK, KIND_PAUSE, 2, 0, 0, 0, 1, 2];
    assert_eq!(feed(&short_pause, 1), vec![Err(RecordError::BadFlow(2))]);
}

#[test]
fn pause_and_resume_name_their_connection() {
    let mut wire = pause(7).to_vec();
    wire.extend_from_slice(&resume(u64::MAX));
    assert_eq!(
        feed(&wire, 5),
        vec![
            Ok(Record::Pause { target: 7 }),
            Ok(Record::Resume { target: u64::MAX })
        ]
    );
}

/// Any record, for the mixed-stream property.
fn any_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        ("[!-~]{1,40}", any::<u16>()).prop_map(|(t, code)| answer_of(&t, code)),
        (
            any::<u64>(),
            any::<bool>(),
            any::<bool>(),
            "[!-~]{1,30}",
            ".{0,80}"
        )
            .prop_map(
                |(target, has_body, answer_timeout, tid, head)| Record::Start {
                    target,
                    has_body,
                    answer_timeout,
                    tid: Bytes::from(tid),
                    head: Bytes::from(head),
                }
            ),
        proptest::collection::vec(any::<u8>(), 1..300).prop_map(|b| Record::Body(Bytes::from(b))),
        ("[!-~]{1,40}", 0..Cause::ALL.len()).prop_map(|(t, c)| Record::Failed {
            tid: Bytes::from(t),
            cause: Cause::ALL[c],
        }),
        prop_oneof![
            Just(EndFlag::Complete),
            Just(EndFlag::Continued),
            Just(EndFlag::Aborted)
        ]
        .prop_map(Record::End),
        any::<u64>().prop_map(|target| Record::Pause { target }),
        any::<u64>().prop_map(|target| Record::Resume { target }),
    ]
}

fn encode(r: &Record, wire: &mut BytesMut) {
    match r {
        Record::Answer { tid, code } => wire.extend_from_slice(&answer(tid, *code)),
        Record::Start {
            target,
            has_body,
            answer_timeout,
            tid,
            head,
        } => wire.extend_from_slice(&start(*target, *has_body, *answer_timeout, tid, head)),
        Record::Body(b) => body(b.clone(), &mut |p| wire.extend_from_slice(&p)),
        Record::End(f) => wire.extend_from_slice(&end(*f)),
        Record::Failed { tid, cause } => wire.extend_from_slice(&failed(tid, *cause)),
        Record::Pause { target } => wire.extend_from_slice(&pause(*target)),
        Record::Resume { target } => wire.extend_from_slice(&resume(*target)),
    }
}

proptest! {
    /// Any sequence of records, cut into reads of any size, comes out
    /// whole and in order.
    #[test]
    fn records_survive_any_split(
        recs in proptest::collection::vec(any_record(), 1..20),
        step in 1usize..64,
    ) {
        let mut wire = BytesMut::new();
        for r in &recs {
            encode(r, &mut wire);
        }
        let want: Vec<_> = recs.into_iter().map(Ok).collect();
        prop_assert_eq!(feed(&wire, step), want);
    }

    /// Any sequence of answers, cut into reads of any size, comes out
    /// whole and in order.
    #[test]
    fn answers_survive_any_split(
        recs in proptest::collection::vec(("[!-~]{1,40}", any::<u16>()), 1..20),
        step in 1usize..64,
    ) {
        let mut wire = BytesMut::new();
        for (tid, code) in &recs {
            wire.extend_from_slice(&answer(tid.as_bytes(), *code));
        }
        let want: Vec<_> = recs.iter().map(|(t, c)| Ok(answer_of(t, *c))).collect();
        prop_assert_eq!(feed(&wire, step), want);
    }

    /// Arbitrary bytes after a MARK never panic and never take more than
    /// the buffer holds.
    #[test]
    fn garbage_never_panics(rest in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[MARK]);
        buf.extend_from_slice(&rest);
        let before = buf.len();
        match take(&mut buf) {
            Ok(None) => prop_assert_eq!(buf.len(), before),
            _ => prop_assert!(buf.len() < before),
        }
    }
}
