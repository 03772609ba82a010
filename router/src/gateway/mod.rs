//! The gateway: everything that moves a message, one step of the path per file.
//!
//! - `mt`: a client's message, from credentials to its place in a connector's queue;
//! - `uplink`: what the operator answered to each submit_sm (commit, requeue, failover);
//! - `receipts`: the operator's delivery receipts, matched and reported;
//! - `delivery`: deliver_sm to bound clients (kept while they are away) and HTTP callbacks;
//! - `mo`: mobile-originated messages along the MO routes;
//! - `observers`: receipts and MO handed to observers that must see every one;
//! - `restore`: the journal's replay after a restart;
//! - `smpp_front`: the adapters that the SMPP server and the uplinks call.

mod connector;
mod delivery;
mod export;
mod lcr;
mod links;
mod mo;
mod mt;
mod observers;
mod ops;
mod query;
mod receipts;
mod restore;
mod smpp_front;
mod trace;

pub use trace::Parent as TraceParent;
mod uplink;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use proto::charging::{Charging, Unmetered};
use smpp_core::{server::SessionRegistry, throttle::TokenBucket};
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use connector::{Connector, uplink_config};
pub use lcr::{Explanation, LcrState};
pub use links::{LinkChanges, LinkError, check_connectors};
pub use observers::{NotStored, Observed, Subscription};
pub use query::MessageStatus;
pub use restore::RestoreReport;
pub use smpp_front::SmppFront;

use crate::{
    callbacks::Thrower,
    config::{ConfigError, RouterConfig, Settings},
    idmap::{IdMap, MemoryIdMap},
    journaling::{Journal, NoJournal},
    model::Message,
    reassembly::MoReassembler,
    receipts::{MultipartState, PendingStore},
    refusal::Refusal,
    snapshot::Snapshot,
    stats::UserCounters,
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
    /// The destination's network (MCC, MNC), when known: the carrier's cost.
    network: Option<(u16, u16)>,
    /// An LcrRoute's ranked candidates and which were tried.
    lcr: Option<lcr::LcrTrail>,
    charge_key: String,
    /// This part's price, reserved under `charge_key` (journaled again by replace_sm).
    amount: i64,
    requeues: u32,
    username: Arc<str>,
    multipart: Option<Arc<Mutex<MultipartState>>>,
    expires_at: Option<Instant>,
    /// The trace of the submit that accepted it, when traces are exported: the
    /// operator's answer joins it.
    trace: trace::Parent,
}

/// Replaceable implementations of the stateful parts; each defaults to the in-process one.
#[derive(Default)]
pub struct Deps {
    /// Billing. Without it every message is free and unlimited ([`Unmetered`]).
    pub charging: Option<Arc<dyn Charging>>,
    pub idmap: Option<Arc<dyn IdMap>>,
    pub journal: Option<Arc<dyn Journal>>,
    /// A journal replay (`Gateway::restore`) will follow while clients may already be
    /// bound: until it ends, a receipt that matches no message waits for it.
    pub replay_pending: bool,
}

/// Shards of the in-flight table: submit results and new submits rarely meet on a lock.
const INFLIGHT_SHARDS: usize = 32;

pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    /// `[settings]`, replaced whole by an admin change (`apply_settings`).
    settings: ArcSwap<Settings>,
    /// Read on the message path without locks; replaced whole by `links` (admin changes).
    connectors: ArcSwap<links::Connectors>,
    links: links::Links,
    inflight: Vec<Mutex<HashMap<u64, InFlight>>>,
    next_tag: AtomicU64,
    charging: Arc<dyn Charging>,
    idmap: Arc<dyn IdMap>,
    journal: Arc<dyn Journal>,
    registry: Arc<SessionRegistry>,
    store: Arc<PendingStore>,
    reassembler: MoReassembler,
    thrower: ArcSwap<Thrower>,
    observers: observers::Observers,
    throttles: Mutex<HashMap<(Arc<str>, bool), TokenBucket>>,
    users: RwLock<HashMap<Arc<str>, Arc<UserCounters>>>,
    /// Final states of recent messages, for query_sm.
    recent: query::RecentStates,
    /// Number → network, operator costs and health settings.
    lcr: Arc<LcrState>,
    health_tx: broadcast::Sender<crate::lcr::Transition>,
    /// Cancelled once the journal's replay is restored (at once when none is pending).
    replayed: CancellationToken,
    /// Annexes the replay brought back, and who takes them.
    annexes: Mutex<Annexes>,
}

/// A message's id and its annex (`Message::annex`).
pub type Annex = (Arc<str>, Bytes);

/// Restored annexes wait here until a front end registers to take them.
#[derive(Default)]
struct Annexes {
    waiting: Vec<Annex>,
    taker: Option<Box<dyn Fn(Vec<Annex>) + Send + Sync>>,
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
        let lcr_state = Arc::new(LcrState::build(&config)?);
        links::check_connectors(&config)?;
        let connectors: links::Connectors = config
            .connectors
            .iter()
            .map(|c| {
                let cid: Arc<str> = Arc::from(c.cid.as_str());
                let lcr_managed = lcr_state.manages(&cid);
                let connector = Connector::new(c.clone(), &config.lcr.health, lcr_managed);
                (cid, Arc::new(connector))
            })
            .collect();
        let snapshot = Snapshot::build(&config, &|cid| connectors.contains_key(cid))?;
        let s = &config.settings;
        let (health_tx, _) = broadcast::channel(256);
        let gateway = Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            settings: ArcSwap::from_pointee(s.clone()),
            connectors: ArcSwap::from_pointee(connectors),
            links: links::Links::new(shutdown.clone()),
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
            thrower: ArcSwap::from_pointee(Thrower::from_settings(s)?),
            observers: observers::Observers::default(),
            throttles: Mutex::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            recent: query::RecentStates::default(),
            lcr: lcr_state,
            health_tx,
            replayed: CancellationToken::new(),
            annexes: Mutex::new(Annexes::default()),
        });
        if !deps.replay_pending {
            gateway.replayed.cancel();
        }

        for connector in gateway.connectors.load().values() {
            if connector.config.start {
                gateway.start_uplink(connector)?;
            }
        }
        // Uplinks come and go with admin changes; this task ends when they all have.
        let g = gateway.clone();
        let mut tasks = vec![tokio::spawn(async move {
            g.links.join_at_shutdown().await;
        })];
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
        // Always: an admin change can bring connectors under least-cost routing.
        {
            let g = gateway.clone();
            let stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(lcr::HEALTH_TICK);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => g.health_tick(),
                    }
                }
            }));
        }
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

    /// Replace users, groups, filters, routes, interceptors and HTTP connectors at once;
    /// SMPP connectors change through [`Gateway::reconfigure`]. The bound sessions of
    /// users it disables or removes are unbound.
    pub fn replace(&self, config: &RouterConfig) -> Result<(), ConfigError> {
        let connectors = self.connectors.load();
        let snapshot = Snapshot::build(config, &|cid| connectors.contains_key(cid))?;
        self.install(snapshot);
        Ok(())
    }

    fn install(&self, snapshot: Snapshot) {
        let directory_ok = |system_id: &str| snapshot.directory.may_bind(system_id);
        let mut ended: Vec<Arc<str>> = self
            .registry
            .bound_sessions()
            .into_iter()
            .filter(|s| !directory_ok(&s.system_id))
            .map(|s| s.system_id.clone())
            .collect();
        self.snapshot.store(Arc::new(snapshot));
        ended.dedup();
        for system_id in ended {
            let sessions = self.registry.unbind(&system_id);
            tracing::info!(sessions, "user disabled or removed: its sessions unbind");
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn connector(&self, cid: &str) -> Option<Arc<Connector>> {
        self.connectors.load().get(cid).cloned()
    }

    pub fn registry(&self) -> &Arc<SessionRegistry> {
        &self.registry
    }

    /// The billing this gateway charges through.
    pub fn charging(&self) -> &Arc<dyn Charging> {
        &self.charging
    }

    /// Every receipt (and failure) and every MO handed to a user, from now on, in
    /// queues of `capacity`: the operator is answered only once the subscriber has
    /// called [`Observed::done`] on the event (see `observers`). A subscriber must
    /// keep reading; dropping the subscription ends it.
    pub fn observe(&self, capacity: usize) -> Subscription {
        self.observers.subscribe(capacity)
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

    /// The HTTP callback client (DLR and MO callbacks, and the API's batch callbacks).
    pub fn thrower(&self) -> Arc<Thrower> {
        self.thrower.load_full()
    }

    /// `[settings]` in force.
    pub fn settings(&self) -> arc_swap::Guard<Arc<Settings>> {
        self.settings.load()
    }

    /// The HTTP client `settings` need, when they change it: built before anything
    /// changes, so that a bad `http_ca_file` refuses the whole change.
    pub(super) fn thrower_for(&self, settings: &Settings) -> Result<Option<Thrower>, ConfigError> {
        let now = self.settings();
        let same = now.http_timeout_ms == settings.http_timeout_ms
            && now.http_retry_delay_ms == settings.http_retry_delay_ms
            && now.http_max_retries == settings.http_max_retries
            && now.http_ca_file == settings.http_ca_file;
        if same {
            Ok(None)
        } else {
            Thrower::from_settings(settings).map(Some)
        }
    }

    /// Puts `settings` in force: the next message, receipt or callback follows them.
    /// `mo_reassembly_timeout_secs` holds for parts that arrive from now on only after
    /// a restart (the reassembler keeps the one it started with): the one setting that
    /// waits, and a warning says so.
    pub(super) fn apply_settings(&self, settings: Settings, thrower: Option<Thrower>) {
        let before = self.settings.load_full();
        if before.mo_reassembly_timeout_secs != settings.mo_reassembly_timeout_secs {
            tracing::warn!(
                from = before.mo_reassembly_timeout_secs,
                to = settings.mo_reassembly_timeout_secs,
                "mo_reassembly_timeout_secs takes effect at the next start"
            );
        }
        self.store.set_limits(
            settings.pending_per_user,
            Duration::from_secs(settings.pending_expiry_secs),
        );
        if let Some(thrower) = thrower {
            self.thrower.store(Arc::new(thrower));
        }
        self.settings.store(Arc::new(settings));
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
