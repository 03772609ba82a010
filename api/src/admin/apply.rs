//! The one way a change reaches the gateway: build the whole new RouterConfig, compile
//! it (a bad reference, regex or script is INVALID_ARGUMENT with the reason), persist
//! it, swap it in live, and write who/what/before/after to billing's audit log.

use std::{collections::HashSet, sync::Arc};

use billing::{AuditEvent, EngineCharging, UserAccount};
use router::{Gateway, RouterConfig, Snapshot, gateway::LinkError};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tonic::Status;
use tracing::{info, warn};

use super::{auth::Actor, store::ConfigStore};

pub struct AdminState {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) charging: Arc<EngineCharging>,
    store: Arc<dyn ConfigStore>,
    /// The configuration in force. The lock also serialises changes, so two admins
    /// cannot both edit the same version.
    current: Mutex<RouterConfig>,
}

/// What a change touched, for the audit line.
pub struct Change<'a> {
    pub actor: &'a Actor,
    /// `area.verb`, e.g. `user.add`, `route.mt.remove`.
    pub action: &'a str,
    /// `user:u2`, `route.mt:10`…
    pub subject: String,
}

impl AdminState {
    pub fn new(
        gateway: Arc<Gateway>,
        charging: Arc<EngineCharging>,
        store: Arc<dyn ConfigStore>,
        current: RouterConfig,
    ) -> Self {
        Self {
            gateway,
            charging,
            store,
            current: Mutex::new(current),
        }
    }

    /// A copy of the configuration in force.
    pub async fn current(&self) -> RouterConfig {
        self.current.lock().await.clone()
    }

    /// Apply `edit` to a copy of the configuration; `view` picks the changed object
    /// (for the audit's before/after). Returns the configuration now in force.
    pub async fn change(
        &self,
        change: Change<'_>,
        edit: impl FnOnce(&mut RouterConfig) -> Result<(), Status>,
        view: impl Fn(&RouterConfig) -> Option<Value>,
    ) -> Result<RouterConfig, Status> {
        self.change_if(&|_| true, change, edit, view).await
    }

    /// [`Self::change`], refused with ABORTED unless `still` holds for the configuration
    /// in force when the change takes the lock (it was what the admin looked at).
    pub async fn change_if(
        &self,
        still: &(dyn Fn(&RouterConfig) -> bool + Sync),
        change: Change<'_>,
        edit: impl FnOnce(&mut RouterConfig) -> Result<(), Status>,
        view: impl Fn(&RouterConfig) -> Option<Value>,
    ) -> Result<RouterConfig, Status> {
        let mut current = self.current.lock().await;
        if !still(&current) {
            return Err(stale_diff());
        }
        let mut next = current.clone();
        edit(&mut next)?;
        router::gateway::check_connectors(&next)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let smpp: HashSet<&str> = next.connectors.iter().map(|c| c.cid.as_str()).collect();
        // A connector removed while least-cost routing still prices it is refused here.
        router::lcr::CostTable::build(&next.lcr.costs, &|cid| smpp.contains(cid))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let snapshot = Snapshot::build(&next, &|cid| smpp.contains(cid))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;

        // A new user needs its billing account before it can bind and be charged.
        let known: HashSet<&str> = current.users.iter().map(|u| u.uid.as_str()).collect();
        for user in snapshot.directory.by_uid.values() {
            if !known.contains(&*user.uid) {
                let account = UserAccount {
                    uid: user.uid.to_string(),
                    balance: user.balance,
                    sms_count: user.sms_count,
                };
                self.charging
                    .attach_one(&account)
                    .await
                    .map_err(billing::grpc::to_status)?;
            }
        }

        let version = self
            .store
            .save(&next, &change.actor.name, change.action)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        // Connectors first (a new route may name a new one), then the rest; only the
        // uplinks whose connector changed restart.
        if let Err(error) = self.gateway.reconfigure(&next).await {
            // Validated above, so only a race (a part queued for a connector being
            // removed) lands here: the stored version goes back to the one in force.
            if let Err(e) = self
                .store
                .save(&current, &change.actor.name, "revert")
                .await
            {
                warn!(error = %e, "could not store the configuration back after a refused change");
            }
            return Err(link_status(error));
        }
        let detail = json!({
            "version": version,
            "before": view(&current).map(redact),
            "after": view(&next).map(redact),
        });
        let event = AuditEvent::new(
            change.actor.name.clone(),
            change.actor.origin.clone(),
            change.action,
            change.subject.clone(),
            detail.to_string(),
        );
        info!(actor = %change.actor.name, action = change.action, subject = %change.subject, version, "admin change applied");
        *current = next.clone();
        drop(current);
        // The change is live and stored; an audit store that is away is logged, not
        // a reason to undo it.
        if let Err(error) = self.charging.engine().record_audit(event).await {
            warn!(%error, action = change.action, "could not write the admin change to the audit log");
        }
        Ok(next)
    }

    /// Audit an account operation (money moves are audited by billing itself too).
    pub async fn audit(&self, actor: &Actor, action: &str, subject: String, detail: Value) {
        let event = AuditEvent::new(
            actor.name.clone(),
            actor.origin.clone(),
            action,
            subject,
            redact(detail).to_string(),
        );
        if let Err(error) = self.charging.engine().record_audit(event).await {
            warn!(%error, action, "could not write the admin change to the audit log");
        }
    }
}

/// A refused live change of the connectors as a gRPC status.
pub fn link_status(error: LinkError) -> Status {
    match error {
        LinkError::Busy { .. } => Status::failed_precondition(error.to_string()),
        LinkError::Config(e) => Status::invalid_argument(e.to_string()),
    }
}

/// Passwords never reach the audit log, not even hashed.
/// An apply whose diff was made against a configuration no longer in force.
pub fn stale_diff() -> Status {
    Status::aborted("the configuration changed since the diff was made; look at the new diff")
}

pub fn redact(mut value: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if k == "password" || k == "token" {
                        *v = Value::String("***".into());
                    } else {
                        walk(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_at_any_depth() {
        let v = redact(json!({"users": [{"uid": "u", "password": "x"}], "password": "y"}));
        assert_eq!(v["users"][0]["password"], "***");
        assert_eq!(v["password"], "***");
        assert_eq!(v["users"][0]["uid"], "u");
    }
}
