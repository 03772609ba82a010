//! The body of `POST /api/v1/sms/send`: parsing and checking it, and the message
//! each recipient gets (Jasmin's addressing defaults, encoding, validity, schedule).

use chrono::{DateTime, TimeDelta, Utc};
use router::{Address, Message, Origin, credentials::Requested, model::RD_RECEIPT_ALWAYS, split};
use serde::Deserialize;
use smpp_core::text::gsm7;

use super::super::problem::Problem;

/// At most this many recipients per request.
pub const MAX_RECIPIENTS: usize = 1000;

/// Jasmin's submit_sm defaults for numeric addresses (source national, destination
/// international, ISDN); an alphanumeric sender is TON 5, NPI 0.
const SOURCE_TON: u8 = 2;
const DEST_TON: u8 = 1;
const ISDN: u8 = 1;
const ALPHANUMERIC: u8 = 5;

/// One number, or a list of up to 1,000.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Recipients {
    One(String),
    Many(Vec<String>),
}

/// `auto` picks GSM-7 when every character has one, else UCS-2.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Auto,
    Gsm7,
    Ucs2,
}

/// The body of `POST /api/v1/sms/send`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    to: Recipients,
    from: Option<String>,
    text: String,
    #[serde(default)]
    encoding: Encoding,
    /// Seconds the operator may keep trying.
    validity: Option<u32>,
    /// RFC 3339: when the operator should deliver.
    scheduled_at: Option<String>,
    /// Your reference, to find the messages again (`GET /api/v1/sms?client_reference=`).
    client_reference: Option<String>,
    /// This message's events also go here, signed with the account's webhook secret.
    webhook_url: Option<String>,
}

/// A checked request: what every recipient's message shares.
pub(super) struct Checked {
    pub(super) recipients: Vec<String>,
    pub(super) from: Option<String>,
    pub(super) data_coding: u8,
    pub(super) encoding: &'static str,
    pub(super) content: bytes::Bytes,
    pub(super) parts: usize,
    pub(super) validity_period: Option<String>,
    pub(super) schedule: Option<(i64, String)>,
    pub(super) client_reference: Option<String>,
    pub(super) webhook_url: Option<String>,
}

fn valid_number(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// SMPP absolute time in UTC (`YYMMDDhhmmsst00+`).
fn smpp_time(at: DateTime<Utc>) -> String {
    let tenths = at.timestamp_subsec_millis() / 100;
    format!("{}{tenths}00+", at.format("%y%m%d%H%M%S"))
}

pub(super) fn check(body: &[u8]) -> Result<Checked, Problem> {
    let req: SendRequest = serde_json::from_slice(body).map_err(|e| {
        Problem::bad_request("malformed_json", format!("invalid request body: {e}"))
    })?;
    let recipients = match req.to {
        Recipients::One(n) => vec![n],
        Recipients::Many(list) => list,
    };
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(Problem::invalid(format!(
            "`to` takes 1 to {MAX_RECIPIENTS} numbers"
        )));
    }
    if let Some(bad) = recipients.iter().find(|n| !valid_number(n)) {
        return Err(Problem::invalid(format!(
            "`to` has an invalid number {bad:?} (digits, optionally after +)"
        )));
    }
    if let Some(from) = &req.from
        && (from.is_empty() || from.chars().count() > 20)
    {
        return Err(Problem::invalid("`from` takes 1 to 20 characters"));
    }
    if req.text.is_empty() {
        return Err(Problem::invalid("`text` is empty"));
    }
    let (data_coding, encoding, content) = match req.encoding {
        Encoding::Gsm7 => match gsm7::encode(&req.text) {
            Ok(bytes) => (0, "gsm7", bytes::Bytes::from(bytes)),
            Err(_) => {
                return Err(Problem::invalid(
                    "`text` has characters outside GSM 03.38: use encoding ucs2 or auto",
                ));
            }
        },
        Encoding::Ucs2 => (8, "ucs2", split::utf8_to_ucs2(&req.text)),
        Encoding::Auto => match gsm7::encode(&req.text) {
            Ok(bytes) => (0, "gsm7", bytes::Bytes::from(bytes)),
            Err(_) => (8, "ucs2", split::utf8_to_ucs2(&req.text)),
        },
    };
    let parts = split::count_parts(&content, data_coding).max(1);
    let validity_period = match req.validity {
        Some(0) => return Err(Problem::invalid("`validity` must be at least 1 second")),
        Some(secs) => {
            let at = Utc::now()
                .checked_add_signed(TimeDelta::seconds(i64::from(secs)))
                .ok_or_else(|| Problem::invalid("`validity` is too long"))?;
            Some(smpp_time(at))
        }
        None => None,
    };
    let schedule = match &req.scheduled_at {
        Some(text) => {
            let at = DateTime::parse_from_rfc3339(text)
                .map_err(|_| Problem::invalid("`scheduled_at` must be an RFC 3339 time"))?
                .with_timezone(&Utc);
            Some((at.timestamp_micros(), smpp_time(at)))
        }
        None => None,
    };
    if req
        .client_reference
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.len() > 128)
    {
        return Err(Problem::invalid("`client_reference` takes 1 to 128 bytes"));
    }
    if let Some(url) = &req.webhook_url
        && (url.len() > 2048
            || !(url.starts_with("http://") || url.starts_with("https://"))
            || url.parse::<axum::http::Uri>().is_err())
    {
        return Err(Problem::invalid("`webhook_url` must be an http(s) URL"));
    }
    Ok(Checked {
        recipients,
        from: req.from,
        data_coding,
        encoding,
        content,
        parts,
        validity_period,
        schedule,
        client_reference: req.client_reference,
        webhook_url: req.webhook_url,
    })
}

pub(super) fn message(c: &Checked, to: &str) -> (Message, Requested) {
    let from = c.from.clone().unwrap_or_default();
    let source = if !from.is_empty() && !valid_number(&from) {
        Address::new(from, ALPHANUMERIC, 0)
    } else {
        Address::new(from, SOURCE_TON, ISDN)
    };
    let message = Message {
        origin: Origin::Http,
        source,
        destination: Address::new(to, DEST_TON, ISDN),
        data_coding: c.data_coding,
        content: c.content.clone(),
        split_long: c.parts > 1,
        registered_delivery: RD_RECEIPT_ALWAYS,
        validity_period: c.validity_period.clone().unwrap_or_default(),
        schedule_delivery_time: c
            .schedule
            .as_ref()
            .map(|(_, s)| s.clone())
            .unwrap_or_default(),
        ..Message::default()
    };
    let requested = Requested {
        source_address: c.from.is_some(),
        validity_period: c.validity_period.is_some(),
        schedule_delivery_time: c.schedule.is_some(),
        long_content: c.parts > 1,
        ..Requested::default()
    };
    (message, requested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auto_encoding_picks_gsm7_or_ucs2() {
        let c = check(br#"{"to":"255700000001","text":"hello"}"#).expect("valid");
        assert_eq!((c.data_coding, c.encoding, c.parts), (0, "gsm7", 1));
        let c = check(r#"{"to":["255700000001"],"text":"привет"}"#.as_bytes()).expect("valid");
        assert_eq!((c.data_coding, c.encoding), (8, "ucs2"));
        let long = "x".repeat(161);
        let c = check(format!(r#"{{"to":"1","text":"{long}"}}"#).as_bytes()).expect("valid");
        assert_eq!(c.parts, 2);
        assert!(check(r#"{"to":"1","text":"привет","encoding":"gsm7"}"#.as_bytes()).is_err());
    }

    #[test]
    fn bad_requests_are_refused() {
        for body in [
            &br#"{"to":[],"text":"x"}"#[..],
            br#"{"to":"abc","text":"x"}"#,
            br#"{"to":"1","text":""}"#,
            br#"{"to":"1","text":"x","extra":1}"#,
            br#"{"to":"1","text":"x","scheduled_at":"tomorrow"}"#,
            br#"{"to":"1","text":"x","webhook_url":"ftp://x"}"#,
            br#"not json"#,
        ] {
            assert!(check(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
        let body = json!({"to": many, "text": "x"}).to_string();
        assert_eq!(check(body.as_bytes()).err().map(|p| p.status), Some(422));
    }
}
