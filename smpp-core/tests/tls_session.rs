//! SMPP over TLS: our uplink binds to our server through the shared TLS set-up.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use smpp_core::{
    BindKind,
    client::{
        Inbound, SubmitOutcome, SubmitRequest, SubmitResult, Uplink, UplinkConfig, UplinkHandler,
    },
    rusmpp::CommandStatus,
    server::{Server, ServerConfig, SessionRegistry},
};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Results(Mutex<Vec<SubmitOutcome>>);

impl UplinkHandler for Results {
    fn on_submit_result(&self, result: SubmitResult) {
        self.0.lock().unwrap().push(result.outcome);
    }

    async fn on_inbound(&self, _inbound: Inbound) -> CommandStatus {
        CommandStatus::EsmeRok
    }
}

#[tokio::test]
async fn an_uplink_binds_and_submits_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        generated.signing_key.serialize_pem(),
    )
    .unwrap();
    let server_tls = tls::ServerTls::load(tls::CertFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    })
    .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(TestHandler {
        release: Default::default(),
        bound: Default::default(),
        started: Default::default(),
    });
    let server = Server::new(
        ServerConfig::default(),
        handler.clone(),
        handler,
        SessionRegistry::new(),
    );
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move { server.serve_tls(listener, server_tls.acceptor, token).await });

    let client_tls = tls::ClientTls::new("localhost", Some(&dir.path().join("cert.pem"))).unwrap();
    let (tx, rx) = mpsc::channel(8);
    let results = Arc::new(Results::default());
    let uplink = Uplink::new(
        UplinkConfig {
            address: addr.to_string(),
            system_id: "esme".into(),
            password: "secret".into(),
            bind: BindKind::Transceiver,
            tls: Some(client_tls),
            ..UplinkConfig::default()
        },
        rx,
        results.clone(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(uplink.run(stop.clone()));
    tx.send(SubmitRequest::new(1, submit_sm("998901234567")))
        .await
        .unwrap();
    for _ in 0..1000 {
        if !results.0.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        results.0.lock().unwrap().as_slice(),
        &[SubmitOutcome::Accepted {
            message_id: "id-998901234567".into()
        }]
    );
    stop.cancel();
    task.await.unwrap();
    shutdown.cancel();
}
