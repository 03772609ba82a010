//! Pre-charging through a small trait: reserve before the client is acknowledged,
//! commit on the operator's OK, refund on a final failure. Every call is idempotent by
//! charge key (the message id, or `id/part`), so replays and duplicates cannot charge twice.
//! The billing crate will implement this trait; `MemoryCharging` is the in-process one.

use std::collections::HashMap;

use parking_lot::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChargeError {
    #[error("balance too low")]
    Balance,
    #[error("sms_count exhausted")]
    SmsCount,
    #[error("unknown account {0}")]
    UnknownAccount(String),
    /// Billing cannot take more now (its store is away or behind): retry later.
    #[error("billing busy: {0}")]
    Busy(String),
}

/// What the call detail record keeps about a part besides money. The text itself is
/// never stored: the implementation may keep its length and a hash.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChargeMeta<'a> {
    pub connector: &'a str,
    pub destination: &'a str,
    pub sender: &'a str,
    /// Parts of the whole message (each key is one part).
    pub parts: u32,
    pub text: &'a [u8],
}

/// Money in integer micro-units; each key is one submit_sm, counted once against
/// sms_count.
pub trait Charging: Send + Sync + 'static {
    fn reserve(
        &self,
        key: &str,
        uid: &str,
        amount: i64,
        meta: &ChargeMeta<'_>,
    ) -> Result<(), ChargeError>;
    /// The operator accepted the part under `operator_id`.
    fn commit(&self, key: &str, operator_id: &str);
    fn refund(&self, key: &str);
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Account {
    /// None = unlimited ("ND").
    pub balance: Option<i64>,
    pub sms_count: Option<u64>,
}

#[derive(Debug)]
struct Reservation {
    uid: String,
    amount: i64,
    sms: u32,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, Account>,
    open: HashMap<String, Reservation>,
    /// Keys already committed or refunded: a repeat is a no-op.
    closed: HashMap<String, bool>,
}

/// Balances in memory.
#[derive(Debug, Default)]
pub struct MemoryCharging {
    state: Mutex<State>,
}

impl MemoryCharging {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_account(&self, uid: &str, account: Account) {
        self.state.lock().accounts.insert(uid.to_owned(), account);
    }

    pub fn account(&self, uid: &str) -> Option<Account> {
        self.state.lock().accounts.get(uid).copied()
    }

    /// Reservations neither committed nor refunded.
    pub fn open_reservations(&self) -> usize {
        self.state.lock().open.len()
    }
}

impl Charging for MemoryCharging {
    fn reserve(
        &self,
        key: &str,
        uid: &str,
        amount: i64,
        _meta: &ChargeMeta<'_>,
    ) -> Result<(), ChargeError> {
        let sms = 1u32;
        let mut state = self.state.lock();
        if state.open.contains_key(key) || state.closed.contains_key(key) {
            return Ok(());
        }
        let account = state
            .accounts
            .get_mut(uid)
            .ok_or_else(|| ChargeError::UnknownAccount(uid.to_owned()))?;
        if let Some(balance) = account.balance
            && amount > 0
            && balance < amount
        {
            return Err(ChargeError::Balance);
        }
        if let Some(count) = account.sms_count
            && count < u64::from(sms)
        {
            return Err(ChargeError::SmsCount);
        }
        if let Some(balance) = account.balance.as_mut() {
            *balance -= amount.max(0);
        }
        if let Some(count) = account.sms_count.as_mut() {
            *count -= u64::from(sms);
        }
        state.open.insert(
            key.to_owned(),
            Reservation {
                uid: uid.to_owned(),
                amount: amount.max(0),
                sms,
            },
        );
        Ok(())
    }

    fn commit(&self, key: &str, _operator_id: &str) {
        let mut state = self.state.lock();
        if state.open.remove(key).is_some() {
            state.closed.insert(key.to_owned(), true);
        }
    }

    fn refund(&self, key: &str) {
        let mut state = self.state.lock();
        let Some(r) = state.open.remove(key) else {
            return;
        };
        if let Some(account) = state.accounts.get_mut(&r.uid) {
            if let Some(balance) = account.balance.as_mut() {
                *balance += r.amount;
            }
            if let Some(count) = account.sms_count.as_mut() {
                *count += u64::from(r.sms);
            }
        }
        state.closed.insert(key.to_owned(), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_commit_refund_are_idempotent() {
        let c = MemoryCharging::new();
        c.set_account(
            "u",
            Account {
                balance: Some(100),
                sms_count: Some(3),
            },
        );
        assert!(c.reserve("a", "u", 60, &ChargeMeta::default()).is_ok());
        assert!(c.reserve("a", "u", 60, &ChargeMeta::default()).is_ok());
        assert_eq!(c.account("u").map(|a| a.balance), Some(Some(40)));
        assert_eq!(
            c.reserve("b", "u", 60, &ChargeMeta::default()),
            Err(ChargeError::Balance)
        );
        c.refund("a");
        c.refund("a");
        assert_eq!(c.account("u").map(|a| a.balance), Some(Some(100)));
        assert!(c.reserve("c", "u", 10, &ChargeMeta::default()).is_ok());
        c.commit("c", "op-1");
        c.refund("c");
        assert_eq!(c.account("u").map(|a| a.balance), Some(Some(90)));
        assert_eq!(c.account("u").map(|a| a.sms_count), Some(Some(2)));
        assert_eq!(c.open_reservations(), 0);
    }
}
