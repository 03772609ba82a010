//! Scripts for interceptors and the script filter (Jasmin's EvalPyFilter and
//! interceptord), in Rhai: sandboxed (no file, network or module access), with an
//! operation limit so a runaway script fails instead of hanging the gateway.
//!
//! A script sees `message`, a map of the message fields (`source_addr`, `destination_addr`,
//! `source_addr_ton`…, `content` as text, `content_bytes` as a blob, `data_coding`,
//! `esm_class`, `priority`, `registered_delivery`, `validity_period`,
//! `schedule_delivery_time`, `uid`, `gid`, `connector`, `tags`), and the variables
//! `result` (filters set it to `true` to match), `smpp_status` and `http_status`
//! (interceptors set one or both to reject), as in Jasmin.

use std::sync::Arc;

use bytes::Bytes;
use rhai::{AST, Array, Blob, Dynamic, Engine, Map, Scope};

use crate::model::Message;

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("script does not compile: {0}")]
    Compile(String),
    #[error("script failed: {0}")]
    Runtime(String),
    #[error("script set message.{0} to a value of the wrong type")]
    Field(&'static str),
}

/// A compiled script with the engine it runs on.
pub struct Script {
    engine: Arc<Engine>,
    ast: AST,
    pub name: String,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").field("name", &self.name).finish()
    }
}

/// The engine every script shares: no `eval`, no modules, limits on work and sizes.
pub fn engine(max_operations: u64) -> Arc<Engine> {
    let mut engine = Engine::new();
    engine.set_max_operations(max_operations);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_call_levels(32);
    engine.set_max_string_size(64 * 1024);
    engine.set_max_array_size(10_000);
    engine.set_max_map_size(1_000);
    engine.disable_symbol("eval");
    Arc::new(engine)
}

/// What an interceptor decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on with the (possibly changed) message.
    Continue,
    /// Reject with these statuses (the unset one filled as Jasmin does: 255 / 520).
    Reject { smpp_status: u32, http_status: u16 },
    /// `smpp_status = 0`: accept without routing (Jasmin's SMPP behaviour).
    AcceptWithoutRouting,
}

impl Script {
    pub fn compile(engine: &Arc<Engine>, name: &str, source: &str) -> Result<Self, ScriptError> {
        let ast = engine
            .compile(source)
            .map_err(|e| ScriptError::Compile(format!("{name}: {e}")))?;
        Ok(Self {
            engine: engine.clone(),
            ast,
            name: name.to_owned(),
        })
    }

    /// Run as a filter: true only if the script sets `result = true`.
    pub fn filter(&self, message: &Message) -> Result<bool, ScriptError> {
        let mut scope = Scope::new();
        scope.push("message", to_map(message));
        scope.push("result", false);
        self.engine
            .run_ast_with_scope(&mut scope, &self.ast)
            .map_err(|e| ScriptError::Runtime(format!("{}: {e}", self.name)))?;
        Ok(scope.get_value::<bool>("result").unwrap_or(false))
    }

    /// Run as an interceptor: apply the script's changes to `message`.
    pub fn intercept(&self, message: &mut Message) -> Result<Verdict, ScriptError> {
        let mut scope = Scope::new();
        scope.push("message", to_map(message));
        scope.push("smpp_status", Dynamic::UNIT);
        scope.push("http_status", Dynamic::UNIT);
        self.engine
            .run_ast_with_scope(&mut scope, &self.ast)
            .map_err(|e| ScriptError::Runtime(format!("{}: {e}", self.name)))?;
        let smpp = scope
            .get_value::<i64>("smpp_status")
            .and_then(|v| u32::try_from(v).ok());
        let http = scope
            .get_value::<i64>("http_status")
            .and_then(|v| u16::try_from(v).ok());
        if let Some(map) = scope.get_value::<Map>("message") {
            apply_map(message, &map)?;
        }
        Ok(match (smpp, http) {
            (None, None) => Verdict::Continue,
            (Some(0), None) => Verdict::AcceptWithoutRouting,
            (Some(0), Some(200)) | (None, Some(200)) => Verdict::Continue,
            (s, h) => Verdict::Reject {
                smpp_status: s.filter(|s| *s != 0).unwrap_or(255),
                http_status: h.filter(|h| *h != 200).unwrap_or(520),
            },
        })
    }
}

fn to_map(m: &Message) -> Map {
    let mut map = Map::new();
    let mut put = |k: &str, v: Dynamic| {
        map.insert(k.into(), v);
    };
    put("source_addr", m.source.addr.clone().into());
    put("source_addr_ton", i64::from(m.source.ton).into());
    put("source_addr_npi", i64::from(m.source.npi).into());
    put("destination_addr", m.destination.addr.clone().into());
    put("dest_addr_ton", i64::from(m.destination.ton).into());
    put("dest_addr_npi", i64::from(m.destination.npi).into());
    put(
        "content",
        String::from_utf8_lossy(&m.content).into_owned().into(),
    );
    put("content_bytes", Dynamic::from_blob(m.content.to_vec()));
    put("data_coding", i64::from(m.data_coding).into());
    put("esm_class", i64::from(m.esm_class).into());
    put("protocol_id", i64::from(m.protocol_id).into());
    put("priority", i64::from(m.priority).into());
    put(
        "registered_delivery",
        i64::from(m.registered_delivery).into(),
    );
    put("validity_period", m.validity_period.clone().into());
    put(
        "schedule_delivery_time",
        m.schedule_delivery_time.clone().into(),
    );
    put("uid", m.uid.to_string().into());
    put("gid", m.gid.to_string().into());
    put("connector", m.connector.to_string().into());
    let tags: Array = m.tags.iter().map(|t| Dynamic::from(t.clone())).collect();
    put("tags", tags.into());
    map
}

fn get_string(map: &Map, key: &'static str) -> Result<Option<String>, ScriptError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v
            .clone()
            .into_string()
            .map(Some)
            .map_err(|_| ScriptError::Field(key)),
    }
}

fn get_u8(map: &Map, key: &'static str) -> Result<Option<u8>, ScriptError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_int()
            .ok()
            .and_then(|i| u8::try_from(i).ok())
            .map(Some)
            .ok_or(ScriptError::Field(key)),
    }
}

/// Copy what the script changed back into the message.
fn apply_map(m: &mut Message, map: &Map) -> Result<(), ScriptError> {
    if let Some(v) = get_string(map, "source_addr")? {
        m.source.addr = v;
    }
    if let Some(v) = get_string(map, "destination_addr")? {
        m.destination.addr = v;
    }
    macro_rules! byte_field {
        ($key:literal, $field:expr) => {
            if let Some(v) = get_u8(map, $key)? {
                $field = v;
            }
        };
    }
    byte_field!("source_addr_ton", m.source.ton);
    byte_field!("source_addr_npi", m.source.npi);
    byte_field!("dest_addr_ton", m.destination.ton);
    byte_field!("dest_addr_npi", m.destination.npi);
    byte_field!("data_coding", m.data_coding);
    byte_field!("esm_class", m.esm_class);
    byte_field!("protocol_id", m.protocol_id);
    byte_field!("priority", m.priority);
    byte_field!("registered_delivery", m.registered_delivery);
    if let Some(v) = get_string(map, "validity_period")? {
        m.validity_period = v;
    }
    if let Some(v) = get_string(map, "schedule_delivery_time")? {
        m.schedule_delivery_time = v;
    }
    // `content` (text) wins over `content_bytes` when the script changed it.
    let original_text = String::from_utf8_lossy(&m.content).into_owned();
    let text = get_string(map, "content")?;
    let blob = match map.get("content_bytes") {
        None => None,
        Some(v) => Some(
            v.clone()
                .into_blob()
                .map_err(|_| ScriptError::Field("content_bytes"))?,
        ),
    };
    match (text, blob) {
        (Some(text), _) if text != original_text => m.content = Bytes::from(text.into_bytes()),
        (_, Some(blob)) if blob.as_slice() != m.content.as_ref() => {
            m.content = Bytes::from(Blob::from(blob))
        }
        _ => {}
    }
    if let Some(tags) = map.get("tags") {
        let tags = tags
            .clone()
            .into_array()
            .map_err(|_| ScriptError::Field("tags"))?;
        m.tags = tags.into_iter().map(|t| t.to_string()).collect();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interceptor_rewrites_and_rejects_and_fails_cleanly() {
        let engine = engine(10_000);
        let mut m = Message {
            content: Bytes::from_static(b"hello"),
            ..Message::default()
        };
        let s = Script::compile(
            &engine,
            "rw",
            r#"message.source_addr = "BANK"; message.tags.push("x");"#,
        )
        .expect("compiles");
        assert_eq!(s.intercept(&mut m).ok(), Some(Verdict::Continue));
        assert_eq!(m.source.addr, "BANK");
        assert_eq!(m.tags, vec!["x".to_string()]);

        let s = Script::compile(&engine, "rej", "smpp_status = 0x45;").expect("compiles");
        assert_eq!(
            s.intercept(&mut m).ok(),
            Some(Verdict::Reject {
                smpp_status: 0x45,
                http_status: 520
            })
        );

        let s = Script::compile(&engine, "loop", "loop { }").expect("compiles");
        assert!(matches!(s.intercept(&mut m), Err(ScriptError::Runtime(_))));
        let s = Script::compile(&engine, "bad", "message.priority = \"x\";").expect("compiles");
        assert!(matches!(
            s.intercept(&mut m),
            Err(ScriptError::Field("priority"))
        ));

        let f = Script::compile(
            &engine,
            "f",
            r#"result = message.content.starts_with("he");"#,
        )
        .expect("compiles");
        assert_eq!(f.filter(&m).ok(), Some(true));
    }
}
