//! What `/health/ready` reports for the running gateway: ready means a client that
//! connects now gets its messages accepted and stored.

use std::sync::atomic::Ordering;

use api::{Check, HealthSource};
use tokio_util::sync::CancellationToken;

pub struct GatewayHealth {
    /// Cancelled once SIGTERM starts the drain: new binds are refused from then on.
    pub draining: CancellationToken,
    pub billing: Option<billing::BillingEngine>,
    /// The log acknowledgements wait for; a write error makes the gateway unready (it
    /// can no longer promise what ESME_ROK promises).
    pub journal: journal::Journal,
    pub gateway: std::sync::Arc<router::Gateway>,
}

impl HealthSource for GatewayHealth {
    fn readiness(&self) -> Vec<Check> {
        let mut checks = vec![if self.draining.is_cancelled() {
            Check::new("accepting", false, "draining for shutdown")
        } else {
            Check::new("accepting", true, "")
        }];
        let stats = self.journal.stats();
        let errors = stats.write_errors.load(Ordering::Relaxed);
        let live = stats.live.load(Ordering::Relaxed);
        checks.push(Check::new(
            "journal",
            stats.healthy(),
            if stats.healthy() {
                format!("{live} records pending")
            } else {
                format!("{errors} write errors")
            },
        ));
        // Binds and new messages are taken while the replay restores; only receipts for
        // restored messages wait for it, so this informs and does not fail readiness.
        checks.push(Check::new(
            "journal_replay",
            true,
            if self.gateway.restoring() {
                "restoring in the background (receipts for restored messages wait for it)"
            } else {
                "restored"
            },
        ));
        if let Some(engine) = &self.billing {
            let m = engine.metrics();
            // While the store is away, reservations go on in memory until the buffer is
            // full; the gateway is degraded, not down, but a balancer should prefer
            // another node.
            let buffer = format!("buffered {}/{}", m.buffered, m.capacity);
            checks.push(if m.store_healthy {
                Check::new("billing_store", true, buffer)
            } else {
                let error = m.last_error.unwrap_or_default();
                Check::new(
                    "billing_store",
                    false,
                    format!("unreachable: {error}; {buffer}"),
                )
            });
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While a replay restores, readiness says so and stays ready; once it ends, it
    /// says restored.
    #[tokio::test]
    async fn readiness_tells_a_restoring_replay_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (journal, _) = journal::Journal::open(journal::JournalConfig::new(
            dir.path(),
            journal::Durability::Batched,
        ))
        .expect("journal");
        let shutdown = CancellationToken::new();
        let handle = router::Gateway::start(
            router::RouterConfig::default(),
            smpp_core::server::SessionRegistry::new(),
            shutdown.clone(),
            router::Deps {
                replay_pending: true,
                ..router::Deps::default()
            },
        )
        .expect("gateway");
        let health = GatewayHealth {
            draining: CancellationToken::new(),
            billing: None,
            journal,
            gateway: handle.gateway.clone(),
        };
        let replay = |h: &GatewayHealth| {
            h.readiness()
                .into_iter()
                .find(|c| c.name == "journal_replay")
                .expect("a journal_replay check")
        };
        let during = replay(&health);
        assert!(
            during.ok && during.detail.starts_with("restoring"),
            "{during:?}"
        );
        handle.gateway.restore(Vec::new()).await;
        let after = replay(&health);
        assert!(after.ok && after.detail == "restored", "{after:?}");
        assert!(health.readiness().iter().all(|c| c.ok));
        shutdown.cancel();
    }
}
