//! Request arguments as Jasmin's Twisted resource sees them (`request.args`): the query
//! string, then a form body, or a JSON body when the Content-Type is exactly
//! `application/json`; the first value of a name wins. Values stay bytes because
//! Jasmin's patterns are tested on raw bytes (docs/jasmin-compat.md §1.2).

use std::sync::LazyLock;

use axum::http::{HeaderMap, header::CONTENT_TYPE};
use regex::bytes::Regex;

/// An argument's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub bytes: Vec<u8>,
    /// A JSON object or array (kept as JSON text): Jasmin skips its pattern.
    pub structured: bool,
}

/// Arguments in arrival order; a repeated name keeps its first value (Twisted's `[0]`).
#[derive(Debug, Clone, Default)]
pub struct Params {
    items: Vec<(String, Value)>,
}

/// Why the arguments were refused; `Display` is the text inside `Error "…"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("Mandatory arguments not found, please refer to the HTTPAPI specifications.")]
    NoArguments,
    #[error("Argument [{0}] is unknown.")]
    Unknown(String),
    #[error("Argument [{name}] has an invalid value: [{value}].")]
    Invalid { name: String, value: String },
    #[error("Mandatory argument [{0}] is not found.")]
    Missing(String),
    #[error("content or hex-content not present.")]
    NoContent,
    #[error("content and hex-content cannot be used both in same request.")]
    BothContents,
    #[error("Invalid hex-content data: '{0}'")]
    BadHex(String),
}

impl ArgError {
    pub fn invalid(name: &str, value: &[u8]) -> Self {
        Self::Invalid {
            name: name.to_owned(),
            value: String::from_utf8_lossy(value).into_owned(),
        }
    }
}

impl Params {
    /// Query, then the body: JSON only with exactly `application/json` (Jasmin ignores
    /// the body otherwise, so a charset suffix leaves the request without arguments),
    /// else form-urlencoded.
    pub fn from_request(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut params = Self::default();
        if let Some(q) = query {
            params.extend_form(q.as_bytes());
        }
        let content_type = headers.get(CONTENT_TYPE).map(|v| v.as_bytes());
        if content_type == Some(b"application/json") {
            // Unparseable JSON leaves no arguments: the usual "not found" answers follow.
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
                for (k, v) in map {
                    params.set(&k, json_value(&v));
                }
            }
        } else if !body.is_empty() {
            params.extend_form(body);
        }
        params
    }

    /// A JSON object's members, as the REST API forwards them (`rename` maps each key).
    pub fn from_json_object(
        map: &serde_json::Map<String, serde_json::Value>,
        rename: impl Fn(&str) -> String,
    ) -> Self {
        let mut params = Self::default();
        for (k, v) in map {
            params.push(&rename(k), json_value(v));
        }
        params
    }

    fn extend_form(&mut self, form: &[u8]) {
        for pair in form.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let mut kv = pair.splitn(2, |b| *b == b'=');
            let key = percent_decode(kv.next().unwrap_or_default());
            let value = percent_decode(kv.next().unwrap_or_default());
            self.push(
                &String::from_utf8_lossy(&key),
                Value {
                    bytes: value,
                    structured: false,
                },
            );
        }
    }

    /// Add unless present (the first value wins).
    pub fn push(&mut self, name: &str, value: Value) {
        if !self.contains(name) {
            self.items.push((name.to_owned(), value));
        }
    }

    /// Add or replace in place (Jasmin's `args[key] = [value]`).
    pub fn set(&mut self, name: &str, value: Value) {
        match self.items.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.items.push((name.to_owned(), value)),
        }
    }

    pub fn set_text(&mut self, name: &str, text: &str) {
        self.set(
            name,
            Value {
                bytes: text.as_bytes().to_vec(),
                structured: false,
            },
        );
    }

    pub fn contains(&self, name: &str) -> bool {
        self.items.iter().any(|(k, _)| k == name)
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.value(name).map(|v| v.bytes.as_slice())
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.items.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A value as text (lossy: only used where the pattern already allowed ASCII).
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// Argument names in arrival order.
    pub fn names(&self) -> Vec<&str> {
        self.items.iter().map(|(k, _)| k.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Jasmin's `UrlArgsValidator`: for each argument in order, an unknown name fails;
    /// a known one triggers the check of every field in `fields` order (pattern when
    /// present, presence when mandatory).
    pub fn validate(&self, fields: &[Field]) -> Result<(), ArgError> {
        if self.is_empty() {
            return Err(ArgError::NoArguments);
        }
        let mut checked = false;
        for (name, _) in &self.items {
            if !fields.iter().any(|f| f.name == name) {
                return Err(ArgError::Unknown(name.clone()));
            }
            if !checked {
                checked = true;
                for field in fields {
                    match self.value(field.name) {
                        Some(v) if !v.structured => {
                            if let Some(re) = field.pattern
                                && !re.is_match(&v.bytes)
                            {
                                return Err(ArgError::invalid(field.name, &v.bytes));
                            }
                        }
                        Some(_) => {}
                        None if field.mandatory => {
                            return Err(ArgError::Missing(field.name.to_owned()));
                        }
                        None => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// A JSON value as Twisted would hold it: strings as their bytes, numbers and booleans
/// as text, objects and arrays as JSON text marked structured.
fn json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::String(s) => Value {
            bytes: s.as_bytes().to_vec(),
            structured: false,
        },
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => Value {
            bytes: v.to_string().into_bytes(),
            structured: true,
        },
        other => Value {
            bytes: other.to_string().into_bytes(),
            structured: false,
        },
    }
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// One argument Jasmin knows.
pub struct Field {
    pub name: &'static str,
    pub mandatory: bool,
    pub pattern: Option<&'static Regex>,
}

const fn field(name: &'static str, mandatory: bool, pattern: Option<&'static Regex>) -> Field {
    Field {
        name,
        mandatory,
        pattern,
    }
}

/// Jasmin's patterns; `(?-u)` matches raw bytes as Python's bytes regexes do.
macro_rules! pattern {
    ($name:ident, $re:literal) => {
        pub static $name: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(concat!("(?-u)", $re)).expect("a valid constant regex"));
    };
}

pattern!(TO, r"^\+?\d+\z");
pattern!(CODING, r"^(0|1|2|3|4|5|6|7|8|9|10|13|14)\z");
pattern!(CREDENTIAL, r"^.{1,16}\z");
pattern!(PRIORITY, r"^[0-3]\z");
pattern!(SDT, r"^\d{12}\d\d{2}(\+|-|R)\z");
pattern!(VALIDITY, r"^\d+\z");
pattern!(DLR, r"^(yes|no)\z");
pattern!(DLR_URL, r"^(http|https)://");
pattern!(DLR_LEVEL, r"^[1-3]\z");
pattern!(DLR_METHOD, r"(?i)^(get|post)\z");
pattern!(TAGS, r"^[-a-zA-Z0-9,]*\z");

/// `/send`'s fields in Jasmin's order (the order of its checks).
pub fn send_fields() -> [Field; 16] {
    [
        field("to", true, Some(&TO)),
        field("from", false, None),
        field("coding", false, Some(&CODING)),
        field("username", true, Some(&CREDENTIAL)),
        field("password", true, Some(&CREDENTIAL)),
        field("priority", false, Some(&PRIORITY)),
        field("sdt", false, Some(&SDT)),
        field("validity-period", false, Some(&VALIDITY)),
        field("dlr", true, Some(&DLR)),
        field("dlr-url", false, Some(&DLR_URL)),
        field("dlr-level", false, Some(&DLR_LEVEL)),
        field("dlr-method", false, Some(&DLR_METHOD)),
        field("tags", false, Some(&TAGS)),
        field("content", false, None),
        field("hex-content", false, None),
        field("custom_tlvs", false, None),
    ]
}

/// `/rate`'s fields.
pub fn rate_fields() -> [Field; 10] {
    [
        field("to", true, Some(&TO)),
        field("from", false, None),
        field("coding", false, Some(&CODING)),
        field("username", true, Some(&CREDENTIAL)),
        field("password", true, Some(&CREDENTIAL)),
        field("priority", false, Some(&PRIORITY)),
        field("validity-period", false, Some(&VALIDITY)),
        field("tags", false, Some(&TAGS)),
        field("content", false, None),
        field("hex-content", false, None),
    ]
}

/// `/balance`'s fields.
pub fn balance_fields() -> [Field; 2] {
    [
        field("username", true, Some(&CREDENTIAL)),
        field("password", true, Some(&CREDENTIAL)),
    ]
}

/// Python's `binascii.unhexlify`: an even number of hex digits, either case.
pub fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| char::from(b).to_digit(16);
    text.chunks(2)
        .map(|pair| {
            let h = digit(pair[0])?;
            let l = digit(pair[1])?;
            u8::try_from(h * 16 + l).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(q: &str) -> Params {
        Params::from_request(Some(q), &HeaderMap::new(), b"")
    }

    #[test]
    fn validation_follows_jasmin_order() {
        let fields = balance_fields();
        assert_eq!(form("").validate(&fields), Err(ArgError::NoArguments));
        assert_eq!(
            form("x=1&username=a").validate(&fields),
            Err(ArgError::Unknown("x".into()))
        );
        // A known first argument checks the fields before a later unknown one.
        assert_eq!(
            form("username=a&x=1").validate(&fields),
            Err(ArgError::Missing("password".into()))
        );
        assert_eq!(
            form("username=&password=b")
                .validate(&fields)
                .map_err(|e| e.to_string()),
            Err("Argument [username] has an invalid value: [].".into())
        );
        assert!(
            form("username=a&password=b&username=c")
                .validate(&fields)
                .is_ok()
        );
        assert_eq!(
            form("username=a&username=c").get("username"),
            Some(&b"a"[..])
        );
    }

    #[test]
    fn decoding_and_patterns() {
        let p = form("content=h%C3%A9llo+w%zz&to=%2B255");
        assert_eq!(p.get("content"), Some("héllo w%zz".as_bytes()));
        assert!(TO.is_match(p.get("to").unwrap_or_default()));
        assert!(!TO.is_match(b"255\n"));
        assert!(DLR_METHOD.is_match(b"GeT"));
        assert!(SDT.is_match(b"000000000100000R"));
        assert!(!CODING.is_match(b"11"));
        assert_eq!(unhex(b"0041ff"), Some(vec![0, 0x41, 0xff]));
        assert_eq!(unhex(b"0g"), None);
        assert_eq!(unhex(b"123"), None);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().expect("header"));
        let p = Params::from_request(
            None,
            &headers,
            br#"{"to":255,"custom_tlvs":{"0x1401":"a"}}"#,
        );
        assert_eq!(p.get("to"), Some(&b"255"[..]));
        assert!(p.value("custom_tlvs").is_some_and(|v| v.structured));
    }
}
