//! Slow clients cannot hold the HTTP listener: trickled headers are cut off at the
//! header deadline, a trickled body gets 408 at the request deadline, and a normal
//! request on the same listener is served meanwhile.

use std::time::Duration;

use api::{Limits, serve_with};
use axum::{Router, body::Bytes, routing::post};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

const LIMITS: Limits = Limits {
    header_timeout: Duration::from_millis(300),
    request_timeout: Duration::from_millis(300),
    drain_timeout: Duration::from_secs(1),
};
/// Far longer than the deadlines: a test that waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(5);

async fn start(shutdown: &CancellationToken) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = Router::new().route("/echo", post(|body: Bytes| async move { body }));
    tokio::spawn(serve_with(listener, router, shutdown.clone(), LIMITS));
    addr
}

/// Everything the server sends until it closes (or `PATIENCE` passes).
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn trickled_headers_are_cut_off() {
    let shutdown = CancellationToken::new();
    let addr = start(&shutdown).await;
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // …and never the end of the headers.
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.is_some(), "the connection was closed by the server");
    shutdown.cancel();
}

#[tokio::test]
async fn a_trickled_body_gets_408_and_others_are_served() {
    let shutdown = CancellationToken::new();
    let addr = start(&shutdown).await;
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..")
        .await
        .expect("write");

    let mut quick = TcpStream::connect(addr).await.expect("connect");
    quick
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        )
        .await
        .expect("write");
    let answer = read_until_closed(&mut quick).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut status = [0u8; 12];
    tokio::time::timeout(PATIENCE, slow.read_exact(&mut status))
        .await
        .expect("answered before the test's patience ran out")
        .expect("read");
    assert_eq!(&status, b"HTTP/1.1 408");
    shutdown.cancel();
}
