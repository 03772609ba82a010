use std::time::Duration;

use super::guard::GuardConfig;
use crate::frame::DEFAULT_MAX_COMMAND_LENGTH;

/// Limits and timers of the SMPP server (we are the SMSC for client ESMEs).
///
/// Defaults follow Jasmin's `[smpp-server]` where it has one (session init 30 s,
/// inactivity 300 s, response 60 s, PDU read 10 s).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A connection that has not bound after this long is closed.
    pub bind_timeout: Duration,
    /// A bound session with no PDU in either direction for this long is unbound.
    pub inactivity_timeout: Duration,
    /// How long we wait for deliver_sm_resp (and unbind_resp).
    pub response_timeout: Duration,
    /// A partial PDU older than this is answered generic_nack and the session closed.
    pub pdu_read_timeout: Duration,
    /// Each write to the ESME (up to 256 KiB of queued PDUs) must be accepted within this;
    /// otherwise the session is closed. A peer that stops reading cannot hold its slot.
    pub write_timeout: Duration,
    /// command_length above this (or under 16) closes the session.
    pub max_command_length: usize,
    /// Inbound requests handled at once per session; beyond it ESME_RTHROTTLED.
    pub window: usize,
    /// deliver_sm/data_sm sent to the ESME and not yet answered, per session.
    pub outbound_window: usize,
    /// deliver_sm/data_sm queued for one session before pushes are refused.
    pub outbound_queue: usize,
    /// Sessions at once, bound or not.
    pub max_sessions: usize,
    /// Bound sessions per system_id (the authenticator may lower it per user).
    pub max_sessions_per_system_id: usize,
    /// Submits per second per session (None = no cap), answered ESME_RTHROTTLED beyond.
    pub submit_rate: Option<f64>,
    /// How long a graceful shutdown waits for in-flight requests and unbind_resp.
    pub shutdown_timeout: Duration,
    /// Per-IP connection cap and bind brute-force lockout.
    pub guard: GuardConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind_timeout: Duration::from_secs(30),
            inactivity_timeout: Duration::from_secs(300),
            response_timeout: Duration::from_secs(60),
            pdu_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(15),
            max_command_length: DEFAULT_MAX_COMMAND_LENGTH,
            window: 256,
            outbound_window: 64,
            outbound_queue: 4096,
            max_sessions: 10_000,
            max_sessions_per_system_id: 64,
            submit_rate: None,
            shutdown_timeout: Duration::from_secs(5),
            guard: GuardConfig::default(),
        }
    }
}
