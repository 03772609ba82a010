//! Joining a message's later steps to the trace of its submit. The operator answers,
//! and later sends the receipt, long after the submit's spans have closed, on the
//! uplink's task; so each part keeps the OpenTelemetry context of the submit that
//! accepted it (in memory: in flight, then in the receipt id map), and the spans of the
//! answer and of the receipt take it as their parent. Without an OpenTelemetry layer
//! nothing is kept. A receipt matched after a restart (its entry rebuilt from the
//! journal) starts a trace of its own.

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span context of a message's submit, if it is being traced (`Default`: none).
#[derive(Debug, Clone, Default)]
pub struct Parent(Option<Box<SpanContext>>);

impl Parent {
    /// The current span's OpenTelemetry context (sampled or not, as long as it is real).
    pub(crate) fn current() -> Self {
        let context = tracing::Span::current().context();
        let span = context.span();
        let parent = span.span_context();
        Self(parent.is_valid().then(|| Box::new(parent.clone())))
    }

    /// Whether the submit was traced (its later spans are worth making).
    pub(crate) fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Makes `span` (not yet entered) a child of the submit's span.
    pub(crate) fn adopt(&self, span: &tracing::Span) {
        if let Some(parent) = &self.0 {
            let context =
                opentelemetry::Context::new().with_remote_span_context((**parent).clone());
            let _ = span.set_parent(context);
        }
    }
}
