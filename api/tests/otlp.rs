//! OpenTelemetry export: a message sent over HTTP arrives at an OTLP/gRPC receiver as a
//! trace holding the HTTP request, the message's span with its id, the operator's
//! answer to its submit_sm and the operator's receipt (both on the uplink's task,
//! joined to the submit's trace).

mod common;

use std::sync::Arc;

use api::telemetry::{TelemetryConfig, layer};
use common::{Hook, Setup, WAIT, success_id};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    trace::v1::Span,
};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};
use tracing_subscriber::layer::SubscriberExt as _;

/// A collector that keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.0.lock().extend(spans);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .and_then(|v| match v {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_span_with_its_id_reaches_the_collector() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let receiver = Receiver::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let config = TelemetryConfig {
        otlp_endpoint: Some(format!("http://127.0.0.1:{port}")),
        sample_ratio: 1.0,
        ..TelemetryConfig::default()
    };
    let (otel, guard) = layer(&config).expect("exporter").expect("enabled");
    // This test binary's only subscriber: the gateway's tasks run on other threads.
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel))
        .expect("first subscriber");

    let mut s = Setup::start().await;
    // dlr-level 2: the operator is asked for a receipt.
    let hook = Hook::start(&s.shutdown).await;
    let reply = s
        .get(&format!(
            "/send?username=bank&password=pw&to=255700000001&content=traced&dlr-url={}/dlr&dlr-level=2",
            hook.base
        ))
        .await;
    let id = success_id(&reply);
    s.next_submit().await;

    let guard = Arc::new(guard);
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let flush = guard.clone();
            let _ = tokio::task::spawn_blocking(move || flush.flush()).await;
            let spans = receiver.0.lock().clone();
            // The operator's answer and receipt come after the submit's spans are
            // exported.
            let in_trace = |message: &Span, name: &str| {
                spans
                    .iter()
                    .any(|s| s.name == name && s.trace_id == message.trace_id)
            };
            if let Some(message) = spans.iter().find(|s| {
                s.name == "message.submit" && attribute(s, "message_id") == Some(id.as_str())
            }) && in_trace(message, "uplink.submit_result")
                && in_trace(message, "receipt")
            {
                break (message.clone(), spans);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let (message, spans) = found.unwrap_or_else(|_| {
        let names: Vec<String> = receiver.0.lock().iter().map(|s| s.name.clone()).collect();
        panic!(
            "the message's trace, with the operator's answer and receipt, at the collector in time: {names:?}"
        )
    });
    assert_eq!(message.name, "message.submit");
    assert_eq!(attribute(&message, "user"), Some("u1"));
    let trace: Vec<&str> = spans
        .iter()
        .filter(|s| s.trace_id == message.trace_id)
        .map(|s| s.name.as_str())
        .collect();
    for step in [
        "http.request",
        "route",
        "reserve",
        "journal_queue",
        "uplink.submit_result",
        "receipt",
    ] {
        assert!(trace.contains(&step), "{step} not in the trace: {trace:?}");
    }
}
