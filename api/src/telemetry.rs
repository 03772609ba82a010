//! OpenTelemetry traces over OTLP/gRPC, bridged from `tracing` spans.
//!
//! Off unless `[telemetry] otlp_endpoint` is set. Sampling is parent-based with a trace-id
//! ratio (`sample_ratio`), so a caller's sampled trace stays whole and our own roots are
//! kept at that ratio. The message path opens one INFO span per message
//! (`message.submit`, with `message_id`) and DEBUG spans for its steps (`route`,
//! `reserve`, `journal_queue`); the OTLP layer takes DEBUG spans of smsgw's crates, the
//! logs only what `RUST_LOG` asks for, so without OTLP the step spans cost nothing.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler, SdkTracer, SdkTracerProvider},
};
use serde::Deserialize;
use tracing::{Level, Subscriber};
use tracing_subscriber::{Layer, filter::Targets, registry::LookupSpan};

/// `[telemetry]` in smsgw.toml.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`. Unset: no traces.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces kept, 0.0 to 1.0.
    pub sample_ratio: f64,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            sample_ratio: 1.0,
            service_name: "smsgw".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("[telemetry] sample_ratio must be between 0 and 1, got {0}")]
    SampleRatio(f64),
    #[error("[telemetry] cannot build the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// Keeps the exporter running; dropping it flushes and stops it.
pub struct TelemetryGuard(SdkTracerProvider);

impl TelemetryGuard {
    /// Export the spans ended so far (blocks: call it from a blocking thread in async code).
    pub fn flush(&self) {
        let _ = self.0.force_flush();
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// The crates whose spans are exported, down to DEBUG (the message steps).
const TRACED_CRATES: [&str; 5] = ["router", "api", "smpp_core", "billing", "smsgw"];

/// The tracing layer that exports spans to `otlp_endpoint`, or `None` when it is unset.
/// Must be called inside a Tokio runtime (the gRPC client needs one).
pub fn layer<S>(
    config: &TelemetryConfig,
) -> Result<Option<(impl Layer<S> + use<S>, TelemetryGuard)>, TelemetryError>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let Some(endpoint) = config.otlp_endpoint.as_deref() else {
        return Ok(None);
    };
    let ratio = config.sample_ratio;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(TelemetryError::SampleRatio(ratio));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let tracer: SdkTracer = provider.tracer("smsgw");
    let targets = TRACED_CRATES
        .iter()
        .fold(Targets::new().with_default(Level::INFO), |t, name| {
            t.with_target(*name, Level::DEBUG)
        });
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(targets);
    Ok(Some((layer, TelemetryGuard(provider))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_an_endpoint_and_ratio_is_checked() {
        let off = layer::<tracing_subscriber::Registry>(&TelemetryConfig::default());
        assert!(matches!(off, Ok(None)));
        let bad = TelemetryConfig {
            otlp_endpoint: Some("http://127.0.0.1:4317".into()),
            sample_ratio: 1.5,
            ..TelemetryConfig::default()
        };
        let refused = layer::<tracing_subscriber::Registry>(&bad);
        assert!(matches!(refused, Err(TelemetryError::SampleRatio(_))));
        let parsed: TelemetryConfig =
            toml::from_str("otlp_endpoint = \"http://c:4317\"\nsample_ratio = 0.1")
                .expect("telemetry toml");
        assert_eq!(parsed.sample_ratio, 0.1);
    }
}
