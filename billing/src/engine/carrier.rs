//! Least-cost routing: the connector that finally carried a part (after a failover it
//! is not the one named at reservation) and what its operator charges us. Recorded on
//! the reservation's CDR row by the commit that writes it.

use std::sync::Arc;

use crate::ledger::CdrRow;
use crate::money::Micros;

/// The connector that carried a part, and its operator's cost per SMS.
#[derive(Clone, Copy, Debug)]
pub struct Carrier<'a> {
    pub connector: &'a str,
    pub cost_per_part: Micros,
}

impl Carrier<'_> {
    /// Puts the carrier on `cdr`, leaving its shared metadata alone when nothing changes
    /// (the usual case: the part went where it was routed).
    pub(crate) fn record_on(&self, cdr: &mut CdrRow) {
        if *cdr.meta.connector != *self.connector || cdr.meta.carrier_cost != self.cost_per_part {
            let meta = Arc::make_mut(&mut cdr.meta);
            meta.connector = self.connector.into();
            meta.carrier_cost = self.cost_per_part;
        }
    }
}
