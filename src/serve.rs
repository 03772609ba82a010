//! `smsgw serve`: start the pipeline, replay the journal, listen, and drain on SIGTERM.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use billing::{EngineCharging, UserAccount};
use journal::{Durability, Journal, JournalConfig};
use router::{
    Deps, Gateway, RouterConfig,
    durable::{self, LogJournal},
    journaling::NoJournal,
};
use smpp_core::server::{Server, SessionRegistry};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{admin_serve, config::Config, config_audit, health::GatewayHealth, sink};

pub async fn run(config_path: Option<PathBuf>, sink_mode: bool) -> anyhow::Result<()> {
    let loaded = Config::load(config_path.as_deref())?;
    let config = &loaded.config;
    let drain_timeout = Duration::from_secs(config.shutdown.drain_timeout_secs);
    let server_config = config.smpp.server_config(drain_timeout);

    // Clients are stopped first; uplinks only once what clients were promised has drained.
    let clients_stop = CancellationToken::new();
    let uplinks_stop = CancellationToken::new();
    // Both handlers are in place before any listener opens: whoever sees a port answer
    // may signal the process without meeting the signals' default actions.
    spawn_signal_handler(clients_stop.clone());
    let hangup = Hangup::install();

    let listener = TcpListener::bind(config.smpp.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.smpp.listen))?;
    let registry = SessionRegistry::new();

    if sink_mode {
        warn!("sink mode: every submit_sm is acknowledged and discarded");
        let handler = Arc::new(sink::Sink);
        let server = Server::new(server_config, handler.clone(), handler, registry);
        server.serve(listener, clients_stop).await?;
        return Ok(());
    }

    let router_config = RouterConfig::from_smsgw_toml(&loaded.text, &loaded.base_dir)
        .context("invalid [router] configuration")?;
    // After the first start the store, not the file, holds the router configuration.
    let (config_store, router_config) =
        admin_serve::load_router_config(config, &loaded.base_dir, router_config).await?;
    let admin_config = router_config.clone();
    let durability: Durability = config
        .durability
        .mode
        .parse()
        .map_err(anyhow::Error::msg)
        .context("[durability] mode")?;
    let journal_dir = loaded.base_dir.join(&config.durability.dir);
    // The log takes new records at once; what it already holds is replayed on a thread
    // of its own and restored while clients bind (a large journal does not delay them).
    let journal_config = JournalConfig {
        sync_gap: Duration::from_micros(config.durability.fsync_gap_us),
        ..JournalConfig::new(&journal_dir, durability)
    };
    let (log, replay) = Journal::open_replaying(journal_config)
        .with_context(|| format!("cannot open the journal in {}", journal_dir.display()))?;
    let journal: Arc<dyn router::journaling::Journal> = match durability {
        Durability::Memory => Arc::new(NoJournal),
        _ => Arc::new(LogJournal::new(log.clone())),
    };
    info!(mode = ?durability, dir = %journal_dir.display(), "journal open");

    // Billing: the ledger and CDR store, one account per router user. Without it
    // (`billing = false`) the same engine keeps balances and quotas in memory only.
    let directory = router::Snapshot::build(&router_config, &|_| true)
        .context("invalid [router] configuration")?;
    let users = directory.directory.by_uid.values().map(|user| UserAccount {
        uid: user.uid.to_string(),
        balance: user.balance,
        sms_count: user.sms_count,
    });
    let storage_url = if config.storage.billing {
        resolve_storage_url(&config.storage.url, &loaded.base_dir)?
    } else {
        warn!("[storage] billing = false: balances are kept in memory only, no ledger or CDR");
        "memory:".to_owned()
    };
    let engine = billing::BillingEngine::open(billing::BillingConfig {
        url: storage_url.clone(),
        // The journal knows which reservations belong to messages it will send again.
        recovery: billing::RecoveryPolicy::KeepOpen,
        buffer_capacity: config.storage.buffer_capacity,
        flush_interval_ms: config.storage.flush_interval_ms,
        batch_max: config.storage.batch_max.max(1),
        ..billing::BillingConfig::default()
    })
    .await
    .with_context(|| format!("cannot open the billing store {storage_url}"))?;
    let charging = Arc::new(
        EngineCharging::attach(engine.clone(), users, &config.storage.currency)
            .await
            .context("cannot attach the users' billing accounts")?,
    );
    let billing = config.storage.billing.then(|| engine.clone());
    if let Some(engine) = &billing {
        match config_audit::record(
            engine,
            config_path.as_deref(),
            &loaded.text,
            &loaded.base_dir,
            &journal_dir,
        )
        .await
        {
            Ok(event) => info!(detail = %event.detail, "configuration recorded in the audit log"),
            Err(error) => warn!(%error, "could not record the configuration in the audit log"),
        }
    }

    let handle = Gateway::start(
        router_config,
        registry.clone(),
        uplinks_stop.clone(),
        Deps {
            journal: Some(journal.clone()),
            charging: Some(charging.clone()),
            replay_pending: true,
            ..Deps::default()
        },
    )
    .context("cannot start the pipeline")?;
    let gateway = handle.gateway.clone();
    if let Some(engine) = &billing {
        spawn_health_audit(gateway.health_events(), engine.clone());
    }
    let http_stop = CancellationToken::new();
    // REST v1 keeps its tables beside billing's (an in-memory SQLite without one). It
    // starts before the replay, which hands it the records only the journal holds.
    let v1 = if config.http.enabled {
        let v1_db = api::v1::Db::open(&storage_url)
            .await
            .context("cannot open the REST API v1 store")?;
        let v1 = api::v1::V1::new(
            gateway.clone(),
            v1_db,
            api::v1::V1Config {
                default_rate: config.http.api_key_rate,
                currency: config.storage.currency.clone(),
                // Resume tokens outlive a restart when the journal is on disk.
                events_dir: (durability != Durability::Memory)
                    .then(|| journal_dir.join("dlr-events")),
                ..api::v1::V1Config::default()
            },
        );
        v1.spawn_tasks(http_stop.clone());
        Some(v1)
    } else {
        None
    };
    let restoring = spawn_restore(
        replay,
        gateway.clone(),
        charging.clone(),
        clients_stop.clone(),
    );

    let http = if let Some(v1) = v1 {
        let listener = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("cannot listen on {} (HTTP)", config.http.listen))?;
        info!(listen = %config.http.listen, "HTTP listener: Jasmin HTTP/REST API, /health/*, /metrics");
        let health = GatewayHealth {
            draining: clients_stop.clone(),
            billing: billing.clone(),
            journal: log.clone(),
            gateway: gateway.clone(),
        };
        let metrics = api::metrics::Metrics::new(api::metrics::Sources {
            gateway: gateway.clone(),
            journal: Some(log.clone()),
            billing: Some(engine.clone()),
        });
        let routes = api::router(Arc::new(health))
            .merge(api::jasmin::routes(gateway.clone()))
            .merge(api::v1::routes(v1))
            .merge(metrics.routes());
        Some(tokio::spawn(api::serve(
            listener,
            metrics.instrument(routes),
            http_stop.clone(),
        )))
    } else {
        None
    };

    let admin = admin_serve::spawn(
        &config.admin,
        &loaded.base_dir,
        admin_serve::Parts {
            gateway: gateway.clone(),
            charging: charging.clone(),
            store: config_store,
            current: admin_config,
        },
        &hangup,
        http_stop.clone(),
    )
    .await?;

    let server = Arc::new(Server::new(
        server_config,
        handle.smpp.clone(),
        handle.smpp.clone(),
        registry,
    ));
    let mut servers = Vec::new();
    if let (Some(tls_listen), Some(tls)) = (config.smpp.tls_listen, &config.tls) {
        let config_cert = loaded.base_dir.join(&tls.cert);
        let tls = tls::ServerTls::load(tls::CertFiles {
            cert: config_cert.clone(),
            key: loaded.base_dir.join(&tls.key),
        })
        .context("cannot load the TLS certificate")?;
        hangup.reload_on_sighup(&tls, config_cert.display().to_string(), billing.clone());
        let tls_listener = TcpListener::bind(tls_listen)
            .await
            .with_context(|| format!("cannot listen on {tls_listen}"))?;
        let server = server.clone();
        let stop = clients_stop.clone();
        servers.push(tokio::spawn(async move {
            server.serve_tls(tls_listener, tls.acceptor, stop).await
        }));
    } else if config.smpp.tls_listen.is_some() {
        anyhow::bail!("[smpp] tls_listen needs a [tls] section with cert and key");
    }
    {
        let server = server.clone();
        let stop = clients_stop.clone();
        servers.push(tokio::spawn(
            async move { server.serve(listener, stop).await },
        ));
    }
    for served in servers {
        served.await??;
    }
    restoring
        .await
        .context("the journal's restore task failed")??;

    // Every client session has answered what it had and unbound. Let the uplinks send
    // what is queued, then stop them; what is still unsent stays in the journal.
    let deadline = Instant::now() + drain_timeout;
    while gateway.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = gateway.in_flight();
    if left > 0 {
        warn!(
            left,
            "drain timeout: unsent messages stay in the journal for the next start"
        );
    }
    uplinks_stop.cancel();
    for task in handle.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if let Err(error) = log.flush().await {
        warn!(%error, "journal flush failed");
    }
    if let Some(engine) = &billing
        && let Err(error) = engine.flush().await
    {
        warn!(%error, "billing flush failed");
    }
    drop(journal);
    http_stop.cancel();
    if let Some(http) = http {
        let _ = http.await;
    }
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    info!("stopped");
    Ok(())
}

/// The journal's replay, restored into the running gateway: its messages go back to the
/// front of their queues, receipt waits get their mapping back (receipts that arrive
/// meanwhile wait), and billing settles what the last run left open. The reservations
/// are taken now, before any client can submit, so a reservation of this run is never
/// settled as a leftover. Without its replay the gateway must not run: a failure stops
/// the clients and `serve` returns it.
fn spawn_restore(
    replay: journal::Replay,
    gateway: Arc<Gateway>,
    charging: Arc<EngineCharging>,
    clients_stop: CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let leftovers = charging.leftover_reservations();
    tokio::spawn(async move {
        let started = Instant::now();
        let read = tokio::task::spawn_blocking(move || replay.wait()).await;
        let records = match read {
            Ok(Ok(records)) => records,
            Ok(Err(error)) => {
                tracing::error!(%error, "journal replay failed: stopping");
                clients_stop.cancel();
                return Err(anyhow::Error::new(error).context("journal replay failed"));
            }
            Err(panic) => {
                clients_stop.cancel();
                return Err(anyhow::anyhow!("journal replay panicked: {panic}"));
            }
        };
        let open: std::collections::HashSet<String> =
            leftovers.iter().map(|r| r.reference.clone()).collect();
        // Decoded as restored: the records are not copied into a second list.
        let report = gateway
            .restore_with(records.iter().filter_map(durable::decode), |key| {
                open.contains(key)
            })
            .await;
        charging.settle_leftovers(leftovers, &gateway.open_charge_keys(), &report.submitted);
        info!(
            records = records.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "journal restored"
        );
        Ok(())
    })
}

/// First SIGINT/SIGTERM: graceful drain. Second: exit at once (the journal has what was
/// acknowledged).
/// The handlers are installed before this returns (not in the spawned task).
fn spawn_signal_handler(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            warn!(%error, "cannot install the SIGTERM handler");
            return;
        }
    };
    let mut interrupt =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
            Ok(interrupt) => interrupt,
            Err(error) => {
                warn!(%error, "cannot install the SIGINT handler");
                return;
            }
        };
    tokio::spawn(async move {
        for round in 0..2 {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = term.recv() => {}
            }
            if round == 0 {
                info!("shutting down: draining sessions (signal again to exit at once)");
                shutdown.cancel();
            } else {
                warn!("second signal: exiting now");
                std::process::exit(130);
            }
        }
    });
}

/// Least-cost routing: each change of a connector's health state (and each breaker
/// opening) is one audit line, `connector.health`.
fn spawn_health_audit(
    mut events: tokio::sync::broadcast::Receiver<router::lcr::Transition>,
    engine: billing::BillingEngine,
) {
    tokio::spawn(async move {
        loop {
            let t = match events.recv().await {
                Ok(t) => t,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "health changes missed by the audit log");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let event = billing::AuditEvent::new(
                "smsgw",
                "router health",
                "connector.health",
                format!("connector:{}", t.connector),
                format!("{} -> {}: {}", t.from, t.to, t.reason),
            );
            if let Err(error) = engine.record_audit(event).await {
                warn!(%error, "could not record a health change in the audit log");
            }
        }
    });
}

/// SIGHUP reloads the TLS certificates (the SMPP listener's, the admin listener's);
/// each attempt goes to the audit log. The handler is installed by [`Hangup::install`]
/// before any listener opens, so a gateway that answers on a port never dies of
/// SIGHUP's default action; certificates are registered as their listeners are set up.
#[derive(Clone)]
pub(crate) struct Hangup {
    certs: Arc<std::sync::Mutex<Vec<Reloadable>>>,
}

#[derive(Clone)]
struct Reloadable {
    cert: Arc<tls::ReloadableCert>,
    path: String,
    audit: Option<billing::BillingEngine>,
}

impl Hangup {
    /// Installs the SIGHUP handler now (synchronously), then waits for the signal.
    pub(crate) fn install() -> Self {
        let certs: Arc<std::sync::Mutex<Vec<Reloadable>>> = Arc::default();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hup) => {
                let certs = certs.clone();
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        let registered = certs
                            .lock()
                            .map(|certs| certs.clone())
                            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
                        if registered.is_empty() {
                            info!("SIGHUP: no TLS certificate to reload");
                        }
                        for cert in registered {
                            cert.reload().await;
                        }
                    }
                });
            }
            Err(error) => {
                warn!(%error, "cannot install the SIGHUP handler: certificates will not reload");
            }
        }
        Self { certs }
    }

    /// `tls`'s certificate (read from `cert_path`) reloads on each SIGHUP from now on.
    pub(crate) fn reload_on_sighup(
        &self,
        tls: &tls::ServerTls,
        cert_path: String,
        audit: Option<billing::BillingEngine>,
    ) {
        let cert = Reloadable {
            cert: tls.cert.clone(),
            path: cert_path,
            audit,
        };
        match self.certs.lock() {
            Ok(mut certs) => certs.push(cert),
            Err(poisoned) => poisoned.into_inner().push(cert),
        }
    }
}

impl Reloadable {
    async fn reload(&self) {
        let outcome = match self.cert.reload() {
            Ok(()) => {
                info!(cert = %self.path, "certificate reloaded");
                "reloaded".to_owned()
            }
            Err(error) => {
                warn!(%error, cert = %self.path, "certificate reload failed; the previous one stays in use");
                format!("failed, previous certificate kept: {error}")
            }
        };
        if let Some(engine) = &self.audit {
            let event = billing::AuditEvent::new(
                config_audit::system_user(),
                "signal SIGHUP",
                "tls.reload",
                self.path.clone(),
                outcome,
            );
            if let Err(error) = engine.record_audit(event).await {
                warn!(%error, "could not record the certificate reload in the audit log");
            }
        }
    }
}

pub fn storage_url(config_path: Option<&std::path::Path>) -> anyhow::Result<String> {
    let loaded = Config::load(config_path)?;
    resolve_storage_url(&loaded.config.storage.url, &loaded.base_dir)
}

/// `sqlite://` paths are relative to the config file; their directory is created.
pub(crate) fn resolve_storage_url(url: &str, base_dir: &std::path::Path) -> anyhow::Result<String> {
    let Some(path) = url.strip_prefix("sqlite://") else {
        return Ok(url.to_owned());
    };
    if path.starts_with(':') || path.is_empty() {
        return Ok(url.to_owned());
    }
    let path = base_dir.join(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(format!("sqlite://{}", path.display()))
}
