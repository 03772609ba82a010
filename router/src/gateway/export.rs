//! Read-only views for a metrics endpoint: every connector and every user's counters,
//! walked at scrape time rather than updated per message.

use std::sync::Arc;

use super::{Connector, Gateway};
use crate::stats::UserCounters;

impl Gateway {
    /// Every SMPP connector, in no particular order.
    pub fn connectors(&self) -> Vec<Arc<Connector>> {
        self.connectors.load().values().cloned().collect()
    }

    /// The counters of every user that has sent or received something since the start.
    pub fn all_user_counters(&self) -> Vec<(Arc<str>, Arc<UserCounters>)> {
        self.users
            .read()
            .iter()
            .map(|(uid, c)| (uid.clone(), c.clone()))
            .collect()
    }
}
