//! Least-cost routing: the connector that finally carried a part (after a failover it
//! is not the one named at reservation) and what its operator charges us. Recorded on
//! the open reservation's CDR row before the commit writes it.

use std::sync::Arc;

use crate::account::AccountId;
use crate::money::Micros;

use super::BillingEngine;

impl BillingEngine {
    /// Sets the carrier of an open reservation; unknown or settled references are left
    /// alone (the commit that follows reports them). Returns whether it was set.
    pub fn set_carrier(
        &self,
        account: AccountId,
        reference: &str,
        connector: &str,
        cost_per_part: Micros,
    ) -> bool {
        let mut guard = self.shards().lock(account);
        let Some(open) = guard.open.get_mut(reference) else {
            return false;
        };
        if open.cdr.account != account {
            return false;
        }
        if *open.cdr.meta.connector != *connector || open.cdr.meta.carrier_cost != cost_per_part {
            let meta = Arc::make_mut(&mut open.cdr.meta);
            meta.connector = connector.into();
            meta.carrier_cost = cost_per_part;
        }
        true
    }
}
