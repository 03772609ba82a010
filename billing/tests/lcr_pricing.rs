//! Least-cost routing's money: a tariff by MCC/MNC with volume tiers prices messages
//! charged through the router's contract (`Charging`), the CDR records the network, the
//! carrier that finally took each message and its cost, and the margin report adds up.
//! Both stores (PostgreSQL skipped when SMSGW_TEST_POSTGRES_URL is unset).

mod common;

use billing::{
    EngineCharging, Micros, Tariff, TariffId, UserAccount, VolumeTier, margin::MarginReport,
    store::MarginLine,
};
use common::*;
use proto::charging::{Carrier, Charging, MessageCharge, NetworkInfo, PartCharge};

const ROUTE_RATE: i64 = 50_000;

async fn send(charging: &EngineCharging, id: &str, network: Option<NetworkInfo<'_>>, cost: i64) {
    let charges = [PartCharge {
        index: 0,
        text: b"hello",
        segments: 1,
    }];
    charging
        .reserve(MessageCharge {
            uid: "bank1",
            message_id: id,
            price_per_part: ROUTE_RATE,
            connector: "opa",
            destination: "+998901234567",
            sender: "BANK",
            parts: 1,
            charges: &charges,
            network,
            cost_per_part: cost,
        })
        .await
        .unwrap_or_else(|e| panic!("reserve {id}: {e}"));
}

async fn tariffs_and_margin(url: &str) {
    let engine = open(url).await;
    let charging = EngineCharging::attach(
        engine,
        [UserAccount {
            uid: "bank1".into(),
            balance: Some(100_000_000),
            sms_count: None,
        }],
        "EUR",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let account = charging.account_of("bank1").expect("account");
    // 0.040 for Beeline (434-04); 25 % off once 3 parts were charged this month.
    charging
        .engine()
        .upsert_tariff(Tariff {
            id: TariffId(0),
            account: Some(account),
            mcc: Some(434),
            mnc: Some(4),
            prefix: None,
            price_per_part: Micros(40_000),
            currency: eur(),
            valid_from: 0,
            valid_to: None,
            tiers: vec![VolumeTier {
                min_volume: 3,
                discount_bp: 2_500,
            }],
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let beeline = Some(NetworkInfo {
        mcc: 434,
        mnc: 4,
        operator: "Beeline",
    });
    // Five Beeline messages, routed to opa (cost 0.010) but carried by opb (0.020)
    // after a failover: the CDR must name opb and its cost.
    for i in 0..5 {
        let id = format!("b{i}");
        send(&charging, &id, beeline, 10_000).await;
        charging.commit_via(
            &id,
            &format!("op-{i}"),
            Carrier {
                connector: "opb",
                cost_per_part: 20_000,
            },
        );
    }
    // Ucell has no tariff: the route's rate; carried where it was routed.
    let ucell = Some(NetworkInfo {
        mcc: 434,
        mnc: 5,
        operator: "Ucell",
    });
    send(&charging, "u0", ucell, 10_000).await;
    charging.commit("u0", "op-u0");
    // Refunded: neither revenue nor cost.
    send(&charging, "r0", beeline, 10_000).await;
    charging.refund("r0", "UNDELIV");
    charging
        .engine()
        .flush()
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // 3 × 0.040 + 2 × 0.030 (tier reached) + 0.050 (route rate).
    let spent = 3 * 40_000 + 2 * 30_000 + ROUTE_RATE;
    let balance = charging
        .balance("bank1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(balance.balance, Some(100_000_000 - spent));

    let month = chrono_month();
    let mut csv = Vec::new();
    let report: MarginReport = billing::cli::margin_csv(url, &month, &mut csv)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let csv = String::from_utf8_lossy(&csv).into_owned();
    eprintln!("{csv}");
    assert_eq!(
        report.lines,
        vec![
            MarginLine {
                connector: "opa".into(),
                operator: "Ucell".into(),
                mcc: Some(434),
                mnc: Some(5),
                currency: "EUR".into(),
                messages: 1,
                parts: 1,
                revenue: Micros(ROUTE_RATE),
                cost: Micros(10_000),
            },
            MarginLine {
                connector: "opb".into(),
                operator: "Beeline".into(),
                mcc: Some(434),
                mnc: Some(4),
                currency: "EUR".into(),
                messages: 5,
                parts: 5,
                revenue: Micros(180_000),
                cost: Micros(100_000),
            },
        ]
    );
    assert_eq!(report.revenue(), Micros(spent));
    assert_eq!(report.cost(), Micros(110_000));
    assert_eq!(report.margin(), Micros(spent - 110_000));
    assert!(
        csv.lines()
            .last()
            .is_some_and(|l| l.ends_with(",TOTAL,,,,6,6,0.230000,0.110000,0.120000")),
        "{csv}"
    );
}

/// The current month, UTC, as YYYY-MM (the CDR rows were just written).
fn chrono_month() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // Civil from days (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}")
}

both_backends!(tariffs_and_margin);
