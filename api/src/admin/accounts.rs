//! Billing accounts by router user: balance, top-up, credit limit, suspend/resume.
//! Money moves go through billing's own audited ledger entries.

use billing::{AccountId, AccountStatus, LedgerRequest, Micros, grpc::to_status};
use proto::admin as pb;
use serde_json::json;
use tonic::Status;

use super::{apply::AdminState, auth::Actor, convert::invalid};

/// "Unlimited" users have this credit limit (see billing's charging).
const UNLIMITED_FROM: i64 = 1_000_000_000_000_000;

impl AdminState {
    fn account(&self, uid: &str) -> Result<AccountId, Status> {
        self.charging
            .account_of(uid)
            .ok_or_else(|| Status::not_found(format!("no billing account for user {uid:?}")))
    }

    pub fn balance(&self, uid: &str) -> Result<pb::Balance, Status> {
        let id = self.account(uid)?;
        let engine = self.charging.engine();
        let view = engine.balance(id).map_err(to_status)?;
        let status = engine
            .account(id)
            .map_or("unknown", |a| a.status.as_str())
            .to_owned();
        let limit = if view.credit_limit.0 >= UNLIMITED_FROM {
            "unlimited".to_owned()
        } else {
            view.credit_limit.to_string()
        };
        Ok(pb::Balance {
            uid: uid.to_owned(),
            account_id: id.0,
            currency: view.currency.as_str().to_owned(),
            balance: view.balance.to_string(),
            credit_limit: limit,
            reserved: view.reserved.to_string(),
            available: view.available.to_string(),
            sms_count: view.sms_count,
            status,
        })
    }

    pub async fn top_up(&self, actor: &Actor, r: pb::TopUpRequest) -> Result<pb::Balance, Status> {
        let id = self.account(&r.uid)?;
        let amount = if r.amount.trim().is_empty() {
            Micros(0)
        } else {
            r.amount.parse::<Micros>().map_err(invalid)?
        };
        let reference = if r.reference.is_empty() {
            format!("admin-topup:{}", uuid::Uuid::new_v4())
        } else {
            r.reference
        };
        self.charging
            .engine()
            .top_up(LedgerRequest {
                account: id,
                amount,
                currency: self.charging.currency(),
                sms_count: r.sms_count,
                reference,
                actor: actor.name.clone(),
                origin: actor.origin.clone(),
                reason: if r.reason.is_empty() {
                    "admin top-up".into()
                } else {
                    r.reason
                },
            })
            .await
            .map_err(to_status)?;
        self.balance(&r.uid)
    }

    pub async fn credit_limit(
        &self,
        actor: &Actor,
        uid: &str,
        limit: &str,
    ) -> Result<pb::Balance, Status> {
        let id = self.account(uid)?;
        let limit = limit.parse::<Micros>().map_err(invalid)?;
        let before = self.balance(uid)?.credit_limit;
        self.charging
            .engine()
            .set_credit_limit(id, limit)
            .await
            .map_err(to_status)?;
        self.audit(
            actor,
            "account.credit_limit",
            format!("user:{uid}"),
            json!({"before": before, "after": limit.to_string()}),
        )
        .await;
        self.balance(uid)
    }

    pub async fn set_suspended(
        &self,
        actor: &Actor,
        uid: &str,
        suspended: bool,
    ) -> Result<pb::Balance, Status> {
        let id = self.account(uid)?;
        let status = if suspended {
            AccountStatus::Suspended
        } else {
            AccountStatus::Active
        };
        let before = self.balance(uid)?.status;
        self.charging
            .engine()
            .set_status(id, status)
            .await
            .map_err(to_status)?;
        self.audit(
            actor,
            if suspended {
                "account.suspend"
            } else {
                "account.resume"
            },
            format!("user:{uid}"),
            json!({"before": before, "after": status.as_str()}),
        )
        .await;
        self.balance(uid)
    }
}
