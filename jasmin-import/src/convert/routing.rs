//! Jasmin's filters and its MT/MO routing tables.

use super::*;

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
pub(super) fn filter_kind(f: &Value) -> Result<FilterKindConfig, String> {
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
pub(super) struct Filters {
    pub(super) list: Vec<FilterConfig>,
    by_content: HashMap<String, String>,
}

impl Filters {
    pub(super) fn add(&mut self, fid: String, kind: FilterKindConfig) {
        self.by_content
            .entry(format!("{kind:?}"))
            .or_insert_with(|| fid.clone());
        self.list.push(FilterConfig { fid, kind });
    }

    /// The id of a filter with this content, named after `fresh` and added if there is
    /// none (`jasmin-` + `fresh`, with a number if a filter of the store has that id).
    pub(super) fn id_of(&mut self, kind: FilterKindConfig, fresh: String) -> String {
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

pub(super) fn route(
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
