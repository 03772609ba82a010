//! A client application bound over SMPP with smpp-core's client: it submits, reports
//! each answer, and takes deliver_sm (answered ESME_ROK, or never when silent).

use std::{sync::Arc, time::Duration};

use parking_lot::Mutex;
use smpp_core::{
    BindKind,
    client::{
        Inbound, SubmitOutcome, SubmitRequest, SubmitResult, Uplink, UplinkConfig, UplinkHandler,
    },
    rusmpp::{
        CommandStatus,
        pdus::{DeliverSm, SubmitSm},
    },
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{pdu::submit_sm, wait::wait_for};

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

/// How the client binds.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Submits queued ahead of the window.
    pub queue: usize,
    /// Takes deliver_sm (they show in `inbound`) but never answers them.
    pub silent: bool,
    /// Longest wait for the bind, and for each answer and deliver_sm.
    pub wait: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            queue: 1024,
            silent: false,
            wait: crate::WAIT,
        }
    }
}

/// A client application bound to the gateway as a transceiver.
pub struct Client {
    pub submit: mpsc::Sender<SubmitRequest>,
    pub results: mpsc::UnboundedReceiver<SubmitResult>,
    pub inbound: mpsc::UnboundedReceiver<DeliverSm>,
    pub next: u64,
    wait: Duration,
}

impl Client {
    /// Bind to 127.0.0.1:`port` as `user`, reconnecting quickly; returns once bound.
    pub async fn connect(
        shutdown: &CancellationToken,
        port: u16,
        user: &str,
        password: &str,
        config: ClientConfig,
    ) -> Self {
        let (submit, source) = mpsc::channel(config.queue);
        let (rtx, results) = mpsc::unbounded_channel();
        let (itx, inbound) = mpsc::unbounded_channel();
        let uplink_config = UplinkConfig {
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
            uplink_config,
            source,
            Arc::new(Esme {
                results: Mutex::new(rtx),
                inbound: Mutex::new(itx),
                silent: config.silent,
            }),
        );
        let stats = uplink.stats();
        tokio::spawn(uplink.run(shutdown.clone()));
        wait_for("the client's bind", config.wait, || stats.is_bound()).await;
        Self {
            submit,
            results,
            inbound,
            next: 0,
            wait: config.wait,
        }
    }

    /// Submit and wait for the gateway's answer.
    pub async fn send(&mut self, pdu: SubmitSm) -> SubmitOutcome {
        self.next += 1;
        self.submit
            .send(SubmitRequest::new(self.next, pdu))
            .await
            .expect("queue");
        let r = tokio::time::timeout(self.wait, self.results.recv())
            .await
            .expect("result in time")
            .expect("result");
        r.outcome
    }

    /// Submit `text` from `BANK` to `dst` and wait for the answer.
    pub async fn send_text(&mut self, dst: &str, text: &[u8]) -> SubmitOutcome {
        self.send(submit_sm("BANK", dst, text, 0, 0)).await
    }

    /// Submit and expect ESME_ROK; returns our message id.
    pub async fn accepted(&mut self, pdu: SubmitSm) -> String {
        match self.send(pdu).await {
            SubmitOutcome::Accepted { message_id } => message_id,
            other => panic!("refused: {other:?}"),
        }
    }

    pub async fn receive(&mut self) -> DeliverSm {
        tokio::time::timeout(self.wait, self.inbound.recv())
            .await
            .expect("deliver_sm in time")
            .expect("deliver_sm")
    }
}
