//! Billing's side of the charging contract (`proto::charging::Charging`): one billing
//! account per router user, and a reservation per part, so that a message of n parts
//! costs n × the part price and n of `sms_count`, and each part settles on its own.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use parking_lot::{Mutex, RwLock};
use proto::charging::{
    Balance, Carrier, ChargeError, ChargeFuture, Charging, MessageCharge, part_key,
};
use tracing::{info, warn};

use crate::{
    AccountId, AccountKind, BillingEngine, BillingError, Currency, LedgerRequest, MessageMeta,
    Micros, NewAccount, OpenReservation, QuotaOptions, ReserveRequest, tariff::RateQuery,
};

/// Users without a balance quota (Jasmin's "unlimited") still get every message priced
/// in the ledger and CDR; this credit limit is what "unlimited" means here.
const UNLIMITED_CREDIT: Micros = Micros(1_000_000_000_000_000);

const SHARDS: usize = 16;

/// A router user as billing needs to know it.
#[derive(Debug, Clone)]
pub struct UserAccount {
    pub uid: String,
    /// Opening balance in micro-units; None = unlimited.
    pub balance: Option<i64>,
    /// Opening sms_count; None = unlimited.
    pub sms_count: Option<u64>,
}

pub struct EngineCharging {
    engine: BillingEngine,
    currency: Currency,
    accounts: RwLock<HashMap<Arc<str>, AccountId>>,
    /// Open reservations by part key: commit and refund only get the key.
    open: Vec<Mutex<HashMap<String, AccountId>>>,
}

impl EngineCharging {
    /// Finds or creates the account of every user; a new account gets the user's
    /// configured balance and sms_count as its opening top-up (credited once, ever).
    pub async fn attach(
        engine: BillingEngine,
        users: impl IntoIterator<Item = UserAccount>,
        currency: &str,
    ) -> Result<Self, BillingError> {
        let currency = Currency::new(currency)?;
        let charging = Self {
            engine,
            currency,
            accounts: RwLock::new(HashMap::new()),
            open: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        };
        let existing: HashMap<String, AccountId> = charging
            .engine
            .store()
            .load_accounts()
            .await?
            .into_iter()
            .map(|a| (a.name, a.id))
            .collect();
        for user in users {
            charging.attach_user(&user, &existing).await?;
        }
        Ok(charging)
    }

    /// Finds or creates the account of one user added at run time (the admin API);
    /// idempotent, like [`EngineCharging::attach`].
    pub async fn attach_one(&self, user: &UserAccount) -> Result<AccountId, BillingError> {
        let name = format!("user:{}", user.uid);
        let existing: HashMap<String, AccountId> = self
            .engine
            .store()
            .load_accounts()
            .await?
            .into_iter()
            .filter(|a| a.name == name)
            .map(|a| (a.name, a.id))
            .collect();
        self.attach_user(user, &existing).await?;
        self.account_of(&user.uid)
            .ok_or_else(|| BillingError::InvalidRequest(format!("no account for {}", user.uid)))
    }

    /// The currency of the users' accounts.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    async fn attach_user(
        &self,
        user: &UserAccount,
        existing: &HashMap<String, AccountId>,
    ) -> Result<(), BillingError> {
        let name = format!("user:{}", user.uid);
        let id = match existing.get(&name) {
            Some(id) => *id,
            None => {
                let account = self
                    .engine
                    .create_account(NewAccount {
                        parent_id: None,
                        kind: AccountKind::Client,
                        name,
                        currency: self.currency,
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
                    .await?;
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
            self.engine
                .top_up(LedgerRequest {
                    account: id,
                    amount: Micros(opening.max(0)),
                    currency: self.currency,
                    sms_count: sms,
                    reference: format!("config-opening:{}", user.uid),
                    actor: "config".into(),
                    origin: "config".into(),
                    reason: "opening balance from smsgw.toml".into(),
                })
                .await?;
        }
        self.accounts
            .write()
            .insert(Arc::from(user.uid.as_str()), id);
        Ok(())
    }

    pub fn engine(&self) -> &BillingEngine {
        &self.engine
    }

    /// The billing account of a router user.
    pub fn account_of(&self, uid: &str) -> Option<AccountId> {
        self.accounts.read().get(uid).copied()
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, AccountId>> {
        let h = key.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        &self.open[h % SHARDS]
    }

    /// The reservations the last run left open. Take them before clients can submit, so
    /// that `settle_leftovers` never touches a reservation of this run.
    pub fn leftover_reservations(&self) -> Vec<OpenReservation> {
        self.engine.open_reservations()
    }

    /// After a restart and the journal's replay: of the `leftovers`, keep the
    /// reservations of parts the journal sends again, commit those the journal (or the
    /// CDR) says the operator took, refund the rest. One this run already settled is
    /// left alone (the engine refuses a second settlement).
    pub fn settle_leftovers(
        &self,
        leftovers: Vec<OpenReservation>,
        live_keys: &[String],
        submitted: &[(String, String)],
    ) {
        let live: HashSet<&str> = live_keys.iter().map(String::as_str).collect();
        let submitted: HashMap<&str, &str> = submitted
            .iter()
            .map(|(key, operator_id)| (key.as_str(), operator_id.as_str()))
            .collect();
        let (mut kept, mut committed, mut refunded) = (0, 0, 0);
        for open in leftovers {
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

    fn reserve_now(&self, m: &MessageCharge<'_>) -> Result<(), ChargeError> {
        let account = self
            .account_of(m.uid)
            .ok_or_else(|| ChargeError::UnknownAccount(m.uid.to_owned()))?;
        // The account's (or its resellers', or a global) tariff for the destination's
        // network or prefix, with its volume tier; else the route's rate (Jasmin).
        let price_per_part = self
            .engine
            .rate(&RateQuery {
                account,
                destination: m.destination,
                mcc_mnc: m.network.map(|n| (n.mcc, n.mnc)),
                route_rate: Micros(m.price_per_part),
                parts: 1,
                at: None,
            })
            .map_err(|e| refusal(e, m.uid))?
            .price_per_part
            .0;
        let mut done: Vec<String> = Vec::with_capacity(m.charges.len());
        for part in m.charges {
            let key = part_key(m.message_id, part.index, m.parts);
            let segments = part.segments.max(1);
            let amount = price_per_part
                .checked_mul(i64::from(segments))
                .ok_or_else(|| ChargeError::Invalid(format!("{segments} segments overflow")))?;
            let request = ReserveRequest {
                account,
                reference: key.clone(),
                amount: Micros(amount),
                currency: self.currency,
                meta: MessageMeta {
                    user: m.uid.into(),
                    connector: m.connector.into(),
                    operator: m.network.map(|n| n.operator.into()).unwrap_or_default(),
                    destination: m.destination.into(),
                    sender: m.sender.into(),
                    // A row per part, counting the SMS it stands for.
                    parts: segments,
                    text_length: u32::try_from(part.text.len()).unwrap_or(u32::MAX),
                    text_hash: text_hash(part.text).into(),
                    mcc: m.network.map(|n| n.mcc),
                    mnc: m.network.map(|n| n.mnc),
                    carrier_cost: Micros(m.cost_per_part),
                },
            };
            match self.engine.reserve(request) {
                Ok(_) => {
                    self.shard(&key).lock().insert(key.clone(), account);
                    done.push(key);
                }
                Err(error) => {
                    // All parts or none: the client is refused the whole message.
                    for key in &done {
                        self.refund(key, "RESERVE_ABORTED");
                    }
                    return Err(refusal(error, m.uid));
                }
            }
        }
        Ok(())
    }
}

fn refusal(error: BillingError, uid: &str) -> ChargeError {
    match error {
        BillingError::InsufficientFunds { .. } => ChargeError::InsufficientFunds,
        BillingError::QuotaExhausted { .. } => ChargeError::SmsCountExhausted,
        BillingError::Suspended(_) => ChargeError::Suspended,
        BillingError::CurrencyMismatch { .. } => ChargeError::CurrencyMismatch(error.to_string()),
        BillingError::UnknownAccount(_) => ChargeError::UnknownAccount(uid.to_owned()),
        error if error.is_store_fault() => ChargeError::Busy(error.to_string()),
        error => ChargeError::Invalid(error.to_string()),
    }
}

impl Charging for EngineCharging {
    fn reserve<'a>(
        &'a self,
        message: MessageCharge<'a>,
    ) -> ChargeFuture<'a, Result<(), ChargeError>> {
        // The engine decides in memory: nothing to wait for.
        Box::pin(std::future::ready(self.reserve_now(&message)))
    }

    fn commit(&self, key: &str, operator_id: &str) {
        if let Some(account) = self.shard(key).lock().remove(key)
            && let Err(error) = self.engine.commit(account, key, Some(operator_id))
        {
            warn!(%error, key, "commit failed");
        }
    }

    fn commit_via(&self, key: &str, operator_id: &str, carrier: Carrier<'_>) {
        let carrier = crate::engine::Carrier {
            connector: carrier.connector,
            cost_per_part: Micros(carrier.cost_per_part),
        };
        if let Some(account) = self.shard(key).lock().remove(key)
            && let Err(error) = self.engine.commit_via(account, key, operator_id, carrier)
        {
            warn!(%error, key, "commit failed");
        }
    }

    fn refund(&self, key: &str, reason: &str) {
        if let Some(account) = self.shard(key).lock().remove(key)
            && let Err(error) = self.engine.refund(account, key, reason)
        {
            warn!(%error, key, "refund failed");
        }
    }

    fn balance<'a>(&'a self, uid: &'a str) -> ChargeFuture<'a, Result<Balance, ChargeError>> {
        let result = self
            .account_of(uid)
            .ok_or_else(|| ChargeError::UnknownAccount(uid.to_owned()))
            .and_then(|id| self.engine.balance(id).map_err(|e| refusal(e, uid)))
            .map(|view| Balance {
                balance: (view.credit_limit < UNLIMITED_CREDIT).then_some(view.available.0),
                sms_count: view.sms_count,
            });
        Box::pin(std::future::ready(result))
    }
}

/// FNV-1a of the text: enough to tell texts apart in an audit, nothing to read back.
fn text_hash(text: &[u8]) -> String {
    let hash = text.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
    });
    format!("{hash:016x}")
}
