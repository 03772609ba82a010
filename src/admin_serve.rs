//! Wiring of the admin API into `smsgw serve`: the router configuration's store (seeded
//! from smsgw.toml once) and the gRPC listener on `[admin] listen`.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use api::admin::{self, Auth, ConfigStore, Origin, Token};
use billing::EngineCharging;
use router::{Gateway, RouterConfig};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{AdminSection, Config};

/// The router configuration in force: the store's, or the file's on a fresh store.
pub async fn load_router_config(
    config: &Config,
    base_dir: &Path,
    file: RouterConfig,
) -> anyhow::Result<(Arc<dyn ConfigStore>, RouterConfig)> {
    let url = if config.storage.billing {
        crate::serve::resolve_storage_url(&config.storage.url, base_dir)?
    } else {
        "memory:".to_owned()
    };
    let store = admin::store::open(&url)
        .await
        .with_context(|| format!("cannot open the router configuration store {url}"))?;
    let (current, origin) = admin::load_or_seed(store.as_ref(), file)
        .await
        .context("cannot load the router configuration")?;
    if origin == Origin::StoredFileDiffers {
        warn!("[router] in smsgw.toml is ignored: the stored configuration is in force");
    }
    Ok((store, current))
}

pub struct Parts {
    pub gateway: Arc<Gateway>,
    pub charging: Arc<EngineCharging>,
    pub store: Arc<dyn ConfigStore>,
    pub current: RouterConfig,
}

/// Starts the admin listener unless `[admin] enabled = false`; over TLS when
/// `[admin.tls]` names a certificate (paths relative to `base_dir`).
pub async fn spawn(
    section: &AdminSection,
    base_dir: &Path,
    parts: Parts,
    hangup: &crate::serve::Hangup,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if !section.enabled {
        return Ok(None);
    }
    let auth = Auth::new(section.tokens.iter().map(|t| Token {
        name: t.name.clone(),
        token: t.token.clone(),
        role: t.role,
    }));
    if auth.is_empty() {
        warn!("[admin] has no tokens (nor SMSGW_ADMIN_TOKEN): every admin call is refused");
    }
    let tls = match &section.tls {
        Some(t) => {
            let cert = base_dir.join(&t.cert);
            let tls = admin::tls_incoming::server_tls(tls::CertFiles {
                cert: cert.clone(),
                key: base_dir.join(&t.key),
            })
            .context("cannot load the admin TLS certificate ([admin.tls])")?;
            hangup.reload_on_sighup(
                &tls,
                cert.display().to_string(),
                Some(parts.charging.engine().clone()),
            );
            Some(tls.acceptor)
        }
        None => None,
    };
    let listener = TcpListener::bind(section.listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", section.listen))?;
    info!(listen = %section.listen, tls = tls.is_some(), "admin gRPC listener (smsgw admin, grpcurl)");
    let state = admin::state(parts.gateway, parts.charging, parts.store, parts.current);
    Ok(Some(tokio::spawn(async move {
        let served = match tls {
            Some(tls) => admin::serve_tls(listener, tls, state, auth, shutdown).await,
            None => admin::serve(listener, state, auth, shutdown).await,
        };
        if let Err(error) = served {
            warn!(%error, "admin listener stopped");
        }
    })))
}
