//! SMPP connectors changed live (the admin API): each uplink runs as its own task with
//! its own stop token, a child of the gateway's shutdown, so that one connector can be
//! added, stopped, started, reconfigured or removed while the others keep sending.
//!
//! The connector table is an `ArcSwap` that the message path reads without locks; this
//! module is its only writer. Callers serialise changes (the admin API holds one lock
//! around each), so two reconfigurations never interleave.
//!
//! Nothing accepted is lost on the way: a reconfigured connector keeps its queue, and a
//! stopped uplink hands back what it held (its window and retries come back NotSent and
//! go to the front of the queue) before the next one starts. A connector is removed only
//! when nothing is queued or in flight for it.

use std::{collections::HashMap, sync::Arc};

use parking_lot::Mutex;
use smpp_core::{client::Uplink, rusmpp::CommandStatus};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Connector, Gateway, smpp_front::UplinkSide, uplink_config};
use crate::{
    config::{ConfigError, RouterConfig},
    queue::QueueSource,
    snapshot::Snapshot,
};

/// The connector table: cid → connector.
pub(super) type Connectors = HashMap<Arc<str>, Arc<Connector>>;

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The uplink tasks that run now, by connector.
pub(super) struct Links {
    /// The gateway's shutdown: every uplink stops with it.
    shutdown: CancellationToken,
    running: Mutex<HashMap<Arc<str>, Running>>,
}

impl Links {
    pub(super) fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the gateway's shutdown, then for every uplink to finish (each unbinds
    /// and hands back what it held).
    pub(super) async fn join_at_shutdown(&self) {
        self.shutdown.cancelled().await;
        let all: Vec<Running> = self.running.lock().drain().map(|(_, r)| r).collect();
        for r in all {
            let _ = r.task.await;
        }
    }

    pub(super) fn is_running(&self, cid: &str) -> bool {
        self.running
            .lock()
            .get(cid)
            .is_some_and(|r| !r.task.is_finished())
    }
}

/// Why a live change of the connectors was refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "connector {cid} still has {pending} message part(s) queued or in flight: start it \
         so that they drain before removing it"
    )]
    Busy { cid: String, pending: usize },
}

/// What a reconfiguration did to the uplinks, by connector id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LinkChanges {
    pub added: Vec<String>,
    /// Options changed: the uplink was stopped and (if it is to run) started again.
    pub reconfigured: Vec<String>,
    pub removed: Vec<String>,
}

impl LinkChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.reconfigured.is_empty() && self.removed.is_empty()
    }
}

/// Each connector's options, and that no two share a cid: what must hold before a
/// configuration is stored.
pub fn check_connectors(config: &RouterConfig) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for c in &config.connectors {
        uplink_config(c)?;
        if !seen.insert(c.cid.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "connector {} defined twice",
                c.cid
            )));
        }
    }
    Ok(())
}

impl Gateway {
    /// Applies `config` live: connectors added, reconfigured, started, stopped or
    /// removed (only those that changed are touched), then users, routes and the rest
    /// (as [`Gateway::replace`]). A connector still named by a route or the LCR cost
    /// table, or with parts queued or in flight, cannot be removed.
    pub async fn reconfigure(
        self: &Arc<Self>,
        config: &RouterConfig,
    ) -> Result<LinkChanges, LinkError> {
        check_connectors(config)?;
        let wanted: HashMap<&str, &crate::config::ConnectorConfig> = config
            .connectors
            .iter()
            .map(|c| (c.cid.as_str(), c))
            .collect();
        // Validate everything before the first side effect. A cost naming a connector
        // that is not (or no longer) there is refused here.
        let snapshot = Snapshot::build(config, &|cid| wanted.contains_key(cid))?;
        let costs = super::lcr::cost_table(config)?;
        let thrower = self.thrower_for(&config.settings)?;
        let managed = |cid: &str| costs.connectors().any(|m| **m == *cid);
        let current = self.connectors.load_full();
        let gone: Vec<Arc<str>> = current
            .keys()
            .filter(|cid| !wanted.contains_key(&***cid))
            .cloned()
            .collect();
        for cid in &gone {
            let pending = self.pending_on(cid);
            if pending > 0 {
                return Err(LinkError::Busy {
                    cid: cid.to_string(),
                    pending,
                });
            }
        }

        let mut changes = LinkChanges::default();
        for c in &config.connectors {
            match current.get(c.cid.as_str()) {
                None => {
                    let cid: Arc<str> = Arc::from(c.cid.as_str());
                    let connector = Arc::new(Connector::new(
                        c.clone(),
                        self.lcr.health_settings(),
                        managed(&cid),
                    ));
                    self.connectors.rcu(|map| {
                        let mut map = Connectors::clone(map);
                        map.insert(cid.clone(), connector.clone());
                        map
                    });
                    if c.start {
                        self.start_uplink(&connector)?;
                    }
                    info!(connector = %cid, started = c.start, "connector added");
                    changes.added.push(c.cid.clone());
                }
                // Coming under least-cost routing (or leaving it) changes how its
                // uplink sends, so that restarts it too.
                Some(old) if old.config == *c && old.lcr_managed == managed(&old.cid) => {}
                Some(old) => {
                    // Stopped first: what the old uplink held goes back to the shared
                    // queue, which the new one then sends.
                    self.stop_uplink(&old.cid).await;
                    let connector = Arc::new(old.reconfigured(
                        c.clone(),
                        self.lcr.health_settings(),
                        managed(&old.cid),
                    ));
                    self.connectors.rcu(|map| {
                        let mut map = Connectors::clone(map);
                        map.insert(connector.cid.clone(), connector.clone());
                        map
                    });
                    if c.start {
                        self.start_uplink(&connector)?;
                    }
                    info!(connector = %connector.cid, started = c.start, queued = connector.queue.len(), "connector reconfigured");
                    changes.reconfigured.push(c.cid.clone());
                }
            }
        }
        self.lcr.costs.store(Arc::new(costs));
        self.apply_settings(config.settings.clone(), thrower);
        self.install(snapshot);
        for cid in gone {
            self.stop_uplink(&cid).await;
            let mut removed = None;
            self.connectors.rcu(|map| {
                let mut map = Connectors::clone(map);
                removed = map.remove(&cid);
                map
            });
            if let Some(connector) = removed {
                self.fail_leftovers(&connector);
            }
            info!(connector = %cid, "connector removed");
            changes.removed.push(cid.to_string());
        }
        Ok(changes)
    }

    /// Whether the connector's uplink task runs (bound or trying to bind).
    pub fn is_started(&self, cid: &str) -> bool {
        self.links.is_running(cid)
    }

    /// Parts accepted for `cid` and not finished: queued, sent and unanswered, or
    /// waiting to be requeued.
    pub fn pending_on(&self, cid: &str) -> usize {
        self.inflight
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .values()
                    .filter(|f| &*f.connector == cid)
                    .count()
            })
            .sum()
    }

    /// Starts the uplink of `connector` unless one runs already.
    pub(super) fn start_uplink(
        self: &Arc<Self>,
        connector: &Arc<Connector>,
    ) -> Result<(), ConfigError> {
        let mut running = self.links.running.lock();
        if running
            .get(&connector.cid)
            .is_some_and(|r| !r.task.is_finished())
        {
            return Ok(());
        }
        let mut settings = uplink_config(&connector.config)?;
        if connector.lcr_managed {
            // A message that gets no answer moves to the next operator at once.
            settings.hand_back_on_loss = true;
            settings.max_attempts = 1;
        }
        let handler = Arc::new(UplinkSide::new(self.clone(), connector.cid.clone()));
        let weak = Arc::downgrade(self);
        let source = QueueSource::new(
            connector.queue.clone(),
            Arc::new(move |tag| {
                if let Some(g) = weak.upgrade() {
                    g.expired(tag);
                }
            }),
        );
        let uplink = Uplink::with_stats(settings, source, handler, connector.stats.clone());
        let stop = self.links.shutdown.child_token();
        let task = tokio::spawn(uplink.run(stop.clone()));
        running.insert(connector.cid.clone(), Running { stop, task });
        Ok(())
    }

    /// Stops the uplink of `cid` and waits until it has unbound and handed back what it
    /// held. False when none ran.
    async fn stop_uplink(&self, cid: &str) -> bool {
        let Some(r) = self.links.running.lock().remove(cid) else {
            return false;
        };
        r.stop.cancel();
        if let Err(error) = r.task.await {
            warn!(connector = %cid, %error, "uplink task ended abnormally");
        }
        true
    }

    /// A part that reached a removed connector's queue in the instant of its removal
    /// (routed on the configuration before) fails, refunded, rather than waiting forever.
    fn fail_leftovers(&self, connector: &Connector) {
        for item in connector.queue.drain() {
            if let Some(f) = self.take(item.request.tag) {
                warn!(id = %f.message.id, connector = %connector.cid, "connector removed under a queued part: failed");
                self.fail(&f, u32::from(CommandStatus::EsmeRsyserr));
            }
        }
    }
}
