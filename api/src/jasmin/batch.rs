//! `POST /secure/sendbatch` (docs/jasmin-compat.md §1.8): many messages in one request,
//! each sent through `/send`'s path, with optional callbacks per message and a delayed
//! start. The answer comes at once: `{"data": {"batchId", "messageCount"[, "scheduled"]}}`.
//!
//! As Jasmin: `globals` fill what a message leaves out, `_` in keys reads as `-`, a list
//! of `to` fans out, a message without `to` or content is skipped, `schedule_at` is
//! `YYYY-MM-DD hh:mm:ss` (local time; the past is refused with 412) or `<n>s`. Callbacks
//! are one GET each to `callback_url` (accepted) or `errback_url` (refused) with `batchId`,
//! `to`, `status` (1 or 0) and `statusText`.
//!
//! Better than Jasmin: the credentials are checked before the batch is taken (Jasmin
//! accepts any batch and fails every message later), and the messages go straight into
//! the pipeline instead of a Celery queue that could hold them unsent. A batch whose
//! start is still ahead waits in memory: a restart before its start loses it (README).

use std::{net::SocketAddr, time::Duration};

use axum::{
    body::Bytes, extract::ConnectInfo, extract::State, http::HeaderMap, response::Response,
};
use chrono::{Local, NaiveDateTime, TimeZone};
use hyper::Method;
use router::callbacks::Callback;
use serde_json::{Map, Value, json};

use super::{
    Api, Params, json_reply,
    rest::{credentials, falcon_error, rest_key, with_credentials},
    send,
};

/// Callbacks carry the user agent of the HTTP client Jasmin's workers use.
const BATCH_AGENT: &str = "smsgw sendbatch";

/// Messages of one batch sent per second (Jasmin paces each worker; here one task per
/// batch keeps a large batch from starving interactive sends).
const BATCH_RATE: u32 = 500;

/// Why `schedule_at` is refused (412, with Jasmin's titles).
#[derive(Debug)]
enum BadSchedule {
    Past(String),
    Unparseable(String),
}

impl BadSchedule {
    fn response(self) -> Response {
        match self {
            Self::Past(text) => falcon_error(
                412,
                "Cannot schedule batch in past date",
                &format!("Invalid past date given: {text}"),
            ),
            Self::Unparseable(text) => falcon_error(
                412,
                "Cannot parse scheduled_at value",
                &format!(
                    "Got unknown format: {text}, correct formats are 'YYYY-MM-DD mm:hh:ss' or \
                     number of seconds, c.f. http://docs.jasminsms.com/en/latest/apis/rest"
                ),
            ),
        }
    }
}

/// Seconds until `schedule_at`.
fn countdown(schedule_at: Option<&Value>) -> Result<u64, BadSchedule> {
    let Some(value) = schedule_at.filter(|v| !v.is_null()) else {
        return Ok(0);
    };
    let text = value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string());
    if let Ok(at) = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S") {
        let Some(at) = Local.from_local_datetime(&at).earliest() else {
            return Err(BadSchedule::Past(text));
        };
        let seconds = (at - Local::now()).num_seconds();
        if seconds < 0 {
            return Err(BadSchedule::Past(text));
        }
        return Ok(seconds as u64);
    }
    match text.strip_suffix('s').and_then(|n| n.parse::<u64>().ok()) {
        Some(seconds) => Ok(seconds),
        None => Err(BadSchedule::Unparseable(text)),
    }
}

/// One message of the batch: its parameters (globals under it) and its destination.
struct BatchMessage {
    params: Map<String, Value>,
    to: String,
}

/// The batch's messages, fanned out per destination; messages without `to` or content
/// are skipped as Jasmin skips them.
fn expand(body: &Map<String, Value>) -> Vec<BatchMessage> {
    let globals = body.get("globals").and_then(Value::as_object);
    let mut out = Vec::new();
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return out;
    };
    for message in messages.iter().filter_map(Value::as_object) {
        let mut params = globals.cloned().unwrap_or_default();
        params.extend(message.iter().map(|(k, v)| (k.clone(), v.clone())));
        let renamed: Map<String, Value> =
            params.into_iter().map(|(k, v)| (rest_key(&k), v)).collect();
        let has_content = renamed.contains_key("content") || renamed.contains_key("hex-content");
        let targets = match renamed.get("to") {
            Some(Value::Array(list)) => list.iter().map(scalar).collect(),
            Some(Value::Null) | None => Vec::new(),
            Some(one) => vec![scalar(one)],
        };
        if !has_content || targets.is_empty() {
            continue;
        }
        for to in targets {
            let mut params = renamed.clone();
            params.remove("to");
            out.push(BatchMessage { params, to });
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

pub(super) async fn send_batch(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let credentials = match credentials(&headers) {
        Ok(c) => c,
        Err(refused) => return refused.response(),
    };
    let Ok(Value::Object(body_map)) = serde_json::from_slice::<Value>(&body) else {
        return falcon_error(
            412,
            "Cannot parse JSON data",
            &format!(
                "Got unparseable json data: {}",
                String::from_utf8_lossy(&body)
            ),
        );
    };
    let config = body_map
        .get("batch_config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let countdown = match countdown(config.get("schedule_at")) {
        Ok(seconds) => seconds,
        Err(bad) => return bad.response(),
    };
    let probe = with_credentials(Params::default(), credentials.clone());
    if let Err(f) = api.caller(peer).authenticate(&probe).await {
        return json_reply(
            f.status,
            &json!({ "message": format!("Error \"{}", f.text) }),
        );
    }
    let messages = expand(&body_map);
    let batch_id = uuid::Uuid::new_v4().to_string();
    let mut data = json!({ "batchId": batch_id, "messageCount": messages.len() });
    if countdown > 0 {
        data["scheduled"] = json!(format!("{countdown}s"));
    }
    let url = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_owned);
    let run = BatchRun {
        api,
        peer,
        credentials,
        batch_id,
        callback_url: url("callback_url"),
        errback_url: url("errback_url"),
    };
    tokio::spawn(run.run(messages, Duration::from_secs(countdown)));
    json_reply(200, &json!({ "data": data }))
}

struct BatchRun {
    api: Api,
    peer: SocketAddr,
    credentials: (String, String),
    batch_id: String,
    callback_url: Option<String>,
    errback_url: Option<String>,
}

impl BatchRun {
    async fn run(self, messages: Vec<BatchMessage>, start_in: Duration) {
        tokio::time::sleep(start_in).await;
        let mut pace = tokio::time::interval(Duration::from_secs(1) / BATCH_RATE);
        for message in messages {
            pace.tick().await;
            let mut params = Params::from_json_object(&message.params, str::to_owned);
            params.set_text("to", &message.to);
            let args = with_credentials(params, self.credentials.clone());
            let caller = self.api.caller(self.peer);
            let (url, status, text) = match send::send(&caller, args).await {
                Ok(id) => (&self.callback_url, 1, format!("Success \"{id}\"")),
                Err(f) => (
                    &self.errback_url,
                    0,
                    format!("HTTPAPI error: Error \"{}", f.text),
                ),
            };
            if let Some(url) = url {
                let callback = Callback {
                    url: url.clone(),
                    method: Method::GET,
                    params: vec![
                        ("batchId", self.batch_id.clone().into_bytes()),
                        ("to", message.to.clone().into_bytes()),
                        ("status", status.to_string().into_bytes()),
                        ("statusText", text.into_bytes()),
                    ],
                    user_agent: BATCH_AGENT,
                };
                // Jasmin calls back once, without waiting for an acknowledgement.
                let thrower = self.api.caller(self.peer).thrower().clone();
                tokio::spawn(async move {
                    thrower.attempt(&callback).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globals_fill_messages_and_lists_fan_out() {
        let body = json!({
            "globals": {"from": "BANK", "dlr_level": 2},
            "messages": [
                {"to": ["1", "2"], "content": "hi"},
                {"to": "3", "hex_content": "6869", "from": "SHOP"},
                {"content": "no destination"},
                {"to": "4"}
            ]
        });
        let Value::Object(map) = body else { panic!() };
        let out = expand(&map);
        let got: Vec<(&str, Option<&Value>, bool)> = out
            .iter()
            .map(|m| {
                (
                    m.to.as_str(),
                    m.params.get("from"),
                    m.params.contains_key("dlr-level"),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("1", Some(&json!("BANK")), true),
                ("2", Some(&json!("BANK")), true),
                ("3", Some(&json!("SHOP")), true),
            ]
        );
    }

    #[test]
    fn schedule_formats() {
        assert_eq!(countdown(None).ok(), Some(0));
        assert_eq!(countdown(Some(&json!("90s"))).ok(), Some(90));
        assert!(countdown(Some(&json!("2001-01-01 00:00:00"))).is_err());
        assert!(countdown(Some(&json!("soon"))).is_err());
        let later = (Local::now() + chrono::Duration::hours(1))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let seconds = countdown(Some(&json!(later))).ok().unwrap_or_default();
        assert!((3500..=3600).contains(&seconds), "{seconds}");
    }
}
