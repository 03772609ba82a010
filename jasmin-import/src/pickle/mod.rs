//! A Python pickle reader that runs the pickle machine without running Python: where
//! Python would import a class and call it, this records the call (class, arguments,
//! state). Jasmin persists its objects this way; `serde-pickle` keeps their state but
//! drops their class, which is what tells a `StaticMTRoute` from a `FailoverMTRoute`.
//!
//! No I/O: bytes in, a [`Value`] tree out. Protocols 0 to 5 (the opcodes that plain
//! data and class instances use; persistent ids and extension codes are refused).
//!
//! `value` is the tree a pickle describes, `machine` runs the opcodes into it, and
//! `literals` decodes the opcodes' text and number arguments.

mod literals;
mod machine;
mod value;

pub use machine::load;
pub use value::{Object, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PickleError {
    #[error("pickle ends early (at byte {0})")]
    Truncated(usize),
    #[error("unsupported pickle opcode 0x{op:02x} at byte {at}")]
    Unsupported { op: u8, at: usize },
    #[error("malformed pickle at byte {at}: {what}")]
    Malformed { at: usize, what: &'static str },
    #[error("pickle nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("pickle describes more than {0} values (shared references repeated too often)")]
    TooLarge(usize),
}

#[cfg(test)]
mod tests {
    use super::machine::MAX_DEPTH;
    use super::*;

    /// The same objects as CPython pickles them at each protocol (see
    /// `testdata/make_objects.py`) read back alike.
    #[test]
    fn reads_what_cpython_writes_at_every_protocol() {
        for (protocol, bytes) in [
            (0, &include_bytes!("../testdata/objects.p0")[..]),
            (2, include_bytes!("../testdata/objects.p2")),
            (4, include_bytes!("../testdata/objects.p4")),
            (5, include_bytes!("../testdata/objects.p5")),
        ] {
            let data = load(bytes).unwrap_or_else(|e| panic!("protocol {protocol}: {e}"));
            let route = &data.items()[0];
            assert_eq!(route.class(), Some(("__main__", "Route")), "{protocol}");
            assert_eq!(route.attr("rate").and_then(Value::as_f64), Some(0.02));
            let connector = route.attr("connector").expect("connector");
            assert_eq!(connector.class_name(), Some("Conn"));
            assert_eq!(connector.attr("cid").and_then(Value::as_str), Some("op1"));
            let cids: Vec<_> = route
                .attr("connectors")
                .expect("connectors")
                .items()
                .iter()
                .filter_map(|c| c.attr("cid").and_then(Value::as_str))
                .collect();
            assert_eq!(cids, ["op1", "op2"], "{protocol}");
            assert_eq!(
                route.attr("filter").and_then(Value::pattern),
                Some(r"^\+?255"),
                "{protocol}"
            );
            assert_eq!(route.attr("big").and_then(Value::as_i64), Some(1 << 40));
            assert_eq!(route.attr("neg").and_then(Value::as_i64), Some(-5));
            assert_eq!(
                route.attr("huge_neg").and_then(Value::as_i64),
                Some(-(1 << 60))
            );
            assert_eq!(route.attr("text").and_then(Value::as_str), Some("ünï"));
            assert_eq!(
                route.attr("raw"),
                Some(&Value::Bytes(vec![0, 0xff])),
                "{protocol}"
            );
            let flags = route.attr("flags").expect("flags");
            assert_eq!(flags.get("http_send"), Some(&Value::Bool(true)));
            assert_eq!(flags.get("dlr"), Some(&Value::Bool(false)));
            assert_eq!(flags.get("n"), Some(&Value::None));
            let ordered = route.attr("ordered").expect("ordered");
            assert_eq!(
                ordered.get("b").and_then(Value::as_i64),
                Some(2),
                "{protocol}"
            );
            assert_eq!(route.attr("tags").map(|t| t.items().len()), Some(2));
            assert_eq!(
                route.attr("pair"),
                Some(&Value::Tuple(vec![Value::Int(1), Value::Str("x".into())]))
            );
            // The memo: the shared connector is the same object in the second item.
            let shared = data.items()[1].get("k").expect("k");
            assert_eq!(shared, connector);
        }
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let good = include_bytes!("../testdata/objects.p2");
        for end in 0..good.len() {
            assert!(load(&good[..end]).is_err(), "prefix of {end} bytes");
        }
        assert!(matches!(
            load(b"\x80\x02\xff."),
            Err(PickleError::Unsupported { op: 0xff, .. })
        ));
        assert!(load(b"h\x05.").is_err(), "memo key never set");
        assert!(load(b"0.").is_err(), "pop from an empty stack");
        assert!(load(b"(a.").is_err(), "append below a mark");
        // POP with nothing above a mark takes the mark: `(` `0` leaves N on top.
        assert_eq!(load(b"N(0."), Ok(Value::None));
        // Deep nesting is refused, not a stack overflow.
        let mut deep = vec![0x80, 2];
        deep.extend(std::iter::repeat_n(b']', 1000));
        deep.extend(std::iter::repeat_n(b'a', 999));
        deep.push(b'.');
        assert_eq!(load(&deep), Err(PickleError::TooDeep(MAX_DEPTH)));
    }

    #[test]
    fn shared_references_cannot_blow_up() {
        // Each list holds the previous one twice: 60 levels would be 2^60 values.
        let mut bytes = b"\x80\x02]q\x00".to_vec();
        for k in 1..=60u8 {
            bytes.extend_from_slice(&[b']', b'q', k, b'(', b'h', k - 1, b'h', k - 1, b'e']);
        }
        bytes.push(b'.');
        assert!(matches!(load(&bytes), Err(PickleError::TooLarge(_))));
    }

    #[test]
    fn a_second_build_adds_to_the_state_and_the_last_key_wins() {
        // c__main__\nC\n ) NEWOBJ, BUILD {'a': 1}, BUILD {'b': 2, 'a': 3}
        let bytes = b"\x80\x02c__main__\nC\n)\x81}X\x01\x00\x00\x00aK\x01sb}(X\x01\x00\x00\x00bK\x02X\x01\x00\x00\x00aK\x03ub.";
        let v = load(bytes).expect("loads");
        assert_eq!(v.attr("a"), Some(&Value::Int(3)));
        assert_eq!(v.attr("b"), Some(&Value::Int(2)));
    }

    #[test]
    fn a_list_that_contains_itself_is_refused() {
        // l = []; l.append(l)
        let bytes = b"\x80\x02]q\x00h\x00a.";
        assert_eq!(load(bytes), Err(PickleError::TooDeep(MAX_DEPTH)));
    }
}
