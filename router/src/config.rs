//! The `[router]` section of smsgw.toml (or the file it names): users, groups,
//! connectors, filters, routes and interceptors, until the admin API stores them.

use std::{path::Path, time::Duration};

use serde::{Deserialize, Serialize};

/// Everything the router needs, as read from TOML.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Load the router configuration from this file instead (only in `[router]` of smsgw.toml).
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub connectors: Vec<ConnectorConfig>,
    #[serde(default)]
    pub http_connectors: Vec<HttpConnectorConfig>,
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
    #[serde(default)]
    pub mt_routes: Vec<RouteConfig>,
    #[serde(default)]
    pub mo_routes: Vec<RouteConfig>,
    #[serde(default)]
    pub mt_interceptors: Vec<InterceptorConfig>,
    #[serde(default)]
    pub mo_interceptors: Vec<InterceptorConfig>,
    /// Least-cost routing: number → network tables, operator costs, health scoring.
    #[serde(default)]
    pub lcr: crate::lcr::LcrConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("router configuration: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("router configuration: {0}")]
    Invalid(String),
}

impl RouterConfig {
    /// Parse a router table (the content of `[router]`, or a file of its own).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Read a file holding a router table.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Take `[router]` from a whole smsgw.toml; if it names a `file`, load that instead
    /// (relative to `base_dir`).
    pub fn from_smsgw_toml(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct Outer {
            #[serde(default)]
            router: Option<toml::Value>,
        }
        let outer: Outer = toml::from_str(text)?;
        let Some(value) = outer.router else {
            return Ok(Self::default());
        };
        let config: Self = value.try_into()?;
        let (mut config, dir) = match &config.file {
            Some(file) => {
                let path = base_dir.join(file);
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (Self::from_file(&path)?, dir)
            }
            None => (config, base_dir.to_path_buf()),
        };
        config.lcr.resolve_paths(&dir);
        Ok(config)
    }
}

fn yes() -> bool {
    true
}

/// Knobs that Jasmin spreads over jasmin.cfg sections.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// A receipt that arrives before its submit_sm_resp is held this long (ms).
    pub early_receipt_hold_ms: u64,
    /// Receipts and MO kept per user while none of its receiver binds is up.
    pub pending_per_user: usize,
    /// How long such a kept receipt or MO waits (s).
    pub pending_expiry_secs: u64,
    /// Send an ACCEPTD receipt to SMPP users on submit_sm_resp OK (Jasmin
    /// `smpp_receipt_on_success_submit_sm_resp`).
    pub smpp_receipt_on_submit_ok: bool,
    /// One receipt for a whole multipart message (true) or one per part (false).
    pub multipart_receipt_whole: bool,
    /// Answer an MO that no route takes with this deliver_sm_resp status (0 = ESME_ROK
    /// as Jasmin does). Default ESME_RSYSERR (0x08).
    pub unroutable_mo_status: u32,
    /// Parts of a long MO wait this long for the others (s).
    pub mo_reassembly_timeout_secs: u64,
    /// HTTP long content: most parts (beyond it the message is refused, not cut); 1 to
    /// 255, the most a UDH or the SAR TLVs can number.
    #[serde(deserialize_with = "max_parts")]
    pub long_content_max_parts: usize,
    /// Script operation limit (interceptors and script filters).
    pub script_max_operations: u64,
    pub http_timeout_ms: u64,
    pub http_retry_delay_ms: u64,
    /// Retries after the first attempt (Jasmin: 3, so 4 attempts).
    pub http_max_retries: u32,
    /// Wait for the ESME's deliver_sm_resp to an MO this long before keeping it for later (ms).
    pub smpp_mo_response_timeout_ms: u64,
    /// A receipt for a bound SMPP client is relayed: the operator's deliver_sm is
    /// answered once the client answered ours, and nothing is journaled (a crash before
    /// that leaves the receipt with the operator, which sends it again). A client that
    /// does not answer within this time (ms) gets the receipt journaled and kept for
    /// redelivery, and then the operator is answered. 0: always journal first.
    pub receipt_relay_wait_ms: u64,
    /// PEM file of CA(s) trusted for https callbacks besides the public web PKI roots.
    pub http_ca_file: Option<String>,
}

fn max_parts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if (1..=255).contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "long_content_max_parts must be 1 to 255, not {n}"
        )))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            early_receipt_hold_ms: 10_000,
            pending_per_user: 10_000,
            pending_expiry_secs: 86_400,
            smpp_receipt_on_submit_ok: false,
            multipart_receipt_whole: true,
            unroutable_mo_status: 0x08,
            mo_reassembly_timeout_secs: 300,
            long_content_max_parts: 5,
            script_max_operations: 100_000,
            http_timeout_ms: 30_000,
            http_retry_delay_ms: 30_000,
            http_max_retries: 3,
            smpp_mo_response_timeout_ms: 30_000,
            receipt_relay_wait_ms: 1_000,
            http_ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub gid: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub uid: String,
    pub username: String,
    pub password: String,
    pub gid: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub authorizations: AuthorizationsConfig,
    #[serde(default)]
    pub value_filters: ValueFiltersConfig,
    #[serde(default)]
    pub defaults: DefaultsConfig,
    #[serde(default)]
    pub quotas: QuotasConfig,
    #[serde(default)]
    pub smpp: SmppCredConfig,
}

/// `mt_messaging_cred authorization` (all true by default, as in Jasmin).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationsConfig {
    pub http_send: bool,
    pub http_balance: bool,
    pub http_rate: bool,
    pub smpps_send: bool,
    pub http_long_content: bool,
    pub dlr_level: bool,
    pub http_dlr_method: bool,
    pub src_addr: bool,
    pub priority: bool,
    pub validity_period: bool,
    pub hex_content: bool,
    pub schedule_delivery_time: bool,
}

impl Default for AuthorizationsConfig {
    fn default() -> Self {
        Self {
            http_send: true,
            http_balance: true,
            http_rate: true,
            smpps_send: true,
            http_long_content: true,
            dlr_level: true,
            http_dlr_method: true,
            src_addr: true,
            priority: true,
            validity_period: true,
            hex_content: true,
            schedule_delivery_time: true,
        }
    }
}

/// `mt_messaging_cred valuefilter` regexes (matched at the start, as Python's re.match).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValueFiltersConfig {
    pub dst_addr: Option<String>,
    pub src_addr: Option<String>,
    pub priority: Option<String>,
    pub validity_period: Option<String>,
    pub content: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsConfig {
    pub src_addr: Option<String>,
}

/// `mt_messaging_cred quota`. Absent = unlimited ("ND").
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasConfig {
    /// Money as a decimal string ("12.50"), kept as integer micro-units.
    pub balance: Option<String>,
    pub sms_count: Option<u64>,
    /// Messages per second over SMPP (0 = unlimited).
    pub smpps_throughput: Option<f64>,
    /// Messages per second over HTTP (0 = unlimited).
    pub http_throughput: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmppCredConfig {
    pub bind: bool,
    pub max_bindings: Option<usize>,
}

impl Default for SmppCredConfig {
    fn default() -> Self {
        Self {
            bind: true,
            max_bindings: None,
        }
    }
}

/// An SMPP uplink to an operator (Jasmin `smppccm`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    pub cid: String,
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_username")]
    pub username: String,
    #[serde(default = "default_password")]
    pub password: String,
    #[serde(default)]
    pub systype: String,
    /// transceiver, transmitter or receiver.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// submit_sm per second; absent or 0 = no cap (Jasmin's default of 1/s is its most
    /// complained-about setting).
    #[serde(default)]
    pub submit_throughput: Option<f64>,
    #[serde(default = "default_window")]
    pub window: usize,
    /// Messages waiting for this uplink before clients get ESME_RMSGQFUL.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// …and bytes (text, TLVs and bookkeeping of the waiting parts).
    #[serde(default = "default_queue_bytes")]
    pub queue_max_bytes: usize,
    #[serde(default = "default_elink")]
    pub elink_interval_secs: u64,
    #[serde(default = "default_res_to")]
    pub res_to_secs: u64,
    #[serde(default = "default_reconnect")]
    pub con_loss_delay_secs: f64,
    #[serde(default = "default_reconnect")]
    pub con_fail_delay_secs: f64,
    /// Fills an empty source_addr after the user's default.
    #[serde(default)]
    pub src_addr: Option<String>,
    /// How this operator's receipt ids relate to its submit_sm_resp ids: `exact`,
    /// `hex` (receipts in hex), `decimal` (receipts in decimal) or `auto` (exact, else
    /// a hex/decimal alias only when unambiguous). Jasmin `dlr_msgid` 0 / 2 / 1.
    #[serde(default)]
    pub dlr_id_form: crate::idmap::IdForm,
    /// How long operator ids are kept for receipt matching (s).
    #[serde(default = "default_dlr_expiry")]
    pub dlr_expiry_secs: u64,
    /// submit_sm_resp statuses that requeue the message (Jasmin `submit_error_retrial`,
    /// throttling is retried by the uplink itself).
    #[serde(default = "default_retry_statuses")]
    pub requeue_statuses: Vec<u32>,
    #[serde(default = "default_requeue_count")]
    pub requeue_count: u32,
    #[serde(default = "default_requeue_delay")]
    pub requeue_delay_ms: u64,
    /// Start the uplink with the gateway.
    #[serde(default = "yes")]
    pub start: bool,
    /// Bind over TLS (Jasmin `ssl`). The operator's certificate is always verified,
    /// against `tls_ca_file` when given, else the public web PKI roots.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA(s) that signed the operator's certificate.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// Name the certificate must carry; default `host`.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Expected delivered share of final receipts for the health score (LcrRoute);
    /// `[lcr.health] target_dlr` when absent.
    #[serde(default)]
    pub target_dlr: Option<f64>,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    2775
}
fn default_username() -> String {
    "smppclient".into()
}
fn default_password() -> String {
    "password".into()
}
fn default_bind() -> String {
    "transceiver".into()
}
fn default_window() -> usize {
    64
}
fn default_queue() -> usize {
    100_000
}
fn default_queue_bytes() -> usize {
    64 << 20
}
fn default_elink() -> u64 {
    30
}
fn default_res_to() -> u64 {
    120
}
fn default_reconnect() -> f64 {
    10.0
}
fn default_dlr_expiry() -> u64 {
    86_400
}
fn default_retry_statuses() -> Vec<u32> {
    // ESME_RSYSERR and ESME_RINVSCHED, as Jasmin's submit_error_retrial.
    vec![0x08, 0x61]
}
fn default_requeue_count() -> u32 {
    2
}
fn default_requeue_delay() -> u64 {
    30_000
}

impl ConnectorConfig {
    /// A connector with every setting at its default.
    pub fn named(cid: &str) -> Self {
        Self {
            cid: cid.to_owned(),
            host: default_host(),
            port: default_port(),
            username: default_username(),
            password: default_password(),
            systype: String::new(),
            bind: default_bind(),
            submit_throughput: None,
            window: default_window(),
            queue_capacity: default_queue(),
            queue_max_bytes: default_queue_bytes(),
            elink_interval_secs: default_elink(),
            res_to_secs: default_res_to(),
            con_loss_delay_secs: default_reconnect(),
            con_fail_delay_secs: default_reconnect(),
            src_addr: None,
            dlr_id_form: crate::idmap::IdForm::default(),
            dlr_expiry_secs: default_dlr_expiry(),
            requeue_statuses: default_retry_statuses(),
            requeue_count: default_requeue_count(),
            requeue_delay_ms: default_requeue_delay(),
            start: true,
            tls: false,
            tls_ca_file: None,
            tls_server_name: None,
            target_dlr: None,
        }
    }

    pub fn dlr_expiry(&self) -> Duration {
        Duration::from_secs(self.dlr_expiry_secs)
    }
}

/// An HTTP endpoint for MO (Jasmin `httpccm`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConnectorConfig {
    pub cid: String,
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
}

fn default_method() -> String {
    "POST".into()
}

/// A named filter (Jasmin `filter -a`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FilterConfig {
    pub fid: String,
    #[serde(flatten)]
    pub kind: FilterKindConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type")]
pub enum FilterKindConfig {
    TransparentFilter,
    ConnectorFilter {
        cid: String,
    },
    UserFilter {
        uid: String,
    },
    GroupFilter {
        gid: String,
    },
    SourceAddrFilter {
        source_addr: String,
    },
    DestinationAddrFilter {
        destination_addr: String,
    },
    ShortMessageFilter {
        short_message: String,
    },
    /// `YYYY-MM-DD;YYYY-MM-DD`, inclusive.
    DateIntervalFilter {
        date_interval: String,
    },
    /// `HH:MM:SS;HH:MM:SS`, inclusive.
    TimeIntervalFilter {
        time_interval: String,
    },
    TagFilter {
        tag: String,
    },
    /// The EvalPyFilter equivalent: a Rhai script that sets `result = true` to match.
    #[serde(alias = "EvalPyFilter")]
    ScriptFilter {
        #[serde(default)]
        script: Option<String>,
        #[serde(default)]
        script_file: Option<String>,
    },
}

/// One MT or MO route (Jasmin `mtrouter`/`morouter`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub order: u32,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub connector: Option<String>,
    #[serde(default)]
    pub connectors: Vec<String>,
    #[serde(default)]
    pub filters: Vec<String>,
    /// Price per part as a decimal string ("0.02"); absent = not rated.
    #[serde(default)]
    pub rate: Option<String>,
}

/// One MT or MO interceptor (Jasmin `mtinterceptor`/`mointerceptor`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InterceptorConfig {
    pub order: u32,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub filters: Vec<String>,
    #[serde(default)]
    pub script: Option<String>,
    #[serde(default)]
    pub script_file: Option<String>,
}

/// Parse a decimal amount ("12.5", "0.000001") into micro-units without floats.
pub fn parse_micros(text: &str) -> Result<i64, ConfigError> {
    let bad = || ConfigError::Invalid(format!("{text:?} is not a decimal amount"));
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut frac_value: i64 = 0;
    for (i, b) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(6)
        .enumerate()
    {
        let _ = i;
        frac_value = frac_value * 10 + i64::from(b - b'0');
    }
    let value = whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(frac_value))
        .ok_or_else(bad)?;
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_parse_exactly() {
        assert_eq!(parse_micros("0.02").ok(), Some(20_000));
        assert_eq!(parse_micros("12").ok(), Some(12_000_000));
        assert_eq!(parse_micros(".5").ok(), Some(500_000));
        assert_eq!(parse_micros("-1.000001").ok(), Some(-1_000_001));
        assert!(parse_micros("1.0000001").is_err());
        assert!(parse_micros("abc").is_err());
        assert!(parse_micros("").is_err());
    }

    #[test]
    fn full_example_parses() {
        let text = r#"
            [settings]
            http_retry_delay_ms = 100
            [[groups]]
            gid = "g1"
            [[users]]
            uid = "u1"
            username = "bank"
            password = "secret"
            gid = "g1"
            value_filters = { dst_addr = "^\\+?255" }
            quotas = { balance = "10.5", smpps_throughput = 100.0 }
            [[connectors]]
            cid = "op1"
            port = 2776
            [[filters]]
            fid = "tz"
            type = "DestinationAddrFilter"
            destination_addr = "^255"
            [[mt_routes]]
            order = 0
            type = "DefaultRoute"
            connector = "smppc(op1)"
            rate = "0.02"
        "#;
        let config = RouterConfig::from_toml_str(text).expect("parses");
        for bad in ["0", "256"] {
            let text = format!("[settings]\nlong_content_max_parts = {bad}\n");
            assert!(RouterConfig::from_toml_str(&text).is_err(), "{bad}");
        }
        assert_eq!(config.users.len(), 1);
        assert!(matches!(
            config.filters[0].kind,
            FilterKindConfig::DestinationAddrFilter { .. }
        ));
        assert_eq!(config.settings.http_retry_delay_ms, 100);
        let outer = format!("[router]\n{}", "[[router.groups]]\ngid = \"g\"\n");
        let config = RouterConfig::from_smsgw_toml(&outer, Path::new(".")).expect("parses");
        assert_eq!(config.groups.len(), 1);
    }
}
