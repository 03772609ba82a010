//! Bearer tokens for the admin API. Each token has a name; the name is the actor in
//! the audit log. No token, or one that matches none, is UNAUTHENTICATED.

use std::sync::Arc;

use tonic::{Request, Status, service::Interceptor};

/// A named admin token (`[admin] tokens = [{ name = "ops", token = "…" }]`).
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub token: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Who called, attached to each authenticated request.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub origin: String,
}

/// The tonic interceptor that checks `authorization: Bearer <token>`.
#[derive(Clone)]
pub struct Auth {
    tokens: Arc<[Token]>,
}

impl Auth {
    /// Empty tokens are ignored: an empty secret would let anyone in.
    pub fn new(tokens: impl IntoIterator<Item = Token>) -> Self {
        Self {
            tokens: tokens.into_iter().filter(|t| !t.token.is_empty()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    fn name_of(&self, presented: &str) -> Option<&str> {
        // Every token is compared in full so the time does not tell which one was close.
        let mut found = None;
        for t in self.tokens.iter() {
            if constant_time_eq(t.token.as_bytes(), presented.as_bytes()) && found.is_none() {
                found = Some(t.name.as_str());
            }
        }
        found
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
        let name = self
            .name_of(presented)
            .ok_or_else(|| Status::unauthenticated("unknown token"))?
            .to_owned();
        let origin = request
            .remote_addr()
            .map_or_else(|| "grpc".to_owned(), |a| format!("grpc {a}"));
        // Billing's RPCs take their ledger actor from the same check.
        request
            .extensions_mut()
            .insert(billing::grpc::Caller(name.clone()));
        request.extensions_mut().insert(Actor { name, origin });
        Ok(request)
    }
}

/// The actor an authenticated request carries.
pub fn actor<T>(request: &Request<T>) -> Result<Actor, Status> {
    request
        .extensions()
        .get::<Actor>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("not authenticated"))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new([
            Token {
                name: "ops".into(),
                token: "s3cret".into(),
            },
            Token {
                name: "nobody".into(),
                token: String::new(),
            },
        ])
    }

    #[test]
    fn bearer_tokens_name_the_actor() {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().expect("ascii"));
        let ok = auth().call(request).expect("accepted");
        assert_eq!(actor(&ok).expect("actor").name, "ops");
        for bad in ["Bearer nope", "Bearer ", "s3cret"] {
            let mut request = Request::new(());
            request
                .metadata_mut()
                .insert("authorization", bad.parse().expect("ascii"));
            let err = auth().call(request).expect_err("refused");
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        let err = auth().call(Request::new(())).expect_err("refused");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }
}
