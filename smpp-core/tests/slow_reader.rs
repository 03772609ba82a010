//! A peer that stops reading must not hold its session: every write has a deadline, and
//! the session's own timers (bind, shutdown) hold while a write is blocked.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::*;
use smpp_core::{BindKind, frame::ids, rusmpp::CommandStatus, server::ServerConfig};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpSocket, TcpStream},
    task::JoinHandle,
    time::Instant,
};

/// A socket whose receive buffer is tiny, so what the server writes backs up at once.
async fn small_window_socket(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Writes enquire_link as fast as the server takes it and never reads a byte; ends with
/// the write error once the server drops the connection.
fn flood_without_reading(stream: TcpStream, written: Arc<AtomicU64>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (_never_read, mut writer) = stream.into_split();
        let mut chunk = Vec::new();
        for seq in 1..=1024 {
            chunk.extend(raw_pdu(ids::ENQUIRE_LINK, seq, &[]));
        }
        while writer.write_all(&chunk).await.is_ok() {
            written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    })
}

/// Wait until the flood is stuck: the server stopped taking bytes because it is itself
/// stuck writing enquire_link_resp to us.
async fn wait_stalled(written: &AtomicU64) {
    let start = Instant::now();
    let mut last = written.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = written.load(Ordering::Relaxed);
        if now == last && now > 0 {
            return;
        }
        last = now;
        assert!(start.elapsed() < WAIT, "the flood never stalled");
    }
}

/// Connect and bind without panicking; None when the server refuses or closes.
async fn try_bind(addr: SocketAddr) -> Option<RawEsme> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let mut esme = RawEsme::from_stream(stream);
    let pdu = smpp_core::rusmpp::pdus::BindTransceiver::builder()
        .system_id(smpp_core::rusmpp::types::COctetString::from_string("esme".into()).unwrap())
        .password(smpp_core::rusmpp::types::COctetString::from_string("secret".into()).unwrap())
        .build();
    esme.send(pdu).await;
    let (header, _) = esme.recv().await?;
    (header.status() == CommandStatus::EsmeRok).then_some(esme)
}

/// Until another client can bind, which needs the only session slot back.
async fn wait_until_another_client_binds(addr: SocketAddr) -> RawEsme {
    let start = Instant::now();
    loop {
        if let Some(esme) = try_bind(addr).await {
            return esme;
        }
        assert!(
            start.elapsed() < WAIT,
            "the non-reading client still holds the only session slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn non_reader_is_dropped(config: ServerConfig) {
    let server = start_server(ServerConfig {
        max_sessions: 1,
        ..config
    })
    .await;
    let written = Arc::new(AtomicU64::new(0));
    let flood = flood_without_reading(small_window_socket(server.addr).await, written.clone());
    wait_stalled(&written).await;
    // The server resets the connection: the blocked write fails and the flood ends.
    tokio::time::timeout(WAIT, flood)
        .await
        .expect("the non-reading client was never disconnected")
        .unwrap();
    let mut esme = wait_until_another_client_binds(server.addr).await;
    let seq = esme.send(smpp_core::rusmpp::Pdu::EnquireLink).await;
    assert_eq!(esme.recv_header().await.sequence_number, seq);
    assert_eq!(server.registry.connections(), 1);
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_by_the_write_timeout() {
    // The bind timeout is far away: only the write deadline can free the slot.
    non_reader_is_dropped(ServerConfig {
        bind_timeout: Duration::from_secs(120),
        write_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await;
}

#[tokio::test]
async fn the_bind_timeout_holds_while_a_write_is_blocked() {
    // The write deadline is far away: the bind timer must fire during the blocked write.
    non_reader_is_dropped(ServerConfig {
        bind_timeout: Duration::from_millis(800),
        write_timeout: Duration::from_secs(120),
        ..ServerConfig::default()
    })
    .await;
}

async fn drain_finishes_with_a_non_reader(bind_first: bool) {
    let server = start_server(ServerConfig {
        bind_timeout: Duration::from_secs(120),
        write_timeout: Duration::from_secs(120),
        inactivity_timeout: Duration::from_secs(120),
        shutdown_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await;
    let stream = small_window_socket(server.addr).await;
    let stream = if bind_first {
        let mut esme = RawEsme::from_stream(stream);
        assert_eq!(
            esme.bind(BindKind::Transceiver, "esme", "secret").await,
            CommandStatus::EsmeRok
        );
        esme.into_stream()
    } else {
        stream
    };
    let written = Arc::new(AtomicU64::new(0));
    let flood = flood_without_reading(stream, written.clone());
    wait_stalled(&written).await;

    let started = Instant::now();
    server.shutdown.cancel();
    tokio::time::timeout(WAIT, server.task)
        .await
        .expect("drain hangs on a client that does not read")
        .unwrap()
        .unwrap();
    // Shutdown timeout plus the 2 s the session gives its writer.
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::timeout(WAIT, flood)
        .await
        .expect("the connection outlived the server")
        .unwrap();
}

#[tokio::test]
async fn shutdown_drains_with_a_bound_client_that_never_reads() {
    drain_finishes_with_a_non_reader(true).await;
}

#[tokio::test]
async fn shutdown_drains_with_an_unbound_client_that_never_reads() {
    drain_finishes_with_a_non_reader(false).await;
}
