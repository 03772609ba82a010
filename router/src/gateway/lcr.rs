//! Least-cost routing inside the gateway: the destination's network, the ranked
//! candidates of an LcrRoute, moving a message to the next candidate (each connector at
//! most once), the health tick (states, warn lines, breaker evacuation), and the
//! explanation of a decision for `smsgw admin route explain`.

use std::{
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use arc_swap::ArcSwap;
use tracing::{info, warn};

use super::{Connector, Gateway, InFlight};
use crate::{
    config::{ConfigError, RouterConfig},
    lcr::{self, Candidate, CandidateFacts, CostTable, HealthState, LcrConfig, Transition},
    model::Message,
    network::{Registry, Source},
    route::RouteKind,
};

/// How often health states are evaluated.
pub(super) const HEALTH_TICK: Duration = Duration::from_millis(100);

/// The number → network registry (replaceable at run time: `Gateway::load_networks`)
/// and the cost table (replaced by an admin change of `[lcr] costs`: `reconfigure`).
#[derive(Debug)]
pub struct LcrState {
    pub registry: ArcSwap<Registry>,
    pub costs: ArcSwap<CostTable>,
    config: LcrConfig,
}

fn invalid(e: crate::network::NetworkError) -> ConfigError {
    ConfigError::Invalid(e.to_string())
}

fn read(path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The registry as `[router.lcr]` names it: its files, or the shipped tables.
fn registry_from(c: &LcrConfig) -> Result<Registry, ConfigError> {
    let mut registry = match (&c.countries_file, c.prefix_files.is_empty()) {
        (None, true) => Registry::shipped().map_err(invalid)?,
        (countries, _) => {
            let mut r = Registry::default();
            match countries {
                Some(path) => r.add_countries(path, &read(path)?).map_err(invalid)?,
                None => r
                    .add_countries("countries.csv", crate::network::SHIPPED_COUNTRIES)
                    .map_err(invalid)?,
            }
            if c.prefix_files.is_empty() {
                for text in crate::network::SHIPPED_PREFIXES {
                    r.add_prefixes("shipped", text).map_err(invalid)?;
                }
            }
            for path in &c.prefix_files {
                r.add_prefixes(path, &read(path)?).map_err(invalid)?;
            }
            r
        }
    };
    if let Some(iso) = &c.default_country {
        registry.set_default_country(iso).map_err(invalid)?;
    }
    if let Some(path) = &c.portability_file {
        registry
            .load_portability(Path::new(path))
            .map_err(invalid)?;
    }
    Ok(registry)
}

/// `config`'s `[lcr] costs`, checked against its connectors.
pub(super) fn cost_table(config: &RouterConfig) -> Result<CostTable, ConfigError> {
    let known = |cid: &str| config.connectors.iter().any(|k| k.cid == cid);
    CostTable::build(&config.lcr.costs, &known)
}

impl LcrState {
    pub fn build(config: &RouterConfig) -> Result<Self, ConfigError> {
        let c = &config.lcr;
        Ok(Self {
            registry: ArcSwap::from_pointee(registry_from(c)?),
            costs: ArcSwap::from_pointee(cost_table(config)?),
            config: c.clone(),
        })
    }

    /// Whether `cid` is named in the cost table in force.
    pub(super) fn manages(&self, cid: &str) -> bool {
        self.costs.load().connectors().any(|m| **m == *cid)
    }

    pub(super) fn health_settings(&self) -> &crate::lcr::HealthSettings {
        &self.config.health
    }

    pub(super) fn network_of(&self, addr: &str) -> Option<NetworkPick> {
        let registry = self.registry.load();
        let r = registry.resolve(addr)?;
        Some(NetworkPick {
            mcc: r.network.mcc,
            mnc: r.network.mnc,
            operator: r.network.operator.clone(),
        })
    }
}

impl Gateway {
    /// Loads the number → network tables again from the configured files (or the
    /// shipped ones), adds `prefixes` (`prefix,mcc,mnc,operator,country,region` lines)
    /// and `ported` (`msisdn,mcc,mnc` lines) given through the admin API, checks the
    /// whole, and swaps it in. Blocking file I/O: call it off the async workers. Rows
    /// given here last until the next load or restart; the files are what persists.
    /// Returns (networks, ported numbers).
    pub fn load_networks(
        &self,
        prefixes: &str,
        ported: &str,
    ) -> Result<(usize, usize), ConfigError> {
        let mut registry = registry_from(&self.lcr.config)?;
        if !prefixes.trim().is_empty() {
            registry
                .add_prefixes("admin API", prefixes)
                .map_err(invalid)?;
        }
        if !ported.trim().is_empty() {
            registry
                .add_portability("admin API", ported)
                .map_err(invalid)?;
        }
        let counts = (registry.networks().len(), registry.ported());
        self.lcr.registry.store(Arc::new(registry));
        info!(
            networks = counts.0,
            ported = counts.1,
            "number to network tables loaded"
        );
        Ok(counts)
    }
}

/// The destination's network as a route decision keeps it.
#[derive(Debug, Clone)]
pub(super) struct NetworkPick {
    pub mcc: u16,
    pub mnc: u16,
    pub operator: Arc<str>,
}

/// An LcrRoute message's candidates (usable when it was routed, best first, with their
/// cost) and the ones it has been given to: each at most once, so never a circle.
#[derive(Debug, Clone)]
pub(super) struct LcrTrail {
    candidates: Arc<[(Arc<str>, i64)]>,
    /// Bit i: candidate i was tried. The first is tried when the trail is made.
    tried: u64,
    at: usize,
}

impl LcrTrail {
    pub fn current(&self) -> &Arc<str> {
        &self.candidates[self.at].0
    }

    pub fn cost_of(&self, cid: &str) -> Option<i64> {
        self.candidates
            .iter()
            .find(|(c, _)| **c == *cid)
            .map(|(_, cost)| *cost)
    }
}

/// At most this many candidates are kept per message (the `tried` mask).
const MAX_CANDIDATES: usize = 64;

impl Gateway {
    fn facts<'a>(&self, c: &'a Connector) -> CandidateFacts<'a> {
        CandidateFacts {
            started: c.config.start,
            bound: c.is_bound(),
            queue_full: c.queue.len() >= c.queue.capacity(),
            health: &c.health,
        }
    }

    fn ranked(&self, mcc: u16, mnc: u16) -> Vec<Candidate> {
        let costs = self.lcr.costs.load();
        let serving = costs.serving(mcc, mnc);
        let connectors = self.connectors.load();
        lcr::rank(serving, &|cid| connectors.get(cid).map(|c| self.facts(c)))
    }

    /// The ranked usable candidates for a network, and the first one's cost.
    pub(super) fn lcr_pick(&self, n: &NetworkPick) -> Option<(LcrTrail, i64)> {
        let kept: Vec<(Arc<str>, i64)> = self
            .ranked(n.mcc, n.mnc)
            .into_iter()
            .filter(|c| c.verdict.kept())
            .take(MAX_CANDIDATES)
            .map(|c| (c.connector, c.cost))
            .collect();
        let first = kept.first()?.1;
        Some((
            LcrTrail {
                candidates: kept.into(),
                tried: 1,
                at: 0,
            },
            first,
        ))
    }

    /// Moves an LcrRoute part to its next untried candidate that is bound, not broken
    /// and not FAILED. Returns false (the part unchanged) when none is left.
    pub(super) fn lcr_next(&self, f: &mut InFlight) -> bool {
        let Some(trail) = f.lcr.as_mut() else {
            return false;
        };
        let next = trail
            .candidates
            .iter()
            .enumerate()
            .position(|(i, (cid, _))| {
                trail.tried & (1 << i) == 0
                    && self.connectors.load().get(cid).is_some_and(|c| {
                        c.is_bound()
                            && !c.health.breaker_open()
                            && c.health.state() != HealthState::Failed
                    })
            });
        let Some(i) = next else { return false };
        trail.tried |= 1 << i;
        trail.at = i;
        let cid = trail.candidates[i].0.clone();
        if let Some(c) = self.connectors.load().get(&cid) {
            c.health.routed();
        }
        f.connector = cid;
        true
    }

    /// What the carrier of a part charges us per SMS.
    pub(super) fn carrier_cost(&self, f: &InFlight, cid: &str) -> i64 {
        f.lcr
            .as_ref()
            .and_then(|t| t.cost_of(cid))
            .or_else(|| {
                f.network
                    .and_then(|(mcc, mnc)| self.lcr.costs.load().cost(cid, mcc, mnc))
            })
            .unwrap_or(0)
    }

    /// A final receipt: feeds the connector's health window.
    pub(super) fn health_receipt(
        &self,
        cid: &str,
        stat: &str,
        submitted_at: chrono::DateTime<chrono::Local>,
    ) {
        if let Some(c) = self.connectors.load().get(cid)
            && c.lcr_managed
        {
            let latency = (chrono::Local::now() - submitted_at)
                .to_std()
                .unwrap_or_default();
            c.health
                .receipt(stat.trim().eq_ignore_ascii_case("DELIVRD"), latency);
        }
    }

    /// The breaker of `c` opened: its queued LcrRoute parts move on now.
    pub(super) fn breaker_opened(&self, c: &Connector, why: &str) {
        warn!(connector = %c.cid, why, "circuit breaker open");
        let _ = self.health_tx.send(Transition {
            connector: c.cid.clone(),
            from: c.health.state(),
            to: c.health.state(),
            score: c.health.score(),
            reason: format!("circuit breaker opened: {why}"),
        });
        self.move_queue(&c.cid, true);
    }

    /// Evaluates every LCR connector's score; a change of state logs one warn line and
    /// is published (audit log, metrics). A connector that turned FAILED gives its
    /// queued LcrRoute parts to their next candidates.
    pub(super) fn health_tick(&self) {
        for c in self.connectors.load().values().filter(|c| c.lcr_managed) {
            let bound = c.is_bound();
            {
                let s = &c.stats;
                let answered = s.accepted.load(Ordering::Relaxed)
                    + s.rejected.load(Ordering::Relaxed)
                    + s.throttled.load(Ordering::Relaxed);
                let waiting = bound && s.in_flight.load(Ordering::Relaxed) > 0;
                if c.health.observe_answers(answered, waiting) {
                    self.breaker_opened(
                        c,
                        "no submit_sm_resp while messages wait (dead but bound)",
                    );
                }
            }
            if let Some((from, to, score)) = c.health.evaluate(bound) {
                let parts = c.health.compute(bound);
                warn!(
                    connector = %c.cid,
                    from = %from,
                    to = %to,
                    score = format!("{score:.1}"),
                    dlr_rate = ?parts.dlr_rate,
                    avg_latency_ms = ?parts.avg_latency_ms,
                    "connector health changed"
                );
                let _ = self.health_tx.send(Transition {
                    connector: c.cid.clone(),
                    from,
                    to,
                    score,
                    reason: format!(
                        "score {score:.1} (dlr_rate {:?}, avg_latency_ms {:?}, load {:.2})",
                        parts.dlr_rate, parts.avg_latency_ms, parts.load
                    ),
                });
                if to == HealthState::Failed {
                    self.move_queue(&c.cid, true);
                }
            }
        }
    }

    /// Health state changes and breaker openings, as they happen.
    pub fn health_events(&self) -> tokio::sync::broadcast::Receiver<Transition> {
        self.health_tx.subscribe()
    }

    /// (connector, score, state, breaker open, bound) of every LCR-managed connector.
    pub fn health_snapshot(&self) -> Vec<(Arc<str>, f64, HealthState, bool, bool)> {
        let mut v: Vec<_> = self
            .connectors
            .load()
            .values()
            .filter(|c| c.lcr_managed)
            .map(|c| {
                (
                    c.cid.clone(),
                    c.health.score(),
                    c.health.state(),
                    c.health.breaker_open(),
                    c.is_bound(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Queued parts of `cid` move to another connector: those of failover routes to a
    /// bound alternative, LcrRoute parts to their next candidate. With `lcr_only`, only
    /// LcrRoute parts move (the uplink is up but should not be used).
    pub(super) fn move_queue(&self, cid: &Arc<str>, lcr_only: bool) {
        let connectors = self.connectors.load();
        let Some(connector) = connectors.get(cid) else {
            return;
        };
        let mut keep = Vec::new();
        let mut moved = 0usize;
        for item in connector.queue.drain() {
            let tag = item.request.tag;
            let target = {
                let mut shard = self.shard(tag).lock();
                match shard.get_mut(&tag) {
                    Some(f) if f.lcr.is_some() => self.lcr_next(f).then(|| f.connector.clone()),
                    Some(f) if !lcr_only => match self.failover_target(f) {
                        Some(t) => {
                            f.connector = t.clone();
                            Some(t)
                        }
                        None => None,
                    },
                    _ => None,
                }
            };
            match target.and_then(|t| connectors.get(&t)) {
                Some(other) => {
                    other.queue.push_front(item);
                    moved += 1;
                }
                None => keep.push(item),
            }
        }
        if moved > 0 {
            info!(connector = %cid, moved, "queued messages moved to other connectors");
        }
        // What stays goes back in its order.
        for item in keep.into_iter().rev() {
            connector.queue.push_front(item);
        }
    }

    /// How a message from `username` to `to` would be routed now, without sending it.
    pub fn explain(&self, username: &str, to: &str) -> Explanation {
        let snap = self.snapshot.load_full();
        let mut e = Explanation {
            to: to.to_owned(),
            ..Explanation::default()
        };
        let Some(user) = snap.directory.find(username) else {
            e.note = format!("unknown user {username}");
            return e;
        };
        let mut m = Message {
            uid: user.uid.clone(),
            gid: user.gid.clone(),
            ..Message::default()
        };
        m.destination.addr = to.to_owned();
        let registry = self.lcr.registry.load();
        if let Some(r) = registry.resolve(to) {
            e.number = Some(r.number.to_string());
            e.network = Some(format!(
                "{}-{:02} {} ({}{}), by {}",
                r.network.mcc,
                r.network.mnc,
                r.network.operator,
                r.network.country,
                if r.network.region.is_empty() {
                    String::new()
                } else {
                    format!(", {}", r.network.region)
                },
                match r.source {
                    Source::Portability => "portability".to_owned(),
                    Source::Prefix { len } => format!("prefix of {len} digits"),
                }
            ));
            e.mcc_mnc = Some((r.network.mcc, r.network.mnc));
        }
        let Some(route) = snap.mt.select(&m) else {
            e.note = "no MT route matches".into();
            return e;
        };
        e.route = format!("{:?} route, order {}", route.kind, route.order);
        e.route_rate = Some(route.rate);
        if route.kind != RouteKind::Lcr {
            e.choice = route.targets.first().map(|t| t.to_string());
            e.note = "a Jasmin route: its connectors are fixed".into();
            return e;
        }
        let Some((mcc, mnc)) = e.mcc_mnc else {
            e.note = "the destination's network is unknown: refused (no route)".into();
            return e;
        };
        for c in self.ranked(mcc, mnc) {
            e.candidates.push(ExplainedCandidate {
                connector: c.connector.to_string(),
                cost: c.cost,
                score: c.score,
                state: c.state.as_str(),
                verdict: c.verdict.as_str(),
            });
            if e.choice.is_none() && c.verdict.kept() {
                e.choice = Some(c.connector.to_string());
            }
        }
        if e.choice.is_none() {
            e.note = "no usable candidate: refused".into();
        }
        e
    }
}

/// A routing decision, explained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explanation {
    pub to: String,
    pub number: Option<String>,
    pub network: Option<String>,
    pub mcc_mnc: Option<(u16, u16)>,
    pub route: String,
    /// The matched route's rate per part (micro-units), what billing falls back to.
    pub route_rate: Option<i64>,
    pub candidates: Vec<ExplainedCandidate>,
    pub choice: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedCandidate {
    pub connector: String,
    /// Per part, micro-units.
    pub cost: i64,
    pub score: f64,
    pub state: &'static str,
    pub verdict: &'static str,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "destination  {}", self.to)?;
        writeln!(
            f,
            "number       {}",
            self.number.as_deref().unwrap_or("(not a valid number)")
        )?;
        writeln!(
            f,
            "network      {}",
            self.network.as_deref().unwrap_or("(unknown)")
        )?;
        writeln!(f, "route        {}", self.route)?;
        if !self.candidates.is_empty() {
            writeln!(f, "candidates")?;
            for c in &self.candidates {
                writeln!(
                    f,
                    "  {:<16} cost {:>10}  score {:>5.1}  {:<8}  {}",
                    c.connector,
                    crate::lcr::format_micros(c.cost),
                    c.score,
                    c.state,
                    c.verdict
                )?;
            }
        }
        writeln!(
            f,
            "choice       {}",
            self.choice.as_deref().unwrap_or("(none)")
        )?;
        if !self.note.is_empty() {
            writeln!(f, "note         {}", self.note)?;
        }
        Ok(())
    }
}
