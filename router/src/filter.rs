//! Jasmin's route filters, compiled: regex filters become indices into per-field
//! `RegexSet`s so one pass over a field answers every route's filter on it.

use std::{collections::HashMap, sync::Arc};

use chrono::{NaiveDate, NaiveTime};
use regex::bytes::RegexSet;

use crate::{
    config::{ConfigError, FilterConfig, FilterKindConfig},
    model::Message,
    script::{Script, engine},
};

/// A filter as routes hold it.
#[derive(Debug, Clone)]
pub enum Filter {
    Transparent,
    Connector(Arc<str>),
    User(Arc<str>),
    Group(Arc<str>),
    /// Index into the table's source_addr pattern set.
    SourceAddr(usize),
    DestinationAddr(usize),
    ShortMessage(usize),
    DateInterval(NaiveDate, NaiveDate),
    TimeInterval(NaiveTime, NaiveTime),
    Tag(String),
    Script(Arc<Script>),
}

/// Filter definitions by fid, before they are bound to a table's pattern sets.
#[derive(Debug, Clone)]
pub enum FilterDef {
    Simple(Filter),
    SourceAddr(String),
    DestinationAddr(String),
    ShortMessage(String),
}

pub fn compile_defs(
    configs: &[FilterConfig],
    max_operations: u64,
) -> Result<HashMap<String, FilterDef>, ConfigError> {
    let engine = engine(max_operations);
    let mut defs = HashMap::new();
    for c in configs {
        let def = match &c.kind {
            FilterKindConfig::TransparentFilter => FilterDef::Simple(Filter::Transparent),
            FilterKindConfig::ConnectorFilter { cid } => {
                FilterDef::Simple(Filter::Connector(Arc::from(cid.as_str())))
            }
            FilterKindConfig::UserFilter { uid } => {
                FilterDef::Simple(Filter::User(Arc::from(uid.as_str())))
            }
            FilterKindConfig::GroupFilter { gid } => {
                FilterDef::Simple(Filter::Group(Arc::from(gid.as_str())))
            }
            FilterKindConfig::SourceAddrFilter { source_addr } => {
                FilterDef::SourceAddr(source_addr.clone())
            }
            FilterKindConfig::DestinationAddrFilter { destination_addr } => {
                FilterDef::DestinationAddr(destination_addr.clone())
            }
            FilterKindConfig::ShortMessageFilter { short_message } => {
                FilterDef::ShortMessage(short_message.clone())
            }
            FilterKindConfig::DateIntervalFilter { date_interval } => {
                let (a, b) = split_pair(&c.fid, date_interval)?;
                let parse = |s: &str| {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| {
                        ConfigError::Invalid(format!("filter {}: bad date {s:?}: {e}", c.fid))
                    })
                };
                FilterDef::Simple(Filter::DateInterval(parse(a)?, parse(b)?))
            }
            FilterKindConfig::TimeIntervalFilter { time_interval } => {
                let (a, b) = split_pair(&c.fid, time_interval)?;
                let parse = |s: &str| {
                    NaiveTime::parse_from_str(s, "%H:%M:%S").map_err(|e| {
                        ConfigError::Invalid(format!("filter {}: bad time {s:?}: {e}", c.fid))
                    })
                };
                FilterDef::Simple(Filter::TimeInterval(parse(a)?, parse(b)?))
            }
            FilterKindConfig::TagFilter { tag } => FilterDef::Simple(Filter::Tag(tag.clone())),
            FilterKindConfig::ScriptFilter {
                script,
                script_file,
            } => {
                let source = script_source(&c.fid, script, script_file)?;
                let script = Script::compile(&engine, &c.fid, &source)
                    .map_err(|e| ConfigError::Invalid(e.to_string()))?;
                FilterDef::Simple(Filter::Script(Arc::new(script)))
            }
        };
        if defs.insert(c.fid.clone(), def).is_some() {
            return Err(ConfigError::Invalid(format!(
                "filter {} defined twice",
                c.fid
            )));
        }
    }
    Ok(defs)
}

/// The script text, inline or from a file (copied at load, as Jasmin copies it).
pub fn script_source(
    name: &str,
    script: &Option<String>,
    file: &Option<String>,
) -> Result<String, ConfigError> {
    match (script, file) {
        (Some(s), None) => Ok(s.clone()),
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        }),
        _ => Err(ConfigError::Invalid(format!(
            "{name}: give exactly one of script and script_file"
        ))),
    }
}

fn split_pair<'a>(fid: &str, text: &'a str) -> Result<(&'a str, &'a str), ConfigError> {
    text.split_once(';')
        .map(|(a, b)| (a.trim(), b.trim()))
        .ok_or_else(|| {
            ConfigError::Invalid(format!("filter {fid}: expected \"a;b\", got {text:?}"))
        })
}

/// Regex filters of one table, by field. Patterns get `^(?:…)` for re.match semantics.
#[derive(Debug, Default)]
pub struct PatternSets {
    pub source: Vec<String>,
    pub destination: Vec<String>,
    pub short_message: Vec<String>,
}

impl PatternSets {
    pub fn add(list: &mut Vec<String>, pattern: &str) -> usize {
        let anchored = format!("^(?:{pattern})");
        if let Some(i) = list.iter().position(|p| *p == anchored) {
            return i;
        }
        list.push(anchored);
        list.len() - 1
    }

    pub fn build(self) -> Result<CompiledSets, ConfigError> {
        let set = |list: Vec<String>| -> Result<Option<RegexSet>, ConfigError> {
            if list.is_empty() {
                return Ok(None);
            }
            RegexSet::new(&list)
                .map(Some)
                .map_err(|e| ConfigError::Invalid(format!("bad filter regex: {e}")))
        };
        Ok(CompiledSets {
            source: set(self.source)?,
            destination: set(self.destination)?,
            short_message: set(self.short_message)?,
        })
    }
}

#[derive(Debug, Default)]
pub struct CompiledSets {
    pub source: Option<RegexSet>,
    pub destination: Option<RegexSet>,
    pub short_message: Option<RegexSet>,
}

/// Per-message results of the pattern sets, computed on first use.
#[derive(Default)]
pub struct Matches {
    source: Option<Vec<bool>>,
    destination: Option<Vec<bool>>,
    short_message: Option<Vec<bool>>,
}

fn run(set: &Option<RegexSet>, haystack: &[u8]) -> Vec<bool> {
    match set {
        Some(set) => {
            let mut out = vec![false; set.len()];
            for i in set.matches(haystack).iter() {
                out[i] = true;
            }
            out
        }
        None => Vec::new(),
    }
}

impl Matches {
    pub fn destination(&mut self, sets: &CompiledSets, m: &Message) -> &[bool] {
        self.destination
            .get_or_insert_with(|| run(&sets.destination, m.destination.addr.as_bytes()))
    }
    pub fn source(&mut self, sets: &CompiledSets, m: &Message) -> &[bool] {
        self.source
            .get_or_insert_with(|| run(&sets.source, m.source.addr.as_bytes()))
    }
    pub fn short_message(&mut self, sets: &CompiledSets, m: &Message) -> &[bool] {
        self.short_message
            .get_or_insert_with(|| run(&sets.short_message, &m.content))
    }
}

impl Filter {
    /// Does the message pass? Script errors count as no match (and are logged).
    pub fn matches(&self, m: &Message, sets: &CompiledSets, cache: &mut Matches) -> bool {
        match self {
            Self::Transparent => true,
            Self::Connector(cid) => *m.connector == **cid,
            Self::User(uid) => *m.uid == **uid,
            Self::Group(gid) => *m.gid == **gid,
            Self::SourceAddr(i) => cache.source(sets, m).get(*i).copied().unwrap_or(false),
            Self::DestinationAddr(i) => {
                cache.destination(sets, m).get(*i).copied().unwrap_or(false)
            }
            Self::ShortMessage(i) => cache
                .short_message(sets, m)
                .get(*i)
                .copied()
                .unwrap_or(false),
            Self::DateInterval(from, to) => {
                let d = m.received_at.date_naive();
                *from <= d && d <= *to
            }
            Self::TimeInterval(from, to) => {
                let t = m.received_at.time();
                // Jasmin forbids overnight ranges; we accept them (from > to wraps midnight).
                if from <= to {
                    *from <= t && t <= *to
                } else {
                    t >= *from || t <= *to
                }
            }
            Self::Tag(tag) => m.tags.iter().any(|t| t == tag),
            Self::Script(script) => match script.filter(m) {
                Ok(matched) => matched,
                Err(error) => {
                    tracing::warn!(%error, "script filter failed: no match");
                    false
                }
            },
        }
    }
}
