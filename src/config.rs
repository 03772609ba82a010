//! `smsgw.toml`: listeners, durability, storage and the router table. Every field has an
//! embedded default, so the gateway starts without a file.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use serde::Deserialize;
use smpp_core::{
    server::{GuardConfig, ServerConfig},
    throttle::{MAX_RATE, MIN_RATE},
};

/// The whole file. `[router]` is read by the router crate itself.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub smpp: SmppSection,
    #[serde(default)]
    pub tls: Option<TlsSection>,
    #[serde(default)]
    pub durability: DurabilitySection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub shutdown: ShutdownSection,
    #[serde(default)]
    pub http: HttpSection,
    /// OpenTelemetry traces (off unless `otlp_endpoint` is set).
    #[serde(default)]
    pub telemetry: api::telemetry::TelemetryConfig,
    #[serde(default)]
    pub admin: AdminSection,
    /// Accepted here so unknown-field checks pass; the router crate parses it itself
    /// (`router::RouterConfig::from_smsgw_toml`).
    #[serde(default, rename = "router")]
    pub _router: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmppSection {
    pub listen: SocketAddr,
    /// SMPP over TLS (needs `[tls]`); by convention port 3550.
    pub tls_listen: Option<SocketAddr>,
    pub bind_timeout_secs: u64,
    pub inactivity_timeout_secs: u64,
    pub response_timeout_secs: u64,
    pub pdu_read_timeout_secs: u64,
    pub max_command_length: usize,
    pub window: usize,
    pub outbound_window: usize,
    pub max_sessions: usize,
    pub max_sessions_per_system_id: usize,
    pub submit_rate_per_session: Option<f64>,
    pub max_connections_per_ip: usize,
    pub max_bind_failures: u32,
    pub bind_lockout_secs: u64,
}

impl Default for SmppSection {
    fn default() -> Self {
        let d = ServerConfig::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2775)),
            tls_listen: None,
            bind_timeout_secs: d.bind_timeout.as_secs(),
            inactivity_timeout_secs: d.inactivity_timeout.as_secs(),
            response_timeout_secs: d.response_timeout.as_secs(),
            pdu_read_timeout_secs: d.pdu_read_timeout.as_secs(),
            max_command_length: d.max_command_length,
            window: d.window,
            outbound_window: d.outbound_window,
            max_sessions: d.max_sessions,
            max_sessions_per_system_id: d.max_sessions_per_system_id,
            submit_rate_per_session: d.submit_rate,
            max_connections_per_ip: d.guard.max_connections_per_ip,
            max_bind_failures: d.guard.max_bind_failures,
            bind_lockout_secs: d.guard.lockout.as_secs(),
        }
    }
}

/// Longest timer a setting may ask for: past this, deadlines overflow the clock.
const MAX_TIMER_SECS: u64 = 365 * 86_400;

impl SmppSection {
    /// Values that would make every session fail, lock out every client or overflow a
    /// timer, refused when the file loads rather than discovered under traffic.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, secs) in [
            ("bind_timeout_secs", self.bind_timeout_secs),
            ("inactivity_timeout_secs", self.inactivity_timeout_secs),
            ("response_timeout_secs", self.response_timeout_secs),
            ("pdu_read_timeout_secs", self.pdu_read_timeout_secs),
            ("bind_lockout_secs", self.bind_lockout_secs),
        ] {
            anyhow::ensure!(
                (1..=MAX_TIMER_SECS).contains(&secs),
                "[smpp] {name} must be between 1 and {MAX_TIMER_SECS}, got {secs}"
            );
        }
        for (name, n) in [
            ("window", self.window),
            ("outbound_window", self.outbound_window),
            ("max_sessions", self.max_sessions),
            (
                "max_sessions_per_system_id",
                self.max_sessions_per_system_id,
            ),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("max_bind_failures", self.max_bind_failures as usize),
        ] {
            anyhow::ensure!(n > 0, "[smpp] {name} must be at least 1");
        }
        anyhow::ensure!(
            self.max_command_length >= 16,
            "[smpp] max_command_length must hold a PDU header (16 bytes)"
        );
        if let Some(rate) = self.submit_rate_per_session {
            anyhow::ensure!(
                rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate),
                "[smpp] submit_rate_per_session must be between {MIN_RATE} and {MAX_RATE}, got {rate}"
            );
        }
        Ok(())
    }

    pub fn server_config(&self, shutdown_timeout: Duration) -> ServerConfig {
        ServerConfig {
            bind_timeout: Duration::from_secs(self.bind_timeout_secs),
            inactivity_timeout: Duration::from_secs(self.inactivity_timeout_secs),
            response_timeout: Duration::from_secs(self.response_timeout_secs),
            pdu_read_timeout: Duration::from_secs(self.pdu_read_timeout_secs),
            max_command_length: self.max_command_length,
            window: self.window,
            outbound_window: self.outbound_window,
            max_sessions: self.max_sessions,
            max_sessions_per_system_id: self.max_sessions_per_system_id,
            submit_rate: self.submit_rate_per_session,
            shutdown_timeout,
            guard: GuardConfig {
                max_connections_per_ip: self.max_connections_per_ip,
                max_bind_failures: self.max_bind_failures,
                lockout: Duration::from_secs(self.bind_lockout_secs),
                ..GuardConfig::default()
            },
            ..ServerConfig::default()
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain and private key; reloaded on SIGHUP.
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DurabilitySection {
    /// `fsync` (default), `batched` or `memory`; see the README.
    pub mode: String,
    /// Where the accepted-message log lives.
    pub dir: PathBuf,
    /// `fsync` mode's group commit: the least time between the starts of two fsyncs.
    /// Under load a longer gap covers more messages with one fsync (less CPU per
    /// message) for at most this much added latency; 0 syncs as soon as the last ends.
    pub fsync_gap_us: u64,
}

impl Default for DurabilitySection {
    fn default() -> Self {
        Self {
            mode: "fsync".into(),
            dir: PathBuf::from("data/journal"),
            fsync_gap_us: journal::DEFAULT_SYNC_GAP.as_micros() as u64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// `sqlite://data/smsgw.db` (default; relative to the config file) or
    /// `postgres://…`: billing's ledger and CDR.
    pub url: String,
    /// Currency of the accounts created for router users (ISO 4217).
    pub currency: String,
    /// Jasmin's `billing_feature`: with `false`, balances and quotas are enforced in
    /// memory only (from the [router] users' quotas) and no ledger or CDR is written.
    pub billing: bool,
    /// Ledger/CDR operations billing may hold in memory while its store is away or
    /// behind (about 4 per message part); beyond it, submits are answered
    /// ESME_RTHROTTLED until the store catches up.
    pub buffer_capacity: usize,
    /// Billing's group commit: a write at least this often while anything is buffered…
    pub flush_interval_ms: u64,
    /// …or as soon as this many operations wait.
    pub batch_max: usize,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            url: "sqlite://data/smsgw.db".into(),
            currency: "USD".into(),
            billing: true,
            buffer_capacity: billing::BillingConfig::default().buffer_capacity,
            flush_interval_ms: billing::BillingConfig::default().flush_interval_ms,
            batch_max: billing::BillingConfig::default().batch_max,
        }
    }
}

/// The HTTP listener: Jasmin's HTTP API will live here (port 1401 as in Jasmin); for now
/// it serves `/health/live` and `/health/ready`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// REST v1: requests per second of an API key that has no rate of its own.
    pub api_key_rate: u32,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 1401)),
            api_key_rate: 100,
        }
    }
}

/// The gRPC admin API (`smsgw admin`): on loopback by default; every call needs one of
/// `tokens` (or `SMSGW_ADMIN_TOKEN`, named "env") as a bearer token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub tokens: Vec<AdminToken>,
    /// `[admin.tls]`: serve gRPC over TLS with this certificate (reloaded on SIGHUP).
    pub tls: Option<TlsSection>,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            tokens: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    /// Who this token is: the actor in the audit log.
    pub name: String,
    pub token: String,
    /// What the token may call: `admin` (default: everything but settlement),
    /// `charging` (Billing's Reserve/Commit/Refund/Balance/Rate, for a remote router),
    /// `read` (list, show, explain, export, balance, rate, stats).
    #[serde(default)]
    pub role: api::admin::Role,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSection {
    /// How long SIGTERM waits for sessions to unbind and queues to drain.
    pub drain_timeout_secs: u64,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        Self {
            drain_timeout_secs: 15,
        }
    }
}

/// The parsed file, its text (the router reads its own section) and its directory.
pub struct Loaded {
    pub config: Config,
    pub text: String,
    pub base_dir: PathBuf,
}

impl Config {
    /// Read `path` if given (it must exist), else `smsgw.toml` if present, else defaults;
    /// then apply environment overrides (`SMSGW_SMPP_LISTEN`, `SMSGW_DURABILITY`,
    /// `SMSGW_STORAGE_URL`, `SMSGW_ADMIN_LISTEN`, `SMSGW_ADMIN_TOKEN`).
    pub fn load(path: Option<&Path>) -> anyhow::Result<Loaded> {
        let (text, base_dir) = match path {
            Some(path) => (
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config {}", path.display()))?,
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
            ),
            None => (
                std::fs::read_to_string("smsgw.toml").unwrap_or_default(),
                PathBuf::from("."),
            ),
        };
        let mut config: Config = toml::from_str(&text).context("invalid smsgw.toml")?;
        if let Ok(listen) = std::env::var("SMSGW_SMPP_LISTEN") {
            config.smpp.listen = listen
                .parse()
                .with_context(|| format!("SMSGW_SMPP_LISTEN={listen:?} is not host:port"))?;
        }
        if let Ok(mode) = std::env::var("SMSGW_DURABILITY") {
            config.durability.mode = mode;
        }
        if let Ok(url) = std::env::var("SMSGW_STORAGE_URL") {
            config.storage.url = url;
        }
        if let Ok(listen) = std::env::var("SMSGW_ADMIN_LISTEN") {
            config.admin.listen = listen
                .parse()
                .with_context(|| format!("SMSGW_ADMIN_LISTEN={listen:?} is not host:port"))?;
        }
        if let Ok(token) = std::env::var("SMSGW_ADMIN_TOKEN") {
            config.admin.tokens.push(AdminToken {
                name: "env".into(),
                token,
                role: api::admin::Role::Admin,
            });
        }
        config.smpp.validate()?;
        Ok(Loaded {
            config,
            text,
            base_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let config: Config =
            toml::from_str("[smpp]\nlisten = \"0.0.0.0:2775\"\nwindow = 10\n").unwrap();
        assert_eq!(config.smpp.listen.port(), 2775);
        assert_eq!(config.smpp.server_config(Duration::from_secs(1)).window, 10);
        assert_eq!(config.durability.mode, "fsync");
        assert!(toml::from_str::<Config>("[smpp]\nlisten_typo = 1\n").is_err());
        let with_router: Config = toml::from_str("[[router.users]]\nuid = \"a\"\n").unwrap();
        assert!(with_router._router.is_some());
    }

    #[test]
    fn admin_token_roles() {
        let config: Config = toml::from_str(
            "[admin]\ntokens = [{ name = \"ops\", token = \"a\" },\n\
             { name = \"router\", token = \"b\", role = \"charging\" },\n\
             { name = \"look\", token = \"c\", role = \"read\" }]\n",
        )
        .unwrap();
        let roles: Vec<_> = config.admin.tokens.iter().map(|t| t.role).collect();
        use api::admin::Role;
        assert_eq!(roles, [Role::Admin, Role::Charging, Role::Read]);
        assert!(
            toml::from_str::<Config>(
                "[admin]\ntokens = [{ name = \"x\", token = \"a\", role = \"root\" }]\n"
            )
            .is_err()
        );
    }

    #[test]
    fn values_that_would_break_every_session_are_refused() {
        let ok: Config = toml::from_str("").unwrap();
        assert!(ok.smpp.validate().is_ok());
        for bad in [
            "bind_timeout_secs = 0",
            "response_timeout_secs = 18446744073709551615",
            "window = 0",
            "max_bind_failures = 0",
            "max_command_length = 8",
            "submit_rate_per_session = 0.0",
            "submit_rate_per_session = nan",
            "submit_rate_per_session = 1e300",
        ] {
            let config: Config = toml::from_str(&format!("[smpp]\n{bad}\n")).unwrap();
            assert!(config.smpp.validate().is_err(), "{bad}");
        }
    }
}
