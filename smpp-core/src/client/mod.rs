//! The client side: uplinks that bind to operators' SMSCs as an ESME.

mod config;
mod connection;
mod handler;

use std::{
    collections::VecDeque,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

pub use config::UplinkConfig;
pub use connection::ConnectError;
pub use handler::{
    Inbound, LinkState, SubmitOutcome, SubmitRequest, SubmitResult, SubmitSource, UplinkHandler,
    UplinkStats,
};

use connection::SessionEnd;

/// One operator link: connects, binds, sends what `source` yields within the window and
/// throughput cap, and reconnects with backoff until stopped.
pub struct Uplink<S, H> {
    config: Arc<UplinkConfig>,
    source: S,
    handler: Arc<H>,
    stats: Arc<UplinkStats>,
    /// Messages to send before taking new ones: throttled, timed out, or in flight when a
    /// link dropped. Kept across reconnects.
    retry: VecDeque<SubmitRequest>,
}

impl<S: SubmitSource, H: UplinkHandler> Uplink<S, H> {
    pub fn new(config: UplinkConfig, source: S, handler: Arc<H>) -> Self {
        Self::with_stats(config, source, handler, Arc::new(UplinkStats::default()))
    }

    /// Counting into `stats`: a link stopped and started again (or reconfigured) by its
    /// owner keeps one set of counters. Run one uplink at a time on a set.
    pub fn with_stats(
        config: UplinkConfig,
        source: S,
        handler: Arc<H>,
        stats: Arc<UplinkStats>,
    ) -> Self {
        Self {
            config: Arc::new(config),
            source,
            handler,
            stats,
            retry: VecDeque::new(),
        }
    }

    pub fn stats(&self) -> Arc<UplinkStats> {
        self.stats.clone()
    }

    /// Run until `shutdown` is cancelled or the source ends.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let span = tracing::info_span!("uplink", id = %self.config.id);
        async {
            let mut failures: u32 = 0;
            loop {
                if shutdown.is_cancelled() {
                    break;
                }
                self.handler.on_state(LinkState::Connecting);
                let delay = match connection::connect(&self.config).await {
                    Err(error) => {
                        warn!(%error, "connect or bind failed");
                        self.handler.on_state(LinkState::Disconnected {
                            reason: error.to_string(),
                        });
                        if !self.config.reconnect_on_failure {
                            break;
                        }
                        failures = failures.saturating_add(1);
                        backoff(
                            self.config.reconnect_on_failure_delay,
                            failures,
                            &self.config,
                        )
                    }
                    Ok(link) => {
                        info!("bound");
                        failures = 0;
                        self.stats.connects.fetch_add(1, Ordering::Relaxed);
                        self.stats.bound.store(true, Ordering::Relaxed);
                        self.handler.on_state(LinkState::Bound);
                        let end = connection::run(
                            link,
                            &self.config,
                            &mut self.source,
                            &self.handler,
                            &self.stats,
                            &mut self.retry,
                            &shutdown,
                        )
                        .await;
                        self.stats.bound.store(false, Ordering::Relaxed);
                        match end {
                            SessionEnd::Stopped => break,
                            SessionEnd::Lost(reason) => {
                                warn!(%reason, "link lost");
                                self.handler.on_state(LinkState::Disconnected { reason });
                                if !self.config.reconnect_on_loss {
                                    break;
                                }
                                failures = failures.saturating_add(1);
                                backoff(self.config.reconnect_on_loss_delay, failures, &self.config)
                            }
                        }
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            // Nothing waiting here is dropped silently: the owner learns it was not sent.
            for request in self.retry.drain(..) {
                self.handler.on_submit_result(SubmitResult {
                    tag: request.tag,
                    outcome: SubmitOutcome::NotSent,
                    latency: Duration::ZERO,
                    attempts: request.attempts,
                    request: Some(request),
                });
            }
            self.handler.on_state(LinkState::Stopped);
            info!("uplink stopped");
        }
        .instrument(span)
        .await
    }
}

/// Whether the bind's fields fit SMPP 3.4's lengths (system_id 15, password 8,
/// system_type 12, address_range 40): a link whose bind cannot be encoded would only
/// retry for ever, so owners check before they start one.
pub fn check_bind(config: &UplinkConfig) -> Result<(), ConnectError> {
    connection::bind_pdu(config).map(|_| ())
}

/// `base · 2^(failures−1)`, capped, with jitter in [50 %, 100 %] so that many links
/// dropped together do not reconnect in lockstep.
fn backoff(base: Duration, failures: u32, config: &UplinkConfig) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let delay = base
        .saturating_mul(1u32 << exp)
        .min(config.max_reconnect_delay.max(base));
    let factor = rand::rng().random_range(0.5..=1.0);
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = UplinkConfig {
            max_reconnect_delay: Duration::from_secs(8),
            ..Default::default()
        };
        let base = Duration::from_secs(1);
        assert!(backoff(base, 1, &config) <= base);
        assert!(backoff(base, 1, &config) >= base / 2);
        assert!(backoff(base, 3, &config) >= Duration::from_secs(2));
        assert!(backoff(base, 30, &config) <= Duration::from_secs(8));
    }
}
