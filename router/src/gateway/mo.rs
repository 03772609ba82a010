//! What operators send us that is not a receipt: mobile-originated messages, reassembled
//! when long, through the MO interceptor and the first matching MO route to an SMPP
//! user (the original parts, journaled until answered) or an HTTP connector.

use std::{sync::Arc, time::Duration};

use chrono::Local;
use hyper::Method;
use smpp_core::{
    client::Inbound,
    rusmpp::{
        CommandStatus, Pdu,
        pdus::DeliverSm,
        tlvs::{MessageDeliveryRequestTlvValue, TlvTag},
        types::{AnyOctetString, COctetString, OctetString},
        values::{DataCoding, EsmClass, Npi, PriorityFlag, RegisteredDelivery, Ton},
    },
};
use tracing::{debug, warn};

use super::Gateway;
use crate::{
    callbacks::{Callback, MO_AGENT, mo_params},
    journaling::{Durable, JournalRecord},
    model::{Message, RawTlv, TAG_MESSAGE_PAYLOAD, TAG_SAR_MSG_REF_NUM},
    reassembly::Offer,
    receipts,
    route::{MoTarget, RouteKind},
    script::Verdict,
    stats::bump,
};

impl Gateway {
    pub(super) async fn on_inbound(&self, cid: &Arc<str>, inbound: Inbound) -> CommandStatus {
        let msg = match &inbound {
            Inbound::DeliverSm(p) => Message::from_deliver_sm(p, cid),
            Inbound::DataSm(p) => Message::from_data_sm(p, cid),
        };
        if let Some(r) = receipts::parse(&msg) {
            return self.on_receipt(cid, r).await;
        }
        if let Some(c) = self.connectors.load().get(cid) {
            bump(&c.counters.mo);
        }
        self.on_mo(msg, true).await
    }

    /// An MO or a part of one. A part is answered only once it is journaled, since
    /// until its message is complete it lives nowhere else; its record leaves the
    /// journal when the whole message is routed. `journal` is false for parts the
    /// journal's replay hands back (they are in it already).
    pub(super) async fn on_mo(&self, msg: Message, journal: bool) -> CommandStatus {
        let part = (journal && is_mo_part(&msg)).then(|| msg.clone());
        match self.reassembler.offer(msg) {
            Offer::Single(m) => self.route_mo(*m, Vec::new()).await,
            Offer::Waiting => {
                let Some(part) = part else {
                    return CommandStatus::EsmeRok;
                };
                let durable = self.journal.append(JournalRecord::MoPart {
                    key: mo_part_key(&part),
                    message: &part,
                    ttl: Duration::from_secs(self.settings().mo_reassembly_timeout_secs),
                });
                match durable.wait().await {
                    Ok(()) => CommandStatus::EsmeRok,
                    Err(error) => {
                        warn!(%error, "MO part not journaled: operator asked to resend");
                        CommandStatus::EsmeRsyserr
                    }
                }
            }
            Offer::Complete { whole, parts } => {
                let keys: Vec<u128> = parts.iter().map(mo_part_key).collect();
                let kept = parts.clone();
                let status = self.route_mo(*whole, parts).await;
                if status == CommandStatus::EsmeRok {
                    for key in keys {
                        self.journal.append(JournalRecord::Delivered { key });
                    }
                } else if let Some(last) = part {
                    // The operator sends the refused part again: the others wait for it
                    // in memory as they do in the journal.
                    let last = mo_part_key(&last);
                    for p in kept.into_iter().filter(|p| mo_part_key(p) != last) {
                        let _ = self.reassembler.offer(p);
                    }
                }
                status
            }
        }
    }

    async fn route_mo(&self, mut whole: Message, parts: Vec<Message>) -> CommandStatus {
        let snap = self.snapshot.load_full();
        whole.id = Arc::from(uuid::Uuid::new_v4().to_string());
        whole.received_at = Local::now();
        let unroutable = CommandStatus::from(self.settings().unroutable_mo_status);
        if let Some(rule) = snap.mo_interceptors.select(&whole) {
            match rule.targets[0].intercept(&mut whole) {
                Ok(Verdict::Continue) => {}
                Ok(Verdict::AcceptWithoutRouting) => return CommandStatus::EsmeRok,
                Ok(Verdict::Reject { smpp_status, .. }) => return CommandStatus::from(smpp_status),
                Err(error) => {
                    warn!(%error, "MO interceptor failed");
                    return CommandStatus::EsmeRsyserr;
                }
            }
        }
        let Some(route) = snap.mo.select(&whole) else {
            // Phone numbers are personal data: only at debug.
            warn!(connector = %whole.connector, "no MO route");
            debug!(from = %whole.source.addr, to = %whole.destination.addr, "no MO route");
            return unroutable;
        };
        let order: Vec<MoTarget> = match route.kind {
            RouteKind::RoundRobin => vec![route.targets[route.next_index()].clone()],
            RouteKind::Failover => route.targets.clone(),
            _ => vec![route.targets[0].clone()],
        };
        for target in order.iter() {
            match target {
                MoTarget::Smpps(username) => {
                    if route.kind == RouteKind::Failover
                        && self.registry.receivers(username) == 0
                        && order.len() > 1
                    {
                        continue;
                    }
                    if let Some(user) = snap.directory.by_username.get(username) {
                        bump(&self.user_counters(&user.uid).mo);
                    }
                    // SMPP users get the original parts, as Jasmin sends them.
                    let pdus: Vec<&Message> = if parts.is_empty() {
                        vec![&whole]
                    } else {
                        parts.iter().collect()
                    };
                    let mut durable = Durable::Done;
                    for m in pdus {
                        match to_deliver_sm(m) {
                            Some(pdu) => durable = self.push_to_user(username, Pdu::DeliverSm(pdu)),
                            None => return CommandStatus::EsmeRsyserr,
                        }
                    }
                    // The log writes in order: the last part's durability covers the rest.
                    if let Err(error) = durable.wait().await {
                        warn!(%error, "MO not journaled: operator asked to resend");
                        return CommandStatus::EsmeRsyserr;
                    }
                    // Observers (the REST API's `sms.mo` webhooks) store it before the
                    // operator is answered: a crash after the answer cannot lose it.
                    if let Some(user) = snap.directory.by_username.get(username) {
                        let event = receipts::MoEvent {
                            id: whole.id.clone(),
                            uid: user.uid.clone(),
                            connector: whole.connector.clone(),
                            from: whole.source.addr.clone(),
                            to: whole.destination.addr.clone(),
                            data_coding: whole.data_coding,
                            content: whole.content.clone(),
                        };
                        if self.observers.mo(event).await.is_err() {
                            warn!("MO not stored by an observer: operator asked to resend");
                            return CommandStatus::EsmeRsyserr;
                        }
                    }
                    return CommandStatus::EsmeRok;
                }
                MoTarget::Http(cid) => {
                    let Some(http) = snap.http_connectors.get(cid) else {
                        continue;
                    };
                    let cb = Callback {
                        url: http.url.clone(),
                        method: if http.method.eq_ignore_ascii_case("GET") {
                            Method::GET
                        } else {
                            Method::POST
                        },
                        params: mo_params(&whole.id, &whole),
                        user_agent: MO_AGENT,
                    };
                    if route.kind == RouteKind::Failover && order.len() > 1 {
                        if self.thrower().attempt(&cb).await {
                            return CommandStatus::EsmeRok;
                        }
                        continue;
                    }
                    // The operator hears ESME_ROK once the callback is journaled.
                    if let Err(error) = self.throw(cb).wait().await {
                        warn!(%error, "MO callback not journaled: operator asked to resend");
                        return CommandStatus::EsmeRsyserr;
                    }
                    return CommandStatus::EsmeRok;
                }
            }
        }
        unroutable
    }
}

/// An MO for an SMPP user, fields as received.
fn to_deliver_sm(m: &Message) -> Option<DeliverSm> {
    let mut tlvs: Vec<MessageDeliveryRequestTlvValue> = m
        .tlvs
        .iter()
        .map(|t: &RawTlv| MessageDeliveryRequestTlvValue::Other {
            tag: TlvTag::from(t.tag),
            value: AnyOctetString::from_bytes(t.value.clone()),
        })
        .collect();
    let short = if m.payload_tlv || m.content.len() > 254 {
        tlvs.push(MessageDeliveryRequestTlvValue::Other {
            tag: TlvTag::from(TAG_MESSAGE_PAYLOAD),
            value: AnyOctetString::from_bytes(m.content.clone()),
        });
        OctetString::empty()
    } else {
        OctetString::from_bytes(m.content.clone()).ok()?
    };
    Some(
        DeliverSm::builder()
            .source_addr_ton(Ton::from(m.source.ton))
            .source_addr_npi(Npi::from(m.source.npi))
            .source_addr(COctetString::from_string(m.source.addr.clone()).ok()?)
            .dest_addr_ton(Ton::from(m.destination.ton))
            .dest_addr_npi(Npi::from(m.destination.npi))
            .destination_addr(COctetString::from_string(m.destination.addr.clone()).ok()?)
            .esm_class(EsmClass::from(m.esm_class))
            .protocol_id(m.protocol_id)
            .priority_flag(PriorityFlag::from(m.priority))
            .registered_delivery(RegisteredDelivery::from(0))
            .data_coding(DataCoding::from(m.data_coding))
            .short_message(short)
            .tlvs(tlvs)
            .build(),
    )
}

/// A part of a long MO (UDH or SAR), which the reassembler may hold.
fn is_mo_part(m: &Message) -> bool {
    m.has_udhi() || m.tlv(TAG_SAR_MSG_REF_NUM).is_some()
}

/// The journal key of an MO part: the same part received again maps to the same record.
fn mo_part_key(m: &Message) -> u128 {
    let fields: [&[u8]; 4] = [
        m.connector.as_bytes(),
        m.source.addr.as_bytes(),
        m.destination.addr.as_bytes(),
        &m.content,
    ];
    let mut hash = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d_u128;
    for field in fields {
        for b in field.iter().chain(std::iter::once(&0xff)) {
            hash = (hash ^ u128::from(*b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
        }
    }
    // SAR parts share a content prefix less often than a reference: mix the TLVs in.
    for t in &m.tlvs {
        for b in t.tag.to_be_bytes().iter().chain(t.value.iter()) {
            hash = (hash ^ u128::from(*b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
        }
    }
    hash
}
