//! What a client may ask about its own messages after submitting them: their state
//! (query_sm), and, while they still wait in our queue, to cancel (cancel_sm) or replace
//! (replace_sm) them. Another user's message id is answered as unknown.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use parking_lot::Mutex;
use recent_map::RecentMap;
use smpp_core::rusmpp::{CommandStatus, values::MessageState};

use super::{Gateway, InFlight};
use crate::{
    journaling::{FinalOutcome, JournalRecord},
    queue::Queued,
};

/// Recent states remembered for query_sm after a message leaves the in-flight table.
const RECENT_STATES: usize = 100_000;

/// Refund reason for a message the client cancelled.
const CANCELLED: &str = "CANCELLED";

/// What query_sm answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageStatus {
    pub state: MessageState,
    /// SMPP absolute time (`YYMMDDhhmmsstnnp`) when the state became final.
    pub final_date: Option<String>,
    pub error_code: u8,
}

/// Kept small and cheap to record (one per finished message): the final date is
/// formatted only when a client asks.
struct Recent {
    uid: Arc<str>,
    state: MessageState,
    error_code: u8,
    finished_at: Option<chrono::DateTime<Utc>>,
}

/// The last known state of recently finished messages: the last `RECENT_STATES` ids
/// and up to as many before them, the oldest forgotten first, in a map that never
/// rehashes or frees in bulk under the lock every sent message takes (see
/// `recent_map`).
pub(super) struct RecentStates {
    inner: Mutex<RecentMap<Arc<str>, Recent>>,
}

impl Default for RecentStates {
    fn default() -> Self {
        Self {
            inner: Mutex::new(RecentMap::new(RECENT_STATES)),
        }
    }
}

impl RecentStates {
    pub(super) fn record(&self, id: &Arc<str>, uid: &Arc<str>, state: MessageState, error: u8) {
        let recent = Recent {
            uid: uid.clone(),
            state,
            error_code: error,
            finished_at: (state != MessageState::Enroute).then(Utc::now),
        };
        self.inner.lock().insert(id.clone(), recent);
    }

    fn get(&self, id: &str, uid: &str) -> Option<MessageStatus> {
        self.inner
            .lock()
            .get(id)
            .filter(|r| &*r.uid == uid)
            .map(|r| MessageStatus {
                state: r.state,
                final_date: r.finished_at.map(smpp_time),
                error_code: r.error_code,
            })
    }
}

/// An SMPP absolute time in UTC ("…000+": tenths 0, offset 0).
fn smpp_time(at: chrono::DateTime<Utc>) -> String {
    format!("{}000+", at.format("%y%m%d%H%M%S"))
}

/// The message state a receipt's `stat:` stands for.
pub(super) fn state_of_stat(stat: &str) -> MessageState {
    match stat {
        "DELIVRD" => MessageState::Delivered,
        "EXPIRED" => MessageState::Expired,
        "DELETED" => MessageState::Deleted,
        "UNDELIV" => MessageState::Undeliverable,
        "ACCEPTD" => MessageState::Accepted,
        "REJECTD" => MessageState::Rejected,
        "ENROUTE" => MessageState::Enroute,
        _ => MessageState::Unknown,
    }
}

impl Gateway {
    /// Tags of `uid`'s message `id` still in flight (queued or awaiting the operator).
    fn own_tags(&self, id: &str, uid: &str) -> Vec<(u64, Arc<str>)> {
        // A scan: query_sm and friends are rare next to submits, which an index would tax.
        let mut tags = Vec::new();
        for shard in &self.inflight {
            for (tag, f) in shard.lock().iter() {
                if &*f.message.id == id && &*f.message.uid == uid {
                    tags.push((*tag, f.connector.clone()));
                }
            }
        }
        tags
    }

    /// Whether some part of `uid`'s message `id` waits in our queue or for the
    /// operator's answer to its submit_sm.
    pub fn is_in_flight(&self, id: &str, uid: &str) -> bool {
        !self.own_tags(id, uid).is_empty()
    }

    /// query_sm: `uid`'s message `id`, in flight or recently finished.
    pub fn query(&self, id: &str, uid: &str) -> Option<MessageStatus> {
        if !self.own_tags(id, uid).is_empty() {
            return Some(MessageStatus {
                state: MessageState::Enroute,
                final_date: None,
                error_code: 0,
            });
        }
        self.recent.get(id, uid)
    }

    /// Takes `tags` out of their connector's queue, all or none (some part was
    /// already handed to the uplink: false). The rest of the queue keeps its order.
    fn unqueue(&self, tags: &[(u64, Arc<str>)]) -> bool {
        let Some((_, cid)) = tags.first() else {
            return false;
        };
        if tags.iter().any(|(_, c)| c != cid) {
            return false;
        }
        let Some(connector) = self.connector(cid) else {
            return false;
        };
        let queue = &connector.queue;
        let (mine, rest): (Vec<Queued>, Vec<Queued>) = queue
            .drain()
            .into_iter()
            .partition(|q| tags.iter().any(|(t, _)| *t == q.request.tag));
        let complete = mine.len() == tags.len();
        let put_back = if complete {
            rest
        } else {
            // Back in place (positions within the queue do not matter for parts).
            mine.into_iter().chain(rest).collect()
        };
        for item in put_back.into_iter().rev() {
            queue.push_front(item);
        }
        complete
    }

    /// cancel_sm: drop `uid`'s message `id` if all its parts still wait in our queue;
    /// refunded and journaled as final so that a replay does not send it.
    pub fn cancel(&self, id: &str, uid: &str) -> Result<(), CommandStatus> {
        let tags = self.own_tags(id, uid);
        if tags.is_empty() || !self.unqueue(&tags) {
            return Err(CommandStatus::EsmeRcancelfail);
        }
        for (tag, _) in &tags {
            let Some(f) = self.take(*tag) else { continue };
            self.charging.refund(&f.charge_key, CANCELLED);
            self.journal.append(JournalRecord::Outcome {
                id: &f.message.id,
                part: f.part,
                outcome: FinalOutcome::Failed {
                    status: u32::from(CommandStatus::EsmeRcancelfail),
                },
            });
            self.recent
                .record(&f.message.id, &f.message.uid, MessageState::Deleted, 0);
        }
        Ok(())
    }

    /// replace_sm: new content (and validity, when given) for `uid`'s single-part
    /// message `id` still waiting in our queue. The replacement is journaled (over the
    /// part's accepted record) before the client is answered, so a restart sends the
    /// new content and never the old one.
    pub async fn replace_queued(
        &self,
        id: &str,
        uid: &str,
        content: Bytes,
        validity_period: &str,
    ) -> Result<(), CommandStatus> {
        let tags = self.own_tags(id, uid);
        let [(tag, cid)] = tags.as_slice() else {
            return Err(CommandStatus::EsmeRreplacefail);
        };
        if !self.unqueue(&tags) {
            return Err(CommandStatus::EsmeRreplacefail);
        }
        // Journal the replaced part while it is out of the queue (nobody can send it).
        let durable = {
            let shard = self.shard(*tag).lock();
            let Some(f) = shard.get(tag) else {
                return Err(CommandStatus::EsmeRreplacefail);
            };
            let replaced = replaced(f, content, validity_period);
            let durable = self.journal.append(JournalRecord::Accepted {
                message: &replaced.message,
                username: &f.username,
                connector: &f.connector,
                part: f.part,
                parts: f.parts,
                content: &replaced.content,
                esm_class: f.esm_class,
                registered_delivery: f.registered_delivery,
                charge_key: &f.charge_key,
                amount: f.amount,
            });
            (durable, replaced)
        };
        let (durable, replaced) = durable;
        let journaled = durable.wait().await.is_ok();
        let item = {
            let mut shard = self.shard(*tag).lock();
            let Some(f) = shard.get_mut(tag) else {
                return Err(CommandStatus::EsmeRreplacefail);
            };
            if journaled {
                f.message = replaced.message;
                f.content = replaced.content;
                f.expires_at = replaced.expires_at;
            }
            self.rebuild(f, *tag)
        };
        let queue = self.connectors.load().get(cid).map(|c| c.queue.clone());
        match (item, queue) {
            (Some(item), Some(queue)) => {
                queue.push_front(item);
                // Not journaled: the old content goes out as it would have.
                if journaled {
                    Ok(())
                } else {
                    Err(CommandStatus::EsmeRreplacefail)
                }
            }
            _ => {
                // Out of the queue and not rebuildable: finish it as cancelled.
                if let Some(f) = self.take(*tag) {
                    self.charging.refund(&f.charge_key, CANCELLED);
                    self.journal.append(JournalRecord::Outcome {
                        id: &f.message.id,
                        part: f.part,
                        outcome: FinalOutcome::Failed {
                            status: u32::from(CommandStatus::EsmeRreplacefail),
                        },
                    });
                }
                Err(CommandStatus::EsmeRreplacefail)
            }
        }
    }
}

/// A queued part's new message, content and expiry after replace_sm.
struct Replaced {
    message: Arc<crate::model::Message>,
    content: Bytes,
    expires_at: Option<std::time::Instant>,
}

fn replaced(f: &InFlight, content: Bytes, validity_period: &str) -> Replaced {
    let mut message = (*f.message).clone();
    message.content = content.clone();
    let mut expires_at = f.expires_at;
    if !validity_period.is_empty() {
        message.validity_period = validity_period.to_owned();
        expires_at = smpp_core::time::deadline(&message.validity_period);
    }
    Replaced {
        message: Arc::new(message),
        content,
        expires_at,
    }
}

#[cfg(test)]
mod recent_tests {
    use super::*;

    fn id(n: usize) -> Arc<str> {
        Arc::from(format!("msg-{n}"))
    }

    #[test]
    fn the_latest_state_wins_and_old_generations_are_forgotten() {
        let states = RecentStates::default();
        let uid: Arc<str> = Arc::from("bank");
        states.record(&id(0), &uid, MessageState::Enroute, 0);
        states.record(&id(0), &uid, MessageState::Delivered, 0);
        let got = states.get("msg-0", "bank").unwrap();
        assert_eq!(got.state, MessageState::Delivered);
        assert!(got.final_date.is_some());
        assert!(
            states.get("msg-0", "other").is_none(),
            "another user's id is unknown"
        );
        for n in 1..=RECENT_STATES {
            states.record(&id(n), &uid, MessageState::Enroute, 0);
        }
        // The last RECENT_STATES ids are all there, across the generations' turn.
        for n in 1..=RECENT_STATES {
            assert!(states.get(&format!("msg-{n}"), "bank").is_some(), "msg-{n}");
        }
        // A state recorded again after its generation turned is found at its latest.
        let old = id(1);
        states.record(&old, &uid, MessageState::Undeliverable, 1);
        assert_eq!(
            states.get(&old, "bank").unwrap().state,
            MessageState::Undeliverable
        );
        for n in RECENT_STATES + 1..=3 * RECENT_STATES {
            states.record(&id(n), &uid, MessageState::Enroute, 0);
        }
        assert!(
            states.get("msg-0", "bank").is_none(),
            "the oldest generation is gone"
        );
        let held = states.inner.lock().len();
        assert!(held <= 2 * RECENT_STATES, "{held} remembered");
    }
}
