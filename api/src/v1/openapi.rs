//! The OpenAPI 3.1 description of `/api/v1`, generated from the handlers' annotations
//! and the request types (utoipa), served at `/api/v1/openapi.json`, and a bundled
//! reference page at `/api/v1/docs` that renders it without loading anything from
//! elsewhere.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

/// An error (RFC 9457), `application/problem+json`.
#[derive(Serialize, ToSchema)]
pub struct ProblemDoc {
    #[schema(example = "https://smsgw.dev/problems/insufficient_funds")]
    pub r#type: String,
    #[schema(example = "Payment Required")]
    pub title: String,
    #[schema(example = 402)]
    pub status: u16,
    /// Stable machine code: unauthenticated, insufficient_scope, ip_not_allowed,
    /// rate_limited, invalid_request, malformed_json, not_found, insufficient_funds,
    /// no_route, idempotency_key_reused, idempotency_in_progress, webhook_required…
    #[schema(example = "insufficient_funds")]
    pub code: String,
    #[schema(example = "billing refused the message: insufficient funds")]
    pub detail: String,
}

/// One recipient's outcome in a send's answer.
#[derive(Serialize, ToSchema)]
pub struct SentMessage {
    /// Our message id (absent when rejected).
    pub id: Option<String>,
    pub to: String,
    /// `queued` or `rejected`.
    pub status: String,
    pub parts: Option<u32>,
    /// Decimal string in the account's currency.
    #[schema(example = "0.020000")]
    pub cost: Option<String>,
    pub currency: Option<String>,
    /// Why this recipient was rejected.
    pub error: Option<ErrorDetail>,
}

/// A rejected recipient's reason: a problem's `code` and `detail`.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "no_route")]
    pub code: String,
    pub detail: String,
}

/// The answer to `POST /api/v1/sms/send` (202).
#[derive(Serialize, ToSchema)]
pub struct SendAnswer {
    pub messages: Vec<SentMessage>,
    /// `gsm7` or `ucs2`.
    pub encoding: String,
    /// Parts per message.
    pub parts: u32,
    #[schema(example = "0.040000")]
    pub total_cost: String,
    pub currency: String,
    pub client_reference: Option<String>,
}

/// A message's state.
#[derive(Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub to: String,
    pub from: String,
    /// queued, sent, delivered, failed, expired or rejected.
    pub status: String,
    pub encoding: String,
    pub parts: u32,
    pub cost: String,
    pub currency: String,
    pub client_reference: Option<String>,
    pub connector: Option<String>,
    pub error_code: Option<String>,
    pub created_at: String,
    pub scheduled_at: Option<String>,
    pub sent_at: Option<String>,
    pub done_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    pub data: Vec<MessageView>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    pub user: String,
    /// Null for an account without a balance quota.
    pub balance: Option<String>,
    pub balance_micros: Option<i64>,
    pub currency: String,
    pub sms_count: Option<i64>,
    pub unlimited: bool,
}

/// An API key (its secret only in the answer that created it).
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    #[schema(example = "sk_live_3f9a1c")]
    pub prefix: String,
    pub user: String,
    pub scopes: Vec<String>,
    pub allowed_cidrs: Vec<String>,
    pub rate_limit: u32,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// Only when created: shown once.
    pub secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret_prefix: String,
    pub created_at: String,
    /// Only when created: shown once. Verify `Smsgw-Signature` with it.
    pub secret: Option<String>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_live_…")
                    .description(Some("An API key: `Authorization: Bearer sk_live_…`"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "smsgw REST API",
        version = "1",
        description = "Send SMS, follow their state, read usage and CDRs, manage API keys \
            and webhooks. Authenticate with `Authorization: Bearer sk_live_…`; errors are \
            RFC 9457 problem documents with a stable `code`; money is a decimal string."
    ),
    paths(
        super::sms::send,
        super::sms::get_one,
        super::sms::list,
        super::account::balance,
        super::cdr::usage,
        super::cdr::export,
        super::account::create_key,
        super::account::list_keys,
        super::account::revoke_key,
        super::webhooks::create,
        super::webhooks::list,
        super::webhooks::delete,
        super::webhooks::deliveries,
        super::ws::dlr,
        openapi_json,
        docs,
    ),
    components(schemas(
        ProblemDoc,
        SendAnswer,
        SentMessage,
        ErrorDetail,
        MessageView,
        MessagePage,
        BalanceView,
        KeyView,
        WebhookView,
        super::sms::SendRequest,
        super::account::CreateKey,
        super::webhooks::CreateWebhook,
    )),
    modifiers(&Security),
    security(("api_key" = [])),
    tags(
        (name = "sms", description = "Sending and message state"),
        (name = "account", description = "Balance, usage, CDRs, API keys"),
        (name = "webhooks", description = "Signed event deliveries"),
        (name = "notifications", description = "Live receipts over WebSocket"),
        (name = "meta", description = "This description"),
    )
)]
pub struct ApiDoc;

/// The description as JSON.
pub fn spec_json() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

/// The OpenAPI 3.1 description of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapiJson", tag = "meta", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    let mut response = spec_json().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A reference page rendering the description (self-contained: no CDN).
#[utoipa::path(get, path = "/api/v1/docs", operation_id = "docsPage", tag = "meta", security(()),
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
pub async fn docs() -> Response {
    let mut response = DOCS_HTML.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

const DOCS_HTML: &str = include_str!("docs.html");
