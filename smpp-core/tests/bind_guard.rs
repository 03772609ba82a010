//! The bind lockout over real sockets: attempts are counted before the password is
//! verified, so a burst of parallel guesses cannot all reach the authenticator.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::*;
use smpp_core::{
    BindKind,
    rusmpp::CommandStatus,
    server::{
        Authenticator, BindGrant, BindRequest, GuardConfig, Request, RequestHandler, Response,
        Server, ServerConfig, SessionInfo, SessionRegistry,
    },
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Slow like a password hash, and counts how often it is asked.
#[derive(Default)]
struct SlowAuth {
    verified: AtomicUsize,
}

impl Authenticator for SlowAuth {
    async fn authenticate(&self, request: &BindRequest) -> Result<BindGrant, CommandStatus> {
        self.verified.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if request.password == "secret" {
            Ok(BindGrant {
                system_id: request.system_id.as_str().into(),
                max_sessions: None,
                submit_rate: None,
            })
        } else {
            Err(CommandStatus::EsmeRinvpaswd)
        }
    }
}

impl RequestHandler for SlowAuth {
    async fn handle(&self, _session: &Arc<SessionInfo>, _request: Request) -> Response {
        Response::Error(CommandStatus::EsmeRsyserr)
    }
}

/// Failed binds answered after 1 ms, so the tests do not wait on the growing delay.
fn quick() -> GuardConfig {
    GuardConfig {
        failure_delay: Duration::from_millis(1),
        ..GuardConfig::default()
    }
}

async fn start(guard: GuardConfig) -> (std::net::SocketAddr, Arc<SlowAuth>, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let auth = Arc::new(SlowAuth::default());
    let server = Server::new(
        ServerConfig {
            guard,
            ..ServerConfig::default()
        },
        auth.clone(),
        auth.clone(),
        SessionRegistry::new(),
    );
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move { server.serve(listener, token).await });
    (addr, auth, shutdown)
}

async fn bind_status(addr: std::net::SocketAddr, system_id: &str, password: &str) -> CommandStatus {
    let mut esme = RawEsme::connect(addr).await;
    esme.bind(BindKind::Transceiver, system_id, password).await
}

#[tokio::test]
async fn parallel_guesses_are_not_all_verified() {
    let (addr, auth, shutdown) = start(GuardConfig {
        max_bind_failures: 3,
        ..quick()
    })
    .await;
    let guesses: Vec<_> = (0..20)
        .map(|_| tokio::spawn(bind_status(addr, "bank", "guess")))
        .collect();
    let mut refused = 0;
    for guess in guesses {
        let status = guess.await.unwrap();
        assert_ne!(
            status,
            CommandStatus::EsmeRok,
            "a bind got through the lockout"
        );
        if status == CommandStatus::EsmeRbindfail {
            refused += 1;
        }
    }
    // All 20 overlap the 300 ms verification; only the first 3 may reach it.
    assert_eq!(auth.verified.load(Ordering::SeqCst), 3);
    assert_eq!(refused, 17);
    // Locked out: even the right password is refused unverified.
    assert_eq!(
        bind_status(addr, "bank", "secret").await,
        CommandStatus::EsmeRbindfail
    );
    assert_eq!(auth.verified.load(Ordering::SeqCst), 3);
    shutdown.cancel();
}

#[tokio::test]
async fn a_successful_bind_clears_its_counted_attempt() {
    let (addr, auth, shutdown) = start(GuardConfig {
        max_bind_failures: 2,
        ..quick()
    })
    .await;
    // More good binds one after another than the failure limit: none is locked out.
    for _ in 0..4 {
        assert_eq!(
            bind_status(addr, "bank", "secret").await,
            CommandStatus::EsmeRok
        );
    }
    assert_eq!(auth.verified.load(Ordering::SeqCst), 4);
    shutdown.cancel();
}

#[tokio::test]
async fn an_address_cycling_system_ids_is_locked_out() {
    let (addr, auth, shutdown) = start(GuardConfig {
        max_bind_failures_per_ip: 4,
        ..quick()
    })
    .await;
    for n in 0..4 {
        assert_eq!(
            bind_status(addr, &format!("guess{n}"), "x").await,
            CommandStatus::EsmeRinvpaswd
        );
    }
    assert_eq!(
        bind_status(addr, "bank", "secret").await,
        CommandStatus::EsmeRbindfail
    );
    assert_eq!(auth.verified.load(Ordering::SeqCst), 4);
    shutdown.cancel();
}

#[tokio::test]
async fn many_good_binds_at_once_all_get_in() {
    let (addr, auth, shutdown) = start(GuardConfig {
        max_bind_failures: 3,
        ..quick()
    })
    .await;
    // A client opening twelve binds at once, more than the failure limit: the ones
    // beyond it wait for those being verified instead of being refused.
    let binds: Vec<_> = (0..12)
        .map(|_| tokio::spawn(bind_status(addr, "bank", "secret")))
        .collect();
    for bind in binds {
        assert_eq!(bind.await.unwrap(), CommandStatus::EsmeRok);
    }
    assert_eq!(auth.verified.load(Ordering::SeqCst), 12);
    shutdown.cancel();
}
