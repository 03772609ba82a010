//! Jasmin's SMPP client and HTTP connectors, and the enums their settings are pickled with.

use super::*;

/// Names of `smpp.pdu.pdu_types` enums in their declaration order (pickled by value
/// as the 1-based position).
pub(super) const ADDR_TON: &[&str] = &[
    "UNKNOWN",
    "INTERNATIONAL",
    "NATIONAL",
    "NETWORK_SPECIFIC",
    "SUBSCRIBER_NUMBER",
    "ALPHANUMERIC",
    "ABBREVIATED",
];
pub(super) const ADDR_NPI: &[&str] = &[
    "UNKNOWN",
    "ISDN",
    "DATA",
    "TELEX",
    "LAND_MOBILE",
    "NATIONAL",
    "PRIVATE",
    "ERMES",
    "INTERNET",
    "WAP_CLIENT_ID",
];
const PRIORITY: &[&str] = &["LEVEL_0", "LEVEL_1", "LEVEL_2", "LEVEL_3"];
const REPLACE: &[&str] = &["DO_NOT_REPLACE", "REPLACE"];

/// An enum member's name, whichever way it was stored: a plain name (set in jcli),
/// `Enum(value)` or `getattr(Enum, name)` (Python-version dependent).
pub(super) fn enum_name(v: &Value, names: &[&str]) -> Option<String> {
    if let Some(name) = v.as_str() {
        return Some(name.to_owned());
    }
    match v.class()? {
        ("__builtin__" | "builtins", "getattr") => v.args().get(1)?.as_str().map(str::to_owned),
        _ => {
            let position = usize::try_from(v.args().first()?.as_i64()?).ok()?;
            names.get(position.checked_sub(1)?).map(|n| (*n).to_owned())
        }
    }
}

pub(super) fn smpp_connector(entry: &Value) -> Option<(ConnectorConfig, Vec<Note>)> {
    let cid = entry.get("id")?.as_str()?.to_owned();
    let config = entry.get("config")?;
    let mut c = ConnectorConfig::named(&cid);
    let mut notes = Vec::new();
    let item = format!("connector {cid}");
    let mut note = |detail: String| notes.push(Note::caveat(item.clone(), detail));
    let num = |name: &str| config.attr(name).and_then(Value::as_f64);
    let text = |name: &str| str_attr(config, name);
    if let Some(host) = text("host") {
        c.host = host;
    }
    if let Some(port) = config.attr("port").and_then(Value::as_i64) {
        c.port = u16::try_from(port).unwrap_or(c.port);
    }
    if let Some(username) = text("username") {
        c.username = username;
    }
    if let Some(password) = text("password") {
        c.password = password;
    }
    c.systype = text("systemType").unwrap_or_default();
    if let Some(bind) = text("bindOperation") {
        c.bind = bind;
    }
    // Jasmin's 0 is "no cap", as smsgw's absent.
    c.submit_throughput = num("submit_sm_throughput").filter(|t| *t > 0.0);
    let secs = |x: f64| x.round().max(0.0) as u64;
    if let Some(x) = num("enquireLinkTimerSecs") {
        c.elink_interval_secs = secs(x);
    }
    if let Some(x) = num("responseTimerSecs") {
        c.res_to_secs = secs(x);
    }
    if let Some(x) = num("reconnectOnConnectionLossDelay") {
        c.con_loss_delay_secs = x;
    }
    if let Some(x) = num("reconnectOnConnectionFailureDelay") {
        c.con_fail_delay_secs = x;
    }
    if let Some(x) = num("dlr_expiry") {
        c.dlr_expiry_secs = secs(x);
    }
    if let Some(x) = num("requeue_delay") {
        c.requeue_delay_ms = secs(x * 1000.0);
    }
    c.src_addr = text("source_addr");
    c.dlr_id_form = match config.attr("dlr_msg_id_bases").and_then(Value::as_i64) {
        Some(1) => router::idmap::IdForm::Decimal,
        Some(2) => router::idmap::IdForm::Hex,
        _ => router::idmap::IdForm::Exact,
    };
    c.tls = bool_attr(config, "useSSL").unwrap_or(false);
    if c.tls {
        note("TLS: Jasmin does not verify the operator's certificate, smsgw does (against the public web PKI): a private or self-signed one needs tls_ca_file (and tls_server_name if the host is not in it)".into());
    }
    if config
        .attr("custom_tlvs")
        .is_some_and(|t| !t.items().is_empty())
    {
        note(
            "custom_tlvs: smsgw passes clients' TLVs through but has no per-connector TLV list"
                .into(),
        );
    }
    c.start = entry.get("service_status").and_then(Value::as_i64) == Some(1);
    for (key, what) in [
        ("reconnectOnConnectionLoss", "reconnect on connection loss"),
        (
            "reconnectOnConnectionFailure",
            "reconnect on connection failure",
        ),
    ] {
        if bool_attr(config, key) == Some(false) {
            note(format!(
                "{what} is off in Jasmin; smsgw always reconnects (after con_loss_delay / con_fail_delay)"
            ));
        }
    }
    // Settings smsgw sets per message or not at all: reported when not Jasmin's default.
    for (key, names, default) in [
        ("addressTon", ADDR_TON, "UNKNOWN"),
        ("addressNpi", ADDR_NPI, "UNKNOWN"),
        ("source_addr_ton", ADDR_TON, "NATIONAL"),
        ("source_addr_npi", ADDR_NPI, "ISDN"),
        ("dest_addr_ton", ADDR_TON, "INTERNATIONAL"),
        ("dest_addr_npi", ADDR_NPI, "ISDN"),
        ("priority_flag", PRIORITY, "LEVEL_0"),
        ("replace_if_present_flag", REPLACE, "DO_NOT_REPLACE"),
    ] {
        if let Some(name) = config.attr(key).and_then(|v| enum_name(v, names))
            && name != default
        {
            note(format!(
                "{key} {name}: no connector setting in smsgw (TON/NPI follow each message's addresses; priority and replace_if_present are the client's)"
            ));
        }
    }
    for (key, default) in [
        ("sessionInitTimerSecs", 30.0),
        ("inactivityTimerSecs", 300.0),
        ("pduReadTimerSecs", 10.0),
        ("data_coding", 0.0),
        ("sm_default_msg_id", 0.0),
    ] {
        if let Some(x) = num(key)
            && x != default
        {
            note(format!("{key} {x}: no connector setting in smsgw"));
        }
    }
    for key in [
        "addressRange",
        "protocol_id",
        "validity_period",
        "schedule_delivery_time",
        "service_type",
    ] {
        if let Some(v) = config.attr(key).filter(|v| !v.is_none()) {
            note(format!("{key} {v}: no connector setting in smsgw"));
        }
    }
    Some((c, notes))
}

pub(super) fn http_connector(c: &Value) -> Option<HttpConnectorConfig> {
    Some(HttpConnectorConfig {
        cid: str_attr(c, "cid")?,
        url: str_attr(c, "baseurl")?,
        method: str_attr(c, "method").map_or_else(|| "POST".into(), |m| m.to_ascii_uppercase()),
    })
}
