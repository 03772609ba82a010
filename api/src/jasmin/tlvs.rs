//! `custom_tlvs` (docs/jasmin-compat.md §1.6): vendor TLVs added to every part of the message.
//! Shapes: `{"0x1401": v, "0x1400:Int8": v}`, `[[tag, length, type, value], …]`, or
//! either as a JSON string (a query parameter). Type from the key, else `OctetString`
//! (we have no per-connector TLV rules yet).

use bytes::Bytes;
use router::model::RawTlv;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlvError(String);

fn bad(what: impl Into<String>) -> TlvError {
    TlvError(what.into())
}

/// Parse `custom_tlvs` given as JSON text.
pub fn parse(text: &[u8]) -> Result<Vec<RawTlv>, TlvError> {
    let text = std::str::from_utf8(text)
        .map_err(|_| bad("not UTF-8"))?
        .trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    from_value(&value)
}

fn from_value(value: &Value) -> Result<Vec<RawTlv>, TlvError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Object(map) => map
            .iter()
            .map(|(key, v)| {
                let (tag, kind) = parse_key(key)?;
                encode(tag, kind.unwrap_or("OctetString"), v)
            })
            .collect(),
        Value::Array(entries) => entries
            .iter()
            .filter_map(|entry| match entry {
                Value::Array(t) if t.len() >= 4 => Some((&t[0], t[2].as_str(), &t[3])),
                Value::Array(t) if t.len() >= 2 => Some((&t[0], None, &t[t.len() - 1])),
                _ => None,
            })
            .map(|(tag, kind, v)| encode(parse_tag(tag)?, kind.unwrap_or("OctetString"), v))
            .collect(),
        Value::String(s) => parse(s.as_bytes()),
        _ => Err(bad("expected an object or a list")),
    }
}

fn parse_key(key: &str) -> Result<(u16, Option<&str>), TlvError> {
    let key = key.trim();
    let (tag, kind) = match key.split_once(':') {
        Some((tag, kind)) => (tag.trim(), Some(kind.trim())),
        None => (key, None),
    };
    Ok((parse_tag_text(tag)?, kind))
}

fn parse_tag(v: &Value) -> Result<u16, TlvError> {
    match v {
        Value::String(s) => parse_tag_text(s.trim()),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| bad(format!("bad tag {n}"))),
        other => Err(bad(format!("bad tag {other}"))),
    }
}

fn parse_tag_text(s: &str) -> Result<u16, TlvError> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| bad(format!("bad tag {s}")))
}

fn encode(tag: u16, kind: &str, v: &Value) -> Result<RawTlv, TlvError> {
    let int = || -> Result<u64, TlvError> {
        match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| bad(format!("tag {tag:#06x}: {v} is not an unsigned integer")))
    };
    let text = || match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let too_big = || bad(format!("tag {tag:#06x}: {v} does not fit {kind}"));
    let value: Vec<u8> = match kind {
        "Int1" => vec![u8::try_from(int()?).map_err(|_| too_big())?],
        "Int2" => u16::try_from(int()?)
            .map_err(|_| too_big())?
            .to_be_bytes()
            .to_vec(),
        "Int4" => u32::try_from(int()?)
            .map_err(|_| too_big())?
            .to_be_bytes()
            .to_vec(),
        "Int8" => int()?.to_be_bytes().to_vec(),
        "OctetString" => text().into_bytes(),
        "COctetString" => {
            let mut b = text().into_bytes();
            b.push(0);
            b
        }
        other => return Err(bad(format!("tag {tag:#06x}: unknown type {other}"))),
    };
    if value.len() > usize::from(u16::MAX) {
        return Err(too_big());
    }
    Ok(RawTlv {
        tag,
        value: Bytes::from(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_types() {
        let tlvs = parse(br#"{"0x1401":"ab","0x1400:Int2":258,"5122:COctetString":"x"}"#)
            .unwrap_or_default();
        assert_eq!(tlvs.len(), 3);
        let value = |tag| tlvs.iter().find(|t| t.tag == tag).map(|t| t.value.to_vec());
        assert_eq!(value(0x1401), Some(b"ab".to_vec()));
        assert_eq!(value(0x1400), Some(vec![1, 2]));
        assert_eq!(value(5122), Some(b"x\0".to_vec()));
        let tlvs = parse(br#"[[5121, null, "Int1", 7]]"#).unwrap_or_default();
        assert_eq!((tlvs[0].tag, &tlvs[0].value[..]), (5121, &[7u8][..]));
        assert!(parse(br#"{"0x1400:Int1":300}"#).is_err());
        assert!(parse(b"{").is_err());
        assert_eq!(parse(b""), Ok(Vec::new()));
    }
}
