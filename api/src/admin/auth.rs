//! Bearer tokens for the admin API. Each token has a name and a role; the name is the
//! actor in the audit log, the role says which RPCs it may call. No token, or one that
//! matches none, is UNAUTHENTICATED; a known token calling outside its role is
//! PERMISSION_DENIED.
//!
//! | role | may call |
//! |---|---|
//! | `admin` (default) | every Admin, Stats and Billing RPC except settlement (Reserve, Commit, Refund) |
//! | `charging` | Billing's Reserve, Commit, Refund, Balance and Rate: what a remote router needs |
//! | `read` | the read RPCs: List*/Get* (ListTariffs too), ExplainRoute, ExportConfig (secrets redacted), GetBalance, Stats, Billing's Balance and Rate |
//!
//! The role is checked against the RPC's path, which [`WithPath`] puts in the request's
//! extensions before the interceptor runs. An RPC not named here is admin-only (new
//! writes are safe by default); a request whose path is unknown is refused.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use tonic::{
    Request, Status,
    codegen::{Service, http},
    server::NamedService,
    service::Interceptor,
};

/// What a token may do; `[admin] tokens = [{ …, role = "read" }]`, `admin` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manage everything; no settlement (a reservation without a message is free money).
    #[default]
    Admin,
    /// A remote router's calls: reserve, commit, refund, and the balance and rate reads.
    Charging,
    /// Look, never touch.
    Read,
}

const BILLING: &str = "smsgw.billing.v1.Billing";
const ADMIN: &str = "smsgw.admin.v1.Admin";
const STATS: &str = "smsgw.admin.v1.Stats";

/// Billing's settlement RPCs: only `charging` tokens.
const SETTLEMENT: [(&str, &str); 3] = [
    (BILLING, "Reserve"),
    (BILLING, "Commit"),
    (BILLING, "Refund"),
];

/// Billing's reads, open to every role.
const BILLING_READS: [(&str, &str); 2] = [(BILLING, "Balance"), (BILLING, "Rate")];

/// The Admin and Stats RPCs that change nothing.
const ADMIN_READS: [(&str, &str); 15] = [
    (ADMIN, "ListUsers"),
    (ADMIN, "GetUser"),
    (ADMIN, "ListGroups"),
    (ADMIN, "ListRoutes"),
    (ADMIN, "ListFilters"),
    (ADMIN, "ListInterceptors"),
    (ADMIN, "ListConnectors"),
    (ADMIN, "GetConnector"),
    (ADMIN, "GetBalance"),
    (ADMIN, "ListTariffs"),
    (ADMIN, "ListLcrCosts"),
    (ADMIN, "ExportConfig"),
    (ADMIN, "ExplainRoute"),
    (STATS, "UserStats"),
    (STATS, "ConnectorStats"),
];

fn listed(list: &[(&str, &str)], service: &str, method: &str) -> bool {
    list.iter().any(|&(s, m)| s == service && m == method)
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Charging => "charging",
            Role::Read => "read",
        }
    }

    /// May this role call `path` (`/package.Service/Method`)?
    pub fn allows(self, path: &str) -> bool {
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return false;
        };
        let settlement = listed(&SETTLEMENT, service, method);
        let billing_read = listed(&BILLING_READS, service, method);
        match self {
            Role::Admin => !settlement,
            Role::Charging => settlement || billing_read,
            Role::Read => billing_read || listed(&ADMIN_READS, service, method),
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Role::Admin => {
                "everything but settlement; Reserve/Commit/Refund need a token with role \"charging\""
            }
            Role::Charging => "only Billing's Reserve, Commit, Refund, Balance and Rate",
            Role::Read => "only the read calls (list, show, explain, export, balance, rate, stats)",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named admin token (`[admin] tokens = [{ name = "ops", token = "…", role = "admin" }]`).
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub token: String,
    pub role: Role,
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
    pub role: Role,
}

/// The RPC's path (`/package.Service/Method`), put in the request's extensions by
/// [`WithPath`] for the interceptor, which sees no URI.
#[derive(Debug, Clone)]
pub struct RpcPath(pub String);

/// Wraps a gRPC service so that its interceptor can read the called RPC's [`RpcPath`].
#[derive(Debug, Clone)]
pub struct WithPath<S>(pub S);

impl<S: NamedService> NamedService for WithPath<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for WithPath<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = RpcPath(request.uri().path().to_owned());
        request.extensions_mut().insert(path);
        self.0.call(request)
    }
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

    fn token_of(&self, presented: &str) -> Option<&Token> {
        // Every token is compared in full so the time does not tell which one was close.
        let mut found = None;
        for t in self.tokens.iter() {
            if constant_time_eq(t.token.as_bytes(), presented.as_bytes()) && found.is_none() {
                found = Some(t);
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
        let token = self
            .token_of(presented)
            .ok_or_else(|| Status::unauthenticated("unknown token"))?;
        let (name, role) = (token.name.clone(), token.role);
        let path = request
            .extensions()
            .get::<RpcPath>()
            .map(|p| p.0.as_str())
            .unwrap_or_default();
        if !role.allows(path) {
            let rpc = path.strip_prefix('/').unwrap_or(path);
            let rpc = if rpc.is_empty() { "this call" } else { rpc };
            return Err(Status::permission_denied(format!(
                "token {name:?} has role \"{role}\", which may not call {rpc} ({})",
                role.scope()
            )));
        }
        let origin = request
            .remote_addr()
            .map_or_else(|| "grpc".to_owned(), |a| format!("grpc {a}"));
        // Billing's RPCs take their ledger actor from the same check.
        request
            .extensions_mut()
            .insert(billing::grpc::Caller(name.clone()));
        request
            .extensions_mut()
            .insert(Actor { name, origin, role });
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
                role: Role::Admin,
            },
            Token {
                name: "nobody".into(),
                token: String::new(),
                role: Role::Admin,
            },
            Token {
                name: "router".into(),
                token: "charge".into(),
                role: Role::Charging,
            },
        ])
    }

    fn call(path: &str, bearer: &str) -> Result<Request<()>, Status> {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().expect("ascii"));
        request.extensions_mut().insert(RpcPath(path.into()));
        auth().call(request)
    }

    #[test]
    fn bearer_tokens_name_the_actor() {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().expect("ascii"));
        request
            .extensions_mut()
            .insert(RpcPath("/smsgw.admin.v1.Admin/ListUsers".into()));
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

    #[test]
    fn roles_decide_which_rpcs_a_token_calls() {
        let reserve = "/smsgw.billing.v1.Billing/Reserve";
        let err = call(reserve, "Bearer s3cret").expect_err("admin cannot settle");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(
            err.message().contains("role \"admin\""),
            "{}",
            err.message()
        );
        assert!(
            err.message().contains("Billing/Reserve"),
            "{}",
            err.message()
        );
        let ok = call(reserve, "Bearer charge").expect("charging settles");
        assert_eq!(actor(&ok).expect("actor").role, Role::Charging);
        let err = call("/smsgw.admin.v1.Admin/AddUser", "Bearer charge").expect_err("no admin");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        // Without a path (not wrapped in WithPath) nothing is allowed.
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().expect("ascii"));
        let err = auth().call(request).expect_err("no path");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn role_table() {
        let b = |m: &str| format!("/smsgw.billing.v1.Billing/{m}");
        let a = |m: &str| format!("/smsgw.admin.v1.Admin/{m}");
        for (path, admin, charging, read) in [
            (b("Reserve"), false, true, false),
            (b("Commit"), false, true, false),
            (b("Refund"), false, true, false),
            (b("Balance"), true, true, true),
            (b("Rate"), true, true, true),
            (b("TopUp"), true, false, false),
            (b("Adjust"), true, false, false),
            (a("ListUsers"), true, false, true),
            (a("AddUser"), true, false, false),
            (a("TopUp"), true, false, false),
            (a("SuspendAccount"), true, false, false),
            (a("GetBalance"), true, false, true),
            (a("ListTariffs"), true, false, true),
            (a("SetTariff"), true, false, false),
            (a("RemoveTariff"), true, false, false),
            (a("ListLcrCosts"), true, false, true),
            (a("SetLcrCost"), true, false, false),
            ("/smsgw.admin.v1.Stats/UserStats".into(), true, false, true),
            (
                "/smsgw.admin.v1.Admin/SomethingNew".into(),
                true,
                false,
                false,
            ),
            ("nonsense".into(), false, false, false),
        ] {
            assert_eq!(Role::Admin.allows(&path), admin, "admin {path}");
            assert_eq!(Role::Charging.allows(&path), charging, "charging {path}");
            assert_eq!(Role::Read.allows(&path), read, "read {path}");
        }
    }

    /// Every RPC the role lists name exists in the .proto files (no typo leaves a
    /// read call admin-only or a settlement call open to admins).
    #[test]
    fn listed_rpcs_exist() {
        let admin = include_str!("../../../proto/proto/admin.proto");
        let billing = include_str!("../../../proto/proto/billing.proto");
        for (service, method) in SETTLEMENT.iter().chain(&BILLING_READS).chain(&ADMIN_READS) {
            let proto = if *service == BILLING { billing } else { admin };
            assert!(
                proto.contains(&format!("rpc {method}(")),
                "{service}/{method} in the .proto"
            );
        }
    }
}
