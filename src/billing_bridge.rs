//! The router's `Charging` on the billing engine: one billing account per router user,
//! created on first start with the user's configured balance as a top-up.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use anyhow::Context;
use billing::{
    AccountId, AccountKind, BillingEngine, BillingError, Currency, LedgerRequest, MessageMeta,
    Micros, NewAccount, QuotaOptions, ReserveRequest,
};
use parking_lot::Mutex;
use router::{
    Snapshot,
    charging::{ChargeError, ChargeMeta, Charging},
};
use tracing::{info, warn};

/// Users without a balance quota (Jasmin's "unlimited") still get every message priced
/// in the ledger and CDR; this credit limit is what "unlimited" means here.
const UNLIMITED_CREDIT: Micros = Micros(1_000_000_000_000_000);

const SHARDS: usize = 16;

pub struct BillingCharging {
    engine: BillingEngine,
    accounts: HashMap<Arc<str>, (AccountId, Currency)>,
    /// Open reservations by charge key: commit and refund only get the key.
    open: Vec<Mutex<HashMap<String, AccountId>>>,
}

impl BillingCharging {
    /// Find or create the account of every user in `snapshot`.
    pub async fn attach(
        engine: BillingEngine,
        snapshot: &Snapshot,
        currency: &str,
    ) -> anyhow::Result<Self> {
        let currency = Currency::new(currency).context("billing currency")?;
        let existing: HashMap<String, AccountId> = engine
            .store()
            .load_accounts()
            .await
            .context("cannot list billing accounts")?
            .into_iter()
            .map(|a| (a.name, a.id))
            .collect();
        let mut accounts = HashMap::new();
        for user in snapshot.directory.by_uid.values() {
            let name = format!("user:{}", user.uid);
            let id = match existing.get(&name) {
                Some(id) => *id,
                None => {
                    let account = engine
                        .create_account(NewAccount {
                            parent_id: None,
                            kind: AccountKind::Client,
                            name: name.clone(),
                            currency,
                            quota: QuotaOptions {
                                early_percent: None,
                                sms_count_limited: user.sms_count.is_some(),
                            },
                            credit_limit: if user.balance.is_some() {
                                Micros::ZERO
                            } else {
                                UNLIMITED_CREDIT
                            },
                        })
                        .await
                        .with_context(|| format!("cannot create the account of {}", user.uid))?;
                    info!(uid = %user.uid, account = %account.id, "billing account created");
                    account.id
                }
            };
            let opening = user.balance.unwrap_or(0);
            let sms = user
                .sms_count
                .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
            if opening > 0 || sms > 0 {
                // Idempotent by reference: the configured balance is credited once, ever.
                engine
                    .top_up(LedgerRequest {
                        account: id,
                        amount: Micros(opening.max(1)),
                        currency,
                        sms_count: sms,
                        reference: format!("config-opening:{}", user.uid),
                        actor: "config".into(),
                        origin: "config".into(),
                        reason: "opening balance from smsgw.toml".into(),
                    })
                    .await
                    .with_context(|| format!("opening balance of {}", user.uid))?;
            }
            accounts.insert(user.uid.clone(), (id, currency));
        }
        Ok(Self {
            engine,
            accounts,
            open: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, AccountId>> {
        let h = key.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        &self.open[h % SHARDS]
    }

    /// After a restart: keep the reservations of messages the journal will send again,
    /// commit those the journal (or the CDR) says the operator took, refund the rest.
    pub fn settle_leftovers(&self, live_keys: &[String], submitted: &[(String, String)]) {
        let live: HashSet<&str> = live_keys.iter().map(String::as_str).collect();
        let submitted: HashMap<&str, &str> = submitted
            .iter()
            .map(|(key, operator_id)| (key.as_str(), operator_id.as_str()))
            .collect();
        let (mut kept, mut committed, mut refunded) = (0, 0, 0);
        for open in self.engine.open_reservations() {
            let operator_id = submitted
                .get(open.reference.as_str())
                .copied()
                .or(open.operator_msg_id.as_deref());
            if live.contains(open.reference.as_str()) {
                self.shard(&open.reference)
                    .lock()
                    .insert(open.reference.clone(), open.account);
                kept += 1;
            } else if let Some(operator_id) = operator_id {
                let _ = self
                    .engine
                    .commit(open.account, &open.reference, Some(operator_id));
                committed += 1;
            } else {
                let _ = self
                    .engine
                    .refund(open.account, &open.reference, "UNSENT_AT_RESTART");
                refunded += 1;
            }
        }
        if kept + committed + refunded > 0 {
            info!(
                kept,
                committed, refunded, "reservations left by the last run settled"
            );
        }
    }
}

impl Charging for BillingCharging {
    fn reserve(
        &self,
        key: &str,
        uid: &str,
        amount: i64,
        meta: &ChargeMeta<'_>,
    ) -> Result<(), ChargeError> {
        let Some(&(account, currency)) = self.accounts.get(uid) else {
            return Err(ChargeError::UnknownAccount(uid.to_owned()));
        };
        let request = ReserveRequest {
            account,
            reference: key.to_owned(),
            amount: Micros(amount),
            currency,
            meta: MessageMeta {
                user: uid.to_owned(),
                connector: meta.connector.to_owned(),
                operator: String::new(),
                destination: meta.destination.to_owned(),
                sender: meta.sender.to_owned(),
                parts: meta.parts.max(1),
                text_length: u32::try_from(meta.text.len()).unwrap_or(u32::MAX),
                text_hash: text_hash(meta.text),
            },
        };
        match self.engine.reserve(request) {
            Ok(_) => {
                self.shard(key).lock().insert(key.to_owned(), account);
                Ok(())
            }
            Err(BillingError::InsufficientFunds { .. }) => Err(ChargeError::Balance),
            Err(BillingError::QuotaExhausted { .. }) => Err(ChargeError::SmsCount),
            Err(error) if error.is_store_fault() => Err(ChargeError::Busy(error.to_string())),
            Err(error) => {
                warn!(%error, uid, "reservation refused");
                Err(ChargeError::UnknownAccount(error.to_string()))
            }
        }
    }

    fn commit(&self, key: &str, operator_id: &str) {
        if let Some(account) = self.shard(key).lock().remove(key)
            && let Err(error) = self.engine.commit(account, key, Some(operator_id))
        {
            warn!(%error, key, "commit failed");
        }
    }

    fn refund(&self, key: &str) {
        if let Some(account) = self.shard(key).lock().remove(key)
            && let Err(error) = self.engine.refund(account, key, "FAILED")
        {
            warn!(%error, key, "refund failed");
        }
    }
}

/// FNV-1a of the text: enough to tell texts apart in an audit, nothing to read back.
fn text_hash(text: &[u8]) -> String {
    let hash = text.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
    });
    format!("{hash:016x}")
}
