use super::*;
use crate::script::{with_current, FrameCtx};
use bytes::BytesMut;
use msrp_core::{Event, Limits, Parser};

fn frame(text: &str) -> FrameCtx {
    let mut p = Parser::new(Limits::default());
    let mut buf = BytesMut::from(text.as_bytes());
    let head = match p.next(&mut buf) {
        Ok(Some(Event::Head(head))) => head,
        other => panic!("test frame does not parse: {other:?}"),
    };
    let a = "127.0.0.1:1".parse().expect("addr");
    FrameCtx::new(head, 7, a, a)
}

const SEND: &str =
    "MSRP tx001 SEND\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp msrp://127.0.0.1:9/b;tcp\r\n\
From-Path: msrp://127.0.0.1:8/a;tcp\r\nMessage-ID: m1\r\n-------tx001$\r\n";

/// README.md's list of script functions is the declaration's.
#[test]
fn readme_lists_every_function() {
    let readme = include_str!("../../../../README.md");
    let list = readme_list();
    assert!(
        readme.contains(&list),
        "README.md's list of script functions differs from the declaration \
         in msrp-engine/src/script/functions.rs; replace it with:\n\n{list}"
    );
}

#[test]
fn names_are_unique_per_arity_and_kemi_name() {
    for (i, a) in FUNCTIONS.iter().enumerate() {
        assert!(a.name.starts_with("msrp_"), "{}", a.name);
        for b in &FUNCTIONS[i + 1..] {
            assert!(
                a.name != b.name || a.params.len() != b.params.len(),
                "{} declared twice with {} parameters",
                a.name,
                a.params.len()
            );
            assert!(
                a.kemi.is_none() || a.kemi != b.kemi,
                "KEMI {:?} twice",
                a.kemi
            );
        }
    }
}

#[test]
fn outside_a_route_functions_fail_with_an_error_and_tests_are_false() {
    let e = relay().expect_err("no frame");
    assert!(matches!(e, FnError::Script(ScriptError::NoFrame)));
    assert_eq!(e.level(), log::Level::Error);
    assert!(!is_request().expect("no error"));
    assert!(!is_reply().expect("no error"));
    assert!(reply_flags(1).expect("accepted"));
}

#[test]
fn handlers_record_on_the_current_frame() {
    let (ctx, r) = with_current(frame(SEND), || {
        (
            relay().ok(),
            is_request().ok(),
            relay_flags(1).ok(),
            reply_no_headers(b"403".to_vec(), b"Forbidden".to_vec()).ok(),
        )
    });
    assert_eq!(r, (Some(true), Some(true), Some(true), Some(true)));
    assert!(ctx.actions.relay);
    assert_eq!(ctx.actions.relay_flags, 1);
    assert_eq!(ctx.actions.replies.len(), 1);
    assert_eq!(ctx.actions.replies[0].0, 403);
}

#[test]
fn refusals_are_debug_level_errors() {
    let (ctx, (bad_code, bad_dst, lookup)) = with_current(frame(SEND), || {
        (
            reply(b"20".to_vec(), b"x".to_vec(), Vec::new()).expect_err("bad code"),
            set_dst(b"not an address".to_vec(), Vec::new()).expect_err("bad address"),
            cmap_lookup().expect_err("no such session"),
        )
    });
    for e in [&bad_code, &bad_dst, &lookup] {
        assert_eq!(e.level(), log::Level::Debug, "{e}");
    }
    assert!(matches!(bad_code, FnError::Script(ScriptError::BadCode(_))));
    assert!(ctx.actions.replies.is_empty() && ctx.actions.dst.is_none());
}
