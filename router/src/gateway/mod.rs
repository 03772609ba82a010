//! The gateway: everything that moves a message, one step of the path per file.
//!
//! - `mt`: a client's message, from credentials to its place in a connector's queue;
//! - `uplink`: what the operator answered to each submit_sm (commit, requeue, failover);
//! - `receipts`: the operator's delivery receipts, matched and reported;
//! - `delivery`: deliver_sm to bound clients (kept while they are away) and HTTP callbacks;
//! - `mo`: mobile-originated messages along the MO routes;
//! - `restore`: the journal's replay after a restart;
//! - `smpp_front`: the adapters that the SMPP server and the uplinks call.

mod connector;
mod delivery;
mod export;
mod mo;
mod mt;
mod ops;
mod query;
mod receipts;
mod restore;
mod smpp_front;
mod uplink;

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use proto::charging::{Charging, Unmetered};
use smpp_core::{client::Uplink, server::SessionRegistry, throttle::TokenBucket};
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use connector::{Connector, uplink_config};
pub use query::MessageStatus;
pub use restore::RestoreReport;
pub use smpp_front::SmppFront;

use crate::{
    callbacks::Thrower,
    config::{ConfigError, RouterConfig, Settings},
    idmap::{IdMap, MemoryIdMap},
    journaling::{Journal, NoJournal},
    model::Message,
    queue::{MemoryQueue, QueueSource},
    reassembly::MoReassembler,
    receipts::{MoEvent, MultipartState, PendingStore, ReceiptEvent},
    refusal::Refusal,
    snapshot::Snapshot,
    stats::{ConnectorCounters, UserCounters},
    user::User,
};

/// A part handed to an uplink and not yet finished.
struct InFlight {
    message: Arc<Message>,
    content: Bytes,
    esm_class: u8,
    registered_delivery: u8,
    part: usize,
    parts: usize,
    connector: Arc<str>,
    /// The failover route's connectors, to move to when this one goes down.
    alternatives: Option<Arc<[Arc<str>]>>,
    charge_key: String,
    requeues: u32,
    username: Arc<str>,
    multipart: Option<Arc<Mutex<MultipartState>>>,
    expires_at: Option<Instant>,
}

/// Replaceable implementations of the stateful parts; each defaults to the in-process one.
#[derive(Default)]
pub struct Deps {
    /// Billing. Without it every message is free and unlimited ([`Unmetered`]).
    pub charging: Option<Arc<dyn Charging>>,
    pub idmap: Option<Arc<dyn IdMap>>,
    pub journal: Option<Arc<dyn Journal>>,
}

/// Shards of the in-flight table: submit results and new submits rarely meet on a lock.
const INFLIGHT_SHARDS: usize = 32;

pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    settings: Settings,
    connectors: HashMap<Arc<str>, Arc<Connector>>,
    inflight: Vec<Mutex<HashMap<u64, InFlight>>>,
    next_tag: AtomicU64,
    charging: Arc<dyn Charging>,
    idmap: Arc<dyn IdMap>,
    journal: Arc<dyn Journal>,
    registry: Arc<SessionRegistry>,
    store: Arc<PendingStore>,
    reassembler: MoReassembler,
    thrower: Thrower,
    receipts_tx: broadcast::Sender<ReceiptEvent>,
    mo_tx: broadcast::Sender<MoEvent>,
    throttles: Mutex<HashMap<(Arc<str>, bool), TokenBucket>>,
    users: RwLock<HashMap<Arc<str>, Arc<UserCounters>>>,
    /// Final states of recent messages, for query_sm.
    recent: query::RecentStates,
}

/// What `Gateway::start` returns.
pub struct GatewayHandle {
    pub gateway: Arc<Gateway>,
    /// Authenticator + request handler for `smpp_core::server::Server`.
    pub smpp: Arc<SmppFront>,
    /// Uplinks and housekeeping; they end when the shutdown token is cancelled.
    pub tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// Build the pipeline, start the uplinks of connectors marked `start`, and the
    /// housekeeping task. Serve `handle.smpp` on a listener to accept client binds.
    pub fn start(
        config: RouterConfig,
        registry: Arc<SessionRegistry>,
        shutdown: CancellationToken,
        deps: Deps,
    ) -> Result<GatewayHandle, ConfigError> {
        let mut connectors = HashMap::new();
        for c in &config.connectors {
            uplink_config(c)?;
            let cid: Arc<str> = Arc::from(c.cid.as_str());
            let connector = Arc::new(Connector {
                cid: cid.clone(),
                config: c.clone(),
                queue: Arc::new(MemoryQueue::new(c.queue_capacity, c.queue_max_bytes)),
                stats: OnceLock::new(),
                counters: ConnectorCounters::default(),
            });
            if connectors.insert(cid, connector).is_some() {
                return Err(ConfigError::Invalid(format!(
                    "connector {} defined twice",
                    c.cid
                )));
            }
        }
        let snapshot = Snapshot::build(&config, &|cid| connectors.contains_key(cid))?;
        let s = &config.settings;
        let (receipts_tx, _) = broadcast::channel(4096);
        let gateway = Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            settings: s.clone(),
            connectors,
            inflight: (0..INFLIGHT_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            next_tag: AtomicU64::new(1),
            charging: deps.charging.unwrap_or_else(|| Arc::new(Unmetered)),
            idmap: deps.idmap.unwrap_or_else(|| Arc::new(MemoryIdMap::new())),
            journal: deps.journal.unwrap_or_else(|| Arc::new(NoJournal)),
            registry,
            store: Arc::new(PendingStore::new(
                s.pending_per_user,
                Duration::from_secs(s.pending_expiry_secs),
            )),
            reassembler: MoReassembler::new(Duration::from_secs(s.mo_reassembly_timeout_secs)),
            thrower: Thrower::from_settings(s)?,
            receipts_tx,
            mo_tx: broadcast::channel(4096).0,
            throttles: Mutex::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            recent: query::RecentStates::default(),
        });

        let mut tasks = Vec::new();
        for connector in gateway.connectors.values() {
            let handler = Arc::new(smpp_front::UplinkSide::new(
                gateway.clone(),
                connector.cid.clone(),
            ));
            let weak = Arc::downgrade(&gateway);
            let source = QueueSource::new(
                connector.queue.clone(),
                Arc::new(move |tag| {
                    if let Some(g) = weak.upgrade() {
                        g.expired(tag);
                    }
                }),
            );
            let uplink = Uplink::new(uplink_config(&connector.config)?, source, handler);
            let _ = connector.stats.set(uplink.stats());
            if connector.config.start {
                tasks.push(tokio::spawn(uplink.run(shutdown.clone())));
            }
        }
        let g = gateway.clone();
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => g.housekeeping(),
                }
            }
        }));
        let smpp = Arc::new(SmppFront::new(gateway.clone()));
        Ok(GatewayHandle {
            gateway,
            smpp,
            tasks,
        })
    }

    /// Charge keys of everything in flight (accepted, not final): what billing must keep
    /// reserved after a restart.
    pub fn open_charge_keys(&self) -> Vec<String> {
        self.inflight
            .iter()
            .flat_map(|shard| {
                shard
                    .lock()
                    .values()
                    .map(|f| f.charge_key.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Replace users, groups, filters, routes, interceptors and HTTP connectors at once.
    /// SMPP connectors are fixed at start.
    pub fn replace(&self, config: &RouterConfig) -> Result<(), ConfigError> {
        let snapshot = Snapshot::build(config, &|cid| self.connectors.contains_key(cid))?;
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn connector(&self, cid: &str) -> Option<&Arc<Connector>> {
        self.connectors.get(cid)
    }

    pub fn registry(&self) -> &Arc<SessionRegistry> {
        &self.registry
    }

    /// The billing this gateway charges through.
    pub fn charging(&self) -> &Arc<dyn Charging> {
        &self.charging
    }

    /// Every receipt from the operators, as it is matched.
    pub fn receipts(&self) -> broadcast::Receiver<ReceiptEvent> {
        self.receipts_tx.subscribe()
    }

    /// Every MO handed to a user (journaled for its receiver binds), as it is routed.
    pub fn mo_events(&self) -> broadcast::Receiver<MoEvent> {
        self.mo_tx.subscribe()
    }

    pub fn user_counters(&self, uid: &str) -> Arc<UserCounters> {
        if let Some(c) = self.users.read().get(uid) {
            return c.clone();
        }
        self.users
            .write()
            .entry(Arc::from(uid))
            .or_default()
            .clone()
    }

    /// Parts handed out and not finished.
    pub fn in_flight(&self) -> usize {
        self.inflight.iter().map(|s| s.lock().len()).sum()
    }

    /// Receipts and MO waiting for a user's receiver bind.
    pub fn pending_for(&self, username: &str) -> usize {
        self.store.len(username)
    }

    /// HTTP API entry: check the password (on the blocking pool) and return the user.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Arc<User>, Refusal> {
        let snap = self.snapshot.load_full();
        snap.directory
            .authenticate(username, password)
            .await
            .ok_or_else(|| Refusal::Authentication {
                username: username.to_owned(),
            })
    }

    fn new_tag(&self) -> u64 {
        self.next_tag.fetch_add(1, Ordering::Relaxed)
    }

    fn shard(&self, tag: u64) -> &Mutex<HashMap<u64, InFlight>> {
        &self.inflight[(tag % self.inflight.len() as u64) as usize]
    }

    fn track(&self, tag: u64, part: InFlight) {
        self.shard(tag).lock().insert(tag, part);
    }

    fn take(&self, tag: u64) -> Option<InFlight> {
        self.shard(tag).lock().remove(&tag)
    }

    fn forget(&self, tags: &[u64]) {
        for tag in tags {
            self.shard(*tag).lock().remove(tag);
        }
    }

    fn housekeeping(&self) {
        self.journal.housekeeping();
        self.idmap.purge();
        self.store.purge();
        self.reassembler.purge();
    }
}
