//! OpenTelemetry traces over OTLP/gRPC, bridged from `tracing` spans.
//!
//! Off unless `[telemetry] otlp_endpoint` is set. The message path opens one INFO span
//! per message (`http.request` and/or `message.submit`, with `message_id`) and DEBUG
//! spans for its steps (`route`, `reserve`, `journal_queue`; later `uplink.submit_result`
//! and `receipt`, joined to the submit's trace).
//!
//! Sampling is decided at the head, in the layer's filter ([`HeadSampler`]): a trace's
//! root is kept with probability `sample_ratio`, and a span is created only inside a
//! kept trace. An unsampled message then creates no span at all (the layer never sees
//! it), which is what keeps tracing's cost near zero at 1% (a sampler in the SDK decides
//! only after the spans were built: 31% of throughput at 1%, measured). The logs take
//! only what `RUST_LOG` asks for, so without OTLP the step spans cost nothing.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler, SdkTracer, SdkTracerProvider},
};
use serde::Deserialize;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::{
    Layer,
    layer::{Context, Filter},
    registry::LookupSpan,
};

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

/// Spans that start a message's trace.
const ROOTS: [&str; 2] = ["http.request", "message.submit"];

/// Spans that join a trace kept earlier (their parent is set after they are made):
/// the code makes them only for a message whose submit was traced.
const ADOPTED: [&str; 2] = ["uplink.submit_result", "receipt"];

/// Head sampling as the OTLP layer's filter: a root span (see [`ROOTS`]) is kept with
/// probability `ratio`; any other span or event of smsgw's crates only inside a kept
/// span (or when it is [`ADOPTED`]). The long-lived `smpp_session` and `uplink` spans
/// are never kept, so each message is a trace of its own.
pub struct HeadSampler {
    ratio: f64,
}

impl HeadSampler {
    pub fn new(ratio: f64) -> Self {
        Self { ratio }
    }
}

impl<S> Filter<S> for HeadSampler
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        let target = meta.target();
        let ours = TRACED_CRATES.iter().any(|c| {
            target
                .strip_prefix(c)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        });
        if !ours || *meta.level() > Level::DEBUG {
            return false;
        }
        // The per-layer context sees only the spans this filter kept.
        if cx.lookup_current().is_some() {
            return true;
        }
        if meta.is_event() {
            return false;
        }
        let name = meta.name();
        if ADOPTED.contains(&name) {
            return true;
        }
        ROOTS.contains(&name) && self.ratio > 0.0 && rand::random::<f64>() < self.ratio
    }
}

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
        // Sampled already: the spans that reach the SDK are the kept ones.
        .with_sampler(Sampler::AlwaysOn)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let tracer: SdkTracer = provider.tracer("smsgw");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(HeadSampler::new(ratio));
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

#[cfg(test)]
mod sampling_tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Records the names of the spans it is shown.
    #[derive(Clone, Default)]
    struct Names(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Names {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: Context<'_, S>,
        ) {
            self.0
                .lock()
                .unwrap()
                .push(attrs.metadata().name().to_owned());
        }
    }

    fn traced(ratio: f64) -> Vec<String> {
        let names = Names::default();
        let subscriber =
            tracing_subscriber::registry().with(names.clone().with_filter(HeadSampler::new(ratio)));
        tracing::subscriber::with_default(subscriber, || {
            let session = tracing::info_span!(target: "smpp_core", "smpp_session");
            let _session = session.enter();
            // A step outside any kept message: never a root of its own.
            tracing::debug_span!(target: "router", "route").in_scope(|| {});
            let submit = tracing::info_span!(target: "router", "message.submit");
            submit.in_scope(|| {
                tracing::debug_span!(target: "router", "reserve").in_scope(|| {});
            });
            // Another crate's spans are not ours to export.
            tracing::info_span!(target: "hyper", "message.submit").in_scope(|| {});
        });
        names.0.lock().unwrap().clone()
    }

    #[test]
    fn a_kept_message_is_whole_and_an_unsampled_one_makes_no_span() {
        assert_eq!(traced(1.0), ["message.submit", "reserve"]);
        assert!(traced(0.0).is_empty());
        // At 1 in 2, about half the messages, each whole or not at all.
        let runs: Vec<usize> = (0..400).map(|_| traced(0.5).len()).collect();
        assert!(runs.iter().all(|n| *n == 0 || *n == 2), "{runs:?}");
        let kept = runs.iter().filter(|n| **n == 2).count();
        assert!((120..280).contains(&kept), "{kept} of 400 at 0.5");
    }
}
