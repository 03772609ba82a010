//! A running simulator, as tests hold it: [`Sim`] in the test's runtime, [`Operator`] in a
//! runtime of its own that a test can kill like a crashed SMSC; both keep a [`Record`]
//! of what reached them.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use smpp_core::{
    rusmpp::{CommandStatus, Pdu, pdus::DeliverSm},
    server::{Outbound, OutboundResult, SessionRegistry},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    sim::{ReceivedSubmit, SimConfig, SimStats, Simulator},
    wait::{WAIT, wait_for},
};

pub use crate::sim::{Arrival, Record};

impl Record {
    /// The submit after `read`, once it is there (within [`WAIT`]); moves `read` on.
    pub async fn next(&self, read: &AtomicUsize) -> ReceivedSubmit {
        let at = read.fetch_add(1, Ordering::Relaxed);
        wait_for("submit_sm at the operator", WAIT, || self.len() > at).await;
        self.with(|all| all[at].submit.clone())
    }
}

/// A simulator serving on a port of its own in the test's runtime, recording every
/// accepted submit_sm; it stops with `shutdown`. Clones share the record and what of it
/// was read (a stack restarted against the same operator reads on where it left off).
#[derive(Clone)]
pub struct Sim {
    pub port: u16,
    pub stats: Arc<SimStats>,
    pub registry: Arc<SessionRegistry>,
    pub submits: Record,
    read: Arc<AtomicUsize>,
}

impl Sim {
    pub async fn start(shutdown: &CancellationToken, config: SimConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
        Self::start_on(listener, shutdown, config)
    }

    pub fn start_on(
        listener: TcpListener,
        shutdown: &CancellationToken,
        config: SimConfig,
    ) -> Self {
        Self::start_with(listener, None, shutdown, config)
    }

    /// Serving TLS only, with `acceptor`'s certificate.
    pub async fn start_tls(
        shutdown: &CancellationToken,
        config: SimConfig,
        acceptor: tls::TlsAcceptor,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
        Self::start_with(listener, Some(acceptor), shutdown, config)
    }

    fn start_with(
        listener: TcpListener,
        acceptor: Option<tls::TlsAcceptor>,
        shutdown: &CancellationToken,
        config: SimConfig,
    ) -> Self {
        let port = listener.local_addr().expect("addr").port();
        let mut sim = Simulator::new(config);
        let submits = Record::new();
        sim.record_into(&submits);
        let stats = sim.stats();
        let registry = sim.registry();
        match acceptor {
            Some(acceptor) => tokio::spawn(sim.run_tls(listener, acceptor, shutdown.clone())),
            None => tokio::spawn(sim.run(listener, shutdown.clone())),
        };
        Self {
            port,
            stats,
            registry,
            submits,
            read: Arc::default(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The next submit_sm the operator accepted.
    pub async fn next_submit(&self) -> ReceivedSubmit {
        self.submits.next(&self.read).await
    }

    /// The submits not read yet, now; they count as read.
    pub fn take_unread(&self) -> Vec<ReceivedSubmit> {
        self.submits.with(|all| {
            let from = self.read.swap(all.len(), Ordering::Relaxed).min(all.len());
            all[from..].iter().map(|a| a.submit.clone()).collect()
        })
    }

    /// Nothing more reached the operator within a short while.
    pub async fn no_more_submits(&self) {
        self.no_more_submits_within(Duration::from_millis(200))
            .await;
    }

    /// Nothing more reached the operator within `window`.
    pub async fn no_more_submits_within(&self, window: Duration) {
        tokio::time::sleep(window).await;
        let unread = self.take_unread();
        assert!(unread.is_empty(), "unexpected submit_sm: {unread:?}");
    }

    /// Push a deliver_sm to the session bound as `system_id` and return its
    /// deliver_sm_resp status.
    pub async fn deliver(&self, system_id: &str, pdu: DeliverSm) -> CommandStatus {
        deliver(&self.registry, system_id, pdu).await
    }
}

/// Push `pdu` to the session bound as `system_id` on `registry`; its answer's status.
pub async fn deliver(registry: &SessionRegistry, system_id: &str, pdu: DeliverSm) -> CommandStatus {
    let (outbound, reply) = Outbound::with_reply(Pdu::DeliverSm(pdu));
    assert!(
        registry.deliver(system_id, outbound).is_ok(),
        "{system_id} is bound"
    );
    match tokio::time::timeout(WAIT, reply).await {
        Ok(Ok(OutboundResult::Answered(status))) => status,
        other => panic!("no deliver_sm_resp: {other:?}"),
    }
}

/// A simulator in a runtime of its own: killing it drops every socket at once, like a
/// crashed SMSC. What it accepted stays in `record`.
pub struct Operator {
    runtime: Option<tokio::runtime::Runtime>,
    pub record: Record,
    pub stats: Arc<SimStats>,
}

impl Operator {
    /// Serve on `addr` (retried while the port lingers from a previous operator),
    /// recording into a record of its own.
    pub fn start(addr: SocketAddr, config: SimConfig) -> Self {
        Self::start_into(addr, config, Record::new())
    }

    /// Serve on `addr`, recording into `record` (shared with earlier operators).
    pub fn start_into(addr: SocketAddr, config: SimConfig, record: Record) -> Self {
        Self::spawn(config, record, move || async move {
            loop {
                match TcpListener::bind(addr).await {
                    Ok(listener) => break Some(listener),
                    // The old process's port may linger a moment.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
    }

    /// Serve on a free port; returns it.
    pub fn start_free(config: SimConfig) -> (Self, u16) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let operator = Self::spawn(config, Record::new(), move || async move {
            TcpListener::from_std(listener).ok()
        });
        (operator, port)
    }

    fn spawn<F, Fut>(config: SimConfig, record: Record, listen: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Option<TcpListener>> + Send,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut sim = Simulator::new(config);
        sim.record_into(&record);
        let stats = sim.stats();
        runtime.spawn(async move {
            if let Some(listener) = listen().await {
                let _ = sim.run(listener, CancellationToken::new()).await;
            }
        });
        Self {
            runtime: Some(runtime),
            record,
            stats,
        }
    }

    /// Drop the runtime and every socket with it.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
