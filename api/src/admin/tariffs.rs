//! Tariffs over gRPC: billing's price book (by network or destination prefix, global
//! or per account), listed, set and removed live. Each change is audited with its
//! before and after; billing persists it beside the ledger.

use billing::{AccountId, Currency, Micros, Tariff, TariffId, VolumeTier, grpc::to_status};
use proto::admin as pb;
use serde_json::{Value, json};
use tonic::Status;

use super::{
    apply::AdminState,
    auth::Actor,
    convert::{invalid, network_code},
};
use crate::v1::time::{now_us, parse, rfc3339};

/// Billing names a router user's account `user:<uid>`.
const USER_ACCOUNT: &str = "user:";

impl AdminState {
    /// Tariffs in force: all of them, or the overrides of `uid`'s account.
    pub fn tariffs(&self, uid: &str) -> Result<pb::TariffList, Status> {
        let only = if uid.is_empty() {
            None
        } else {
            Some(self.account_or_not_found(uid)?)
        };
        let tariffs = self
            .charging
            .engine()
            .tariffs()
            .into_iter()
            .filter(|t| only.is_none() || t.account == only)
            .map(|t| self.tariff_pb(&t))
            .collect();
        Ok(pb::TariffList { tariffs })
    }

    pub async fn set_tariff(&self, actor: &Actor, t: pb::Tariff) -> Result<pb::Tariff, Status> {
        let engine = self.charging.engine();
        let before = match t.id {
            0 => None,
            id => Some(engine.tariff(TariffId(id)).ok_or_else(|| no_tariff(id))?),
        };
        let tariff = self.tariff_of(t)?;
        let id = engine
            .upsert_tariff(tariff.clone())
            .await
            .map_err(to_status)?;
        let after = Tariff { id, ..tariff };
        let after_pb = self.tariff_pb(&after);
        self.audit(
            actor,
            if before.is_some() {
                "tariff.update"
            } else {
                "tariff.add"
            },
            format!("tariff:{}", id.0),
            json!({
                "before": before.map(|b| audit_view(&self.tariff_pb(&b))),
                "after": audit_view(&after_pb),
            }),
        )
        .await;
        Ok(after_pb)
    }

    pub async fn remove_tariff(&self, actor: &Actor, id: i64) -> Result<pb::Done, Status> {
        let engine = self.charging.engine();
        let before = engine.tariff(TariffId(id)).ok_or_else(|| no_tariff(id))?;
        engine
            .delete_tariff(TariffId(id))
            .await
            .map_err(to_status)?;
        self.audit(
            actor,
            "tariff.remove",
            format!("tariff:{id}"),
            json!({"before": audit_view(&self.tariff_pb(&before)), "after": null}),
        )
        .await;
        Ok(pb::Done {
            detail: format!("tariff {id} removed"),
        })
    }

    fn account_or_not_found(&self, uid: &str) -> Result<AccountId, Status> {
        self.charging
            .account_of(uid)
            .ok_or_else(|| Status::not_found(format!("no billing account for user {uid:?}")))
    }

    fn tariff_of(&self, t: pb::Tariff) -> Result<Tariff, Status> {
        let account = if t.uid.is_empty() {
            None
        } else {
            Some(self.account_or_not_found(&t.uid)?)
        };
        let currency = match (t.currency.trim(), account) {
            ("", Some(a)) => self
                .charging
                .engine()
                .account(a)
                .map_or(self.charging.currency(), |a| a.currency),
            ("", None) => self.charging.currency(),
            (code, _) => Currency::new(code).map_err(invalid)?,
        };
        let code = |field: &str, v: Option<u32>| v.map(|v| network_code(field, v)).transpose();
        let time = |field: &str, text: &str| -> Result<Option<i64>, Status> {
            if text.trim().is_empty() {
                return Ok(None);
            }
            parse(text.trim())
                .map(Some)
                .ok_or_else(|| invalid(format!("{field} {text:?}: not an RFC 3339 time")))
        };
        let tiers = t
            .tiers
            .iter()
            .map(|tier| {
                Ok(VolumeTier {
                    min_volume: tier.min_volume,
                    discount_bp: u16::try_from(tier.discount_bp).map_err(|_| {
                        invalid(format!("discount {} bp is above 100 %", tier.discount_bp))
                    })?,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        // Billing's own validation (one of mcc or prefix, digits, no negative price,
        // a window that ends after it starts) gives the refusal's reason.
        Ok(Tariff {
            id: TariffId(t.id),
            account,
            mcc: code("mcc", t.mcc)?,
            mnc: code("mnc", t.mnc)?,
            prefix: Some(t.prefix.trim().to_owned()).filter(|p| !p.is_empty()),
            price_per_part: t
                .price
                .trim()
                .parse::<Micros>()
                .map_err(|e| invalid(format!("price {:?}: {e}", t.price)))?,
            currency,
            valid_from: time("valid_from", &t.valid_from)?.unwrap_or_else(now_us),
            valid_to: time("valid_to", &t.valid_to)?,
            tiers,
        })
    }

    fn tariff_pb(&self, t: &Tariff) -> pb::Tariff {
        let uid = t
            .account
            .and_then(|a| self.charging.engine().account(a))
            .map(|a| match a.name.strip_prefix(USER_ACCOUNT) {
                Some(uid) => uid.to_owned(),
                None => a.name,
            })
            .unwrap_or_default();
        pb::Tariff {
            id: t.id.0,
            uid,
            mcc: t.mcc.map(u32::from),
            mnc: t.mnc.map(u32::from),
            prefix: t.prefix.clone().unwrap_or_default(),
            price: t.price_per_part.to_string(),
            currency: t.currency.as_str().to_owned(),
            valid_from: rfc3339(t.valid_from),
            valid_to: t.valid_to.map(rfc3339).unwrap_or_default(),
            tiers: t
                .tiers
                .iter()
                .map(|tier| pb::VolumeTier {
                    min_volume: tier.min_volume,
                    discount_bp: u32::from(tier.discount_bp),
                })
                .collect(),
        }
    }
}

fn no_tariff(id: i64) -> Status {
    Status::not_found(format!("no tariff {id}"))
}

fn audit_view(t: &pb::Tariff) -> Value {
    json!({
        "uid": t.uid,
        "mcc": t.mcc,
        "mnc": t.mnc,
        "prefix": t.prefix,
        "price": t.price,
        "currency": t.currency,
        "valid_from": t.valid_from,
        "valid_to": t.valid_to,
        "tiers": t.tiers.iter().map(|x| json!([x.min_volume, x.discount_bp])).collect::<Vec<_>>(),
    })
}
