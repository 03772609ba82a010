//! SMPP client connectors managed live over the admin API, against SMSC simulators over
//! real sockets: add one and route to it, stop it (messages are accepted and wait),
//! start it (they arrive), point it at another operator, survive a restart; and the
//! refusals.

mod admin_support;
mod common;

use std::{sync::atomic::Ordering, time::Duration};

use admin_support::{Client, Sim, Stack, TOKEN, WAIT, connect_esme, start_sim, wait_until};
use proto::admin as pb;
use smpp_core::client::SubmitOutcome;
use smpp_core::rusmpp::CommandStatus;
use tokio_util::sync::CancellationToken;
use tonic::Code;

type Admin = pb::admin_client::AdminClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

/// `authorization: Bearer <token>` (a named type, so helpers can take the client).
#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut().insert("authorization", self.0.clone());
        Ok(r)
    }
}

async fn admin(stack: &Stack, token: &str) -> Admin {
    let bearer = Bearer(format!("Bearer {token}").parse().expect("ascii"));
    pb::admin_client::AdminClient::with_interceptor(stack.channel().await, bearer)
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("smsgw.db").display())
}

/// A connector to the simulator on `port`, reconnecting fast.
fn connector(cid: &str, port: u16, start: bool) -> pb::SmppConnector {
    pb::SmppConnector {
        cid: cid.into(),
        host: "127.0.0.1".into(),
        port: port.into(),
        username: cid.into(),
        password: "opsecret".into(),
        start: Some(start),
        config_json: r#"{"con_fail_delay_secs": 0.1, "con_loss_delay_secs": 0.1}"#.into(),
        ..pb::SmppConnector::default()
    }
}

/// Messages to numbers starting with 99 go to `cid` (MT route 10, before the default).
async fn route_99_to(admin: &mut Admin, cid: &str) {
    admin
        .add_filter(pb::Filter {
            fid: "to99".into(),
            r#type: "DestinationAddrFilter".into(),
            value: "^99".into(),
        })
        .await
        .expect("filter");
    admin
        .add_route(pb::Route {
            table: pb::Table::Mt as i32,
            order: 10,
            r#type: "StaticMTRoute".into(),
            connectors: vec![cid.into()],
            filters: vec!["to99".into()],
            rate: Some("0.01".into()),
        })
        .await
        .expect("route");
}

async fn status(admin: &mut Admin, cid: &str) -> pb::Connector {
    admin
        .get_connector(pb::ConnectorRef { cid: cid.into() })
        .await
        .expect("status")
        .into_inner()
}

async fn wait_bound(admin: &mut Admin, cid: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !status(admin, cid).await.bound {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{cid} bound in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn accepted(client: &mut Client, to: &str, text: &str) {
    let outcome = client.send_text(to, text.as_bytes()).await;
    assert!(
        matches!(outcome, SubmitOutcome::Accepted { .. }),
        "{text}: {outcome:?}"
    );
}

async fn next_text(operator: &Sim) -> String {
    let got = operator.next_submit().await;
    String::from_utf8_lossy(got.pdu.short_message().as_ref()).into_owned()
}

async fn nothing_arrives(operator: &Sim) {
    operator
        .no_more_submits_within(Duration::from_millis(700))
        .await;
}

#[tokio::test]
async fn a_connector_added_live_carries_messages_waits_when_stopped_and_follows_an_edit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut stack = Stack::start(&sqlite(&dir), "").await;
    let sims = CancellationToken::new();
    let _sims = sims.clone().drop_guard();
    let at_b = start_sim(&sims).await;
    let port_b = at_b.port;
    let at_c = start_sim(&sims).await;
    let port_c = at_c.port;
    let mut admin = admin(&stack, TOKEN).await;
    let op1_connects = || {
        stack
            .gateway
            .connector("op1")
            .map(|c| c.stats.connects.load(Ordering::Relaxed))
    };
    let op1_before = op1_connects();

    let added = admin
        .add_smpp_connector(connector("opb", port_b, true))
        .await
        .expect("add")
        .into_inner();
    assert_eq!(added.kind, "smpp");
    assert!(added.started);
    assert!(
        !added.config_json.contains("opsecret"),
        "{}",
        added.config_json
    );
    wait_bound(&mut admin, "opb").await;
    route_99_to(&mut admin, "opb").await;

    let mut client = connect_esme(&stack.shutdown, stack.smpp_port, "bank", "pw").await;
    accepted(&mut client, "99100", "first").await;
    assert_eq!(next_text(&at_b).await, "first");

    // Stopped: unbound, and what is routed to it is accepted and waits.
    let stopped = admin
        .stop_connector(pb::ConnectorRef { cid: "opb".into() })
        .await
        .expect("stop")
        .into_inner();
    assert!(!stopped.started && !stopped.bound, "{stopped:?}");
    for n in 1..=3 {
        accepted(&mut client, "99100", &format!("waiting {n}")).await;
    }
    nothing_arrives(&at_b).await;
    assert_eq!(status(&mut admin, "opb").await.pending, 3);

    // Started again: they arrive, in order.
    let started = admin
        .start_connector(pb::ConnectorRef { cid: "opb".into() })
        .await
        .expect("start")
        .into_inner();
    assert!(started.started);
    for n in 1..=3 {
        assert_eq!(next_text(&at_b).await, format!("waiting {n}"));
    }
    let opb = stack.gateway.connector("opb").expect("opb");
    wait_until(|| opb.counters.submitted.load(Ordering::Relaxed) == 4).await;

    // Pointed at another operator: the next messages go there, none to the old one.
    let edited = admin
        .update_smpp_connector(pb::SmppConnectorUpdate {
            cid: "opb".into(),
            port: Some(port_c.into()),
            ..pb::SmppConnectorUpdate::default()
        })
        .await
        .expect("edit")
        .into_inner();
    assert_eq!(edited.target, format!("127.0.0.1:{port_c}"));
    wait_bound(&mut admin, "opb").await;
    accepted(&mut client, "99100", "after edit").await;
    assert_eq!(next_text(&at_c).await, "after edit");
    nothing_arrives(&at_b).await;
    // The counters are the connector's whole life's, across the edit.
    let opb = stack.gateway.connector("opb").expect("opb");
    wait_until(|| opb.counters.submitted.load(Ordering::Relaxed) == 5).await;

    // Only that uplink restarted: op1 kept its one session, and still carries traffic.
    assert_eq!(op1_connects(), op1_before);
    accepted(&mut client, "255700000001", "default route").await;
    assert_eq!(
        stack.next_submit().await.pdu.short_message().as_ref(),
        b"default route"
    );

    // Audited by the token's name, the operator password never written.
    for action in [
        "connector.smpp.add",
        "connector.smpp.stop",
        "connector.smpp.start",
        "connector.smpp.update",
    ] {
        let audit = stack
            .engine
            .audit_log(Some(action), 10)
            .await
            .expect("audit");
        let line = audit
            .first()
            .unwrap_or_else(|| panic!("no audit line for {action}"));
        assert_eq!(
            (line.actor.as_str(), line.subject.as_str()),
            ("ops", "connector:opb")
        );
        assert!(!line.detail.contains("opsecret"), "{}", line.detail);
    }
}

#[tokio::test]
async fn connectors_come_back_after_a_restart_as_they_were_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite(&dir);
    let sims = CancellationToken::new();
    let _sims = sims.clone().drop_guard();
    let at_a = start_sim(&sims).await;
    let at_b = start_sim(&sims).await;
    let port_b = at_b.port;
    {
        let stack = Stack::start_on(&url, "", &at_a).await;
        let mut admin = admin(&stack, TOKEN).await;
        admin
            .add_smpp_connector(connector("opb", port_b, true))
            .await
            .expect("add opb");
        route_99_to(&mut admin, "opb").await;
        admin
            .add_smpp_connector(connector("spare", port_b, false))
            .await
            .expect("add spare, stopped");
        stack.shutdown.cancel();
    }
    // Let the first gateway's uplinks unbind before the second binds.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stack = Stack::start_on(&url, "", &at_a).await;
    let mut admin = admin(&stack, TOKEN).await;
    wait_bound(&mut admin, "opb").await;
    let spare = status(&mut admin, "spare").await;
    assert!(!spare.started && !spare.bound, "{spare:?}");
    let list = admin
        .list_connectors(pb::ListRequest {})
        .await
        .expect("list")
        .into_inner()
        .connectors;
    let cids: Vec<&str> = list.iter().map(|c| c.cid.as_str()).collect();
    assert_eq!(cids, ["op1", "opb", "spare"]);

    let mut client = connect_esme(&stack.shutdown, stack.smpp_port, "bank", "pw").await;
    accepted(&mut client, "99100", "after restart").await;
    assert_eq!(next_text(&at_b).await, "after restart");
}

#[tokio::test]
async fn connector_changes_are_refused_with_their_reason() {
    let stack = Stack::start("memory:", "").await;
    let sims = CancellationToken::new();
    let _sims = sims.clone().drop_guard();
    let at_b = start_sim(&sims).await;
    let port_b = at_b.port;

    // A bad token learns nothing, whether the connector exists or not.
    let mut intruder = admin(&stack, "wrong").await;
    for cid in ["op1", "nope"] {
        let r = pb::ConnectorRef { cid: cid.into() };
        let err = intruder
            .stop_connector(r.clone())
            .await
            .expect_err("refused");
        assert_eq!(
            (err.code(), err.message()),
            (Code::Unauthenticated, "unknown token"),
            "{cid}"
        );
        let err = intruder
            .remove_smpp_connector(r.clone())
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::Unauthenticated);
        let err = intruder.get_connector(r).await.expect_err("refused");
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    let err = intruder
        .add_smpp_connector(connector("opx", port_b, true))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut admin = admin(&stack, TOKEN).await;
    // A connector a route uses stays.
    let err = admin
        .remove_smpp_connector(pb::ConnectorRef { cid: "op1".into() })
        .await
        .expect_err("used by the default route");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("MT route 0"), "{}", err.message());
    assert!(stack.gateway.connector("op1").is_some_and(|c| c.is_bound()));

    // Bad parameters, each with what is wrong.
    let bad = |json: &str| pb::SmppConnector {
        config_json: json.into(),
        ..connector("opx", port_b, true)
    };
    for (c, says) in [
        (
            pb::SmppConnector {
                bind: "sideways".into(),
                ..connector("opx", port_b, true)
            },
            "sideways",
        ),
        (bad(r#"{"submit_throughput": -5.0}"#), "submit_throughput"),
        (bad(r#"{"window": "wide"}"#), "wide"),
        (bad(r#"{"no_such_option": 1}"#), "no_such_option"),
        (bad(r#"{"tls_ca_file": "/etc/ca.pem"}"#), "tls"),
        (connector("", port_b, true), "cid"),
        (
            pb::SmppConnector {
                password: "longer than eight".into(),
                ..connector("opx", port_b, true)
            },
            "password (max 8)",
        ),
    ] {
        let err = admin.add_smpp_connector(c).await.expect_err(says);
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{says}: {}",
            err.message()
        );
        assert!(err.message().contains(says), "{says}: {}", err.message());
    }
    let err = admin
        .add_smpp_connector(connector("op1", port_b, true))
        .await
        .expect_err("exists");
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = admin
        .update_smpp_connector(pb::SmppConnectorUpdate {
            cid: "nope".into(),
            ..pb::SmppConnectorUpdate::default()
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let err = admin
        .update_smpp_connector(pb::SmppConnectorUpdate {
            cid: "op1".into(),
            bind: Some("sideways".into()),
            ..pb::SmppConnectorUpdate::default()
        })
        .await
        .expect_err("bad bind");
    assert_eq!(err.code(), Code::InvalidArgument);
    // None of that touched op1.
    let op1 = status(&mut admin, "op1").await;
    assert_eq!(op1.bind, "transceiver");
    assert_eq!(op1.counters.map(|c| c.cid), Some("op1".to_owned()));

    // Parts waiting for a connector keep it, even once no route names it any more.
    admin
        .add_smpp_connector(connector("opb", port_b, false))
        .await
        .expect("add stopped");
    route_99_to(&mut admin, "opb").await;
    let mut client = connect_esme(&stack.shutdown, stack.smpp_port, "bank", "pw").await;
    accepted(&mut client, "99100", "held").await;
    admin
        .remove_route(pb::RouteRef {
            table: pb::Table::Mt as i32,
            order: 10,
        })
        .await
        .expect("route removed");
    let err = admin
        .remove_smpp_connector(pb::ConnectorRef { cid: "opb".into() })
        .await
        .expect_err("a part waits");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("queued"), "{}", err.message());
    admin
        .start_connector(pb::ConnectorRef { cid: "opb".into() })
        .await
        .expect("start");
    assert_eq!(next_text(&at_b).await, "held");
    let deadline = tokio::time::Instant::now() + WAIT;
    while status(&mut admin, "opb").await.pending > 0 {
        assert!(tokio::time::Instant::now() < deadline, "drained in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin
        .remove_smpp_connector(pb::ConnectorRef { cid: "opb".into() })
        .await
        .expect("removed once drained");
    assert!(stack.gateway.connector("opb").is_none());
    assert!(!stack.gateway.is_started("opb"));
    let err = admin
        .get_connector(pb::ConnectorRef { cid: "opb".into() })
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
}

/// An HTTP connector added live takes MO messages routed to it; edited live, the next
/// MO goes to its new url with its new method; a bad url or method, or an edit of a
/// connector that does not exist, is refused.
#[tokio::test]
async fn an_http_connector_is_added_routed_to_and_edited_live() {
    let stack = Stack::start("memory:", "").await;
    let mut admin = admin(&stack, TOKEN).await;
    let hooks = CancellationToken::new();
    let _hooks = hooks.clone().drop_guard();
    let hook = common::Hook::start(&hooks).await;

    admin
        .add_http_connector(pb::HttpConnector {
            cid: "app".into(),
            url: format!("{}/first", hook.base),
            method: "GET".into(),
        })
        .await
        .expect("add");
    admin
        .add_route(pb::Route {
            table: pb::Table::Mo as i32,
            order: 0,
            r#type: "DefaultRoute".into(),
            connectors: vec!["http(app)".into()],
            filters: vec![],
            rate: None,
        })
        .await
        .expect("MO route");
    let mo = |text: &str| smpp_testkit::pdu::mo("255700000001", "7777", 0, 0, text.into());
    let status = stack.sim.deliver("op1", mo("one")).await;
    assert_eq!(status, CommandStatus::EsmeRok);
    let first = hook.wait_for("/first").await;
    assert_eq!(
        (first.method.as_str(), first.param("content").as_deref()),
        ("GET", Some("one"))
    );

    let updated = admin
        .update_http_connector(pb::HttpConnector {
            cid: "app".into(),
            url: format!("{}/second", hook.base),
            method: "post".into(),
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.method, "POST");
    let status = stack.sim.deliver("op1", mo("two")).await;
    assert_eq!(status, CommandStatus::EsmeRok);
    let second = hook.wait_for("/second").await;
    assert_eq!(
        (second.method.as_str(), second.param("content").as_deref()),
        ("POST", Some("two"))
    );
    assert_eq!(
        hook.seen().iter().filter(|c| c.path == "/first").count(),
        1,
        "the old url got nothing more"
    );

    for (cid, url, method, code) in [
        ("nope", "http://127.0.0.1:1/x", "GET", Code::NotFound),
        ("app", "ftp://127.0.0.1/x", "GET", Code::InvalidArgument),
        ("app", "not a url", "GET", Code::InvalidArgument),
        ("app", "http://127.0.0.1:1/x", "PUT", Code::InvalidArgument),
    ] {
        let err = admin
            .update_http_connector(pb::HttpConnector {
                cid: cid.into(),
                url: url.into(),
                method: method.into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(err.code(), code, "{cid} {url} {method}: {err:?}");
    }
}
