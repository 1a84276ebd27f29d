//! REPORT policy in one place (RFC 4976 §6.4.1, RFC 4975 §7.1.2–§7.1.4,
//! §10): which failures a sender is told about, with which status, and what
//! the REPORT looks like.

use crate::connid::ConnId;
use bytes::Bytes;
use msrp_core::{build, ByteRange, FailureReport, Status};

use crate::txtable::Cause;

/// Whether a failure of `cause` is reported to a sender that asked for
/// `fr`: "yes" gets every failure; "partial" every failure but timeouts (a
/// "partial" SEND gets no 200, so no response timer applies to it) and a
/// foreign first To-Path URI (RFC 4976 §6.4.1 asks for that REPORT only for
/// "yes"); "no" nothing.
pub fn wanted(fr: FailureReport, cause: Cause) -> bool {
    match fr {
        FailureReport::Yes => true,
        FailureReport::Partial => !matches!(cause, Cause::Timeout | Cause::NotOwnUri),
        FailureReport::No => false,
    }
}

/// Reason phrase of a status code (RFC 4975 §10).
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        413 => "Message Too Large",
        415 => "Unsupported Media Type",
        423 => "Interval Out-of-Bounds",
        481 => "Session Does Not Exist",
        501 => "Not Implemented",
        506 => "Wrong Connection",
        _ => "Error",
    }
}

/// Status code and comment of a REPORT for a failure of `cause`; `code` is
/// the next hop's answer for [`Cause::ErrorResponse`].
pub fn status(cause: Cause, code: u16) -> (u16, &'static str) {
    match cause {
        Cause::Timeout => (408, reason(408)),
        Cause::ErrorResponse => (code, reason(code)),
        Cause::Unreachable => (408, "Next Hop Unreachable"),
        Cause::NextHopClosed => (408, "Next Hop Connection Lost"),
        Cause::NotOwnUri => (481, "Not This Relay"),
        // RFC 4975 §10: 408, the request did not complete in time
        Cause::SenderStalled => (408, "Sender Stalled"),
        Cause::TooLarge => (413, reason(413)),
    }
}

/// A REPORT the relay owes the sender of an incoming SEND chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOrder {
    /// The sender's connection.
    pub src: ConnId,
    /// The SEND's From-Path as received: the REPORT's To-Path.
    pub to_path: Vec<Bytes>,
    /// The relay's URI (the SEND's first To-Path URI): the REPORT's
    /// From-Path.
    pub relay_uri: Bytes,
    pub message_id: Bytes,
    /// Start and total from the SEND, end = the bytes actually received.
    pub range: Option<ByteRange>,
    pub code: u16,
    pub comment: &'static str,
    pub cause: Cause,
}

impl ReportOrder {
    /// The REPORT as sent, under transaction ID `tid`.
    pub fn frame(&self, tid: &[u8]) -> Bytes {
        let status = Status {
            namespace: 0,
            code: self.code,
            comment: Some(Bytes::from_static(self.comment.as_bytes())),
        };
        build::report_frame(
            tid,
            &self.to_path,
            &self.relay_uri,
            &self.message_id,
            self.range,
            &status,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_per_failure_report() {
        for cause in Cause::ALL {
            assert!(wanted(FailureReport::Yes, cause));
            assert!(!wanted(FailureReport::No, cause));
        }
        assert!(!wanted(FailureReport::Partial, Cause::Timeout));
        assert!(!wanted(FailureReport::Partial, Cause::NotOwnUri));
        assert!(wanted(FailureReport::Partial, Cause::ErrorResponse));
        assert!(wanted(FailureReport::Partial, Cause::Unreachable));
        assert!(wanted(FailureReport::Partial, Cause::NextHopClosed));
    }

    #[test]
    fn statuses() {
        assert_eq!(status(Cause::Timeout, 0), (408, "Request Timeout"));
        assert_eq!(
            status(Cause::ErrorResponse, 413),
            (413, "Message Too Large")
        );
        assert_eq!(status(Cause::ErrorResponse, 599), (599, "Error"));
        assert_eq!(status(Cause::NotOwnUri, 0), (481, "Not This Relay"));
    }

    #[test]
    fn frame_carries_status_range_and_paths() {
        let r = ReportOrder {
            src: ConnId(7),
            to_path: vec![Bytes::from_static(b"msrp://a.example:1/s;tcp")],
            relay_uri: Bytes::from_static(b"msrp://relay:2855/r;tcp"),
            message_id: Bytes::from_static(b"m1"),
            range: Some(ByteRange {
                start: 1,
                end: Some(10),
                total: Some(100),
            }),
            code: 408,
            comment: "Request Timeout",
            cause: Cause::Timeout,
        };
        let f = r.frame(b"tid1");
        let s = String::from_utf8_lossy(&f);
        assert!(s.starts_with("MSRP tid1 REPORT\r\n"), "{s}");
        assert!(s.contains("To-Path: msrp://a.example:1/s;tcp\r\n"), "{s}");
        assert!(s.contains("From-Path: msrp://relay:2855/r;tcp\r\n"), "{s}");
        assert!(s.contains("Byte-Range: 1-10/100\r\n"), "{s}");
        assert!(s.contains("Status: 000 408 Request Timeout\r\n"), "{s}");
        assert!(s.ends_with("-------tid1$\r\n"), "{s}");
    }
}
