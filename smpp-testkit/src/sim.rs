//! An SMSC simulator: plays the operator for tests and benchmarks (the `smsc-sim`
//! binary of `benches` runs it).
//!
//! It is built on smpp-core's own server session, acks submit_sm with unique ids after an
//! optional delay, fails or throttles a configurable fraction, sends delivery receipts for
//! a fraction of the messages that asked for one, and can generate MO traffic. Its
//! session registry is open, so a test can push deliver_sm of its own choosing.

use std::{
    collections::VecDeque,
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{FutureExt, StreamExt, stream::FuturesUnordered};
use rand::Rng;
use smpp_core::{
    clock::utc_yymmddhhmm,
    receipt::{self, Receipt, ReceiptState},
    rusmpp::{
        CommandStatus,
        pdus::{DataSmResp, DeliverSm, SubmitSm, SubmitSmResp},
        tlvs::MessageDeliveryRequestTlvValue,
        types::{COctetString, OctetString},
        values::{EsmClass, MessageState, Npi, Ton},
    },
    server::{
        Authenticator, BindGrant, BindRequest, DeliverError, Outbound, OutboundResult, Request,
        RequestHandler, Response, Server, ServerConfig, SessionInfo, SessionRegistry,
    },
};
use tokio::{net::TcpListener, sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How the simulated operator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Accept only these credentials; None accepts any bind.
    pub credentials: Option<(String, String)>,
    /// Delay before each submit_sm_resp.
    pub ack_delay: Duration,
    /// Fraction of submits answered with `fail_status`.
    pub fail_fraction: f64,
    pub fail_status: CommandStatus,
    /// Fraction of submits answered ESME_RTHROTTLED.
    pub throttle_fraction: f64,
    /// Fraction of submits that asked for a receipt and get one.
    pub receipt_fraction: f64,
    pub receipt_delay: Duration,
    /// Fraction of receipts that say UNDELIV instead of DELIVRD.
    pub undeliverable_fraction: f64,
    /// How message ids are written (operators do it in many ways).
    pub ids: IdForm,
    /// Receipts carry the receipted_message_id and message_state TLVs besides their
    /// text; without them, the gateway has only the text's id to go by.
    pub receipt_tlvs: bool,
    /// MO messages per second to bound receivers (0 = none).
    pub mo_rate: f64,
    /// Never answer submit_sm (a stalled operator).
    pub stall: bool,
    pub server: ServerConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            credentials: None,
            ack_delay: Duration::ZERO,
            fail_fraction: 0.0,
            fail_status: CommandStatus::EsmeRsubmitfail,
            throttle_fraction: 0.0,
            receipt_fraction: 1.0,
            receipt_delay: Duration::ZERO,
            undeliverable_fraction: 0.0,
            ids: IdForm::Hex,
            receipt_tlvs: true,
            mo_rate: 0.0,
            stall: false,
            server: ServerConfig {
                window: 4096,
                outbound_window: 256,
                max_sessions_per_system_id: 1024,
                ..ServerConfig::default()
            },
        }
    }
}

/// How the simulator writes message ids; each submit_sm gets the next number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdForm {
    /// 1, 2, 3… in lower-case hex.
    Hex,
    /// 1, 2, 3… in decimal.
    Decimal,
    /// From 1000: `00` and upper-case hex in submit_sm_resp (`003E8`), the same number in
    /// decimal in the receipt (`1000`), as operators that answer in one base and report
    /// in the other.
    HexAnsweredDecimalReceipted,
    /// The message's text is its id (tests choose ids that alias each other).
    Text,
}

/// What the simulator saw and did.
#[derive(Debug, Default)]
pub struct SimStats {
    pub submits: AtomicU64,
    pub accepted: AtomicU64,
    pub failed: AtomicU64,
    pub throttled: AtomicU64,
    pub receipts_sent: AtomicU64,
    pub receipts_dropped: AtomicU64,
    pub mo_sent: AtomicU64,
    /// MO messages the client answered ESME_ROK (it took responsibility for them).
    pub mo_acked: AtomicU64,
    /// Set at run time: receipts UNDELIV in this many per million, when above the
    /// configured `undeliverable_fraction` (a network that starts failing).
    pub undeliverable_ppm: AtomicU64,
}

impl SimStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A submit_sm the simulator accepted, for tests that check what arrived.
#[derive(Debug, Clone)]
pub struct ReceivedSubmit {
    pub message_id: String,
    pub system_id: Arc<str>,
    pub pdu: Box<SubmitSm>,
}

struct ReceiptJob {
    due: Instant,
    system_id: Arc<str>,
    pdu: DeliverSm,
}

struct SimHandler {
    config: SimConfig,
    stats: Arc<SimStats>,
    next_id: AtomicU64,
    receipts: mpsc::UnboundedSender<ReceiptJob>,
    record: Option<Record>,
}

impl Authenticator for SimHandler {
    async fn authenticate(&self, request: &BindRequest) -> Result<BindGrant, CommandStatus> {
        if let Some((system_id, password)) = &self.config.credentials {
            if &request.system_id != system_id {
                return Err(CommandStatus::EsmeRinvsysid);
            }
            if &request.password != password {
                return Err(CommandStatus::EsmeRinvpaswd);
            }
        }
        Ok(BindGrant {
            system_id: request.system_id.as_str().into(),
            ..BindGrant::default()
        })
    }
}

impl RequestHandler for SimHandler {
    async fn handle(&self, session: &Arc<SessionInfo>, request: Request) -> Response {
        match request {
            Request::SubmitSm(pdu) => self.submit(session, pdu).await,
            Request::DataSm(_) => {
                let (id, _) = self.new_id(None);
                match COctetString::from_string(id) {
                    Ok(id) => Response::Ok(DataSmResp::new(id, Vec::new()).into()),
                    Err(_) => Response::Error(CommandStatus::EsmeRsyserr),
                }
            }
            Request::CancelSm(_) => Response::Empty,
            _ => Response::Error(CommandStatus::EsmeRsyserr),
        }
    }
}

impl SimHandler {
    /// The id of the next message: as answered, and as its receipt says when that differs.
    fn new_id(&self, submit: Option<&SubmitSm>) -> (String, Option<String>) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        match self.config.ids {
            IdForm::Hex => (format!("{n:x}"), None),
            IdForm::Decimal => (n.to_string(), None),
            IdForm::HexAnsweredDecimalReceipted => {
                let n = n - 1 + 1000;
                (format!("00{n:X}"), Some(n.to_string()))
            }
            IdForm::Text => {
                let text = submit
                    .map(|s| s.short_message().as_ref())
                    .unwrap_or_default();
                (String::from_utf8_lossy(text).into_owned(), None)
            }
        }
    }

    async fn submit(&self, session: &Arc<SessionInfo>, pdu: Box<SubmitSm>) -> Response {
        self.stats.submits.fetch_add(1, Ordering::Relaxed);
        if self.config.stall {
            std::future::pending::<()>().await;
        }
        if !self.config.ack_delay.is_zero() {
            tokio::time::sleep(self.config.ack_delay).await;
        }
        let (throttle, fail, receipt, undeliverable) = {
            let mut rng = rand::rng();
            (
                rng.random_bool(self.config.throttle_fraction.clamp(0.0, 1.0)),
                rng.random_bool(self.config.fail_fraction.clamp(0.0, 1.0)),
                rng.random_bool(self.config.receipt_fraction.clamp(0.0, 1.0)),
                rng.random_bool(
                    self.config
                        .undeliverable_fraction
                        .max(self.stats.undeliverable_ppm.load(Ordering::Relaxed) as f64 / 1e6)
                        .clamp(0.0, 1.0),
                ),
            )
        };
        if throttle {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            return Response::Error(CommandStatus::EsmeRthrottled);
        }
        if fail {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            return Response::Error(self.config.fail_status);
        }
        let (id, receipt_id) = self.new_id(Some(&pdu));
        let Ok(message_id) = COctetString::from_string(id.clone()) else {
            return Response::Error(CommandStatus::EsmeRsyserr);
        };
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let wants_receipt = u8::from(pdu.registered_delivery) & 0x03 != 0;
        if wants_receipt && receipt {
            let stat = if undeliverable {
                ReceiptState::Undeliverable
            } else {
                ReceiptState::Delivered
            };
            let receipt_id = receipt_id.as_deref().unwrap_or(&id);
            if let Some(receipt) = receipt_pdu(&pdu, receipt_id, stat, self.config.receipt_tlvs) {
                let _ = self.receipts.send(ReceiptJob {
                    due: Instant::now() + self.config.receipt_delay,
                    system_id: session.system_id.clone(),
                    pdu: receipt,
                });
            }
        }
        if let Some(record) = &self.record {
            record.push(ReceivedSubmit {
                message_id: id,
                system_id: session.system_id.clone(),
                pdu,
            });
        }
        Response::Ok(SubmitSmResp::new(message_id, Vec::new()).into())
    }
}

/// A receipt for `submit` as operators send them: text plus the SMPP 3.4 TLVs.
fn receipt_state_byte(delivered: bool) -> u8 {
    if delivered {
        ReceiptState::Delivered.message_state()
    } else {
        ReceiptState::Undeliverable.message_state()
    }
}

fn receipt_pdu(submit: &SubmitSm, id: &str, stat: ReceiptState, tlvs: bool) -> Option<DeliverSm> {
    let now = utc_yymmddhhmm();
    let delivered = stat == ReceiptState::Delivered;
    let text = receipt::format(&Receipt {
        id: id.to_owned(),
        sub: Some(1),
        dlvrd: Some(u32::from(delivered)),
        submit_date: Some(now.clone()),
        done_date: Some(now),
        err: Some(if delivered { "000" } else { "001" }.to_owned()),
        text: Some(String::new()),
        stat,
    });
    let state = MessageState::from(receipt_state_byte(delivered));
    let receipt = DeliverSm::builder()
        .source_addr_ton(submit.dest_addr_ton)
        .source_addr_npi(submit.dest_addr_npi)
        .source_addr(submit.destination_addr.clone())
        .dest_addr_ton(submit.source_addr_ton)
        .dest_addr_npi(submit.source_addr_npi)
        .destination_addr(submit.source_addr.clone())
        .esm_class(EsmClass::from(0x04))
        .short_message(OctetString::from_vec(text.into_bytes()).ok()?);
    if !tlvs {
        return Some(receipt.build());
    }
    Some(
        receipt
            .push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
                COctetString::from_string(id.to_owned()).ok()?,
            ))
            .push_tlv(MessageDeliveryRequestTlvValue::MessageState(state))
            .build(),
    )
}

fn mo_pdu(n: u64) -> Option<DeliverSm> {
    let source = format!("99890{:07}", n % 10_000_000);
    Some(
        DeliverSm::builder()
            .source_addr_ton(Ton::International)
            .source_addr_npi(Npi::Isdn)
            .source_addr(COctetString::from_string(source).ok()?)
            .destination_addr(COctetString::from_static_slice(b"1234\0").ok()?)
            .short_message(OctetString::from_vec(format!("MO test {n}").into_bytes()).ok()?)
            .build(),
    )
}

/// A submit_sm the simulator accepted, and when.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub submit: ReceivedSubmit,
    pub at: std::time::Instant,
}

/// Every submit_sm a simulator accepted, in order; clones share it, and several
/// simulators may write to one record (an operator restarted on the same port).
///
/// The simulator writes a submit here before it answers it, under a lock and not
/// through a channel drained by a task: a test that kills the simulator's runtime
/// cannot lose records of submits the gateway already saw answered.
#[derive(Clone, Default)]
pub struct Record(Arc<parking_lot::Mutex<Vec<Arrival>>>);

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, submit: ReceivedSubmit) {
        let at = std::time::Instant::now();
        self.0.lock().push(Arrival { submit, at });
    }

    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.lock().is_empty()
    }

    /// A look at the arrivals so far.
    pub fn with<R>(&self, f: impl FnOnce(&[Arrival]) -> R) -> R {
        f(&self.0.lock())
    }

    /// The submit_sm PDUs so far.
    pub fn pdus(&self) -> Vec<SubmitSm> {
        self.with(|all| all.iter().map(|a| (*a.submit.pdu).clone()).collect())
    }

    /// Whether a submit_sm to `destination` arrived.
    pub fn reached(&self, destination: &str) -> bool {
        self.with(|all| {
            all.iter()
                .any(|a| a.submit.pdu.destination_addr.as_str() == destination)
        })
    }
}

/// The simulator; configure, optionally ask for a record of submits, then `run`.
pub struct Simulator {
    config: SimConfig,
    stats: Arc<SimStats>,
    registry: Arc<SessionRegistry>,
    record: Option<Record>,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        Self {
            config,
            stats: Arc::new(SimStats::default()),
            registry: SessionRegistry::new(),
            record: None,
        }
    }

    pub fn stats(&self) -> Arc<SimStats> {
        self.stats.clone()
    }

    /// The bound sessions, for pushing deliver_sm to them.
    pub fn registry(&self) -> Arc<SessionRegistry> {
        self.registry.clone()
    }

    /// Every accepted submit_sm will also be sent here.
    pub fn record_into(&mut self, record: &Record) {
        self.record = Some(record.clone());
    }

    /// Serve on `listener` until `shutdown` is cancelled.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) -> io::Result<()> {
        self.serve(listener, None, shutdown).await
    }

    /// The same over TLS only.
    pub async fn run_tls(
        self,
        listener: TcpListener,
        acceptor: tls::TlsAcceptor,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        self.serve(listener, Some(acceptor), shutdown).await
    }

    async fn serve(
        self,
        listener: TcpListener,
        acceptor: Option<tls::TlsAcceptor>,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        let (receipt_tx, receipt_rx) = mpsc::unbounded_channel();
        let handler = Arc::new(SimHandler {
            config: self.config.clone(),
            stats: self.stats.clone(),
            next_id: AtomicU64::new(0),
            receipts: receipt_tx,
            record: self.record,
        });
        let receipts = tokio::spawn(send_receipts(
            receipt_rx,
            self.registry.clone(),
            self.stats.clone(),
            shutdown.clone(),
        ));
        let mo = (self.config.mo_rate > 0.0).then(|| {
            tokio::spawn(send_mo(
                self.config.mo_rate,
                self.registry.clone(),
                self.stats.clone(),
                shutdown.clone(),
            ))
        });
        let server = Server::new(
            self.config.server.clone(),
            handler.clone(),
            handler,
            self.registry.clone(),
        );
        let served = match acceptor {
            Some(acceptor) => server.serve_tls(listener, acceptor, shutdown.clone()).await,
            None => server.serve(listener, shutdown.clone()).await,
        };
        receipts.abort();
        if let Some(mo) = mo {
            mo.abort();
        }
        served
    }
}

/// Receipts go out in due order (the delay is the same for all). Like a real SMSC, the
/// simulator keeps a receipt until the client answers it: one that cannot be queued
/// (window full, client briefly unbound) or that is not answered ESME_ROK (the client
/// died with it) is sent again, until `GIVE_UP_AFTER`.
async fn send_receipts(
    mut rx: mpsc::UnboundedReceiver<ReceiptJob>,
    registry: Arc<SessionRegistry>,
    stats: Arc<SimStats>,
    shutdown: CancellationToken,
) {
    const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
    let mut queue: VecDeque<ReceiptJob> = VecDeque::new();
    let mut unanswered = FuturesUnordered::new();
    loop {
        if queue.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                job = rx.recv() => match job {
                    Some(job) => queue.push_back(job),
                    None => return,
                },
                Some((result, job)) = unanswered.next(), if !unanswered.is_empty() => {
                    settle(result, job, &mut queue, &stats);
                }
            }
        }
        while let Ok(job) = rx.try_recv() {
            queue.push_back(job);
        }
        while let Some(Some((result, job))) = unanswered.next().now_or_never() {
            settle(result, job, &mut queue, &stats);
        }
        let Some(job) = queue.pop_front() else {
            continue;
        };
        if job.due > Instant::now() {
            tokio::time::sleep_until(job.due).await;
        }
        let (outbound, reply) = Outbound::with_reply(job.pdu.clone());
        match registry.deliver(&job.system_id, outbound) {
            Ok(_) => unanswered.push(async move {
                let result = reply.await.unwrap_or(OutboundResult::Closed);
                (result, job)
            }),
            Err(error) => {
                let late = Instant::now().duration_since(job.due) > GIVE_UP_AFTER;
                if late {
                    debug!("receipt dropped: client gone");
                    stats.receipts_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let pause = match error {
                    DeliverError::Full(_) => Duration::from_millis(1),
                    DeliverError::NotBound(_) => Duration::from_millis(50),
                };
                queue.push_front(job);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

fn settle(
    result: OutboundResult,
    job: ReceiptJob,
    queue: &mut VecDeque<ReceiptJob>,
    stats: &SimStats,
) {
    match result {
        OutboundResult::Answered(CommandStatus::EsmeRok) => {
            stats.receipts_sent.fetch_add(1, Ordering::Relaxed);
        }
        _ => queue.push_back(job),
    }
}

async fn send_mo(
    rate: f64,
    registry: Arc<SessionRegistry>,
    stats: Arc<SimStats>,
    shutdown: CancellationToken,
) {
    let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_micros(10));
    let mut tick = tokio::time::interval(period);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let receivers: Vec<Arc<str>> = registry
            .bound_sessions()
            .into_iter()
            .filter(|s| s.kind.can_receive())
            .map(|s| s.system_id.clone())
            .collect();
        if receivers.is_empty() {
            continue;
        }
        n += 1;
        let Some(pdu) = mo_pdu(n) else { continue };
        let target = &receivers[(n as usize) % receivers.len()];
        let (outbound, reply) = Outbound::with_reply(pdu);
        if registry.deliver(target, outbound).is_ok() {
            stats.mo_sent.fetch_add(1, Ordering::Relaxed);
            let stats = stats.clone();
            tokio::spawn(async move {
                if let Ok(OutboundResult::Answered(CommandStatus::EsmeRok)) = reply.await {
                    stats.mo_acked.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
}
