//! A webhook receiver for the socket tests: a local HTTP server that answers a chosen
//! status (after a chosen delay) and records what it got, and the signature check a
//! receiver runs.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU16, AtomicU64, Ordering},
    },
    time::Duration,
};

use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, body::Incoming};
use parking_lot::Mutex;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    pub signature: String,
    pub body: String,
}

/// A webhook receiver: answers `status` (after `delay_ms`), records what it got.
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    pub got: Arc<Mutex<Vec<Got>>>,
    pub status: Arc<AtomicU16>,
    pub delay_ms: Arc<AtomicU64>,
}

async fn receive(r: Receiver, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let signature = req
        .headers()
        .get("smsgw-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    r.got.lock().push(Got {
        path,
        signature,
        body,
    });
    let delay = r.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() =
        hyper::StatusCode::from_u16(r.status.load(Ordering::Relaxed)).unwrap_or_default();
    Ok(response)
}

impl Receiver {
    pub async fn start(shutdown: &CancellationToken, status: u16) -> Self {
        let mut r = Receiver {
            base: String::new(),
            got: Arc::default(),
            status: Arc::new(AtomicU16::new(status)),
            delay_ms: Arc::default(),
        };
        let shared = r.clone();
        let port = super::serve_http(shutdown, move |req| receive(shared.clone(), req)).await;
        r.base = format!("http://127.0.0.1:{port}");
        r
    }

    pub fn at(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }
}

/// The receiver's check, as the README shows it: HMAC-SHA256 of `t.body`.
pub fn verify(secret: &str, header: &str, body: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}
