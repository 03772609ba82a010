//! Where the router configuration lives once the admin API manages it: the
//! `router_config` table beside billing's ledger (one JSON document per version, the
//! newest in force), in SQLite or PostgreSQL, or in memory for `memory:` stores.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use router::RouterConfig;
use sqlx::{PgPool, Row, SqlitePool};
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("router configuration store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("router configuration store: {0}")]
    Open(#[from] billing::BillingError),
    #[error("stored router configuration is unreadable: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("unsupported store url {0:?}")]
    Url(String),
}

/// The newest stored version.
#[derive(Debug, Clone)]
pub struct Stored {
    pub version: i64,
    pub config: RouterConfig,
}

#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// The configuration in force, or None on a fresh database.
    async fn load(&self) -> Result<Option<Stored>, StoreError>;
    /// Appends `config` as the next version; returns that version.
    async fn save(
        &self,
        config: &RouterConfig,
        actor: &str,
        action: &str,
    ) -> Result<i64, StoreError>;
}

/// Opens the store of billing's `url` (its migrations create the table).
pub async fn open(url: &str) -> Result<Arc<dyn ConfigStore>, StoreError> {
    if url == "memory:" {
        Ok(Arc::new(MemoryConfigStore::default()))
    } else if url.starts_with("sqlite:") {
        let store = billing::SqliteStore::open(url).await?;
        Ok(Arc::new(SqliteConfigStore(store.pool().clone())))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = billing::PostgresStore::open(url).await?;
        Ok(Arc::new(PostgresConfigStore(store.pool().clone())))
    } else {
        Err(StoreError::Url(url.to_owned()))
    }
}

/// What [`load_or_seed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Fresh store: seeded from the file.
    Seeded,
    /// The store's version is in force and the file says the same.
    Stored,
    /// The store's version is in force; the file differs and was not applied.
    StoredFileDiffers,
}

/// On a fresh store, `file` (smsgw.toml's `[router]`) becomes version 1; afterwards the
/// store is the truth and a file that differs is only reported.
pub async fn load_or_seed(
    store: &dyn ConfigStore,
    mut file: RouterConfig,
) -> Result<(RouterConfig, Origin), StoreError> {
    // `file` only says where the table came from; it is not part of the configuration.
    file.file = None;
    match store.load().await? {
        None => {
            let version = store.save(&file, "config", "router.seed").await?;
            info!(version, "router configuration store seeded from smsgw.toml");
            Ok((file, Origin::Seeded))
        }
        Some(stored) => {
            if serde_json::to_value(&file)? == serde_json::to_value(&stored.config)? {
                Ok((stored.config, Origin::Stored))
            } else {
                warn!(
                    version = stored.version,
                    "smsgw.toml's [router] differs from the stored router configuration; \
                     the stored one is in force (change it with `smsgw admin`)"
                );
                Ok((stored.config, Origin::StoredFileDiffers))
            }
        }
    }
}

fn decode(version: i64, document: &str) -> Result<Stored, StoreError> {
    Ok(Stored {
        version,
        config: serde_json::from_str(document)?,
    })
}

pub struct SqliteConfigStore(pub SqlitePool);

#[async_trait]
impl ConfigStore for SqliteConfigStore {
    async fn load(&self) -> Result<Option<Stored>, StoreError> {
        let row = sqlx::query(
            "SELECT version, document FROM router_config ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&self.0)
        .await?;
        row.map(|r| decode(r.try_get("version")?, r.try_get("document")?))
            .transpose()
    }

    async fn save(
        &self,
        config: &RouterConfig,
        actor: &str,
        action: &str,
    ) -> Result<i64, StoreError> {
        let document = serde_json::to_string(config)?;
        // The primary key makes two concurrent writers of one version fail, not merge.
        let row = sqlx::query(
            "INSERT INTO router_config (version, at, actor, action, document) \
             SELECT COALESCE(MAX(version), 0) + 1, ?, ?, ?, ? FROM router_config \
             RETURNING version",
        )
        .bind(billing::ledger::now_micros())
        .bind(actor)
        .bind(action)
        .bind(document)
        .fetch_one(&self.0)
        .await?;
        Ok(row.try_get("version")?)
    }
}

pub struct PostgresConfigStore(pub PgPool);

#[async_trait]
impl ConfigStore for PostgresConfigStore {
    async fn load(&self) -> Result<Option<Stored>, StoreError> {
        let row = sqlx::query(
            "SELECT version, document::text AS document FROM router_config \
             ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&self.0)
        .await?;
        row.map(|r| decode(r.try_get("version")?, r.try_get("document")?))
            .transpose()
    }

    async fn save(
        &self,
        config: &RouterConfig,
        actor: &str,
        action: &str,
    ) -> Result<i64, StoreError> {
        let document = serde_json::to_string(config)?;
        let row = sqlx::query(
            "INSERT INTO router_config (version, actor, action, document) \
             SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3::jsonb FROM router_config \
             RETURNING version",
        )
        .bind(actor)
        .bind(action)
        .bind(document)
        .fetch_one(&self.0)
        .await?;
        Ok(row.try_get("version")?)
    }
}

/// For `memory:` billing stores (tests, `billing = false`): nothing survives a restart.
#[derive(Default)]
pub struct MemoryConfigStore {
    versions: Mutex<Vec<String>>,
}

#[async_trait]
impl ConfigStore for MemoryConfigStore {
    async fn load(&self) -> Result<Option<Stored>, StoreError> {
        let versions = self.versions.lock();
        versions
            .last()
            .map(|doc| decode(i64::try_from(versions.len()).unwrap_or(i64::MAX), doc))
            .transpose()
    }

    async fn save(&self, config: &RouterConfig, _: &str, _: &str) -> Result<i64, StoreError> {
        let document = serde_json::to_string(config)?;
        let mut versions = self.versions.lock();
        versions.push(document);
        Ok(i64::try_from(versions.len()).unwrap_or(i64::MAX))
    }
}
