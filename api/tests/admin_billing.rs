//! The Billing service (`smsgw.billing.v1`) on the admin gRPC server: the same tokens,
//! the same engine the gateway charges through, the token's name as the ledger actor,
//! and listed by server reflection. Each token's role decides which RPCs it may call.

mod admin_support;

use admin_support::{CHARGING_TOKEN, READ_TOKEN, Stack, TOKEN, connect_esme};
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

fn denied(err: &Status, role: &str, rpc: &str) {
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains(&format!("role \"{role}\"")) && err.message().contains(rpc),
        "the refusal names the role and the call: {}",
        err.message()
    );
}

#[tokio::test]
async fn token_roles_decide_which_calls_are_allowed() {
    let stack = Stack::start("memory:", "").await;
    let mut admin = stack.admin(Some(TOKEN)).await;
    let account = admin
        .get_balance(pb::AccountRef { uid: "u1".into() })
        .await
        .expect("admin balance")
        .into_inner();
    let top_up = |reference: &str| bpb::TopUpRequest {
        account_id: account.account_id,
        amount_micros: 1,
        currency: account.currency.clone(),
        reference: reference.into(),
        ..bpb::TopUpRequest::default()
    };
    let commit = |reference: &str, operator_message_id: &str| bpb::CommitRequest {
        account_id: account.account_id,
        reference: reference.into(),
        operator_message_id: operator_message_id.into(),
    };
    let reserve = |reference: &str| bpb::ReserveRequest {
        account_id: account.account_id,
        reference: reference.into(),
        amount_micros: 10_000,
        currency: account.currency.clone(),
        message: Some(bpb::MessageMeta {
            user: "u1".into(),
            parts: 1,
            ..bpb::MessageMeta::default()
        }),
    };

    // read: looks, never touches.
    let mut read_admin = stack.admin(Some(READ_TOKEN)).await;
    let mut read_billing = billing(&stack, Some(READ_TOKEN)).await;
    read_admin
        .list_users(pb::ListRequest::default())
        .await
        .expect("read lists users");
    read_admin
        .get_balance(pb::AccountRef { uid: "u1".into() })
        .await
        .expect("read sees a balance");
    read_billing
        .balance(bpb::BalanceRequest {
            account_id: account.account_id,
        })
        .await
        .expect("read sees billing's balance");
    let err = read_admin
        .top_up(pb::TopUpRequest {
            uid: "u1".into(),
            amount: "5".into(),
            ..pb::TopUpRequest::default()
        })
        .await
        .expect_err("read cannot top up");
    denied(&err, "read", "smsgw.admin.v1.Admin/TopUp");
    let err = read_billing
        .top_up(top_up("read-top-up"))
        .await
        .expect_err("read cannot top up through billing either");
    denied(&err, "read", "smsgw.billing.v1.Billing/TopUp");
    let err = read_billing
        .reserve(reserve("read-1"))
        .await
        .expect_err("read cannot reserve");
    denied(&err, "read", "Billing/Reserve");

    // admin: everything but settlement.
    let mut admin_billing = billing(&stack, Some(TOKEN)).await;
    let err = admin_billing
        .reserve(reserve("admin-1"))
        .await
        .expect_err("admin cannot reserve");
    denied(&err, "admin", "smsgw.billing.v1.Billing/Reserve");
    assert!(err.message().contains("charging"), "{}", err.message());
    let err = admin_billing
        .commit(commit("admin-1", "x"))
        .await
        .expect_err("admin cannot commit");
    denied(&err, "admin", "Billing/Commit");

    // charging: the remote router's calls, nothing else.
    let mut router = billing(&stack, Some(CHARGING_TOKEN)).await;
    let reserved = router
        .reserve(reserve("router-1"))
        .await
        .expect("charging reserves")
        .into_inner();
    assert_eq!(reserved.amount_micros, 10_000);
    let settled = router
        .commit(commit("router-1", "op-1"))
        .await
        .expect("charging commits")
        .into_inner();
    assert_eq!(settled.settlement(), bpb::Settlement::Applied);
    router
        .reserve(reserve("router-2"))
        .await
        .expect("charging reserves again");
    let refunded = router
        .refund(bpb::RefundRequest {
            account_id: account.account_id,
            reference: "router-2".into(),
            final_status: "REJECTD".into(),
        })
        .await
        .expect("charging refunds")
        .into_inner();
    assert_eq!(refunded.settlement(), bpb::Settlement::Applied);
    let after = router
        .balance(bpb::BalanceRequest {
            account_id: account.account_id,
        })
        .await
        .expect("charging sees the balance")
        .into_inner();
    assert_eq!(after.reserved_micros, 0, "{after:?}");
    let mut router_admin = stack.admin(Some(CHARGING_TOKEN)).await;
    let err = router_admin
        .add_user(pb::User {
            uid: "u9".into(),
            username: "intruder".into(),
            password: "pw".into(),
            gid: "g1".into(),
            ..pb::User::default()
        })
        .await
        .expect_err("charging cannot add a user");
    denied(&err, "charging", "smsgw.admin.v1.Admin/AddUser");
    let err = router
        .top_up(top_up("router-top-up"))
        .await
        .expect_err("charging cannot top up");
    denied(&err, "charging", "Billing/TopUp");
    assert!(
        admin
            .list_users(pb::ListRequest::default())
            .await
            .expect("list")
            .into_inner()
            .users
            .iter()
            .all(|u| u.uid != "u9")
    );
}
