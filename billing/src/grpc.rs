//! The `smsgw.billing.v1.Billing` gRPC service on top of the native engine: the boundary
//! for running billing as a separate process. In-process callers use `BillingEngine`
//! directly and skip protobuf.

use proto::billing::{self as pb, billing_server};
use tonic::{Request, Response, Status};

use crate::account::AccountId;
use crate::engine::{BillingEngine, LedgerRequest, ReserveRequest, Settled, Settlement};
use crate::error::BillingError;
use crate::ledger::MessageMeta;
use crate::money::{Currency, Micros};
use crate::tariff::{RateQuery, RateSource};

/// The authenticated caller's name, put in a request's extensions by whatever checked
/// its credentials (the admin server's token check). When present it is the actor of
/// top-ups and adjustments in the ledger and the audit log, whatever the request claims.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

fn caller<T>(request: &Request<T>) -> Option<String> {
    request.extensions().get::<Caller>().map(|c| c.0.clone())
}

#[derive(Clone)]
pub struct BillingService {
    engine: BillingEngine,
}

impl BillingService {
    pub fn new(engine: BillingEngine) -> BillingService {
        BillingService { engine }
    }

    /// The tonic server wrapper, ready for `tonic::transport::Server::add_service`.
    pub fn into_server(self) -> billing_server::BillingServer<BillingService> {
        billing_server::BillingServer::new(self)
    }
}

/// One gRPC code per refusal, so a remote router can tell them apart like a local one.
pub fn to_status(e: BillingError) -> Status {
    let msg = e.to_string();
    match e {
        BillingError::UnknownAccount(_) | BillingError::UnknownReservation { .. } => {
            Status::not_found(msg)
        }
        BillingError::Suspended(_) => Status::permission_denied(msg),
        BillingError::InsufficientFunds { .. }
        | BillingError::QuotaExhausted { .. }
        | BillingError::AlreadySettled { .. }
        | BillingError::CurrencyMismatch { .. } => Status::failed_precondition(msg),
        BillingError::InvalidAmount(_)
        | BillingError::InvalidCurrency(_)
        | BillingError::InvalidRequest(_)
        | BillingError::InvalidUrl(_) => Status::invalid_argument(msg),
        BillingError::DuplicateReference(_) => Status::already_exists(msg),
        BillingError::BufferFull { .. } => Status::resource_exhausted(msg),
        BillingError::StoreUnavailable(_) | BillingError::Closed => Status::unavailable(msg),
        BillingError::Store(_) | BillingError::Migration(_) | BillingError::Io(_) => {
            Status::internal(msg)
        }
    }
}

fn currency(s: &str) -> Result<Currency, Status> {
    Currency::new(s).map_err(to_status)
}

fn settle_reply(s: Settled) -> pb::SettleReply {
    pb::SettleReply {
        settlement: match s.settlement {
            Settlement::Applied => pb::Settlement::Applied,
            Settlement::Duplicate => pb::Settlement::Duplicate,
        } as i32,
        amount_micros: s.amount.0,
    }
}

fn opt_u16(v: Option<u32>, what: &str) -> Result<Option<u16>, Status> {
    v.map(|x| {
        u16::try_from(x).map_err(|_| Status::invalid_argument(format!("{what} out of range")))
    })
    .transpose()
}

#[tonic::async_trait]
impl billing_server::Billing for BillingService {
    async fn reserve(
        &self,
        request: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::ReserveReply>, Status> {
        let r = request.into_inner();
        let m = r.message.unwrap_or_default();
        let reference = r.reference.clone();
        let out = self
            .engine
            .reserve(ReserveRequest {
                account: AccountId(r.account_id),
                reference: r.reference,
                amount: Micros(r.amount_micros),
                currency: currency(&r.currency)?,
                meta: MessageMeta {
                    user: m.user.into(),
                    connector: m.connector.into(),
                    operator: m.operator.into(),
                    destination: m.destination.into(),
                    sender: m.sender.into(),
                    parts: m.parts,
                    text_length: m.text_length,
                    text_hash: m.text_hash.into(),
                    ..Default::default()
                },
            })
            .map_err(to_status)?;
        Ok(Response::new(pb::ReserveReply {
            reference,
            amount_micros: out.amount.0,
            charged_now_micros: out.charged_now.0,
            duplicate: out.duplicate,
        }))
    }

    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::SettleReply>, Status> {
        let r = request.into_inner();
        let op_id = (!r.operator_message_id.is_empty()).then_some(r.operator_message_id.as_str());
        let s = self
            .engine
            .commit(AccountId(r.account_id), &r.reference, op_id)
            .map_err(to_status)?;
        Ok(Response::new(settle_reply(s)))
    }

    async fn refund(
        &self,
        request: Request<pb::RefundRequest>,
    ) -> Result<Response<pb::SettleReply>, Status> {
        let r = request.into_inner();
        let s = self
            .engine
            .refund(AccountId(r.account_id), &r.reference, &r.final_status)
            .map_err(to_status)?;
        Ok(Response::new(settle_reply(s)))
    }

    async fn balance(
        &self,
        request: Request<pb::BalanceRequest>,
    ) -> Result<Response<pb::BalanceReply>, Status> {
        let b = self
            .engine
            .balance(AccountId(request.into_inner().account_id))
            .map_err(to_status)?;
        Ok(Response::new(pb::BalanceReply {
            account_id: b.account.0,
            currency: b.currency.to_string(),
            balance_micros: b.balance.0,
            credit_limit_micros: b.credit_limit.0,
            reserved_micros: b.reserved.0,
            available_micros: b.available.0,
            sms_count: b.sms_count,
        }))
    }

    async fn rate(
        &self,
        request: Request<pb::RateRequest>,
    ) -> Result<Response<pb::RateReply>, Status> {
        let r = request.into_inner();
        let mcc_mnc = match (opt_u16(r.mcc, "mcc")?, opt_u16(r.mnc, "mnc")?) {
            (Some(c), Some(n)) => Some((c, n)),
            _ => None,
        };
        let q = self
            .engine
            .rate(&RateQuery {
                account: AccountId(r.account_id),
                destination: &r.destination,
                mcc_mnc,
                route_rate: Micros(r.route_rate_micros),
                parts: r.parts,
                at: None,
            })
            .map_err(to_status)?;
        Ok(Response::new(pb::RateReply {
            price_per_part_micros: q.price_per_part.0,
            total_micros: q.total.0,
            currency: q.currency.to_string(),
            source: match q.source {
                RateSource::Tariff(id) => format!("tariff:{}", id.0),
                RateSource::Route => "route".into(),
            },
        }))
    }

    async fn top_up(
        &self,
        request: Request<pb::TopUpRequest>,
    ) -> Result<Response<pb::LedgerReply>, Status> {
        let origin = origin_of(&request);
        let caller = caller(&request);
        let mut r = request.into_inner();
        if let Some(name) = caller {
            r.actor = name;
        }
        let out = self
            .engine
            .top_up(LedgerRequest {
                account: AccountId(r.account_id),
                amount: Micros(r.amount_micros),
                currency: currency(&r.currency)?,
                sms_count: r.sms_count,
                reference: r.reference,
                actor: r.actor,
                origin,
                reason: r.reason,
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::LedgerReply {
            balance_micros: out.balance.0,
            duplicate: out.duplicate,
        }))
    }

    async fn adjust(
        &self,
        request: Request<pb::AdjustRequest>,
    ) -> Result<Response<pb::LedgerReply>, Status> {
        let origin = origin_of(&request);
        let caller = caller(&request);
        let mut r = request.into_inner();
        if let Some(name) = caller {
            r.actor = name;
        }
        let out = self
            .engine
            .adjust(LedgerRequest {
                account: AccountId(r.account_id),
                amount: Micros(r.amount_micros),
                currency: currency(&r.currency)?,
                sms_count: 0,
                reference: r.reference,
                actor: r.actor,
                origin,
                reason: r.reason,
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::LedgerReply {
            balance_micros: out.balance.0,
            duplicate: out.duplicate,
        }))
    }
}

/// The audit log's "from where" for a gRPC call: the peer's address when there is one.
fn origin_of<T>(request: &Request<T>) -> String {
    match request.remote_addr() {
        Some(addr) => format!("grpc {addr}"),
        None => "grpc".to_owned(),
    }
}
