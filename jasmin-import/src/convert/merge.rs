//! An import laid onto the running configuration.

use super::*;

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
