//! Over real sockets: what a client's deliver_sm_resp status does to its receipts, and
//! the SMPP operations besides submit_sm (query_sm, cancel_sm, replace_sm, data_sm,
//! submit_multi), each limited to the client's own messages.

mod common;
mod raw_esme;

use std::time::Duration;

use common::{mo, start_gateway, start_smsc, submit_sm, wait_until};
use raw_esme::RawEsme;
use smpp_core::rusmpp::CommandStatus;
use tokio_util::sync::CancellationToken;

/// Longer than the gateway's redelivery delay: nothing more comes after it.
const SETTLE: Duration = Duration::from_millis(2500);

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
