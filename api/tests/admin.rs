//! The admin API over real sockets: auth, live changes (a new user binds and sends at
//! once), validation with reasons, the audit log, and persistence across restarts.

mod admin_support;

use admin_support::{Stack, TOKEN, connect_esme};
use api::admin::Origin;
use proto::admin as pb;
use smpp_core::client::SubmitOutcome;
use tonic::Code;

fn new_user() -> pb::User {
    pb::User {
        uid: "u2".into(),
        username: "bank2".into(),
        password: "pw2".into(),
        gid: "g1".into(),
        balance: Some("5".into()),
        ..pb::User::default()
    }
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let stack = Stack::start("memory:", "").await;
    for token in [None, Some("wrong")] {
        let mut admin = stack.admin(token).await;
        let err = admin
            .list_users(pb::ListRequest {})
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}");
        let err = admin.add_user(new_user()).await.expect_err("refused");
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    let mut admin = stack.admin(Some(TOKEN)).await;
    let users = admin.list_users(pb::ListRequest {}).await.expect("list");
    let users = users.into_inner().users;
    assert_eq!(users.len(), 1);
    assert!(users[0].password.is_empty(), "passwords are never returned");
    assert!(!users[0].config_json.contains("\"pw\""));
}

#[tokio::test]
async fn an_added_user_binds_and_submits_at_once() {
    // SQLite: the memory store keeps no audit log to read back.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("smsgw.db").display());
    let mut stack = Stack::start(&url, "").await;
    let mut admin = stack.admin(Some(TOKEN)).await;
    let added = admin.add_user(new_user()).await.expect("add").into_inner();
    assert_eq!(added.uid, "u2");

    let mut client = connect_esme(&stack.shutdown, stack.smpp_port, "bank2", "pw2").await;
    let outcome = client.send_text("255700000001", b"hello").await;
    assert!(
        matches!(outcome, SubmitOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    let got = stack.next_submit().await;
    assert_eq!(got.pdu.short_message().as_ref(), b"hello");

    // Charged on the new user's own account, opened with its balance.
    let balance = admin
        .get_balance(pb::AccountRef { uid: "u2".into() })
        .await
        .expect("balance")
        .into_inner();
    assert_eq!(balance.currency, "EUR");
    assert_ne!(balance.available, "5.000000");

    // The change is in the audit log, by the token's name, without the password.
    let audit = stack
        .engine
        .audit_log(Some("user.add"), 10)
        .await
        .expect("audit");
    let line = audit.first().expect("an audit line for user.add");
    assert_eq!(line.actor, "ops");
    assert_eq!(line.subject, "user:u2");
    assert!(line.detail.contains("bank2"), "{}", line.detail);
    assert!(
        !line.detail.contains("pw2") && !line.detail.contains("argon2"),
        "{}",
        line.detail
    );

    // The Stats counters see what the new user sent.
    let stats = stack.gateway.user_counters("u2");
    assert!(stats.accepted.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn invalid_changes_are_refused_with_their_reason() {
    let stack = Stack::start("memory:", "").await;
    let mut admin = stack.admin(Some(TOKEN)).await;
    let route = pb::Route {
        table: pb::Table::Mt as i32,
        order: 10,
        r#type: "StaticMTRoute".into(),
        connectors: vec!["nowhere".into()],
        ..pb::Route::default()
    };
    let err = admin.add_route(route).await.expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("nowhere"), "{}", err.message());

    let filter = pb::Filter {
        fid: "bad".into(),
        r#type: "DestinationAddrFilter".into(),
        value: "([".into(),
    };
    let err = admin.add_filter(filter).await.expect_err("bad regex");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());

    let interceptor = pb::Interceptor {
        table: pb::Table::Mt as i32,
        order: 5,
        r#type: "StaticMTInterceptor".into(),
        filters: vec![],
        script: "let x = ;".into(),
    };
    let err = admin
        .add_interceptor(interceptor)
        .await
        .expect_err("bad script");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());

    // Nothing changed: still one route, listed in evaluation order.
    let routes = admin
        .list_routes(pb::RouteTable {
            table: pb::Table::Mt as i32,
        })
        .await
        .expect("list")
        .into_inner()
        .routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].connectors, vec!["op1".to_owned()]);
}

#[tokio::test]
async fn changes_survive_a_restart_and_the_file_does_not_override_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("smsgw.db").display());
    changes_survive_a_restart(&url).await;
}

/// The same on PostgreSQL (the store beside the ledger), in a fresh schema of the server
/// named by SMSGW_TEST_POSTGRES_URL; skipped, and says so, when it is unset.
#[tokio::test]
async fn on_postgresql_changes_survive_a_restart_and_the_file_does_not_override_them() {
    const PG_ENV: &str = "SMSGW_TEST_POSTGRES_URL";
    let Ok(base) = std::env::var(PG_ENV) else {
        eprintln!("skipped: {PG_ENV} not set");
        return;
    };
    let schema = format!("admin_{}", uuid::Uuid::new_v4().simple());
    let server = sqlx::PgPool::connect(&base)
        .await
        .expect("reach PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&server)
        .await
        .expect("schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    changes_survive_a_restart(&format!("{base}{sep}options[search_path]={schema}")).await;
    // Clean-up only: the stopped gateway's background writers may still hold locks in
    // the schema (a DROP then deadlocks with them); a leftover schema harms nothing.
    if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&server)
        .await
    {
        eprintln!("schema {schema} left behind: {error}");
    }
}

async fn changes_survive_a_restart(url: &str) {
    let url = url.to_owned();
    // One operator for both runs: the stored connector keeps its port.
    let sim_stop = tokio_util::sync::CancellationToken::new();
    let _stop = sim_stop.clone().drop_guard();
    let sim = admin_support::start_sim(&sim_stop).await;
    {
        let stack = Stack::start_on(&url, "", &sim).await;
        assert_eq!(stack.origin, Origin::Seeded);
        let mut admin = stack.admin(Some(TOKEN)).await;
        admin.add_user(new_user()).await.expect("add");
        stack.shutdown.cancel();
    }
    // The file now differs (a user u9 the store never saw): reported, not applied.
    let extra = "[[users]]\nuid = \"u9\"\nusername = \"nine\"\npassword = \"pw\"\ngid = \"g1\"\n";
    let mut stack = Stack::start_on(&url, extra, &sim).await;
    assert_eq!(stack.origin, Origin::StoredFileDiffers);
    let mut admin = stack.admin(Some(TOKEN)).await;
    let users = admin
        .list_users(pb::ListRequest {})
        .await
        .expect("list")
        .into_inner()
        .users;
    let uids: Vec<&str> = users.iter().map(|u| u.uid.as_str()).collect();
    assert!(uids.contains(&"u2"), "{uids:?}");
    assert!(!uids.contains(&"u9"), "{uids:?}");
    let mut client = connect_esme(&stack.shutdown, stack.smpp_port, "bank2", "pw2").await;
    let outcome = client.send_text("255700000002", b"after restart").await;
    assert!(
        matches!(outcome, SubmitOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        stack.next_submit().await.pdu.short_message().as_ref(),
        b"after restart"
    );
}

#[tokio::test]
async fn disabling_a_user_unbinds_its_sessions() {
    let mut stack = Stack::start("memory:", "").await;
    let mut admin = stack.admin(Some(TOKEN)).await;
    admin.add_user(new_user()).await.expect("add");
    let mut client = connect_esme(&stack.shutdown, stack.smpp_port, "bank2", "pw2").await;
    let outcome = client.send_text("255700000001", b"before").await;
    assert!(
        matches!(outcome, SubmitOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    stack.next_submit().await;
    let bound = |stack: &Stack| {
        stack
            .gateway
            .registry()
            .bound_sessions()
            .iter()
            .filter(|s| &*s.system_id == "bank2")
            .count()
    };
    assert_eq!(bound(&stack), 1);

    admin
        .disable_user(pb::UserRef { uid: "u2".into() })
        .await
        .expect("disable");
    admin_support::wait_until(|| bound(&stack) == 0).await;
    // Other users keep their sessions; the disabled one cannot bind again.
    assert!(!stack.gateway.snapshot().directory.may_bind("bank2"));
}

/// A whole-configuration apply is made against the diff the admin saw: a change that
/// lands in between makes it ABORTED instead of being overwritten. The kept password
/// still binds after an apply.
#[tokio::test]
async fn an_apply_does_not_overwrite_a_change_made_after_its_diff() {
    let stack = Stack::start("memory:", "").await;
    let mut admin = stack.admin(Some(TOKEN)).await;
    let exported = admin
        .export_config(pb::ListRequest {})
        .await
        .expect("export")
        .into_inner();
    let mut document: serde_json::Value = serde_json::from_str(&exported.json).expect("json");
    document["groups"]
        .as_array_mut()
        .expect("groups")
        .push(serde_json::json!({"gid": "g9"}));
    strip_nulls(&mut document);
    let toml = toml::to_string(&document).expect("toml");
    let apply = |dry_run: bool, base: &str| pb::ApplyRequest {
        toml: toml.clone(),
        dry_run,
        base: base.to_owned(),
    };
    let preview = admin
        .apply_config(apply(true, ""))
        .await
        .expect("dry run")
        .into_inner();
    assert!(preview.changes && !preview.applied, "{preview:?}");
    assert!(preview.diff.contains("g9"), "{}", preview.diff);

    // Another admin adds a group meanwhile.
    admin
        .add_group(pb::Group {
            gid: "g5".into(),
            enabled: Some(true),
        })
        .await
        .expect("add group");
    let err = admin
        .apply_config(apply(false, &preview.base))
        .await
        .expect_err("stale diff");
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    let groups = admin
        .list_groups(pb::ListRequest {})
        .await
        .expect("groups")
        .into_inner();
    assert!(
        groups.groups.iter().any(|g| g.gid == "g5"),
        "not overwritten"
    );

    // Against the new diff it applies (g5 goes, as the document says), and the
    // redacted password of bank is the one kept.
    let fresh = admin
        .apply_config(apply(true, ""))
        .await
        .expect("dry run")
        .into_inner();
    let done = admin
        .apply_config(apply(false, &fresh.base))
        .await
        .expect("apply")
        .into_inner();
    assert!(done.applied);
    let mut client = connect_esme(&stack.shutdown, stack.smpp_port, "bank", "pw").await;
    let outcome = client.send_text("255700000001", b"after apply").await;
    assert!(
        matches!(outcome, SubmitOutcome::Accepted { .. }),
        "{outcome:?}"
    );
}

fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
