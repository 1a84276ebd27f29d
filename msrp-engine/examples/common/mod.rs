//! What the cost examples share: B's address and B's 200s.

use std::cell::RefCell;

/// B's address in the examples' sessions.
pub const B: &str = "192.0.2.11:7777";

/// Appends to `text` B's 200 to each chunk whose tid `tids` collected
/// (taken); returns how many.
pub fn answer_all(tids: &RefCell<Vec<String>>, text: &mut Vec<u8>) -> usize {
    let mut n = 0;
    for tid in tids.borrow_mut().drain(..) {
        text.extend_from_slice(
            format!(
                "MSRP {tid} 200 OK\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp\r\n\
                 From-Path: msrp://{B}/b;tcp\r\n-------{tid}$\r\n"
            )
            .as_bytes(),
        );
        n += 1;
    }
    n
}
