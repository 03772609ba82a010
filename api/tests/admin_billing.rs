//! The Billing service (`smsgw.billing.v1`) on the admin gRPC server: the same tokens,
//! the same engine the gateway charges through, the token's name as the ledger actor,
//! and listed by server reflection.

mod admin_support;

use admin_support::{Stack, TOKEN, connect_esme};
use futures_util::StreamExt;
use proto::{admin as pb, billing as bpb};
use smpp_core::client::SubmitOutcome;
use tonic::{Code, Request, Status, service::interceptor::InterceptedService, transport::Channel};

type Billing = bpb::billing_client::BillingClient<
    InterceptedService<Channel, Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>>,
>;

async fn billing(stack: &Stack, token: Option<&str>) -> Billing {
    let header: Option<tonic::metadata::MetadataValue<_>> =
        token.map(|t| format!("Bearer {t}").parse().expect("ascii"));
    bpb::billing_client::BillingClient::with_interceptor(
        stack.channel().await,
        Box::new(move |mut r: Request<()>| {
            if let Some(h) = &header {
                r.metadata_mut().insert("authorization", h.clone());
            }
            Ok(r)
        }) as Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>,
    )
}

#[tokio::test]
async fn balance_top_up_and_rate_over_grpc_behind_the_admin_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("smsgw.db").display());
    let mut stack = Stack::start(&url, "").await;
    let mut admin = stack.admin(Some(TOKEN)).await;
    let account = admin
        .get_balance(pb::AccountRef { uid: "u1".into() })
        .await
        .expect("admin balance")
        .into_inner();

    // No token, or a wrong one: refused, whatever the account.
    for token in [None, Some("wrong")] {
        let mut b = billing(&stack, token).await;
        for account_id in [account.account_id, 987_654] {
            let err = b
                .balance(bpb::BalanceRequest { account_id })
                .await
                .expect_err("refused");
            assert_eq!(err.code(), Code::Unauthenticated, "{token:?}");
        }
        let err = b
            .top_up(bpb::TopUpRequest {
                account_id: account.account_id,
                amount_micros: 1,
                currency: account.currency.clone(),
                reference: "nope".into(),
                ..bpb::TopUpRequest::default()
            })
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::Unauthenticated);
    }

    let mut b = billing(&stack, Some(TOKEN)).await;
    let before = b
        .balance(bpb::BalanceRequest {
            account_id: account.account_id,
        })
        .await
        .expect("balance")
        .into_inner();
    assert_eq!(before.currency, "EUR");
    let topped = b
        .top_up(bpb::TopUpRequest {
            account_id: account.account_id,
            amount_micros: 2_500_000,
            currency: "EUR".into(),
            reference: "payment-1".into(),
            // Claimed, not believed: the token's name is the actor.
            actor: "mallory".into(),
            reason: "grpc test".into(),
            ..bpb::TopUpRequest::default()
        })
        .await
        .expect("top up")
        .into_inner();
    assert_eq!(topped.balance_micros, before.balance_micros + 2_500_000);
    assert!(!topped.duplicate);
    let audit = stack
        .engine
        .audit_log(Some("balance.top_up"), 10)
        .await
        .expect("audit");
    let line = audit.first().expect("an audit line for the top-up");
    assert_eq!(line.actor, "ops");
    assert!(line.detail.contains("payment-1"), "{}", line.detail);

    // The gateway charges the same engine: a message sent now shows in the balance.
    let mut client = connect_esme(&stack.shutdown, stack.smpp_port, "bank", "pw").await;
    let outcome = client.send_text("255700000001", b"charged").await;
    assert!(
        matches!(outcome, SubmitOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    stack.next_submit().await;
    let after = b
        .balance(bpb::BalanceRequest {
            account_id: account.account_id,
        })
        .await
        .expect("balance")
        .into_inner();
    // Reserved or already committed, the part costs the route's 0.01 EUR of what is
    // available.
    assert_eq!(
        after.available_micros,
        before.available_micros + 2_500_000 - 10_000,
        "{after:?}"
    );

    let rate = b
        .rate(bpb::RateRequest {
            account_id: account.account_id,
            destination: "255700000001".into(),
            route_rate_micros: 10_000,
            parts: 3,
            ..bpb::RateRequest::default()
        })
        .await
        .expect("rate")
        .into_inner();
    assert_eq!(
        (rate.price_per_part_micros, rate.total_micros),
        (10_000, 30_000)
    );
    assert_eq!(rate.source, "route");
    let err = b
        .balance(bpb::BalanceRequest {
            account_id: 987_654,
        })
        .await
        .expect_err("no such account");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_billing_beside_admin_and_stats() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let stack = Stack::start("memory:", "").await;
    let mut reflection = ServerReflectionClient::new(stack.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = replies.next().await.expect("one reply").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("not a service list: {reply:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        "smsgw.admin.v1.Admin",
        "smsgw.admin.v1.Stats",
        "smsgw.billing.v1.Billing",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&service), "{service} in {names:?}");
    }
}
