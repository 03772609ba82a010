//! The submit steps against fakes of billing and the journal: what is reserved, and
//! that every refusal after the reservation gives the money back.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use proto::charging::{Balance, ChargeError, ChargeFuture, Charging, MessageCharge};
use smpp_core::server::SessionRegistry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Reservation;
use crate::{
    Address, Gateway, Message, Origin, RouterConfig,
    credentials::Requested,
    gateway::Deps,
    journaling::{Durable, Journal, JournalRecord},
    refusal::Refusal,
    user::User,
};

/// One reserve call: (message id, parts, part indexes, price per part).
type ReserveCall = (String, usize, Vec<usize>, i64);

/// Billing that records every call and refuses when told to.
#[derive(Default)]
struct Ledger {
    reserved: Mutex<Vec<ReserveCall>>,
    refunded: Mutex<Vec<String>>,
    committed: Mutex<Vec<String>>,
    refuse_with: Mutex<Option<ChargeError>>,
}

impl Charging for Ledger {
    fn reserve<'a>(&'a self, m: MessageCharge<'a>) -> ChargeFuture<'a, Result<(), ChargeError>> {
        let result = match self.refuse_with.lock().clone() {
            Some(error) => Err(error),
            None => {
                self.reserved.lock().push((
                    m.message_id.to_owned(),
                    m.parts,
                    m.charges.iter().map(|c| c.index).collect(),
                    m.price_per_part,
                ));
                Ok(())
            }
        };
        Box::pin(std::future::ready(result))
    }

    fn commit(&self, key: &str, _operator_id: &str) {
        self.committed.lock().push(key.to_owned());
    }

    fn refund(&self, key: &str, _reason: &str) {
        self.refunded.lock().push(key.to_owned());
    }

    fn balance<'a>(&'a self, _uid: &'a str) -> ChargeFuture<'a, Result<Balance, ChargeError>> {
        Box::pin(std::future::ready(Ok(Balance::default())))
    }
}

/// A journal whose appends fail, hold until released, or pass, as the test says; it
/// keeps the charge keys of the Accepted records and counts Outcome records.
#[derive(Default)]
struct TestJournal {
    fail: Mutex<bool>,
    busy: Mutex<bool>,
    /// While set, Accepted records wait for this before they are durable.
    gate: Mutex<Option<Arc<Notify>>>,
    accepted: Mutex<Vec<String>>,
    outcomes: Mutex<usize>,
    /// Accepted, Annex and AnnexDone records, in order.
    order: Mutex<Vec<&'static str>>,
}

impl Journal for TestJournal {
    fn append(&self, record: JournalRecord<'_>) -> Durable {
        match record {
            JournalRecord::Accepted { charge_key, .. } => {
                self.order.lock().push("accepted");
                self.accepted.lock().push(charge_key.to_owned());
                if *self.fail.lock() {
                    return Durable::Failed("disk full".into());
                }
                if *self.busy.lock() {
                    return Durable::Busy;
                }
                if let Some(gate) = self.gate.lock().take() {
                    return Durable::Deferred(Box::pin(async move {
                        gate.notified().await;
                        Ok(())
                    }));
                }
                Durable::Done
            }
            JournalRecord::Outcome { .. } => {
                *self.outcomes.lock() += 1;
                Durable::Done
            }
            JournalRecord::Annex { .. } => {
                self.order.lock().push("annex");
                Durable::Done
            }
            JournalRecord::AnnexDone { .. } => {
                self.order.lock().push("annex done");
                Durable::Done
            }
            _ => Durable::Done,
        }
    }
}

const CONFIG: &str = r#"
[[groups]]
gid = "g1"
[[users]]
uid = "u1"
username = "bank"
password = "secret"
gid = "g1"
[[connectors]]
cid = "op1"
start = false
queue_capacity = 1
[[mt_routes]]
order = 0
type = "DefaultRoute"
connector = "op1"
rate = "0.25"
"#;

struct Setup {
    gateway: Arc<Gateway>,
    ledger: Arc<Ledger>,
    journal: Arc<TestJournal>,
    user: Arc<User>,
    _stop: tokio_util::sync::DropGuard,
}

fn setup(config: &str) -> Setup {
    let ledger = Arc::new(Ledger::default());
    let journal = Arc::new(TestJournal::default());
    let stop = CancellationToken::new();
    let handle = Gateway::start(
        RouterConfig::from_toml_str(config).expect("config"),
        SessionRegistry::new(),
        stop.clone(),
        Deps {
            charging: Some(ledger.clone()),
            journal: Some(journal.clone()),
            ..Deps::default()
        },
    )
    .expect("start");
    let user = handle.gateway.snapshot().directory.by_uid["u1"].clone();
    Setup {
        gateway: handle.gateway,
        ledger,
        journal,
        user,
        _stop: stop.drop_guard(),
    }
}

fn message(content: &[u8], split_long: bool) -> Message {
    Message {
        origin: Origin::Http,
        source: Address::new("BANK", 5, 0),
        destination: Address::new("255700000001", 1, 1),
        content: Bytes::copy_from_slice(content),
        split_long,
        ..Message::default()
    }
}

/// 400 GSM-7 characters: three parts of 153.
fn three_parts() -> Vec<u8> {
    b"a".repeat(400)
}

#[test]
fn a_dropped_reservation_refunds_every_part_and_a_kept_one_nothing() {
    let ledger = Ledger::default();
    drop(Reservation::new(&ledger, vec!["m/1".into(), "m/2".into()]));
    assert_eq!(*ledger.refunded.lock(), ["m/1", "m/2"]);
    let ledger = Ledger::default();
    Reservation::new(&ledger, vec!["m".into()]).keep();
    assert!(ledger.refunded.lock().is_empty());
}

/// A caller that chose the id (the REST API keeps the record first) gets it kept; one
/// that did not gets a new one.
#[tokio::test]
async fn a_chosen_id_is_kept() {
    let s = setup(
        CONFIG
            .replace("queue_capacity = 1", "queue_capacity = 10")
            .as_str(),
    );
    let chosen = crate::new_message_id();
    let mut msg = message(b"hi", false);
    msg.id = chosen.clone();
    let id = s
        .gateway
        .submit(&s.user, msg, Requested::default())
        .await
        .expect("accepted");
    assert_eq!(id, chosen);
    let other = s
        .gateway
        .submit(&s.user, message(b"hi", false), Requested::default())
        .await
        .expect("accepted");
    assert!(!other.is_empty() && other != chosen);
    assert_eq!(
        *s.journal.accepted.lock(),
        [id.to_string(), other.to_string()]
    );
}

#[tokio::test]
async fn one_reservation_covers_every_part_with_a_key_per_part() {
    let s = setup(
        CONFIG
            .replace("queue_capacity = 1", "queue_capacity = 10")
            .as_str(),
    );
    let id = s
        .gateway
        .submit(&s.user, message(&three_parts(), true), Requested::default())
        .await
        .expect("accepted");
    let reserved = s.ledger.reserved.lock().clone();
    assert_eq!(reserved, [(id.to_string(), 3, vec![0, 1, 2], 250_000)]);
    let keys: Vec<String> = (1..=3).map(|n| format!("{id}/{n}")).collect();
    assert_eq!(*s.journal.accepted.lock(), keys);
    assert!(s.ledger.refunded.lock().is_empty());
    assert_eq!(s.gateway.in_flight(), 3);
    let mut open = s.gateway.open_charge_keys();
    open.sort();
    assert_eq!(open, keys);
}

#[tokio::test]
async fn refusals_before_the_charge_reserve_nothing() {
    let s = setup(CONFIG);
    // Three parts never fit a queue of one: refused before billing is asked.
    let refusal = s
        .gateway
        .submit(&s.user, message(&three_parts(), true), Requested::default())
        .await;
    assert_eq!(refusal, Err(Refusal::QueueFull));
    let routes = CONFIG.find("[[mt_routes]]").expect("a route");
    let no_route = setup(&CONFIG[..routes]);
    let refusal = no_route
        .gateway
        .submit(&no_route.user, message(b"hi", false), Requested::default())
        .await;
    assert_eq!(refusal, Err(Refusal::NoRoute));
    for s in [&s, &no_route] {
        assert!(s.ledger.reserved.lock().is_empty());
        assert!(s.ledger.refunded.lock().is_empty());
    }
}

#[tokio::test]
async fn billing_refusals_keep_their_reason() {
    let s = setup(CONFIG);
    *s.ledger.refuse_with.lock() = Some(ChargeError::InsufficientFunds);
    let refusal = s
        .gateway
        .submit(&s.user, message(b"hi", false), Requested::default())
        .await;
    assert_eq!(
        refusal,
        Err(Refusal::Charging(ChargeError::InsufficientFunds))
    );
    *s.ledger.refuse_with.lock() = Some(ChargeError::Busy("store away".into()));
    let refusal = s
        .gateway
        .submit(&s.user, message(b"hi", false), Requested::default())
        .await;
    assert_eq!(refusal, Err(Refusal::ChargingBusy));
    assert!(s.journal.accepted.lock().is_empty(), "nothing journaled");
    assert_eq!(s.gateway.in_flight(), 0);
}

#[tokio::test]
async fn a_journal_failure_refunds_every_part_and_forgets_them() {
    let s = setup(
        CONFIG
            .replace("queue_capacity = 1", "queue_capacity = 10")
            .as_str(),
    );
    *s.journal.fail.lock() = true;
    let refusal = s
        .gateway
        .submit(&s.user, message(&three_parts(), true), Requested::default())
        .await;
    assert_eq!(refusal, Err(Refusal::Enqueue));
    let (id, ..) = s.ledger.reserved.lock()[0].clone();
    let keys: Vec<String> = (1..=3).map(|n| format!("{id}/{n}")).collect();
    assert_eq!(*s.ledger.refunded.lock(), keys);
    assert_eq!(s.gateway.in_flight(), 0);
    // Marked final, so a replay of what did reach the log does not send it.
    assert_eq!(*s.journal.outcomes.lock(), 3);
    assert_eq!(s.gateway.connector("op1").map(|c| c.queue.len()), Some(0));
}

/// Submits `first`, and while its journal write waits, a second message that takes the
/// queue's only place: `first`'s result and the second's id.
async fn overtaken_while_journaling(
    s: &Setup,
    first: Message,
) -> (Result<Arc<str>, Refusal>, Arc<str>) {
    let gate = Arc::new(Notify::new());
    *s.journal.gate.lock() = Some(gate.clone());
    let first = {
        let (gateway, user) = (s.gateway.clone(), s.user.clone());
        tokio::spawn(async move { gateway.submit(&user, first, Requested::default()).await })
    };
    while s.journal.accepted.lock().is_empty() {
        tokio::task::yield_now().await;
    }
    let second = s
        .gateway
        .submit(&s.user, message(b"second", false), Requested::default())
        .await
        .expect("second accepted");
    gate.notify_one();
    (first.await.expect("task"), second)
}

#[tokio::test]
async fn a_queue_filled_while_journaling_refunds_only_the_late_message() {
    let s = setup(CONFIG);
    let (first, second) = overtaken_while_journaling(&s, message(b"first", false)).await;
    assert_eq!(first, Err(Refusal::QueueFull));
    let first_id = s.ledger.reserved.lock()[0].0.clone();
    assert_eq!(*s.ledger.refunded.lock(), [first_id]);
    assert_eq!(s.gateway.open_charge_keys(), [second.to_string()]);
    assert_eq!(*s.journal.outcomes.lock(), 1);
}

#[tokio::test]
async fn a_free_route_is_charged_zero_not_refused() {
    let s = setup(&CONFIG.replace("rate = \"0.25\"", "rate = \"0.00\""));
    s.gateway
        .submit(&s.user, message(b"otp 1234", false), Requested::default())
        .await
        .expect("a free route accepts");
    assert_eq!(s.ledger.reserved.lock()[0].3, 0);
}

#[tokio::test]
async fn a_full_journal_queue_throttles_and_refunds() {
    let s = setup(CONFIG);
    *s.journal.busy.lock() = true;
    let refusal = s
        .gateway
        .submit(&s.user, message(b"hi", false), Requested::default())
        .await;
    assert_eq!(refusal, Err(Refusal::JournalBusy));
    assert_eq!(
        Refusal::JournalBusy.smpp_status(),
        smpp_core::rusmpp::CommandStatus::EsmeRthrottled
    );
    assert_eq!(s.ledger.refunded.lock().len(), 1);
    assert_eq!(s.gateway.in_flight(), 0);
}

#[tokio::test]
async fn an_annex_goes_before_the_last_part_and_is_dropped_with_a_refused_message() {
    let annexed = |content: &[u8], split: bool| Message {
        annex: Some(Bytes::from_static(b"record")),
        ..message(content, split)
    };
    let s = setup(
        CONFIG
            .replace("queue_capacity = 1", "queue_capacity = 10")
            .as_str(),
    );
    s.gateway
        .submit(&s.user, annexed(&three_parts(), true), Requested::default())
        .await
        .expect("accepted");
    // The last part's acknowledgement covers the annex.
    assert_eq!(
        *s.journal.order.lock(),
        ["accepted", "accepted", "annex", "accepted"]
    );

    // Refused once journaled (the queue filled meanwhile): its annex goes too.
    let s = setup(CONFIG);
    let (first, _) = overtaken_while_journaling(&s, annexed(b"first", false)).await;
    assert_eq!(first, Err(Refusal::QueueFull));
    assert_eq!(
        *s.journal.order.lock(),
        ["annex", "accepted", "accepted", "annex done"]
    );
}
