//! Password verification: every bind attempt costs one Argon2 verification (unknown
//! users too, so timing tells no usernames), run on the blocking pool so that binds never
//! stall the async runtime.

mod common;

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicU64, Ordering},
};

use common::start_gateway;
use futures_util::future::join_all;
use smpp_core::rusmpp::CommandStatus;
use smpp_testkit::raw::RawEsme;
use tokio_util::sync::CancellationToken;

/// Binds verified at once in the stall tests.
const PARALLEL_BINDS: usize = 8;

fn hashed() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| router::user::hash_password("s3cret").expect("hash"))
}

/// `bank` (hashed), `plain` (plain text), and `c0`… for the parallel binds (the bind
/// guard counts binds in flight per user as failures until they succeed).
fn config() -> String {
    let mut config = format!(
        r#"
[[groups]]
gid = "g1"
[[users]]
uid = "u1"
username = "bank"
password = '{}'
gid = "g1"
[[users]]
uid = "u2"
username = "plain"
password = "s3cret"
gid = "g1"
"#,
        hashed()
    );
    for i in 0..PARALLEL_BINDS {
        config.push_str(&format!(
            "[[users]]\nuid = \"c{i}\"\nusername = \"c{i}\"\npassword = '{}'\ngid = \"g1\"\n",
            hashed()
        ));
    }
    config
}

#[tokio::test]
async fn unknown_user_and_wrong_password_both_cost_a_verification() {
    let shutdown = CancellationToken::new();
    let (gw, port) = start_gateway(&shutdown, &config()).await;
    let count = || gw.snapshot().directory.verifications();
    let cases = [
        ("nobody", "s3cret", CommandStatus::EsmeRinvpaswd),
        ("bank", "wrong", CommandStatus::EsmeRinvpaswd),
        ("plain", "wrong", CommandStatus::EsmeRinvpaswd),
        ("bank", "s3cret", CommandStatus::EsmeRok),
        ("plain", "s3cret", CommandStatus::EsmeRok),
    ];
    for (user, password, expected) in cases {
        let before = count();
        let (_esme, status) = RawEsme::bind(port, user, password).await;
        assert_eq!(status, expected, "{user}/{password}");
        assert_eq!(count(), before + 1, "{user}/{password}: one verification");
    }
    // The HTTP entry goes the same way.
    let before = count();
    assert!(gw.authenticate("nobody", "x").await.is_err());
    assert_eq!(count(), before + 1);
    shutdown.cancel();
}

#[tokio::test]
async fn a_verified_password_is_remembered_and_a_wrong_one_never_is() {
    let shutdown = CancellationToken::new();
    let (gw, _port) = start_gateway(&shutdown, &config()).await;
    let count = || gw.snapshot().directory.verifications();
    assert!(gw.authenticate("bank", "s3cret").await.is_ok());
    let after_first = count();
    // An HTTP client sends its password with every request: no Argon2 each time.
    for _ in 0..5 {
        assert!(gw.authenticate("bank", "s3cret").await.is_ok());
    }
    assert_eq!(count(), after_first);
    // A wrong password still costs a full verification, every time.
    assert!(gw.authenticate("bank", "s3cre").await.is_err());
    assert!(gw.authenticate("bank", "s3cre").await.is_err());
    assert_eq!(count(), after_first + 2);
    shutdown.cancel();
}

#[tokio::test]
async fn requests_starting_together_verify_a_password_once() {
    let shutdown = CancellationToken::new();
    let (gw, _port) = start_gateway(&shutdown, &config()).await;
    let count = || gw.snapshot().directory.verifications();
    let before = count();
    let answers = join_all((0..16).map(|_| gw.authenticate("bank", "s3cret"))).await;
    assert!(answers.iter().all(Result::is_ok));
    assert_eq!(count(), before + 1);
    // Wrong guesses are never shared: each costs its own verification.
    let wrong = join_all((0..3).map(|_| gw.authenticate("bank", "guess"))).await;
    assert!(wrong.iter().all(Result::is_err));
    assert_eq!(count(), before + 4);
    shutdown.cancel();
}

/// Verifications awaited together on one thread: inline Argon2 would finish them all in
/// their first poll, before any other task ran.
#[tokio::test(flavor = "current_thread")]
async fn verification_yields_the_runtime() {
    let shutdown = CancellationToken::new();
    let (gw, _port) = start_gateway(&shutdown, &config()).await;
    let ticks = ticker(&shutdown);
    let seen = join_all((0..PARALLEL_BINDS).map(|_| {
        let (gw, ticks) = (gw.clone(), ticks.clone());
        async move {
            let user = gw.authenticate("bank", "s3cret").await;
            assert!(user.is_ok());
            ticks.load(Ordering::Relaxed)
        }
    }))
    .await;
    assert!(
        seen.iter().all(|t| *t > 0),
        "the ticker ran while passwords were verified: {seen:?}"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "current_thread")]
async fn parallel_binds_leave_the_runtime_free() {
    let shutdown = CancellationToken::new();
    let (_gw, port) = start_gateway(&shutdown, &config()).await;
    let ticks = ticker(&shutdown);
    let names: Vec<String> = (0..PARALLEL_BINDS).map(|i| format!("c{i}")).collect();
    let binds = join_all(names.iter().map(|name| RawEsme::bind(port, name, "s3cret"))).await;
    for (_esme, status) in &binds {
        assert_eq!(*status, CommandStatus::EsmeRok);
    }
    assert!(ticks.load(Ordering::Relaxed) > 0, "the ticker ran");
    shutdown.cancel();
}

/// A task that counts its turns on the runtime.
fn ticker(shutdown: &CancellationToken) -> Arc<AtomicU64> {
    let ticks = Arc::new(AtomicU64::new(0));
    let (count, stop) = (ticks.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    ticks
}
