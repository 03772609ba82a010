//! The whole router configuration as one document: applied from TOML as a single
//! audited change, with the diff against the configuration in force shown first.

use proto::admin as pb;
use router::RouterConfig;
use serde_json::Value;
use tonic::{Request, Response, Status};

use super::{
    apply::{Change, redact, stale_diff},
    auth::actor,
    convert::invalid,
    service::AdminService,
};

/// What `redact` writes in place of a secret; a document carrying it keeps the secret
/// in force.
const REDACTED: &str = "***";

/// The router table of `text`: a `[router]` table of a whole smsgw.toml, else the
/// document itself (as `export --toml` writes it).
fn parse(text: &str) -> Result<RouterConfig, Status> {
    let value: toml::Table =
        toml::from_str(text).map_err(|e| invalid(format!("not a TOML document: {e}")))?;
    let table = match value.get("router") {
        Some(toml::Value::Table(router)) => router.clone(),
        _ => value,
    };
    toml::Value::Table(table)
        .try_into::<RouterConfig>()
        .map_err(|e| invalid(format!("not a router configuration: {e}")))
}

/// `next`'s secrets left as [`REDACTED`] take the ones of the same user or connector in
/// `current`; one that has none there is refused.
fn keep_secrets(next: &mut Value, current: &Value) -> Result<(), Status> {
    for (list, key) in [("users", "uid"), ("connectors", "cid")] {
        let Some(items) = next.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for item in items {
            if item.get("password").and_then(Value::as_str) != Some(REDACTED) {
                continue;
            }
            let id = item.get(key).cloned().unwrap_or(Value::Null);
            let kept = current
                .get(list)
                .and_then(Value::as_array)
                .and_then(|all| all.iter().find(|c| c.get(key) == Some(&id)))
                .and_then(|c| c.get("password"))
                .cloned()
                .ok_or_else(|| {
                    invalid(format!(
                        "{list} {id}: its password is \"{REDACTED}\" and there is none in force to keep"
                    ))
                })?;
            item["password"] = kept;
        }
    }
    Ok(())
}

/// A name for a configuration version: equal configurations get equal names.
fn base_of(config: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    config.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn pretty(config: &Value) -> String {
    serde_json::to_string_pretty(&redact(config.clone())).unwrap_or_default() + "\n"
}

impl AdminService {
    pub(super) async fn apply_config_now(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResult>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        let document = parse(&r.toml)?;
        let current = serde_json::to_value(self.state.current().await)
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut next = serde_json::to_value(&document).map_err(|e| invalid(e.to_string()))?;
        keep_secrets(&mut next, &current)?;
        let diff = similar::TextDiff::from_lines(&pretty(&current), &pretty(&next))
            .unified_diff()
            .context_radius(3)
            .header("in force", "document")
            .to_string();
        let changes = current != next;
        let base = base_of(&current);
        if !r.base.is_empty() && r.base != base {
            return Err(stale_diff());
        }
        if r.dry_run || !changes {
            return Ok(Response::new(pb::ApplyResult {
                diff,
                changes,
                applied: false,
                base,
            }));
        }
        let next: RouterConfig =
            serde_json::from_value(next).map_err(|e| invalid(e.to_string()))?;
        let expected = r.base;
        self.state
            .change_if(
                &|in_force| {
                    expected.is_empty()
                        || Some(&expected)
                            == serde_json::to_value(in_force)
                                .ok()
                                .map(|v| base_of(&v))
                                .as_ref()
                },
                Change {
                    actor: &actor,
                    action: "config.apply",
                    subject: "config".into(),
                },
                |c| {
                    *c = next;
                    Ok(())
                },
                |c| serde_json::to_value(c).ok(),
            )
            .await?;
        Ok(Response::new(pb::ApplyResult {
            diff,
            changes,
            applied: true,
            base,
        }))
    }
}
