//! `Byte-Range` values (RFC 4975 §9 `range-start "-" range-end "/" total`)
//! on arbitrary bytes: never panics, accepts exactly what a plain
//! restatement of the grammar and limits accepts (with the same values),
//! and what it accepts prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msrp_core::{ByteRange, MAX_POSITION};
use msrp_fuzz::range_is_valid;

/// A second, independent reading of the header value.
fn reference(value: &[u8]) -> Option<ByteRange> {
    let s = std::str::from_utf8(value).ok()?;
    let s = s.trim_matches(|c| c == ' ' || c == '\t');
    let (a, rest) = s.split_once('-')?;
    let (b, c) = rest.split_once('/')?;
    let num = |x: &str| -> Option<u64> {
        if x.is_empty() || !x.bytes().all(|d| d.is_ascii_digit()) {
            return None;
        }
        x.parse().ok()
    };
    let star = |x: &str| {
        if x == "*" {
            Some(None)
        } else {
            num(x).map(Some)
        }
    };
    let r = ByteRange {
        start: num(a)?,
        end: star(b)?,
        total: star(c)?,
    };
    range_is_valid(&r).then_some(r)
}

fuzz_target!(|data: &[u8]| {
    let parsed = ByteRange::parse(data);
    assert_eq!(
        parsed.as_ref().ok(),
        reference(data).as_ref(),
        "{:?}",
        String::from_utf8_lossy(data)
    );
    let Ok(r) = parsed else {
        return;
    };
    assert!(r.start <= MAX_POSITION);
    let printed = r.to_string();
    assert_eq!(ByteRange::parse(printed.as_bytes()), Ok(r));
    match (r.end, r.len()) {
        (Some(e), Some(l)) => {
            assert_eq!(l, e + 1 - r.start);
            assert_eq!(r.is_empty(), l == 0);
        }
        (None, None) => assert!(!r.is_empty()),
        _ => panic!("len() and end disagree: {r:?}"),
    }
});
