//! Tariff selection through the engine, persisted in both stores: MCC/MNC vs prefix,
//! validity windows, volume tiers at their boundaries, account and reseller overrides.

mod common;

use billing::{
    AccountKind, BillingEngine, Micros, NewAccount, QuotaOptions, RateQuery, RateSource, Tariff,
    TariffId, VolumeTier,
};
use common::*;

const ROUTE: Micros = Micros(50_000);

fn tariff(account: Option<billing::AccountId>, price: i64) -> Tariff {
    Tariff {
        id: TariffId(0),
        account,
        mcc: None,
        mnc: None,
        prefix: None,
        price_per_part: Micros(price),
        currency: eur(),
        valid_from: 0,
        valid_to: None,
        tiers: vec![],
    }
}

async fn add(engine: &BillingEngine, t: Tariff) -> TariffId {
    engine
        .upsert_tariff(t)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn price(
    engine: &BillingEngine,
    account: billing::AccountId,
    dest: &str,
    mcc_mnc: Option<(u16, u16)>,
    at: Option<i64>,
) -> (Micros, RateSource) {
    let q = engine
        .rate(&RateQuery {
            account,
            destination: dest,
            mcc_mnc,
            route_rate: ROUTE,
            parts: 2,
            at,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(q.total, Micros(q.price_per_part.0 * 2));
    (q.price_per_part, q.source)
}

async fn selection(url: &str) {
    let engine = open(url).await;
    let reseller = engine
        .create_account(NewAccount {
            parent_id: None,
            kind: AccountKind::Reseller,
            name: "reseller".into(),
            currency: eur(),
            quota: QuotaOptions::default(),
            credit_limit: Micros(0),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let acc = engine
        .create_account(NewAccount {
            parent_id: Some(reseller),
            kind: AccountKind::Client,
            name: "bank".into(),
            currency: eur(),
            quota: QuotaOptions::default(),
            credit_limit: Micros(0),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let other = client(&engine, QuotaOptions::default(), 0).await;

    // Nothing matches: the route's rate.
    assert_eq!(
        price(&engine, acc, "+4471", Some((234, 15)), None),
        (ROUTE, RateSource::Route)
    );

    let by_prefix = add(
        &engine,
        Tariff {
            prefix: Some("44".into()),
            ..tariff(None, 30_000)
        },
    )
    .await;
    let by_mcc = add(
        &engine,
        Tariff {
            mcc: Some(234),
            ..tariff(None, 20_000)
        },
    )
    .await;
    let by_mccmnc = add(
        &engine,
        Tariff {
            mcc: Some(234),
            mnc: Some(15),
            ..tariff(None, 10_000)
        },
    )
    .await;
    let t = |id| RateSource::Tariff(id);
    assert_eq!(
        price(&engine, acc, "+447700", Some((234, 15)), None),
        (Micros(10_000), t(by_mccmnc))
    );
    assert_eq!(
        price(&engine, acc, "+447700", Some((234, 20)), None),
        (Micros(20_000), t(by_mcc))
    );
    // MCC/MNC unknown: the prefix decides.
    assert_eq!(
        price(&engine, acc, "+447700", None, None),
        (Micros(30_000), t(by_prefix))
    );
    assert_eq!(
        price(&engine, acc, "00447700", None, None),
        (Micros(30_000), t(by_prefix))
    );
    assert_eq!(
        price(&engine, acc, "+33600", None, None),
        (ROUTE, RateSource::Route)
    );

    // Validity windows: [from, to), the newer price wins where windows overlap.
    let from = 1_000_000_000_000_000;
    let to = 2_000_000_000_000_000;
    let windowed = add(
        &engine,
        Tariff {
            prefix: Some("49".into()),
            valid_from: from,
            valid_to: Some(to),
            ..tariff(None, 40_000)
        },
    )
    .await;
    assert_eq!(
        price(&engine, acc, "+4915", None, Some(from - 1)),
        (ROUTE, RateSource::Route)
    );
    assert_eq!(
        price(&engine, acc, "+4915", None, Some(from)),
        (Micros(40_000), t(windowed))
    );
    assert_eq!(
        price(&engine, acc, "+4915", None, Some(to - 1)),
        (Micros(40_000), t(windowed))
    );
    assert_eq!(
        price(&engine, acc, "+4915", None, Some(to)),
        (ROUTE, RateSource::Route)
    );
    let newer = add(
        &engine,
        Tariff {
            prefix: Some("49".into()),
            valid_from: from + 10,
            ..tariff(None, 41_000)
        },
    )
    .await;
    assert_eq!(
        price(&engine, acc, "+4915", None, Some(from + 9)),
        (Micros(40_000), t(windowed))
    );
    assert_eq!(
        price(&engine, acc, "+4915", None, Some(from + 10)),
        (Micros(41_000), t(newer))
    );
    assert_eq!(
        price(&engine, acc, "+4915", None, Some(to + 1)),
        (Micros(41_000), t(newer))
    );

    // Overrides: the reseller's applies to its client, the client's own beats it, and
    // neither touches another account; a less specific override still beats a global one.
    let reseller_over = add(
        &engine,
        Tariff {
            prefix: Some("4477".into()),
            ..tariff(Some(reseller), 9_000)
        },
    )
    .await;
    assert_eq!(
        price(&engine, acc, "+447700", None, None),
        (Micros(9_000), t(reseller_over))
    );
    assert_eq!(
        price(&engine, acc, "+447700", Some((234, 15)), None),
        (Micros(9_000), t(reseller_over))
    );
    assert_eq!(
        price(&engine, other, "+447700", None, None),
        (Micros(30_000), t(by_prefix))
    );
    let own = add(
        &engine,
        Tariff {
            prefix: Some("4".into()),
            ..tariff(Some(acc), 8_000)
        },
    )
    .await;
    assert_eq!(
        price(&engine, acc, "+447700", None, None),
        (Micros(8_000), t(own))
    );
    assert_eq!(
        price(&engine, reseller, "+447700", None, None),
        (Micros(9_000), t(reseller_over))
    );

    // An override in another currency is refused.
    let usd = billing::Currency::new("USD").unwrap_or_else(|e| panic!("{e}"));
    let bad = engine
        .upsert_tariff(Tariff {
            prefix: Some("1".into()),
            currency: usd,
            ..tariff(Some(acc), 1)
        })
        .await;
    assert!(matches!(
        bad,
        Err(billing::BillingError::CurrencyMismatch { .. })
    ));

    // Everything comes back after a restart.
    drop(engine);
    let engine = open(url).await;
    assert_eq!(
        price(&engine, acc, "+447700", None, None),
        (Micros(8_000), t(own))
    );
    assert_eq!(
        price(&engine, other, "+447700", Some((234, 15)), None),
        (Micros(10_000), t(by_mccmnc))
    );
    assert_eq!(
        price(&engine, other, "+4915", None, Some(to - 1)),
        (Micros(41_000), t(newer))
    );
}
both_backends!(selection);

async fn volume_tiers(url: &str) {
    let engine = open(url).await;
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    top_up(&engine, acc, 10_000_000, "t1").await;
    let id = add(
        &engine,
        Tariff {
            prefix: Some("7".into()),
            tiers: vec![
                VolumeTier {
                    min_volume: 3,
                    discount_bp: 1_000,
                },
                VolumeTier {
                    min_volume: 5,
                    discount_bp: 2_550,
                },
            ],
            ..tariff(None, 10_001)
        },
    )
    .await;
    let quote = |engine: &BillingEngine| {
        engine
            .rate(&RateQuery {
                account: acc,
                destination: "+79001234567",
                mcc_mnc: None,
                route_rate: ROUTE,
                parts: 1,
                at: None,
            })
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // Volume = parts charged this month before the message; a tier applies from exactly
    // its min_volume. 10.001 × 0.9 = 9000.9 → 9001; × 0.745 = 7450.745 → 7451 (half up).
    let expected = [10_001, 10_001, 10_001, 9_001, 9_001, 7_451, 7_451];
    for (i, want) in expected.iter().enumerate() {
        let q = quote(&engine);
        assert_eq!(
            (q.price_per_part, q.source),
            (Micros(*want), RateSource::Tariff(id)),
            "volume {i}"
        );
        let r = format!("v{i}");
        engine
            .reserve(req(acc, &r, q.total.0, 1))
            .unwrap_or_else(|e| panic!("{e}"));
        // Reserved but not yet charged does not count toward the volume.
        assert_eq!(quote(&engine).price_per_part, Micros(*want));
        engine
            .commit(acc, &r, Some("op"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Refunded messages do not count either; the volume survives a restart.
    engine
        .reserve(req(acc, "refunded", 7_451, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .refund(acc, "refunded", "EXPIRED")
        .unwrap_or_else(|e| panic!("{e}"));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    drop(engine);
    let engine = open(url).await;
    assert_eq!(quote(&engine).price_per_part, Micros(7_451));
    assert_reconciles(url).await;
}
both_backends!(volume_tiers);
