//! The admin server over TLS: accepted sockets are handshaken off the accept loop (a
//! client that stalls its handshake holds only its own task) and handed to tonic as a
//! stream of TLS connections.

use std::{io, time::Duration};

use futures_util::Stream;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for tonic to take them.
const BACKLOG: usize = 64;

type TlsStream = tls::TlsStream<tokio::net::TcpStream>;

/// The certificate and key for gRPC: ALPN `h2` (gRPC clients refuse a server without
/// it); the certificate reloads like the SMPP listener's.
pub fn server_tls(files: tls::CertFiles) -> Result<tls::ServerTls, tls::TlsError> {
    tls::ServerTls::load_with_alpn(files, vec![b"h2".to_vec()])
}

/// TLS connections accepted on `listener` until `shutdown`.
pub fn incoming(
    listener: TcpListener,
    acceptor: tls::TlsAcceptor,
    shutdown: CancellationToken,
) -> impl Stream<Item = io::Result<TlsStream>> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(%error, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => debug!(%peer, %error, "admin TLS handshake failed"),
                    Err(_) => debug!(%peer, "admin TLS handshake timed out"),
                }
            });
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
