//! HTTP callbacks: DLRs to a message's dlr-url and MO to HTTP connectors, with Jasmin's
//! parameters, its ACK rule (status < 400 and body `ACK/Jasmin`) and retry policy.

use std::{path::Path, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tracing::{debug, warn};

use crate::config::{ConfigError, Settings};

/// One callback to make.
#[derive(Debug, Clone)]
pub struct Callback {
    pub url: String,
    pub method: Method,
    pub params: Vec<(&'static str, Vec<u8>)>,
    pub user_agent: &'static str,
}

/// Every parameter name a callback carries (Jasmin's DLR and MO parameters), so a
/// callback read back from the journal gets its names as `&'static str` again.
const PARAM_NAMES: &[&str] = &[
    "id",
    "message_status",
    "level",
    "connector",
    "id_smsc",
    "sub",
    "dlvrd",
    "subdate",
    "donedate",
    "err",
    "text",
    "from",
    "to",
    "origin-connector",
    "content",
    "binary",
    "coding",
    "priority",
];

pub fn param_name(name: &str) -> Option<&'static str> {
    PARAM_NAMES.iter().copied().find(|known| *known == name)
}

pub const DLR_AGENT: &str = "Jasmin gateway/1.0 DLRThrower";
pub const MO_AGENT: &str = "Jasmin gateway/1.0 deliverSmHttpThrower";

#[derive(Clone)]
pub struct Thrower {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    retry_delay: Duration,
    max_retries: u32,
}

/// `application/x-www-form-urlencoded` encoding.
pub fn form_encode(params: &[(&str, Vec<u8>)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(&mut out, k.as_bytes());
        out.push('=');
        encode_into(&mut out, v);
    }
    out
}

fn encode_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

impl Thrower {
    /// http and https URLs; https servers are verified against the public web PKI
    /// roots plus the CA(s) in `ca_file`.
    pub fn new(
        timeout: Duration,
        retry_delay: Duration,
        max_retries: u32,
        ca_file: Option<&Path>,
    ) -> Result<Self, tls::TlsError> {
        let tls = tls::https_client_config(ca_file)?;
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
            retry_delay,
            max_retries,
        })
    }

    /// The thrower `[settings]` describe; an unreadable `http_ca_file` is refused.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Self::new(
            Duration::from_millis(s.http_timeout_ms),
            Duration::from_millis(s.http_retry_delay_ms),
            s.http_max_retries,
            s.http_ca_file.as_deref().map(Path::new),
        )
        .map_err(|e| ConfigError::Invalid(format!("http_ca_file: {e}")))
    }

    /// Try once; true when acknowledged.
    pub async fn attempt(&self, cb: &Callback) -> bool {
        let body = form_encode(&cb.params);
        let builder = Request::builder()
            .header(header::USER_AGENT, cb.user_agent)
            .header(header::ACCEPT, "text/plain");
        let request = if cb.method == Method::GET {
            let sep = if cb.url.contains('?') { '&' } else { '?' };
            builder
                .method(Method::GET)
                .uri(format!("{}{sep}{body}", cb.url))
                .body(Full::new(Bytes::new()))
        } else {
            builder
                .method(Method::POST)
                .uri(&cb.url)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(body)))
        };
        let request = match request {
            Ok(r) => r,
            Err(error) => {
                warn!(%error, url = %cb.url, "bad callback URL");
                return false;
            }
        };
        let call = async {
            let response = self.client.request(request).await.ok()?;
            let status = response.status();
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some((status, body))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Some((status, body))) => {
                let ok =
                    status.as_u16() < 400 && String::from_utf8_lossy(&body).trim() == "ACK/Jasmin";
                debug!(url = %cb.url, %status, ok, "callback answered");
                ok
            }
            _ => false,
        }
    }

    /// Try, and retry `max_retries` times `retry_delay` apart; true when acknowledged.
    pub async fn deliver(&self, cb: Callback) -> bool {
        for attempt in 0..=self.max_retries {
            if attempt > 0 {
                tokio::time::sleep(self.retry_delay).await;
            }
            if self.attempt(&cb).await {
                return true;
            }
        }
        warn!(url = %cb.url, attempts = self.max_retries + 1, "callback given up");
        false
    }

    /// Deliver in the background.
    pub fn spawn(&self, cb: Callback) {
        let this = self.clone();
        tokio::spawn(async move {
            this.deliver(cb).await;
        });
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Jasmin's MO callback parameters (docs/jasmin-compat.md §3.2). Content goes as raw bytes:
/// percent-encoding keeps them intact.
pub fn mo_params(id: &str, m: &crate::model::Message) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("id", id.as_bytes().to_vec()),
        ("from", m.source.addr.clone().into_bytes()),
        ("to", m.destination.addr.clone().into_bytes()),
        ("origin-connector", m.connector.as_bytes().to_vec()),
        ("content", m.content.to_vec()),
        ("binary", hex(&m.content).into_bytes()),
        ("coding", m.data_coding.to_string().into_bytes()),
        ("priority", m.priority.to_string().into_bytes()),
    ]
}
