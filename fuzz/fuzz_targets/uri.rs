//! MSRP URI parsing (RFC 4975 §6, §9) and the relay's path rewrite
//! (RFC 4976 §7) on arbitrary bytes: never panics; a parsed URI prints back
//! to a URI that parses to the same value and names the same resource; the
//! path rewrite moves exactly the relay's own URI.
//!
//! Input: a To-Path value, optionally followed by LF and a From-Path value.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use msrp_core::{path, MsrpUri};

fn check_uri(token: &[u8]) {
    let Ok(uri) = MsrpUri::parse(token) else {
        return;
    };
    let printed = uri.to_string();
    let again = MsrpUri::parse(printed.as_bytes())
        .unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e}"));
    assert_eq!(again, uri, "{printed:?}");
    assert!(uri.same_resource(&again) && again.same_resource(&uri));
    assert!(path::token_is(token, &uri));
    assert!(uri.port_or_default() != 0);
}

fuzz_target!(|data: &[u8]| {
    check_uri(data);
    let (to_raw, from_raw) = match data.iter().position(|&b| b == b'\n') {
        Some(p) => (&data[..p], &data[p + 1..]),
        None => (data, &b"msrp://a.example.com:7777/s;tcp"[..]),
    };
    let to = path::split(&Bytes::copy_from_slice(to_raw));
    let from = path::split(&Bytes::copy_from_slice(from_raw));
    for t in to.iter().chain(&from) {
        assert!(!t.is_empty());
        check_uri(t);
    }
    let _ = path::parse(&to);
    let Some(own) = to.first() else {
        return;
    };
    match path::forward(&to, &from, own) {
        None => assert!(to.len() < 2),
        Some((new_to, new_from)) => {
            assert_eq!(new_to[..], to[1..]);
            assert_eq!(new_from[0], *own);
            assert_eq!(new_from[1..], from[..]);
            // the rewritten paths survive their wire form
            assert_eq!(path::split(&path::join(&new_to)), new_to);
            assert_eq!(path::split(&path::join(&new_from)), new_from);
        }
    }
});
