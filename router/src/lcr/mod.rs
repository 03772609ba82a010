//! Least-cost routing: the connector × MCC/MNC cost table, each connector's health score
//! (the enterprise design's formula), its circuit breaker, and the ranking an `LcrRoute`
//! applies to every message.
//!
//! Score (0 when unbound), the sum of
//! - `min(dlr_rate / target_dlr, 1) × 50`, `dlr_rate` = delivered / final receipts over
//!   the last `window_messages` receipts or `window_secs`, whichever is shorter;
//! - `max(0, 1 − avg_latency / 3000 ms) × 30`, latency from acceptance to final receipt;
//! - `available_tps / max_tps × 20` (full marks without a throughput cap).
//!
//! Below `degraded_below` (70) a connector is DEGRADED, below `failed_below` (50) FAILED;
//! it comes back only `hysteresis` points above the threshold. DEGRADED connectors take
//! traffic only when no healthy candidate is left, FAILED ones none but `probe_percent`
//! of the decisions (so that fresh receipts can show a recovery).

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, parse_micros};

/// `[lcr]` of the router configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LcrConfig {
    /// Country dialling rules; the shipped `deploy/mccmnc/countries.csv` when absent.
    pub countries_file: Option<String>,
    /// Prefix → network files; the shipped ones when empty.
    pub prefix_files: Vec<String>,
    /// Ported numbers, `msisdn,mcc,mnc` per line.
    pub portability_file: Option<String>,
    /// National numbers without country code belong to this country (ISO code).
    pub default_country: Option<String>,
    /// What each operator charges us per part, by network.
    pub costs: Vec<CostConfig>,
    pub health: HealthSettings,
}

impl LcrConfig {
    /// Relative file names are relative to the configuration file's directory.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        let join = |p: &mut String| {
            if std::path::Path::new(p.as_str()).is_relative() {
                *p = base.join(p.as_str()).display().to_string();
            }
        };
        self.countries_file.iter_mut().for_each(join);
        self.prefix_files.iter_mut().for_each(join);
        self.portability_file.iter_mut().for_each(join);
    }
}

/// One line of the connector × MCC/MNC cost table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    pub connector: String,
    pub mcc: u16,
    pub mnc: u16,
    /// Per part, a decimal string ("0.012").
    pub cost: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    pub window_messages: usize,
    pub window_secs: u64,
    /// Expected delivered share of final receipts, per connector by `target_dlr` of the
    /// connector, else this.
    pub target_dlr: f64,
    /// Share of decisions (in %) that still try a DEGRADED or FAILED connector first.
    pub probe_percent: f64,
    pub degraded_below: f64,
    pub failed_below: f64,
    pub hysteresis: f64,
    /// Final receipts needed before the delivery rate counts (fewer: full marks).
    pub min_receipts: usize,
    /// Consecutive submit errors or timeouts that open the breaker.
    pub breaker_errors: u32,
    pub breaker_open_ms: u64,
    /// A bound uplink with submit_sm in its window and no answer at all for this long is
    /// dead-but-bound: its breaker opens.
    pub stall_ms: u64,
    /// A connector sending above this share of its throughput cap is skipped (%).
    pub max_load_percent: f64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            window_messages: 1000,
            window_secs: 600,
            target_dlr: 0.95,
            probe_percent: 1.0,
            degraded_below: 70.0,
            failed_below: 50.0,
            hysteresis: 5.0,
            min_receipts: 20,
            breaker_errors: 5,
            breaker_open_ms: 5_000,
            stall_ms: 800,
            max_load_percent: 80.0,
        }
    }
}

/// Micro-units as a decimal ("0.012").
pub fn format_micros(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
}

/// A connector and its operator's cost per SMS (micro-units).
pub type Priced = (Arc<str>, i64);

/// Connectors serving each network, cheapest first.
#[derive(Debug, Default, Clone)]
pub struct CostTable {
    by_network: HashMap<(u16, u16), Vec<Priced>>,
}

impl CostTable {
    pub fn build(
        costs: &[CostConfig],
        known_connector: &dyn Fn(&str) -> bool,
    ) -> Result<Self, ConfigError> {
        let mut by_network: HashMap<(u16, u16), Vec<Priced>> = HashMap::new();
        for c in costs {
            if !known_connector(&c.connector) {
                return Err(ConfigError::Invalid(format!(
                    "lcr cost: unknown connector {}",
                    c.connector
                )));
            }
            let cost = parse_micros(&c.cost)?;
            if cost < 0 {
                return Err(ConfigError::Invalid(format!(
                    "lcr cost of {} for {}-{} is negative",
                    c.connector, c.mcc, c.mnc
                )));
            }
            let list = by_network.entry((c.mcc, c.mnc)).or_default();
            if list.iter().any(|(cid, _)| **cid == *c.connector) {
                return Err(ConfigError::Invalid(format!(
                    "lcr cost of {} for {}-{} given twice",
                    c.connector, c.mcc, c.mnc
                )));
            }
            list.push((Arc::from(c.connector.as_str()), cost));
        }
        for list in by_network.values_mut() {
            list.sort_by_key(|(_, cost)| *cost);
        }
        Ok(Self { by_network })
    }

    /// Connectors serving the network with their cost, cheapest first.
    pub fn serving(&self, mcc: u16, mnc: u16) -> &[(Arc<str>, i64)] {
        self.by_network.get(&(mcc, mnc)).map_or(&[], Vec::as_slice)
    }

    pub fn cost(&self, cid: &str, mcc: u16, mnc: u16) -> Option<i64> {
        self.serving(mcc, mnc)
            .iter()
            .find(|(c, _)| **c == *cid)
            .map(|(_, cost)| *cost)
    }

    pub fn connectors(&self) -> impl Iterator<Item = &Arc<str>> {
        self.by_network.values().flatten().map(|(c, _)| c)
    }

    pub fn is_empty(&self) -> bool {
        self.by_network.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthState {
    Healthy = 0,
    Degraded = 1,
    Failed = 2,
}

impl HealthState {
    pub const ALL: [HealthState; 3] = [Self::Healthy, Self::Degraded, Self::Failed];

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Healthy,
            1 => Self::Degraded,
            _ => Self::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "HEALTHY",
            Self::Degraded => "DEGRADED",
            Self::Failed => "FAILED",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    delivered: bool,
    latency_ms: u32,
}

#[derive(Debug, Default)]
struct Window {
    samples: VecDeque<Sample>,
    delivered: usize,
    latency_sum: u64,
}

impl Window {
    fn push(&mut self, s: Sample, max: usize) {
        self.samples.push_back(s);
        self.delivered += usize::from(s.delivered);
        self.latency_sum += u64::from(s.latency_ms);
        while self.samples.len() > max.max(1) {
            self.pop();
        }
    }

    fn pop(&mut self) {
        if let Some(old) = self.samples.pop_front() {
            self.delivered -= usize::from(old.delivered);
            self.latency_sum -= u64::from(old.latency_ms);
        }
    }

    fn expire(&mut self, now: Instant, age: Duration) {
        while self
            .samples
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.at) > age)
        {
            self.pop();
        }
    }
}

/// The parts of a score, for explanations and metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreParts {
    pub dlr_rate: Option<f64>,
    pub avg_latency_ms: Option<f64>,
    pub load: f64,
    pub score: f64,
}

/// A change of state, for the audit log and the warn line.
#[derive(Debug, Clone)]
pub struct Transition {
    pub connector: Arc<str>,
    pub from: HealthState,
    pub to: HealthState,
    pub score: f64,
    pub reason: String,
}

/// One connector's health: receipts window, breaker, load and state.
#[derive(Debug)]
pub struct Health {
    settings: HealthSettings,
    target_dlr: f64,
    max_tps: Option<f64>,
    window: Mutex<Window>,
    state: AtomicU8,
    /// Score × 100, as last evaluated.
    score: AtomicU32,
    errors: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker is open (0: closed).
    breaker_until: AtomicU64,
    epoch: Instant,
    second: AtomicU64,
    this_second: AtomicU64,
    last_second: AtomicU64,
    probes: AtomicU64,
    /// Transitions into each state (HEALTHY, DEGRADED, FAILED), and breaker openings.
    pub transitions: [AtomicU64; 3],
    pub breaker_openings: AtomicU64,
    /// Answers counted so far by the uplink, and when that count last moved.
    answers: Mutex<(u64, Instant)>,
}

impl Health {
    pub fn new(settings: &HealthSettings, target_dlr: Option<f64>, max_tps: Option<f64>) -> Self {
        Self {
            settings: settings.clone(),
            target_dlr: target_dlr.unwrap_or(settings.target_dlr).clamp(0.01, 1.0),
            max_tps: max_tps.filter(|t| *t > 0.0 && t.is_finite()),
            window: Mutex::new(Window::default()),
            state: AtomicU8::new(HealthState::Healthy as u8),
            score: AtomicU32::new(10_000),
            errors: AtomicU32::new(0),
            breaker_until: AtomicU64::new(0),
            epoch: Instant::now(),
            second: AtomicU64::new(0),
            this_second: AtomicU64::new(0),
            last_second: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            transitions: Default::default(),
            breaker_openings: AtomicU64::new(0),
            answers: Mutex::new((0, Instant::now())),
        }
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// A final receipt: delivered or not, and how long after acceptance.
    pub fn receipt(&self, delivered: bool, latency: Duration) {
        let now = Instant::now();
        let latency_ms = u32::try_from(latency.as_millis()).unwrap_or(u32::MAX);
        self.window.lock().push(
            Sample {
                at: now,
                delivered,
                latency_ms,
            },
            self.settings.window_messages,
        );
    }

    /// The operator answered a submit_sm (or did not): feeds the breaker. Returns true
    /// when this answer opened it.
    pub fn submit_answer(&self, ok: bool) -> bool {
        if ok {
            self.errors.store(0, Ordering::Relaxed);
            return false;
        }
        let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.settings.breaker_errors.max(1) && !self.breaker_open() {
            self.open_breaker();
            return true;
        }
        false
    }

    pub fn open_breaker(&self) {
        self.breaker_openings.fetch_add(1, Ordering::Relaxed);
        let until = self.millis(Instant::now()) + self.settings.breaker_open_ms.max(1);
        self.breaker_until.store(until, Ordering::Relaxed);
        // Half open afterwards: one more error opens it again.
        self.errors.store(
            self.settings.breaker_errors.saturating_sub(1),
            Ordering::Relaxed,
        );
    }

    /// The uplink's answer count and whether it waits for answers, sampled by the health
    /// tick. Returns true when nothing was answered for `stall_ms` while waiting: the
    /// breaker opens (once per stall).
    pub fn observe_answers(&self, answered: u64, waiting: bool) -> bool {
        let now = Instant::now();
        let mut last = self.answers.lock();
        if answered != last.0 || !waiting {
            *last = (answered, now);
            return false;
        }
        if now.saturating_duration_since(last.1)
            >= Duration::from_millis(self.settings.stall_ms.max(1))
            && !self.breaker_open()
        {
            // Counted from now again: a stall that lasts reopens after each cool-down.
            last.1 = now;
            self.open_breaker();
            return true;
        }
        false
    }

    pub fn breaker_open(&self) -> bool {
        let until = self.breaker_until.load(Ordering::Relaxed);
        until != 0 && self.millis(Instant::now()) < until
    }

    /// A message was routed here: counts toward its send rate.
    pub fn routed(&self) {
        let s = self.millis(Instant::now()) / 1000;
        let current = self.second.load(Ordering::Relaxed);
        if s != current
            && self
                .second
                .compare_exchange(current, s, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let last = if s == current + 1 {
                self.this_second.swap(0, Ordering::Relaxed)
            } else {
                self.this_second.store(0, Ordering::Relaxed);
                0
            };
            self.last_second.store(last, Ordering::Relaxed);
        }
        self.this_second.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages per second routed here lately (a sliding one-second estimate).
    pub fn rate(&self) -> f64 {
        let ms = self.millis(Instant::now());
        let s = ms / 1000;
        let frac = (ms % 1000) as f64 / 1000.0;
        let current = self.second.load(Ordering::Relaxed);
        let this = self.this_second.load(Ordering::Relaxed) as f64;
        let last = self.last_second.load(Ordering::Relaxed) as f64;
        if s == current {
            this + last * (1.0 - frac)
        } else if s == current + 1 {
            this * (1.0 - frac)
        } else {
            0.0
        }
    }

    /// Share of the throughput cap in use (0 without a cap).
    pub fn load(&self) -> f64 {
        match self.max_tps {
            Some(max) => self.rate() / max,
            None => 0.0,
        }
    }

    pub fn over_load(&self) -> bool {
        self.max_tps.is_some() && self.load() * 100.0 > self.settings.max_load_percent
    }

    /// Whether a DEGRADED/FAILED connector gets this decision as a probe.
    pub fn probe_due(&self) -> bool {
        let pct = self.settings.probe_percent;
        if pct <= 0.0 {
            return false;
        }
        let every = (100.0 / pct).round().max(1.0) as u64;
        self.probes.fetch_add(1, Ordering::Relaxed) % every == every - 1
    }

    pub fn state(&self) -> HealthState {
        HealthState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// The last evaluated score.
    pub fn score(&self) -> f64 {
        f64::from(self.score.load(Ordering::Relaxed)) / 100.0
    }

    /// The formula, now.
    pub fn compute(&self, bound: bool) -> ScoreParts {
        let (dlr_rate, avg_latency_ms) = {
            let mut w = self.window.lock();
            w.expire(
                Instant::now(),
                Duration::from_secs(self.settings.window_secs),
            );
            let n = w.samples.len();
            let dlr =
                (n >= self.settings.min_receipts.max(1)).then(|| w.delivered as f64 / n as f64);
            let latency = (n > 0).then(|| w.latency_sum as f64 / n as f64);
            (dlr, latency)
        };
        let load = self.load();
        let score = if bound {
            let dlr_part = dlr_rate.map_or(1.0, |r| (r / self.target_dlr).min(1.0)) * 50.0;
            let latency_part = (1.0 - avg_latency_ms.unwrap_or(0.0) / 3000.0).max(0.0) * 30.0;
            let tps_part = (1.0 - load).clamp(0.0, 1.0) * 20.0;
            dlr_part + latency_part + tps_part
        } else {
            0.0
        };
        ScoreParts {
            dlr_rate,
            avg_latency_ms,
            load,
            score,
        }
    }

    /// Recompute the score and move the state (with hysteresis). Returns the change.
    pub fn evaluate(&self, bound: bool) -> Option<(HealthState, HealthState, f64)> {
        let score = self.compute(bound).score;
        self.score
            .store((score * 100.0).round() as u32, Ordering::Relaxed);
        let from = self.state();
        let s = &self.settings;
        let h = s.hysteresis.max(0.0);
        let to = if !bound {
            // Unbound: out of the candidates anyway; a reconnect starts afresh.
            from
        } else {
            match from {
                HealthState::Healthy if score < s.failed_below => HealthState::Failed,
                HealthState::Healthy if score < s.degraded_below => HealthState::Degraded,
                HealthState::Degraded if score < s.failed_below => HealthState::Failed,
                HealthState::Degraded if score >= s.degraded_below + h => HealthState::Healthy,
                HealthState::Failed if score >= s.degraded_below + h => HealthState::Healthy,
                HealthState::Failed if score >= s.failed_below + h => HealthState::Degraded,
                state => state,
            }
        };
        if to == from {
            return None;
        }
        self.state.store(to as u8, Ordering::Relaxed);
        self.transitions[to as usize].fetch_add(1, Ordering::Relaxed);
        Some((from, to, score))
    }
}

/// Why a candidate was dropped, or that it was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Kept,
    /// Kept as a probe despite its state.
    Probe,
    Unknown,
    Stopped,
    Unbound,
    BreakerOpen,
    Failed,
    Overloaded,
    QueueFull,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::Probe => "kept (probe)",
            Self::Unknown => "dropped: unknown connector",
            Self::Stopped => "dropped: stopped",
            Self::Unbound => "dropped: unbound",
            Self::BreakerOpen => "dropped: circuit breaker open",
            Self::Failed => "dropped: FAILED",
            Self::Overloaded => "dropped: over the throughput threshold",
            Self::QueueFull => "dropped: queue full",
        }
    }

    pub fn kept(self) -> bool {
        matches!(self, Self::Kept | Self::Probe)
    }
}

/// One candidate of a decision.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub connector: Arc<str>,
    pub cost: i64,
    pub score: f64,
    pub state: HealthState,
    pub verdict: Verdict,
}

/// Rank the connectors serving a network: drop the unusable ones, then probes first,
/// healthy before degraded, cheapest first, best score first. Returns every candidate
/// (kept ones first, in rank order) so that a caller can explain the decision.
pub fn rank<'a>(
    serving: &[(Arc<str>, i64)],
    view: &dyn Fn(&str) -> Option<CandidateFacts<'a>>,
) -> Vec<Candidate> {
    let mut out: Vec<(u8, Candidate)> = Vec::with_capacity(serving.len());
    for (cid, cost) in serving {
        let Some(facts) = view(cid) else {
            out.push((
                9,
                Candidate {
                    connector: cid.clone(),
                    cost: *cost,
                    score: 0.0,
                    state: HealthState::Failed,
                    verdict: Verdict::Unknown,
                },
            ));
            continue;
        };
        let h = facts.health;
        let state = h.state();
        let score = if facts.bound { h.score() } else { 0.0 };
        let verdict = if !facts.started {
            Verdict::Stopped
        } else if !facts.bound {
            Verdict::Unbound
        } else if h.breaker_open() {
            Verdict::BreakerOpen
        } else if facts.queue_full {
            Verdict::QueueFull
        } else if h.over_load() {
            Verdict::Overloaded
        } else if state != HealthState::Healthy && h.probe_due() {
            Verdict::Probe
        } else if state == HealthState::Failed {
            Verdict::Failed
        } else {
            Verdict::Kept
        };
        let class = match verdict {
            Verdict::Probe => 0,
            Verdict::Kept if state == HealthState::Healthy => 1,
            Verdict::Kept => 2,
            _ => 9,
        };
        out.push((
            class,
            Candidate {
                connector: cid.clone(),
                cost: *cost,
                score,
                state,
                verdict,
            },
        ));
    }
    // Stable: equal cost and score keep the cost table's order.
    out.sort_by(|(ca, a), (cb, b)| {
        ca.cmp(cb)
            .then(a.cost.cmp(&b.cost))
            .then(b.score.total_cmp(&a.score))
    });
    out.into_iter().map(|(_, c)| c).collect()
}

/// What [`rank`] reads of one connector.
pub struct CandidateFacts<'a> {
    pub started: bool,
    pub bound: bool,
    pub queue_full: bool,
    pub health: &'a Health,
}

#[cfg(test)]
mod tests;
