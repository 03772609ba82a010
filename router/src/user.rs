//! Users and groups as the pipeline sees them (compiled from configuration).

use std::{collections::HashMap, sync::Arc};

use crate::{
    config::{AuthorizationsConfig, ConfigError, GroupConfig, UserConfig, parse_micros},
    credentials::ValueFilters,
};

#[derive(Debug, Clone)]
pub struct Group {
    pub gid: Arc<str>,
    pub enabled: bool,
}

#[derive(Debug)]
pub struct User {
    pub uid: Arc<str>,
    pub username: Arc<str>,
    password: String,
    pub gid: Arc<str>,
    pub enabled: bool,
    pub authorizations: AuthorizationsConfig,
    pub value_filters: ValueFilters,
    pub default_src_addr: Option<String>,
    /// Opening balance in micro-units (None = unlimited).
    pub balance: Option<i64>,
    pub sms_count: Option<u64>,
    pub smpps_throughput: Option<f64>,
    pub http_throughput: Option<f64>,
    pub smpp_bind: bool,
    pub max_bindings: Option<usize>,
}

impl User {
    pub fn from_config(config: &UserConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            uid: Arc::from(config.uid.as_str()),
            username: Arc::from(config.username.as_str()),
            password: {
                if config.password.starts_with("$argon2") {
                    argon2::PasswordHash::new(&config.password).map_err(|e| {
                        ConfigError::Invalid(format!("user {}: bad password hash: {e}", config.uid))
                    })?;
                }
                config.password.clone()
            },
            gid: Arc::from(config.gid.as_str()),
            enabled: config.enabled,
            authorizations: config.authorizations.clone(),
            value_filters: ValueFilters::compile(&config.value_filters)?,
            default_src_addr: config.defaults.src_addr.clone(),
            balance: config
                .quotas
                .balance
                .as_deref()
                .map(parse_micros)
                .transpose()?,
            sms_count: config.quotas.sms_count,
            smpps_throughput: config.quotas.smpps_throughput.filter(|r| *r > 0.0),
            http_throughput: config.quotas.http_throughput.filter(|r| *r > 0.0),
            smpp_bind: config.smpp.bind,
            max_bindings: config.smpp.max_bindings,
        })
    }

    /// Check a password. A configured `$argon2…` PHC string is verified with Argon2 (the
    /// recommended form: `smsgw hash-password`); a plain one is compared without stopping
    /// at the first differing byte. Called once per bind, never per PDU.
    pub fn password_matches(&self, candidate: &str) -> bool {
        if self.password.starts_with("$argon2") {
            use argon2::{PasswordHash, PasswordVerifier};
            return PasswordHash::new(&self.password).is_ok_and(|hash| {
                argon2::Argon2::default()
                    .verify_password(candidate.as_bytes(), &hash)
                    .is_ok()
            });
        }
        let a = self.password.as_bytes();
        let b = candidate.as_bytes();
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

/// Users by username and uid, and groups by gid.
#[derive(Debug, Default)]
pub struct Directory {
    pub by_username: HashMap<Arc<str>, Arc<User>>,
    pub by_uid: HashMap<Arc<str>, Arc<User>>,
    pub groups: HashMap<Arc<str>, Group>,
}

impl Directory {
    pub fn build(groups: &[GroupConfig], users: &[UserConfig]) -> Result<Self, ConfigError> {
        let mut dir = Self::default();
        for g in groups {
            let gid: Arc<str> = Arc::from(g.gid.as_str());
            dir.groups.insert(
                gid.clone(),
                Group {
                    gid,
                    enabled: g.enabled,
                },
            );
        }
        for u in users {
            let user = Arc::new(User::from_config(u)?);
            if !dir.groups.contains_key(&user.gid) {
                return Err(ConfigError::Invalid(format!(
                    "user {} names unknown group {}",
                    user.uid, user.gid
                )));
            }
            if dir.by_username.contains_key(&user.username) || dir.by_uid.contains_key(&user.uid) {
                return Err(ConfigError::Invalid(format!(
                    "user {} defined twice",
                    user.uid
                )));
            }
            dir.by_username.insert(user.username.clone(), user.clone());
            dir.by_uid.insert(user.uid.clone(), user);
        }
        Ok(dir)
    }

    /// Jasmin's authentication: unknown user, bad password, disabled user or group all fail.
    pub fn authenticate(&self, username: &str, password: &str) -> Option<&Arc<User>> {
        let user = self.by_username.get(username)?;
        let group_ok = self.groups.get(&user.gid).is_some_and(|g| g.enabled);
        (user.enabled && group_ok && user.password_matches(password)).then_some(user)
    }
}

/// An Argon2id PHC string for `password` (what `smsgw hash-password` prints).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::{PasswordHasher, password_hash::SaltString};
    use rand::RngCore;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod password_tests {
    use super::*;

    fn user_with(password: &str) -> User {
        let config: UserConfig = toml::from_str(&format!(
            "uid = \"u\"\nusername = \"u\"\npassword = '{password}'\ngid = \"g\"\n"
        ))
        .unwrap();
        User::from_config(&config).unwrap()
    }

    #[test]
    fn hashed_and_plain_passwords() {
        let hashed = user_with(&hash_password("s3cret").unwrap());
        assert!(hashed.password_matches("s3cret"));
        assert!(!hashed.password_matches("s3cret "));
        assert!(!hashed.password_matches(""));
        let plain = user_with("s3cret");
        assert!(plain.password_matches("s3cret"));
        assert!(!plain.password_matches("s3cre"));
        assert!(!plain.password_matches("s3cret1"));
    }
}
