//! Fixed-size text fields of the plain records kept in shared memory
//! (transaction table, connection map and list): what fits is stored with
//! its length, and read back as text.

/// Copies what fits of `src` into `dst` (at most 255 bytes); returns the
/// length kept.
pub fn fill(dst: &mut [u8], src: &[u8]) -> u8 {
    let n = src.len().min(dst.len()).min(u8::MAX as usize);
    dst[..n].copy_from_slice(&src[..n]);
    n as u8
}

/// The text of a field of which `n` bytes are used.
pub fn text(field: &[u8], n: u8) -> String {
    String::from_utf8_lossy(&field[..(n as usize).min(field.len())]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_fits() {
        let mut f = [0u8; 4];
        assert_eq!(fill(&mut f, b"abcdef"), 4);
        assert_eq!(text(&f, 4), "abcd");
        assert_eq!(fill(&mut f, b"xy"), 2);
        assert_eq!(text(&f, 2), "xy");
        assert_eq!(text(&f, 200), "xycd");
    }
}
