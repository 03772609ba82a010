//! The uplink against a fake SMSC that floods deliver_sm: no more inbound handlers run
//! at once than `max_inbound`; beyond it the uplink stops reading (backpressure), and
//! everything is still answered once the handlers finish.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::BytesMut;
use smpp_core::{
    BindKind,
    client::{Inbound, SubmitRequest, SubmitResult, Uplink, UplinkConfig, UplinkHandler},
    frame::{self, Framer, ids},
    rusmpp::{
        Command, CommandStatus,
        pdus::{BindTransceiverResp, DeliverSm},
        types::{COctetString, OctetString},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);
const CAP: usize = 4;
const SENT: u32 = 200;

/// Blocks every deliver_sm until the test hands out permits; tracks concurrency.
struct Blocking {
    gate: Semaphore,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl UplinkHandler for Blocking {
    fn on_submit_result(&self, _result: SubmitResult) {}

    async fn on_inbound(&self, _inbound: Inbound) -> CommandStatus {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        if let Ok(permit) = self.gate.acquire().await {
            permit.forget();
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        CommandStatus::EsmeRok
    }
}

async fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<frame::Header> {
    let framer = Framer::new(1 << 20);
    loop {
        if let Some(frame) = framer.next_frame(buf).unwrap() {
            return Some(frame.header);
        }
        match tokio::time::timeout(WAIT, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

fn deliver_sm(seq: u32) -> Vec<u8> {
    let pdu = DeliverSm::builder()
        .source_addr(COctetString::from_string("998901234567".to_owned()).unwrap())
        .destination_addr(COctetString::from_string("1234".to_owned()).unwrap())
        .short_message(OctetString::from_vec(b"MO text".to_vec()).unwrap())
        .build();
    frame::command_bytes(&Command::new(CommandStatus::EsmeRok, seq, pdu)).to_vec()
}

/// The fake SMSC's side of a bind: the connection, and the bind_transceiver_resp to
/// send (followed by whatever the test adds).
async fn accept_bind(listener: &TcpListener) -> (TcpStream, Vec<u8>) {
    let (mut smsc, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut buf = BytesMut::new();
    let bind = read_frame(&mut smsc, &mut buf).await.unwrap();
    assert_eq!(bind.command_id, ids::BIND_TRANSCEIVER);
    let resp = BindTransceiverResp::new(COctetString::from_string("smsc".into()).unwrap(), None);
    let out = frame::command_bytes(&Command::new(
        CommandStatus::EsmeRok,
        bind.sequence_number,
        resp,
    ))
    .to_vec();
    (smsc, out)
}

/// Panics on every deliver_sm.
struct Panicking;

impl UplinkHandler for Panicking {
    fn on_submit_result(&self, _result: SubmitResult) {}

    async fn on_inbound(&self, _inbound: Inbound) -> CommandStatus {
        panic!("handler bug");
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_syserr_and_the_link_stays_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, rx) = mpsc::channel::<SubmitRequest>(1);
    let uplink = Uplink::new(
        UplinkConfig {
            address: addr.to_string(),
            bind: BindKind::Transceiver,
            shutdown_timeout: Duration::from_millis(200),
            ..UplinkConfig::default()
        },
        rx,
        Arc::new(Panicking),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(uplink.run(stop.clone()));
    let (mut smsc, mut out) = accept_bind(&listener).await;
    out.extend(deliver_sm(1));
    out.extend(deliver_sm(2));
    smsc.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let mut answered = Vec::new();
    while answered.len() < 2 {
        let resp = read_frame(&mut smsc, &mut buf).await.expect("answered");
        assert_eq!(resp.command_id, ids::DELIVER_SM_RESP);
        assert_eq!(resp.status(), CommandStatus::EsmeRsyserr);
        answered.push(resp.sequence_number);
    }
    answered.sort_unstable();
    assert_eq!(answered, vec![1, 2]);
    // Still served: an enquire_link gets its answer.
    let enquire = Command::new(
        CommandStatus::EsmeRok,
        7,
        smpp_core::rusmpp::Pdu::EnquireLink,
    );
    smsc.write_all(&frame::command_bytes(&enquire))
        .await
        .unwrap();
    let resp = read_frame(&mut smsc, &mut buf).await.expect("link up");
    assert_eq!(
        (resp.command_id, resp.sequence_number),
        (ids::ENQUIRE_LINK_RESP, 7)
    );
    stop.cancel();
    let _ = tokio::time::timeout(WAIT, task).await;
}

#[tokio::test]
async fn inbound_handlers_are_capped_and_all_get_answered() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(Blocking {
        gate: Semaphore::new(0),
        running: AtomicUsize::new(0),
        max_running: AtomicUsize::new(0),
    });
    // The source stays open (tx kept) so the uplink does not stop on its own.
    let (_tx, rx) = mpsc::channel::<SubmitRequest>(1);
    let uplink = Uplink::new(
        UplinkConfig {
            address: addr.to_string(),
            bind: BindKind::Transceiver,
            max_inbound: Some(CAP),
            shutdown_timeout: Duration::from_millis(200),
            ..UplinkConfig::default()
        },
        rx,
        handler.clone(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(uplink.run(stop.clone()));

    // The fake SMSC: accept the bind, then send every deliver_sm at once.
    let (smsc, mut out) = accept_bind(&listener).await;
    for seq in 1..=SENT {
        out.extend(deliver_sm(seq));
    }
    let (mut smsc_reader, mut smsc_writer) = smsc.into_split();
    let writer = tokio::spawn(async move {
        smsc_writer.write_all(&out).await.unwrap();
        smsc_writer
    });

    // The cap fills and stays full while the handlers are blocked.
    let start = Instant::now();
    while handler.running.load(Ordering::SeqCst) < CAP {
        assert!(start.elapsed() < WAIT, "handlers never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handler.max_running.load(Ordering::SeqCst), CAP);

    // Let them through a few at a time; every deliver_sm is answered, in any order.
    let counter = tokio::spawn({
        let handler = handler.clone();
        async move {
            for _ in 0..SENT {
                handler.gate.add_permits(1);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let mut answered = std::collections::HashSet::new();
    let mut buf = BytesMut::new();
    let framer = Framer::new(1 << 20);
    while answered.len() < SENT as usize {
        while let Some(frame) = framer.next_frame(&mut buf).unwrap() {
            if frame.header.command_id == ids::DELIVER_SM_RESP {
                assert_eq!(frame.header.status(), CommandStatus::EsmeRok);
                answered.insert(frame.header.sequence_number);
            }
        }
        if answered.len() == SENT as usize {
            break;
        }
        let read = tokio::time::timeout(WAIT, smsc_reader.read_buf(&mut buf))
            .await
            .expect("deliver_sm left unanswered");
        assert!(read.unwrap() > 0, "uplink closed the link");
    }
    counter.await.unwrap();
    assert!(
        handler.max_running.load(Ordering::SeqCst) <= CAP,
        "{} handlers ran at once",
        handler.max_running.load(Ordering::SeqCst)
    );
    let _smsc_writer = writer.await.unwrap();
    stop.cancel();
    let _ = tokio::time::timeout(WAIT, task).await;
}
