//! Users and groups as the pipeline sees them (compiled from configuration).

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;

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
                if config.password.starts_with(ARGON2_PREFIX) {
                    argon2::PasswordHash::new(&config.password).map_err(|e| {
                        ConfigError::Invalid(format!("user {}: bad password hash: {e}", config.uid))
                    })?;
                }
                if let Some(digest) = config.password.strip_prefix(JASMIN_MD5_PREFIX)
                    && (digest.len() != 32 || !digest.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(ConfigError::Invalid(format!(
                        "user {}: a {JASMIN_MD5_PREFIX} password takes 32 hex digits (an MD5 digest)",
                        config.uid
                    )));
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
    /// recommended form: `smsgw hash-password`); a plain one is compared in constant
    /// time. Blocking (Argon2 costs tens of milliseconds): async code goes through
    /// [`Directory::authenticate`], which runs it on the blocking pool.
    pub fn password_matches(&self, candidate: &str) -> bool {
        verify_blocking(Some(&self.password), candidate)
    }
}

/// Password prefix of an Argon2 PHC string.
const ARGON2_PREFIX: &str = "$argon2";

/// Password prefix of a user imported from Jasmin, which keeps only the unsalted MD5
/// digest of a password (`$jasmin-md5$` + 32 hex digits): such users log in with the
/// password they had, until an admin sets a new one (stored as given, or Argon2).
pub const JASMIN_MD5_PREFIX: &str = "$jasmin-md5$";

/// Verifications running at once per core: Argon2 is CPU- and memory-bound, so more only
/// queues work on the blocking pool while binds time out.
const VERIFICATIONS_PER_CORE: usize = 2;

/// Hashed for users without an Argon2 hash of their own (unknown, or a plain password),
/// so that every bind costs one Argon2 verification and timing tells no usernames.
const DUMMY_PASSWORD: &str = "smsgw-dummy-password-for-equal-work";

fn verify_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            Arc::new(Semaphore::new(cores * VERIFICATIONS_PER_CORE))
        })
        .clone()
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    // An empty string (hashing failed) makes the dummy verification a no-op: only the
    // timing guarantee is lost, never a login.
    DUMMY.get_or_init(|| hash_password(DUMMY_PASSWORD).unwrap_or_default())
}

fn argon2_verify(phc: &str, candidate: &str) -> bool {
    use argon2::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(candidate.as_bytes(), &hash)
            .is_ok()
    })
}

/// Compares every byte of the longer input: the time depends on lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// One Argon2 verification whatever `stored` is (None: an unknown user).
fn verify_blocking(stored: Option<&str>, candidate: &str) -> bool {
    match stored {
        Some(phc) if phc.starts_with(ARGON2_PREFIX) => argon2_verify(phc, candidate),
        Some(jasmin) if jasmin.starts_with(JASMIN_MD5_PREFIX) => {
            use md5::Digest;
            let _ = argon2_verify(dummy_hash(), candidate);
            let digest = md5::Md5::digest(candidate.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            constant_time_eq(
                jasmin[JASMIN_MD5_PREFIX.len()..]
                    .to_ascii_lowercase()
                    .as_bytes(),
                hex.as_bytes(),
            )
        }
        other => {
            let _ = argon2_verify(dummy_hash(), candidate);
            other.is_some_and(|plain| constant_time_eq(plain.as_bytes(), candidate.as_bytes()))
        }
    }
}

/// Verify on the blocking pool, at most [`VERIFICATIONS_PER_CORE`] per core at once.
/// Cancelling the future (a bind timeout) stops the wait; a verification already started
/// finishes on its thread, holding its slot until then.
async fn verify(user: Option<Arc<User>>, candidate: String, done: Arc<AtomicU64>) -> bool {
    let Ok(permit) = verify_slots().acquire_owned().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let ok = verify_blocking(user.as_deref().map(|u| u.password.as_str()), &candidate);
        done.fetch_add(1, Ordering::Relaxed);
        ok
    })
    .await
    .unwrap_or(false)
}

/// Users by username and uid, and groups by gid.
#[derive(Debug, Default)]
pub struct Directory {
    pub by_username: HashMap<Arc<str>, Arc<User>>,
    pub by_uid: HashMap<Arc<str>, Arc<User>>,
    pub groups: HashMap<Arc<str>, Group>,
    /// Password verifications done (a test hook: every attempt costs one).
    verifications: Arc<AtomicU64>,
    /// Credentials verified recently, so that an HTTP client sending its password with
    /// every request does not pay an Argon2 verification each time.
    verified: VerifiedCache,
    /// One verification at a time per user: requests that start together (an HTTP
    /// client opening 64 connections) wait for the first, then find it remembered,
    /// instead of running 64 verifications at once.
    turns: parking_lot::Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
}

/// How long a verified password is remembered. A directory rebuilt (users changed)
/// starts empty, so a changed password takes effect at once.
const VERIFIED_TTL: Duration = Duration::from_secs(300);

/// Successful verifications by username: a keyed 64-bit fingerprint of the password
/// (the key is random per process; no password is kept) and when it expires. Failures
/// are never cached: every wrong guess costs a full verification.
#[derive(Debug, Default)]
struct VerifiedCache {
    key: std::hash::RandomState,
    entries: parking_lot::Mutex<HashMap<Arc<str>, (u64, Instant)>>,
}

impl VerifiedCache {
    fn fingerprint(&self, password: &str) -> u64 {
        use std::hash::BuildHasher;
        self.key.hash_one(password)
    }

    fn contains(&self, username: &str, password: &str) -> bool {
        let print = self.fingerprint(password);
        self.entries
            .lock()
            .get(username)
            .is_some_and(|(p, until)| *p == print && Instant::now() < *until)
    }

    fn insert(&self, username: &Arc<str>, password: &str) {
        let print = self.fingerprint(password);
        self.entries
            .lock()
            .insert(username.clone(), (print, Instant::now() + VERIFIED_TTL));
    }
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
    /// Every attempt costs one Argon2 verification, run off the async workers.
    pub async fn authenticate(&self, username: &str, password: &str) -> Option<Arc<User>> {
        let user = self.by_username.get(username).cloned();
        // Some(answer) when this password was verified recently: the answer then
        // depends only on whether the user and its group are enabled.
        let remembered = |user: &Arc<User>| {
            self.verified.contains(username, password).then(|| {
                let group_ok = self.groups.get(&user.gid).is_some_and(|g| g.enabled);
                (user.enabled && group_ok).then(|| user.clone())
            })
        };
        if let Some(answer) = user.as_ref().and_then(remembered) {
            return answer;
        }
        let _turn = match &user {
            Some(user) => {
                let turn = self
                    .turns
                    .lock()
                    .entry(user.username.clone())
                    .or_default()
                    .clone();
                let turn = turn.lock_owned().await;
                // Verified by the request whose turn came first.
                if let Some(answer) = remembered(user) {
                    return answer;
                }
                Some(turn)
            }
            None => None,
        };
        let matches = verify(
            user.clone(),
            password.to_owned(),
            self.verifications.clone(),
        )
        .await;
        let user = user?;
        if matches {
            self.verified.insert(&user.username, password);
        }
        let group_ok = self.groups.get(&user.gid).is_some_and(|g| g.enabled);
        (user.enabled && group_ok && matches).then_some(user)
    }

    /// Whether `username` may hold a bind: it exists and it and its group are enabled.
    pub fn may_bind(&self, username: &str) -> bool {
        self.by_username.get(username).is_some_and(|user| {
            user.enabled && self.groups.get(&user.gid).is_some_and(|g| g.enabled)
        })
    }

    /// A user by username (or uid), without authentication: for explanations.
    pub fn find(&self, name: &str) -> Option<&Arc<User>> {
        self.by_username.get(name).or_else(|| self.by_uid.get(name))
    }

    /// Password verifications done since this directory was built.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
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

    #[test]
    fn a_jasmin_md5_digest_accepts_the_password_it_was_made_from() {
        // md5("alicepwd"), as Jasmin's router-users file holds it (raw 16 bytes there).
        let jasmin = user_with("$jasmin-md5$bdc88fc586d1f0bd41b602a6794bed28");
        assert!(jasmin.password_matches("alicepwd"));
        assert!(!jasmin.password_matches("alicepwd "));
        assert!(!jasmin.password_matches("$jasmin-md5$bdc88fc586d1f0bd41b602a6794bed28"));
        let config: UserConfig = toml::from_str(
            "uid = \"u\"\nusername = \"u\"\npassword = '$jasmin-md5$bdc8'\ngid = \"g\"\n",
        )
        .unwrap();
        assert!(
            User::from_config(&config).is_err(),
            "a short digest is refused"
        );
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abc\0"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
