//! Jasmin's REST API (docs/jasmin-compat.md §1.8), which in Jasmin is a Falcon proxy to the HTTP
//! API: Basic auth on `/secure/*`, JSON in and out, `_` in keys read as `-` (except
//! `custom_tlvs`), `{"data": …}` on success and `{"message": …}` with the upstream
//! status otherwise. Its quirk is kept: the proxy strips `"` from both ends of the
//! upstream body, so success reads `Success "<uuid>` (closing quote missing) and errors
//! `Error "No route found`.

use std::net::SocketAddr;

use axum::{
    body::Bytes,
    extract::{ConnectInfo, RawQuery, State},
    http::{
        HeaderMap,
        header::{ACCEPT, AUTHORIZATION},
    },
    response::Response,
};
use serde_json::{Value, json};

use super::{Api, Failure, Params, balance, json_reply, send};

/// Falcon's error document.
pub(super) fn falcon_error(status: u16, title: &str, description: &str) -> Response {
    json_reply(
        status,
        &json!({ "title": title, "description": description }),
    )
}

fn unauthorized(title: &str) -> Response {
    falcon_error(401, title, "Please provide a valid Basic auth token")
}

/// Falcon's `client_accepts_json`: no Accept header, or one that admits JSON.
fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return headers.get(ACCEPT).is_none();
    };
    accept.split(',').any(|item| {
        let media = item.split(';').next().unwrap_or_default().trim();
        matches!(media, "application/json" | "application/*" | "*/*" | "")
    })
}

/// Why a REST request is turned away before it reaches the API.
pub(super) enum Refused {
    NotJson,
    NoToken,
    BadToken(String),
}

impl Refused {
    pub(super) fn response(self) -> Response {
        match self {
            Self::NotJson => falcon_error(
                415,
                "Unsupported media type",
                "This API supports JSON media type only.",
            ),
            Self::NoToken => unauthorized("Authentication required"),
            Self::BadToken(why) => unauthorized(&format!("Invalid token: {why}")),
        }
    }
}

/// The checks every REST request passes: JSON accepted, then Basic credentials.
pub(super) fn credentials(headers: &HeaderMap) -> Result<(String, String), Refused> {
    if !accepts_json(headers) {
        return Err(Refused::NotJson);
    }
    let token = headers.get(AUTHORIZATION).ok_or(Refused::NoToken)?;
    let token = token.to_str().unwrap_or_default();
    let words: Vec<&str> = token.split(' ').collect();
    if words.len() != 2 {
        return Err(Refused::BadToken(token.to_owned()));
    }
    let decoded = base64_decode(words[1])
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Refused::BadToken("not base64 of UTF-8".into()))?;
    // Jasmin splits on every ':' (and fails on a password containing one); the first
    // one separates user and password, as RFC 7617 says.
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| Refused::BadToken("no ':' in the credentials".into()))?;
    Ok((user.to_owned(), password.to_owned()))
}

pub(super) fn with_credentials(mut args: Params, (user, password): (String, String)) -> Params {
    args.set_text("username", &user);
    args.set_text("password", &password);
    args
}

/// `_` becomes `-` in every key but `custom_tlvs`.
pub(super) fn rest_key(key: &str) -> String {
    if key == "custom_tlvs" {
        key.to_owned()
    } else {
        key.replace('_', "-")
    }
}

/// Jasmin's proxy strips `"` from both ends of what the HTTP API answered.
fn proxied(status: u16, upstream: &str) -> Response {
    let text = upstream.trim_matches('"');
    if status == 200 {
        json_reply(200, &json!({ "data": text }))
    } else {
        json_reply(status, &json!({ "message": text }))
    }
}

fn json_result(result: Result<Value, Failure>) -> Response {
    match result {
        Ok(value) => json_reply(200, &json!({ "data": value })),
        Err(f) => json_reply(f.status, &json!({ "message": f.text })),
    }
}

pub(super) async fn ping(headers: HeaderMap) -> Response {
    match credentials(&headers) {
        Ok(_) => json_reply(200, &json!({ "data": "Jasmin/PONG" })),
        Err(refused) => refused.response(),
    }
}

pub(super) async fn balance(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let credentials = match credentials(&headers) {
        Ok(c) => c,
        Err(refused) => return refused.response(),
    };
    let args = with_credentials(Params::default(), credentials);
    json_result(balance::balance(&api.caller(peer), args).await)
}

pub(super) async fn rate(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let credentials = match credentials(&headers) {
        Ok(c) => c,
        Err(refused) => return refused.response(),
    };
    let query = Params::from_request(query.as_deref(), &HeaderMap::new(), b"");
    let mut args = Params::default();
    for name in query.names() {
        if let Some(v) = query.value(name) {
            args.push(&rest_key(name), v.clone());
        }
    }
    json_result(balance::rate(&api.caller(peer), with_credentials(args, credentials)).await)
}

pub(super) async fn send(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let credentials = match credentials(&headers) {
        Ok(c) => c,
        Err(refused) => return refused.response(),
    };
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&body) else {
        return falcon_error(
            412,
            "Cannot parse JSON data",
            &format!(
                "Got unparseable json data: {}",
                String::from_utf8_lossy(&body)
            ),
        );
    };
    // The proxy passes lists as repeated query parameters: the HTTP API uses the first.
    for (key, value) in map.iter_mut() {
        if key != "custom_tlvs"
            && let Value::Array(items) = value
        {
            *value = items.first().cloned().unwrap_or(Value::Null);
        }
    }
    map.retain(|_, v| !v.is_null());
    let args = with_credentials(Params::from_json_object(&map, rest_key), credentials);
    match send::send(&api.caller(peer), args).await {
        Ok(id) => proxied(200, &format!("Success \"{id}\"")),
        Err(f) => proxied(f.status, &format!("Error \"{}\"", f.text)),
    }
}

/// Standard base64 (padding optional).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        Some(u32::from(v))
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..chunk.len() - 1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_keys() {
        assert_eq!(base64_decode("Zm9vOmJhcg=="), Some(b"foo:bar".to_vec()));
        assert_eq!(base64_decode("Zm9vOmJh"), Some(b"foo:ba".to_vec()));
        assert_eq!(base64_decode("Zm9v!"), None);
        assert_eq!(rest_key("dlr_url"), "dlr-url");
        assert_eq!(rest_key("custom_tlvs"), "custom_tlvs");
    }
}
