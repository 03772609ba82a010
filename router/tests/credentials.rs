//! MT credentials over real sockets (docs/jasmin-compat.md §5.2, §5.3, §6.4): every
//! authorization refuses with Jasmin's status when it is off and lets the same message
//! through when it is on; every value filter refuses a mismatch with its status and lets
//! a match through. SMPP through a bound ESME, the HTTP-only ones through
//! `Gateway::submit` (the HTTP API's entry point), each checked against the operator.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{
    Client, Shutdown, Sim, connect_esme, connector_toml, http_message, start_gateway, submit_sm,
    wait_bound, with_priority,
};
use router::{DlrMethod, DlrRequest, Gateway, Message, Refusal, credentials::Requested};
use smpp_core::{
    client::SubmitOutcome,
    rusmpp::{CommandStatus, types::EmptyOrFullCOctetString},
};
use smpp_testkit::sim::SimConfig;

/// Authorizations switched off one per user: user `no_<key>` lacks `<key>`.
const AUTHORIZATIONS: [&str; 10] = [
    "http_send",
    "smpps_send",
    "http_long_content",
    "dlr_level",
    "http_dlr_method",
    "src_addr",
    "priority",
    "validity_period",
    "hex_content",
    "schedule_delivery_time",
];

struct Setup {
    shutdown: Shutdown,
    gw: Arc<Gateway>,
    port: u16,
    sim: Sim,
}

async fn setup() -> Setup {
    let shutdown = Shutdown::new();
    let sim = Sim::start(&shutdown, SimConfig::default()).await;
    let mut config = String::from("[[groups]]\ngid = \"g\"\n");
    let mut user = |name: &str, extra: &str| {
        config.push_str(&format!(
            "[[users]]\nuid = \"{name}\"\nusername = \"{name}\"\npassword = \"pw\"\ngid = \"g\"\n{extra}\n"
        ));
    };
    user("all", "");
    for key in AUTHORIZATIONS {
        user(
            &format!("no_{key}"),
            &format!("authorizations = {{ {key} = false }}"),
        );
    }
    user(
        "vf",
        r#"value_filters = { dst_addr = "255", src_addr = "BANK$", priority = "[01]$", validity_period = "0000", content = "ok" }"#,
    );
    config.push_str(&connector_toml("op1", "op1", sim.port));
    config.push_str(
        "[[mt_routes]]\norder = 0\ntype = \"DefaultRoute\"\nconnector = \"smppc(op1)\"\n",
    );
    let (gw, port) = start_gateway(&shutdown, &config).await;
    wait_bound(&gw, &["op1"]).await;
    Setup {
        shutdown,
        gw,
        port,
        sim,
    }
}

impl Setup {
    async fn esme(&self, username: &str) -> Client {
        connect_esme(&self.shutdown, self.port, username, "pw").await
    }

    /// The operator got this content next.
    async fn delivered(&mut self, content: &[u8]) {
        let got = self.sim.next_submit().await;
        assert_eq!(got.pdu.short_message().as_ref(), content);
    }

    async fn submit_http(
        &self,
        username: &str,
        msg: Message,
        requested: Requested,
    ) -> Result<Arc<str>, Refusal> {
        let user = self.gw.authenticate(username, "pw").await.expect("user");
        self.gw.submit(&user, msg, requested).await
    }
}

#[tokio::test]
async fn smpp_authorizations_refuse_with_invsysid_and_allow_when_set() {
    let mut s = setup().await;
    let mut all = s.esme("all").await;
    // (authorization, a submit_sm that needs it, one from the same user that does not)
    let cases = [
        ("smpps_send", submit_sm("", "255700", b"send", 0, 0), None),
        (
            "dlr_level",
            submit_sm("", "255700", b"dlr", 1, 0),
            Some(submit_sm("", "255700", b"no dlr", 0, 0)),
        ),
        (
            "src_addr",
            submit_sm("ME", "255700", b"src", 0, 0),
            Some(submit_sm("", "255700", b"no src", 0, 0)),
        ),
        (
            "priority",
            with_priority(submit_sm("", "255700", b"prio", 0, 0), 2),
            Some(submit_sm("", "255700", b"no prio", 0, 0)),
        ),
    ];
    for (key, needs, plain) in cases {
        let content = needs.short_message().as_ref().to_vec();
        let mut denied = s.esme(&format!("no_{key}")).await;
        assert_eq!(
            denied.send(needs.clone()).await,
            SubmitOutcome::Rejected(CommandStatus::EsmeRinvsysid),
            "{key} off"
        );
        all.accepted(needs).await;
        s.delivered(&content).await;
        if let Some(plain) = plain {
            let content = plain.short_message().as_ref().to_vec();
            denied.accepted(plain).await;
            s.delivered(&content).await;
        }
    }
}

#[tokio::test]
async fn http_authorizations_refuse_with_jasmins_answer_and_allow_when_set() {
    let mut s = setup().await;
    let want = |f: fn(&mut Requested)| {
        let mut r = Requested::default();
        f(&mut r);
        r
    };
    let cases: [(&str, Requested, &str); 9] = [
        ("http_send", Requested::default(), "Cannot send MT messages"),
        (
            "http_long_content",
            want(|r| r.long_content = true),
            "Long content not authorized",
        ),
        (
            "dlr_level",
            want(|r| r.dlr_level = true),
            "Setting dlr level not authorized",
        ),
        (
            "http_dlr_method",
            want(|r| r.dlr_method = true),
            "Setting dlr method not authorized",
        ),
        (
            "src_addr",
            want(|r| r.source_address = true),
            "Setting source address not authorized",
        ),
        (
            "priority",
            want(|r| r.priority = true),
            "Setting priority not authorized",
        ),
        (
            "validity_period",
            want(|r| r.validity_period = true),
            "Setting validity period not authorized",
        ),
        (
            "hex_content",
            want(|r| r.hex_content = true),
            "Setting hex content not authorized",
        ),
        (
            "schedule_delivery_time",
            want(|r| r.schedule_delivery_time = true),
            "Setting schedule delivery time not authorized",
        ),
    ];
    for (key, requested, reason) in cases {
        let username = format!("no_{key}");
        let refusal = s
            .submit_http(&username, http_message(b"x"), requested)
            .await
            .expect_err(key);
        assert_eq!(refusal.http_status(), 400, "{key}");
        assert_eq!(
            refusal.http_body(),
            format!("Error \"Authorization failed for user [{username}] ({reason}).\""),
        );
        assert_eq!(refusal.smpp_status(), CommandStatus::EsmeRinvsysid);
        let content = key.as_bytes();
        let id = s
            .submit_http("all", http_message(content), requested)
            .await
            .unwrap_or_else(|r| panic!("{key} on: {r}"));
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        s.delivered(content).await;
    }
    // A dlr-level request that is allowed really asks the operator for a receipt.
    let mut msg = http_message(b"with dlr");
    msg.dlr = Some(DlrRequest {
        level: 2,
        url: "http://127.0.0.1:9/".into(),
        method: DlrMethod::Post,
    });
    s.submit_http("all", msg, want(|r| r.dlr_level = true))
        .await
        .expect("accepted");
    let got = s.sim.next_submit().await;
    assert_eq!(u8::from(got.pdu.registered_delivery) & 3, 1);
}

#[tokio::test]
async fn smpp_value_filters_refuse_with_their_status_and_allow_matches() {
    let mut s = setup().await;
    let mut vf = s.esme("vf").await;
    let ok = || with_priority(submit_sm("BANK", "255700", b"ok go", 0, 0), 1);
    let cases = [
        (
            submit_sm("BANK", "998900", b"ok go", 0, 0),
            CommandStatus::EsmeRinvdstadr,
        ),
        (
            submit_sm("MYBANK", "255700", b"ok go", 0, 0),
            CommandStatus::EsmeRinvsrcadr,
        ),
        (
            with_priority(submit_sm("BANK", "255700", b"ok go", 0, 0), 2),
            CommandStatus::EsmeRinvprtflg,
        ),
        (
            submit_sm("BANK", "255700", b"not ok", 0, 0),
            CommandStatus::EsmeRsyserr,
        ),
    ];
    for (pdu, status) in cases {
        assert_eq!(vf.send(pdu).await, SubmitOutcome::Rejected(status));
    }
    vf.accepted(ok()).await;
    s.delivered(b"ok go").await;
    // SMPP does not check validity_period (Jasmin checks it on HTTP only).
    let mut late = ok();
    late.validity_period =
        EmptyOrFullCOctetString::from_string("990101000000000R".into()).expect("time");
    vf.accepted(late).await;
    s.delivered(b"ok go").await;
}

#[tokio::test]
async fn http_value_filters_refuse_with_jasmins_answer_and_allow_matches() {
    let mut s = setup().await;
    let from_given = Requested {
        source_address: true,
        priority: true,
        validity_period: true,
        ..Requested::default()
    };
    let base = || {
        let mut m = http_message(b"ok");
        m.priority = 1;
        m.validity_period = "000001000000000R".into();
        m
    };
    type Change = fn(&mut Message);
    let mutations: [(Change, &str); 5] = [
        (
            |m| m.destination.addr = "998900".into(),
            "destination_address",
        ),
        (|m| m.source.addr = "BANKS".into(), "source_address"),
        (|m| m.priority = 3, "priority"),
        (
            |m| m.validity_period = "000101000000000R".into(),
            "validity_period",
        ),
        (|m| m.content = Bytes::from_static(b"no"), "content"),
    ];
    for (change, field) in mutations {
        let mut msg = base();
        change(&mut msg);
        let refusal = s.submit_http("vf", msg, from_given).await.expect_err(field);
        assert_eq!(refusal.http_status(), 400);
        assert_eq!(
            refusal.http_body(),
            format!("Error \"Value filter failed for user [vf] ({field} filter mismatch).\"")
        );
    }
    s.submit_http("vf", base(), from_given)
        .await
        .expect("all filters match");
    s.delivered(b"ok").await;
    // On HTTP, source, priority and validity are only checked when the caller set them.
    let mut unset = base();
    unset.source.addr = "BANKS".into();
    unset.priority = 3;
    unset.validity_period = String::new();
    s.submit_http("vf", unset, Requested::default())
        .await
        .expect("unchecked when not given");
    s.delivered(b"ok").await;
}

/// A submit_sm whose text travels in message_payload, beside `short_message`.
fn with_payload(short_message: &[u8], payload: &[u8]) -> smpp_core::rusmpp::pdus::SubmitSm {
    use smpp_core::rusmpp::{
        tlvs::{MessageSubmissionRequestTlvValue, TlvTag},
        types::AnyOctetString,
    };
    let mut pdu = submit_sm("BANK", "255700", short_message, 0, 0);
    pdu.set_tlvs(vec![MessageSubmissionRequestTlvValue::Other {
        tag: TlvTag::from(router::model::TAG_MESSAGE_PAYLOAD),
        value: AnyOctetString::from_slice(payload),
    }]);
    pdu
}

#[tokio::test]
async fn message_payload_is_the_content_that_filters_see_and_cannot_come_with_short_message() {
    let s = setup().await;
    let mut vf = s.esme("vf").await;
    // The filter wants "ok" in the content: a payload without it is refused…
    assert_eq!(
        vf.send(with_payload(b"", b"bad news")).await,
        SubmitOutcome::Rejected(CommandStatus::EsmeRsyserr)
    );
    // …and cannot hide behind a harmless short_message.
    assert_eq!(
        vf.send(with_payload(b"ok", b"bad news")).await,
        SubmitOutcome::Rejected(CommandStatus::EsmeRinvtlvval)
    );
    vf.accepted(with_payload(b"", b"ok, payload")).await;
    let got = s.sim.next_submit().await;
    assert_eq!(got.pdu.short_message().as_ref(), b"");
    let payload = got
        .pdu
        .tlvs()
        .iter()
        .find(|t| u16::from(t.tag()) == router::model::TAG_MESSAGE_PAYLOAD)
        .map(|t| t.value_length());
    assert_eq!(payload, Some(11), "the operator gets the payload");
}
