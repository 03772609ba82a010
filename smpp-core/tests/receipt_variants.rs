//! Receipt texts as operators and gateways actually send them, and a
//! format → parse round trip.

use proptest::prelude::*;
use smpp_core::receipt::{
    self, IdBase, Receipt, ReceiptState, format, format_short, normalize_id, parse,
};

/// Expected parse of one sample. `None` fields are expected absent.
struct Case {
    raw: &'static [u8],
    id: &'static str,
    sub: Option<u32>,
    dlvrd: Option<u32>,
    submit_date: Option<&'static str>,
    done_date: Option<&'static str>,
    stat: ReceiptState,
    err: Option<&'static str>,
    text: Option<&'static str>,
}

fn other(s: &str) -> ReceiptState {
    ReceiptState::Other(s.to_owned())
}

fn cases() -> Vec<Case> {
    vec![
        // 1. Textbook SMPP 3.4 Appendix B, hex id.
        Case {
            raw: b"id:7F3A2B1C sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 stat:DELIVRD err:000 text:Hello world",
            id: "7F3A2B1C",
            sub: Some(1),
            dlvrd: Some(1),
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: ReceiptState::Delivered,
            err: Some("000"),
            text: Some("Hello world"),
        },
        // 2. Long decimal id, empty text.
        Case {
            raw: b"id:1234567890123456789 sub:001 dlvrd:000 submit date:2312312359 done date:2401010001 stat:UNDELIV err:001 text:",
            id: "1234567890123456789",
            sub: Some(1),
            dlvrd: Some(0),
            submit_date: Some("2312312359"),
            done_date: Some("2401010001"),
            stat: ReceiptState::Undeliverable,
            err: Some("001"),
            text: Some(""),
        },
        // 3. Upper-case keys.
        Case {
            raw: b"ID:ab12cd SUB:001 DLVRD:001 SUBMIT DATE:2401151230 DONE DATE:2401151231 STAT:DELIVRD ERR:000 TEXT:Test",
            id: "ab12cd",
            sub: Some(1),
            dlvrd: Some(1),
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: ReceiptState::Delivered,
            err: Some("000"),
            text: Some("Test"),
        },
        // 4. No sub/dlvrd/text (Jasmin's own short form), UUID id.
        Case {
            raw: b"id:2a5e3b8e-6f0c-4c6d-9a42-3f0d1e9b7c11 submit date:2401151230 done date:2401151245 stat:EXPIRED err:000",
            id: "2a5e3b8e-6f0c-4c6d-9a42-3f0d1e9b7c11",
            sub: None,
            dlvrd: None,
            submit_date: Some("2401151230"),
            done_date: Some("2401151245"),
            stat: ReceiptState::Expired,
            err: Some("000"),
            text: None,
        },
        // 5. 12-digit dates (with seconds).
        Case {
            raw: b"id:44a1 sub:001 dlvrd:001 submit date:240115123045 done date:240115123102 stat:DELIVRD err:000 text:x",
            id: "44a1",
            sub: Some(1),
            dlvrd: Some(1),
            submit_date: Some("240115123045"),
            done_date: Some("240115123102"),
            stat: ReceiptState::Delivered,
            err: Some("000"),
            text: Some("x"),
        },
        // 6. stat:FAILED (6 letters): a receipt, not an MO.
        Case {
            raw: b"id:998877 sub:001 dlvrd:000 submit date:2401151230 done date:2401151231 stat:FAILED err:034 text:",
            id: "998877",
            sub: Some(1),
            dlvrd: Some(0),
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: other("FAILED"),
            err: Some("034"),
            text: Some(""),
        },
        // 7. text: with spaces, colons and key-like words.
        Case {
            raw: b"id:5 sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 stat:DELIVRD err:000 text:Code: 1234 stat:fake id:no",
            id: "5",
            sub: Some(1),
            dlvrd: Some(1),
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: ReceiptState::Delivered,
            err: Some("000"),
            text: Some("Code: 1234 stat:fake id:no"),
        },
        // 8. Id with leading zeros is kept verbatim (normalised only for lookup).
        Case {
            raw: b"id:0000123ABC sub:1 dlvrd:1 submit date:2401151230 done date:2401151231 stat:DELIVRD err:0 text:",
            id: "0000123ABC",
            sub: Some(1),
            dlvrd: Some(1),
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: ReceiptState::Delivered,
            err: Some("0"),
            text: Some(""),
        },
        // 9. Trailing NULs (C-string padding inside sm_length).
        Case {
            raw: b"id:abc sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 stat:DELIVRD err:000 text:ok\0\0",
            id: "abc",
            sub: Some(1),
            dlvrd: Some(1),
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: ReceiptState::Delivered,
            err: Some("000"),
            text: Some("ok"),
        },
        // 10. Fields out of order, hex err, id with dash, no dates.
        Case {
            raw: b"stat:REJECTD err:0B id:X-77 dlvrd:000",
            id: "X-77",
            sub: None,
            dlvrd: Some(0),
            submit_date: None,
            done_date: None,
            stat: ReceiptState::Rejected,
            err: Some("0B"),
            text: None,
        },
        // 11. Lower-case state, `Text:` with capital T (Kannel style).
        Case {
            raw: b"id:77 sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 stat:delivrd err:000 Text:Hi",
            id: "77",
            sub: Some(1),
            dlvrd: Some(1),
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: ReceiptState::Delivered,
            err: Some("000"),
            text: Some("Hi"),
        },
        // 12. Non-UTF-8 (Latin-1) text bytes are tolerated.
        Case {
            raw: b"id:1 sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 stat:DELIVRD err:000 text:caf\xe9",
            id: "1",
            sub: Some(1),
            dlvrd: Some(1),
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: ReceiptState::Delivered,
            err: Some("000"),
            text: Some("caf\u{FFFD}"),
        },
        // 13. Operator's long state word.
        Case {
            raw: b"id:A1B2 submit date:2401151230 done date:2401151231 stat:DELIVERED err:0",
            id: "A1B2",
            sub: None,
            dlvrd: None,
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: other("DELIVERED"),
            err: Some("0"),
            text: None,
        },
        // 14. Blank after colons, underscore date keys.
        Case {
            raw: b"id: 42 stat: ENROUTE submit_date:2401151230 done_date:2401151231",
            id: "42",
            sub: None,
            dlvrd: None,
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: ReceiptState::Enroute,
            err: None,
            text: None,
        },
        // 15. ACCEPTD with a 36-character id and a 3-digit sub.
        Case {
            raw: b"id:0f8fad5b-d9cb-469f-a165-70867728950e sub:003 dlvrd:002 submit date:2401151230 done date:2401151231 stat:ACCEPTD err:000 text:",
            id: "0f8fad5b-d9cb-469f-a165-70867728950e",
            sub: Some(3),
            dlvrd: Some(2),
            submit_date: Some("2401151230"),
            done_date: Some("2401151231"),
            stat: ReceiptState::Accepted,
            err: Some("000"),
            text: Some(""),
        },
    ]
}

#[test]
fn real_world_receipts() {
    for (n, c) in cases().into_iter().enumerate() {
        let r = parse(c.raw).unwrap_or_else(|| panic!("case {} is a receipt", n + 1));
        let expected = Receipt {
            id: c.id.to_owned(),
            sub: c.sub,
            dlvrd: c.dlvrd,
            submit_date: c.submit_date.map(str::to_owned),
            done_date: c.done_date.map(str::to_owned),
            stat: c.stat,
            err: c.err.map(str::to_owned),
            text: c.text.map(str::to_owned),
        };
        assert_eq!(r, expected, "case {}", n + 1);
    }
}

#[test]
fn not_receipts() {
    for raw in [
        &b"Hello, see you at 5:30"[..],
        b"id:123",
        b"stat:DELIVRD",
        b"my userid:7 stat:DELIVRD",
        b"",
        b"\0\0\0",
        b"id:",
        b"\xff\xfe\xfd",
    ] {
        assert_eq!(parse(raw), None, "{raw:?}");
    }
}

#[test]
fn operator_states_normalise() {
    let failed = parse(b"id:1 stat:FAILED").expect("receipt");
    assert_eq!(failed.stat.canonical(), ReceiptState::Undeliverable);
    assert!(failed.stat.is_final());
    assert_eq!(failed.stat.message_state(), 5);
}

#[test]
fn leading_zero_ids_match_resp() {
    let r = parse(b"id:0000123ABC stat:DELIVRD").expect("receipt");
    assert_eq!(normalize_id(&r.id), "123ABC");
    assert!(receipt::ids_match("123abc", &r.id));
    // Decimal receipt for a hex submit_sm_resp id.
    let r = parse(b"id:3735928559 stat:DELIVRD").expect("receipt");
    assert!(receipt::ids_match_with(
        "DEADBEEF",
        &r.id,
        IdBase::RespHexReceiptDec
    ));
    assert!(receipt::ids_match_auto("deadbeef", &r.id));
}

fn state() -> impl Strategy<Value = ReceiptState> {
    prop_oneof![
        Just(ReceiptState::Delivered),
        Just(ReceiptState::Expired),
        Just(ReceiptState::Deleted),
        Just(ReceiptState::Undeliverable),
        Just(ReceiptState::Accepted),
        Just(ReceiptState::Unknown),
        Just(ReceiptState::Rejected),
        Just(ReceiptState::Enroute),
        "(FAILED|DELIVERED|BUFFRED|[A-Z]{1,12})"
            .prop_filter("not a standard code", |s| matches!(
                ReceiptState::from_stat(s),
                ReceiptState::Other(_)
            ))
            .prop_map(ReceiptState::Other),
    ]
}

fn date() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9]{10}", "[0-9]{12}"]
}

fn receipt_strategy() -> impl Strategy<Value = Receipt> {
    (
        "[A-Za-z0-9_-]{1,40}",
        0u32..1000,
        0u32..1000,
        date(),
        date(),
        state(),
        "[0-9A-Z]{3}",
        // Any text without NUL, up to the 20 characters the format keeps.
        "[^\u{0}]{0,20}",
    )
        .prop_map(|(id, sub, dlvrd, sd, dd, stat, err, text)| Receipt {
            id,
            sub: Some(sub),
            dlvrd: Some(dlvrd),
            submit_date: Some(sd),
            done_date: Some(dd),
            stat,
            err: Some(err),
            text: Some(text),
        })
}

proptest! {
    #[test]
    fn format_parse_round_trip(r in receipt_strategy()) {
        let text = format(&r);
        prop_assert_eq!(parse(text.as_bytes()), Some(r.clone()));
        let short = parse(format_short(&r).as_bytes()).expect("short form parses");
        prop_assert_eq!(short.id, r.id);
        prop_assert_eq!(short.stat, r.stat);
        prop_assert_eq!(short.submit_date, r.submit_date);
        prop_assert_eq!(short.done_date, r.done_date);
        prop_assert_eq!(short.err, r.err);
        prop_assert_eq!(short.text, None);
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&bytes);
        let _ = receipt::parse_with_tlvs(&bytes, Some("x"), Some(2));
    }

    #[test]
    fn parse_never_panics_on_keyish_text(s in "((id|sub|dlvrd|stat|err|text|submit date|done date):?[ \u{0}a-z0-9:]{0,6}){0,8}") {
        let _ = parse(s.as_bytes());
    }
}
