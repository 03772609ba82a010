//! A client's message (MT), from its credentials to its place in a connector's queue.
//!
//! [`Gateway::submit`] runs the steps in order; any of them may refuse the message:
//! 1. [`admit`](Gateway::admit): credentials, default source address, throughput, our id;
//! 2. [`intercept`](Gateway::intercept): the MT interceptor script, if one matches;
//! 3. [`choose`](Gateway::choose): the first matching MT route and its connector;
//! 4. [`prepare`](Gateway::prepare): split into parts and build each submit_sm;
//! 5. [`reserve`](Gateway::reserve): pre-charge every part ([`Reservation`]);
//! 6. [`commit`](Gateway::commit): journal the parts, then queue them.
//!
//! From step 5 on the money is held by a [`Reservation`] and the parts by a [`Staged`]
//! value; both undo themselves when dropped, so every refusal after the charge refunds it
//! without a line of rollback written by hand.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use chrono::Local;
use parking_lot::Mutex;
use proto::charging::{ChargeError, Charging, MessageCharge, PartCharge, part_key};
use smpp_core::{client::SubmitRequest, rusmpp::CommandStatus};
use tracing::{debug, warn};

use super::{Connector, Gateway, InFlight};
use crate::{
    credentials::{self, Requested},
    journaling::{Durable, FinalOutcome, JournalRecord},
    model::{
        DlrRequest, ESM_UDHI, Message, Origin, RD_RECEIPT_ALWAYS, TAG_MESSAGE_PAYLOAD,
        new_message_id,
    },
    queue::Queued,
    receipts::MultipartState,
    refusal::Refusal,
    route::RouteKind,
    script::Verdict,
    snapshot::Snapshot,
    split,
    stats::bump,
    user::User,
};

/// The SMS a part counts for: one, or, for content carried whole in message_payload
/// (which the operator splits), as many as it takes.
pub(super) fn segments(msg: &Message, content: &[u8]) -> u32 {
    if !msg.payload_tlv {
        return 1;
    }
    let encoding = smpp_core::text::Encoding::from_data_coding(msg.data_coding);
    u32::try_from(smpp_core::text::count_encoded(content, encoding).parts)
        .unwrap_or(u32::MAX)
        .max(1)
}

/// Where a message goes, as its route decided.
struct Target {
    connector: Arc<Connector>,
    /// A failover route's connectors, to move to if this one goes down.
    alternatives: Option<Arc<[Arc<str>]>>,
    /// The route's price of one part.
    price_per_part: i64,
    /// The destination's network, when the registry knows it.
    network: Option<super::lcr::NetworkPick>,
    /// What the chosen connector's operator charges per part (0 when unknown).
    cost_per_part: i64,
    lcr: Option<super::lcr::LcrTrail>,
}

/// The parts of a message, ready to queue.
struct Prepared {
    contents: Vec<Bytes>,
    items: Vec<Queued>,
    registered_delivery: u8,
}

/// What the interceptor decided.
enum Interception {
    Continue,
    /// The script accepted the message and took it off the path.
    Consumed,
}

/// The money held for a message between its reservation and its queueing. Dropped
/// without [`Reservation::keep`], it refunds every part.
pub(super) struct Reservation<'a> {
    charging: &'a dyn Charging,
    keys: Vec<String>,
}

impl<'a> Reservation<'a> {
    fn new(charging: &'a dyn Charging, keys: Vec<String>) -> Self {
        Self { charging, keys }
    }

    fn key(&self, part: usize) -> &str {
        &self.keys[part]
    }

    /// The message is queued: its parts' charges now settle one by one, on the
    /// operator's answers.
    fn keep(mut self) {
        self.keys.clear();
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        for key in &self.keys {
            self.charging.refund(key, "REFUSED");
        }
    }
}

/// Parts entered in the in-flight table (and maybe the journal) but not yet queued.
/// Dropped without [`Staged::keep`], they leave the table, and a journaled message is
/// marked final so that a replay does not send it.
struct Staged<'a> {
    gateway: &'a Gateway,
    id: Arc<str>,
    tags: Vec<u64>,
    journaled: bool,
    /// The message's annex may be in the journal.
    annexed: bool,
}

impl Staged<'_> {
    fn keep(mut self) {
        self.tags.clear();
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if self.tags.is_empty() {
            return;
        }
        self.gateway.forget(&self.tags);
        if self.journaled {
            for part in 0..self.tags.len() {
                self.gateway.journal.append(JournalRecord::Outcome {
                    id: &self.id,
                    part,
                    outcome: FinalOutcome::Failed {
                        status: u32::from(CommandStatus::EsmeRsubmitfail),
                    },
                });
            }
        }
        if self.annexed {
            self.gateway.forget_annex(&self.id);
        }
    }
}

impl Gateway {
    /// Accept a message from `user` (SMPP or HTTP). Returns our message id once the
    /// message is charged, journaled and queued.
    #[tracing::instrument(name = "message.submit", skip_all, fields(user = %user.uid, message_id = tracing::field::Empty))]
    pub async fn submit(
        &self,
        user: &User,
        msg: Message,
        requested: Requested,
    ) -> Result<Arc<str>, Refusal> {
        let counters = self.user_counters(&user.uid);
        bump(&counters.submit_requests);
        let result = self.submit_steps(user, msg, &requested).await;
        match &result {
            Ok(id) => {
                bump(&counters.accepted);
                tracing::Span::current().record("message_id", &**id);
            }
            Err(Refusal::Throughput) => bump(&counters.throttled),
            Err(refusal) => {
                debug!(user = %user.uid, %refusal, "message refused");
                counters.refuse(refusal)
            }
        }
        result
    }

    async fn submit_steps(
        &self,
        user: &User,
        mut msg: Message,
        requested: &Requested,
    ) -> Result<Arc<str>, Refusal> {
        let snap = self.snapshot.load_full();
        self.admit(user, &mut msg, requested)?;
        if let Interception::Consumed = self.intercept(&snap, &mut msg)? {
            return Ok(msg.id.clone());
        }
        let target = self.choose(&snap, &mut msg)?;
        let prepared = self.prepare(&msg, &target)?;
        let reservation = self
            .reserve(user, &msg, &target, &prepared.contents)
            .await?;
        let id = msg.id.clone();
        // The message itself moves into the in-flight table: no copy per message.
        self.commit(user, msg, &target, prepared, &reservation)
            .await?;
        reservation.keep();
        Ok(id)
    }

    /// Step 1: who may send what, how fast; the message gets its id here (unless its
    /// caller gave it one).
    fn admit(&self, user: &User, msg: &mut Message, requested: &Requested) -> Result<(), Refusal> {
        msg.uid = user.uid.clone();
        msg.gid = user.gid.clone();
        if msg.tlv(TAG_MESSAGE_PAYLOAD).is_some() {
            // Still a raw TLV: it came beside a non-empty short_message (SMPP 3.4 allows
            // one or the other). Which one is the message is ambiguous, so refuse.
            return Err(Refusal::InvalidTlv {
                name: "message_payload",
            });
        }
        credentials::check(user, msg, requested)?;
        if msg.source.addr.is_empty()
            && let Some(default) = &user.default_src_addr
        {
            msg.source.addr = default.clone();
        }
        self.throughput(user, msg.origin == Origin::Http)?;
        // Time-ordered (UUID v7): the CDR and ledger indexes grow at their end instead of
        // splitting B-tree pages at random places. A caller may have chosen it already
        // ([`new_message_id`]), to keep a record of the message before it can be sent.
        if msg.id.is_empty() {
            msg.id = new_message_id();
        }
        msg.received_at = Local::now();
        Ok(())
    }

    fn throughput(&self, user: &User, http: bool) -> Result<(), Refusal> {
        let rate = if http {
            user.http_throughput
        } else {
            user.smpps_throughput
        };
        let Some(rate) = rate else { return Ok(()) };
        let mut throttles = self.throttles.lock();
        let bucket = throttles
            .entry((user.uid.clone(), http))
            .or_insert_with(|| smpp_core::throttle::TokenBucket::new(rate));
        if bucket.try_take(Instant::now()) {
            Ok(())
        } else {
            Err(Refusal::Throughput)
        }
    }

    /// Step 2: the first matching MT interceptor may change, consume or reject it.
    fn intercept(&self, snap: &Snapshot, msg: &mut Message) -> Result<Interception, Refusal> {
        let Some(rule) = snap.mt_interceptors.select(msg) else {
            return Ok(Interception::Continue);
        };
        match rule.targets[0].intercept(msg) {
            Ok(Verdict::Continue) => Ok(Interception::Continue),
            Ok(Verdict::AcceptWithoutRouting) => Ok(Interception::Consumed),
            Ok(Verdict::Reject {
                smpp_status,
                http_status,
            }) => Err(Refusal::Intercepted {
                smpp_status,
                http_status,
            }),
            Err(error) => {
                warn!(%error, id = %msg.id, "MT interceptor failed: message rejected");
                Err(Refusal::InterceptorFailed)
            }
        }
    }

    /// Step 3: the first matching MT route (Jasmin order) and the connector it yields.
    #[tracing::instrument(name = "route", level = "debug", skip_all)]
    fn choose(&self, snap: &Snapshot, msg: &mut Message) -> Result<Target, Refusal> {
        let route = snap.mt.select(msg).ok_or(Refusal::NoRoute)?;
        let network = self.lcr.network_of(&msg.destination.addr);
        if route.kind == RouteKind::Lcr {
            return self.choose_lcr(msg, route.rate, network);
        }
        let (cid, alternatives) = match route.kind {
            RouteKind::Default | RouteKind::Static => (&route.targets[0], None),
            RouteKind::RoundRobin => (&route.targets[route.next_index()], None),
            RouteKind::Failover => {
                let bound = route
                    .targets
                    .iter()
                    .find(|cid| {
                        self.connectors
                            .load()
                            .get(*cid)
                            .is_some_and(|c| c.is_bound())
                    })
                    .ok_or(Refusal::NoBoundConnector)?;
                (bound, Some(Arc::<[Arc<str>]>::from(route.targets.clone())))
            }
            RouteKind::Lcr => return Err(Refusal::NoRoute),
        };
        let connector = self
            .connectors
            .load()
            .get(cid)
            .ok_or(Refusal::NoRoute)?
            .clone();
        if msg.source.addr.is_empty()
            && let Some(src) = &connector.config.src_addr
        {
            msg.source.addr = src.clone();
        }
        let cost_per_part = network
            .as_ref()
            .and_then(|n| self.lcr.costs.load().cost(cid, n.mcc, n.mnc))
            .unwrap_or(0);
        Ok(Target {
            connector,
            alternatives,
            price_per_part: route.rate,
            network,
            cost_per_part,
            lcr: None,
        })
    }

    /// Step 3 for an LcrRoute: the best candidate of the destination's network.
    fn choose_lcr(
        &self,
        msg: &mut Message,
        rate: i64,
        network: Option<super::lcr::NetworkPick>,
    ) -> Result<Target, Refusal> {
        let network = network.ok_or(Refusal::NoRoute)?;
        let (trail, first_cost) = self.lcr_pick(&network).ok_or(Refusal::NoBoundConnector)?;
        let cid = trail.current();
        let connector = self
            .connectors
            .load()
            .get(cid)
            .ok_or(Refusal::NoRoute)?
            .clone();
        connector.health.routed();
        if msg.source.addr.is_empty()
            && let Some(src) = &connector.config.src_addr
        {
            msg.source.addr = src.clone();
        }
        Ok(Target {
            connector,
            alternatives: None,
            price_per_part: rate,
            network: Some(network),
            cost_per_part: first_cost,
            lcr: Some(trail),
        })
    }

    /// Step 4: the parts and their submit_sm, before any money moves.
    fn prepare(&self, msg: &Message, target: &Target) -> Result<Prepared, Refusal> {
        let contents: Vec<Bytes> = if msg.split_long {
            split::split(&msg.content, msg.data_coding)
        } else {
            vec![msg.content.clone()]
        };
        let n = contents.len();
        let max = self.settings().long_content_max_parts.max(1);
        if n > max {
            return Err(Refusal::InvalidArgument {
                name: "content".into(),
                value: format!("{n} parts, at most {max}"),
            });
        }
        // Checked again when pushing; this spares a charge that would only be refunded.
        let queue = &target.connector.queue;
        if queue.len() + n > queue.capacity() {
            return Err(Refusal::QueueFull);
        }
        // An HTTP dlr-level 2 or 3 needs the operator's receipt.
        let registered_delivery = if msg.dlr.as_ref().is_some_and(DlrRequest::on_receipt) {
            msg.registered_delivery | RD_RECEIPT_ALWAYS
        } else {
            msg.registered_delivery
        };
        let esm_class = if n > 1 {
            msg.esm_class | ESM_UDHI
        } else {
            msg.esm_class
        };
        let expires_at = smpp_core::time::deadline(&msg.validity_period);
        let items = contents
            .iter()
            .map(|content| {
                let pdu = msg
                    .to_submit_sm(content, esm_class, registered_delivery, &[])
                    .map_err(|error| Refusal::InvalidArgument {
                        name: error.field.into(),
                        value: String::new(),
                    })?;
                // The tag is given when the part is staged.
                Ok(Queued::new(SubmitRequest::new(0, pdu), expires_at))
            })
            .collect::<Result<Vec<_>, Refusal>>()?;
        let bytes: usize = items.iter().map(Queued::bytes).sum();
        if queue.bytes() + bytes > queue.max_bytes() {
            return Err(Refusal::QueueFull);
        }
        Ok(Prepared {
            contents,
            items,
            registered_delivery,
        })
    }

    /// Step 5: pre-charge every part, all or none.
    #[tracing::instrument(name = "reserve", level = "debug", skip_all)]
    async fn reserve(
        &self,
        user: &User,
        msg: &Message,
        target: &Target,
        contents: &[Bytes],
    ) -> Result<Reservation<'_>, Refusal> {
        let n = contents.len();
        let charges: Vec<PartCharge<'_>> = contents
            .iter()
            .enumerate()
            .map(|(index, text)| PartCharge {
                index,
                text,
                segments: segments(msg, text),
            })
            .collect();
        let charge = MessageCharge {
            uid: &user.uid,
            message_id: &msg.id,
            price_per_part: target.price_per_part,
            connector: &target.connector.cid,
            destination: &msg.destination.addr,
            sender: &msg.source.addr,
            parts: n,
            charges: &charges,
            network: target
                .network
                .as_ref()
                .map(|n| proto::charging::NetworkInfo {
                    mcc: n.mcc,
                    mnc: n.mnc,
                    operator: &n.operator,
                }),
            cost_per_part: target.cost_per_part,
        };
        match self.charging.reserve(charge).await {
            Ok(()) => Ok(Reservation::new(
                self.charging.as_ref(),
                (0..n).map(|i| part_key(&msg.id, i, n)).collect(),
            )),
            Err(ChargeError::Busy(reason)) => {
                // Billing logs its own state; one line per refused message would flood.
                debug!(%reason, user = %user.uid, id = %msg.id, "billing busy");
                Err(Refusal::ChargingBusy)
            }
            Err(reason) => {
                debug!(%reason, user = %user.uid, id = %msg.id, "cannot charge");
                Err(Refusal::Charging(reason))
            }
        }
    }

    /// Step 6: durable before the client hears ESME_ROK, then queued all or none.
    #[tracing::instrument(name = "journal_queue", level = "debug", skip_all)]
    async fn commit(
        &self,
        user: &User,
        msg: Message,
        target: &Target,
        prepared: Prepared,
        reservation: &Reservation<'_>,
    ) -> Result<(), Refusal> {
        let Prepared {
            contents,
            mut items,
            registered_delivery,
        } = prepared;
        let n = contents.len();
        let message = Arc::new(msg);
        let cid = &target.connector.cid;
        let multipart = (n > 1 && self.settings().multipart_receipt_whole)
            .then(|| Arc::new(Mutex::new(MultipartState::new(n))));
        let mut staged = Staged {
            gateway: self,
            id: message.id.clone(),
            tags: Vec::with_capacity(n),
            journaled: false,
            annexed: false,
        };
        let trace = super::trace::Parent::current();
        for (part, item) in items.iter_mut().enumerate() {
            let tag = self.new_tag();
            item.request.tag = tag;
            self.track(
                tag,
                InFlight {
                    message: message.clone(),
                    content: contents[part].clone(),
                    esm_class: u8::from(item.request.pdu.esm_class),
                    registered_delivery,
                    part,
                    parts: n,
                    connector: cid.clone(),
                    alternatives: target.alternatives.clone(),
                    network: target.network.as_ref().map(|n| (n.mcc, n.mnc)),
                    lcr: target.lcr.clone(),
                    charge_key: reservation.key(part).to_owned(),
                    amount: target.price_per_part,
                    requeues: 0,
                    username: user.username.clone(),
                    multipart: multipart.clone(),
                    expires_at: item.expires_at,
                    trace: trace.clone(),
                },
            );
            staged.tags.push(tag);
        }
        // One record per part; the log writes in order, so the last part's
        // acknowledgement covers the earlier ones, and the annex put just before it.
        staged.journaled = true;
        let mut durable = Durable::Done;
        for (part, item) in items.iter().enumerate() {
            if part + 1 == n
                && let Some(annex) = &message.annex
            {
                staged.annexed = true;
                let id = &message.id;
                if let Durable::Busy = self.journal.append(JournalRecord::Annex { id, annex }) {
                    return Err(Refusal::JournalBusy);
                }
            }
            durable = self.journal.append(JournalRecord::Accepted {
                message: &message,
                username: &user.username,
                connector: cid,
                part,
                parts: n,
                content: &contents[part],
                esm_class: u8::from(item.request.pdu.esm_class),
                registered_delivery,
                charge_key: reservation.key(part),
                amount: target.price_per_part,
            });
            match durable {
                // Nothing of this message is durable; a later part cannot be either.
                Durable::Busy => return Err(Refusal::JournalBusy),
                Durable::Failed(_) => break,
                _ => {}
            }
        }
        if let Err(error) = durable.wait().await {
            warn!(%error, id = %message.id, "journal append failed");
            return Err(Refusal::Enqueue);
        }
        if target.connector.queue.try_push(items).is_err() {
            return Err(Refusal::QueueFull);
        }
        staged.keep();
        for _ in 0..n {
            bump(&target.connector.counters.queued);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
