//! The gateway's own counters (per user, per connector, per client session), read from
//! the atomics the message path already bumps.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use router::{
    Gateway,
    gateway::Connector,
    lcr::HealthState,
    stats::{ConnectorCounters, RECEIPT_STATES, REFUSAL_REASONS, UserCounters},
};

use super::encode::{Labels, counters, gauge, gauges, histograms};

#[derive(Clone)]
pub struct GatewayCollector(pub Arc<Gateway>);

impl fmt::Debug for GatewayCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GatewayCollector")
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn user(uid: &str) -> Labels {
    vec![("user", uid.to_owned())]
}

fn connector(cid: &str) -> Labels {
    vec![("connector", cid.to_owned())]
}

impl Collector for GatewayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut users = self.0.all_user_counters();
        users.sort_by(|a, b| a.0.cmp(&b.0));
        encode_users(&mut encoder, &users)?;
        let mut connectors: Vec<Arc<Connector>> = self.0.connectors();
        connectors.sort_by(|a, b| a.cid.cmp(&b.cid));
        encode_connectors(&mut encoder, &connectors)?;

        let registry = self.0.registry();
        let mut sessions: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        for s in registry.bound_sessions() {
            *sessions
                .entry((s.system_id.to_string(), s.kind.as_str()))
                .or_default() += 1;
        }
        gauges(
            &mut encoder,
            "smsgw_smpp_sessions_bound",
            "Client SMPP sessions bound now, by system_id and bind kind.",
            sessions.into_iter().map(|((system_id, kind), n)| {
                (
                    vec![("system_id", system_id), ("bind", kind.to_owned())],
                    n as f64,
                )
            }),
        )?;
        gauge(
            &mut encoder,
            "smsgw_smpp_connections",
            "Open client SMPP connections, bound or not.",
            registry.connections() as f64,
        )?;
        gauge(
            &mut encoder,
            "smsgw_messages_in_flight",
            "Message parts accepted and not yet final (queued or awaiting the operator).",
            self.0.in_flight() as f64,
        )
    }
}

type UserRows<'a> = &'a [(Arc<str>, Arc<UserCounters>)];

fn encode_users(encoder: &mut DescriptorEncoder<'_>, users: UserRows<'_>) -> fmt::Result {
    let per_user = |pick: fn(&UserCounters) -> &AtomicU64| {
        users.iter().map(move |(uid, c)| (user(uid), load(pick(c))))
    };
    counters(
        encoder,
        "smsgw_messages_submitted",
        "Messages clients submitted (SMPP submit_sm and HTTP), accepted or not.",
        per_user(|c| &c.submit_requests),
    )?;
    counters(
        encoder,
        "smsgw_messages_accepted",
        "Messages charged, journaled and queued: the client got our message id.",
        per_user(|c| &c.accepted),
    )?;
    counters(
        encoder,
        "smsgw_messages_refused",
        "Messages refused, by reason (throughput refusals are smsgw_messages_throttled).",
        users.iter().flat_map(|(uid, c)| {
            REFUSAL_REASONS
                .iter()
                .zip(&c.refused_by)
                .filter(|(_, n)| load(n) > 0)
                .map(|(reason, n)| {
                    let mut labels = user(uid);
                    labels.push(("reason", (*reason).to_owned()));
                    (labels, load(n))
                })
        }),
    )?;
    counters(
        encoder,
        "smsgw_messages_throttled",
        "Messages refused because the user's throughput quota was exceeded.",
        per_user(|c| &c.throttled),
    )?;
    counters(
        encoder,
        "smsgw_user_receipts",
        "Delivery receipts matched to the user's messages.",
        per_user(|c| &c.receipts),
    )?;
    counters(
        encoder,
        "smsgw_user_mo",
        "Mobile-originated messages routed to the user.",
        per_user(|c| &c.mo),
    )
}

fn encode_connectors(
    encoder: &mut DescriptorEncoder<'_>,
    connectors: &[Arc<Connector>],
) -> fmt::Result {
    let per = |pick: fn(&ConnectorCounters) -> &AtomicU64| {
        connectors
            .iter()
            .map(move |c| (connector(&c.cid), load(pick(&c.counters))))
    };
    type Pick = fn(&ConnectorCounters) -> &AtomicU64;
    let table: [(&str, &str, Pick); 7] = [
        (
            "smsgw_connector_queued",
            "Message parts queued for the connector.",
            |c| &c.queued,
        ),
        (
            "smsgw_connector_sent",
            "Parts the operator accepted (submit_sm_resp ESME_ROK).",
            |c| &c.submitted,
        ),
        (
            "smsgw_connector_failed",
            "Parts failed for good (operator error or no answer).",
            |c| &c.failed,
        ),
        (
            "smsgw_connector_requeued",
            "Parts sent again after an error the connector requeues on.",
            |c| &c.requeued,
        ),
        (
            "smsgw_connector_expired",
            "Parts whose validity ended in the queue.",
            |c| &c.expired,
        ),
        (
            "smsgw_receipts_unmatched",
            "Receipts from the operator that matched no message.",
            |c| &c.receipts_unmatched,
        ),
        (
            "smsgw_mo",
            "Mobile-originated messages from the operator.",
            |c| &c.mo,
        ),
    ];
    for (name, help, pick) in table {
        counters(encoder, name, help, per(pick))?;
    }
    counters(
        encoder,
        "smsgw_receipts",
        "Matched delivery receipts from the operator, by stat word.",
        connectors.iter().flat_map(|c| {
            RECEIPT_STATES
                .iter()
                .zip(&c.counters.receipts_by_state)
                .filter(|(_, n)| load(n) > 0)
                .map(|(state, n)| {
                    let mut labels = connector(&c.cid);
                    labels.push(("state", (*state).to_owned()));
                    (labels, load(n))
                })
        }),
    )?;
    let uplink = |pick: fn(&smpp_core::client::UplinkStats) -> u64| {
        connectors.iter().map(move |c| {
            let value = pick(&c.stats);
            (connector(&c.cid), value)
        })
    };
    counters(
        encoder,
        "smsgw_uplink_throttled",
        "submit_sm the operator answered ESME_RTHROTTLED/ESME_RMSGQFUL (sent again later).",
        uplink(|s| s.throttled.load(Ordering::Relaxed)),
    )?;
    counters(
        encoder,
        "smsgw_uplink_timeouts",
        "submit_sm without an answer within res_to.",
        uplink(|s| s.timeouts.load(Ordering::Relaxed)),
    )?;
    counters(
        encoder,
        "smsgw_uplink_binds",
        "Successful binds of the uplink (reconnects show as increases).",
        uplink(|s| s.connects.load(Ordering::Relaxed)),
    )?;
    gauges(
        encoder,
        "smsgw_connector_queue_depth",
        "Parts waiting in the connector's queue.",
        connectors
            .iter()
            .map(|c| (connector(&c.cid), c.queue.len() as f64)),
    )?;
    gauges(
        encoder,
        "smsgw_connector_queue_capacity",
        "Capacity of the connector's queue.",
        connectors
            .iter()
            .map(|c| (connector(&c.cid), c.queue.capacity() as f64)),
    )?;
    gauges(
        encoder,
        "smsgw_connector_bound",
        "1 while the uplink is bound to the operator.",
        connectors
            .iter()
            .map(|c| (connector(&c.cid), f64::from(u8::from(c.is_bound())))),
    )?;
    gauges(
        encoder,
        "smsgw_connector_in_flight",
        "submit_sm sent and not yet answered (the uplink's window).",
        uplink(|s| s.in_flight.load(Ordering::Relaxed) as u64).map(|(l, v)| (l, v as f64)),
    )?;
    histograms(
        encoder,
        "smsgw_submit_response_seconds",
        "From submit_sm to the operator's submit_sm_resp.",
        connectors
            .iter()
            .map(|c| (connector(&c.cid), c.counters.submit_response.snapshot())),
    )?;
    encode_health(encoder, connectors)?;
    histograms(
        encoder,
        "smsgw_delivery_receipt_seconds",
        "From the client's submit to the operator's final delivery receipt.",
        connectors
            .iter()
            .map(|c| (connector(&c.cid), c.counters.receipt_delay.snapshot())),
    )
}

/// Least-cost routing: health score, state, breaker and transitions of the connectors
/// named in the LCR cost table.
fn encode_health(
    encoder: &mut DescriptorEncoder<'_>,
    connectors: &[Arc<Connector>],
) -> fmt::Result {
    let lcr: Vec<&Arc<Connector>> = connectors.iter().filter(|c| c.lcr_managed).collect();
    gauges(
        encoder,
        "smsgw_connector_health_score",
        "LCR health score (0-100): delivery rate, receipt latency and spare throughput.",
        lcr.iter().map(|c| {
            let score = if c.is_bound() { c.health.score() } else { 0.0 };
            (connector(&c.cid), score)
        }),
    )?;
    gauges(
        encoder,
        "smsgw_connector_health_state",
        "1 for the connector's LCR health state (HEALTHY, DEGRADED, FAILED), 0 for the others.",
        lcr.iter().flat_map(|c| {
            let now = c.health.state();
            HealthState::ALL.into_iter().map(move |s| {
                let mut labels = connector(&c.cid);
                labels.push(("state", s.as_str().to_owned()));
                (labels, f64::from(u8::from(s == now)))
            })
        }),
    )?;
    gauges(
        encoder,
        "smsgw_connector_breaker_open",
        "1 while the connector's circuit breaker is open (consecutive submit errors).",
        lcr.iter().map(|c| {
            (
                connector(&c.cid),
                f64::from(u8::from(c.health.breaker_open())),
            )
        }),
    )?;
    counters(
        encoder,
        "smsgw_connector_health_transitions",
        "Changes of LCR health state, by the state entered.",
        lcr.iter().flat_map(|c| {
            HealthState::ALL.into_iter().map(move |s| {
                let mut labels = connector(&c.cid);
                labels.push(("state", s.as_str().to_owned()));
                (
                    labels,
                    c.health.transitions[s as usize].load(Ordering::Relaxed),
                )
            })
        }),
    )?;
    counters(
        encoder,
        "smsgw_connector_breaker_openings",
        "Times the connector's circuit breaker opened.",
        lcr.iter().map(|c| {
            (
                connector(&c.cid),
                c.health.breaker_openings.load(Ordering::Relaxed),
            )
        }),
    )
}
