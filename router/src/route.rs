//! MT and MO route tables (and interceptor tables, which share the shape): entries in
//! descending order, the first whose filters all match wins. Compiled so that a message
//! looks only at the routes that can match it: routes are indexed by their most
//! selective filter (user, group, connector, destination pattern) and regex filters are
//! answered by one `RegexSet` pass per field.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use crate::{
    config::{ConfigError, RouteConfig, parse_micros},
    filter::{CompiledSets, Filter, FilterDef, Matches, PatternSets},
    model::Message,
};

/// How a route picks among its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Default,
    Static,
    /// True round robin (Jasmin picks uniformly at random).
    RoundRobin,
    Failover,
    /// Least-cost routing: the connectors come from the cost table of the destination's
    /// network, ranked by cost and health for every message.
    Lcr,
}

#[derive(Debug)]
pub struct Route<T> {
    pub order: u32,
    pub kind: RouteKind,
    pub targets: Vec<T>,
    /// Per part, micro-units.
    pub rate: i64,
    pub filters: Vec<Filter>,
    next: AtomicUsize,
}

impl<T> Route<T> {
    /// The next index for round robin.
    pub fn next_index(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len().max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Generic,
    User,
    Group,
    Connector,
    Destination(usize),
}

/// A compiled table, read-only once built (replace it whole to change it).
#[derive(Debug)]
pub struct Table<T> {
    routes: Vec<Route<T>>,
    sets: CompiledSets,
    by_user: HashMap<Arc<str>, Vec<u32>>,
    by_group: HashMap<Arc<str>, Vec<u32>>,
    by_connector: HashMap<Arc<str>, Vec<u32>>,
    by_destination: Vec<Vec<u32>>,
    generic: Vec<u32>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            sets: CompiledSets::default(),
            by_user: HashMap::new(),
            by_group: HashMap::new(),
            by_connector: HashMap::new(),
            by_destination: Vec::new(),
            generic: Vec::new(),
        }
    }
}

/// One entry before compilation.
pub struct Entry<T> {
    pub order: u32,
    pub kind: RouteKind,
    pub targets: Vec<T>,
    pub rate: i64,
    pub filters: Vec<FilterDef>,
}

impl<T> Table<T> {
    pub fn build(mut entries: Vec<Entry<T>>) -> Result<Self, ConfigError> {
        // Descending order; a later entry at the same order replaces the earlier (Jasmin).
        // The sort is stable and `dedup_by` keeps the first of a run, so reverse first to
        // put the later entry of each order in front.
        entries.reverse();
        entries.sort_by_key(|e| std::cmp::Reverse(e.order));
        entries.dedup_by(|next, kept| next.order == kept.order);
        let mut patterns = PatternSets::default();
        let mut table = Table::default();
        for (index, entry) in entries.into_iter().enumerate() {
            if entry.targets.is_empty() && entry.kind != RouteKind::Lcr {
                return Err(ConfigError::Invalid(format!(
                    "route {} has no connector",
                    entry.order
                )));
            }
            let index =
                u32::try_from(index).map_err(|_| ConfigError::Invalid("too many routes".into()))?;
            let mut filters = Vec::with_capacity(entry.filters.len());
            let mut key = Key::Generic;
            let mut key_value: Option<Arc<str>> = None;
            for def in entry.filters {
                let filter = match def {
                    FilterDef::Simple(f) => f,
                    FilterDef::SourceAddr(p) => {
                        Filter::SourceAddr(PatternSets::add(&mut patterns.source, &p))
                    }
                    FilterDef::DestinationAddr(p) => {
                        Filter::DestinationAddr(PatternSets::add(&mut patterns.destination, &p))
                    }
                    FilterDef::ShortMessage(p) => {
                        Filter::ShortMessage(PatternSets::add(&mut patterns.short_message, &p))
                    }
                };
                // The most selective filter decides which index holds the route.
                let rank = |k: &Key| match k {
                    Key::User => 4,
                    Key::Group => 3,
                    Key::Connector => 2,
                    Key::Destination(_) => 1,
                    Key::Generic => 0,
                };
                let candidate = match &filter {
                    Filter::User(u) => Some((Key::User, Some(u.clone()))),
                    Filter::Group(g) => Some((Key::Group, Some(g.clone()))),
                    Filter::Connector(c) => Some((Key::Connector, Some(c.clone()))),
                    Filter::DestinationAddr(i) => Some((Key::Destination(*i), None)),
                    _ => None,
                };
                if let Some((k, v)) = candidate
                    && rank(&k) > rank(&key)
                {
                    key = k;
                    key_value = v;
                }
                filters.push(filter);
            }
            match (key, key_value) {
                (Key::User, Some(v)) => table.by_user.entry(v).or_default().push(index),
                (Key::Group, Some(v)) => table.by_group.entry(v).or_default().push(index),
                (Key::Connector, Some(v)) => table.by_connector.entry(v).or_default().push(index),
                (Key::Destination(i), _) => {
                    if table.by_destination.len() <= i {
                        table.by_destination.resize_with(i + 1, Vec::new);
                    }
                    table.by_destination[i].push(index);
                }
                _ => table.generic.push(index),
            }
            table.routes.push(Route {
                order: entry.order,
                kind: entry.kind,
                targets: entry.targets,
                rate: entry.rate,
                filters,
                next: AtomicUsize::new(0),
            });
        }
        table.sets = patterns.build()?;
        Ok(table)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn routes(&self) -> &[Route<T>] {
        &self.routes
    }

    /// The first route (highest order) whose filters all match.
    pub fn select(&self, m: &Message) -> Option<&Route<T>> {
        let mut cache = Matches::default();
        let mut candidates: Vec<u32> = Vec::with_capacity(16);
        let mut push = |list: Option<&Vec<u32>>| {
            if let Some(list) = list {
                candidates.extend_from_slice(list);
            }
        };
        push(self.by_user.get(&*m.uid));
        push(self.by_group.get(&*m.gid));
        push(self.by_connector.get(&*m.connector));
        if !self.by_destination.is_empty() {
            let matched = cache.destination(&self.sets, m);
            for (i, hit) in matched.iter().enumerate() {
                if *hit {
                    push(self.by_destination.get(i));
                }
            }
        }
        push(Some(&self.generic));
        candidates.sort_unstable();
        candidates.dedup();
        candidates.into_iter().find_map(|i| {
            let route = self.routes.get(i as usize)?;
            route
                .filters
                .iter()
                .all(|f| f.matches(m, &self.sets, &mut cache))
                .then_some(route)
        })
    }
}

/// What an MO route delivers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoTarget {
    /// An SMPP user (by username), Jasmin `smpps(<username>)`.
    Smpps(Arc<str>),
    /// An HTTP connector, Jasmin `http(<cid>)`.
    Http(Arc<str>),
}

fn kind_of(name: &str, mt: bool) -> Result<RouteKind, ConfigError> {
    let kind = match (name, mt) {
        ("DefaultRoute", _) => RouteKind::Default,
        ("StaticMTRoute", true) | ("StaticMORoute", false) => RouteKind::Static,
        ("RandomRoundrobinMTRoute", true) | ("RandomRoundrobinMORoute", false) => {
            RouteKind::RoundRobin
        }
        ("FailoverMTRoute", true) | ("FailoverMORoute", false) => RouteKind::Failover,
        ("LcrRoute", true) => RouteKind::Lcr,
        _ => {
            return Err(ConfigError::Invalid(format!(
                "unknown {} route type {name:?}",
                if mt { "MT" } else { "MO" }
            )));
        }
    };
    Ok(kind)
}

fn targets(c: &RouteConfig) -> Vec<String> {
    c.connector
        .iter()
        .chain(c.connectors.iter())
        .cloned()
        .collect()
}

fn filter_defs(
    c: &RouteConfig,
    defs: &HashMap<String, FilterDef>,
) -> Result<Vec<FilterDef>, ConfigError> {
    c.filters
        .iter()
        .map(|fid| {
            defs.get(fid).cloned().ok_or_else(|| {
                ConfigError::Invalid(format!("route {}: unknown filter {fid}", c.order))
            })
        })
        .collect()
}

fn check_shape(c: &RouteConfig, kind: RouteKind, n: usize) -> Result<(), ConfigError> {
    let bad = |why: &str| Err(ConfigError::Invalid(format!("route {}: {why}", c.order)));
    match kind {
        RouteKind::Default if c.order != 0 => bad("DefaultRoute must have order 0"),
        RouteKind::Default | RouteKind::Static if n != 1 => bad("needs exactly one connector"),
        RouteKind::RoundRobin | RouteKind::Failover if n < 2 => bad("needs two or more connectors"),
        RouteKind::Lcr if n != 0 => bad("LcrRoute takes its connectors from [lcr] costs"),
        _ if kind != RouteKind::Default && c.order == 0 => bad("order 0 is for DefaultRoute"),
        _ => Ok(()),
    }
}

/// Build the MT table; targets are connector ids (`smppc(cid)` or `cid`).
pub fn build_mt(
    configs: &[RouteConfig],
    defs: &HashMap<String, FilterDef>,
    known_connectors: &dyn Fn(&str) -> bool,
) -> Result<Table<Arc<str>>, ConfigError> {
    let mut entries = Vec::new();
    for c in configs {
        let kind = kind_of(&c.kind, true)?;
        let names = targets(c);
        check_shape(c, kind, names.len())?;
        let mut list = Vec::new();
        for name in names {
            let cid = name
                .strip_prefix("smppc(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or(&name);
            if !known_connectors(cid) {
                return Err(ConfigError::Invalid(format!(
                    "route {}: unknown connector {cid}",
                    c.order
                )));
            }
            list.push(Arc::from(cid));
        }
        entries.push(Entry {
            order: c.order,
            kind,
            targets: list,
            rate: c
                .rate
                .as_deref()
                .map(parse_micros)
                .transpose()?
                .unwrap_or(0),
            filters: filter_defs(c, defs)?,
        });
    }
    Table::build(entries)
}

/// Build the MO table; targets are `smpps(<username>)` or `http(<cid>)`.
pub fn build_mo(
    configs: &[RouteConfig],
    defs: &HashMap<String, FilterDef>,
    known_http: &dyn Fn(&str) -> bool,
) -> Result<Table<MoTarget>, ConfigError> {
    let mut entries = Vec::new();
    for c in configs {
        let kind = kind_of(&c.kind, false)?;
        let names = targets(c);
        check_shape(c, kind, names.len())?;
        let mut list = Vec::new();
        for name in names {
            let target = if let Some(user) = name
                .strip_prefix("smpps(")
                .and_then(|s| s.strip_suffix(')'))
            {
                MoTarget::Smpps(Arc::from(user))
            } else if let Some(cid) = name.strip_prefix("http(").and_then(|s| s.strip_suffix(')')) {
                if !known_http(cid) {
                    return Err(ConfigError::Invalid(format!(
                        "route {}: unknown http connector {cid}",
                        c.order
                    )));
                }
                MoTarget::Http(Arc::from(cid))
            } else {
                return Err(ConfigError::Invalid(format!(
                    "route {}: MO target {name:?} is neither smpps(user) nor http(cid)",
                    c.order
                )));
            };
            list.push(target);
        }
        if c.rate.is_some() {
            return Err(ConfigError::Invalid(format!(
                "MO route {} cannot be rated",
                c.order
            )));
        }
        entries.push(Entry {
            order: c.order,
            kind,
            targets: list,
            rate: 0,
            filters: filter_defs(c, defs)?,
        });
    }
    Table::build(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(uid: &str, dst: &str) -> Message {
        let mut m = Message {
            uid: Arc::from(uid),
            ..Message::default()
        };
        m.destination.addr = dst.into();
        m
    }

    #[test]
    fn first_match_in_descending_order() {
        let entries = vec![
            Entry {
                order: 0,
                kind: RouteKind::Default,
                targets: vec!["default"],
                rate: 0,
                filters: vec![],
            },
            Entry {
                order: 10,
                kind: RouteKind::Static,
                targets: vec!["tz"],
                rate: 0,
                filters: vec![FilterDef::DestinationAddr("255".into())],
            },
            Entry {
                order: 20,
                kind: RouteKind::Static,
                targets: vec!["vip"],
                rate: 0,
                filters: vec![
                    FilterDef::Simple(Filter::User(Arc::from("vip"))),
                    FilterDef::DestinationAddr("255".into()),
                ],
            },
        ];
        let table = Table::build(entries).expect("builds");
        let pick = |m: &Message| table.select(m).map(|r| r.targets[0]);
        assert_eq!(pick(&msg("u", "255700")), Some("tz"));
        assert_eq!(pick(&msg("vip", "255700")), Some("vip"));
        assert_eq!(pick(&msg("vip", "1255")), Some("default"));
        // re.match is anchored at the start only.
        assert_eq!(pick(&msg("u", "2557")), Some("tz"));
    }

    #[test]
    fn a_later_route_at_the_same_order_replaces_the_earlier() {
        let entry = |target| Entry {
            order: 10,
            kind: RouteKind::Static,
            targets: vec![target],
            rate: 0,
            filters: vec![FilterDef::DestinationAddr("255".into())],
        };
        let table = Table::build(vec![entry("first"), entry("second")]).expect("builds");
        assert_eq!(table.len(), 1);
        assert_eq!(
            table.select(&msg("u", "255700")).map(|r| r.targets[0]),
            Some("second")
        );
    }

    #[test]
    fn no_default_means_no_route() {
        let table: Table<&str> = Table::build(vec![Entry {
            order: 5,
            kind: RouteKind::Static,
            targets: vec!["x"],
            rate: 0,
            filters: vec![FilterDef::DestinationAddr("1".into())],
        }])
        .expect("builds");
        assert!(table.select(&msg("u", "2")).is_none());
    }
}
