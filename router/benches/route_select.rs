//! Route selection with 1,000 MT routes (user, group and destination-prefix filters).

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use router::{
    Message,
    filter::{Filter, FilterDef},
    lcr::{CandidateFacts, Health, HealthSettings, rank},
    network::Registry,
    route::{Entry, RouteKind, Table},
};

fn table() -> Table<Arc<str>> {
    let mut entries = Vec::new();
    for i in 1..=1000u32 {
        let mut filters = vec![FilterDef::DestinationAddr(format!("{}", 200_000 + i))];
        if i % 3 == 0 {
            filters.push(FilterDef::Simple(Filter::User(Arc::from(format!(
                "user{}",
                i % 50
            )))));
        }
        if i % 7 == 0 {
            filters.push(FilterDef::Simple(Filter::Group(Arc::from(format!(
                "group{}",
                i % 5
            )))));
        }
        if i % 11 == 0 {
            filters.push(FilterDef::SourceAddr("BANK".into()));
        }
        entries.push(Entry {
            order: i,
            kind: RouteKind::Static,
            targets: vec![Arc::from(format!("op{}", i % 10))],
            rate: 10_000,
            filters,
        });
    }
    entries.push(Entry {
        order: 0,
        kind: RouteKind::Default,
        targets: vec![Arc::from("default")],
        rate: 0,
        filters: vec![],
    });
    Table::build(entries).unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let table = table();
    assert_eq!(table.len(), 1001);
    let mut m = Message {
        uid: Arc::from("user7"),
        gid: Arc::from("group1"),
        ..Message::default()
    };
    m.source.addr = "BANK".into();
    m.destination.addr = "200500123456".into();
    c.bench_function("mt_select_1000_routes_hit", |b| {
        b.iter(|| table.select(std::hint::black_box(&m)).map(|r| r.order))
    });
    let mut miss = m.clone();
    miss.destination.addr = "99912345".into();
    c.bench_function("mt_select_1000_routes_default", |b| {
        b.iter(|| table.select(std::hint::black_box(&miss)).map(|r| r.order))
    });
}

/// An LcrRoute decision as the gateway makes it: the route (1,000 others in the table),
/// the destination's network (prefix trie), then the three operators of that network
/// ranked by state, cost and score, the kept ones collected for the failover trail.
fn bench_lcr(c: &mut Criterion) {
    let mut entries = Vec::new();
    for i in 1..=1000u32 {
        entries.push(Entry {
            order: i,
            kind: RouteKind::Static,
            targets: vec![Arc::from(format!("op{}", i % 10))],
            rate: 10_000,
            filters: vec![FilterDef::DestinationAddr(format!("{}", 200_000 + i))],
        });
    }
    entries.push(Entry {
        order: 2000,
        kind: RouteKind::Lcr,
        targets: vec![],
        rate: 50_000,
        filters: vec![FilterDef::DestinationAddr("99890".into())],
    });
    let table: Table<Arc<str>> = Table::build(entries).unwrap_or_default();
    let mut registry = Registry::shipped().unwrap_or_default();
    let _ = registry.set_default_country("UZ");
    let settings = HealthSettings::default();
    let health: Vec<(Arc<str>, i64, Health)> = [("opa", 10_000), ("opb", 20_000), ("opc", 30_000)]
        .into_iter()
        .map(|(c, cost)| {
            (
                Arc::from(c),
                cost,
                Health::new(&settings, None, Some(500.0)),
            )
        })
        .collect();
    let serving: Vec<(Arc<str>, i64)> = health
        .iter()
        .map(|(c, cost, _)| (c.clone(), *cost))
        .collect();
    let mut m = Message {
        uid: Arc::from("user7"),
        gid: Arc::from("group1"),
        ..Message::default()
    };
    m.destination.addr = "998901234567".into();
    c.bench_function("mt_select_lcr_decision", |b| {
        b.iter(|| {
            let m = std::hint::black_box(&m);
            let route = table.select(m)?;
            if route.kind != RouteKind::Lcr {
                return None;
            }
            let network = registry.resolve(&m.destination.addr)?;
            let _ = network.network.code();
            let ranked = rank(&serving, &|cid| {
                health
                    .iter()
                    .find(|(c, _, _)| **c == *cid)
                    .map(|(_, _, h)| CandidateFacts {
                        started: true,
                        bound: true,
                        queue_full: false,
                        health: h,
                    })
            });
            let kept: Vec<(Arc<str>, i64)> = ranked
                .into_iter()
                .filter(|c| c.verdict.kept())
                .map(|c| (c.connector, c.cost))
                .collect();
            kept.first().map(|(c, _)| c.len())
        })
    });
}

criterion_group!(benches, bench, bench_lcr);
criterion_main!(benches);
