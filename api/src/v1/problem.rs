//! Errors as RFC 9457 problem documents (`application/problem+json`): `type`, `title`,
//! `status`, `detail`, and a stable machine `code` that clients switch on.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use proto::charging::ChargeError;
use router::Refusal;
use serde::Serialize;

/// One problem: the HTTP status, a stable code, a human detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{status} {code}: {detail}")]
pub struct Problem {
    #[serde(skip)]
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
    /// Seconds to wait before retrying (429 and some 503): also sent as `Retry-After`.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(400, code, detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(422, "invalid_request", detail)
    }

    /// The one answer for a missing, malformed, unknown, revoked or expired key (and a
    /// locked-out address): nothing tells them apart.
    pub fn unauthenticated() -> Self {
        Self::new(
            401,
            "unauthenticated",
            "a valid API key is required: Authorization: Bearer sk_live_…",
        )
    }

    pub fn forbidden_scope(scope: &str) -> Self {
        Self::new(
            403,
            "insufficient_scope",
            format!("this API key lacks the scope {scope}"),
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("no such {what}"))
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(%detail, "REST v1 internal error");
        Self::new(
            500,
            "internal_error",
            "internal error, see the gateway's log",
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(429, "rate_limited", "too many requests for this API key")
        }
    }

    fn title(&self) -> &'static str {
        StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error")
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "type": format!("https://smsgw.dev/problems/{}", self.code),
            "title": self.title(),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        })
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.to_json().to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A message refused by the pipeline, as a problem: the router's reason is the detail.
impl From<Refusal> for Problem {
    fn from(r: Refusal) -> Self {
        let (status, code) = match &r {
            Refusal::Authentication { .. } => (401, "unauthenticated"),
            Refusal::Authorization { .. } => (403, "not_authorized"),
            Refusal::ValueFilter { .. } => (403, "value_filter"),
            Refusal::Throughput => (429, "throughput_exceeded"),
            Refusal::Charging(ChargeError::InsufficientFunds) => (402, "insufficient_funds"),
            Refusal::Charging(ChargeError::SmsCountExhausted) => (402, "sms_count_exhausted"),
            Refusal::Charging(ChargeError::Suspended) => (403, "account_suspended"),
            Refusal::Charging(_) => (403, "charging_refused"),
            Refusal::ChargingBusy | Refusal::JournalBusy | Refusal::QueueFull => {
                (503, "temporarily_unavailable")
            }
            Refusal::NoRoute => (422, "no_route"),
            Refusal::NoBoundConnector => (503, "no_bound_connector"),
            Refusal::Enqueue | Refusal::Unknown(_) => (500, "internal_error"),
            Refusal::Intercepted { http_status, .. } => (*http_status, "intercepted"),
            Refusal::InterceptorFailed => (500, "interceptor_failed"),
            Refusal::InvalidArgument { .. } | Refusal::InvalidTlv { .. } => {
                (422, "invalid_request")
            }
        };
        let detail = match &r {
            Refusal::Charging(reason) => format!("billing refused the message: {reason}"),
            other => other.to_string(),
        };
        let mut p = Problem::new(status, code, detail);
        if status == 429 || status == 503 {
            p.retry_after = Some(1);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_have_stable_codes() {
        let p = Problem::from(Refusal::Charging(ChargeError::InsufficientFunds));
        assert_eq!((p.status, p.code), (402, "insufficient_funds"));
        let p = Problem::from(Refusal::NoRoute);
        assert_eq!((p.status, p.code), (422, "no_route"));
        let json = p.to_json();
        assert_eq!(json["status"], 422);
        assert_eq!(json["code"], "no_route");
        assert_eq!(json["title"], "Unprocessable Entity");
    }
}
