//! HTTP Digest (RFC 2617, qop=auth, MD5) for MSRP AUTH (RFC 4976 §5), as
//! the auth module checks it: the challenge's parameters, and the
//! `Authorization` value answering it.

use std::collections::HashMap;

use md5::{Digest, Md5};

fn md5_hex(s: &str) -> String {
    msrp_tools::body::hex(&Md5::digest(s.as_bytes()))
}

/// `key=value` / `key="value"` parameters of a `Digest ...` challenge.
pub fn params(value: &str) -> HashMap<String, String> {
    let mut rest = value
        .trim()
        .strip_prefix("Digest")
        .unwrap_or_else(|| panic!("not a Digest challenge: {value:?}"))
        .trim_start();
    let mut out = HashMap::new();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let val = if let Some(q) = rest.strip_prefix('"') {
            let end = q
                .find('"')
                .unwrap_or_else(|| panic!("bad quoting {value:?}"));
            rest = &q[end + 1..];
            q[..end].to_owned()
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = rest[..end].trim().to_owned();
            rest = &rest[end..];
            v
        };
        out.insert(key, val);
        rest = rest.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The `Authorization` value answering `chal` for an AUTH to `uri` (its
/// To-Path URI) as `user` with `pass`, nonce count `nc`.
pub fn authorization(
    chal: &HashMap<String, String>,
    user: &str,
    pass: &str,
    uri: &str,
    nc: u32,
) -> String {
    let (realm, nonce) = (&chal["realm"], &chal["nonce"]);
    let cnonce = msrp_tools::ids::random_alnum(16);
    let nc = format!("{nc:08x}");
    let ha1 = md5_hex(&format!("{user}:{realm}:{pass}"));
    let ha2 = md5_hex(&format!("AUTH:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let mut h = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
    );
    if let Some(o) = chal.get("opaque") {
        h.push_str(&format!(", opaque=\"{o}\""));
    }
    h
}
