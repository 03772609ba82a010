//! A route with Jasmin's default rate of 0.00, tried as a new user would: a real `smsgw`
//! process with billing on SQLite, a client bound over SMPP. Every message is accepted
//! and reaches the operator, and billing reconciles (free messages in the CDR at 0).

use std::{collections::HashMap, sync::Arc};

use smpp_core::BindKind;
use smpp_testkit::sim::SimConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_route_accepts_every_message_and_reconciles() {
    const N: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let (operator, reached) = start_operator(&stop, SimConfig::default()).await;
    let (gateway_addr, http) = (free_port(), free_port());
    let storage = format!("sqlite://{}", dir.path().join("billing.db").display());
    let config = write_config(dir.path(), gateway_addr, operator, &storage, http);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("rate = \"0.01\"", "rate = \"0.00\"")).unwrap();
    let mut gateway = Gateway::start(&config, &dir.path().join("smsgw.log"));

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
        tx.send(submit(n)).await.unwrap();
    }
    wait_until("every submit answered", || {
        client.answered.lock().unwrap().len() as u64 == N
    })
    .await;
    let accepted: HashMap<u64, String> = client.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len() as u64, N, "a free route refuses nothing");
    wait_all_reached(&accepted, &reached).await;
    stop.cancel();
    gateway.terminate();
    assert_reconciles(&config);
}
