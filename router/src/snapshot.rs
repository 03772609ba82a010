//! The run-time configuration the pipeline reads on every message: users, routes,
//! filters, interceptors and HTTP connectors, compiled from a [`RouterConfig`] and
//! swapped whole, so a message sees one consistent version.

use std::{collections::HashMap, sync::Arc};

use crate::{
    config::{ConfigError, HttpConnectorConfig, InterceptorConfig, RouterConfig},
    filter::{FilterDef, compile_defs, script_source},
    route::{self, MoTarget, RouteKind, Table},
    script::{Script, engine},
    user::Directory,
};

/// Everything that can be replaced at run time, swapped whole.
pub struct Snapshot {
    pub directory: Directory,
    pub mt: Table<Arc<str>>,
    pub mo: Table<MoTarget>,
    pub mt_interceptors: Table<Arc<Script>>,
    pub mo_interceptors: Table<Arc<Script>>,
    pub http_connectors: HashMap<Arc<str>, HttpConnectorConfig>,
}

fn interceptors(
    configs: &[InterceptorConfig],
    defs: &HashMap<String, FilterDef>,
    mt: bool,
    max_operations: u64,
) -> Result<Table<Arc<Script>>, ConfigError> {
    let engine = engine(max_operations);
    let mut entries = Vec::new();
    for c in configs {
        let ok = match c.kind.as_str() {
            "DefaultInterceptor" => c.order == 0,
            "StaticMTInterceptor" => mt && c.order > 0,
            "StaticMOInterceptor" => !mt && c.order > 0,
            _ => false,
        };
        if !ok {
            return Err(ConfigError::Invalid(format!(
                "interceptor {}: bad type {:?} for this order/table",
                c.order, c.kind
            )));
        }
        let name = format!("interceptor {}", c.order);
        let source = script_source(&name, &c.script, &c.script_file)?;
        let script = Script::compile(&engine, &name, &source)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let filters = c
            .filters
            .iter()
            .map(|fid| {
                defs.get(fid)
                    .cloned()
                    .ok_or_else(|| ConfigError::Invalid(format!("{name}: unknown filter {fid}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        entries.push(route::Entry {
            order: c.order,
            kind: RouteKind::Static,
            targets: vec![Arc::new(script)],
            rate: 0,
            filters,
        });
    }
    Table::build(entries)
}

impl Snapshot {
    pub fn build(
        config: &RouterConfig,
        connectors: &dyn Fn(&str) -> bool,
    ) -> Result<Self, ConfigError> {
        let max_ops = config.settings.script_max_operations;
        let defs = compile_defs(&config.filters, max_ops)?;
        let http_connectors: HashMap<Arc<str>, HttpConnectorConfig> = config
            .http_connectors
            .iter()
            .map(|c| (Arc::from(c.cid.as_str()), c.clone()))
            .collect();
        Ok(Self {
            directory: Directory::build(&config.groups, &config.users)?,
            mt: route::build_mt(&config.mt_routes, &defs, connectors)?,
            mo: route::build_mo(&config.mo_routes, &defs, &|cid| {
                http_connectors.contains_key(cid)
            })?,
            mt_interceptors: interceptors(&config.mt_interceptors, &defs, true, max_ops)?,
            mo_interceptors: interceptors(&config.mo_interceptors, &defs, false, max_ops)?,
            http_connectors,
        })
    }
}
