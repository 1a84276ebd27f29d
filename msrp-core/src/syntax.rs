//! Character classes of the RFC 4975 §9 grammar shared by several modules.

/// Shortest transaction identifier accepted. RFC 4975 §9 has
/// `ident = ALPHANUM 3*31ident-char`, i.e. 4..32 characters; we accept one
/// character less (3) on purpose, to be lenient with peers that count the
/// ABNF differently. Identifiers we generate are longer anyway.
pub(crate) const TID_MIN: usize = 3;
/// Longest transaction identifier (RFC 4975 §9: at most 32 characters).
pub(crate) const TID_MAX: usize = 32;

/// The seven dashes that open an end-line (RFC 4975 §9 `end-line`).
pub(crate) const DASHES: &[u8] = b"-------";

/// `ident-char = ALPHANUM / "." / "-" / "+" / "%" / "="` (RFC 4975 §9).
pub(crate) fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'%' | b'=')
}

/// `transact-id = ident` (RFC 4975 §9): an ALPHANUM followed by ident-chars.
pub(crate) fn is_transaction_id(tid: &[u8]) -> bool {
    (TID_MIN..=TID_MAX).contains(&tid.len())
        && tid[0].is_ascii_alphanumeric()
        && tid.iter().all(|&b| is_ident_char(b))
}

/// `token` characters (RFC 3261 §25.1, referenced by RFC 4975 §9 for header
/// names and URI parameters).
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Bytes allowed inside `utf8text` (RFC 4975 §9): anything except control
/// characters; HTAB is allowed. Bytes >= 0x80 are accepted without checking
/// UTF-8 well-formedness, which is the receiving application's business.
pub(crate) fn is_text_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Trims leading and trailing SP / HTAB.
pub(crate) fn trim_ws(s: &[u8]) -> (usize, usize) {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |p| p + 1);
    (start, end)
}

/// Parses a non-empty run of ASCII digits into a `u64`, rejecting overflow.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Parses exactly three ASCII digits (`3DIGIT`, RFC 4975 §9 status-code and
/// namespace).
pub(crate) fn parse_3digit(s: &[u8]) -> Option<u16> {
    if s.len() != 3 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        s.iter()
            .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0')),
    )
}
