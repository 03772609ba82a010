use std::time::Duration;

use crate::{bind::BindKind, frame::DEFAULT_MAX_COMMAND_LENGTH};

/// One uplink to an operator's SMSC (a Jasmin "smppcc" connector).
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// Connector id, used in logs and handed back with every event.
    pub id: String,
    /// host:port of the SMSC.
    pub address: String,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub bind: BindKind,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: String,
    pub connect_timeout: Duration,
    /// Wait this long for bind_*_resp (Jasmin `bind_to`).
    pub bind_timeout: Duration,
    /// Send enquire_link after this long without sending anything (Jasmin `elink_interval`).
    pub enquire_link_interval: Duration,
    /// Declare the link dead after this long without receiving anything.
    pub dead_after: Duration,
    /// Wait this long for each submit_sm_resp (Jasmin `res_to`).
    pub response_timeout: Duration,
    /// Each write to the SMSC (up to 256 KiB of queued PDUs) must be accepted within this,
    /// or the link is dropped and reconnected.
    pub write_timeout: Duration,
    /// submit_sm in flight at once.
    pub window: usize,
    /// deliver_sm/data_sm from the SMSC handled at once (None = `window`). With this
    /// many handlers running the link stops reading, which pushes back on the SMSC.
    pub max_inbound: Option<usize>,
    /// submit_sm per second (Jasmin `submit_throughput`); None = no cap.
    pub throughput: Option<f64>,
    /// Reconnect after an established link is lost (Jasmin `con_loss_retry`/`con_loss_delay`).
    pub reconnect_on_loss: bool,
    pub reconnect_on_loss_delay: Duration,
    /// Reconnect after a connect or bind failure (Jasmin `con_fail_retry`/`con_fail_delay`).
    pub reconnect_on_failure: bool,
    pub reconnect_on_failure_delay: Duration,
    /// Cap of the exponential backoff between repeated failures.
    pub max_reconnect_delay: Duration,
    /// First pause after ESME_RTHROTTLED/ESME_RMSGQFUL; doubles while throttling lasts.
    pub throttle_pause: Duration,
    pub max_throttle_pause: Duration,
    /// Sends of one message whose fate is unknown (response timeout, link lost) before it
    /// is reported failed.
    pub max_attempts: u32,
    pub max_command_length: usize,
    /// How long a stop waits for in-flight responses and unbind_resp.
    pub shutdown_timeout: Duration,
    /// Connect over TLS (Jasmin `ssl = yes`).
    pub tls: Option<tls::ClientTls>,
    /// When the link is lost, report what was sent and not answered (as `TimedOut`) and
    /// what waits for a resend (as `NotSent`) at once, instead of sending it again after
    /// the reconnect: the owner moves it to another uplink (least-cost routing failover).
    pub hand_back_on_loss: bool,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        Self {
            id: "smppc".into(),
            address: "127.0.0.1:2775".into(),
            system_id: "smppclient".into(),
            password: "password".into(),
            system_type: String::new(),
            bind: BindKind::Transceiver,
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
            connect_timeout: Duration::from_secs(10),
            bind_timeout: Duration::from_secs(30),
            enquire_link_interval: Duration::from_secs(30),
            dead_after: Duration::from_secs(90),
            response_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(15),
            window: 64,
            max_inbound: None,
            throughput: None,
            reconnect_on_loss: true,
            reconnect_on_loss_delay: Duration::from_secs(10),
            reconnect_on_failure: true,
            reconnect_on_failure_delay: Duration::from_secs(10),
            max_reconnect_delay: Duration::from_secs(120),
            throttle_pause: Duration::from_millis(200),
            max_throttle_pause: Duration::from_secs(5),
            max_attempts: 5,
            max_command_length: DEFAULT_MAX_COMMAND_LENGTH,
            shutdown_timeout: Duration::from_secs(5),
            tls: None,
            hand_back_on_loss: false,
        }
    }
}
