//! Over real sockets: what a client's deliver_sm_resp status does to its receipts, and
//! the SMPP operations besides submit_sm (query_sm, cancel_sm, replace_sm, data_sm,
//! submit_multi), each limited to the client's own messages.

mod common;

use std::{sync::Arc, time::Duration};

use journal::{Durability, Journal, JournalConfig};
use router::{Deps, durable::LogJournal, journaling};

use common::{mo, start_gateway, start_gateway_with, start_smsc, submit_sm, wait_until};
use smpp_core::rusmpp::{
    CommandStatus, Pdu,
    pdus::{CancelSm, DataSm, QuerySm, ReplaceSm, SubmitMulti},
    tlvs::MessageSubmissionRequestTlvValue,
    types::{COctetString, OctetString},
    values::{DestAddress, DistributionListName, MessageState, Npi, SmeAddress, Ton},
};
use smpp_testkit::raw::RawEsme;
use tokio_util::sync::CancellationToken;

/// Longer than the gateway's redelivery delay: nothing more comes after it.
const SETTLE: Duration = Duration::from_millis(2500);

fn config(op_port: u16) -> String {
    config_with(op_port, "")
}

/// `extra` goes in the connector's table (e.g. `start = false`: parts stay queued).
fn config_with(op_port: u16, extra: &str) -> String {
    format!(
        r#"
[[groups]]
gid = "g1"
[[users]]
uid = "u1"
username = "bank"
password = "secret"
gid = "g1"
[[users]]
uid = "u2"
username = "shop"
password = "secret"
gid = "g1"
[[connectors]]
cid = "op1"
port = {op_port}
con_fail_delay_secs = 0.1
con_loss_delay_secs = 0.1
{extra}
[[mt_routes]]
order = 0
type = "DefaultRoute"
connector = "smppc(op1)"
[[mo_routes]]
order = 0
type = "DefaultRoute"
connector = "smpps(bank)"
"#
    )
}

/// A bound client that asked for a receipt, and the first deliver_sm of that receipt.
async fn receipt_to_client(
    shutdown: &CancellationToken,
) -> (RawEsme, u32, std::sync::Arc<router::Gateway>) {
    let (_smsc, op_port) = start_smsc(shutdown, true).await;
    let (gw, port) = start_gateway(shutdown, &config(op_port)).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let mut esme = RawEsme::bound(port, "bank", "secret").await;
    let (status, _) = esme
        .request(submit_sm("BANK", "255700000001", b"code", 1, 0))
        .await;
    assert_eq!(status, CommandStatus::EsmeRok);
    let (seq, receipt) = esme.next_deliver().await;
    assert_eq!(u8::from(receipt.esm_class) & 0x04, 0x04, "a receipt");
    (esme, seq, gw)
}

#[tokio::test]
async fn temporary_error_answer_gets_the_receipt_again() {
    let shutdown = CancellationToken::new();
    let (mut esme, seq, gw) = receipt_to_client(&shutdown).await;
    esme.answer(seq, CommandStatus::EsmeRxTAppn).await;

    let (seq, again) = esme.next_deliver().await;
    assert_eq!(u8::from(again.esm_class) & 0x04, 0x04, "the receipt again");
    esme.answer(seq, CommandStatus::EsmeRok).await;

    assert!(esme.quiet_for(SETTLE).await, "delivered once answered OK");
    assert_eq!(gw.pending_for("bank"), 0);
    shutdown.cancel();
}

#[tokio::test]
async fn permanent_error_answer_drops_the_receipt() {
    let shutdown = CancellationToken::new();
    let (mut esme, seq, gw) = receipt_to_client(&shutdown).await;
    esme.answer(seq, CommandStatus::EsmeRxRAppn).await;

    assert!(esme.quiet_for(SETTLE).await, "never sent again");
    assert_eq!(gw.pending_for("bank"), 0);
    shutdown.cancel();
}

#[tokio::test]
async fn temporary_error_answer_gets_the_mo_again() {
    let shutdown = CancellationToken::new();
    let (smsc, op_port) = start_smsc(&shutdown, false).await;
    let (gw, port) = start_gateway(&shutdown, &config(op_port)).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let mut esme = RawEsme::bound(port, "bank", "secret").await;
    let status = smsc
        .deliver(
            "smppclient",
            mo("255700000001", "1234", 0, 0, b"hi".to_vec()),
        )
        .await;
    assert_eq!(status, CommandStatus::EsmeRok);

    let (seq, first) = esme.next_deliver().await;
    esme.answer(seq, CommandStatus::EsmeRxTAppn).await;
    let (seq, again) = esme.next_deliver().await;
    assert_eq!(first.short_message(), again.short_message());
    esme.answer(seq, CommandStatus::EsmeRok).await;

    assert!(esme.quiet_for(SETTLE).await, "delivered once answered OK");
    assert_eq!(gw.pending_for("bank"), 0);
    shutdown.cancel();
}

fn cstr<const N: usize>(s: &str) -> COctetString<1, N> {
    COctetString::from_string(s.to_owned()).expect("c string")
}

async fn submitted(esme: &mut RawEsme, text: &[u8]) -> String {
    match esme
        .request(submit_sm("BANK", "255700000001", text, 0, 0))
        .await
    {
        (CommandStatus::EsmeRok, Some(Pdu::SubmitSmResp(r))) => r.message_id().as_str().to_owned(),
        other => panic!("refused: {other:?}"),
    }
}

fn query(id: &str) -> QuerySm {
    QuerySm::builder().message_id(cstr(id)).build()
}

fn cancel(id: &str) -> CancelSm {
    CancelSm::builder().message_id(cstr(id)).build()
}

/// Gateway whose connector never starts: accepted messages stay in its queue.
async fn queued_gateway(shutdown: &CancellationToken) -> (std::sync::Arc<router::Gateway>, u16) {
    start_gateway(shutdown, &config_with(1, "start = false")).await
}

#[tokio::test]
async fn query_and_cancel_own_queued_message_but_not_anothers() {
    let shutdown = CancellationToken::new();
    let (gw, port) = queued_gateway(&shutdown).await;
    let mut bank = RawEsme::bound(port, "bank", "secret").await;
    let mut shop = RawEsme::bound(port, "shop", "secret").await;
    let id = submitted(&mut bank, b"hello").await;

    match bank.request(query(&id)).await {
        (CommandStatus::EsmeRok, Some(Pdu::QuerySmResp(r))) => {
            assert_eq!(r.message_state, MessageState::Enroute);
            assert_eq!(r.message_id.as_str(), id);
        }
        other => panic!("query_sm: {other:?}"),
    }
    // Another user reaches neither the state nor the message.
    assert_eq!(
        shop.request(query(&id)).await.0,
        CommandStatus::EsmeRqueryfail
    );
    assert_eq!(
        shop.request(cancel(&id)).await.0,
        CommandStatus::EsmeRcancelfail
    );
    assert_eq!(gw.in_flight(), 1);
    assert_eq!(
        bank.request(query("no-such-id")).await.0,
        CommandStatus::EsmeRqueryfail
    );

    assert_eq!(bank.request(cancel(&id)).await.0, CommandStatus::EsmeRok);
    assert_eq!(gw.in_flight(), 0);
    assert_eq!(gw.connector("op1").map(|c| c.queue.len()), Some(0));
    match bank.request(query(&id)).await {
        (CommandStatus::EsmeRok, Some(Pdu::QuerySmResp(r))) => {
            assert_eq!(r.message_state, MessageState::Deleted);
            assert!(!r.final_date.as_str().is_empty());
        }
        other => panic!("query_sm after cancel: {other:?}"),
    }
    assert_eq!(
        bank.request(cancel(&id)).await.0,
        CommandStatus::EsmeRcancelfail
    );
    shutdown.cancel();
}

#[tokio::test]
async fn sent_message_cannot_be_cancelled_or_replaced_and_stays_queryable() {
    let shutdown = CancellationToken::new();
    let (smsc, op_port) = start_smsc(&shutdown, false).await;
    let (gw, port) = start_gateway(&shutdown, &config(op_port)).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let mut bank = RawEsme::bound(port, "bank", "secret").await;
    let id = submitted(&mut bank, b"hello").await;
    wait_until(|| gw.in_flight() == 0 && !smsc.submits.is_empty()).await;

    assert_eq!(
        bank.request(cancel(&id)).await.0,
        CommandStatus::EsmeRcancelfail
    );
    let replace = ReplaceSm::builder()
        .message_id(cstr(&id))
        .short_message(OctetString::from_slice(b"other").expect("text"))
        .build();
    assert_eq!(
        bank.request(replace).await.0,
        CommandStatus::EsmeRreplacefail
    );
    match bank.request(query(&id)).await {
        (CommandStatus::EsmeRok, Some(Pdu::QuerySmResp(r))) => {
            assert_eq!(r.message_state, MessageState::Enroute)
        }
        other => panic!("query_sm: {other:?}"),
    }
    shutdown.cancel();
}

#[tokio::test]
async fn replace_swaps_the_content_of_a_queued_message() {
    let shutdown = CancellationToken::new();
    let (gw, port) = queued_gateway(&shutdown).await;
    let mut bank = RawEsme::bound(port, "bank", "secret").await;
    let mut shop = RawEsme::bound(port, "shop", "secret").await;
    let id = submitted(&mut bank, b"old text").await;
    let replace = || {
        ReplaceSm::builder()
            .message_id(cstr(&id))
            .short_message(OctetString::from_slice(b"new text").expect("text"))
            .build()
    };
    assert_eq!(
        shop.request(replace()).await.0,
        CommandStatus::EsmeRreplacefail
    );
    assert_eq!(bank.request(replace()).await.0, CommandStatus::EsmeRok);
    let queue = &gw.connector("op1").expect("op1").queue;
    let item = queue.pop().expect("still queued");
    assert_eq!(item.request.pdu.short_message().as_ref(), b"new text");
    shutdown.cancel();
}

#[tokio::test]
async fn data_sm_and_submit_multi_take_the_submit_path() {
    let shutdown = CancellationToken::new();
    let (gw, port) = queued_gateway(&shutdown).await;
    let mut bank = RawEsme::bound(port, "bank", "secret").await;

    let data = DataSm::builder()
        .source_addr(cstr("BANK"))
        .destination_addr(cstr("255700000002"))
        .build();
    match bank.request(data).await {
        (CommandStatus::EsmeRok, Some(Pdu::DataSmResp(r))) => {
            assert!(uuid::Uuid::parse_str(r.message_id().as_str()).is_ok())
        }
        other => panic!("data_sm: {other:?}"),
    }

    let sme = |addr: &str| {
        DestAddress::SmeAddress(SmeAddress::new(Ton::International, Npi::Isdn, cstr(addr)))
    };
    let multi = SubmitMulti::builder()
        .source_addr(cstr("BANK"))
        .dest_address(vec![sme("255700000003"), sme(""), sme("255700000004")])
        .short_message(OctetString::from_slice(b"to all").expect("text"))
        .build();
    match bank.request(multi).await {
        (CommandStatus::EsmeRok, Some(Pdu::SubmitMultiResp(r))) => {
            assert!(uuid::Uuid::parse_str(r.message_id.as_str()).is_ok());
            let failed = r.unsuccess_sme();
            assert_eq!(failed.len(), 1, "{failed:?}");
            assert_eq!(failed[0].error_status_code, CommandStatus::EsmeRinvdstadr);
        }
        other => panic!("submit_multi: {other:?}"),
    }
    assert_eq!(gw.in_flight(), 3, "data_sm + two destinations queued");
    shutdown.cancel();
}

/// The journal in `dir`, and the gateway dependencies that write to it.
fn journaled(dir: &std::path::Path) -> (Arc<LogJournal>, Vec<router::durable::Restored>, Deps) {
    let (log, replayed) =
        Journal::open(JournalConfig::new(dir, Durability::Fsync)).expect("journal");
    let restored = replayed
        .iter()
        .filter_map(router::durable::decode)
        .collect();
    let journal = Arc::new(LogJournal::new(log));
    let deps = Deps {
        journal: Some(journal.clone() as Arc<dyn journaling::Journal>),
        ..Deps::default()
    };
    (journal, restored, deps)
}

#[tokio::test]
async fn a_replaced_message_is_sent_with_its_new_content_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    // First life: the connector never starts; the message is replaced while queued.
    {
        let shutdown = CancellationToken::new();
        let (journal, _, deps) = journaled(dir.path());
        let (_gw, port) =
            start_gateway_with(&shutdown, &config_with(1, "start = false"), deps).await;
        let mut bank = RawEsme::bound(port, "bank", "secret").await;
        let id = submitted(&mut bank, b"old text").await;
        let replace = ReplaceSm::builder()
            .message_id(cstr(&id))
            .short_message(OctetString::from_slice(b"new text").expect("text"))
            .build();
        assert_eq!(bank.request(replace).await.0, CommandStatus::EsmeRok);
        journal.log().flush().await.expect("flush");
        // The process dies here: only the journal's files remain.
        shutdown.cancel();
    }
    // Second life: the replay sends the replaced content, and only that.
    let shutdown = CancellationToken::new();
    let (smsc, op_port) = start_smsc(&shutdown, false).await;
    let (_journal, restored, deps) = journaled(dir.path());
    let (gw, _) = start_gateway_with(&shutdown, &config(op_port), deps).await;
    let report = gw.restore(restored).await;
    assert_eq!(report.requeued, 1, "{report:?}");
    wait_until(|| !smsc.submits.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent: Vec<Vec<u8>> = smsc
        .submits
        .pdus()
        .iter()
        .map(|s| s.short_message().as_ref().to_vec())
        .collect();
    assert_eq!(sent, vec![b"new text".to_vec()]);
    shutdown.cancel();
}

#[tokio::test]
async fn submit_multi_keeps_its_tlvs_and_refuses_distribution_lists_by_name() {
    let shutdown = CancellationToken::new();
    let (smsc, op_port) = start_smsc(&shutdown, false).await;
    let (gw, port) = start_gateway(&shutdown, &config(op_port)).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let mut bank = RawEsme::bound(port, "bank", "secret").await;
    let multi = SubmitMulti::builder()
        .source_addr(cstr("BANK"))
        .dest_address(vec![
            DestAddress::SmeAddress(SmeAddress::new(
                Ton::International,
                Npi::Isdn,
                cstr("255700000005"),
            )),
            DestAddress::DistributionListName(DistributionListName::new(cstr("staff"))),
        ])
        .short_message(OctetString::from_slice(b"with tlv").expect("text"))
        .push_tlv(MessageSubmissionRequestTlvValue::UserMessageReference(
            smpp_core::rusmpp::values::UserMessageReference::new(4242),
        ))
        .build();
    match bank.request(multi).await {
        (CommandStatus::EsmeRok, Some(Pdu::SubmitMultiResp(r))) => {
            let failed = r.unsuccess_sme();
            assert_eq!(failed.len(), 1, "{failed:?}");
            assert_eq!(failed[0].destination_addr.as_str(), "staff");
            assert_eq!(failed[0].error_status_code, CommandStatus::EsmeRinvdestflag);
        }
        other => panic!("submit_multi: {other:?}"),
    }
    wait_until(|| !smsc.submits.is_empty()).await;
    let submits = smsc.submits.pdus();
    let sent = &submits[0];
    assert_eq!(sent.destination_addr.as_str(), "255700000005");
    assert!(
        sent.tlvs().iter().any(|t| u16::from(t.tag()) == 0x0204),
        "user_message_reference reached the operator: {:?}",
        sent.tlvs()
    );
    drop(submits);
    shutdown.cancel();
}

/// After a restart the gateway binds clients and operators before the journal's replay
/// is restored. A receipt that arrives meanwhile is not dropped as unknown: the operator
/// is answered only once the replay gave its message back, and the client gets it.
#[tokio::test]
async fn a_receipt_that_arrives_during_the_replay_waits_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // First life: the operator takes the message (id 003E8) and sends no receipt.
    {
        let shutdown = CancellationToken::new();
        let (_smsc, op_port) = start_smsc(&shutdown, false).await;
        let (journal, _, deps) = journaled(dir.path());
        let (gw, port) = start_gateway_with(&shutdown, &config(op_port), deps).await;
        wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
        let mut bank = RawEsme::bound(port, "bank", "secret").await;
        submitted_with_receipt(&mut bank).await;
        wait_until(|| gw.in_flight() == 0).await;
        journal.log().flush().await.expect("flush");
        shutdown.cancel();
    }
    // Second life: everything is up, the replay not yet restored.
    let shutdown = CancellationToken::new();
    let (smsc, op_port) = start_smsc(&shutdown, false).await;
    let (_journal, restored, deps) = journaled(dir.path());
    let deps = Deps {
        replay_pending: true,
        ..deps
    };
    // A short hold: without the wait for the replay, the receipt would be dropped as
    // unknown long before the restore below.
    let short_hold = format!(
        "[settings]\nearly_receipt_hold_ms = 200\n{}",
        config(op_port)
    );
    let (gw, port) = start_gateway_with(&shutdown, &short_hold, deps).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let mut bank = RawEsme::bound(port, "bank", "secret").await;
    let receipt = smpp_core::rusmpp::pdus::DeliverSm::builder()
        .source_addr(cstr("255700000001"))
        .destination_addr(cstr("BANK"))
        .esm_class(smpp_core::rusmpp::values::EsmClass::from(0x04))
        .short_message(
            OctetString::from_string(
                "id:003E8 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:"
                    .to_owned(),
            )
            .expect("text"),
        )
        .build();
    let answered = tokio::spawn(async move { smsc.deliver("smppclient", receipt).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!answered.is_finished(), "the operator waits for the replay");
    let report = gw.restore(restored).await;
    assert_eq!(report.receipts_awaited, 1, "{report:?}");
    let (seq, delivered) = bank.next_deliver().await;
    assert_eq!(u8::from(delivered.esm_class) & 0x04, 0x04, "the receipt");
    bank.answer(seq, CommandStatus::EsmeRok).await;
    assert_eq!(answered.await.expect("task"), CommandStatus::EsmeRok);
    shutdown.cancel();
}

async fn submitted_with_receipt(bank: &mut RawEsme) {
    let (status, _) = bank
        .request(submit_sm("BANK", "255700000001", b"code", 1, 0))
        .await;
    assert_eq!(status, CommandStatus::EsmeRok);
}
