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
