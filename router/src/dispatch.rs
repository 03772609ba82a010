//! The pipeline: SMPP front (authenticator + request handler), `Gateway::submit` (also
//! for the HTTP API), the uplink handler (results, receipts, MO), and start-up.

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
use chrono::Local;
use hyper::Method;
use parking_lot::Mutex;
use smpp_core::{
    BindKind,
    client::{
        Inbound, LinkState, SubmitOutcome, SubmitRequest, SubmitResult, Uplink, UplinkConfig,
        UplinkHandler, UplinkStats,
    },
    rusmpp::{
        CommandStatus, Pdu,
        pdus::{DeliverSm, SubmitSmResp},
        tlvs::{MessageDeliveryRequestTlvValue, TlvTag},
        types::{AnyOctetString, COctetString, OctetString},
        values::{DataCoding, EsmClass, Npi, PriorityFlag, RegisteredDelivery, Ton},
    },
    server::{
        Authenticator, BindGrant, BindRequest, DeliverError, Outbound, OutboundResult, Request,
        RequestHandler, Response, SessionInfo, SessionRegistry,
    },
    throttle::TokenBucket,
};
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    callbacks::{Callback, DLR_AGENT, MO_AGENT, Thrower, mo_params},
    charging::{Account, ChargeError, ChargeMeta, Charging, MemoryCharging},
    config::{ConfigError, ConnectorConfig, HttpConnectorConfig, RouterConfig, Settings},
    credentials::{self, Requested},
    durable::Restored,
    filter::{FilterDef, compile_defs, script_source},
    idmap::{IdMap, MemoryIdMap, normalize},
    mo::{Offer, Reassembler},
    model::{DlrMethod, Message, Origin, RawTlv},
    queue::{
        Durable, FinalOutcome, Journal, JournalRecord, MemoryQueue, MessageQueue, NoJournal,
        QueueSource, Queued,
    },
    receipts::{self, DlrEntry, MultipartState, PendingStore, Receipt, ReceiptEvent},
    refusal::Refusal,
    route::{self, MoTarget, RouteKind, Table},
    script::{Script, Verdict, engine},
    split,
    stats::{ConnectorCounters, UserCounters, bump},
    user::{Directory, User},
};

/// Everything that can be replaced at run time, swapped whole.
pub struct Snapshot {
    pub directory: Directory,
    pub mt: Table<Arc<str>>,
    pub mo: Table<MoTarget>,
    pub mt_interceptors: Table<Arc<Script>>,
    pub mo_interceptors: Table<Arc<Script>>,
    pub http_connectors: HashMap<Arc<str>, HttpConnectorConfig>,
}

fn interceptors(
    configs: &[crate::config::InterceptorConfig],
    defs: &HashMap<String, FilterDef>,
    mt: bool,
    max_operations: u64,
) -> Result<Table<Arc<Script>>, ConfigError> {
    let engine = engine(max_operations);
    let mut entries = Vec::new();
    for c in configs {
        let ok = match c.kind.as_str() {
            "DefaultInterceptor" => c.order == 0,
            "StaticMTInterceptor" => mt && c.order > 0,
            "StaticMOInterceptor" => !mt && c.order > 0,
            _ => false,
        };
        if !ok {
            return Err(ConfigError::Invalid(format!(
                "interceptor {}: bad type {:?} for this order/table",
                c.order, c.kind
            )));
        }
        let name = format!("interceptor {}", c.order);
        let source = script_source(&name, &c.script, &c.script_file)?;
        let script = Script::compile(&engine, &name, &source)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let filters = c
            .filters
            .iter()
            .map(|fid| {
                defs.get(fid)
                    .cloned()
                    .ok_or_else(|| ConfigError::Invalid(format!("{name}: unknown filter {fid}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        entries.push(route::Entry {
            order: c.order,
            kind: RouteKind::Static,
            targets: vec![Arc::new(script)],
            rate: 0,
            filters,
        });
    }
    Table::build(entries)
}

impl Snapshot {
    pub fn build(
        config: &RouterConfig,
        connectors: &dyn Fn(&str) -> bool,
    ) -> Result<Self, ConfigError> {
        let max_ops = config.settings.script_max_operations;
        let defs = compile_defs(&config.filters, max_ops)?;
        let http_connectors: HashMap<Arc<str>, HttpConnectorConfig> = config
            .http_connectors
            .iter()
            .map(|c| (Arc::from(c.cid.as_str()), c.clone()))
            .collect();
        Ok(Self {
            directory: Directory::build(&config.groups, &config.users)?,
            mt: route::build_mt(&config.mt_routes, &defs, connectors)?,
            mo: route::build_mo(&config.mo_routes, &defs, &|cid| {
                http_connectors.contains_key(cid)
            })?,
            mt_interceptors: interceptors(&config.mt_interceptors, &defs, true, max_ops)?,
            mo_interceptors: interceptors(&config.mo_interceptors, &defs, false, max_ops)?,
            http_connectors,
        })
    }
}

/// One SMPP uplink as the pipeline sees it.
pub struct Connector {
    pub cid: Arc<str>,
    pub config: ConnectorConfig,
    pub queue: Arc<dyn MessageQueue>,
    pub stats: OnceLock<Arc<UplinkStats>>,
    pub counters: ConnectorCounters,
}

impl Connector {
    pub fn is_bound(&self) -> bool {
        self.stats.get().is_some_and(|s| s.is_bound())
    }
}

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

/// Replaceable implementations of the stateful parts (cluster mode swaps them).
#[derive(Default)]
pub struct Deps {
    pub charging: Option<Arc<dyn Charging>>,
    pub idmap: Option<Arc<dyn IdMap>>,
    pub journal: Option<Arc<dyn Journal>>,
}

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
    reassembler: Reassembler,
    thrower: Thrower,
    receipts_tx: broadcast::Sender<ReceiptEvent>,
    throttles: Mutex<HashMap<(Arc<str>, bool), TokenBucket>>,
    users: parking_lot::RwLock<HashMap<Arc<str>, Arc<UserCounters>>>,
}

/// How long the journal remembers that a part without a receipt request went out.
const SUBMITTED_RECORD_TTL: Duration = Duration::from_secs(60);

/// What a journal replay brought back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Charge keys and operator ids of parts the operator had accepted before the
    /// restart (their charges must be committed, whatever billing's store says).
    pub submitted: Vec<(String, String)>,
    pub requeued: usize,
    pub deliveries: usize,
    pub receipts_awaited: usize,
    /// HTTP callbacks (DLR and MO) sent again.
    pub callbacks: usize,
    pub dropped: usize,
}

/// What `Gateway::start` returns.
pub struct GatewayHandle {
    pub gateway: Arc<Gateway>,
    /// Authenticator + request handler for `smpp_core::server::Server`.
    pub smpp: Arc<SmppFront>,
    /// Uplinks and housekeeping; they end when the shutdown token is cancelled.
    pub tasks: Vec<JoinHandle<()>>,
}

fn uplink_config(c: &ConnectorConfig) -> Result<UplinkConfig, ConfigError> {
    let bind: BindKind = c
        .bind
        .parse()
        .map_err(|e: String| ConfigError::Invalid(format!("connector {}: {e}", c.cid)))?;
    let secs = |v: f64| Duration::from_secs_f64(v.max(0.0));
    Ok(UplinkConfig {
        id: c.cid.clone(),
        address: format!("{}:{}", c.host, c.port),
        system_id: c.username.clone(),
        password: c.password.clone(),
        system_type: c.systype.clone(),
        bind,
        enquire_link_interval: Duration::from_secs(c.elink_interval_secs.max(1)),
        dead_after: Duration::from_secs(c.elink_interval_secs.max(1) * 3),
        response_timeout: Duration::from_secs(c.res_to_secs.max(1)),
        window: c.window.max(1),
        throughput: c.submit_throughput.filter(|t| *t > 0.0),
        reconnect_on_loss_delay: secs(c.con_loss_delay_secs),
        reconnect_on_failure_delay: secs(c.con_fail_delay_secs),
        max_reconnect_delay: secs(c.con_fail_delay_secs.max(c.con_loss_delay_secs))
            .max(Duration::from_secs(1)),
        ..UplinkConfig::default()
    })
}

/// SMPP absolute (`YYMMDDhhmmsstnnp`) or relative (`YYMMDDhhmmss000R`) time → instant.
pub fn smpp_time_deadline(text: &str) -> Option<Instant> {
    let b = text.as_bytes();
    if b.len() != 16 || !b[..12].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |i: usize| i64::from(b[i] - b'0') * 10 + i64::from(b[i + 1] - b'0');
    let now = Instant::now();
    match b[15] {
        b'R' => {
            let secs = ((n(0) * 365 + n(2) * 30 + n(4)) * 24 + n(6)) * 3600 + n(8) * 60 + n(10);
            Some(now + Duration::from_secs(u64::try_from(secs).ok()?))
        }
        b'+' | b'-' => {
            use chrono::{NaiveDate, TimeZone, Utc};
            let date = NaiveDate::from_ymd_opt(
                2000 + i32::try_from(n(0)).ok()?,
                u32::try_from(n(2)).ok()?,
                u32::try_from(n(4)).ok()?,
            )?;
            let local = date.and_hms_opt(
                u32::try_from(n(6)).ok()?,
                u32::try_from(n(8)).ok()?,
                u32::try_from(n(10)).ok()?,
            )?;
            let quarters =
                i64::from(b[13].checked_sub(b'0')?) * 10 + i64::from(b[14].checked_sub(b'0')?);
            let offset = quarters * 15 * 60 * if b[15] == b'+' { 1 } else { -1 };
            let at = Utc.from_utc_datetime(&local).timestamp() - offset;
            let left = at - Utc::now().timestamp();
            if left <= 0 {
                Some(now)
            } else {
                Some(now + Duration::from_secs(u64::try_from(left).ok()?))
            }
        }
        _ => None,
    }
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
                queue: Arc::new(MemoryQueue::new(c.queue_capacity)),
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
        let charging = match deps.charging {
            Some(c) => c,
            None => {
                let memory = MemoryCharging::new();
                for user in snapshot.directory.by_uid.values() {
                    memory.set_account(
                        &user.uid,
                        Account {
                            balance: user.balance,
                            sms_count: user.sms_count,
                        },
                    );
                }
                Arc::new(memory)
            }
        };
        let s = &config.settings;
        let (receipts_tx, _) = broadcast::channel(4096);
        let gateway = Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            settings: s.clone(),
            connectors,
            inflight: (0..32).map(|_| Mutex::new(HashMap::new())).collect(),
            next_tag: AtomicU64::new(1),
            charging,
            idmap: deps.idmap.unwrap_or_else(|| Arc::new(MemoryIdMap::new())),
            journal: deps.journal.unwrap_or_else(|| Arc::new(NoJournal)),
            registry,
            store: Arc::new(PendingStore::new(
                s.pending_per_user,
                Duration::from_secs(s.pending_expiry_secs),
            )),
            reassembler: Reassembler::new(Duration::from_secs(s.mo_reassembly_timeout_secs)),
            thrower: Thrower::new(
                Duration::from_millis(s.http_timeout_ms),
                Duration::from_millis(s.http_retry_delay_ms),
                s.http_max_retries,
            ),
            receipts_tx,
            throttles: Mutex::new(HashMap::new()),
            users: parking_lot::RwLock::new(HashMap::new()),
        });

        let mut tasks = Vec::new();
        for connector in gateway.connectors.values() {
            let handler = Arc::new(UplinkSide {
                gateway: gateway.clone(),
                cid: connector.cid.clone(),
            });
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
        let smpp = Arc::new(SmppFront {
            gateway: gateway.clone(),
        });
        Ok(GatewayHandle {
            gateway,
            smpp,
            tasks,
        })
    }

    /// Take back what the journal replayed after a restart: accepted parts go to the front
    /// of their connector's queue in their original order; awaited receipts get their
    /// operator-id mapping back. Call before clients can bind.
    pub fn restore(&self, records: Vec<Restored>) -> RestoreReport {
        let mut report = RestoreReport::default();
        let mut requeue: Vec<(Arc<Connector>, Queued)> = Vec::new();
        for record in records {
            match record {
                Restored::Part(p) => {
                    let Some(connector) = self.connectors.get(&p.connector).cloned() else {
                        warn!(id = %p.message.id, connector = %p.connector, "replayed message for an unknown connector: refunded");
                        self.charging.refund(&p.charge_key);
                        report.dropped += 1;
                        continue;
                    };
                    // Reserving again is a no-op when billing still holds the reservation,
                    // and restores one its write-behind lost. A reference billing already
                    // settled is sent anyway: the receipt the client waits for may depend
                    // on it, and settling twice is a no-op.
                    let meta = ChargeMeta {
                        connector: &p.connector,
                        destination: &p.message.destination.addr,
                        sender: &p.message.source.addr,
                        parts: p.parts as u32,
                        text: &p.content,
                    };
                    if let Err(error) =
                        self.charging
                            .reserve(&p.charge_key, &p.message.uid, p.amount, &meta)
                    {
                        debug!(id = %p.message.id, part = p.part, %error, "replayed part: no new reservation");
                    }
                    let message = Arc::new(p.message);
                    let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
                    let f = InFlight {
                        expires_at: smpp_time_deadline(&message.validity_period),
                        message,
                        content: p.content,
                        esm_class: p.esm_class,
                        registered_delivery: p.registered_delivery,
                        part: p.part,
                        parts: p.parts,
                        connector: p.connector,
                        alternatives: None,
                        charge_key: p.charge_key,
                        requeues: 0,
                        username: p.username,
                        multipart: None,
                    };
                    let Some(item) = self.rebuild(&f, tag) else {
                        self.fail(&f, u32::from(CommandStatus::EsmeRsyserr));
                        report.dropped += 1;
                        continue;
                    };
                    self.shard(tag).lock().insert(tag, f);
                    requeue.push((connector, item));
                    report.requeued += 1;
                }
                Restored::PendingDelivery {
                    key,
                    username,
                    pdu,
                    ttl,
                } => {
                    // Written again so that its expiry is tracked by this process.
                    let _ = self.journal.append(JournalRecord::PendingDelivery {
                        key,
                        username: &username,
                        pdu: &pdu,
                        ttl,
                    });
                    self.deliver_or_keep(&username, key, pdu);
                    report.deliveries += 1;
                }
                Restored::AwaitingReceipt {
                    entry,
                    connector,
                    operator_id,
                    charge_key,
                    ttl,
                } => {
                    // Written again so that its expiry is tracked by this process.
                    self.journal.append(JournalRecord::AwaitingReceipt {
                        entry: &entry,
                        operator_id: &operator_id,
                        charge_key: &charge_key,
                        ttl,
                    });
                    report.submitted.push((charge_key, operator_id.clone()));
                    self.idmap
                        .insert(&connector, &operator_id, Arc::new(entry), ttl);
                    report.receipts_awaited += 1;
                }
                Restored::PendingCallback { key, callback, ttl } => {
                    // Written again so that its expiry is tracked by this process.
                    let _ = self.journal.append(JournalRecord::PendingCallback {
                        key,
                        callback: &callback,
                        ttl,
                    });
                    self.spawn_callback(key, callback);
                    report.callbacks += 1;
                }
            }
        }
        for (connector, item) in requeue.into_iter().rev() {
            connector.queue.push_front(item);
        }
        if report.requeued + report.receipts_awaited + report.deliveries + report.dropped > 0 {
            info!(
                requeued = report.requeued,
                receipts_awaited = report.receipts_awaited,
                deliveries = report.deliveries,
                dropped = report.dropped,
                "journal replay restored"
            );
        }
        report
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

    /// Every receipt from the operators, as it is matched.
    pub fn receipts(&self) -> broadcast::Receiver<ReceiptEvent> {
        self.receipts_tx.subscribe()
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

    /// HTTP API entry: check the password and return the user.
    pub fn authenticate(&self, username: &str, password: &str) -> Result<Arc<User>, Refusal> {
        self.snapshot
            .load()
            .directory
            .authenticate(username, password)
            .cloned()
            .ok_or_else(|| Refusal::Authentication {
                username: username.to_owned(),
            })
    }

    fn shard(&self, tag: u64) -> &Mutex<HashMap<u64, InFlight>> {
        &self.inflight[(tag % self.inflight.len() as u64) as usize]
    }

    fn throughput(&self, user: &User, http: bool) -> Result<(), Refusal> {
        let rate = if http {
            user.http_throughput
        } else {
            user.smpps_throughput
        };
        let Some(rate) = rate else { return Ok(()) };
        let mut throttles = self.throttles.lock();
        let bucket = throttles
            .entry((user.uid.clone(), http))
            .or_insert_with(|| TokenBucket::new(rate));
        if bucket.try_take(std::time::Instant::now()) {
            Ok(())
        } else {
            Err(Refusal::Throughput)
        }
    }

    /// Accept a message from `user`: credentials, throughput, interceptor, route, charge,
    /// journal, queue. Returns our message id once the message is queued.
    pub async fn submit(
        &self,
        user: &User,
        mut msg: Message,
        requested: Requested,
    ) -> Result<Arc<str>, Refusal> {
        let counters = self.user_counters(&user.uid);
        bump(&counters.submit_requests);
        let result = self.submit_inner(user, &mut msg, requested).await;
        match &result {
            Ok(_) => bump(&counters.accepted),
            Err(Refusal::Throughput) => bump(&counters.throttled),
            Err(refusal) => {
                debug!(user = %user.uid, %refusal, "message refused");
                bump(&counters.refused)
            }
        }
        result
    }

    async fn submit_inner(
        &self,
        user: &User,
        msg: &mut Message,
        requested: Requested,
    ) -> Result<Arc<str>, Refusal> {
        let snap = self.snapshot.load_full();
        msg.uid = user.uid.clone();
        msg.gid = user.gid.clone();
        let http = msg.origin == Origin::Http;
        credentials::check(user, msg, &requested)?;
        if msg.source.addr.is_empty()
            && let Some(default) = &user.default_src_addr
        {
            msg.source.addr = default.clone();
        }
        self.throughput(user, http)?;
        msg.id = Arc::from(uuid::Uuid::new_v4().to_string());
        msg.received_at = Local::now();

        if let Some(rule) = snap.mt_interceptors.select(msg) {
            let script = &rule.targets[0];
            match script.intercept(msg) {
                Ok(Verdict::Continue) => {}
                Ok(Verdict::AcceptWithoutRouting) => return Ok(msg.id.clone()),
                Ok(Verdict::Reject {
                    smpp_status,
                    http_status,
                }) => {
                    return Err(Refusal::Intercepted {
                        smpp_status,
                        http_status,
                    });
                }
                Err(error) => {
                    warn!(%error, id = %msg.id, "MT interceptor failed: message rejected");
                    return Err(Refusal::InterceptorFailed);
                }
            }
        }

        let route = snap.mt.select(msg).ok_or(Refusal::NoRoute)?;
        let (cid, alternatives) = match route.kind {
            RouteKind::Default | RouteKind::Static => (route.targets[0].clone(), None),
            RouteKind::RoundRobin => (route.targets[route.next_index()].clone(), None),
            RouteKind::Failover => {
                let bound = route
                    .targets
                    .iter()
                    .find(|cid| self.connectors.get(*cid).is_some_and(|c| c.is_bound()))
                    .ok_or(Refusal::NoBoundConnector)?;
                (
                    bound.clone(),
                    Some(Arc::<[Arc<str>]>::from(route.targets.clone())),
                )
            }
        };
        let connector = self.connectors.get(&cid).ok_or(Refusal::NoRoute)?.clone();
        if msg.source.addr.is_empty()
            && let Some(src) = &connector.config.src_addr
        {
            msg.source.addr = src.clone();
        }

        let parts: Vec<Bytes> = if msg.split_long {
            split::split(&msg.content, msg.data_coding)
        } else {
            vec![msg.content.clone()]
        };
        if parts.len() > self.settings.long_content_max_parts.max(1) {
            return Err(Refusal::InvalidArgument {
                name: "content".into(),
                value: format!(
                    "{} parts, at most {}",
                    parts.len(),
                    self.settings.long_content_max_parts
                ),
            });
        }
        let n = parts.len();
        if connector.queue.len() + n > connector.queue.capacity() {
            return Err(Refusal::QueueFull);
        }

        let keys: Vec<String> = (0..n)
            .map(|i| {
                if n == 1 {
                    msg.id.to_string()
                } else {
                    format!("{}/{}", msg.id, i + 1)
                }
            })
            .collect();
        for (i, key) in keys.iter().enumerate() {
            let meta = ChargeMeta {
                connector: &cid,
                destination: &msg.destination.addr,
                sender: &msg.source.addr,
                parts: n as u32,
                text: &parts[i],
            };
            if let Err(error) = self.charging.reserve(key, &user.uid, route.rate, &meta) {
                for k in &keys[..i] {
                    self.charging.refund(k);
                }
                if let ChargeError::Busy(_) = error {
                    // Billing logs its own state; one line per refused message would flood.
                    debug!(%error, user = %user.uid, id = %msg.id, "billing busy");
                    return Err(Refusal::ChargingBusy);
                }
                warn!(%error, user = %user.uid, id = %msg.id, "cannot charge");
                return Err(Refusal::Charging);
            }
        }

        let refund_all = |gw: &Self| {
            for k in &keys {
                gw.charging.refund(k);
            }
        };
        let message = Arc::new(msg.clone());
        let multipart = (n > 1 && self.settings.multipart_receipt_whole)
            .then(|| Arc::new(Mutex::new(MultipartState::new(n))));
        let expires_at = smpp_time_deadline(&msg.validity_period);
        let rd = if msg.dlr.as_ref().is_some_and(|d| d.level >= 2) {
            msg.registered_delivery | 1
        } else {
            msg.registered_delivery
        };
        let mut items = Vec::with_capacity(n);
        let mut tags = Vec::with_capacity(n);
        for (i, content) in parts.iter().enumerate() {
            let esm = if n > 1 {
                msg.esm_class | 0x40
            } else {
                msg.esm_class
            };
            let pdu = match msg.to_submit_sm(content, esm, rd, &[]) {
                Ok(pdu) => pdu,
                Err(error) => {
                    refund_all(self);
                    self.forget(&tags);
                    return Err(Refusal::InvalidArgument {
                        name: error.field.into(),
                        value: String::new(),
                    });
                }
            };
            let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
            self.shard(tag).lock().insert(
                tag,
                InFlight {
                    message: message.clone(),
                    content: content.clone(),
                    esm_class: esm,
                    registered_delivery: rd,
                    part: i,
                    parts: n,
                    connector: cid.clone(),
                    alternatives: alternatives.clone(),
                    charge_key: keys[i].clone(),
                    requeues: 0,
                    username: user.username.clone(),
                    multipart: multipart.clone(),
                    expires_at,
                },
            );
            tags.push(tag);
            items.push(Queued {
                request: SubmitRequest::new(tag, pdu),
                expires_at,
            });
        }
        // Durable before the client hears ESME_ROK: one record per part, and the last
        // part's acknowledgement covers the earlier ones (the log writes in order).
        let mut durable = Durable::Done;
        for (i, item) in items.iter().enumerate() {
            durable = self.journal.append(JournalRecord::Accepted {
                message: &message,
                username: &user.username,
                connector: &cid,
                part: i,
                parts: n,
                content: &parts[i],
                esm_class: u8::from(item.request.pdu.esm_class),
                registered_delivery: rd,
                charge_key: &keys[i],
                amount: route.rate,
            });
            if matches!(durable, Durable::Failed(_)) {
                break;
            }
        }
        if let Err(error) = durable.wait().await {
            warn!(%error, id = %msg.id, "journal append failed");
            self.forget(&tags);
            refund_all(self);
            for i in 0..n {
                self.journal.append(JournalRecord::Outcome {
                    id: &msg.id,
                    part: i,
                    outcome: FinalOutcome::Failed {
                        status: u32::from(CommandStatus::EsmeRsyserr),
                    },
                });
            }
            return Err(Refusal::Enqueue);
        }
        if connector.queue.try_push(items).is_err() {
            self.forget(&tags);
            refund_all(self);
            for i in 0..n {
                self.journal.append(JournalRecord::Outcome {
                    id: &msg.id,
                    part: i,
                    outcome: FinalOutcome::Failed {
                        status: u32::from(CommandStatus::EsmeRmsgqful),
                    },
                });
            }
            return Err(Refusal::QueueFull);
        }
        for _ in 0..n {
            bump(&connector.counters.queued);
        }
        Ok(msg.id.clone())
    }

    fn forget(&self, tags: &[u64]) {
        for tag in tags {
            self.shard(*tag).lock().remove(tag);
        }
    }

    fn take(&self, tag: u64) -> Option<InFlight> {
        self.shard(tag).lock().remove(&tag)
    }

    /// A part's validity ended in the queue: drop, refund, report EXPIRED.
    fn expired(&self, tag: u64) {
        let Some(f) = self.take(tag) else { return };
        if let Some(c) = self.connectors.get(&f.connector) {
            bump(&c.counters.expired);
        }
        self.charging.refund(&f.charge_key);
        self.journal.append(JournalRecord::Outcome {
            id: &f.message.id,
            part: f.part,
            outcome: FinalOutcome::Expired,
        });
        self.report_failure(&f, "EXPIRED", "ESME_RUNKNOWNERR", "000");
    }

    fn on_submit_result(&self, cid: &Arc<str>, result: SubmitResult) {
        let Some(mut f) = self.take(result.tag) else {
            debug!(tag = result.tag, "result for an unknown part");
            return;
        };
        let Some(connector) = self.connectors.get(cid).cloned() else {
            return;
        };
        match result.outcome {
            SubmitOutcome::Accepted { message_id } => {
                bump(&connector.counters.submitted);
                self.charging.commit(&f.charge_key, &message_id);
                self.accepted(&connector, f, &message_id);
            }
            SubmitOutcome::Rejected(status) => {
                let code = u32::from(status);
                if connector.config.requeue_statuses.contains(&code)
                    && f.requeues < connector.config.requeue_count
                {
                    bump(&connector.counters.requeued);
                    f.requeues += 1;
                    self.requeue_later(
                        f,
                        result.tag,
                        Duration::from_millis(connector.config.requeue_delay_ms),
                    );
                } else {
                    bump(&connector.counters.failed);
                    self.fail(&f, code);
                }
            }
            SubmitOutcome::TimedOut => {
                bump(&connector.counters.failed);
                self.fail(&f, u32::from(CommandStatus::EsmeRunknownerr));
            }
            SubmitOutcome::NotSent => {
                // The uplink stopped with it: another connector of its failover route, or
                // back in its queue for when the uplink comes back.
                let target = self
                    .failover_target(&f)
                    .unwrap_or_else(|| f.connector.clone());
                f.connector = target;
                self.requeue_now(f, result.tag);
            }
        }
    }

    fn failover_target(&self, f: &InFlight) -> Option<Arc<str>> {
        f.alternatives
            .as_ref()?
            .iter()
            .find(|cid| {
                **cid != f.connector && self.connectors.get(*cid).is_some_and(|c| c.is_bound())
            })
            .cloned()
    }

    fn rebuild(&self, f: &InFlight, tag: u64) -> Option<Queued> {
        match f
            .message
            .to_submit_sm(&f.content, f.esm_class, f.registered_delivery, &[])
        {
            Ok(pdu) => Some(Queued {
                request: SubmitRequest::new(tag, pdu),
                expires_at: f.expires_at,
            }),
            Err(error) => {
                warn!(%error, "cannot rebuild a requeued part");
                None
            }
        }
    }

    fn requeue_now(&self, f: InFlight, tag: u64) {
        let Some(item) = self.rebuild(&f, tag) else {
            self.fail(&f, u32::from(CommandStatus::EsmeRsyserr));
            return;
        };
        let Some(connector) = self.connectors.get(&f.connector).cloned() else {
            return;
        };
        self.shard(tag).lock().insert(tag, f);
        connector.queue.push_front(item);
    }

    fn requeue_later(&self, f: InFlight, tag: u64, delay: Duration) {
        let Some(item) = self.rebuild(&f, tag) else {
            self.fail(&f, u32::from(CommandStatus::EsmeRsyserr));
            return;
        };
        let Some(connector) = self.connectors.get(&f.connector).cloned() else {
            return;
        };
        self.shard(tag).lock().insert(tag, f);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            connector.queue.push_front(item);
        });
    }

    /// The uplink went down: queued parts of failover routes move to a bound connector.
    fn link_down(&self, cid: &Arc<str>) {
        let Some(connector) = self.connectors.get(cid) else {
            return;
        };
        let mut keep = Vec::new();
        let mut moved = 0usize;
        for item in connector.queue.drain() {
            let tag = item.request.tag;
            let target = {
                let mut shard = self.shard(tag).lock();
                match shard.get_mut(&tag) {
                    Some(f) => match self.failover_target(f) {
                        Some(t) => {
                            f.connector = t.clone();
                            Some(t)
                        }
                        None => None,
                    },
                    None => None,
                }
            };
            match target.and_then(|t| self.connectors.get(&t)) {
                Some(other) => {
                    other.queue.push_front(item);
                    moved += 1;
                }
                None => keep.push(item),
            }
        }
        if moved > 0 {
            info!(connector = %cid, moved, "queued messages moved to failover connectors");
        }
        // What stays goes back in its order.
        for item in keep.into_iter().rev() {
            connector.queue.push_front(item);
        }
    }

    fn wants_receipt(&self, f: &InFlight) -> bool {
        match &f.message.origin {
            Origin::Smpp { .. } => f.message.registered_delivery & 0x03 != 0,
            Origin::Http => f
                .message
                .dlr
                .as_ref()
                .is_some_and(|d| d.level >= 2 && !d.url.is_empty()),
        }
    }

    fn entry_for(&self, f: &InFlight) -> DlrEntry {
        DlrEntry {
            id: f.message.id.clone(),
            uid: f.message.uid.clone(),
            username: f.username.clone(),
            origin: f.message.origin.clone(),
            source: f.message.source.clone(),
            destination: f.message.destination.clone(),
            registered_delivery: f.message.registered_delivery,
            dlr: f.message.dlr.clone(),
            connector: f.connector.clone(),
            submitted_at: f.message.received_at,
            part: f.part,
            multipart: f.multipart.clone(),
        }
    }

    fn accepted(&self, connector: &Arc<Connector>, f: InFlight, operator_id: &str) {
        let entry = Arc::new(self.entry_for(&f));
        if let Some(dlr) = &f.message.dlr
            && (dlr.level == 1 || dlr.level == 3)
        {
            // One level-1 callback per message, when its last part is answered.
            let level1 = match &f.multipart {
                Some(state) => state.lock().responded("ESME_ROK"),
                None => (f.part + 1 == f.parts).then(|| "ESME_ROK".to_owned()),
            };
            if let Some(status) = level1 {
                self.http_dlr_level1(&entry, dlr, &status);
            }
        }
        if matches!(f.message.origin, Origin::Smpp { .. })
            && self.settings.smpp_receipt_on_submit_ok
            && f.message.registered_delivery & 0x03 == 1
            && let Some(pdu) = receipts::client_receipt(&entry, "ACCEPTD", "000")
        {
            // The submit_sm_resp path cannot hold the operator back; a crash here loses
            // only this optional ACCEPTD notice.
            let _ = self.push_to_user(&entry.username, Pdu::DeliverSm(pdu));
        }
        if !self.wants_receipt(&f) {
            // Kept a short while rather than removed: if billing's write-behind has not
            // stored the commit when the process dies, the restart still knows this part
            // went out and charges it.
            self.journal.append(JournalRecord::AwaitingReceipt {
                entry: &entry,
                operator_id,
                charge_key: &f.charge_key,
                ttl: SUBMITTED_RECORD_TTL,
            });
            return;
        }
        self.journal.append(JournalRecord::AwaitingReceipt {
            entry: &entry,
            operator_id,
            charge_key: &f.charge_key,
            ttl: connector.config.dlr_expiry(),
        });
        self.idmap.insert(
            &connector.cid,
            operator_id,
            entry.clone(),
            connector.config.dlr_expiry(),
        );
    }

    /// A final failure: refund, journal, and a failed receipt if one was asked for.
    fn fail(&self, f: &InFlight, status: u32) {
        self.charging.refund(&f.charge_key);
        self.journal.append(JournalRecord::Outcome {
            id: &f.message.id,
            part: f.part,
            outcome: FinalOutcome::Failed { status },
        });
        let name = format!("{:?}", CommandStatus::from(status))
            .to_uppercase()
            .replace("ESMER", "ESME_R");
        self.report_failure(f, "UNDELIV", &name, "099");
    }

    fn report_failure(&self, f: &InFlight, stat: &str, status_name: &str, err: &str) {
        let entry = self.entry_for(f);
        let r = Receipt {
            id: String::new(),
            stat: stat.to_owned(),
            err: err.to_owned(),
            sub: "ND".into(),
            dlvrd: "ND".into(),
            submit_date: "ND".into(),
            done_date: "ND".into(),
            text: String::new(),
        };
        // A multipart message is reported once: the failed part completes its share of
        // the whole, like a receipt would.
        let whole_receipt = || {
            f.multipart
                .as_ref()
                .map(|state| state.lock().record(f.part, stat))
        };
        if let Some(dlr) = &f.message.dlr {
            if dlr.level == 1 || dlr.level == 3 {
                let level1 = match &f.multipart {
                    Some(state) => state.lock().responded(status_name),
                    None => Some(status_name.to_owned()),
                };
                if let Some(status) = level1 {
                    self.http_dlr_level1(&entry, dlr, &status);
                }
            }
            if dlr.level >= 2 {
                match whole_receipt() {
                    Some(Some(whole)) => {
                        let _ = self.report(&entry, &r, &whole);
                    }
                    Some(None) => {}
                    // A single message at level 3 gets the level-1 error only, as in Jasmin.
                    None if dlr.level == 2 => {
                        let _ = self.report(&entry, &r, stat);
                    }
                    None => {}
                }
            }
            return;
        }
        match whole_receipt() {
            Some(Some(whole)) => {
                let _ = self.report(&entry, &r, &whole);
            }
            Some(None) => {}
            None => {
                let _ = self.report(&entry, &r, stat);
            }
        }
    }

    /// Journals an HTTP callback, then makes it (with Jasmin's retries); the record
    /// leaves the journal when it is acknowledged or given up. The returned `Durable`
    /// says when it is safe to answer the operator for it.
    fn throw(&self, callback: Callback) -> Durable {
        let key = uuid::Uuid::new_v4().as_u128();
        let durable = self.journal.append(JournalRecord::PendingCallback {
            key,
            callback: &callback,
            ttl: Duration::from_secs(self.settings.pending_expiry_secs),
        });
        self.spawn_callback(key, callback);
        durable
    }

    fn spawn_callback(&self, key: u128, callback: Callback) {
        let thrower = self.thrower.clone();
        let journal = self.journal.clone();
        tokio::spawn(async move {
            // Acknowledged or given up after Jasmin's retries: final either way.
            thrower.deliver(callback).await;
            journal.append(JournalRecord::Delivered { key });
        });
    }

    fn http_dlr_level1(&self, entry: &DlrEntry, dlr: &crate::model::DlrRequest, status: &str) {
        if dlr.url.is_empty() {
            return;
        }
        let _ = self.throw(Callback {
            url: dlr.url.clone(),
            method: if dlr.method == DlrMethod::Get {
                Method::GET
            } else {
                Method::POST
            },
            params: vec![
                ("id", entry.id.as_bytes().to_vec()),
                ("message_status", status.as_bytes().to_vec()),
                ("level", b"1".to_vec()),
                ("connector", entry.connector.as_bytes().to_vec()),
            ],
            user_agent: DLR_AGENT,
        });
    }

    /// A matched receipt: track multipart, then deliver to the client.
    fn deliver_receipt(&self, cid: &Arc<str>, entry: &Arc<DlrEntry>, r: &Receipt) -> Durable {
        let stat = receipts::is_final(&r.stat)
            .then_some(())
            .map(|_| r.stat.clone());
        let is_final = stat.is_some();
        if let Some(c) = self.connectors.get(cid) {
            bump(&c.counters.receipts);
        }
        bump(&self.user_counters(&entry.uid).receipts);
        if is_final {
            self.idmap.remove(cid, &r.id);
        }
        let _ = self.receipts_tx.send(ReceiptEvent {
            id: entry.id.clone(),
            uid: entry.uid.clone(),
            connector: cid.clone(),
            operator_id: normalize(&r.id),
            stat: r.stat.clone(),
            err: r.err.clone(),
            part: entry.part,
        });
        let reported = match (&entry.multipart, stat) {
            (Some(state), Some(stat)) => state.lock().record(entry.part, &stat),
            // Intermediate receipts of a multipart message are not reported in whole mode.
            (Some(_), None) => None,
            (None, _) => Some(r.stat.clone()),
        };
        let durable = match reported {
            Some(reported) => self.report(entry, r, &reported),
            None => Durable::Done,
        };
        if !is_final {
            return durable;
        }
        match durable {
            // Relayed: the mapping may leave the journal only once the client has the
            // receipt. Until then a crash must leave it, so that the operator's resend
            // still finds its message.
            Durable::Deferred(relayed) => {
                let journal = self.journal.clone();
                let (id, part) = (entry.id.clone(), entry.part);
                Durable::Deferred(Box::pin(async move {
                    relayed.await?;
                    journal.append(JournalRecord::ReceiptDone { id: &id, part });
                    Ok(())
                }))
            }
            // Queued after the client's copy, so a crash between the two leaves both.
            durable => {
                self.journal.append(JournalRecord::ReceiptDone {
                    id: &entry.id,
                    part: entry.part,
                });
                durable
            }
        }
    }

    fn report(&self, entry: &DlrEntry, r: &Receipt, stat: &str) -> Durable {
        match &entry.origin {
            Origin::Smpp { .. } => {
                if receipts::wanted_by_smpp(entry.registered_delivery, stat)
                    && let Some(pdu) = receipts::client_receipt(entry, stat, &r.err)
                {
                    return self.relay_to_user(&entry.username, Pdu::DeliverSm(pdu));
                }
            }
            Origin::Http => {
                let Some(dlr) = &entry.dlr else {
                    return Durable::Done;
                };
                if dlr.level < 2 || dlr.url.is_empty() {
                    return Durable::Done;
                }
                let p = |s: &str| s.as_bytes().to_vec();
                return self.throw(Callback {
                    url: dlr.url.clone(),
                    method: if dlr.method == DlrMethod::Get {
                        Method::GET
                    } else {
                        Method::POST
                    },
                    params: vec![
                        ("id", p(&entry.id)),
                        ("message_status", p(stat)),
                        ("level", p("2")),
                        ("connector", p(&entry.connector)),
                        ("id_smsc", p(&normalize(&r.id))),
                        ("sub", p(&r.sub)),
                        ("dlvrd", p(&r.dlvrd)),
                        ("subdate", p(&r.submit_date)),
                        ("donedate", p(&r.done_date)),
                        ("err", p(&r.err)),
                        ("text", p(&r.text)),
                    ],
                    user_agent: DLR_AGENT,
                });
            }
        }
        Durable::Done
    }

    /// deliver_sm to one of the user's receiver binds, or kept until one binds. The PDU
    /// goes into the journal first (the returned `Durable`: the operator is answered only
    /// once it is written) and leaves it when the client answers, so a receipt or MO we
    /// took responsibility for survives a crash.
    fn push_to_user(&self, username: &Arc<str>, pdu: Pdu) -> Durable {
        let key = uuid::Uuid::new_v4().as_u128();
        let durable = self.journal.append(JournalRecord::PendingDelivery {
            key,
            username,
            pdu: &pdu,
            ttl: Duration::from_secs(self.settings.pending_expiry_secs),
        });
        self.deliver_or_keep(username, key, pdu);
        durable
    }

    /// A receipt for a bound client, relayed: the returned `Durable` completes when the
    /// client answered (nothing journaled: until the operator hears from us, it keeps
    /// the receipt and sends it again after a crash), or, when the client does not
    /// answer within `receipt_relay_wait_ms`, once the receipt is journaled and kept for
    /// its next bind. Not bound, or older PDUs waiting: journaled at once.
    fn relay_to_user(&self, username: &Arc<str>, pdu: Pdu) -> Durable {
        let wait = Duration::from_millis(self.settings.receipt_relay_wait_ms);
        if wait.is_zero() || self.store.len(username) > 0 {
            return self.push_to_user(username, pdu);
        }
        let (outbound, reply) = Outbound::with_reply(pdu.clone());
        if self.registry.deliver(username, outbound).is_err() {
            return self.push_to_user(username, pdu);
        }
        let journal = self.journal.clone();
        let store = self.store.clone();
        let username = username.clone();
        let ttl = Duration::from_secs(self.settings.pending_expiry_secs);
        Durable::Deferred(Box::pin(async move {
            if let Ok(Ok(OutboundResult::Answered(_))) = tokio::time::timeout(wait, reply).await {
                return Ok(());
            }
            // Unanswered (or the bind went away): from here on it is ours to keep. A late
            // answer to the first copy makes the redelivery a duplicate, never a loss.
            let key = uuid::Uuid::new_v4().as_u128();
            let durable = journal.append(JournalRecord::PendingDelivery {
                key,
                username: &username,
                pdu: &pdu,
                ttl,
            });
            store.keep(&username, key, pdu);
            durable.wait().await.map_err(|e| e.0)
        }))
    }

    fn deliver_or_keep(&self, username: &Arc<str>, key: u128, pdu: Pdu) {
        if self.store.len(username) > 0 {
            // Keep order behind what already waits.
            self.store.keep(username, key, pdu);
            self.flush_pending(username);
            return;
        }
        let (outbound, reply) = Outbound::with_reply(pdu.clone());
        match self.registry.deliver(username, outbound) {
            Ok(_) => self.await_answer(username.clone(), key, pdu, reply),
            Err(DeliverError::NotBound(o) | DeliverError::Full(o)) => {
                self.store.keep(username, key, *o.pdu);
            }
        }
    }

    /// Hands what waits for `username` to its binds (it just bound).
    pub(crate) fn flush_pending(&self, username: &Arc<str>) {
        for sent in self.store.flush(username, &self.registry) {
            self.await_answer(username.clone(), sent.key, sent.pdu, sent.reply);
        }
    }

    /// The client's answer takes the PDU out of the journal; no answer (timeout, bind
    /// lost) keeps it for the next bind, where the journal still has it.
    fn await_answer(
        &self,
        username: Arc<str>,
        key: u128,
        pdu: Pdu,
        reply: tokio::sync::oneshot::Receiver<OutboundResult>,
    ) {
        let journal = self.journal.clone();
        let store = self.store.clone();
        tokio::spawn(async move {
            match reply.await {
                Ok(OutboundResult::Answered(_)) => {
                    journal.append(JournalRecord::Delivered { key });
                }
                _ => store.keep(&username, key, pdu),
            }
        });
    }

    async fn on_inbound(&self, cid: &Arc<str>, inbound: Inbound) -> CommandStatus {
        let msg = match &inbound {
            Inbound::DeliverSm(p) => Message::from_deliver_sm(p, cid),
            Inbound::DataSm(p) => Message::from_data_sm(p, cid),
        };
        if let Some(r) = receipts::parse(&msg) {
            match self.idmap.get(cid, &r.id) {
                Some(entry) => {
                    // The operator hears ESME_ROK only once the client's copy is durable;
                    // otherwise it keeps the receipt and sends it again.
                    if let Err(error) = self.deliver_receipt(cid, &entry, &r).wait().await {
                        warn!(%error, "receipt not journaled: operator asked to resend");
                        return CommandStatus::EsmeRsyserr;
                    }
                }
                None => {
                    // Its submit_sm_resp may still be on its way (or, just after a
                    // restart, the replay still running): the operator is answered only
                    // once the receipt is matched and written, or the hold expires.
                    let hold = Duration::from_millis(self.settings.early_receipt_hold_ms);
                    let deadline = Instant::now() + hold;
                    loop {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        if let Some(entry) = self.idmap.get(cid, &r.id) {
                            if let Err(error) = self.deliver_receipt(cid, &entry, &r).wait().await {
                                warn!(%error, "receipt not journaled: operator asked to resend");
                                return CommandStatus::EsmeRsyserr;
                            }
                            return CommandStatus::EsmeRok;
                        }
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                    if let Some(c) = self.connectors.get(cid) {
                        bump(&c.counters.receipts_unmatched);
                    }
                    warn!(connector = %cid, operator_id = %r.id, "receipt for an unknown message id dropped");
                }
            }
            return CommandStatus::EsmeRok;
        }
        if let Some(c) = self.connectors.get(cid) {
            bump(&c.counters.mo);
        }
        match self.reassembler.offer(msg) {
            Offer::Single(m) => self.route_mo(*m, Vec::new()).await,
            Offer::Waiting => CommandStatus::EsmeRok,
            Offer::Complete { whole, parts } => self.route_mo(*whole, parts).await,
        }
    }

    async fn route_mo(&self, mut whole: Message, parts: Vec<Message>) -> CommandStatus {
        let snap = self.snapshot.load_full();
        whole.id = Arc::from(uuid::Uuid::new_v4().to_string());
        whole.received_at = Local::now();
        let unroutable = CommandStatus::from(self.settings.unroutable_mo_status);
        if let Some(rule) = snap.mo_interceptors.select(&whole) {
            match rule.targets[0].intercept(&mut whole) {
                Ok(Verdict::Continue) => {}
                Ok(Verdict::AcceptWithoutRouting) => return CommandStatus::EsmeRok,
                Ok(Verdict::Reject { smpp_status, .. }) => return CommandStatus::from(smpp_status),
                Err(error) => {
                    warn!(%error, "MO interceptor failed");
                    return CommandStatus::EsmeRsyserr;
                }
            }
        }
        let Some(route) = snap.mo.select(&whole) else {
            warn!(from = %whole.source.addr, to = %whole.destination.addr, "no MO route");
            return unroutable;
        };
        let order: Vec<MoTarget> = match route.kind {
            RouteKind::RoundRobin => vec![route.targets[route.next_index()].clone()],
            RouteKind::Failover => route.targets.clone(),
            _ => vec![route.targets[0].clone()],
        };
        for target in order.iter() {
            match target {
                MoTarget::Smpps(username) => {
                    if route.kind == RouteKind::Failover
                        && self.registry.receivers(username) == 0
                        && order.len() > 1
                    {
                        continue;
                    }
                    if let Some(user) = snap.directory.by_username.get(username) {
                        bump(&self.user_counters(&user.uid).mo);
                    }
                    // SMPP users get the original parts, as Jasmin sends them.
                    let pdus: Vec<&Message> = if parts.is_empty() {
                        vec![&whole]
                    } else {
                        parts.iter().collect()
                    };
                    let mut durable = Durable::Done;
                    for m in pdus {
                        match to_deliver_sm(m) {
                            Some(pdu) => durable = self.push_to_user(username, Pdu::DeliverSm(pdu)),
                            None => return CommandStatus::EsmeRsyserr,
                        }
                    }
                    // The log writes in order: the last part's durability covers the rest.
                    if let Err(error) = durable.wait().await {
                        warn!(%error, "MO not journaled: operator asked to resend");
                        return CommandStatus::EsmeRsyserr;
                    }
                    return CommandStatus::EsmeRok;
                }
                MoTarget::Http(cid) => {
                    let Some(http) = snap.http_connectors.get(cid) else {
                        continue;
                    };
                    let cb = Callback {
                        url: http.url.clone(),
                        method: if http.method.eq_ignore_ascii_case("GET") {
                            Method::GET
                        } else {
                            Method::POST
                        },
                        params: mo_params(&whole.id, &whole),
                        user_agent: MO_AGENT,
                    };
                    if route.kind == RouteKind::Failover && order.len() > 1 {
                        if self.thrower.attempt(&cb).await {
                            return CommandStatus::EsmeRok;
                        }
                        continue;
                    }
                    // The operator hears ESME_ROK once the callback is journaled.
                    if let Err(error) = self.throw(cb).wait().await {
                        warn!(%error, "MO callback not journaled: operator asked to resend");
                        return CommandStatus::EsmeRsyserr;
                    }
                    return CommandStatus::EsmeRok;
                }
            }
        }
        unroutable
    }

    fn housekeeping(&self) {
        self.journal.housekeeping();
        self.idmap.purge();
        self.store.purge();
        self.reassembler.purge();
    }
}

/// An MO for an SMPP user, fields as received.
fn to_deliver_sm(m: &Message) -> Option<DeliverSm> {
    let mut tlvs: Vec<MessageDeliveryRequestTlvValue> = m
        .tlvs
        .iter()
        .map(|t: &RawTlv| MessageDeliveryRequestTlvValue::Other {
            tag: TlvTag::from(t.tag),
            value: AnyOctetString::from_bytes(t.value.clone()),
        })
        .collect();
    let short = if m.payload_tlv || m.content.len() > 254 {
        tlvs.push(MessageDeliveryRequestTlvValue::Other {
            tag: TlvTag::from(crate::model::TAG_MESSAGE_PAYLOAD),
            value: AnyOctetString::from_bytes(m.content.clone()),
        });
        OctetString::empty()
    } else {
        OctetString::from_bytes(m.content.clone()).ok()?
    };
    Some(
        DeliverSm::builder()
            .source_addr_ton(Ton::from(m.source.ton))
            .source_addr_npi(Npi::from(m.source.npi))
            .source_addr(COctetString::from_string(m.source.addr.clone()).ok()?)
            .dest_addr_ton(Ton::from(m.destination.ton))
            .dest_addr_npi(Npi::from(m.destination.npi))
            .destination_addr(COctetString::from_string(m.destination.addr.clone()).ok()?)
            .esm_class(EsmClass::from(m.esm_class))
            .protocol_id(m.protocol_id)
            .priority_flag(PriorityFlag::from(m.priority))
            .registered_delivery(RegisteredDelivery::from(0))
            .data_coding(DataCoding::from(m.data_coding))
            .short_message(short)
            .tlvs(tlvs)
            .build(),
    )
}

/// The SMPP server's view of the gateway.
pub struct SmppFront {
    gateway: Arc<Gateway>,
}

impl SmppFront {
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }
}

impl Authenticator for SmppFront {
    async fn authenticate(&self, request: &BindRequest) -> Result<BindGrant, CommandStatus> {
        let snap = self.gateway.snapshot.load();
        let user = snap
            .directory
            .authenticate(&request.system_id, &request.password)
            .ok_or(CommandStatus::EsmeRinvpaswd)?;
        if !user.smpp_bind {
            return Err(CommandStatus::EsmeRbindfail);
        }
        Ok(BindGrant {
            system_id: user.username.clone(),
            max_sessions: user.max_bindings,
            // The per-user throughput quota is enforced across binds by the gateway.
            submit_rate: None,
        })
    }
}

impl RequestHandler for SmppFront {
    async fn handle(&self, session: &Arc<SessionInfo>, request: Request) -> Response {
        let Request::SubmitSm(pdu) = request else {
            // Jasmin answers data_sm and other requests ESME_RSYSERR.
            return Response::Error(CommandStatus::EsmeRsyserr);
        };
        let user = match self
            .gateway
            .snapshot
            .load()
            .directory
            .by_username
            .get(&*session.system_id)
        {
            Some(user) => user.clone(),
            None => return Response::Error(CommandStatus::EsmeRinvsysid),
        };
        let mut msg = Message::from_submit_sm(&pdu);
        if msg.destination.addr.is_empty() {
            return Response::Error(CommandStatus::EsmeRinvdstadr);
        }
        msg.origin = Origin::Smpp {
            session_id: session.id,
        };
        let requested = Requested::from_smpp(&msg);
        match self.gateway.submit(&user, msg, requested).await {
            Ok(id) => match COctetString::from_string(id.to_string()) {
                Ok(id) => Response::Ok(Pdu::SubmitSmResp(
                    SubmitSmResp::builder().message_id(id).build(),
                )),
                Err(_) => Response::Error(CommandStatus::EsmeRsyserr),
            },
            Err(refusal) => Response::Error(refusal.smpp_status()),
        }
    }

    fn on_bound(&self, session: &Arc<SessionInfo>) {
        if session.kind.can_receive() {
            self.gateway.flush_pending(&session.system_id);
        }
    }
}

struct UplinkSide {
    gateway: Arc<Gateway>,
    cid: Arc<str>,
}

impl UplinkHandler for UplinkSide {
    fn on_submit_result(&self, result: SubmitResult) {
        self.gateway.on_submit_result(&self.cid, result);
    }

    async fn on_inbound(&self, inbound: Inbound) -> CommandStatus {
        self.gateway.on_inbound(&self.cid, inbound).await
    }

    fn on_state(&self, state: LinkState) {
        if let LinkState::Disconnected { .. } = state {
            self.gateway.link_down(&self.cid);
        }
    }
}
