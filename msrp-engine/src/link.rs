//! What the workers of one relay say to each other over their links
//! ([`crate::ring`]) besides MSRP requests: small typed [`record`]s.

pub mod record;
