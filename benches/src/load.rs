//! The SMPP load generator: N uplink sessions with a window each, optional rate cap,
//! for a count or a duration; reports throughput and latency percentiles.
//!
//! With a rate, the load is closed-loop by default: the uplinks pace their sends, and a
//! message's latency runs from its actual submit_sm, so a gateway that stalls is offered
//! less meanwhile and its stall hides in few samples. `open_loop` offers the load on a
//! fixed schedule instead: message n is due at start + n / rate whether or not earlier
//! ones were answered, and its latency runs from that due time (what a client with
//! its own clock would see). The p99 of every second of the run is reported too.

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use smpp_core::{
    BindKind,
    client::{
        Inbound, SubmitOutcome, SubmitRequest, SubmitResult, SubmitSource, Uplink, UplinkConfig,
        UplinkHandler,
    },
    rusmpp::{
        CommandStatus,
        pdus::SubmitSm,
        types::{COctetString, OctetString},
        values::{DataCoding, EsmClass, Npi, RegisteredDelivery, Ton},
    },
    text::{ESM_CLASS_UDHI, Encoding, SplitMode, split_text},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Open loop: how long the schedule waits for every session to bind.
const BIND_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub target: String,
    pub system_id: String,
    pub password: String,
    pub sessions: usize,
    pub window: usize,
    /// Total submits per second across sessions (None = as fast as possible).
    pub rate: Option<f64>,
    /// Stop after this many submits…
    pub count: Option<u64>,
    /// …or after this long.
    pub duration: Option<Duration>,
    pub registered_delivery: bool,
    /// UCS-2 text (data_coding 8) instead of GSM 7-bit.
    pub ucs2: bool,
    /// A long text sent as concatenated parts (UDH); every part counts as one submit.
    pub long: bool,
    /// How long to wait for receipts after the last response.
    pub receipt_wait: Duration,
    /// Destinations cycle through `dest_base .. dest_base + dest_spread`.
    pub dest_base: u64,
    pub dest_spread: u64,
    /// Offer `rate` on a fixed schedule and measure from each message's due time.
    pub open_loop: bool,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            target: "127.0.0.1:2775".into(),
            system_id: "load".into(),
            password: "load".into(),
            sessions: 4,
            window: 64,
            rate: None,
            count: Some(100_000),
            duration: None,
            registered_delivery: false,
            ucs2: false,
            long: false,
            receipt_wait: Duration::from_secs(10),
            dest_base: 998_900_000_000,
            dest_spread: 1_000_000,
            open_loop: false,
        }
    }
}

/// Figures of one run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub sessions: usize,
    pub window: usize,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub unsent: u64,
    pub throttled_retries: u64,
    pub receipts: u64,
    pub mo: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    /// Open loop: the offered rate and the p99 (µs) of the messages due in each second.
    pub open_loop: Option<(f64, Vec<u64>)>,
}

impl LoadReport {
    pub fn throughput(&self) -> f64 {
        (self.accepted + self.rejected) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// One JSON line: what the benchmark script collects.
    pub fn to_json(&self) -> serde_json::Value {
        let us = |q: f64| self.latency.value_at_quantile(q);
        let open_loop = self.open_loop.as_ref().map(|(rate, by_second)| {
            serde_json::json!({
                "offered_per_s": rate,
                "p99_us_by_second": by_second,
                "worst_second_p99_us": by_second.iter().max(),
            })
        });
        serde_json::json!({
            "sessions": self.sessions,
            "window": self.window,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "unsent": self.unsent,
            "throttled_retries": self.throttled_retries,
            "receipts": self.receipts,
            "mo": self.mo,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput_per_s": self.throughput().round(),
            "latency_us": {
                "p50": us(0.50), "p90": us(0.90), "p99": us(0.99), "p999": us(0.999),
                "max": self.latency.max(),
            },
            "open_loop": open_loop,
        })
    }
}

struct Shared {
    config: LoadConfig,
    issued: AtomicU64,
    finished: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    unsent: AtomicU64,
    receipts: AtomicU64,
    mo: AtomicU64,
    started: Instant,
    last_result_us: AtomicU64,
    deadline: Option<Instant>,
    /// Open loop: when each message is due.
    schedule: Option<Schedule>,
}

/// Open loop: message n is due `n / rate` seconds after the first was asked for. The
/// clock starts there, once every session is bound, not at launch: connecting and
/// binding are not part of the load (the first session sending alone, while the server
/// still verifies the others' passwords, would be).
#[derive(Debug)]
struct Schedule {
    started: OnceLock<Instant>,
    rate: f64,
    sessions: usize,
    /// Sessions bound so far.
    bound: watch::Sender<usize>,
    /// A session that has not bound by then is not waited for.
    bind_grace_ends: Instant,
}

impl Schedule {
    /// Until every session is bound, or the grace for binding is over.
    async fn all_bound(&self) {
        let mut bound = self.bound.subscribe();
        let every = bound.wait_for(|n| *n >= self.sessions);
        let _ = tokio::time::timeout_at(self.bind_grace_ends.into(), every).await;
    }

    fn due(&self, n: u64) -> Instant {
        *self.started.get_or_init(Instant::now) + Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// The second of the run in which message n is due.
    fn second(&self, n: u64) -> usize {
        (n as f64 / self.rate) as usize
    }
}

impl Shared {
    /// Claim the next message number, or None when the run is complete.
    fn claim(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        match self.config.count {
            Some(count) if n >= count => {
                self.issued.fetch_sub(1, Ordering::Relaxed);
                None
            }
            _ => Some(n),
        }
    }

    fn all_answered(&self) -> bool {
        self.finished.load(Ordering::Relaxed) >= self.issued.load(Ordering::Relaxed)
    }
}

struct Generator {
    shared: Arc<Shared>,
    /// One PDU per part; a short message has one.
    templates: Arc<Vec<SubmitSm>>,
    waited_since: Option<Instant>,
    /// Open loop: the message claimed and waiting for its time.
    due: Option<u64>,
    /// Open loop: this session counted as bound (its uplink asks only once bound).
    joined: bool,
    /// Open loop: every session is bound; the schedule runs.
    running: bool,
}

impl SubmitSource for Generator {
    async fn next_submit(&mut self) -> Option<SubmitRequest> {
        if let Some(schedule) = &self.shared.schedule
            && !self.running
        {
            if !self.joined {
                self.joined = true;
                schedule.bound.send_modify(|n| *n += 1);
            }
            schedule.all_bound().await;
            self.running = true;
        }
        // The uplink may drop this future while it waits (it is polled in a select), so
        // a claimed number waits in `due` until its time has come and it is sent.
        if let Some(n) = self.due.or_else(|| self.shared.claim()) {
            if let Some(schedule) = &self.shared.schedule {
                self.due = Some(n);
                tokio::time::sleep_until(schedule.due(n).into()).await;
                self.due = None;
            }
            let config = &self.shared.config;
            let parts = self.templates.len() as u64;
            let mut pdu = self.templates[(n % parts) as usize].clone();
            // All parts of one message go to the same destination.
            let destination = config.dest_base + (n / parts) % config.dest_spread.max(1);
            pdu.destination_addr = COctetString::from_string(destination.to_string()).ok()?;
            return Some(SubmitRequest::new(n, pdu));
        }
        // Everything is out: stay bound until answers (and receipts, if asked) are in.
        let since = *self.waited_since.get_or_insert_with(Instant::now);
        loop {
            let shared = &self.shared;
            let receipts_in = !shared.config.registered_delivery
                || shared.receipts.load(Ordering::Relaxed)
                    >= shared.accepted.load(Ordering::Relaxed);
            if shared.all_answered()
                && (receipts_in || since.elapsed() > shared.config.receipt_wait)
            {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct Collector {
    shared: Arc<Shared>,
    latency: Mutex<Histogram<u64>>,
    /// Open loop: latencies by the second their message was due.
    by_second: Mutex<Vec<Histogram<u64>>>,
}

impl Collector {
    fn new(shared: Arc<Shared>) -> anyhow::Result<Collector> {
        Ok(Collector {
            shared,
            latency: Mutex::new(new_histogram()?),
            by_second: Mutex::new(Vec::new()),
        })
    }

    /// Open loop: from the due time, and in that second's histogram too.
    fn record_open_loop(&self, schedule: &Schedule, tag: u64) -> u64 {
        let latency = Instant::now().saturating_duration_since(schedule.due(tag));
        let us = latency.as_micros().max(1) as u64;
        let second = schedule.second(tag);
        if let Ok(mut by_second) = self.by_second.lock()
            && let Ok(histogram) = histogram_at(&mut by_second, second)
        {
            let _ = histogram.record(us);
        }
        us
    }
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// Second `n`'s histogram, made (with the empty ones before it) when first needed.
fn histogram_at(
    seconds: &mut Vec<Histogram<u64>>,
    n: usize,
) -> anyhow::Result<&mut Histogram<u64>> {
    while seconds.len() <= n {
        seconds.push(new_histogram()?);
    }
    Ok(&mut seconds[n])
}

impl UplinkHandler for Collector {
    fn on_submit_result(&self, result: SubmitResult) {
        let shared = &self.shared;
        match result.outcome {
            SubmitOutcome::Accepted { .. } => shared.accepted.fetch_add(1, Ordering::Relaxed),
            SubmitOutcome::Rejected(_) | SubmitOutcome::TimedOut => {
                shared.rejected.fetch_add(1, Ordering::Relaxed)
            }
            SubmitOutcome::NotSent => shared.unsent.fetch_add(1, Ordering::Relaxed),
        };
        let us = match &shared.schedule {
            Some(schedule) => self.record_open_loop(schedule, result.tag),
            None => result.latency.as_micros().max(1) as u64,
        };
        if let Ok(mut histogram) = self.latency.lock() {
            let _ = histogram.record(us);
        }
        shared.last_result_us.fetch_max(
            shared.started.elapsed().as_micros() as u64,
            Ordering::Relaxed,
        );
        shared.finished.fetch_add(1, Ordering::Relaxed);
    }

    async fn on_inbound(&self, inbound: Inbound) -> CommandStatus {
        let esm_class = match &inbound {
            Inbound::DeliverSm(pdu) => u8::from(pdu.esm_class),
            Inbound::DataSm(pdu) => u8::from(pdu.esm_class),
        };
        if esm_class & 0x3C == 0x04 {
            self.shared.receipts.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.mo.fetch_add(1, Ordering::Relaxed);
        }
        CommandStatus::EsmeRok
    }
}

/// The PDUs of one message: a single one, or the parts of a long text.
fn templates(config: &LoadConfig) -> anyhow::Result<Vec<SubmitSm>> {
    let short = if config.ucs2 {
        "Ваш код: 4821. Не сообщайте его никому."
    } else {
        "Your verification code is 482913. It expires in 5 minutes."
    };
    let text = if config.long {
        short.repeat(7)
    } else {
        short.to_owned()
    };
    let (coding, encoding) = if config.ucs2 {
        (DataCoding::Ucs2, Encoding::Ucs2)
    } else {
        (DataCoding::McSpecific, Encoding::Gsm7)
    };
    let parts = split_text(&text, encoding, SplitMode::Udh, 1)?;
    let single = parts.len() == 1;
    parts
        .iter()
        .map(|part| {
            let (esm_class, body) = if single {
                (0, part.payload.to_vec())
            } else {
                (ESM_CLASS_UDHI, part.short_message().to_vec())
            };
            template(config, coding, esm_class, body)
        })
        .collect()
}

fn template(
    config: &LoadConfig,
    coding: DataCoding,
    esm_class: u8,
    text: Vec<u8>,
) -> anyhow::Result<SubmitSm> {
    Ok(SubmitSm::builder()
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr_npi(Npi::Unknown)
        .source_addr(COctetString::from_string("BANK".to_owned())?)
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(COctetString::from_string(config.dest_base.to_string())?)
        .esm_class(EsmClass::from(esm_class))
        .registered_delivery(RegisteredDelivery::from(u8::from(
            config.registered_delivery,
        )))
        .data_coding(coding)
        .short_message(OctetString::from_vec(text)?)
        .build())
}

/// Run the load and return its figures.
pub async fn run(config: LoadConfig) -> anyhow::Result<LoadReport> {
    let templates = Arc::new(templates(&config)?);
    let started = Instant::now();
    let shared = Arc::new(Shared {
        deadline: config.duration.map(|d| started + d),
        config: config.clone(),
        issued: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        unsent: AtomicU64::new(0),
        receipts: AtomicU64::new(0),
        mo: AtomicU64::new(0),
        started,
        last_result_us: AtomicU64::new(0),
        schedule: match (config.open_loop, config.rate) {
            (true, Some(rate)) if rate > 0.0 => Some(Schedule {
                started: OnceLock::new(),
                rate,
                sessions: config.sessions.max(1),
                bound: watch::Sender::new(0),
                bind_grace_ends: started + BIND_GRACE,
            }),
            (true, _) => anyhow::bail!("an open-loop run needs a rate"),
            (false, _) => None,
        },
    });
    let shutdown = CancellationToken::new();
    let mut collectors = Vec::new();
    let mut stats = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..config.sessions.max(1) {
        let collector = Arc::new(Collector::new(shared.clone())?);
        let uplink_config = UplinkConfig {
            id: format!("load-{i}"),
            address: config.target.clone(),
            system_id: config.system_id.clone(),
            password: config.password.clone(),
            bind: BindKind::Transceiver,
            window: config.window,
            // Open loop: the generator keeps the schedule, not the uplink.
            throughput: match config.open_loop {
                true => None,
                false => config.rate.map(|r| r / config.sessions.max(1) as f64),
            },
            reconnect_on_failure: false,
            reconnect_on_loss: false,
            response_timeout: Duration::from_secs(30),
            max_attempts: 1,
            ..UplinkConfig::default()
        };
        let generator = Generator {
            shared: shared.clone(),
            templates: templates.clone(),
            waited_since: None,
            due: None,
            joined: false,
            running: false,
        };
        let uplink = Uplink::new(uplink_config, generator, collector.clone());
        stats.push(uplink.stats());
        collectors.push(collector);
        tasks.push(tokio::spawn(uplink.run(shutdown.clone())));
    }
    for task in tasks {
        task.await?;
    }
    let mut latency = new_histogram()?;
    let mut by_second: Vec<Histogram<u64>> = Vec::new();
    for collector in &collectors {
        if let Ok(h) = collector.latency.lock() {
            latency.add(&*h)?;
        }
        if let Ok(seconds) = collector.by_second.lock() {
            for (n, h) in seconds.iter().enumerate() {
                histogram_at(&mut by_second, n)?.add(h)?;
            }
        }
    }
    let throttled_retries = stats
        .iter()
        .map(|s| s.throttled.load(Ordering::Relaxed))
        .sum();
    let connects: u64 = stats
        .iter()
        .map(|s| s.connects.load(Ordering::Relaxed))
        .sum();
    if connects == 0 {
        anyhow::bail!("no session could bind to {}", config.target);
    }
    let elapsed = Duration::from_micros(shared.last_result_us.load(Ordering::Relaxed).max(1));
    Ok(LoadReport {
        sessions: config.sessions,
        window: config.window,
        sent: shared.issued.load(Ordering::Relaxed),
        accepted: shared.accepted.load(Ordering::Relaxed),
        rejected: shared.rejected.load(Ordering::Relaxed),
        unsent: shared.unsent.load(Ordering::Relaxed),
        throttled_retries,
        receipts: shared.receipts.load(Ordering::Relaxed),
        mo: shared.mo.load(Ordering::Relaxed),
        elapsed,
        latency,
        open_loop: shared.schedule.as_ref().map(|s| {
            let p99 = by_second
                .iter()
                .map(|h| h.value_at_quantile(0.99))
                .collect();
            (s.rate, p99)
        }),
    })
}
