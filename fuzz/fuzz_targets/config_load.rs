//! The router configuration loader (users, credentials, routes, filters, interceptor
//! scripts) on arbitrary text: it must return a configuration or an error, never panic,
//! and whatever it accepts must compile into route tables (or be refused by them).
//! (`from_smsgw_toml` is left out: its `file = …` would let the fuzzer read any path.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = router::RouterConfig::from_toml_str(text) {
        let _ = router::Snapshot::build(&config, &|cid| cid.len() % 2 == 0);
    }
});
