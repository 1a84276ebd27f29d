//! `$msrp(key)`: the keys, with the stock msrp module's names and
//! numbering, and the values the boundary hands to Kamailio.

/// `$msrp(key)` names, with the stock module's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum PvKey {
    Buf = 1,
    Body = 2,
    Code = 3,
    Hdrs = 4,
    MsgId = 5,
    Method = 6,
    BufLen = 7,
    SessId = 8,
    Reason = 9,
    BodyLen = 10,
    TransId = 11,
    CrtHop = 12,
    PrevHop = 13,
    NextHop = 14,
    LastHop = 15,
    FirstHop = 16,
    PrevHops = 17,
    NextHops = 18,
    SrcAddr = 19,
    SrcSock = 20,
    ConId = 21,
    // this module's own: the accounting values of
    // event_route[msrp:session-end] (see crate::acct)
    Session = 22,
    AcctUser = 23,
    MsgsIn = 24,
    BytesIn = 25,
    MsgsOut = 26,
    BytesOut = 27,
    SessionStart = 28,
    SessionDuration = 29,
    EndReason = 30,
    Transport = 31,
    Peer = 32,
}

impl PvKey {
    pub fn parse(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"buf" => PvKey::Buf,
            b"body" => PvKey::Body,
            b"code" => PvKey::Code,
            b"hdrs" => PvKey::Hdrs,
            b"msgid" => PvKey::MsgId,
            b"method" => PvKey::Method,
            b"buflen" => PvKey::BufLen,
            b"sessid" => PvKey::SessId,
            b"reason" => PvKey::Reason,
            b"bodylen" => PvKey::BodyLen,
            b"transid" => PvKey::TransId,
            b"crthop" => PvKey::CrtHop,
            b"prevhop" => PvKey::PrevHop,
            b"nexthop" => PvKey::NextHop,
            b"lasthop" => PvKey::LastHop,
            b"firsthop" => PvKey::FirstHop,
            b"prevhops" => PvKey::PrevHops,
            b"nexthops" => PvKey::NextHops,
            b"srcaddr" => PvKey::SrcAddr,
            b"srcsock" => PvKey::SrcSock,
            b"conid" => PvKey::ConId,
            b"session" => PvKey::Session,
            b"acct_user" => PvKey::AcctUser,
            b"msgs_in" => PvKey::MsgsIn,
            b"bytes_in" => PvKey::BytesIn,
            b"msgs_out" => PvKey::MsgsOut,
            b"bytes_out" => PvKey::BytesOut,
            b"session_start" => PvKey::SessionStart,
            b"session_duration" => PvKey::SessionDuration,
            b"end_reason" => PvKey::EndReason,
            b"transport" => PvKey::Transport,
            b"peer" => PvKey::Peer,
            _ => return None,
        })
    }

    pub fn from_id(id: i32) -> Option<Self> {
        use PvKey::*;
        [
            Buf,
            Body,
            Code,
            Hdrs,
            MsgId,
            Method,
            BufLen,
            SessId,
            Reason,
            BodyLen,
            TransId,
            CrtHop,
            PrevHop,
            NextHop,
            LastHop,
            FirstHop,
            PrevHops,
            NextHops,
            SrcAddr,
            SrcSock,
            ConId,
            Session,
            AcctUser,
            MsgsIn,
            BytesIn,
            MsgsOut,
            BytesOut,
            SessionStart,
            SessionDuration,
            EndReason,
            Transport,
            Peer,
        ]
        .into_iter()
        .find(|k| *k as i32 == id)
    }
}

/// A `$msrp(...)` value.
#[derive(Debug, PartialEq, Eq)]
pub enum PvValue<'a> {
    Null,
    Str(&'a [u8]),
    Int(i64),
    /// string with an integer view (method: name + method id)
    StrInt(&'a [u8], i64),
    /// integer with a string view (code: 200 + "200")
    IntStr(i64, &'a [u8]),
}

/// Method ids as the stock module numbers them (msrp_parser.h).
pub(super) fn method_id(m: &[u8]) -> i64 {
    match m {
        b"SEND" => 1,
        b"AUTH" => 2,
        b"REPORT" => 3,
        b"NICKNAME" => 4,
        _ => 10000,
    }
}
