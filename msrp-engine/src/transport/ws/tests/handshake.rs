//! The opening handshake, server and client side.

use super::*;

/// A browser-like upgrade request with `extra` header lines.
fn request(extra: &str) -> Vec<u8> {
    format!(
        "GET /msrp HTTP/1.1\r\nHost: relay.example.com\r\nUpgrade: websocket\r\n\
         Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

fn accept(input: &[u8], origins: &[&str]) -> Handshake {
    let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
    server_handshake(input, &origins, &WsLimits::default())
}

/// The status line of a refusal, and its error.
fn refused(h: Handshake) -> (String, WsError) {
    match h {
        Handshake::Refused { response, error } => {
            let text = String::from_utf8(response).unwrap();
            assert!(text.ends_with("\r\n\r\n") && text.contains("Connection: close\r\n"));
            (text.lines().next().unwrap().to_string(), error)
        }
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn accept_value_of_the_rfc_example_key() {
    assert_eq!(accept_key(KEY), ACCEPT);
}

#[test]
fn upgrade_accepted_with_accept_value_subprotocol_and_origin() {
    let req = request("Origin: https://chat.example.com\r\nSec-WebSocket-Protocol: msrp\r\n");
    let Handshake::Accepted {
        response,
        consumed,
        origin,
    } = accept(&req, &[])
    else {
        panic!("refused")
    };
    assert_eq!(consumed, req.len());
    assert_eq!(origin.as_deref(), Some("https://chat.example.com"));
    let text = String::from_utf8(response.clone()).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    assert!(text.contains(&format!("\r\nSec-WebSocket-Accept: {ACCEPT}\r\n")));
    assert!(text.contains("\r\nSec-WebSocket-Protocol: msrp\r\n"));
    assert_eq!(client_response(&response, KEY), Ok(Some(response.len())));
}

#[test]
fn subprotocol_in_a_list_or_a_second_field_accepted() {
    for extra in [
        "Sec-WebSocket-Protocol: foo, msrp\r\n",
        "Sec-WebSocket-Protocol: foo\r\nSec-WebSocket-Protocol: msrp\r\n",
    ] {
        assert!(
            matches!(accept(&request(extra), &[]), Handshake::Accepted { .. }),
            "{extra}"
        );
    }
}

#[test]
fn missing_or_other_subprotocol_refused_with_400() {
    assert_eq!(
        refused(accept(&request(""), &[])),
        (
            "HTTP/1.1 400 Bad Request".into(),
            WsError::Subprotocol(None)
        )
    );
    for (extra, offered) in [
        ("Sec-WebSocket-Protocol: sip\r\n", "sip"),
        ("Sec-WebSocket-Protocol: MSRP, msrp2\r\n", "MSRP, msrp2"),
    ] {
        let (status, error) = refused(accept(&request(extra), &[]));
        assert_eq!(status, "HTTP/1.1 400 Bad Request");
        assert_eq!(error, WsError::Subprotocol(Some(offered.into())));
    }
}

#[test]
fn other_version_refused_with_426_naming_13() {
    let req = String::from_utf8(request("Sec-WebSocket-Protocol: msrp\r\n")).unwrap();
    let req = req.replace("Version: 13", "Version: 8");
    let Handshake::Refused { response, error } = accept(req.as_bytes(), &[]) else {
        panic!("accepted")
    };
    assert_eq!(error, WsError::Version("8".into()));
    let text = String::from_utf8(response).unwrap();
    assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
}

#[test]
fn origin_allow_list() {
    let list = ["https://chat.example.com", "https://other.example"];
    let with = |o: &str| request(&format!("Origin: {o}\r\nSec-WebSocket-Protocol: msrp\r\n"));
    let ok = accept(&with("HTTPS://Chat.Example.COM"), &list);
    assert!(matches!(ok, Handshake::Accepted { .. }), "{ok:?}");
    let (status, error) = refused(accept(&with("https://evil.example"), &list));
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert_eq!(error, WsError::Origin(Some("https://evil.example".into())));
    // no Origin: refused when there is a list, accepted without one
    let bare = request("Sec-WebSocket-Protocol: msrp\r\n");
    assert_eq!(refused(accept(&bare, &list)).1, WsError::Origin(None));
    let Handshake::Accepted { origin, .. } = accept(&bare, &[]) else {
        panic!("refused")
    };
    assert_eq!(origin, None);
}

#[test]
fn head_over_the_limit_refused_with_431() {
    let limits = WsLimits {
        max_handshake: 300,
        ..WsLimits::default()
    };
    let base = request("Sec-WebSocket-Protocol: msrp\r\n");
    // pad to exactly the limit: accepted; one byte more: refused
    let pad = "X-Pad: \r\n".len();
    let fill = |n: usize| {
        request(&format!(
            "X-Pad: {}\r\nSec-WebSocket-Protocol: msrp\r\n",
            "a".repeat(n)
        ))
    };
    let exact = fill(300 - base.len() - pad);
    assert_eq!(exact.len(), 300);
    assert!(matches!(
        server_handshake(&exact, &[], &limits),
        Handshake::Accepted { .. }
    ));
    let over = fill(301 - base.len() - pad);
    let (status, error) = refused(server_handshake(&over, &[], &limits));
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(error, WsError::HeadTooLarge(300));
    // an unfinished head refused once it reaches the limit
    assert_eq!(
        server_handshake(&over[..299], &[], &limits),
        Handshake::Incomplete
    );
    assert!(matches!(
        server_handshake(&over[..300], &[], &limits),
        Handshake::Refused { .. }
    ));
    // too many header fields
    let many = request(&"X-A: b\r\n".repeat(70));
    assert_eq!(
        refused(accept(&many, &[])).0,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

#[test]
fn malformed_and_non_upgrade_requests_refused_with_400() {
    let good = String::from_utf8(request("Sec-WebSocket-Protocol: msrp\r\n")).unwrap();
    let cases = [
        (good.replace("GET", "POST"), "method is not GET"),
        (good.replace("HTTP/1.1", "HTTP/1.0"), "not HTTP/1.1"),
        (good.replace("Host: relay.example.com\r\n", ""), "no Host"),
        (
            good.replace("Upgrade: websocket", "Upgrade: h2c"),
            "no Upgrade: websocket",
        ),
        (
            good.replace("keep-alive, Upgrade", "keep-alive"),
            "no Connection: Upgrade",
        ),
        (good.replace(KEY, "c2hvcnQ="), "no valid Sec-WebSocket-Key"),
        (
            good.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
            "no valid Sec-WebSocket-Key",
        ),
        (
            good.replace("Sec-WebSocket-Version: 13\r\n", ""),
            "no Sec-WebSocket-Version",
        ),
        (
            good.replace("Host:", "Content-Length: 5\r\nHost:"),
            "request with a body",
        ),
        (
            good.replace("Host:", &format!("Sec-WebSocket-Key: {KEY}\r\nHost:")),
            "a header field repeated",
        ),
        (
            "GET / HTTP/1.1\r\nBad Header\r\n\r\n".into(),
            "malformed HTTP request",
        ),
        (
            "\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03".into(),
            "malformed HTTP request",
        ),
    ];
    for (req, why) in cases {
        let (status, error) = refused(accept(req.as_bytes(), &[]));
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{req:?}: {error}");
        assert_eq!(error, WsError::BadRequest(why), "{req:?}");
    }
}

#[test]
fn split_fed_request_with_pipelined_frames() {
    let req = request("Sec-WebSocket-Protocol: msrp\r\n");
    let frame = masked(OP_BINARY, true, b"MSRP a SEND\r\n", [1, 2, 3, 4]);
    let mut input = req.clone();
    input.extend_from_slice(&frame);
    for cut in 0..req.len() {
        assert_eq!(
            accept(&input[..cut], &[]),
            Handshake::Incomplete,
            "cut {cut}"
        );
    }
    for cut in req.len()..=input.len() {
        let Handshake::Accepted { consumed, .. } = accept(&input[..cut], &[]) else {
            panic!("cut {cut}: not accepted")
        };
        assert_eq!(consumed, req.len(), "cut {cut}");
    }
    // the bytes after `consumed` are the first frame
    let fed = feed(Role::Server, &input[req.len()..]);
    assert_eq!(fed.out, b"MSRP a SEND\r\n");
}

#[test]
fn client_request_accepted_by_the_server() {
    let key = client_key();
    assert_eq!(key.len(), 24);
    let req = client_request("relay.example.com:443", "/", &key);
    let Handshake::Accepted { response, .. } = accept(&req, &[]) else {
        panic!("refused")
    };
    assert!(String::from_utf8(response.clone())
        .unwrap()
        .contains(&accept_key(&key)));
    for cut in 0..response.len() {
        assert_eq!(client_response(&response[..cut], &key), Ok(None));
    }
    assert_eq!(client_response(&response, &key), Ok(Some(response.len())));
}

#[test]
fn client_refuses_bad_answers() {
    let good = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\nSec-WebSocket-Protocol: msrp\r\n\r\n"
    );
    assert_eq!(client_response(good.as_bytes(), KEY), Ok(Some(good.len())));
    for bad in [
        good.replace("101 Switching Protocols", "400 Bad Request"),
        good.replace(ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        good.replace("Sec-WebSocket-Protocol: msrp\r\n", ""),
        good.replace("Upgrade: websocket\r\n", ""),
        "HTTP/1.1 1x1 Bad\r\n\r\n".into(),
    ] {
        assert!(
            matches!(
                client_response(bad.as_bytes(), KEY),
                Err(WsError::BadResponse(_))
            ),
            "{bad:?}"
        );
    }
}
