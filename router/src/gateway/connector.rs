//! A connector (an SMPP uplink to an operator) as the pipeline sees it, and the mapping
//! from Jasmin's connector options to the uplink's configuration.

use std::{path::Path, sync::Arc, time::Duration};

use smpp_core::{
    BindKind,
    client::{UplinkConfig, UplinkStats},
};

use crate::{
    config::{ConfigError, ConnectorConfig},
    lcr::{Health, HealthSettings},
    queue::{MemoryQueue, MessageQueue},
    stats::ConnectorCounters,
};

/// Longest reconnect delay, receipt expiry and so on that a connector may ask for: past
/// this, durations overflow the clock (a year is already more than anyone means).
const MAX_DELAY_SECS: f64 = 365.0 * 86_400.0;
/// The slowest uplink cap we accept: one submit_sm a day.
const MIN_THROUGHPUT: f64 = 1.0 / 86_400.0;

pub struct Connector {
    pub cid: Arc<str>,
    pub config: ConnectorConfig,
    /// Kept when the connector is reconfigured: what waits here is not lost.
    pub queue: Arc<dyn MessageQueue>,
    /// The uplink's link counters, one set across stops, starts and edits.
    pub stats: Arc<UplinkStats>,
    /// Kept across edits too, so a connector's counters are its whole life's.
    pub counters: Arc<ConnectorCounters>,
    /// Health score, state and circuit breaker (meaningful for `lcr_managed` ones).
    pub health: Health,
    /// Named in the LCR cost table: its uplink hands unanswered messages back when the
    /// link drops and sends each message once, so that they can move to another operator.
    pub lcr_managed: bool,
}

impl Connector {
    /// A connector with an empty queue and fresh counters.
    pub fn new(config: ConnectorConfig, health: &HealthSettings, lcr_managed: bool) -> Self {
        Self {
            cid: Arc::from(config.cid.as_str()),
            queue: Arc::new(MemoryQueue::new(
                config.queue_capacity,
                config.queue_max_bytes,
            )),
            stats: Arc::new(UplinkStats::default()),
            counters: Arc::new(ConnectorCounters::default()),
            health: Health::new(health, config.target_dlr, config.submit_throughput),
            lcr_managed,
            config,
        }
    }

    /// This connector with new options: same queue (with the new bounds), counters and
    /// link statistics; the health window starts again (its targets may have changed).
    pub fn reconfigured(
        &self,
        config: ConnectorConfig,
        health: &HealthSettings,
        lcr_managed: bool,
    ) -> Self {
        self.queue
            .set_bounds(config.queue_capacity, config.queue_max_bytes);
        Self {
            cid: self.cid.clone(),
            queue: self.queue.clone(),
            stats: self.stats.clone(),
            counters: self.counters.clone(),
            health: Health::new(health, config.target_dlr, config.submit_throughput),
            lcr_managed,
            config,
        }
    }

    pub fn is_bound(&self) -> bool {
        self.stats.is_bound()
    }
}

/// The uplink's configuration, or why the connector's options are unusable. Values that
/// would overflow a timer are refused here, when the configuration loads, rather than
/// panicking inside the uplink's task later.
pub fn uplink_config(c: &ConnectorConfig) -> Result<UplinkConfig, ConfigError> {
    let invalid = |what: &str| ConfigError::Invalid(format!("connector {}: {what}", c.cid));
    if c.cid.trim().is_empty() {
        return Err(ConfigError::Invalid("connector: cid is required".into()));
    }
    if c.host.trim().is_empty() || c.port == 0 {
        return Err(invalid(&format!(
            "host and port are required, got {:?}:{}",
            c.host, c.port
        )));
    }
    let bind: BindKind = c.bind.parse().map_err(|e: String| invalid(&e))?;
    let delay = |name: &str, v: f64| {
        if v.is_finite() && (0.0..=MAX_DELAY_SECS).contains(&v) {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(invalid(&format!(
                "{name} must be between 0 and {MAX_DELAY_SECS} seconds, got {v}"
            )))
        }
    };
    let on_loss = delay("con_loss_delay", c.con_loss_delay_secs)?;
    let on_failure = delay("con_fail_delay", c.con_fail_delay_secs)?;
    for (name, secs) in [
        ("elink_interval", c.elink_interval_secs),
        ("res_to", c.res_to_secs),
        ("dlr_expiry", c.dlr_expiry_secs),
    ] {
        delay(name, secs as f64)?;
    }
    // 0 means no cap, like absent.
    let throughput = match c.submit_throughput.filter(|t| *t != 0.0) {
        None => None,
        Some(t) if t.is_finite() && t >= MIN_THROUGHPUT => Some(t),
        Some(t) => {
            return Err(invalid(&format!(
                "submit_throughput must be 0 (no cap) or at least {MIN_THROUGHPUT:e}/s, got {t}"
            )));
        }
    };
    let elink = Duration::from_secs(c.elink_interval_secs.max(1));
    let tls = if c.tls {
        let name = c.tls_server_name.as_deref().unwrap_or(&c.host);
        let ca = c.tls_ca_file.as_deref().map(Path::new);
        Some(tls::ClientTls::new(name, ca).map_err(|e| invalid(&e.to_string()))?)
    } else if c.tls_ca_file.is_some() || c.tls_server_name.is_some() {
        // Likely a forgotten `tls = true`: binding in clear would leak the password.
        return Err(invalid(
            "tls_ca_file or tls_server_name given without tls = true",
        ));
    } else {
        None
    };
    let config = UplinkConfig {
        id: c.cid.clone(),
        address: format!("{}:{}", c.host, c.port),
        system_id: c.username.clone(),
        password: c.password.clone(),
        system_type: c.systype.clone(),
        bind,
        enquire_link_interval: elink,
        dead_after: elink * 3,
        response_timeout: Duration::from_secs(c.res_to_secs.max(1)),
        window: c.window.max(1),
        throughput,
        reconnect_on_loss_delay: on_loss,
        reconnect_on_failure_delay: on_failure,
        max_reconnect_delay: on_loss.max(on_failure).max(Duration::from_secs(1)),
        tls,
        ..UplinkConfig::default()
    };
    smpp_core::client::check_bind(&config).map_err(|e| invalid(&e.to_string()))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(extra: &str) -> ConnectorConfig {
        toml::from_str(&format!("cid = \"op\"\n{extra}")).expect("connector toml")
    }

    #[test]
    fn values_that_would_overflow_a_timer_are_refused_at_load() {
        assert!(uplink_config(&connector("")).is_ok());
        for bad in [
            "con_loss_delay_secs = inf",
            "con_fail_delay_secs = nan",
            "con_fail_delay_secs = -1.0",
            "con_loss_delay_secs = 1e300",
            "submit_throughput = 1e-300",
            "submit_throughput = -5.0",
            "dlr_expiry_secs = 18446744073709551615",
            "res_to_secs = 18446744073709551615",
        ] {
            let error = uplink_config(&connector(bad)).expect_err(bad);
            assert!(error.to_string().contains("connector op"), "{bad}: {error}");
        }
        let free = uplink_config(&connector("submit_throughput = 0.0")).expect("0 = no cap");
        assert_eq!(free.throughput, None);
    }

    #[test]
    fn tls_options_make_a_verifying_client() {
        assert!(uplink_config(&connector("")).expect("plain").tls.is_none());
        let on = uplink_config(&connector("tls = true\nhost = \"smsc.example.net\""))
            .expect("tls with web PKI roots");
        let name = on.tls.map(|t| t.server_name.to_str().into_owned());
        assert_eq!(name.as_deref(), Some("smsc.example.net"));
        for bad in [
            "tls = true\ntls_ca_file = \"/nonexistent/ca.pem\"",
            "tls = true\ntls_server_name = \"not a name\"",
            "tls_ca_file = \"/etc/ca.pem\"",
        ] {
            let error = uplink_config(&connector(bad)).expect_err(bad);
            assert!(error.to_string().contains("connector op"), "{bad}: {error}");
        }
    }
}
