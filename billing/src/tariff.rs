//! Tariffs: the price of one SMS part by MCC/MNC (or by destination prefix where MCC/MNC
//! is unknown), valid in a time window, with volume-tier discounts, per account override
//! or global. The route's rate (Jasmin semantics) is the fallback when nothing matches.

use std::collections::HashMap;

use crate::account::AccountId;
use crate::error::BillingError;
use crate::ledger::UnixMicros;
use crate::money::{Currency, Micros};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TariffId(pub i64);

/// A discount that applies once the account's monthly volume reaches `min_volume` parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeTier {
    pub min_volume: u64,
    /// Basis points: 1 = 0.01 %, 10 000 = 100 %.
    pub discount_bp: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tariff {
    pub id: TariffId,
    /// `None`: a global tariff; `Some`: an override for that account and its sub-accounts.
    pub account: Option<AccountId>,
    pub mcc: Option<u16>,
    /// With `mcc` only; `None` means every network of that country.
    pub mnc: Option<u16>,
    /// Destination prefix (digits), used when MCC/MNC is unknown or has no tariff.
    pub prefix: Option<String>,
    pub price_per_part: Micros,
    pub currency: Currency,
    pub valid_from: UnixMicros,
    /// Exclusive end; `None`: open-ended.
    pub valid_to: Option<UnixMicros>,
    pub tiers: Vec<VolumeTier>,
}

impl Tariff {
    pub fn validate(&self) -> Result<(), BillingError> {
        let bad = |m: &str| Err(BillingError::InvalidRequest(format!("tariff: {m}")));
        match (&self.mcc, &self.prefix) {
            (Some(_), Some(_)) | (None, None) => {
                return bad("exactly one of mcc or prefix must be set");
            }
            (None, Some(p)) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => {
                return bad("prefix must be digits");
            }
            _ => {}
        }
        if self.mnc.is_some() && self.mcc.is_none() {
            return bad("mnc needs mcc");
        }
        if self.price_per_part.0 < 0 {
            return Err(BillingError::InvalidAmount(format!(
                "tariff price must not be negative, got {}",
                self.price_per_part
            )));
        }
        if self.valid_to.is_some_and(|to| to <= self.valid_from) {
            return bad("valid_to must be after valid_from");
        }
        if self.tiers.iter().any(|t| t.discount_bp > 10_000) {
            return bad("discount above 100 %");
        }
        Ok(())
    }

    fn valid_at(&self, at: UnixMicros) -> bool {
        self.valid_from <= at && self.valid_to.is_none_or(|to| at < to)
    }

    /// The discount of the highest tier reached; a tier applies from exactly `min_volume`.
    pub fn discount_for(&self, volume: u64) -> u16 {
        self.tiers
            .iter()
            .filter(|t| t.min_volume <= volume)
            .max_by_key(|t| t.min_volume)
            .map_or(0, |t| t.discount_bp)
    }
}

/// What the router asks before reserving.
#[derive(Clone, Debug)]
pub struct RateQuery<'a> {
    pub account: AccountId,
    pub destination: &'a str,
    pub mcc_mnc: Option<(u16, u16)>,
    /// The route's rate per part: the fallback when no tariff matches.
    pub route_rate: Micros,
    pub parts: u32,
    /// Pricing time; `None` = now.
    pub at: Option<UnixMicros>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateSource {
    Tariff(TariffId),
    Route,
}

/// A price: per part and in total (price × parts), in the account's currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub price_per_part: Micros,
    pub total: Micros,
    pub currency: Currency,
    pub source: RateSource,
    pub discount_bp: u16,
}

/// All tariffs in memory, indexed by owner; plus the reseller hierarchy so an override
/// set on a reseller applies to its clients without touching other shards.
#[derive(Clone, Debug, Default)]
pub struct TariffBook {
    by_owner: HashMap<Option<AccountId>, Vec<Tariff>>,
    parents: HashMap<AccountId, AccountId>,
}

/// Reseller chains are short; the bound only protects against a cycle in bad data.
const MAX_DEPTH: usize = 16;

impl TariffBook {
    pub fn insert(&mut self, t: Tariff) {
        let list = self.by_owner.entry(t.account).or_default();
        list.retain(|x| x.id != t.id);
        list.push(t);
    }

    pub fn remove(&mut self, id: TariffId) {
        for list in self.by_owner.values_mut() {
            list.retain(|t| t.id != id);
        }
    }

    /// Every tariff, global ones first, then by account; by id within each.
    pub fn all(&self) -> Vec<Tariff> {
        let mut out: Vec<Tariff> = self.by_owner.values().flatten().cloned().collect();
        out.sort_by_key(|t| (t.account, t.id));
        out
    }

    pub fn get(&self, id: TariffId) -> Option<&Tariff> {
        self.by_owner.values().flatten().find(|t| t.id == id)
    }

    pub fn set_parent(&mut self, account: AccountId, parent: Option<AccountId>) {
        match parent {
            Some(p) => self.parents.insert(account, p),
            None => self.parents.remove(&account),
        };
    }

    /// The account's own overrides first, then its parents', then global tariffs. Within
    /// one level: MCC+MNC, then MCC alone, then the longest prefix; among equals the one
    /// that became valid last (the newest price) wins.
    pub fn select(
        &self,
        account: AccountId,
        currency: Currency,
        destination: &str,
        mcc_mnc: Option<(u16, u16)>,
        at: UnixMicros,
    ) -> Option<&Tariff> {
        let digits = normalize_destination(destination);
        let mut owner = Some(account);
        for _ in 0..MAX_DEPTH {
            if let Some(found) = self
                .by_owner
                .get(&owner)
                .and_then(|list| best_in(list, currency, digits, mcc_mnc, at))
            {
                return Some(found);
            }
            match owner {
                Some(a) => owner = self.parents.get(&a).copied(),
                None => return None,
            }
            if owner.is_none() {
                // Fall through to the global level exactly once.
                return self
                    .by_owner
                    .get(&None)
                    .and_then(|list| best_in(list, currency, digits, mcc_mnc, at));
            }
        }
        None
    }
}

fn best_in<'a>(
    list: &'a [Tariff],
    currency: Currency,
    digits: &str,
    mcc_mnc: Option<(u16, u16)>,
    at: UnixMicros,
) -> Option<&'a Tariff> {
    // Specificity: 3 = MCC+MNC, 2 = MCC only, 1 = prefix (longer wins via the second key).
    list.iter()
        .filter(|t| t.currency == currency && t.valid_at(at))
        .filter_map(|t| {
            let rank = match (t.mcc, t.mnc, &t.prefix, mcc_mnc) {
                (Some(c), Some(n), _, Some((qc, qn))) if c == qc && n == qn => (3, 0),
                (Some(c), None, _, Some((qc, _))) if c == qc => (2, 0),
                (None, _, Some(p), _) if digits.starts_with(p.as_str()) => (1, p.len()),
                _ => return None,
            };
            Some((rank, t.valid_from, t.id, t))
        })
        .max_by_key(|(rank, from, id, _)| (*rank, *from, *id))
        .map(|(_, _, _, t)| t)
}

/// "+44…" and "0044…" both become "44…" so prefixes are written once, without signs.
fn normalize_destination(d: &str) -> &str {
    let d = d.trim();
    let d = d.strip_prefix('+').unwrap_or(d);
    d.strip_prefix("00").unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::new("EUR").unwrap_or_else(|e| panic!("{e}"))
    }

    fn t(
        id: i64,
        account: Option<i64>,
        mcc: Option<u16>,
        mnc: Option<u16>,
        prefix: Option<&str>,
        price: i64,
    ) -> Tariff {
        Tariff {
            id: TariffId(id),
            account: account.map(AccountId),
            mcc,
            mnc,
            prefix: prefix.map(str::to_string),
            price_per_part: Micros(price),
            currency: eur(),
            valid_from: 0,
            valid_to: None,
            tiers: vec![],
        }
    }

    #[test]
    fn specificity_order_within_a_level() {
        let mut book = TariffBook::default();
        book.insert(t(1, None, None, None, Some("4"), 10));
        book.insert(t(2, None, None, None, Some("447"), 20));
        book.insert(t(3, None, Some(234), None, None, 30));
        book.insert(t(4, None, Some(234), Some(15), None, 40));
        let pick = |d: &str, m: Option<(u16, u16)>| {
            book.select(AccountId(1), eur(), d, m, 5).map(|t| t.id.0)
        };
        assert_eq!(pick("+447700900000", Some((234, 15))), Some(4));
        assert_eq!(pick("+447700900000", Some((234, 10))), Some(3));
        assert_eq!(pick("+447700900000", Some((250, 1))), Some(2));
        assert_eq!(pick("00447700900000", None), Some(2));
        assert_eq!(pick("4912345", None), Some(1));
        assert_eq!(pick("3312345", None), None);
    }

    #[test]
    fn validation_rejects_ambiguous_tariffs() {
        assert!(t(1, None, Some(1), None, Some("1"), 1).validate().is_err());
        assert!(t(1, None, None, None, None, 1).validate().is_err());
        assert!(t(1, None, None, Some(1), Some("1"), 1).validate().is_err());
        assert!(t(1, None, None, None, Some("+1"), 1).validate().is_err());
        assert!(t(1, None, None, None, Some("1"), -1).validate().is_err());
        assert!(t(1, None, None, None, Some("1"), 1).validate().is_ok());
    }
}
