//! The sans-IO parser on arbitrary bytes: never panics, and the events and
//! the verdict do not depend on how the bytes are split into reads (whole,
//! random pieces, byte by byte), so a frame parses the same whatever TCP
//! does to it.
//!
//! Input: byte 0 selects the limits and the split seed's low bits, byte 1
//! the split seed's high bits; the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msrp_core::Limits;
use msrp_fuzz::{feed, same_error, Rng};

fuzz_target!(|data: &[u8]| {
    let (sel, input) = match data {
        [a, b, rest @ ..] => (u16::from(*a) | u16::from(*b) << 8, rest),
        _ => return,
    };
    let limits = if sel & 1 == 0 {
        Limits::default()
    } else {
        // small limits, so that the limit checks are reached
        Limits {
            max_line: 32 + usize::from(sel >> 1 & 0xff),
            max_head: 64 + 4 * usize::from(sel >> 9 & 0x3f),
            max_headers: 1 + usize::from(sel >> 3 & 7),
        }
    };
    let whole = feed(limits, [input]);

    let mut rng = Rng::new(u64::from(sel));
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let n = 1 + rng.below(64) as usize;
        let end = (at + n).min(input.len());
        pieces.push(&input[at..end]);
        at = end;
    }
    let split = feed(limits, pieces.iter().copied());
    check_same(&whole, &split, "random pieces");

    if input.len() <= 4096 {
        let bytewise = feed(limits, input.chunks(1));
        check_same(&whole, &bytewise, "byte by byte");
    }
});

fn check_same(whole: &msrp_fuzz::Outcome, other: &msrp_fuzz::Outcome, how: &str) {
    assert!(
        same_error(&whole.error, &other.error),
        "{how}: error {:?} vs {:?} whole",
        other.error,
        whole.error
    );
    assert_eq!(other.events, whole.events, "{how}: events differ");
    if whole.error.is_none() {
        assert_eq!(other.in_frame, whole.in_frame, "{how}: in_frame");
    }
}
