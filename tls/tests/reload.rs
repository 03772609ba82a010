//! A TLS listener set up by this crate serves its certificate, and `reload()` switches new
//! handshakes to a replaced certificate without restarting anything.

use std::path::Path;

use tls::{CertFiles, ClientTls, ServerTls};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Write a fresh self-signed certificate for `localhost`; returns its DER.
fn write_cert(dir: &Path) -> Vec<u8> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), generated.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    generated.cert.der().to_vec()
}

async fn handshake_cert(addr: std::net::SocketAddr, ca: &Path) -> Vec<u8> {
    let client = ClientTls::new("localhost", Some(ca)).unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut stream = client
        .connector
        .connect(client.server_name.clone(), stream)
        .await
        .unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"pong");
    let (_, connection) = stream.get_ref();
    connection.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn serves_and_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let server = ServerTls::load(CertFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = server.acceptor.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(stream).await {
                    let mut ping = [0u8; 4];
                    if stream.read_exact(&mut ping).await.is_ok() {
                        let _ = stream.write_all(b"pong").await;
                    }
                }
            });
        }
    });

    let ca = dir.path().join("ca-first.pem");
    std::fs::copy(dir.path().join("cert.pem"), &ca).unwrap();
    assert_eq!(handshake_cert(addr, &ca).await, first);

    let second = write_cert(dir.path());
    assert_ne!(first, second);
    server.cert.reload().unwrap();
    let ca = dir.path().join("ca-second.pem");
    std::fs::copy(dir.path().join("cert.pem"), &ca).unwrap();
    assert_eq!(handshake_cert(addr, &ca).await, second);

    // A broken file leaves the working certificate in place.
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    assert!(server.cert.reload().is_err());
    assert_eq!(handshake_cert(addr, &ca).await, second);
}

#[test]
fn missing_files_are_a_clear_error() {
    let error = ServerTls::load(CertFiles {
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/cert.pem"),
        "{error}"
    );
}
