//! TLS towards operators and callback servers, with a CA of the test's own: an uplink
//! with `tls = true` binds to a TLS SMSC whose certificate it verifies (and refuses one
//! that does not carry the expected name); DLR callbacks reach an https server whose CA
//! `http_ca_file` names, and only then.

mod common;

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use common::{
    Shutdown, Sim, connector_toml, http_message, smsc_config, start_gateway, start_smsc, wait_until,
};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use router::{DlrMethod, DlrRequest, Gateway, credentials::Requested};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A CA and a server certificate for `localhost` it signed, as PEM files.
struct TestPki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server: tls::CertFiles,
}

impl TestPki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca cert");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("leaf")
            .signed_by(&leaf_key, &ca)
            .expect("leaf cert");
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), ca.pem()).expect("write");
        std::fs::write(path("server.pem"), leaf.pem()).expect("write");
        std::fs::write(path("server.key"), leaf_key.serialize_pem()).expect("write");
        Self {
            ca: path("ca.pem"),
            server: tls::CertFiles {
                cert: path("server.pem"),
                key: path("server.key"),
            },
            _dir: dir,
        }
    }

    fn acceptor(&self) -> tls::TlsAcceptor {
        tls::ServerTls::load(self.server.clone())
            .expect("server TLS")
            .acceptor
    }
}

const USERS: &str = "[[groups]]\ngid = \"g\"\n[[users]]\nuid = \"u1\"\nusername = \"bank\"\n\
    password = \"pw\"\ngid = \"g\"\n";

/// An SMSC that only speaks TLS, with the test CA's certificate for `localhost`.
async fn tls_smsc(shutdown: &CancellationToken, pki: &TestPki) -> (Sim, u16) {
    let smsc = Sim::start_tls(shutdown, smsc_config(false), pki.acceptor()).await;
    let port = smsc.port;
    (smsc, port)
}

async fn tls_gateway(
    shutdown: &CancellationToken,
    pki: &TestPki,
    port: u16,
    server_name: &str,
) -> Arc<Gateway> {
    let config = format!(
        "{SETTINGS}{USERS}[[connectors]]\ncid = \"op1\"\nusername = \"op1\"\nport = {port}\n\
         con_fail_delay_secs = 0.1\ncon_loss_delay_secs = 0.1\n\
         tls = true\ntls_ca_file = {ca:?}\ntls_server_name = \"{server_name}\"\n\
         [[mt_routes]]\norder = 0\ntype = \"DefaultRoute\"\nconnector = \"smppc(op1)\"\n",
        ca = pki.ca.display().to_string(),
    );
    start_gateway(shutdown, &config).await.0
}

const SETTINGS: &str = "[settings]\nhttp_retry_delay_ms = 50\nhttp_max_retries = 1\n";

async fn submit(gw: &Gateway, text: &[u8]) {
    let user = gw.authenticate("bank", "pw").await.expect("user");
    gw.submit(&user, http_message(text), Default::default())
        .await
        .expect("accepted");
}

#[tokio::test]
async fn an_uplink_binds_over_tls_and_its_submit_reaches_the_smsc() {
    let shutdown = Shutdown::new();
    let pki = TestPki::new();
    let (smsc, port) = tls_smsc(&shutdown, &pki).await;
    let gw = tls_gateway(&shutdown, &pki, port, "localhost").await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    submit(&gw, b"over tls").await;
    wait_until(|| !smsc.submits.is_empty()).await;
    let got = smsc.submits.pdus()[0].short_message().as_ref().to_vec();
    assert_eq!(got, b"over tls");
}

#[tokio::test]
async fn an_uplink_does_not_bind_to_a_certificate_for_another_name() {
    let shutdown = Shutdown::new();
    let pki = TestPki::new();
    let (smsc, port) = tls_smsc(&shutdown, &pki).await;
    let gw = tls_gateway(&shutdown, &pki, port, "smsc.example.net").await;
    // Several reconnect attempts (0.1 s apart) all fail verification.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!gw.connector("op1").is_some_and(|c| c.is_bound()));
    assert!(smsc.registry.deliver("op1", probe()).is_err(), "not bound");
}

/// Anything to offer the SMSC's registry: refused when the uplink never bound.
fn probe() -> smpp_core::server::Outbound {
    smpp_core::server::Outbound::new(smpp_core::rusmpp::Pdu::EnquireLink)
}

/// An https server answering every request `ACK/Jasmin`; records each request's
/// path and body.
async fn https_hook(
    shutdown: &CancellationToken,
    pki: &TestPki,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hook");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop, acceptor, log) = (shutdown.clone(), pki.acceptor(), seen.clone());
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await?.to_bytes();
                        log.lock()
                            .push(format!("{path}?{}", String::from_utf8_lossy(&body)));
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(
                            b"ACK/Jasmin",
                        ))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("https://localhost:{port}"), seen)
}

/// A gateway on a plain SMSC whose message asks a level-1 DLR at `url`.
async fn dlr_to(shutdown: &CancellationToken, settings: &str, url: String) {
    let (_smsc, port) = start_smsc(shutdown, false).await;
    let config = format!(
        "{settings}{USERS}{}[[mt_routes]]\norder = 0\ntype = \"DefaultRoute\"\n\
         connector = \"smppc(op1)\"\n",
        connector_toml("op1", "op1", port)
    );
    let (gw, _) = start_gateway(shutdown, &config).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let user = gw.authenticate("bank", "pw").await.expect("user");
    let mut msg = http_message(b"dlr over https");
    msg.dlr = Some(DlrRequest {
        level: 1,
        url,
        method: DlrMethod::Post,
    });
    let requested = Requested {
        dlr_level: true,
        dlr_method: true,
        ..Requested::default()
    };
    gw.submit(&user, msg, requested).await.expect("accepted");
}

#[tokio::test]
async fn a_dlr_callback_reaches_an_https_server_of_the_configured_ca() {
    let shutdown = Shutdown::new();
    let pki = TestPki::new();
    let (base, seen) = https_hook(&shutdown, &pki).await;
    let settings = format!(
        "{SETTINGS}http_ca_file = {:?}\n",
        pki.ca.display().to_string()
    );
    dlr_to(&shutdown, &settings, format!("{base}/dlr")).await;
    wait_until(|| !seen.lock().is_empty()).await;
    let got = seen.lock()[0].clone();
    assert!(got.starts_with("/dlr?id="), "{got}");
    assert!(got.contains("message_status=ESME_ROK"), "{got}");
}

#[tokio::test]
async fn an_https_server_of_an_unknown_ca_gets_no_callback() {
    let shutdown = Shutdown::new();
    let pki = TestPki::new();
    let (base, seen) = https_hook(&shutdown, &pki).await;
    dlr_to(&shutdown, SETTINGS, format!("{base}/dlr")).await;
    // Both attempts (50 ms apart) fail the handshake.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(seen.lock().is_empty());
}
