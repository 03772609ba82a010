//! Shared by the socket tests: operators and client ESMEs from the SMPP test kit
//! (`smpp-testkit`), the gateway, and an HTTP server that records callbacks and answers
//! them as told.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::{collections::HashMap, convert::Infallible, sync::Arc, time::Duration};

use billing::{BillingConfig, BillingEngine, EngineCharging, UserAccount};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use router::{Address, Deps, Gateway, Message, Origin, RouterConfig, Snapshot};
use smpp_core::server::{Server, ServerConfig, SessionRegistry};
use smpp_testkit::{
    esme::ClientConfig,
    sim::{IdForm, SimConfig},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[allow(unused_imports)] // each test file uses its own subset
pub use smpp_testkit::{
    WAIT,
    esme::Client,
    operator::{Operator, Sim},
    pdu::{mo, submit_sm, with_priority},
    wait_until,
};

/// A shutdown token that cancels itself when the test's set-up is dropped, so that
/// servers and uplinks stop even when an assertion fails.
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Self(CancellationToken::new())
    }
}

impl std::ops::Deref for Shutdown {
    type Target = CancellationToken;
    fn deref(&self) -> &CancellationToken {
        &self.0
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A message as the HTTP API hands it to `Gateway::submit`.
pub fn http_message(content: &[u8]) -> Message {
    Message {
        origin: Origin::Http,
        source: Address::new("BANK", 5, 0),
        destination: Address::new("255700000001", 1, 1),
        content: Bytes::copy_from_slice(content),
        ..Message::default()
    }
}

/// A UCS-2 text that takes three 134-octet parts, and those parts.
pub fn ucs2_three_parts() -> (Vec<u8>, Vec<Vec<u8>>) {
    let text: Vec<u8> = "привет мир! "
        .repeat(15)
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let chunks: Vec<Vec<u8>> = text.chunks(134).map(<[u8]>::to_vec).collect();
    assert_eq!(chunks.len(), 3);
    (text, chunks)
}

/// short_message of part `seq` of `chunks` with an 8-bit concatenation UDH.
pub fn udh_part(reference: u8, chunks: &[Vec<u8>], seq: u8) -> Vec<u8> {
    let total = u8::try_from(chunks.len()).expect("at most 255 parts");
    let mut body = vec![5, 0, 3, reference, total, seq];
    body.extend_from_slice(&chunks[usize::from(seq) - 1]);
    body
}

// ---------------------------------------------------------------- operators

/// The operator most pipeline tests talk to: it answers submit_sm with `00` and hex ids
/// from 1000, sends (when `receipts`) a text-only receipt whose id is the same number in
/// decimal, and lets the test push deliver_sm of its choosing (`Sim::deliver`).
pub fn smsc_config(receipts: bool) -> SimConfig {
    SimConfig {
        ids: IdForm::HexAnsweredDecimalReceipted,
        receipt_tlvs: false,
        receipt_fraction: if receipts { 1.0 } else { 0.0 },
        server: ServerConfig::default(),
        ..SimConfig::default()
    }
}

pub async fn start_smsc(shutdown: &CancellationToken, receipts: bool) -> (Sim, u16) {
    let smsc = Sim::start(shutdown, smsc_config(receipts)).await;
    let port = smsc.port;
    (smsc, port)
}

// ---------------------------------------------------------------- the gateway

/// The billing engine on an in-memory store (the real money path, no database), with an
/// account for every user of `config`, opened with the user's configured quotas.
pub async fn billing_for(config: &RouterConfig) -> Arc<EngineCharging> {
    let engine = BillingEngine::open(BillingConfig {
        url: "memory:".into(),
        ..BillingConfig::default()
    })
    .await
    .expect("billing engine");
    let snapshot = Snapshot::build(config, &|_| true).expect("snapshot");
    let users = snapshot.directory.by_uid.values().map(|u| UserAccount {
        uid: u.uid.to_string(),
        balance: u.balance,
        sms_count: u.sms_count,
    });
    Arc::new(
        EngineCharging::attach(engine, users, "EUR")
            .await
            .expect("accounts"),
    )
}

/// Start the gateway with a router table and serve SMPP on a free port.
pub async fn start_gateway(shutdown: &CancellationToken, router_toml: &str) -> (Arc<Gateway>, u16) {
    start_gateway_with(shutdown, router_toml, Deps::default()).await
}

pub async fn start_gateway_with(
    shutdown: &CancellationToken,
    router_toml: &str,
    mut deps: Deps,
) -> (Arc<Gateway>, u16) {
    let config = RouterConfig::from_toml_str(router_toml).expect("config");
    if deps.charging.is_none() {
        deps.charging = Some(billing_for(&config).await);
    }
    let registry = SessionRegistry::new();
    let handle = Gateway::start(config, registry.clone(), shutdown.clone(), deps).expect("start");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gw");
    let port = listener.local_addr().expect("addr").port();
    let server = Server::new(
        ServerConfig::default(),
        handle.smpp.clone(),
        handle.smpp.clone(),
        registry,
    );
    let stop = shutdown.clone();
    tokio::spawn(async move { server.serve(listener, stop).await });
    (handle.gateway, port)
}

pub async fn wait_bound(gw: &Gateway, cids: &[&str]) {
    wait_until(|| {
        cids.iter()
            .all(|cid| gw.connector(cid).is_some_and(|c| c.is_bound()))
    })
    .await;
}

/// An uplink to an operator on `port`, binding as `username`, reconnecting quickly.
pub fn connector_toml(cid: &str, username: &str, port: u16) -> String {
    format!(
        "[[connectors]]\ncid = \"{cid}\"\nusername = \"{username}\"\nport = {port}\n\
         con_fail_delay_secs = 0.1\ncon_loss_delay_secs = 0.1\n"
    )
}

// ---------------------------------------------------------------- client ESMEs

/// A client application bound to the gateway as a transceiver.
pub async fn connect_esme(
    shutdown: &CancellationToken,
    port: u16,
    user: &str,
    password: &str,
) -> Client {
    connect_esme_with(shutdown, port, user, password, false).await
}

/// `silent`: the client takes deliver_sm (they show in `inbound`) but never answers.
pub async fn connect_esme_with(
    shutdown: &CancellationToken,
    port: u16,
    user: &str,
    password: &str,
    silent: bool,
) -> Client {
    let config = ClientConfig {
        silent,
        ..ClientConfig::default()
    };
    Client::connect(shutdown, port, user, password, config).await
}

// ---------------------------------------------------------------- HTTP callbacks

/// One request the hook received, parameters decoded from the query (GET) or the
/// form body (POST).
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub query: Vec<(String, Vec<u8>)>,
    pub form: Vec<(String, Vec<u8>)>,
}

impl HookRequest {
    /// The parameters wherever they came from.
    pub fn params(&self) -> &[(String, Vec<u8>)] {
        if self.method == "GET" {
            &self.query
        } else {
            &self.form
        }
    }

    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.params()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn names(&self) -> Vec<&str> {
        self.params().iter().map(|(k, _)| k.as_str()).collect()
    }
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

pub fn form_decode(s: &[u8]) -> Vec<(String, Vec<u8>)> {
    s.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut kv = pair.splitn(2, |b| *b == b'=');
            let k = percent_decode(kv.next().unwrap_or_default());
            let v = percent_decode(kv.next().unwrap_or_default());
            (String::from_utf8_lossy(&k).into_owned(), v)
        })
        .collect()
}

#[derive(Default)]
struct HookState {
    requests: Vec<HookRequest>,
    /// Per path: answers for successive requests; the last one repeats.
    script: HashMap<String, Vec<(u16, &'static str)>>,
    served: HashMap<String, usize>,
}

/// A local HTTP server for DLR and MO callbacks. Answers `200 ACK/Jasmin` unless told
/// otherwise for a path.
#[derive(Clone)]
pub struct Hook {
    pub base: String,
    state: Arc<Mutex<HookState>>,
}

async fn serve_hook(
    state: Arc<Mutex<HookState>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = form_decode(req.uri().query().unwrap_or_default().as_bytes());
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(hyper::header::CONTENT_TYPE);
    let user_agent = header(hyper::header::USER_AGENT);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (status, text) = {
        let mut s = state.lock();
        let n = {
            let served = s.served.entry(path.clone()).or_default();
            *served += 1;
            *served - 1
        };
        let answer = s
            .script
            .get(&path)
            .and_then(|list| list.get(n).or(list.last()).copied())
            .unwrap_or((200, "ACK/Jasmin"));
        s.requests.push(HookRequest {
            method,
            path,
            content_type,
            user_agent,
            query,
            form: form_decode(&body),
        });
        answer
    };
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    Ok(response)
}

impl Hook {
    pub async fn start(shutdown: &CancellationToken) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hook");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(HookState::default()));
        let shared = state.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| serve_hook(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            base: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Answer successive requests on `path` with these (status, body); the last repeats.
    pub fn answer(&self, path: &str, answers: Vec<(u16, &'static str)>) {
        self.state.lock().script.insert(path.to_owned(), answers);
    }

    pub fn requests(&self, path: &str) -> Vec<HookRequest> {
        self.state
            .lock()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Wait until `path` has at least `n` requests; returns them all.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<HookRequest> {
        wait_until(|| self.requests(path).len() >= n).await;
        self.requests(path)
    }

    /// Wait a little longer than `window` and return what `path` got: for checking
    /// that nothing more arrives (a retry would have come within the window).
    pub async fn settled(&self, path: &str, window: Duration) -> Vec<HookRequest> {
        tokio::time::sleep(window).await;
        self.requests(path)
    }
}
