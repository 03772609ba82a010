//! The codec round trips, replay decoding and the expiry tracking.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use chrono::Local;
use hyper::Method;

use super::{decode::*, expiry::*, stored::*, *};
use crate::{
    callbacks::{Callback, DLR_AGENT},
    journaling::{Durable, Journal, JournalRecord},
    model::{Address, DlrMethod, DlrRequest, Message, Origin},
    receipts::DlrEntry,
};

#[test]
fn parts_of_one_message_get_distinct_stable_keys() {
    let id = "07033084-5cfd-4812-90a4-e4d24ffb6e3d";
    assert_eq!(record_id(id, 0), record_id(id, 0));
    assert_ne!(record_id(id, 0), record_id(id, 1));
    assert_ne!(
        record_id("not-a-uuid", 0),
        record_id("not-a-uuid-either", 0)
    );
}

#[test]
fn a_message_survives_the_round_trip() {
    let message = Message {
        id: Arc::from("07033084-5cfd-4812-90a4-e4d24ffb6e3d"),
        uid: Arc::from("bank1"),
        source: Address::new("BANK", 5, 0),
        destination: Address::new("998901234567", 1, 1),
        content: Bytes::from_static(b"code 1234"),
        registered_delivery: 1,
        tags: vec!["otp".into()],
        dlr: Some(DlrRequest {
            level: 3,
            url: "http://127.0.0.1/dlr".into(),
            method: DlrMethod::Get,
        }),
        ..Message::default()
    };
    let stored = StoredPart {
        message: (&message).into(),
        username: "bank".into(),
        connector: "sim".into(),
        part: 0,
        parts: 1,
        content: b"code 1234".as_slice().into(),
        esm_class: 0,
        registered_delivery: 1,
        charge_key: message.id.to_string().into(),
        amount: 20_000,
    };
    let record = journal::Record {
        id: record_id(&message.id, 0),
        kind: KIND_ACCEPTED,
        payload: Bytes::from(postcard::to_allocvec(&stored).unwrap()),
        segment: 1,
        offset: 0,
    };
    let Some(Restored::Part(part)) = decode(&record) else {
        panic!("not restored");
    };
    assert_eq!(part.message.id, message.id);
    assert_eq!(part.message.destination, message.destination);
    assert_eq!(part.message.dlr, message.dlr);
    assert_eq!(part.message.tags, message.tags);
    assert_eq!(&part.content[..], b"code 1234");
    assert_eq!(&*part.username, "bank");
}

#[test]
fn an_expiry_re_armed_later_is_not_fired_by_its_old_deadline() {
    let mut expiries = Expiries::new();
    expiries.arm(5, Duration::ZERO);
    expiries.arm(5, Duration::from_secs(3600));
    expiries.arm(6, Duration::ZERO);
    let due = expiries.due(Instant::now() + Duration::from_secs(1));
    assert_eq!(due, vec![6]);
    assert_eq!(expiries.deadlines.len(), 1);
}

/// Many parts accepted, submitted (receipt awaited), then finished: nothing of
/// theirs stays in the expiry tracking (it used to keep every one until its TTL).
#[tokio::test]
async fn finished_records_leave_the_expiry_tracking() {
    let dir = tempfile_dir("durable-expiry");
    let (log, _) = journal::Journal::open(journal::JournalConfig::new(
        &dir,
        journal::Durability::Batched,
    ))
    .unwrap();
    let journal = LogJournal::new(log.clone());
    let day = Duration::from_secs(24 * 3600);
    let ids: Vec<String> = (0..20_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let callback = Callback {
        url: "http://127.0.0.1:9/dlr".into(),
        method: Method::GET,
        params: vec![("id", b"abc".to_vec())],
        user_agent: DLR_AGENT,
    };
    for (n, id) in ids.iter().enumerate() {
        let accepted = accept_one_part(&journal, id, 1, id);
        assert!(!matches!(accepted, Durable::Failed(_)));
        let entry = receipt_wait(id, 1);
        journal.append(JournalRecord::AwaitingReceipt {
            entry: &entry,
            operator_id: "op",
            charge_key: id,
            ttl: day,
        });
        let key = record_id(id, 1);
        journal.append(JournalRecord::PendingCallback {
            key,
            callback: &callback,
            ttl: day,
        });
        if n % 1000 == 999 {
            log.flush().await.unwrap();
        }
    }
    assert_eq!(journal.tracked_expiries(), 2 * ids.len());
    let full = journal.expiry_bytes();
    for id in &ids {
        journal.append(JournalRecord::ReceiptDone { id, part: 0 });
        journal.append(JournalRecord::Delivered {
            key: record_id(id, 1),
        });
    }
    assert_eq!(journal.tracked_expiries(), 0);
    // The lazily cleaned heap was rebuilt and the map shrunk along the way.
    let after = journal.expiry_bytes();
    assert!(after < full / 10, "{after} bytes left of {full}");
    journal.housekeeping();
    log.flush().await.unwrap();
    assert_eq!(
        log.stats().live.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    eprintln!(
        "expiry tracking: {full} bytes for {} entries = {} bytes each",
        2 * ids.len(),
        full / (2 * ids.len())
    );
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records of parts sent without a receipt wanted (they only bridge billing's
/// write-behind) leave the log once their TTL passes, in order, and not before.
#[tokio::test]
async fn bridging_records_expire_in_order_after_their_ttl() {
    let dir = tempfile_dir("durable-bridges");
    let (log, _) = journal::Journal::open(journal::JournalConfig::new(
        &dir,
        journal::Durability::Batched,
    ))
    .unwrap();
    let journal = LogJournal::new(log.clone());
    let live = || log.stats().live.load(std::sync::atomic::Ordering::Relaxed);
    let wait = |id: &str, ttl: Duration| {
        journal.append(JournalRecord::Submitted {
            id,
            part: 0,
            operator_id: "op",
            charge_key: id,
            ttl,
        });
    };
    let short: Vec<String> = (0..100).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let long: Vec<String> = (0..50).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for id in &short {
        wait(id, Duration::from_millis(50));
    }
    for id in &long {
        wait(id, Duration::from_secs(3600));
    }
    log.flush().await.unwrap();
    assert_eq!(live(), 150);
    assert_eq!(journal.tracked_expiries(), 150);
    journal.housekeeping();
    log.flush().await.unwrap();
    assert_eq!(live(), 150, "nothing is due yet");
    tokio::time::sleep(Duration::from_millis(80)).await;
    journal.housekeeping();
    log.flush().await.unwrap();
    assert_eq!(live(), 50, "the short ones are gone, the long ones stay");
    assert_eq!(journal.tracked_expiries(), 50);
    // A receipt that finished one early makes its expiry a no-op.
    journal.append(JournalRecord::ReceiptDone {
        id: &long[0],
        part: 0,
    });
    log.flush().await.unwrap();
    assert_eq!(live(), 49);
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Journals the accepted single part of message `id` ("code 1234", user "bank",
/// connector "sim", price 1).
fn accept_one_part(
    journal: &LogJournal,
    id: &str,
    registered_delivery: u8,
    charge_key: &str,
) -> Durable {
    let message = Message {
        id: Arc::from(id),
        content: Bytes::from_static(b"code 1234"),
        ..Message::default()
    };
    journal.append(JournalRecord::Accepted {
        message: &message,
        username: "bank",
        connector: "sim",
        part: 0,
        parts: 1,
        content: &message.content,
        esm_class: 0,
        registered_delivery,
        charge_key,
        amount: 1,
    })
}

/// The first part of message `id` (an HTTP one) waiting at the operator "sim".
fn receipt_wait(id: &str, registered_delivery: u8) -> DlrEntry {
    DlrEntry {
        id: Arc::from(id),
        uid: Arc::from("bank1"),
        username: Arc::from("bank"),
        origin: Origin::Http,
        source: Address::new("BANK", 5, 0),
        destination: Address::new("998901234567", 1, 1),
        registered_delivery,
        dlr: None,
        connector: Arc::from("sim"),
        submitted_at: Local::now(),
        part: 0,
        multipart: None,
        trace: Default::default(),
    }
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{name}-{}", uuid::Uuid::new_v4()))
}

#[test]
fn a_single_part_stores_its_content_once_and_gets_it_back() {
    let message = Message {
        id: Arc::from("07033084-5cfd-4812-90a4-e4d24ffb6e3d"),
        content: Bytes::from(vec![b'c'; 140]),
        ..Message::default()
    };
    let once = StoredPart {
        message: StoredMessage::new(&message, false),
        username: "bank".into(),
        connector: "sim".into(),
        part: 0,
        parts: 1,
        content: message.content.to_vec().into(),
        esm_class: 0,
        registered_delivery: 1,
        charge_key: message.id.to_string().into(),
        amount: 1,
    };
    let payload = postcard::to_allocvec(&once).unwrap();
    assert!(payload.len() < 140 + 140, "{} bytes", payload.len());
    let record = journal::Record {
        id: 1,
        kind: KIND_ACCEPTED,
        payload: Bytes::from(payload),
        segment: 1,
        offset: 0,
    };
    let Ok(Some(Restored::Part(part))) = try_decode(&record) else {
        panic!("not restored");
    };
    assert_eq!(part.message.content, message.content);
    assert_eq!(part.content, message.content);
}

#[test]
fn undecodable_records_are_counted_apart_from_expired_ones() {
    let record = |kind, payload: &'static [u8]| journal::Record {
        id: 9,
        kind,
        payload: Bytes::from_static(payload),
        segment: 3,
        offset: 120,
    };
    let expired = StoredDelivery {
        username: "bank".into(),
        pdu: Vec::new(),
        expires_at: 1,
    };
    let expired = journal::Record {
        payload: Bytes::from(postcard::to_allocvec(&expired).unwrap()),
        ..record(KIND_PENDING_DELIVERY, b"")
    };
    let records = [
        record(KIND_ACCEPTED, b"\xff\xff"),
        record(99, b"x"),
        expired,
    ];
    let (restored, report) = decode_all(&records);
    assert!(restored.is_empty());
    assert_eq!(
        report,
        DecodeReport {
            restored: 0,
            expired: 1,
            undecodable: 2
        }
    );
}

#[tokio::test]
async fn a_pending_callback_is_replayed_until_it_is_done() {
    let dir = std::env::temp_dir().join(format!("durable-cb-{}", uuid::Uuid::new_v4()));
    let config = || journal::JournalConfig::new(&dir, journal::Durability::Fsync);
    let callback = Callback {
        url: "http://127.0.0.1:9/dlr".into(),
        method: Method::POST,
        params: vec![
            ("id", b"abc".to_vec()),
            ("message_status", b"DELIVRD".to_vec()),
        ],
        user_agent: DLR_AGENT,
    };
    let (done, pending) = (1_u128, 2_u128);
    {
        let (log, _) = journal::Journal::open(config()).unwrap();
        let journal = LogJournal::new(log.clone());
        for key in [done, pending] {
            let ttl = Duration::from_secs(60);
            let record = JournalRecord::PendingCallback {
                key,
                callback: &callback,
                ttl,
            };
            journal.append(record).wait().await.unwrap();
        }
        journal.append(JournalRecord::Delivered { key: done });
        log.flush().await.unwrap();
    }
    let (_log, replayed) = journal::Journal::open(config()).unwrap();
    let restored: Vec<Restored> = replayed.iter().filter_map(decode).collect();
    let [
        Restored::PendingCallback {
            key,
            callback: back,
            ..
        },
    ] = &restored[..]
    else {
        panic!("expected the one pending callback, got {restored:?}");
    };
    assert_eq!(*key, pending);
    assert_eq!(back.url, callback.url);
    assert_eq!(back.method, Method::POST);
    assert_eq!(back.params, callback.params);
    assert_eq!(back.user_agent, DLR_AGENT);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A part the operator took with no receipt wanted replaces its accepted record: after a
/// restart it is settled (charge key, operator id), never queued again.
#[tokio::test]
async fn a_submitted_part_replays_as_settled_not_as_a_resend() {
    let dir = tempfile_dir("durable-submitted");
    let config = || journal::JournalConfig::new(&dir, journal::Durability::Fsync);
    let id = uuid::Uuid::now_v7().to_string();
    let charge_key = format!("{id}:0");
    {
        let (log, _) = journal::Journal::open(config()).unwrap();
        let journal = LogJournal::new(log.clone());
        accept_one_part(&journal, &id, 0, &charge_key)
            .wait()
            .await
            .unwrap();
        journal.append(JournalRecord::Submitted {
            id: &id,
            part: 0,
            operator_id: "op-77",
            charge_key: &charge_key,
            ttl: Duration::from_secs(60),
        });
        log.flush().await.unwrap();
    }
    let (_log, replayed) = journal::Journal::open(config()).unwrap();
    assert_eq!(replayed.len(), 1);
    assert!(
        replayed[0].payload.len() < 64,
        "{} bytes",
        replayed[0].payload.len()
    );
    let restored: Vec<Restored> = replayed.iter().filter_map(decode).collect();
    let [
        Restored::Submitted {
            key,
            operator_id,
            charge_key: key_back,
            ttl,
        },
    ] = &restored[..]
    else {
        panic!("expected the submitted part, got {restored:?}");
    };
    assert_eq!(*key, record_id(&id, 0));
    assert_eq!(operator_id, "op-77");
    assert_eq!(key_back, &charge_key);
    assert!(*ttl > Duration::from_secs(50));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_annex_replays_until_its_front_end_is_done_with_it() {
    let dir = tempfile_dir("durable-annex");
    let config = || journal::JournalConfig::new(&dir, journal::Durability::Fsync);
    let kept = uuid::Uuid::now_v7().to_string();
    let done = uuid::Uuid::now_v7().to_string();
    let annex = Bytes::from_static(b"the front end's own record");
    {
        let (log, _) = journal::Journal::open(config()).unwrap();
        let journal = LogJournal::new(log.clone());
        for id in [&kept, &done] {
            let appended = journal.append(JournalRecord::Annex { id, annex: &annex });
            assert!(matches!(appended, Durable::Done), "{appended:?}");
        }
        journal.append(JournalRecord::AnnexDone { id: &done });
        log.flush().await.unwrap();
    }
    let (_log, replayed) = journal::Journal::open(config()).unwrap();
    let restored: Vec<Restored> = replayed.iter().filter_map(decode).collect();
    let [Restored::Annex { id, annex: back }] = &restored[..] else {
        panic!("expected one annex, got {restored:?}");
    };
    assert_eq!(**id, *kept);
    assert_eq!(back, &annex);
    // The annex has a key of its own: no part of the message shares it.
    assert!((0..256).all(|part| replayed[0].id != record_id(&kept, part)));
    let _ = std::fs::remove_dir_all(&dir);
}
