//! `smsgw.admin.v1.Stats` and the connector listing: counters from `router::stats`,
//! read without locks on the message path.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use proto::admin::{self as pb, stats_server::Stats};
use router::{
    RouterConfig,
    config::ConnectorConfig,
    stats::{ConnectorCounters, UserCounters},
};
use tonic::{Request, Response, Status};

use super::apply::{AdminState, redact};

pub struct StatsService {
    state: Arc<AdminState>,
}

impl StatsService {
    pub fn new(state: Arc<AdminState>) -> Self {
        Self { state }
    }
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn user_counters(uid: &str, c: &UserCounters) -> pb::UserCounters {
    pb::UserCounters {
        uid: uid.to_owned(),
        submit_requests: get(&c.submit_requests),
        accepted: get(&c.accepted),
        refused: get(&c.refused),
        throttled: get(&c.throttled),
        receipts: get(&c.receipts),
        mo: get(&c.mo),
    }
}

fn connector_counters(cid: &str, bound: bool, c: &ConnectorCounters) -> pb::ConnectorCounters {
    pb::ConnectorCounters {
        cid: cid.to_owned(),
        bound,
        queued: get(&c.queued),
        submitted: get(&c.submitted),
        failed: get(&c.failed),
        requeued: get(&c.requeued),
        expired: get(&c.expired),
        receipts: get(&c.receipts),
        receipts_unmatched: get(&c.receipts_unmatched),
        mo: get(&c.mo),
    }
}

/// One SMPP connector's status: whether its uplink runs and is bound, its counters, the
/// parts waiting for it, and its options (password redacted).
pub fn smpp_connector(state: &AdminState, c: &ConnectorConfig) -> pb::Connector {
    let live = state.gateway.connector(&c.cid);
    let bound = live.as_ref().is_some_and(|l| l.is_bound());
    let config_json = serde_json::to_value(c)
        .map(|v| redact(v).to_string())
        .unwrap_or_default();
    pb::Connector {
        cid: c.cid.clone(),
        kind: "smpp".into(),
        target: format!("{}:{}", c.host, c.port),
        bind: c.bind.clone(),
        bound,
        started: state.gateway.is_started(&c.cid),
        counters: live.map(|l| connector_counters(&c.cid, bound, &l.counters)),
        config_json,
        pending: state.gateway.pending_on(&c.cid) as u64,
    }
}

/// SMPP uplinks (with bind state and counters) then HTTP connectors.
pub fn connectors(state: &AdminState, config: &RouterConfig) -> pb::ConnectorList {
    let mut list: Vec<pb::Connector> = config
        .connectors
        .iter()
        .map(|c| smpp_connector(state, c))
        .collect();
    for c in &config.http_connectors {
        list.push(pb::Connector {
            cid: c.cid.clone(),
            kind: "http".into(),
            target: c.url.clone(),
            bind: c.method.clone(),
            bound: false,
            started: true,
            counters: None,
            config_json: String::new(),
            pending: 0,
        });
    }
    pb::ConnectorList { connectors: list }
}

#[tonic::async_trait]
impl Stats for StatsService {
    async fn user_stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::UserStatsList>, Status> {
        let id = request.into_inner().id;
        let config = self.state.current().await;
        let users = config
            .users
            .iter()
            .filter(|u| id.is_empty() || u.uid == id)
            .map(|u| user_counters(&u.uid, &self.state.gateway.user_counters(&u.uid)))
            .collect();
        Ok(Response::new(pb::UserStatsList { users }))
    }

    async fn connector_stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::ConnectorStatsList>, Status> {
        let id = request.into_inner().id;
        let config = self.state.current().await;
        let connectors = connectors(&self.state, &config)
            .connectors
            .into_iter()
            .filter(|c| id.is_empty() || c.cid == id)
            .filter_map(|c| c.counters)
            .collect();
        Ok(Response::new(pb::ConnectorStatsList { connectors }))
    }
}
