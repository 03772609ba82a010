//! Protobuf messages to and from the router's config structs. The typed fields cover
//! what admins change daily; `config_json` carries the rest of a user as the router's
//! own JSON, so nothing is out of reach.

use proto::admin as pb;
use router::config::{FilterConfig, InterceptorConfig, RouteConfig, UserConfig};
use serde_json::{Map, Value, json};
use tonic::Status;

use super::apply::redact;

pub fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

/// An MCC or MNC: at most three digits.
pub fn network_code(what: &str, v: u32) -> Result<u16, Status> {
    u16::try_from(v)
        .ok()
        .filter(|v| *v <= 999)
        .ok_or_else(|| invalid(format!("{what} {v} has more than 3 digits")))
}

/// The optional user fields shared by `User` (add) and `UserUpdate`. An empty string
/// clears a field (a quota back to unlimited, a filter off).
pub struct UserFields {
    pub enabled: Option<bool>,
    pub balance: Option<String>,
    pub sms_count: Option<u64>,
    pub smpps_throughput: Option<f64>,
    pub http_throughput: Option<f64>,
    pub default_src_addr: Option<String>,
    pub dst_addr_filter: Option<String>,
    pub src_addr_filter: Option<String>,
    pub content_filter: Option<String>,
    pub max_bindings: Option<u32>,
}

fn text(v: Option<String>) -> Option<Option<String>> {
    v.map(|s| (!s.is_empty()).then_some(s))
}

impl UserFields {
    pub fn apply(self, c: &mut UserConfig) {
        if let Some(v) = self.enabled {
            c.enabled = v;
        }
        if let Some(v) = text(self.balance) {
            c.quotas.balance = v;
        }
        if let Some(v) = self.sms_count {
            c.quotas.sms_count = Some(v);
        }
        if let Some(v) = self.smpps_throughput {
            c.quotas.smpps_throughput = Some(v);
        }
        if let Some(v) = self.http_throughput {
            c.quotas.http_throughput = Some(v);
        }
        if let Some(v) = text(self.default_src_addr) {
            c.defaults.src_addr = v;
        }
        if let Some(v) = text(self.dst_addr_filter) {
            c.value_filters.dst_addr = v;
        }
        if let Some(v) = text(self.src_addr_filter) {
            c.value_filters.src_addr = v;
        }
        if let Some(v) = text(self.content_filter) {
            c.value_filters.content = v;
        }
        if let Some(v) = self.max_bindings {
            c.smpp.max_bindings = Some(v as usize);
        }
    }
}

/// A new user from `AddUser`: `config_json` (if any) is the base, typed fields win.
pub fn new_user(u: pb::User) -> Result<UserConfig, Status> {
    let mut c: UserConfig = if u.config_json.trim().is_empty() {
        serde_json::from_value(
            json!({"uid": u.uid, "username": u.username, "password": u.password, "gid": u.gid}),
        )
    } else {
        serde_json::from_str(&u.config_json)
    }
    .map_err(|e| invalid(format!("user: {e}")))?;
    for (field, value) in [
        (&mut c.uid, u.uid),
        (&mut c.username, u.username),
        (&mut c.password, u.password),
        (&mut c.gid, u.gid),
    ] {
        if !value.is_empty() {
            *field = value;
        }
    }
    for (name, value) in [
        ("uid", &c.uid),
        ("username", &c.username),
        ("password", &c.password),
        ("gid", &c.gid),
    ] {
        if value.is_empty() {
            return Err(invalid(format!("user: {name} is required")));
        }
    }
    UserFields {
        enabled: u.enabled,
        balance: u.balance,
        sms_count: u.sms_count,
        smpps_throughput: u.smpps_throughput,
        http_throughput: u.http_throughput,
        default_src_addr: u.default_src_addr,
        dst_addr_filter: u.dst_addr_filter,
        src_addr_filter: u.src_addr_filter,
        content_filter: u.content_filter,
        max_bindings: u.max_bindings,
    }
    .apply(&mut c);
    Ok(c)
}

/// A user as the API shows it: never its password.
pub fn user(c: &UserConfig) -> pb::User {
    pb::User {
        uid: c.uid.clone(),
        username: c.username.clone(),
        password: String::new(),
        gid: c.gid.clone(),
        enabled: Some(c.enabled),
        balance: c.quotas.balance.clone(),
        sms_count: c.quotas.sms_count,
        smpps_throughput: c.quotas.smpps_throughput,
        http_throughput: c.quotas.http_throughput,
        default_src_addr: c.defaults.src_addr.clone(),
        dst_addr_filter: c.value_filters.dst_addr.clone(),
        src_addr_filter: c.value_filters.src_addr.clone(),
        content_filter: c.value_filters.content.clone(),
        max_bindings: c
            .smpp
            .max_bindings
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        config_json: serde_json::to_value(c)
            .map(redact)
            .map(|v| v.to_string())
            .unwrap_or_default(),
    }
}

pub fn table(value: i32) -> Result<pb::Table, Status> {
    pb::Table::try_from(value).map_err(|_| invalid(format!("unknown table {value}")))
}

pub fn route_config(r: pb::Route) -> RouteConfig {
    RouteConfig {
        order: r.order,
        kind: r.r#type,
        connector: None,
        connectors: r.connectors,
        filters: r.filters,
        rate: r.rate.filter(|s| !s.is_empty()),
    }
}

pub fn route(table: pb::Table, c: &RouteConfig) -> pb::Route {
    pb::Route {
        table: table as i32,
        order: c.order,
        r#type: c.kind.clone(),
        connectors: c.connector.iter().chain(&c.connectors).cloned().collect(),
        filters: c.filters.clone(),
        rate: c.rate.clone(),
    }
}

/// The name of a filter type's one parameter in the router's configuration.
fn filter_param(kind: &str) -> Result<Option<&'static str>, Status> {
    Ok(Some(match kind {
        "TransparentFilter" => return Ok(None),
        "ConnectorFilter" => "cid",
        "UserFilter" => "uid",
        "GroupFilter" => "gid",
        "SourceAddrFilter" => "source_addr",
        "DestinationAddrFilter" => "destination_addr",
        "ShortMessageFilter" => "short_message",
        "DateIntervalFilter" => "date_interval",
        "TimeIntervalFilter" => "time_interval",
        "TagFilter" => "tag",
        "ScriptFilter" | "EvalPyFilter" => "script",
        other => return Err(invalid(format!("unknown filter type {other:?}"))),
    }))
}

pub fn filter_config(f: pb::Filter) -> Result<FilterConfig, Status> {
    if f.fid.is_empty() {
        return Err(invalid("filter: fid is required"));
    }
    let mut object = Map::new();
    object.insert("fid".into(), Value::String(f.fid));
    if let Some(param) = filter_param(&f.r#type)? {
        object.insert(param.into(), Value::String(f.value));
    }
    object.insert("type".into(), Value::String(f.r#type));
    serde_json::from_value(Value::Object(object)).map_err(|e| invalid(format!("filter: {e}")))
}

pub fn filter(c: &FilterConfig) -> pb::Filter {
    let object = serde_json::to_value(c).unwrap_or_default();
    let kind = object["type"].as_str().unwrap_or_default().to_owned();
    let value = filter_param(&kind)
        .ok()
        .flatten()
        .and_then(|p| object[p].as_str())
        .or_else(|| object["script_file"].as_str())
        .unwrap_or_default()
        .to_owned();
    pb::Filter {
        fid: c.fid.clone(),
        r#type: kind,
        value,
    }
}

pub fn interceptor_config(i: pb::Interceptor) -> InterceptorConfig {
    InterceptorConfig {
        order: i.order,
        kind: i.r#type,
        filters: i.filters,
        script: Some(i.script),
        script_file: None,
    }
}

pub fn interceptor(table: pb::Table, c: &InterceptorConfig) -> pb::Interceptor {
    pb::Interceptor {
        table: table as i32,
        order: c.order,
        r#type: c.kind.clone(),
        filters: c.filters.clone(),
        script: c
            .script
            .clone()
            .or_else(|| c.script_file.as_ref().map(|f| format!("// file {f}")))
            .unwrap_or_default(),
    }
}
