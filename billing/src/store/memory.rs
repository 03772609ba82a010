//! A store that keeps accounts and tariffs in memory and writes no ledger or CDR:
//! `[storage] billing = false` (balances and quotas enforced, nothing recorded) and
//! tests that want the real engine without a database.

use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;

use super::{AccountSums, Batch, ClosedRef, InvoiceLine, LedgerStore, PendingCdr, RefAudit};
use crate::account::{Account, AccountId};
use crate::audit::AuditEvent;
use crate::error::BillingError;
use crate::ledger::UnixMicros;
use crate::tariff::{Tariff, TariffId};

#[derive(Default)]
pub struct MemoryStore {
    accounts: Mutex<Vec<Account>>,
    tariffs: Mutex<Vec<Tariff>>,
    next_tariff: AtomicI64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl LedgerStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn keeps_records(&self) -> bool {
        false
    }

    async fn write_batch(&self, _batch: &Batch) -> Result<(), BillingError> {
        Ok(())
    }

    async fn max_ledger_id(&self) -> Result<i64, BillingError> {
        Ok(0)
    }

    async fn insert_account(&self, account: &Account) -> Result<AccountId, BillingError> {
        let mut accounts = self.accounts.lock();
        let id = AccountId(i64::try_from(accounts.len()).unwrap_or(i64::MAX) + 1);
        let mut stored = account.clone();
        stored.id = id;
        accounts.push(stored);
        Ok(id)
    }

    async fn update_account(&self, account: &Account) -> Result<(), BillingError> {
        let mut accounts = self.accounts.lock();
        match accounts.iter_mut().find(|a| a.id == account.id) {
            Some(a) => {
                *a = account.clone();
                Ok(())
            }
            None => Err(BillingError::UnknownAccount(account.id)),
        }
    }

    async fn load_accounts(&self) -> Result<Vec<Account>, BillingError> {
        Ok(self.accounts.lock().clone())
    }

    async fn ledger_sums(&self) -> Result<Vec<AccountSums>, BillingError> {
        Ok(Vec::new())
    }

    async fn balance_rows(&self) -> Result<Vec<AccountSums>, BillingError> {
        Ok(Vec::new())
    }

    async fn pending_cdrs(&self) -> Result<Vec<PendingCdr>, BillingError> {
        Ok(Vec::new())
    }

    async fn admin_refs(&self) -> Result<Vec<(AccountId, String)>, BillingError> {
        Ok(Vec::new())
    }

    async fn recent_closed(&self, _: UnixMicros, _: i64) -> Result<Vec<ClosedRef>, BillingError> {
        Ok(Vec::new())
    }

    async fn volumes(
        &self,
        _: UnixMicros,
        _: UnixMicros,
    ) -> Result<Vec<(AccountId, u64)>, BillingError> {
        Ok(Vec::new())
    }

    async fn upsert_tariff(&self, tariff: &Tariff) -> Result<TariffId, BillingError> {
        let mut tariffs = self.tariffs.lock();
        let mut stored = tariff.clone();
        if stored.id.0 == 0 {
            stored.id = TariffId(self.next_tariff.fetch_add(1, Ordering::Relaxed) + 1);
        }
        tariffs.retain(|t| t.id != stored.id);
        let id = stored.id;
        tariffs.push(stored);
        Ok(id)
    }

    async fn delete_tariff(&self, id: TariffId) -> Result<(), BillingError> {
        self.tariffs.lock().retain(|t| t.id != id);
        Ok(())
    }

    async fn load_tariffs(&self) -> Result<Vec<Tariff>, BillingError> {
        Ok(self.tariffs.lock().clone())
    }

    async fn audit_references(
        &self,
        _: &mut (dyn FnMut(RefAudit) + Send),
    ) -> Result<(), BillingError> {
        Ok(())
    }

    async fn audit_log(&self, _: Option<&str>, _: i64) -> Result<Vec<AuditEvent>, BillingError> {
        Ok(Vec::new())
    }

    async fn invoice_lines(
        &self,
        _: AccountId,
        _: UnixMicros,
        _: UnixMicros,
    ) -> Result<Vec<InvoiceLine>, BillingError> {
        Ok(Vec::new())
    }

    async fn close(&self) {}
}
