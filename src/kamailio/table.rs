//! Kamailio's export tables are arrays ended by an all-zero entry. These
//! helpers build them in const context from a slice, so no length or C
//! string length is ever counted by hand.

use std::ffi::{c_char, c_int, CStr};

use super::sys;

/// `items` followed by `end`: `[T; N]` with `N` = `items.len() + 1`, e.g.
/// `static T: Exported<[X; LIST.len() + 1]> = Exported::new(null_terminated(LIST, END))`.
/// A wrong `N` fails the build (const evaluation).
pub const fn null_terminated<T: Copy, const N: usize>(items: &[T], end: T) -> [T; N] {
    assert!(
        items.len() + 1 == N,
        "table length must be items + terminator"
    );
    let mut out = [end; N];
    let mut i = 0;
    while i < items.len() {
        out[i] = items[i];
        i += 1;
    }
    out
}

/// A `char *` the core reads (and by its C type could, but never does,
/// write) for a static C string.
pub const fn c_ptr(s: &'static CStr) -> *mut c_char {
    s.as_ptr() as *mut c_char
}

/// A Kamailio `str` over a static C string, its length taken from it.
pub const fn static_str(s: &'static CStr) -> sys::str_ {
    sys::str_ {
        s: c_ptr(s),
        len: s.to_bytes().len() as c_int,
    }
}

/// The empty `str` of a table terminator.
pub const NULL_STR: sys::str_ = sys::str_ {
    s: std::ptr::null_mut(),
    len: 0,
};

/// `concat!(name, "\0")` as a `&CStr`, checked at compile time.
pub const fn c_lit(with_nul: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("an exported name must be one NUL-terminated string"),
    }
}
