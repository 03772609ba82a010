//! The billing engine: balances and reservations decided in memory, sharded per account
//! (no lock is shared across accounts), every movement recorded as ledger entries and CDR
//! writes that the write-behind task commits in batches.
//!
//! The router calls this API directly in-process; `grpc::BillingService` serves the same
//! operations over the `smsgw.billing.v1.Billing` boundary when billing runs apart.

use std::collections::{HashMap, HashSet};

/// foldhash with a per-process random seed: several times faster than SipHash on the
/// 36-byte references of the hot path, still seeded against crafted collisions.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use recent_map::RecentMap;
use tokio::sync::mpsc;

use crate::account::{Account, AccountId, AccountKind, AccountStatus, BalanceView, QuotaOptions};
use crate::config::BillingConfig;
use crate::error::BillingError;
use crate::ledger::{CdrRow, ChargeStatus, MessageMeta, Op, UnixMicros, now_micros};
use crate::money::{Currency, Micros};
use crate::recovery::{self, RecoveryReport};
use crate::store::{LedgerStore, open_store};
use crate::tariff::{Quote, RateQuery, RateSource, Tariff, TariffBook, TariffId};
use crate::writer::{self, FlushWaiter, Shared, WriterMetrics};

mod carrier;
mod ledger_ops;
mod settle;

pub use carrier::Carrier;
pub(crate) use settle::Close;
use settle::check_reference;

/// Actor of the operations the router drives (reserve/commit/refund).
pub const ACTOR_ROUTER: &str = "router";
/// Actor of the operations recovery performs at start.
pub const ACTOR_RECOVERY: &str = "recovery";

/// References are our message ids (UUID strings) or top-up references.
const MAX_REFERENCE_LEN: usize = 128;

/// A pre-charge request: one reservation covers every part of a message.
#[derive(Clone, Debug)]
pub struct ReserveRequest {
    pub account: AccountId,
    /// Our message id.
    pub reference: String,
    /// Price per part × parts, in the account's currency (see `BillingEngine::rate`).
    pub amount: Micros,
    pub currency: Currency,
    pub meta: MessageMeta,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub amount: Micros,
    /// Debited at acceptance (early_percent accounts); not refundable, as in Jasmin.
    pub charged_now: Micros,
    /// The reference was already reserved with the same amount: nothing changed.
    pub duplicate: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// This call charged or released the reservation.
    Applied,
    /// The same settlement was already applied: nothing changed.
    Duplicate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settled {
    pub settlement: Settlement,
    /// What this call charged (commit) or released (refund).
    pub amount: Micros,
}

/// A top-up (money in, or an sms_count quota) or a signed manual adjustment.
#[derive(Clone, Debug)]
pub struct LedgerRequest {
    pub account: AccountId,
    pub amount: Micros,
    pub currency: Currency,
    /// Top-ups only: sms_count quota added.
    pub sms_count: i64,
    /// Idempotency key (e.g. the payment's reference).
    pub reference: String,
    pub actor: String,
    /// Where the request came from, for the audit log (`grpc 10.0.0.5:51234`, `cli`…).
    pub origin: String,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerOutcome {
    pub balance: Micros,
    pub duplicate: bool,
}

/// A new account; its id is given by the store.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub parent_id: Option<AccountId>,
    pub kind: AccountKind,
    pub name: String,
    pub currency: Currency,
    pub quota: QuotaOptions,
    pub credit_limit: Micros,
}

/// A reservation not yet committed or refunded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReservation {
    pub account: AccountId,
    pub reference: String,
    pub amount: Micros,
    pub charged_early: Micros,
    pub parts: u32,
    pub accepted_at: UnixMicros,
    pub operator_msg_id: Option<String>,
}

pub(crate) struct AccountState {
    pub account: Account,
    pub balance: i64,
    pub reserved: i64,
    pub sms_count: i64,
    /// Parts charged since `volume_from`; reset when `volume_until` passes.
    pub volume: u64,
    pub volume_until: UnixMicros,
    pub admin_refs: HashSet<Box<str>>,
}

pub(crate) struct OpenRes {
    pub amount: Micros,
    pub charged: Micros,
    pub cdr: CdrRow,
}

#[derive(Clone, Copy)]
pub(crate) struct SettledRef {
    pub account: AccountId,
    pub status: ChargeStatus,
}

pub(crate) struct Shard {
    pub accounts: FastMap<AccountId, AccountState>,
    pub open: FastMap<Arc<str>, OpenRes>,
    /// Not a FIFO: one under the shard's lock rehashed itself in place now and then, a
    /// 5.7 ms stall of every message of the shard's accounts (see `recent_map`).
    settled: RecentMap<Arc<str>, SettledRef, foldhash::fast::RandomState>,
    pending: Vec<Op>,
}

impl Shard {
    pub(crate) fn remember_settled(&mut self, reference: Arc<str>, s: SettledRef) {
        self.settled.insert(reference, s);
    }
}

/// One cache line (two, for adjacent-line prefetch) per shard lock.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

pub(crate) struct Shards {
    slots: Box<[Padded]>,
    mask: usize,
}

impl Shards {
    fn new(n: usize, settled_cap: usize) -> Shards {
        let n = n.max(1).next_power_of_two();
        let slots = (0..n)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    accounts: FastMap::default(),
                    open: FastMap::default(),
                    settled: RecentMap::new(settled_cap),
                    pending: Vec::new(),
                }))
            })
            .collect();
        Shards { slots, mask: n - 1 }
    }

    #[inline]
    pub(crate) fn lock(&self, account: AccountId) -> MutexGuard<'_, Shard> {
        // Fibonacci hashing spreads sequential ids over the shards.
        let h = (account.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let slot = &self.slots[h as usize & self.mask];
        // A panic under the lock cannot leave half an operation: every mutation pushes
        // its ops last. So a poisoned lock is still consistent and is used as is.
        slot.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn drain_into(&self, out: &mut Vec<Op>) {
        for slot in self.slots.iter() {
            let mut g = slot.0.lock().unwrap_or_else(|e| e.into_inner());
            out.append(&mut g.pending);
        }
    }

    fn for_each(&self, mut f: impl FnMut(&Shard)) {
        for slot in self.slots.iter() {
            f(&slot.0.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    store: Arc<dyn LedgerStore>,
    tariffs: RwLock<Arc<TariffBook>>,
    flush_tx: mpsc::UnboundedSender<FlushWaiter>,
    recovery: Mutex<RecoveryReport>,
}

/// The in-process billing API. Cheap to clone; the write-behind task stops (after a last
/// flush) when the last clone is dropped.
#[derive(Clone)]
pub struct BillingEngine {
    inner: Arc<Inner>,
}

impl BillingEngine {
    /// Opens the store named in `config.url`, runs migrations, rebuilds balances and open
    /// reservations, resolves what a crash left open, and starts the write-behind task.
    /// Needs a Tokio runtime.
    pub async fn open(config: BillingConfig) -> Result<BillingEngine, BillingError> {
        let store = open_store(&config.url).await?;
        BillingEngine::with_store(store, config).await
    }

    pub async fn with_store(
        store: Arc<dyn LedgerStore>,
        config: BillingConfig,
    ) -> Result<BillingEngine, BillingError> {
        let shards = Shards::new(config.shards, config.settled_memory_per_shard);
        let loaded = recovery::load(store.as_ref(), &config, &shards).await?;
        let shared = Arc::new(Shared {
            shards,
            counters: Default::default(),
            wake: Default::default(),
            batch_max: config.batch_max.max(1),
            capacity: config.buffer_capacity.max(16),
        });
        shared
            .counters
            .healthy
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(
            shared.clone(),
            store.clone(),
            loaded.next_ledger_id,
            flush_rx,
            config.flush_interval(),
        ));
        let engine = BillingEngine {
            inner: Arc::new(Inner {
                shared,
                store,
                tariffs: RwLock::new(Arc::new(loaded.tariffs)),
                flush_tx,
                recovery: Mutex::new(loaded.report),
            }),
        };
        let resolved = recovery::resolve_open(&engine, config.recovery)?;
        engine.flush().await?;
        engine
            .inner
            .recovery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .absorb(resolved);
        Ok(engine)
    }

    pub(crate) fn shards(&self) -> &Shards {
        &self.inner.shared.shards
    }

    pub fn store(&self) -> &Arc<dyn LedgerStore> {
        &self.inner.store
    }

    /// What the last start found and did.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.inner
            .recovery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    // ---- accounts -------------------------------------------------------------------

    pub async fn create_account(&self, new: NewAccount) -> Result<Account, BillingError> {
        if let Some(p) = new.parent_id
            && self.account(p).is_none()
        {
            return Err(BillingError::UnknownAccount(p));
        }
        let mut account = Account {
            id: AccountId(0),
            parent_id: new.parent_id,
            kind: new.kind,
            name: new.name,
            status: AccountStatus::Active,
            currency: new.currency,
            quota: new.quota,
            credit_limit: new.credit_limit,
        };
        account.validate()?;
        account.id = self.inner.store.insert_account(&account).await?;
        self.install_account(account.clone(), 0, 0, 0);
        Ok(account)
    }

    pub(crate) fn install_account(&self, account: Account, balance: i64, reserved: i64, sms: i64) {
        self.update_tariffs(|b| b.set_parent(account.id, account.parent_id));
        let mut shard = self.shards().lock(account.id);
        shard.accounts.insert(
            account.id,
            AccountState {
                account,
                balance,
                reserved,
                sms_count: sms,
                volume: 0,
                volume_until: 0,
                admin_refs: HashSet::new(),
            },
        );
    }

    pub fn account(&self, id: AccountId) -> Option<Account> {
        self.shards()
            .lock(id)
            .accounts
            .get(&id)
            .map(|s| s.account.clone())
    }

    /// Replaces an account's settings (name, parent, status, quota options, credit
    /// limit). The currency cannot change: the ledger is kept in it.
    pub async fn update_account(&self, account: Account) -> Result<(), BillingError> {
        account.validate()?;
        let current = self
            .account(account.id)
            .ok_or(BillingError::UnknownAccount(account.id))?;
        if current.currency != account.currency {
            return Err(BillingError::CurrencyMismatch {
                account: account.id,
                account_currency: current.currency,
                given: account.currency,
            });
        }
        self.inner.store.update_account(&account).await?;
        self.update_tariffs(|b| b.set_parent(account.id, account.parent_id));
        let mut shard = self.shards().lock(account.id);
        if let Some(state) = shard.accounts.get_mut(&account.id) {
            state.account = account;
        }
        Ok(())
    }

    pub async fn set_status(
        &self,
        id: AccountId,
        status: AccountStatus,
    ) -> Result<(), BillingError> {
        let mut a = self.account(id).ok_or(BillingError::UnknownAccount(id))?;
        a.status = status;
        self.update_account(a).await
    }

    pub async fn set_credit_limit(&self, id: AccountId, limit: Micros) -> Result<(), BillingError> {
        let mut a = self.account(id).ok_or(BillingError::UnknownAccount(id))?;
        a.credit_limit = limit;
        self.update_account(a).await
    }

    pub fn balance(&self, id: AccountId) -> Result<BalanceView, BillingError> {
        let shard = self.shards().lock(id);
        let s = shard
            .accounts
            .get(&id)
            .ok_or(BillingError::UnknownAccount(id))?;
        Ok(BalanceView {
            account: id,
            currency: s.account.currency,
            balance: Micros(s.balance),
            credit_limit: s.account.credit_limit,
            reserved: Micros(s.reserved),
            available: Micros(s.balance - s.reserved + s.account.credit_limit.0),
            sms_count: s.account.quota.sms_count_limited.then_some(s.sms_count),
        })
    }

    // ---- tariffs --------------------------------------------------------------------

    /// Creates (id 0) or replaces a tariff. Account overrides must be in the account's
    /// currency.
    pub async fn upsert_tariff(&self, mut tariff: Tariff) -> Result<TariffId, BillingError> {
        tariff.validate()?;
        if let Some(a) = tariff.account {
            let acc = self.account(a).ok_or(BillingError::UnknownAccount(a))?;
            if acc.currency != tariff.currency {
                return Err(BillingError::CurrencyMismatch {
                    account: a,
                    account_currency: acc.currency,
                    given: tariff.currency,
                });
            }
        }
        tariff.id = self.inner.store.upsert_tariff(&tariff).await?;
        let id = tariff.id;
        self.update_tariffs(|b| b.insert(tariff));
        Ok(id)
    }

    pub async fn delete_tariff(&self, id: TariffId) -> Result<(), BillingError> {
        self.inner.store.delete_tariff(id).await?;
        self.update_tariffs(|b| b.remove(id));
        Ok(())
    }

    /// The tariffs in force (global first, then by account).
    pub fn tariffs(&self) -> Vec<Tariff> {
        self.tariff_book().all()
    }

    pub fn tariff(&self, id: TariffId) -> Option<Tariff> {
        self.tariff_book().get(id).cloned()
    }

    fn tariff_book(&self) -> Arc<TariffBook> {
        self.inner
            .tariffs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update_tariffs(&self, f: impl FnOnce(&mut TariffBook)) {
        let mut guard = self
            .inner
            .tariffs
            .write()
            .unwrap_or_else(|e| e.into_inner());
        f(Arc::make_mut(&mut guard));
    }

    /// Price of a message for this account: its own (or its resellers') tariff, else a
    /// global tariff, else the route's rate. Volume tiers use the parts charged to the
    /// account this calendar month (UTC) before this message.
    pub fn rate(&self, q: &RateQuery<'_>) -> Result<Quote, BillingError> {
        if q.parts == 0 {
            return Err(BillingError::InvalidRequest(
                "a message has at least one part".into(),
            ));
        }
        if q.route_rate.0 < 0 {
            return Err(BillingError::InvalidAmount(format!(
                "route rate must not be negative, got {}",
                q.route_rate
            )));
        }
        let at = q.at.unwrap_or_else(now_micros);
        let (currency, volume) = {
            let shard = self.shards().lock(q.account);
            let s = shard
                .accounts
                .get(&q.account)
                .ok_or(BillingError::UnknownAccount(q.account))?;
            let volume = if at < s.volume_until { s.volume } else { 0 };
            (s.account.currency, volume)
        };
        let book = self
            .inner
            .tariffs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (price, source, discount_bp) =
            match book.select(q.account, currency, q.destination, q.mcc_mnc, at) {
                Some(t) => {
                    let bp = t.discount_for(volume);
                    (
                        t.price_per_part.discounted(bp),
                        RateSource::Tariff(t.id),
                        bp,
                    )
                }
                None => (q.route_rate, RateSource::Route, 0),
            };
        let total = price.checked_mul(i64::from(q.parts)).ok_or_else(|| {
            BillingError::InvalidAmount(format!("{price} × {} parts overflows", q.parts))
        })?;
        Ok(Quote {
            price_per_part: price,
            total,
            currency,
            source,
            discount_bp,
        })
    }

    // ---- durability and observability -----------------------------------------------

    /// Waits until everything recorded before this call is committed to the store.
    pub async fn flush(&self) -> Result<(), BillingError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .flush_tx
            .send(tx)
            .map_err(|_| BillingError::Closed)?;
        rx.await
            .map_err(|_| BillingError::Closed)?
            .map_err(BillingError::StoreUnavailable)
    }

    /// Readiness: false while the last write to the store failed.
    pub fn is_store_healthy(&self) -> bool {
        self.inner
            .shared
            .counters
            .healthy
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn metrics(&self) -> WriterMetrics {
        let s = &self.inner.shared;
        s.counters.snapshot(s.capacity)
    }

    /// Reservations neither committed nor refunded, for a durability layer that resends.
    pub fn open_reservations(&self) -> Vec<OpenReservation> {
        let mut out = Vec::new();
        self.shards().for_each(|shard| {
            out.extend(shard.open.iter().map(|(r, o)| OpenReservation {
                account: o.cdr.account,
                reference: r.to_string(),
                amount: o.amount,
                charged_early: o.charged,
                parts: o.cdr.meta.parts,
                accepted_at: o.cdr.accepted_at,
                operator_msg_id: o.cdr.operator_msg_id.as_deref().map(str::to_string),
            }))
        });
        out.sort_by(|a, b| {
            a.accepted_at
                .cmp(&b.accepted_at)
                .then(a.reference.cmp(&b.reference))
        });
        out
    }
}
