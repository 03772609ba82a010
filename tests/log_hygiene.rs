//! What an unauthenticated peer chooses (a system_id) and what a client sends (phone
//! numbers) stays out of the log at the default level: a real `smsgw` process logging at
//! `info`, binds refused until the address is locked out, then a message with a receipt.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use smpp_core::BindKind;
use smpp_testkit::sim::SimConfig;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use tokio_util::sync::CancellationToken;

mod support;
use support::*;

const CHOSEN_SYSTEM_ID: &str = "EVILSYSID7731";

/// A bind_transmitter with a wrong password, written by hand; returns the answer's status.
async fn refused_bind(gateway: SocketAddr) -> u32 {
    let mut body = Vec::new();
    for field in [CHOSEN_SYSTEM_ID, "wrong", ""] {
        body.extend_from_slice(field.as_bytes());
        body.push(0);
    }
    body.extend_from_slice(&[0x34, 0, 0, 0]); // interface_version, ton, npi, address_range
    let mut pdu = Vec::new();
    pdu.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    pdu.extend_from_slice(&2u32.to_be_bytes()); // bind_transmitter
    pdu.extend_from_slice(&0u32.to_be_bytes());
    pdu.extend_from_slice(&1u32.to_be_bytes());
    pdu.extend_from_slice(&body);
    let mut stream = TcpStream::connect(gateway).await.unwrap();
    stream.write_all(&pdu).await.unwrap();
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).await.unwrap();
    u32::from_be_bytes([header[8], header[9], header[10], header[11]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_chosen_ids_and_phone_numbers_stay_out_of_the_log() {
    const N: u64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let (operator, reached) = start_operator(&stop, SimConfig::default()).await;
    let (gateway_addr, http) = (free_port(), free_port());
    let storage = format!("sqlite://{}", dir.path().join("billing.db").display());
    let config = write_config(dir.path(), gateway_addr, operator, &storage, http);
    let log = dir.path().join("smsgw.log");
    let mut gateway = Gateway::start(&config, &log);

    // Wait for the listener, then fail enough binds to be locked out.
    let mut statuses = Vec::new();
    for _ in 0..50 {
        if TcpStream::connect(gateway_addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for _ in 0..8 {
        statuses.push(refused_bind(gateway_addr).await);
    }
    assert!(
        statuses.iter().all(|&s| s != 0),
        "every bind refused: {statuses:?}"
    );

    let client = Arc::new(Client::default());
    let (tx, rx) = mpsc::channel(64);
    let _ = bind_client(
        gateway_addr,
        BindKind::Transceiver,
        rx,
        client.clone(),
        &stop,
    );
    for n in 0..N {
        tx.send(submit(424_240 + n)).await.unwrap();
    }
    wait_until("every submit answered", || {
        client.answered.lock().unwrap().len() as u64 == N
    })
    .await;
    let accepted: HashMap<u64, String> = client.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len() as u64, N);
    wait_all_reached(&accepted, &reached).await;
    wait_until("every receipt", || {
        client.receipts.lock().unwrap().len() as u64 == N
    })
    .await;
    stop.cancel();
    gateway.terminate();

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("bound"), "the log was written: {text}");
    for line in text.lines() {
        assert!(
            !line.contains(CHOSEN_SYSTEM_ID),
            "an unauthenticated system_id was logged: {line}"
        );
        assert!(
            !line.contains("99890042424"),
            "a phone number was logged: {line}"
        );
    }
}
