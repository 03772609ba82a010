//! API keys: the secret shown once (`sk_live_` + 64 hex digits of a 32-byte random
//! value), stored as its SHA-256 (the secret has 256 bits of entropy, so a fast hash is
//! enough: there is nothing to guess offline), with scopes, an optional CIDR allowlist
//! and an optional expiry. Each key belongs to a router user.

use std::{fmt, net::IpAddr, str::FromStr};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const SECRET_PREFIX: &str = "sk_live_";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    #[serde(rename = "sms:send")]
    SmsSend,
    #[serde(rename = "sms:read")]
    SmsRead,
    #[serde(rename = "account:read")]
    AccountRead,
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    #[serde(rename = "keys:write")]
    KeysWrite,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::SmsSend,
        Scope::SmsRead,
        Scope::AccountRead,
        Scope::WebhooksWrite,
        Scope::KeysWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SmsSend => "sms:send",
            Scope::SmsRead => "sms:read",
            Scope::AccountRead => "account:read",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::KeysWrite => "keys:write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "unknown scope {0:?} (known: sms:send, sms:read, account:read, webhooks:write, keys:write)"
    )]
    Scope(String),
    #[error("invalid CIDR {0:?}")]
    Cidr(String),
}

impl FromStr for Scope {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| KeyError::Scope(s.to_owned()))
    }
}

/// Scopes from a list separated by commas or spaces.
pub fn parse_scopes(text: &str) -> Result<Vec<Scope>, KeyError> {
    let mut scopes: Vec<Scope> = Vec::new();
    for s in text.split([',', ' ']).filter(|s| !s.is_empty()) {
        let scope = s.parse()?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

pub fn scopes_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An address block (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::Cidr(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

pub fn parse_cidrs(list: &[String]) -> Result<Vec<Cidr>, KeyError> {
    list.iter().map(|c| c.trim().parse()).collect()
}

/// A new secret: what the client is shown once.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", hex(&bytes))
}

/// What is stored and looked up: SHA-256 of the whole secret, in hex.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A stored key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub uid: String,
    pub name: String,
    /// The first characters of the secret, to recognise it in a list.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub cidrs: Vec<Cidr>,
    /// Requests per second (the token bucket's rate and burst); 0: the default.
    pub rate: u32,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn admits(&self, ip: IpAddr) -> bool {
        self.cidrs.is_empty() || self.cidrs.iter().any(|c| c.contains(ip))
    }

    pub fn usable_at(&self, now_us: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now_us < e)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "user": self.uid,
            "scopes": self.scopes,
            "allowed_cidrs": self.cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "rate_limit": self.rate,
            "created_at": super::time::rfc3339(self.created_at),
            "expires_at": self.expires_at.map(super::time::rfc3339),
        })
    }
}

/// Everything needed to make a key.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub uid: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub cidrs: Vec<Cidr>,
    pub rate: u32,
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_match() {
        let net: Cidr = "10.1.0.0/16".parse().expect("cidr");
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        assert!(net.contains("::ffff:10.1.0.9".parse().expect("ip")));
        let one: Cidr = "127.0.0.1".parse().expect("cidr");
        assert!(one.contains("127.0.0.1".parse().expect("ip")));
        assert!(!one.contains("127.0.0.2".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
        let v6: Cidr = "2001:db8::/32".parse().expect("cidr");
        assert!(v6.contains("2001:db8:1::5".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn scopes_and_secrets() {
        let s = parse_scopes("sms:send, account:read sms:send").expect("scopes");
        assert_eq!(s, vec![Scope::SmsSend, Scope::AccountRead]);
        assert!(parse_scopes("sms:write").is_err());
        let a = new_secret();
        let b = new_secret();
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }
}
