//! Shared by the Jasmin API socket tests: the test kit's SMSC simulator as the operator,
//! a real Gateway with billing on the `memory:` store, the api router (with `/metrics`) on a
//! free port, a
//! hyper client, and a local HTTP server that records DLR callbacks.

#![allow(dead_code)]

pub mod receiver;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use billing::{BillingConfig, BillingEngine, EngineCharging, UserAccount};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use parking_lot::Mutex;
use router::{Deps, Gateway, RouterConfig, Snapshot};
use smpp_core::server::SessionRegistry;
use smpp_testkit::{
    operator::Sim,
    sim::{ReceivedSubmit, SimConfig, SimStats},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use hyper::body::Bytes;
pub use smpp_testkit::{WAIT, wait_until};
// Used by the tests that poll over HTTP, not by every test binary.
#[allow(unused_imports)]
pub use smpp_testkit::{Deadline, LONG_WAIT};

/// Users: `bank` (balance 10, 100 parts), `poor` (balance 0.01), `short` (no long
/// content, no /balance, unlimited). Route: numbers starting 255 to `op1` at 0.02.
/// Long content: at most 3 parts.
fn router_toml(sim_port: u16) -> String {
    format!(
        r#"
[settings]
long_content_max_parts = 3
http_retry_delay_ms = 50
[[groups]]
gid = "g"
[[users]]
uid = "u1"
username = "bank"
password = "pw"
gid = "g"
quotas = {{ balance = "10", sms_count = 100 }}
[[users]]
uid = "u2"
username = "poor"
password = "pw"
gid = "g"
quotas = {{ balance = "0.01" }}
[[users]]
uid = "u3"
username = "short"
password = "pw"
gid = "g"
authorizations = {{ http_long_content = false, http_balance = false }}
[[connectors]]
cid = "op1"
username = "op1"
port = {sim_port}
con_fail_delay_secs = 0.1
con_loss_delay_secs = 0.1
# A least-cost routing connector (health metrics), to the same simulator.
[[connectors]]
cid = "lcr1"
username = "lcr1"
port = {sim_port}
con_fail_delay_secs = 0.1
con_loss_delay_secs = 0.1
[[lcr.costs]]
connector = "lcr1"
mcc = 434
mnc = 4
cost = "0.01"
[[filters]]
fid = "tz"
type = "DestinationAddrFilter"
destination_addr = "^\\+?255"
[[mo_routes]]
order = 0
type = "DefaultRoute"
connector = "smpps(bank)"
[[mt_routes]]
order = 10
type = "StaticMTRoute"
connector = "op1"
filters = ["tz"]
rate = "0.02"
"#
    )
}

pub struct Setup {
    pub shutdown: CancellationToken,
    pub gateway: Arc<Gateway>,
    pub addr: SocketAddr,
    operator: Sim,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The REST v1 API, when started with [`Setup::start_v1`].
    pub v1: Option<api::v1::V1>,
    pub dir: Option<tempfile::TempDir>,
    /// What the operator (the simulator) saw and did.
    pub sim: Arc<SimStats>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A reply: status, content type, body text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

impl Setup {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// With the REST v1 API on an SQLite store in a temporary directory.
    pub async fn start_v1() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_with(Some(dir)).await
    }

    /// The store of `dir` (a second gateway on it sees the first one's keys).
    pub async fn start_v1_in(dir: tempfile::TempDir) -> Self {
        Self::start_with(Some(dir)).await
    }

    /// With REST v1, and an operator that sends `mo_rate` MO messages a second (routed
    /// to `bank`).
    pub async fn start_v1_with_mo(mo_rate: f64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_full(Some(dir), None, mo_rate).await
    }

    /// With REST v1 on the store at `url` (PostgreSQL tests).
    pub async fn start_v1_on(url: &str) -> Self {
        Self::start_full(None, Some(url.to_owned()), 0.0).await
    }

    async fn start_with(dir: Option<tempfile::TempDir>) -> Self {
        Self::start_full(dir, None, 0.0).await
    }

    async fn start_full(
        dir: Option<tempfile::TempDir>,
        store_url: Option<String>,
        mo_rate: f64,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let operator = Sim::start(
            &shutdown,
            SimConfig {
                mo_rate,
                ..SimConfig::default()
            },
        )
        .await;
        let sim_port = operator.port;

        let config = RouterConfig::from_toml_str(&router_toml(sim_port)).expect("config");
        let engine = BillingEngine::open(BillingConfig {
            url: "memory:".into(),
            ..BillingConfig::default()
        })
        .await
        .expect("billing");
        let snapshot = Snapshot::build(&config, &|_| true).expect("snapshot");
        let users = snapshot.directory.by_uid.values().map(|u| UserAccount {
            uid: u.uid.to_string(),
            balance: u.balance,
            sms_count: u.sms_count,
        });
        let charging = Arc::new(
            EngineCharging::attach(engine.clone(), users, "EUR")
                .await
                .expect("accounts"),
        );
        let handle = Gateway::start(
            config,
            SessionRegistry::new(),
            shutdown.clone(),
            Deps {
                charging: Some(charging),
                ..Deps::default()
            },
        )
        .expect("gateway");
        let gateway = handle.gateway;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
        let addr = listener.local_addr().expect("addr");
        // The same composition as `smsgw serve`: counted and traced requests, /metrics.
        let metrics = api::metrics::Metrics::new(api::metrics::Sources {
            gateway: gateway.clone(),
            journal: Some(journal::Journal::memory()),
            billing: Some(engine),
        });
        let mut routes = api::jasmin::routes(gateway.clone()).merge(metrics.routes());
        let mut v1 = None;
        let store_url = store_url.or_else(|| {
            dir.as_ref()
                .map(|dir| format!("sqlite://{}", dir.path().join("api.db").display()))
        });
        if let Some(url) = store_url {
            let db = api::v1::Db::open(&url).await.expect("v1 store");
            // Webhook retries in milliseconds rather than seconds.
            let config = api::v1::V1Config {
                webhook_retry_base: Duration::from_millis(50),
                webhook_retry_max: Duration::from_millis(200),
                webhook_poll: Duration::from_millis(50),
                webhook_timeout: Duration::from_secs(30),
                // As `smsgw serve` with a journal on disk: resume tokens outlive a restart.
                events_dir: dir.as_ref().map(|d| d.path().join("dlr-events")),
                ..api::v1::V1Config::default()
            };
            let state = api::v1::V1::new(gateway.clone(), db, config);
            state.spawn_tasks(shutdown.clone());
            routes = routes.merge(api::v1::routes(state.clone()));
            v1 = Some(state);
        }
        let routes = metrics.instrument(routes);
        tokio::spawn(api::serve(listener, routes, shutdown.clone()));
        let bound = gateway.clone();
        wait_until(|| bound.connector("op1").is_some_and(|c| c.is_bound())).await;
        Self {
            shutdown,
            gateway,
            addr,
            sim: operator.stats.clone(),
            operator,
            client: Client::builder(TokioExecutor::new()).build_http(),
            v1,
            dir,
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(body.into())).expect("request");
        let response = tokio::time::timeout(WAIT, self.client.request(request))
            .await
            .expect("answer in time")
            .expect("answer");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Reply {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// The reply and its `Retry-After` header.
    pub async fn request_full(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> (Reply, Option<String>) {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(body.into())).expect("request");
        let response = tokio::time::timeout(WAIT, self.client.request(request))
            .await
            .expect("answer in time")
            .expect("answer");
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let reply = Reply {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        (reply, retry_after)
    }

    /// A streamed answer: status, headers, and the body's frames as they came.
    pub async fn stream(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, hyper::HeaderMap, Vec<Bytes>) {
        let mut builder = Request::builder()
            .method("GET")
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(Bytes::new())).expect("request");
        let response = tokio::time::timeout(WAIT, self.client.request(request))
            .await
            .expect("answer in time")
            .expect("answer");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = response.into_body();
        let mut frames = Vec::new();
        while let Some(frame) = tokio::time::timeout(WAIT, body.frame())
            .await
            .expect("a frame in time")
        {
            if let Ok(data) = frame.expect("frame").into_data() {
                frames.push(data);
            }
        }
        (status, headers, frames)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], Bytes::new()).await
    }

    pub async fn post_form(&self, path: &str, form: &str) -> Reply {
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        self.request("POST", path, &headers, form.to_owned()).await
    }

    /// The next submit_sm the operator accepted.
    pub async fn next_submit(&mut self) -> ReceivedSubmit {
        self.operator.next_submit().await
    }

    /// Nothing more reached the operator within a short while.
    pub async fn no_more_submits(&mut self) {
        self.operator.no_more_submits().await;
    }
}

/// The id inside `Success "<uuid>"`.
pub fn success_id(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{reply:?}");
    let id = reply
        .body
        .strip_prefix("Success \"")
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a success: {reply:?}"));
    assert_eq!(id.len(), 36, "a UUID: {id}");
    id.to_owned()
}

/// One callback received: method, path, and its parameters (query or form body).
#[derive(Debug, Clone)]
pub struct Callback {
    pub method: String,
    pub path: String,
    pub params: String,
}

impl Callback {
    pub fn param(&self, name: &str) -> Option<String> {
        self.params.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }
}

/// A local HTTP server that answers `ACK/Jasmin` and records what it got.
pub struct Hook {
    pub base: String,
    seen: Arc<Mutex<Vec<Callback>>>,
}

async fn record(
    seen: Arc<Mutex<Vec<Callback>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let params = if method == "GET" {
        query
    } else {
        String::from_utf8_lossy(&body.unwrap_or_default()).into_owned()
    };
    seen.lock().push(Callback {
        method,
        path,
        params,
    });
    Ok(Response::new(Full::new(Bytes::from_static(b"ACK/Jasmin"))))
}

/// Serves HTTP/1 on a loopback port with `handle` until `shutdown`; returns the port.
pub async fn serve_http<F, Fut>(shutdown: &CancellationToken, handle: F) -> u16
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
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
            let handle = handle.clone();
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
        }
    });
    port
}

impl Hook {
    pub async fn start(shutdown: &CancellationToken) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = seen.clone();
        let port = serve_http(shutdown, move |req| record(shared.clone(), req)).await;
        Self {
            base: format!("http://127.0.0.1:{port}"),
            seen,
        }
    }

    /// Every callback received so far.
    pub fn seen(&self) -> Vec<Callback> {
        self.seen.lock().clone()
    }

    pub async fn wait_for(&self, path: &str) -> Callback {
        wait_until(|| self.seen.lock().iter().any(|c| c.path == path)).await;
        self.seen
            .lock()
            .iter()
            .find(|c| c.path == path)
            .cloned()
            .expect("a callback")
    }
}
