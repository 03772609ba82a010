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

mod connectors;
mod merge;
mod routing;
mod users;

use connectors::{http_connector, smpp_connector};
use routing::{Filters, filter_kind, route};
use users::user;

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

#[cfg(test)]
mod tests {
    use super::connectors::{ADDR_NPI, ADDR_TON, enum_name};
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
