//! `/send` (docs/jasmin-compat.md §1.2–§1.5): Jasmin's defaults and checks in its order, then
//! one `Message` for `Gateway::submit`, which does credentials, routing, splitting,
//! charging and queueing.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use router::{Address, DlrMethod, DlrRequest, Message, Origin, credentials::Requested, split};
use smpp_core::text::gsm7;

use super::{
    Caller, Failure,
    params::{ArgError, Params, Value, send_fields, unhex},
    tlvs,
};

/// Jasmin's submit_sm defaults (SMPPClientConfig): source NATIONAL/ISDN, destination
/// INTERNATIONAL/ISDN.
const SOURCE_TON: u8 = 2;
const DEST_TON: u8 = 1;
const ISDN: u8 = 1;

/// Run `/send` on `args`; Ok is our message id.
pub async fn send(gateway: &Caller<'_>, mut args: Params) -> Result<Arc<str>, Failure> {
    apply_defaults(&mut args);
    args.validate(&send_fields())?;
    check_content_args(&args)?;
    let coding = coding(&args)?;
    let content = content(&args, coding)?;
    let user = gateway.authenticate(&args).await?;
    let (message, requested) = build(&args, coding, content)?;
    Ok(gateway.submit(&user, message, requested).await?)
}

/// Jasmin writes these into the request before validating, so they count as "present"
/// for the authorization checks (a bare `dlr=yes` needs the dlr level and method
/// authorizations, as Jasmin does).
fn apply_defaults(args: &mut Params) {
    if !args.contains("custom_tlvs") {
        args.set(
            "custom_tlvs",
            Value {
                bytes: b"[]".to_vec(),
                structured: true,
            },
        );
    }
    if !args.contains("coding") {
        args.set_text("coding", "0");
    }
    if args.contains("dlr-url") || args.contains("dlr-level") {
        args.set_text("dlr", "yes");
    }
    if !args.contains("dlr") {
        args.set_text("dlr", "no");
    }
    if args.get("dlr") == Some(b"yes") {
        if !args.contains("dlr-level") {
            args.set_text("dlr-level", "1");
        }
        if !args.contains("dlr-method") {
            args.set_text("dlr-method", "POST");
        }
    }
    if let Some(method) = args.get("dlr-method") {
        let upper = method.to_ascii_uppercase();
        args.set(
            "dlr-method",
            Value {
                bytes: upper,
                structured: false,
            },
        );
    }
}

pub(super) fn check_content_args(args: &Params) -> Result<(), ArgError> {
    match (args.contains("content"), args.contains("hex-content")) {
        (false, false) => Err(ArgError::NoContent),
        (true, true) => Err(ArgError::BothContents),
        _ => Ok(()),
    }
}

pub(super) fn coding(args: &Params) -> Result<u8, ArgError> {
    let raw = args.get("coding").unwrap_or(b"0");
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ArgError::invalid("coding", raw))
}

/// The short_message bytes: hex-content unhexed; content converted to GSM 03.38 for
/// coding 0 (unmappable characters become `?`), from UTF-8 to UCS-2 for coding 8 when
/// it is valid UTF-8, otherwise forwarded as sent.
pub(super) fn content(args: &Params, coding: u8) -> Result<Bytes, ArgError> {
    if let Some(hex) = args.get("hex-content") {
        return unhex(hex)
            .map(Bytes::from)
            .ok_or_else(|| ArgError::BadHex(String::from_utf8_lossy(hex).into_owned()));
    }
    let raw = args.get("content").unwrap_or_default();
    Ok(match coding {
        0 => {
            let text = std::str::from_utf8(raw).map_err(|_| ArgError::invalid("content", raw))?;
            Bytes::from(gsm7::encode_lossy(text))
        }
        8 => match std::str::from_utf8(raw) {
            Ok(text) => split::utf8_to_ucs2(text),
            Err(_) => Bytes::copy_from_slice(raw),
        },
        _ => Bytes::copy_from_slice(raw),
    })
}

/// The message and what the client explicitly asked for.
fn build(args: &Params, coding: u8, content: Bytes) -> Result<(Message, Requested), Failure> {
    let parts = split::count_parts(&content, coding);
    let mut message = base_message(args, coding, content);
    message.split_long = parts > 1;
    if let Some(p) = args.get("priority") {
        message.priority = p.first().map_or(0, |d| d.saturating_sub(b'0'));
    }
    if let Some(sdt) = args.text("sdt") {
        message.schedule_delivery_time = sdt;
    }
    if let Some(minutes) = args.get("validity-period") {
        message.validity_period = validity_period(minutes)
            .ok_or_else(|| ArgError::invalid("validity-period", minutes))?;
    }
    if let Some(v) = args.get("custom_tlvs") {
        message.tlvs = tlvs::parse(v).map_err(|_| ArgError::invalid("custom_tlvs", v))?;
    }
    if args.get("dlr") == Some(b"yes")
        && let Some(url) = args.text("dlr-url")
    {
        let level = args
            .get("dlr-level")
            .and_then(|l| l.first())
            .map_or(DlrRequest::SUBMIT, |d| d.saturating_sub(b'0'));
        let method = if args.get("dlr-method") == Some(b"GET") {
            DlrMethod::Get
        } else {
            DlrMethod::Post
        };
        message.dlr = Some(DlrRequest { level, url, method });
    }
    let requested = Requested {
        source_address: args.contains("from"),
        priority: args.contains("priority"),
        validity_period: args.contains("validity-period"),
        schedule_delivery_time: args.contains("sdt"),
        dlr_level: args.contains("dlr-level"),
        dlr_method: args.contains("dlr-method"),
        hex_content: args.contains("hex-content"),
        long_content: parts > 1,
    };
    Ok((message, requested))
}

/// What `/send` and `/rate` share: addresses, coding, content, tags.
pub(super) fn base_message(args: &Params, coding: u8, content: Bytes) -> Message {
    Message {
        origin: Origin::Http,
        source: Address::new(args.text("from").unwrap_or_default(), SOURCE_TON, ISDN),
        destination: Address::new(args.text("to").unwrap_or_default(), DEST_TON, ISDN),
        data_coding: coding,
        content,
        // Jasmin keeps empty items ("a,,b" tags "a", "", "b").
        tags: args
            .text("tags")
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        ..Message::default()
    }
}

/// `validity-period` minutes from now as an SMPP absolute time in UTC
/// (`YYMMDDhhmmsst00+`). Jasmin uses the server's local time with the same `00+`
/// suffix, which is the same instant only on a UTC server.
fn validity_period(minutes: &[u8]) -> Option<String> {
    let minutes: i64 = std::str::from_utf8(minutes).ok()?.parse().ok()?;
    let at = Utc::now().checked_add_signed(TimeDelta::try_minutes(minutes)?)?;
    let tenths = at.timestamp_subsec_millis() / 100;
    Some(format!("{}{tenths}00+", at.format("%y%m%d%H%M%S")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_an_absolute_smpp_time() {
        let v = validity_period(b"60").unwrap_or_default();
        assert_eq!(v.len(), 16);
        assert!(v.ends_with("00+"));
        assert!(validity_period(b"99999999999999999999").is_none());
    }

    #[test]
    fn dlr_yes_brings_level_and_method() {
        let mut args = Params::default();
        args.set_text("dlr", "yes");
        args.set_text("dlr-method", "get");
        apply_defaults(&mut args);
        assert_eq!(args.get("dlr-level"), Some(&b"1"[..]));
        assert_eq!(args.get("dlr-method"), Some(&b"GET"[..]));
    }
}
