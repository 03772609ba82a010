//! Receipt texts: whatever `parse` accepts, `format` (and `format_short`) must
//! write in a form that `parse` reads back with the same id and state.
//!
//! Documented round-trip (receipt.rs, `format`): id and stat verbatim; dates
//! (digits as sent) when present; sub/dlvrd when present (missing ones get
//! defaults); err zero-padded when short and numeric; text cut to 20 chars.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smpp_core::receipt::{format, format_short, parse};

fuzz_target!(|data: &[u8]| {
    let Some(r) = parse(data) else {
        return;
    };
    let text = format(&r);
    let again = parse(text.as_bytes())
        .unwrap_or_else(|| panic!("{r:?} formatted as {text:?} does not parse"));
    assert_eq!(again.id, r.id, "id changed through {text:?}");
    assert_eq!(again.stat, r.stat, "stat changed through {text:?}");
    assert_eq!(
        again.submit_date, r.submit_date,
        "submit date through {text:?}"
    );
    assert_eq!(again.done_date, r.done_date, "done date through {text:?}");
    if r.sub.is_some() {
        assert_eq!(again.sub, r.sub, "sub through {text:?}");
    }
    if r.dlvrd.is_some() {
        assert_eq!(again.dlvrd, r.dlvrd, "dlvrd through {text:?}");
    }
    // A second format is a fixed point, except that parse strips trailing NUL
    // padding (documented), which the 20-char text may end with.
    assert_eq!(format(&again), text.trim_end_matches('\0'));

    let short = format_short(&r);
    let again = parse(short.as_bytes())
        .unwrap_or_else(|| panic!("{r:?} formatted short as {short:?} does not parse"));
    assert_eq!(again.id, r.id, "id changed through {short:?}");
    assert_eq!(again.stat, r.stat, "stat changed through {short:?}");
});
