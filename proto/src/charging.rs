//! The charging contract between the router and billing, as the router calls it in
//! process. It is the Rust face of `smsgw.billing.v1.Billing` (`proto/billing.proto`):
//! one reservation per message, one key per part.
//!
//! - [`Charging::reserve`] pre-charges a whole message before its client is answered:
//!   every part at `price_per_part`, counted one each against the account's
//!   `sms_count`. All parts are reserved or none is.
//! - [`Charging::commit`] (the operator accepted a part) and [`Charging::refund`] (a part
//!   failed for good) settle one part by its [`part_key`].
//!
//! Every call is idempotent by key, so journal replays and retried calls cannot charge
//! twice. `reserve` is async so that a remote implementation (billing over gRPC) fits
//! without blocking a runtime thread; `commit` and `refund` return at once and an
//! implementation that needs I/O queues them.

use std::{future::Future, pin::Pin};

/// Money in integer micro-units (1 = 10^-6 of the account's currency).
pub type Micros = i64;

/// A boxed future, so that `Charging` can be used as `dyn Charging`.
pub type ChargeFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The key of one part: the message id alone for a one-part message, `<id>/<n>` (n from
/// 1) otherwise. Billing stores it as the CDR's message reference.
pub fn part_key(message_id: &str, part: usize, parts: usize) -> String {
    if parts <= 1 {
        message_id.to_owned()
    } else {
        format!("{message_id}/{}", part + 1)
    }
}

/// Why a message cannot be charged. Each maps to its own refusal in the router.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChargeError {
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("sms_count exhausted")]
    SmsCountExhausted,
    #[error("account suspended")]
    Suspended,
    #[error("currency mismatch: {0}")]
    CurrencyMismatch(String),
    #[error("unknown account {0}")]
    UnknownAccount(String),
    /// Billing cannot take more now (its store is away or behind): retry later.
    #[error("billing busy: {0}")]
    Busy(String),
    /// A request billing cannot accept (a reused key, a negative price…): a defect.
    #[error("invalid charge: {0}")]
    Invalid(String),
}

/// What billing records about a message besides money. The text itself is never
/// stored: an implementation may keep its length and a hash.
#[derive(Debug, Clone, Copy)]
pub struct MessageCharge<'a> {
    /// The router user who pays.
    pub uid: &'a str,
    /// Our message id; the part keys derive from it.
    pub message_id: &'a str,
    /// The route's (or tariff's) price of one part; 0 is a free route.
    pub price_per_part: Micros,
    pub connector: &'a str,
    pub destination: &'a str,
    pub sender: &'a str,
    /// How many parts (submit_sm) the whole message has.
    pub parts: usize,
    /// The parts to reserve: every part of a new message; after a restart, the one part
    /// the journal sends again.
    pub charges: &'a [PartCharge<'a>],
    /// The destination's network when the router resolved it (tariffs by MCC/MNC).
    pub network: Option<NetworkInfo<'a>>,
    /// What the chosen connector's operator charges us per part (0 when unknown).
    pub cost_per_part: Micros,
}

/// A destination's mobile network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkInfo<'a> {
    pub mcc: u16,
    pub mnc: u16,
    /// The network's operator name ("Beeline").
    pub operator: &'a str,
}

/// Who actually carried a part (after any failover) and what it costs us per SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carrier<'a> {
    pub connector: &'a str,
    pub cost_per_part: Micros,
}

/// One part (one submit_sm) to reserve.
#[derive(Debug, Clone, Copy)]
pub struct PartCharge<'a> {
    /// Its index in the message, from 0.
    pub index: usize,
    /// Its encoded text.
    pub text: &'a [u8],
    /// SMS it counts for: 1, or more for a part carried whole in message_payload, which
    /// the operator splits (it costs `price_per_part` and one `sms_count` each).
    pub segments: u32,
}

/// An account as the HTTP `/balance` answer and the admin tools show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    /// Available money (balance − reserved), None when the account has no money limit.
    pub balance: Option<Micros>,
    /// Parts left, None when unlimited.
    pub sms_count: Option<i64>,
}

pub trait Charging: Send + Sync + 'static {
    /// Reserves `price_per_part` and one `sms_count` per segment of each part in
    /// `charges`, all or none. A part already reserved (a replay) is left as it is.
    fn reserve<'a>(
        &'a self,
        message: MessageCharge<'a>,
    ) -> ChargeFuture<'a, Result<(), ChargeError>>;
    /// The operator accepted the part under `operator_id`.
    fn commit(&self, key: &str, operator_id: &str);
    /// [`Charging::commit`], naming the connector that carried the part and its cost,
    /// which may differ from the reservation's after a failover.
    fn commit_via(&self, key: &str, operator_id: &str, carrier: Carrier<'_>) {
        let _ = carrier;
        self.commit(key, operator_id);
    }
    /// The part failed for good (`reason`: its final status): money and count go back.
    fn refund(&self, key: &str, reason: &str);
    /// What the user's account has left.
    fn balance<'a>(&'a self, uid: &'a str) -> ChargeFuture<'a, Result<Balance, ChargeError>>;
}

/// No money at all: every message is free and unlimited (`[storage] billing` wired to
/// nothing, e.g. the SMPP engine benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unmetered;

impl Charging for Unmetered {
    fn reserve<'a>(&'a self, _: MessageCharge<'a>) -> ChargeFuture<'a, Result<(), ChargeError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn commit(&self, _: &str, _: &str) {}

    fn refund(&self, _: &str, _: &str) {}

    fn balance<'a>(&'a self, _: &'a str) -> ChargeFuture<'a, Result<Balance, ChargeError>> {
        Box::pin(std::future::ready(Ok(Balance::default())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_keys() {
        assert_eq!(part_key("m", 0, 1), "m");
        assert_eq!(part_key("m", 0, 3), "m/1");
        assert_eq!(part_key("m", 2, 3), "m/3");
    }
}
