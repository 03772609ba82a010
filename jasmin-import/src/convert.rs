//! Jasmin's objects (see `store`) as smsgw's router configuration. Whatever has no
//! equivalent is left out and reported, never guessed: a value filter or route filter
//! smsgw cannot run leaves out the user or route that needs it (importing it without
//! would let through what Jasmin refused).

use std::{collections::HashMap, fmt};

use router::config::{
    AuthorizationsConfig, ConnectorConfig, DefaultsConfig, FilterConfig, FilterKindConfig,
    GroupConfig, HttpConnectorConfig, QuotasConfig, RouteConfig, RouterConfig, SmppCredConfig,
    UserConfig, ValueFiltersConfig,
};

use crate::{
    pickle::Value,
    store::{ImportError, Kind, StoreFile},
};

/// Something in the store that was not imported as it was, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `user user_1`, `mt route 40`, `connector smppc01`.
    pub item: String,
    pub detail: String,
    /// The item was left out (else it was imported, with this caveat).
    pub dropped: bool,
}

impl Note {
    fn dropped(item: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            item: item.into(),
            detail: detail.into(),
            dropped: true,
        }
    }

    fn caveat(item: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            item: item.into(),
            detail: detail.into(),
            dropped: false,
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.detail)
    }
}

/// What a store holds, as smsgw configuration. A section is None when its file was not
/// in the store (so that merging leaves smsgw's own alone).
#[derive(Debug, Default)]
pub struct Import {
    /// `jcli-prod.router-users (Thu Dec  3 20:03:57 2026 [Jasmin 0.11.1])`, one per file.
    pub files: Vec<String>,
    pub groups: Option<Vec<GroupConfig>>,
    pub users: Option<Vec<UserConfig>>,
    pub connectors: Option<Vec<ConnectorConfig>>,
    pub http_connectors: Option<Vec<HttpConnectorConfig>>,
    /// The store's named filters and those that only routes held (Jasmin's routes
    /// keep copies of their filters; smsgw's name them).
    pub filters: Option<Vec<FilterConfig>>,
    pub mt_routes: Option<Vec<RouteConfig>>,
    pub mo_routes: Option<Vec<RouteConfig>>,
    /// Users of the store left out: one of the same uid in force is disabled rather
    /// than left as it was (it may be looser than what Jasmin now enforces).
    pub skipped_users: Vec<String>,
    pub report: Vec<Note>,
}

/// Converts the files of one store.
pub fn convert(files: &[StoreFile]) -> Result<Import, ImportError> {
    let mut import = Import::default();
    let mut filters = Filters::default();
    let by_kind = |kind| files.iter().find(|f| f.kind == kind);
    for file in files {
        let name = file
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        import.files.push(format!("{name} ({})", file.persisted));
    }
    let shape = |file: &StoreFile, what: &str| ImportError::Shape {
        path: file.path.clone(),
        what: what.to_owned(),
    };
    if let Some(file) = by_kind(Kind::Groups) {
        let mut groups = Vec::new();
        for g in file.data.items() {
            let gid = str_attr(g, "gid").ok_or_else(|| shape(file, "a group without gid"))?;
            groups.push(GroupConfig {
                gid,
                enabled: bool_attr(g, "enabled").unwrap_or(true),
            });
        }
        import.groups = Some(groups);
    }
    if let Some(file) = by_kind(Kind::Users) {
        let mut users = Vec::new();
        for u in file.data.items() {
            match user(u) {
                Ok((user, notes)) => {
                    import.report.extend(notes);
                    users.push(user);
                }
                Err(note) => {
                    import
                        .skipped_users
                        .push(str_attr(u, "uid").unwrap_or_default());
                    import.report.push(note);
                }
            }
        }
        import.users = Some(users);
    }
    if let Some(file) = by_kind(Kind::SmppConnectors) {
        let mut connectors = Vec::new();
        for entry in file.data.items() {
            let (connector, notes) =
                smpp_connector(entry).ok_or_else(|| shape(file, "a connector without id"))?;
            import.report.extend(notes);
            connectors.push(connector);
        }
        import.connectors = Some(connectors);
    }
    if let Some(file) = by_kind(Kind::HttpConnectors) {
        let mut connectors = Vec::new();
        for (_, c) in file.data.entries() {
            connectors.push(
                http_connector(c).ok_or_else(|| shape(file, "an HTTP connector without cid"))?,
            );
        }
        import.http_connectors = Some(connectors);
    }
    if let Some(file) = by_kind(Kind::Filters) {
        for (fid, f) in file.data.entries() {
            let fid = fid
                .as_str()
                .ok_or_else(|| shape(file, "a filter id that is not text"))?;
            match filter_kind(f) {
                Ok(kind) => filters.add(fid.to_owned(), kind),
                Err(why) => import
                    .report
                    .push(Note::dropped(format!("filter {fid}"), why)),
            }
        }
    }
    for (kind, table) in [(Kind::MtRoutes, "mt"), (Kind::MoRoutes, "mo")] {
        let Some(file) = by_kind(kind) else { continue };
        let mut routes = Vec::new();
        for (order, route_value) in
            table_entries(&file.data).ok_or_else(|| shape(file, "a table without `table`"))?
        {
            match route(table, order, route_value, &mut filters, &mut import) {
                Ok(route) => routes.push(route),
                Err(detail) => import.report.push(Note::dropped(
                    format!("{table} route {order}"),
                    format!("{detail}: route not imported"),
                )),
            }
        }
        // Jasmin keeps the highest order first; smsgw lists them in any order.
        routes.sort_by_key(|r| std::cmp::Reverse(r.order));
        if kind == Kind::MtRoutes {
            import.mt_routes = Some(routes);
        } else {
            import.mo_routes = Some(routes);
        }
    }
    for (kind, table) in [(Kind::MtInterceptors, "mt"), (Kind::MoInterceptors, "mo")] {
        let Some(file) = by_kind(kind) else { continue };
        for (order, interceptor) in
            table_entries(&file.data).ok_or_else(|| shape(file, "a table without `table`"))?
        {
            import.report.push(Note::dropped(
                format!("{table} interceptor {order} ({})", interceptor.class_name().unwrap_or("?")),
                "its script is Python; smsgw's interceptors run Rhai scripts: rewrite it and add it with `smsgw admin interceptor`",
            ));
        }
    }
    if by_kind(Kind::Filters).is_some() || !filters.list.is_empty() {
        import.filters = Some(filters.list);
    }
    Ok(import)
}

/// The `(order, object)` pairs of a routing or interception table, highest first.
fn table_entries(table: &Value) -> Option<Vec<(i64, &Value)>> {
    let entries = table.attr("table")?;
    let mut out = Vec::new();
    for one in entries.items() {
        for (order, object) in one.entries() {
            out.push((order.as_i64()?, object));
        }
    }
    Some(out)
}

fn str_attr(v: &Value, name: &str) -> Option<String> {
    v.attr(name).and_then(Value::as_str).map(str::to_owned)
}

fn bool_attr(v: &Value, name: &str) -> Option<bool> {
    v.attr(name).and_then(Value::as_bool)
}

/// A Python float of money or a rate as the decimal string smsgw reads, to the
/// micro-unit (`100.47999999999999` → `100.48`).
fn decimal(x: f64) -> String {
    let text = format!("{x:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-0" {
        "0".into()
    } else {
        text.to_owned()
    }
}

/// A regular expression smsgw can run, checked as the router compiles it, or why not
/// (Python's `re` has lookaround and backreferences; Rust's `regex` does not).
fn regex(pattern: &str) -> Result<String, String> {
    router::credentials::compile_prefix_regex(pattern)
        .map(|_| pattern.to_owned())
        .map_err(|e| format!("regular expression {pattern:?} cannot run in smsgw: {e}"))
}

/// A value filter as Jasmin applies it: it recompiles the pattern as bytes before
/// matching, so `\d`, `\w`, `\b` are ASCII and `.` is one byte. `(?-u:…)` keeps that.
fn value_filter_regex(pattern: &str) -> Result<String, String> {
    regex(&format!("(?-u:{pattern})"))
}

fn user(u: &Value) -> Result<(UserConfig, Vec<Note>), Note> {
    let uid = str_attr(u, "uid").unwrap_or_default();
    let item = format!("user {uid}");
    let fail = |detail: String| {
        Note::dropped(
            item.clone(),
            format!("{detail}: user not imported (one of this uid in force is disabled)"),
        )
    };
    let username = str_attr(u, "username").ok_or_else(|| fail("no username".into()))?;
    let password = match u.attr("password") {
        // md5(password).digest(), 16 raw bytes.
        Some(Value::Bytes(digest)) if digest.len() == 16 => format!(
            "{}{}",
            router::user::JASMIN_MD5_PREFIX,
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        _ => {
            return Err(fail(
                "its password is not the 16-byte MD5 digest Jasmin stores".into(),
            ));
        }
    };
    let gid = u
        .attr("group")
        .and_then(|g| str_attr(g, "gid"))
        .ok_or_else(|| fail("no group".into()))?;
    let mut notes = vec![Note::caveat(
        item.clone(),
        "its password is kept as Jasmin's unsalted MD5 digest (it logs in as before); set a new one with `smsgw admin user update` to store it as Argon2",
    )];
    let mt = u.attr("mt_credential");
    let section = |name: &str| mt.and_then(|m| m.attr(name));
    let auth = section("authorizations");
    let allowed = |key: &str| {
        auth.and_then(|a| a.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    };
    let authorizations = AuthorizationsConfig {
        http_send: allowed("http_send"),
        http_balance: allowed("http_balance"),
        http_rate: allowed("http_rate"),
        smpps_send: allowed("smpps_send"),
        http_long_content: allowed("http_long_content"),
        dlr_level: allowed("set_dlr_level"),
        http_dlr_method: allowed("http_set_dlr_method"),
        src_addr: allowed("set_source_address"),
        priority: allowed("set_priority"),
        validity_period: allowed("set_validity_period"),
        hex_content: allowed("set_hex_content"),
        schedule_delivery_time: allowed("set_schedule_delivery_time"),
    };
    let filters = section("value_filters");
    let value_filter = |key: &str, default: &str| -> Result<Option<String>, Note> {
        // Only an absent filter is no filter: one that cannot be read fails the user.
        let Some(value) = filters.and_then(|f| f.get(key)) else {
            return Ok(None);
        };
        match value.pattern() {
            None => Err(fail(format!("value filter {key} {value} cannot be read"))),
            Some(p) if p == default => Ok(None),
            Some(p) => value_filter_regex(p)
                .map(Some)
                .map_err(|e| fail(format!("value filter {key}: {e}"))),
        }
    };
    let value_filters = ValueFiltersConfig {
        dst_addr: value_filter("destination_address", ".*")?,
        src_addr: value_filter("source_address", ".*")?,
        priority: value_filter("priority", "^[0-3]$")?,
        validity_period: value_filter("validity_period", r"^\d+$")?,
        content: value_filter("content", ".*")?,
    };
    let defaults = DefaultsConfig {
        src_addr: section("defaults")
            .and_then(|d| d.get("source_address"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let quota = |key: &str| {
        section("quotas")
            .and_then(|q| q.get(key))
            .filter(|v| !v.is_none())
    };
    if let Some(percent) = quota("early_decrement_balance_percent").and_then(Value::as_f64) {
        notes.push(Note::caveat(
            item.clone(),
            format!(
                "quota early_percent {percent}: smsgw charges the whole message when it is accepted and refunds it when it fails, so there is no early part"
            ),
        ));
    }
    let quotas = QuotasConfig {
        balance: quota("balance").and_then(Value::as_f64).map(decimal),
        sms_count: quota("submit_sm_count")
            .and_then(Value::as_i64)
            .map(|n| u64::try_from(n).unwrap_or(0)),
        smpps_throughput: quota("smpps_throughput").and_then(Value::as_f64),
        http_throughput: quota("http_throughput").and_then(Value::as_f64),
    };
    let smpps = u.attr("smpps_credential");
    // Newer Jasmin keeps a CIDR allow-list of binds per user, which smsgw has not: a
    // user restricted by it is imported disabled rather than open to every address.
    let mut enabled = bool_attr(u, "enabled").unwrap_or(true);
    if let Some(ip) = smpps
        .and_then(|s| s.attr("authorizations"))
        .and_then(|a| a.get("ip"))
        .and_then(Value::as_str)
        .filter(|ip| !matches!(ip.trim(), "" | "0.0.0.0/0" | "0.0.0.0/0,::/0"))
    {
        enabled = false;
        notes.push(Note::caveat(
            item.clone(),
            format!("binds only from {ip} in Jasmin; smsgw has no per-user address list: imported disabled"),
        ));
    }
    let smpp = SmppCredConfig {
        bind: smpps
            .and_then(|s| s.attr("authorizations"))
            .and_then(|a| a.get("bind"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
        max_bindings: smpps
            .and_then(|s| s.attr("quotas"))
            .and_then(|q| q.get("max_bindings"))
            .and_then(Value::as_i64)
            // A negative count (jcli's relative updates can make one) admits no bind.
            .map(|n| usize::try_from(n).unwrap_or(0)),
    };
    Ok((
        UserConfig {
            uid,
            username,
            password,
            gid,
            enabled,
            authorizations,
            value_filters,
            defaults,
            quotas,
            smpp,
        },
        notes,
    ))
}

/// Names of `smpp.pdu.pdu_types` enums in their declaration order (pickled by value
/// as the 1-based position).
const ADDR_TON: &[&str] = &[
    "UNKNOWN",
    "INTERNATIONAL",
    "NATIONAL",
    "NETWORK_SPECIFIC",
    "SUBSCRIBER_NUMBER",
    "ALPHANUMERIC",
    "ABBREVIATED",
];
const ADDR_NPI: &[&str] = &[
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
fn enum_name(v: &Value, names: &[&str]) -> Option<String> {
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

fn smpp_connector(entry: &Value) -> Option<(ConnectorConfig, Vec<Note>)> {
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

fn http_connector(c: &Value) -> Option<HttpConnectorConfig> {
    Some(HttpConnectorConfig {
        cid: str_attr(c, "cid")?,
        url: str_attr(c, "baseurl")?,
        method: str_attr(c, "method").map_or_else(|| "POST".into(), |m| m.to_ascii_uppercase()),
    })
}

/// `datetime.date` / `datetime.time` as pickled (`date(b'\x07\xea\x01\x01')`).
fn date_or_time(v: &Value) -> Option<String> {
    let Some(Value::Bytes(b)) = v.args().first() else {
        return None;
    };
    match (v.class()?, b.len()) {
        (("datetime", "date"), 4) => Some(format!(
            "{:04}-{:02}-{:02}",
            u16::from(b[0]) * 256 + u16::from(b[1]),
            b[2],
            b[3]
        )),
        (("datetime", "time"), 6) => Some(format!("{:02}:{:02}:{:02}", b[0] & 0x7f, b[1], b[2])),
        _ => None,
    }
}

fn interval(v: Option<&Value>) -> Option<String> {
    let ends = v?.items();
    if ends.len() != 2 {
        return None;
    }
    Some(format!(
        "{};{}",
        date_or_time(&ends[0])?,
        date_or_time(&ends[1])?
    ))
}

/// A Jasmin filter as smsgw's, or why it has none.
fn filter_kind(f: &Value) -> Result<FilterKindConfig, String> {
    let class = f.class_name().unwrap_or("?");
    let missing = || format!("{class} without its value");
    let pattern = |key: &str| -> Result<String, String> {
        regex(f.attr(key).and_then(Value::pattern).ok_or_else(missing)?)
    };
    Ok(match class {
        "TransparentFilter" => FilterKindConfig::TransparentFilter,
        "UserFilter" => FilterKindConfig::UserFilter {
            uid: f
                .attr("user")
                .and_then(|u| str_attr(u, "uid"))
                .ok_or_else(missing)?,
        },
        "GroupFilter" => FilterKindConfig::GroupFilter {
            gid: f
                .attr("group")
                .and_then(|g| str_attr(g, "gid"))
                .ok_or_else(missing)?,
        },
        "ConnectorFilter" => FilterKindConfig::ConnectorFilter {
            cid: f
                .attr("connector")
                .and_then(|c| str_attr(c, "cid"))
                .ok_or_else(missing)?,
        },
        "SourceAddrFilter" => FilterKindConfig::SourceAddrFilter {
            source_addr: pattern("source_addr")?,
        },
        "DestinationAddrFilter" => FilterKindConfig::DestinationAddrFilter {
            destination_addr: pattern("destination_addr")?,
        },
        "ShortMessageFilter" => FilterKindConfig::ShortMessageFilter {
            short_message: pattern("short_message")?,
        },
        "DateIntervalFilter" => FilterKindConfig::DateIntervalFilter {
            date_interval: interval(f.attr("dateInterval")).ok_or_else(missing)?,
        },
        "TimeIntervalFilter" => FilterKindConfig::TimeIntervalFilter {
            time_interval: interval(f.attr("timeInterval")).ok_or_else(missing)?,
        },
        "TagFilter" => FilterKindConfig::TagFilter {
            tag: match f.attr("tag") {
                Some(Value::Int(i)) => i.to_string(),
                Some(v) => v.as_str().ok_or_else(missing)?.to_owned(),
                None => return Err(missing()),
            },
        },
        "EvalPyFilter" => {
            return Err(
                "EvalPyFilter runs Python; smsgw's script filters run Rhai (ScriptFilter): rewrite it".into(),
            );
        }
        other => return Err(format!("{other} is not a filter smsgw knows")),
    })
}

/// The named filters, and the names of filters by content (routes hold copies).
#[derive(Default)]
struct Filters {
    list: Vec<FilterConfig>,
    by_content: HashMap<String, String>,
}

impl Filters {
    fn add(&mut self, fid: String, kind: FilterKindConfig) {
        self.by_content
            .entry(format!("{kind:?}"))
            .or_insert_with(|| fid.clone());
        self.list.push(FilterConfig { fid, kind });
    }

    /// The id of a filter with this content, named after `fresh` and added if there is
    /// none (`jasmin-` + `fresh`, with a number if a filter of the store has that id).
    fn id_of(&mut self, kind: FilterKindConfig, fresh: String) -> String {
        if let Some(fid) = self.by_content.get(&format!("{kind:?}")) {
            return fid.clone();
        }
        let taken = |fid: &str| self.list.iter().any(|f| f.fid == fid);
        let mut fid = format!("jasmin-{fresh}");
        let mut n = 2;
        while taken(&fid) {
            fid = format!("jasmin-{fresh}-{n}");
            n += 1;
        }
        self.add(fid.clone(), kind);
        fid
    }
}

fn route(
    table: &str,
    order: i64,
    r: &Value,
    filters: &mut Filters,
    import: &mut Import,
) -> Result<RouteConfig, String> {
    let class = r.class_name().unwrap_or("?").to_owned();
    let mut fids = Vec::new();
    if let Some(list) = r.attr("filters") {
        for (i, f) in list.items().iter().enumerate() {
            let kind = filter_kind(f)?;
            fids.push(filters.id_of(kind, format!("{table}{order}-{}", i + 1)));
        }
    }
    let mut names = Vec::new();
    let one_or_many = r.attr("connector").map(|c| match c {
        Value::List(items) => items.iter().collect::<Vec<_>>(),
        single => vec![single],
    });
    for c in one_or_many.unwrap_or_default() {
        let cid = str_attr(c, "cid").ok_or("a connector without cid")?;
        names.push(match c.class_name() {
            Some("SmppClientConnector") => format!("smppc({cid})"),
            Some("SmppServerSystemIdConnector") => {
                format!("smpps({})", str_attr(c, "system_id").unwrap_or(cid))
            }
            Some("HttpConnector") => {
                if let Some(copy) = http_connector(c) {
                    keep_http_copy(import, copy, table, order);
                }
                format!("http({cid})")
            }
            other => {
                return Err(format!(
                    "connector {cid} of kind {other:?} has no equivalent"
                ));
            }
        });
    }
    let rate = r
        .attr("rate")
        .and_then(Value::as_f64)
        .filter(|rate| *rate > 0.0)
        .map(decimal);
    let (connector, connectors) = match class.as_str() {
        "DefaultRoute" | "StaticMTRoute" | "StaticMORoute" => (names.pop(), Vec::new()),
        _ => (None, names),
    };
    Ok(RouteConfig {
        order: u32::try_from(order).map_err(|_| format!("order {order} is out of range"))?,
        kind: class,
        connector,
        connectors,
        filters: fids,
        rate,
    })
}

/// An MO route delivers to its own copy of an HTTP connector in Jasmin, to the named one
/// in smsgw: the copy is added when the store has no such connector, and a copy that
/// differs from it is reported.
fn keep_http_copy(import: &mut Import, copy: HttpConnectorConfig, table: &str, order: i64) {
    let known = import.http_connectors.get_or_insert_with(Vec::new);
    match known.iter().find(|c| c.cid == copy.cid) {
        None => known.push(copy),
        Some(c) if c.url != copy.url || c.method != copy.method => import.report.push(Note::caveat(
            format!("{table} route {order}"),
            format!(
                "Jasmin delivers to its own copy of http connector {} ({} {}); smsgw delivers to the connector ({} {})",
                copy.cid, copy.method, copy.url, c.method, c.url
            ),
        )),
        Some(_) => {}
    }
}

/// What Jasmin's store says of a connector, onto one smsgw already has (the rest of
/// its settings are smsgw's own).
fn take_jasmin_settings(kept: &mut ConnectorConfig, jasmin: &ConnectorConfig) {
    kept.host = jasmin.host.clone();
    kept.port = jasmin.port;
    kept.username = jasmin.username.clone();
    kept.password = jasmin.password.clone();
    kept.systype = jasmin.systype.clone();
    kept.bind = jasmin.bind.clone();
    kept.submit_throughput = jasmin.submit_throughput;
    kept.elink_interval_secs = jasmin.elink_interval_secs;
    kept.res_to_secs = jasmin.res_to_secs;
    kept.con_loss_delay_secs = jasmin.con_loss_delay_secs;
    kept.con_fail_delay_secs = jasmin.con_fail_delay_secs;
    kept.src_addr = jasmin.src_addr.clone();
    kept.dlr_id_form = jasmin.dlr_id_form;
    kept.dlr_expiry_secs = jasmin.dlr_expiry_secs;
    kept.requeue_delay_ms = jasmin.requeue_delay_ms;
    kept.tls = jasmin.tls;
}

impl Import {
    /// Imports every SMPP connector stopped (Jasmin may still be bound with the same
    /// credentials, and operators limit binds): the ids of those Jasmin had started.
    pub fn keep_connectors_stopped(&mut self) -> Vec<String> {
        let mut started = Vec::new();
        for c in self.connectors.iter_mut().flatten() {
            if c.start {
                started.push(c.cid.clone());
                c.start = false;
            }
        }
        started
    }

    /// One line per file read, and what came of it.
    pub fn summary(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.files.iter().map(|f| format!("read {f}")).collect();
        let count = |n: Option<usize>, what: &str| n.map(|n| format!("{n} {what}"));
        let parts: Vec<String> = [
            count(self.groups.as_ref().map(Vec::len), "groups"),
            count(self.users.as_ref().map(Vec::len), "users"),
            count(self.connectors.as_ref().map(Vec::len), "SMPP connectors"),
            count(
                self.http_connectors.as_ref().map(Vec::len),
                "HTTP connectors",
            ),
            count(self.filters.as_ref().map(Vec::len), "filters"),
            count(self.mt_routes.as_ref().map(Vec::len), "MT routes"),
            count(self.mo_routes.as_ref().map(Vec::len), "MO routes"),
        ]
        .into_iter()
        .flatten()
        .collect();
        lines.push(format!("importing {}", parts.join(", ")));
        lines
    }

    /// `current` with this store's items: users, groups, HTTP connectors and filters
    /// added or replacing those of the same id; an SMPP connector already in force takes
    /// the store's settings and keeps smsgw's own (TLS CA, window, queue, requeue, and
    /// whether it runs); route tables replaced by the store's, less any route to a
    /// connector that is in neither (reported). A user the store had but that could not
    /// be imported is disabled. Interceptor tables stay as they are.
    pub fn merge_into(&mut self, mut current: RouterConfig) -> RouterConfig {
        fn upsert<T: Clone>(into: &mut Vec<T>, new: &Option<Vec<T>>, id: impl Fn(&T) -> &str) {
            for item in new.iter().flatten() {
                match into.iter_mut().find(|c| id(c) == id(item)) {
                    Some(slot) => *slot = item.clone(),
                    None => into.push(item.clone()),
                }
            }
        }
        upsert(&mut current.groups, &self.groups, |g| &g.gid);
        upsert(&mut current.users, &self.users, |u| &u.uid);
        for user in &mut current.users {
            if self.skipped_users.contains(&user.uid) {
                user.enabled = false;
            }
        }
        for c in self.connectors.iter().flatten() {
            match current.connectors.iter_mut().find(|k| k.cid == c.cid) {
                Some(kept) => take_jasmin_settings(kept, c),
                None => current.connectors.push(c.clone()),
            }
        }
        upsert(&mut current.http_connectors, &self.http_connectors, |c| {
            &c.cid
        });
        upsert(&mut current.filters, &self.filters, |f| &f.fid);
        let exists = |target: &str| {
            let inner = |prefix: &str| {
                target
                    .strip_prefix(prefix)
                    .and_then(|t| t.strip_suffix(')'))
            };
            if let Some(cid) = inner("smppc(") {
                current.connectors.iter().any(|c| c.cid == cid)
            } else if let Some(cid) = inner("http(") {
                current.http_connectors.iter().any(|c| c.cid == cid)
            } else if let Some(name) = inner("smpps(") {
                current.users.iter().any(|u| u.username == name)
            } else {
                false
            }
        };
        let mut dangling = Vec::new();
        for (table, routes) in [("mt", &self.mt_routes), ("mo", &self.mo_routes)] {
            let Some(routes) = routes else { continue };
            let kept: Vec<RouteConfig> = routes
                .iter()
                .filter(|r| {
                    let missing: Vec<&String> = r
                        .connector
                        .iter()
                        .chain(&r.connectors)
                        .filter(|t| !exists(t))
                        .collect();
                    if !missing.is_empty() {
                        dangling.push(Note::dropped(
                            format!("{table} route {}", r.order),
                            format!(
                                "it sends to {} that the store and smsgw do not have: route not imported",
                                missing.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                    missing.is_empty()
                })
                .cloned()
                .collect();
            if table == "mt" {
                current.mt_routes = kept;
            } else {
                current.mo_routes = kept;
            }
        }
        self.report.extend(dangling);
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_to_the_micro_unit() {
        assert_eq!(decimal(100.47999999999999), "100.48");
        assert_eq!(decimal(0.0125), "0.0125");
        assert_eq!(decimal(40.0), "40");
        assert_eq!(decimal(0.0), "0");
        assert_eq!(decimal(-2.5), "-2.5");
    }

    #[test]
    fn enums_in_every_form() {
        let by_value = Value::Object(Box::new(crate::pickle::Object {
            callable: Value::Global {
                module: "smpp.pdu.pdu_types".into(),
                name: "AddrTon".into(),
            },
            args: vec![Value::Int(6)],
            state: None,
            items: Vec::new(),
            entries: Vec::new(),
        }));
        assert_eq!(
            enum_name(&by_value, ADDR_TON).as_deref(),
            Some("ALPHANUMERIC")
        );
        let by_name = Value::Object(Box::new(crate::pickle::Object {
            callable: Value::Global {
                module: "builtins".into(),
                name: "getattr".into(),
            },
            args: vec![
                Value::Global {
                    module: "smpp.pdu.pdu_types".into(),
                    name: "AddrTon".into(),
                },
                Value::Str("NATIONAL".into()),
            ],
            state: None,
            items: Vec::new(),
            entries: Vec::new(),
        }));
        assert_eq!(enum_name(&by_name, ADDR_TON).as_deref(), Some("NATIONAL"));
        assert_eq!(
            enum_name(&Value::Str("ISDN".into()), ADDR_NPI).as_deref(),
            Some("ISDN")
        );
    }
}
