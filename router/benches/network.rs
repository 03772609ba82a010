//! Number → network: normalisation plus longest-prefix lookup, and the portability
//! table with 5 million ported numbers (ns per lookup and bytes per million entries,
//! counted by a wrapping allocator).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    sync::atomic::{AtomicUsize, Ordering},
};

use criterion::{Criterion, criterion_group, criterion_main};
use router::network::Registry;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const PORTED: u64 = 5_000_000;

fn bench(c: &mut Criterion) {
    let mut registry = Registry::shipped().unwrap_or_default();
    let _ = registry.set_default_country("UZ");
    c.bench_function("network_resolve_prefix", |b| {
        b.iter(|| {
            registry
                .resolve(black_box("+998901234567"))
                .map(|r| r.network.mnc)
        })
    });
    c.bench_function("network_resolve_national", |b| {
        b.iter(|| {
            registry
                .resolve(black_box("931234567"))
                .map(|r| r.network.mnc)
        })
    });

    let before = LIVE.load(Ordering::Relaxed);
    registry.reserve_ported(PORTED as usize);
    // Numbers spread over the Uzbek mobile ranges, each ported to Ucell.
    for i in 0..PORTED {
        let msisdn = 998_900_000_000 + i * 1_999 % 99_999_999 + (i % 10) * 1_000_000_000;
        let _ = registry.port(msisdn, 434, 5);
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "portability: {} entries, {} bytes allocated = {:.1} MiB per million entries \
         ({:.1} bytes/entry; table estimate {} bytes)",
        registry.ported(),
        bytes,
        bytes as f64 / (registry.ported() as f64 / 1e6) / (1024.0 * 1024.0),
        bytes as f64 / registry.ported() as f64,
        registry.portability_bytes(),
    );
    c.bench_function("network_resolve_5m_ported_hit", |b| {
        b.iter(|| {
            registry
                .resolve(black_box("+998900001999"))
                .map(|r| r.network.mnc)
        })
    });
    c.bench_function("network_resolve_5m_ported_miss", |b| {
        b.iter(|| {
            registry
                .resolve(black_box("+998970000001"))
                .map(|r| r.network.mnc)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
