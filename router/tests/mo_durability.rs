//! A long MO whose first parts were acknowledged survives a restart of the gateway:
//! each part is journaled before the operator hears ESME_ROK, and the replay hands it
//! back to reassembly, so the last part, arriving after the restart, completes it.

mod common;

use std::sync::Arc;

use common::{
    connect_esme, start_gateway_with, start_smsc, ucs2_three_parts, udh_part, wait_until,
};
use journal::{Durability, Journal, JournalConfig};
use router::{
    Deps,
    durable::{self, LogJournal},
    journaling,
};
use smpp_core::rusmpp::{
    CommandStatus,
    pdus::DeliverSm,
    types::{COctetString, OctetString},
    values::{DataCoding, EsmClass},
};
use tokio_util::sync::CancellationToken;

fn config(op_port: u16) -> String {
    format!(
        r#"
[[groups]]
gid = "g1"
[[users]]
uid = "u1"
username = "bank"
password = "secret"
gid = "g1"
[[connectors]]
cid = "op1"
port = {op_port}
con_fail_delay_secs = 0.1
con_loss_delay_secs = 0.1
[[mo_routes]]
order = 0
type = "DefaultRoute"
connector = "smpps(bank)"
"#
    )
}

fn part(chunks: &[Vec<u8>], seq: u8) -> DeliverSm {
    DeliverSm::builder()
        .source_addr(COctetString::from_string("998901234567".into()).unwrap_or_default())
        .destination_addr(COctetString::from_string("7777".into()).unwrap_or_default())
        .esm_class(EsmClass::from(0x40))
        .data_coding(DataCoding::from(8))
        .short_message(OctetString::from_vec(udh_part(7, chunks, seq)).unwrap_or_default())
        .build()
}

/// The journal in `dir` and what it replayed.
fn open_journal(dir: &std::path::Path) -> (Arc<LogJournal>, Vec<durable::Restored>) {
    let (log, replayed) =
        Journal::open(JournalConfig::new(dir, Durability::Fsync)).expect("journal");
    let restored = replayed.iter().filter_map(durable::decode).collect();
    (Arc::new(LogJournal::new(log)), restored)
}

#[tokio::test]
async fn acknowledged_parts_of_a_long_mo_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (text, chunks) = ucs2_three_parts();

    // First life: two of three parts arrive and are acknowledged.
    {
        let shutdown = CancellationToken::new();
        let (smsc, op_port) = start_smsc(&shutdown, false).await;
        let (journal, _) = open_journal(dir.path());
        let deps = Deps {
            journal: Some(journal.clone() as Arc<dyn journaling::Journal>),
            ..Deps::default()
        };
        let (gw, _) = start_gateway_with(&shutdown, &config(op_port), deps).await;
        wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
        for seq in [1u8, 2] {
            assert_eq!(
                smsc.deliver("smppclient", part(&chunks, seq)).await,
                CommandStatus::EsmeRok
            );
        }
        journal.log().flush().await.expect("flush");
        // The process dies: nothing of this gateway is kept but the journal's files.
        shutdown.cancel();
    }

    // Second life: the replay gives the parts back; the third completes the message.
    let shutdown = CancellationToken::new();
    let (smsc, op_port) = start_smsc(&shutdown, false).await;
    let (journal, restored) = open_journal(dir.path());
    let deps = Deps {
        journal: Some(journal as Arc<dyn journaling::Journal>),
        ..Deps::default()
    };
    let (gw, port) = start_gateway_with(&shutdown, &config(op_port), deps).await;
    let report = gw.restore(restored).await;
    assert_eq!(report.mo_parts, 2, "{report:?}");
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let mut esme = connect_esme(&shutdown, port, "bank", "secret").await;
    assert_eq!(
        smsc.deliver("smppclient", part(&chunks, 3)).await,
        CommandStatus::EsmeRok
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = esme.receive().await;
        got.extend_from_slice(&p.short_message().as_ref()[6..]);
    }
    assert_eq!(got, text, "the whole message, parts from both lives");
    shutdown.cancel();
}
