//! Shared by the socket tests: operators (benches' SMSC simulator, and a small SMSC that
//! pushes chosen deliver_sm), the gateway, client ESMEs bound over SMPP, and an HTTP
//! server that records callbacks and answers them as told.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use benches::sim::{ReceivedSubmit, SimConfig, SimStats, Simulator};
use billing::{BillingConfig, BillingEngine, EngineCharging, UserAccount};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use router::{Address, Deps, Gateway, Message, Origin, RouterConfig, Snapshot};
use smpp_core::{
    BindKind,
    client::{
        Inbound, SubmitOutcome, SubmitRequest, SubmitResult, Uplink, UplinkConfig, UplinkHandler,
    },
    rusmpp::{
        CommandStatus, Pdu,
        pdus::{DeliverSm, SubmitSm, SubmitSmResp},
        types::{COctetString, OctetString},
        values::{DataCoding, EsmClass, PriorityFlag, RegisteredDelivery},
    },
    server::{
        Authenticator, BindGrant, BindRequest, Outbound, OutboundResult, Request as SmppRequest,
        RequestHandler, Response as SmppResponse, Server, ServerConfig, SessionInfo,
        SessionRegistry,
    },
};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::sync::CancellationToken;

/// Longest wait for anything a test expects.
pub const WAIT: Duration = Duration::from_secs(10);

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

pub async fn wait_until(mut f: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition in time");
}

// ---------------------------------------------------------------- operators

/// benches' simulator on a port of its own, recording every accepted submit_sm.
pub struct Sim {
    pub port: u16,
    pub stats: Arc<SimStats>,
    pub submits: mpsc::UnboundedReceiver<ReceivedSubmit>,
}

impl Sim {
    pub async fn start(shutdown: &CancellationToken, config: SimConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
        Self::start_on(listener, shutdown, config)
    }

    pub fn start_on(
        listener: TcpListener,
        shutdown: &CancellationToken,
        config: SimConfig,
    ) -> Self {
        let port = listener.local_addr().expect("addr").port();
        let mut sim = Simulator::new(config);
        let submits = sim.record_submits();
        let stats = sim.stats();
        tokio::spawn(sim.run(listener, shutdown.clone()));
        Self {
            port,
            stats,
            submits,
        }
    }

    /// The next submit_sm the operator accepted.
    pub async fn next_submit(&mut self) -> ReceivedSubmit {
        tokio::time::timeout(WAIT, self.submits.recv())
            .await
            .expect("submit_sm at the operator in time")
            .expect("simulator running")
    }
}

/// An operator that answers submit_sm with hex ids (optionally with a receipt whose id
/// is in decimal) and lets the test push deliver_sm of its choosing.
pub struct Smsc {
    pub registry: Arc<SessionRegistry>,
    pub submits: Mutex<Vec<SubmitSm>>,
    next: AtomicU64,
    receipts: bool,
}

impl Authenticator for Smsc {
    async fn authenticate(&self, request: &BindRequest) -> Result<BindGrant, CommandStatus> {
        Ok(BindGrant {
            system_id: Arc::from(request.system_id.as_str()),
            ..BindGrant::default()
        })
    }
}

impl RequestHandler for Smsc {
    async fn handle(&self, _session: &Arc<SessionInfo>, request: SmppRequest) -> SmppResponse {
        let SmppRequest::SubmitSm(pdu) = request else {
            return SmppResponse::Error(CommandStatus::EsmeRsyserr);
        };
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1000;
        let wants = u8::from(pdu.registered_delivery) & 3 != 0;
        let (src, dst) = (pdu.source_addr.clone(), pdu.destination_addr.clone());
        self.submits.lock().push(*pdu);
        if self.receipts && wants {
            let registry = self.registry.clone();
            tokio::spawn(async move {
                let text = format!(
                    "id:{n} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:"
                );
                let receipt = DeliverSm::builder()
                    .source_addr(dst)
                    .destination_addr(src)
                    .esm_class(EsmClass::from(0x04))
                    .short_message(OctetString::from_string(text).unwrap_or_default())
                    .build();
                let _ = registry.deliver("smppclient", Outbound::new(Pdu::DeliverSm(receipt)));
            });
        }
        let id = COctetString::from_string(format!("00{n:X}")).unwrap_or_default();
        SmppResponse::Ok(Pdu::SubmitSmResp(
            SubmitSmResp::builder().message_id(id).build(),
        ))
    }
}

impl Smsc {
    pub fn new(receipts: bool) -> Arc<Self> {
        Arc::new(Self {
            registry: SessionRegistry::new(),
            submits: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
            receipts,
        })
    }

    pub fn serve(self: &Arc<Self>, listener: TcpListener, shutdown: &CancellationToken) {
        let server = Server::new(
            ServerConfig::default(),
            self.clone(),
            self.clone(),
            self.registry.clone(),
        );
        let stop = shutdown.clone();
        tokio::spawn(async move { server.serve(listener, stop).await });
    }

    /// Push a deliver_sm to the gateway's uplink (bound as `system_id`) and return the
    /// gateway's deliver_sm_resp status.
    pub async fn deliver(&self, system_id: &str, pdu: DeliverSm) -> CommandStatus {
        let (outbound, reply) = Outbound::with_reply(Pdu::DeliverSm(pdu));
        assert!(
            self.registry.deliver(system_id, outbound).is_ok(),
            "the gateway's uplink is bound"
        );
        match tokio::time::timeout(WAIT, reply).await {
            Ok(Ok(OutboundResult::Answered(status))) => status,
            other => panic!("no deliver_sm_resp: {other:?}"),
        }
    }
}

pub async fn start_smsc(shutdown: &CancellationToken, receipts: bool) -> (Arc<Smsc>, u16) {
    let smsc = Smsc::new(receipts);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smsc");
    let port = listener.local_addr().expect("addr").port();
    smsc.serve(listener, shutdown);
    (smsc, port)
}

/// A deliver_sm as an operator sends an MO.
pub fn mo(src: &str, dst: &str, esm_class: u8, data_coding: u8, body: Vec<u8>) -> DeliverSm {
    DeliverSm::builder()
        .source_addr(COctetString::from_string(src.into()).unwrap_or_default())
        .destination_addr(COctetString::from_string(dst.into()).unwrap_or_default())
        .esm_class(EsmClass::from(esm_class))
        .data_coding(DataCoding::from(data_coding))
        .short_message(OctetString::from_vec(body).unwrap_or_default())
        .build()
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

struct Esme {
    results: Mutex<mpsc::UnboundedSender<SubmitResult>>,
    inbound: Mutex<mpsc::UnboundedSender<DeliverSm>>,
    /// Takes deliver_sm but never answers them.
    silent: bool,
}

impl UplinkHandler for Esme {
    fn on_submit_result(&self, result: SubmitResult) {
        let _ = self.results.lock().send(result);
    }
    async fn on_inbound(&self, inbound: Inbound) -> CommandStatus {
        if let Inbound::DeliverSm(p) = inbound {
            let _ = self.inbound.lock().send(*p);
        }
        if self.silent {
            std::future::pending::<()>().await;
        }
        CommandStatus::EsmeRok
    }
}

/// A client application bound to the gateway as a transceiver.
pub struct Client {
    pub submit: mpsc::Sender<SubmitRequest>,
    pub results: mpsc::UnboundedReceiver<SubmitResult>,
    pub inbound: mpsc::UnboundedReceiver<DeliverSm>,
    pub next: u64,
}

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
    let (submit, source) = mpsc::channel(1024);
    let (rtx, results) = mpsc::unbounded_channel();
    let (itx, inbound) = mpsc::unbounded_channel();
    let config = UplinkConfig {
        id: format!("esme-{user}"),
        address: format!("127.0.0.1:{port}"),
        system_id: user.into(),
        password: password.into(),
        bind: BindKind::Transceiver,
        reconnect_on_failure_delay: Duration::from_millis(100),
        reconnect_on_loss_delay: Duration::from_millis(100),
        ..UplinkConfig::default()
    };
    let uplink = Uplink::new(
        config,
        source,
        Arc::new(Esme {
            results: Mutex::new(rtx),
            inbound: Mutex::new(itx),
            silent,
        }),
    );
    let stats = uplink.stats();
    tokio::spawn(uplink.run(shutdown.clone()));
    wait_until(|| stats.is_bound()).await;
    Client {
        submit,
        results,
        inbound,
        next: 0,
    }
}

pub fn submit_sm(src: &str, dst: &str, text: &[u8], rd: u8, coding: u8) -> SubmitSm {
    SubmitSm::builder()
        .source_addr(COctetString::from_string(src.into()).unwrap_or_default())
        .destination_addr(COctetString::from_string(dst.into()).unwrap_or_default())
        .registered_delivery(RegisteredDelivery::from(rd))
        .data_coding(DataCoding::from(coding))
        .short_message(OctetString::from_slice(text).unwrap_or_default())
        .build()
}

pub fn with_priority(mut pdu: SubmitSm, priority: u8) -> SubmitSm {
    pdu.priority_flag = PriorityFlag::from(priority);
    pdu
}

impl Client {
    /// Submit and wait for the gateway's answer.
    pub async fn send(&mut self, pdu: SubmitSm) -> SubmitOutcome {
        self.next += 1;
        self.submit
            .send(SubmitRequest::new(self.next, pdu))
            .await
            .expect("queue");
        let r = tokio::time::timeout(WAIT, self.results.recv())
            .await
            .expect("result in time")
            .expect("result");
        r.outcome
    }

    /// Submit and expect ESME_ROK; returns our message id.
    pub async fn accepted(&mut self, pdu: SubmitSm) -> String {
        match self.send(pdu).await {
            SubmitOutcome::Accepted { message_id } => message_id,
            other => panic!("refused: {other:?}"),
        }
    }

    pub async fn receive(&mut self) -> DeliverSm {
        tokio::time::timeout(WAIT, self.inbound.recv())
            .await
            .expect("deliver_sm in time")
            .expect("deliver_sm")
    }
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
