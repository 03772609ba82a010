//! The global allocator and its one setting.

use std::ffi::c_int;

// glibc's allocator serialises the session, uplink and journal threads on its arena
// locks under load (seen in `perf`); mimalloc keeps per-thread heaps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the numbering of the mimalloc v3 that `libmimalloc-sys`
/// builds (its Rust constants name only v2's options). A test checks the number.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// How long memory freed to mimalloc stays mapped before it goes back to the OS.
///
/// At mimalloc's 1 s, the buffers that grow and empty with every batch (billing's
/// shards, the database writers' arguments, the journal's groups) were handed back
/// between batches and faulted in again, zeroed page by page: 2,600-11,000 page
/// faults per 300k messages and `clear_page` at 7-12% of the gateway's CPU. At 5 s
/// they stay (a few faults per run) and an idle gateway still shrinks.
const PURGE_DELAY_MS: std::ffi::c_long = 5_000;

/// Applies the setting, unless `MIMALLOC_PURGE_DELAY` in the environment chose one.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide option; mimalloc reads it on its next purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_has_the_number_we_set() {
        // mimalloc v3's default purge delay is 1000 ms; no other option defaults to it.
        // Read before `tune` (which only `main` calls), unless the environment set it.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(default, 1000);
        }
    }
}
