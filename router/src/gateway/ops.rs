//! query_sm, cancel_sm and replace_sm from a client, answered from [`super::query`]; the
//! message id must be one of the client's own (else "unknown", never "not yours").

use smpp_core::{
    rusmpp::{
        CommandStatus, Pdu,
        pdus::{CancelSm, QuerySm, QuerySmResp, ReplaceSm},
        types::EmptyOrFullCOctetString,
    },
    server::Response,
};

use super::Gateway;
use crate::user::User;

pub(super) fn query(gateway: &Gateway, user: &User, pdu: &QuerySm) -> Response {
    let Some(status) = gateway.query(pdu.message_id.as_str(), &user.uid) else {
        return Response::Error(CommandStatus::EsmeRqueryfail);
    };
    let final_date = status
        .final_date
        .and_then(|d| EmptyOrFullCOctetString::from_string(d).ok())
        .unwrap_or_default();
    Response::Ok(Pdu::QuerySmResp(
        QuerySmResp::builder()
            .message_id(pdu.message_id.clone())
            .final_date(final_date)
            .message_state(status.state)
            .error_code(status.error_code)
            .build(),
    ))
}

pub(super) fn cancel(gateway: &Gateway, user: &User, pdu: &CancelSm) -> Response {
    match gateway.cancel(pdu.message_id.as_str(), &user.uid) {
        Ok(()) => Response::Empty,
        Err(status) => Response::Error(status),
    }
}

pub(super) async fn replace(gateway: &Gateway, user: &User, pdu: &ReplaceSm) -> Response {
    let content = bytes::Bytes::copy_from_slice(pdu.short_message().as_ref());
    match gateway
        .replace_queued(
            pdu.message_id.as_str(),
            &user.uid,
            content,
            pdu.validity_period.as_str(),
        )
        .await
    {
        Ok(()) => Response::Empty,
        Err(status) => Response::Error(status),
    }
}
