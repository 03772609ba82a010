//! Route selection with 1,000 MT routes (user, group and destination-prefix filters).

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use router::{
    Message,
    filter::{Filter, FilterDef},
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

criterion_group!(benches, bench);
criterion_main!(benches);
