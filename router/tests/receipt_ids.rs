//! Receipt ids and the connector's `dlr_id_form`: short numeric ids are each other's
//! hex/decimal aliases ("10" hex is 16), so a receipt must reach the message the
//! operator meant, and none when that cannot be told.

mod common;

use std::{sync::Arc, time::Duration};

use common::{Hook, Shutdown, Sim, http_message, start_gateway, wait_bound};
use router::{DlrMethod, DlrRequest, Gateway, credentials::Requested};
use smpp_core::rusmpp::{CommandStatus, pdus::DeliverSm, types::OctetString, values::EsmClass};
use smpp_core::server::ServerConfig;
use smpp_testkit::sim::{IdForm, SimConfig};

struct Setup {
    _shutdown: Shutdown,
    gw: Arc<Gateway>,
    /// An operator whose message id for a submit_sm is the message's text.
    smsc: Sim,
    hook: Hook,
}

/// A gateway whose connector op1 reads receipt ids as `form` says; users u1 and u2.
async fn setup(form: &str) -> Setup {
    let shutdown = Shutdown::new();
    let smsc = Sim::start(
        &shutdown,
        SimConfig {
            ids: IdForm::Text,
            receipt_fraction: 0.0,
            server: ServerConfig::default(),
            ..SimConfig::default()
        },
    )
    .await;
    let port = smsc.port;
    let hook = Hook::start(&shutdown).await;
    let config = format!(
        "[settings]\nearly_receipt_hold_ms = 300\nhttp_retry_delay_ms = 50\n\
         [[groups]]\ngid = \"g\"\n\
         [[users]]\nuid = \"u1\"\nusername = \"bank\"\npassword = \"pw\"\ngid = \"g\"\n\
         [[users]]\nuid = \"u2\"\nusername = \"shop\"\npassword = \"pw\"\ngid = \"g\"\n\
         [[connectors]]\ncid = \"op1\"\nusername = \"op1\"\nport = {port}\n\
         con_fail_delay_secs = 0.1\ncon_loss_delay_secs = 0.1\n{form}\n\
         [[mt_routes]]\norder = 0\ntype = \"DefaultRoute\"\nconnector = \"smppc(op1)\"\n"
    );
    let (gw, _) = start_gateway(&shutdown, &config).await;
    wait_bound(&gw, &["op1"]).await;
    Setup {
        _shutdown: shutdown,
        gw,
        smsc,
        hook,
    }
}

impl Setup {
    /// `user` sends a message the operator will know as `operator_id`, asking DLRs
    /// (levels 1 and 2) at `/<operator_id>`; returns once the id is mapped.
    async fn send(&self, user: &str, operator_id: &str) {
        let user = self.gw.authenticate(user, "pw").await.expect("user");
        let mut msg = http_message(operator_id.as_bytes());
        let path = format!("/{operator_id}");
        msg.dlr = Some(DlrRequest {
            level: 3,
            url: self.hook.url(&path),
            method: DlrMethod::Post,
        });
        let requested = Requested {
            dlr_level: true,
            dlr_method: true,
            ..Requested::default()
        };
        self.gw.submit(&user, msg, requested).await.expect("sent");
        // The level-1 callback follows the submit_sm_resp; the id is mapped with it.
        self.hook.wait_for(&path, 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// The operator's receipt for `operator_id`; its deliver_sm_resp status.
    async fn receipt(&self, operator_id: &str) -> CommandStatus {
        let text = format!("id:{operator_id} sub:001 dlvrd:001 stat:DELIVRD err:000 text:");
        let pdu = DeliverSm::builder()
            .esm_class(EsmClass::from(0x04))
            .short_message(OctetString::from_string(text).unwrap_or_default())
            .build();
        self.smsc.deliver("op1", pdu).await
    }

    /// Which messages got a level-2 (receipt) callback.
    async fn receipted(&self, ids: &[&str]) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ids.iter()
            .filter(|id| {
                self.hook
                    .requests(&format!("/{id}"))
                    .iter()
                    .any(|r| r.param("level").as_deref() == Some("2"))
            })
            .map(|id| id.to_string())
            .collect()
    }
}

#[tokio::test]
async fn auto_gives_a_receipt_to_the_exact_id_only() {
    let s = setup("").await;
    s.send("bank", "10").await;
    s.send("shop", "16").await;
    assert_eq!(s.receipt("10").await, CommandStatus::EsmeRok);
    assert_eq!(s.receipted(&["10", "16"]).await, ["10"]);
}

#[tokio::test]
async fn hex_reads_the_receipt_id_as_hex() {
    let s = setup("dlr_id_form = \"hex\"").await;
    s.send("bank", "10").await;
    s.send("shop", "16").await;
    assert_eq!(s.receipt("10").await, CommandStatus::EsmeRok);
    assert_eq!(s.receipted(&["10", "16"]).await, ["16"]);
}

#[tokio::test]
async fn decimal_reads_the_receipt_id_as_decimal() {
    let s = setup("dlr_id_form = \"decimal\"").await;
    s.send("bank", "A").await;
    s.send("shop", "10").await;
    assert_eq!(s.receipt("10").await, CommandStatus::EsmeRok);
    assert_eq!(s.receipted(&["A", "10"]).await, ["A"]);
}

#[tokio::test]
async fn an_id_matching_only_several_aliases_is_delivered_to_no_one() {
    let s = setup("dlr_id_form = \"auto\"").await;
    // Receipt "10": "16" if it is hex, "A" if it is decimal; no message is "10".
    s.send("bank", "16").await;
    s.send("shop", "A").await;
    assert_eq!(s.receipt("10").await, CommandStatus::EsmeRok);
    assert!(s.receipted(&["16", "A"]).await.is_empty());
    let unmatched = s.gw.connector("op1").map(|c| {
        c.counters
            .receipts_unmatched
            .load(std::sync::atomic::Ordering::Relaxed)
    });
    assert_eq!(unmatched, Some(1));
    // A single alias is still found (an operator answering hex, receipting decimal).
    assert_eq!(s.receipt("22").await, CommandStatus::EsmeRok);
    assert_eq!(s.receipted(&["16", "A"]).await, ["16"]);
    assert_eq!(s.smsc.submits.len(), 2);
}
