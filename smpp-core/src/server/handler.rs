//! What the server asks of the layer above it (the router): who may bind, and what to do
//! with each request.

use std::{future::Future, net::SocketAddr, sync::Arc};

use rusmpp::{
    CommandStatus, Pdu,
    pdus::{CancelSm, DataSm, QuerySm, ReplaceSm, SubmitMulti, SubmitSm},
};

use crate::bind::BindKind;

/// A bind attempt, as the authenticator sees it.
#[derive(Debug, Clone)]
pub struct BindRequest {
    pub kind: BindKind,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub peer: SocketAddr,
}

/// What a successful bind is allowed.
#[derive(Debug, Clone, Default)]
pub struct BindGrant {
    /// The name sessions are registered under (usually the system_id itself).
    pub system_id: Arc<str>,
    /// Max bound sessions for this user; the server's own cap applies as well.
    pub max_sessions: Option<usize>,
    /// Submit rate cap for each session of this user (submits per second).
    pub submit_rate: Option<f64>,
}

/// Decides binds. Return the bind_*_resp status on refusal (ESME_RINVPASWD,
/// ESME_RINVSYSID or ESME_RBINDFAIL); the session is then closed.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(
        &self,
        request: &BindRequest,
    ) -> impl Future<Output = Result<BindGrant, CommandStatus>> + Send;
}

/// A bound session, as handlers see it.
#[derive(Debug)]
pub struct SessionInfo {
    pub id: u64,
    pub system_id: Arc<str>,
    pub kind: BindKind,
    pub peer: SocketAddr,
}

/// Requests that carry messages or ask about them.
#[derive(Debug)]
pub enum Request {
    SubmitSm(Box<SubmitSm>),
    SubmitMulti(Box<SubmitMulti>),
    DataSm(Box<DataSm>),
    QuerySm(Box<QuerySm>),
    CancelSm(Box<CancelSm>),
    ReplaceSm(Box<ReplaceSm>),
}

impl Request {
    pub fn name(&self) -> &'static str {
        match self {
            Self::SubmitSm(_) => "submit_sm",
            Self::SubmitMulti(_) => "submit_multi",
            Self::DataSm(_) => "data_sm",
            Self::QuerySm(_) => "query_sm",
            Self::CancelSm(_) => "cancel_sm",
            Self::ReplaceSm(_) => "replace_sm",
        }
    }
}

/// The answer to a [`Request`]. An error status is sent without a body, as SMPP 3.4
/// prescribes; `Ok` carries the response body (submit_sm_resp with our message id…).
// Responses are built once and moved straight into the encoder; boxing would add an
// allocation per message on the hottest path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Response {
    Ok(Pdu),
    /// ESME_ROK with no body (cancel_sm_resp, replace_sm_resp).
    Empty,
    Error(CommandStatus),
}

/// Handles requests from bound ESMEs. Futures run concurrently within the session (up to
/// the window), so responses may complete out of order.
pub trait RequestHandler: Send + Sync + 'static {
    fn handle(
        &self,
        session: &Arc<SessionInfo>,
        request: Request,
    ) -> impl Future<Output = Response> + Send;

    /// A session finished binding (receipts waiting for this user can go now).
    fn on_bound(&self, _session: &Arc<SessionInfo>) {}

    /// A bound session ended.
    fn on_unbound(&self, _session: &Arc<SessionInfo>) {}
}
