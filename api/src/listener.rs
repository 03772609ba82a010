//! The HTTP listener: hyper's HTTP/1 server under the axum router, with the deadlines a
//! public endpoint needs. A client that trickles its headers (slowloris) is cut off by
//! the header deadline; one that trickles its body, or a request that takes too long,
//! gets 408 at the request deadline. Connections end gracefully on shutdown.

use std::{io, time::Duration};

use axum::response::IntoResponse;
use axum::{
    Extension, Router,
    extract::{ConnectInfo, Request},
    http::StatusCode,
    middleware::Next,
    response::Response,
};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::debug;

/// Deadlines of one connection and of one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the first byte of a request to the end of its headers.
    pub header_timeout: Duration,
    /// From the end of the headers to the answer, the body's upload included.
    pub request_timeout: Duration,
    /// How long open connections get to finish after shutdown.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` with [`Limits::default`] until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_with(listener, router, shutdown, Limits::default()).await
}

pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: Limits,
) -> io::Result<()> {
    let request_timeout = limits.request_timeout;
    let router = router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| async move {
            match tokio::time::timeout(request_timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => timed_out(),
            }
        },
    ));
    // Connections are tracked to let them finish on shutdown. hyper-util's
    // GracefulShutdown does not take connections that may be upgraded (the REST API's
    // WebSocket), so each connection watches the token itself.
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors or a connection reset before accept: keep serving.
                Err(error) => {
                    debug!(%error, "HTTP accept failed");
                    continue;
                }
            },
        };
        // Handlers that count failures by address read it as axum's `ConnectInfo`.
        let service = router.clone().layer(Extension(ConnectInfo(peer)));
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            // The REST API's WebSocket takes the connection over after its 101.
            .with_upgrades();
        let stop = shutdown.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop.cancelled() => {
                    // Finish the request in progress, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                debug!(%error, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    connections.close();
    let _ = tokio::time::timeout(limits.drain_timeout, connections.wait()).await;
    Ok(())
}

fn timed_out() -> Response {
    (StatusCode::REQUEST_TIMEOUT, "Error \"Request timeout\"").into_response()
}
