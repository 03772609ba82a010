//! The server side: we are the SMSC, client ESMEs bind to us.

mod config;
mod guard;
mod handler;
mod registry;
mod session;

use std::{io, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

pub use config::ServerConfig;
pub use guard::{AccessGuard, GuardConfig};
pub use handler::{
    Authenticator, BindGrant, BindRequest, Request, RequestHandler, Response, SessionInfo,
};
pub use registry::{DeliverError, Outbound, OutboundResult, SessionRegistry};

use session::Shared;

/// Accepts ESME connections and runs a session for each.
pub struct Server<A, H> {
    shared: Arc<Shared<A, H>>,
}

impl<A: Authenticator, H: RequestHandler> Server<A, H> {
    pub fn new(
        config: ServerConfig,
        auth: Arc<A>,
        handler: Arc<H>,
        registry: Arc<SessionRegistry>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                auth,
                guard: AccessGuard::new(config.guard.clone()),
                config,
                handler,
                registry,
            }),
        }
    }

    pub fn registry(&self) -> &Arc<SessionRegistry> {
        &self.shared.registry
    }

    /// Serve until `shutdown` is cancelled; then stop accepting, let every session answer
    /// what it has in flight and unbind, and return when all have closed.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        self.accept_loop(listener, None, shutdown).await
    }

    /// Like [`Server::serve`], with TLS on every connection (SMPP over TLS, port 3550 by
    /// convention). The handshake must finish within the bind timeout.
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        tls: tls::TlsAcceptor,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        self.accept_loop(listener, Some(tls), shutdown).await
    }

    async fn accept_loop(
        &self,
        listener: TcpListener,
        acceptor: Option<tls::TlsAcceptor>,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        let local = listener.local_addr()?;
        info!(%local, "SMPP server listening");
        let sessions = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let Some(connection) = self
                .shared
                .registry
                .open_connection(self.shared.config.max_sessions)
            else {
                warn!(%peer, "session limit reached: connection refused");
                drop(stream);
                continue;
            };
            let Some(ip_slot) = self.shared.guard.open(peer.ip()) else {
                warn!(%peer, "per-IP connection limit reached: connection refused");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let slots = (connection, ip_slot);
            match &acceptor {
                None => {
                    let (reader, writer) = stream.into_split();
                    sessions.spawn(session::run(
                        reader,
                        writer,
                        peer,
                        shared,
                        shutdown.clone(),
                        slots,
                    ));
                }
                Some(tls) => {
                    let tls = tls.clone();
                    let shutdown = shutdown.clone();
                    let handshake_timeout = shared.config.bind_timeout;
                    sessions.spawn(async move {
                        match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                let (reader, writer) = tokio::io::split(stream);
                                session::run(reader, writer, peer, shared, shutdown, slots).await;
                            }
                            Ok(Err(error)) => warn!(%peer, %error, "TLS handshake failed"),
                            Err(_) => warn!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
            }
        }
        drop(listener);
        sessions.close();
        sessions.wait().await;
        info!(%local, "SMPP server stopped");
        Ok(())
    }
}
