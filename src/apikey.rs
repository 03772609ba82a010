//! `smsgw apikey …`: REST API v1 keys made, listed and revoked in the store directly,
//! so an admin can make the first key (with `keys:write`, later keys can be made over
//! the API itself). A running gateway sees a new key at once and a revoked one within
//! `api::v1::auth::KEY_CACHE_TTL`.

use anyhow::Context;
use api::v1::{Db, NewKey, keys};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Make a key for a router user; its secret is printed once.
    Create {
        /// The router user (uid) the key sends and pays as.
        #[arg(long)]
        user: String,
        /// Comma-separated: sms:send, sms:read, account:read, webhooks:write, keys:write.
        #[arg(long)]
        scopes: String,
        /// Allowed client addresses (CIDR, comma-separated); none: any address.
        #[arg(long, value_delimiter = ',')]
        cidr: Vec<String>,
        /// The key stops working after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Requests per second (0: the gateway's default).
        #[arg(long, default_value_t = 0)]
        rate: u32,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// A user's live keys (never their secrets).
    List {
        #[arg(long)]
        user: String,
    },
    /// Revoke a key by its id (`key_…`).
    Revoke { id: String },
}

pub async fn run(url: &str, command: ApikeyCommand) -> anyhow::Result<()> {
    let db = Db::open(url)
        .await
        .with_context(|| format!("cannot open the store {url}"))?;
    match command {
        ApikeyCommand::Create {
            user,
            scopes,
            cidr,
            expires_in_days,
            rate,
            name,
        } => {
            let known = match api::admin::store::open(url).await?.load().await? {
                Some(stored) => stored.config.users.iter().any(|u| u.uid == user),
                None => false,
            };
            if !known {
                anyhow::bail!(
                    "no router user with uid {user:?} in the store (start the gateway once, or add the user with `smsgw admin user add`)"
                );
            }
            let scopes = keys::parse_scopes(&scopes)?;
            if scopes.is_empty() {
                anyhow::bail!("--scopes must name at least one scope");
            }
            let expires_at = expires_in_days
                .map(|d| api::v1::time::now_us() + i64::from(d) * 86_400 * 1_000_000);
            let (key, secret) = api::v1::create_key(
                &db,
                NewKey {
                    uid: user,
                    name,
                    scopes,
                    cidrs: keys::parse_cidrs(&cidr)?,
                    rate,
                    expires_at,
                },
            )
            .await?;
            println!("{}", key.to_json());
            println!("secret (shown once): {secret}");
        }
        ApikeyCommand::List { user } => {
            for key in db.list_keys(&user).await? {
                println!("{}", key.to_json());
            }
        }
        ApikeyCommand::Revoke { id } => {
            if !db.revoke_key(None, &id, api::v1::time::now_us()).await? {
                anyhow::bail!("no live key {id:?}");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}
