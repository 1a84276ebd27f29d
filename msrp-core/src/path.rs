//! To-Path / From-Path handling (RFC 4975 §7.1; RFC 4976 §6.4).
//!
//! Paths are kept as raw URI tokens ([`Bytes`]) so that a relay forwards
//! URIs byte-for-byte as received; [`parse`] turns them into [`MsrpUri`]s
//! when a decision needs their parts.

use bytes::{BufMut, Bytes, BytesMut};

use crate::uri::{MsrpUri, UriError};

/// Splits a path header value into its URI tokens (separated by SP/HTAB),
/// zero-copy.
pub fn split(value: &Bytes) -> Vec<Bytes> {
    crate::head::split_path_value(value)
}

/// Joins URI tokens with single spaces, the wire form of a path value
/// (RFC 4975 §9: `MSRP-URI *( SP MSRP-URI )`).
pub fn join(uris: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(uris.iter().map(|u| u.len() + 1).sum());
    for (i, u) in uris.iter().enumerate() {
        if i > 0 {
            out.put_u8(b' ');
        }
        out.put_slice(u);
    }
    out.freeze()
}

/// Parses every token of a path.
pub fn parse(uris: &[Bytes]) -> Result<Vec<MsrpUri>, UriError> {
    uris.iter().map(|u| MsrpUri::parse(u)).collect()
}

/// Rewrites the paths of a request a relay forwards (RFC 4976 §6.4): the
/// relay's own URI, which must be the first To-Path entry, is removed from
/// the To-Path and inserted as the first entry of the From-Path.
///
/// Returns `None` when the To-Path would become empty, i.e. the request is
/// addressed to the relay itself and there is nothing to forward.
pub fn forward(
    to_path: &[Bytes],
    from_path: &[Bytes],
    own: &Bytes,
) -> Option<(Vec<Bytes>, Vec<Bytes>)> {
    let rest = to_path.get(1..).filter(|r| !r.is_empty())?;
    let mut from = Vec::with_capacity(from_path.len() + 1);
    from.push(own.clone());
    from.extend_from_slice(from_path);
    Some((rest.to_vec(), from))
}

/// Whether `token` denotes the same resource as `uri` (RFC 4975 §6.1);
/// an unparsable token never matches.
pub fn token_is(token: &[u8], uri: &MsrpUri) -> bool {
    MsrpUri::parse(token).is_ok_and(|t| t.same_resource(uri))
}
