//! query_sm, cancel_sm and replace_sm from a client, answered from [`super::query`]; the
//! message id must be one of the client's own (else "unknown", never "not yours").

use smpp_core::{
    rusmpp::{
        CommandStatus, Pdu,
        pdus::{CancelSm, QuerySm, QuerySmResp, ReplaceSm, SubmitMulti, SubmitSm},
        types::EmptyOrFullCOctetString,
    },
    server::Response,
};

use super::Gateway;
use crate::{model::Message, user::User};

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

pub(super) fn replace(gateway: &Gateway, user: &User, pdu: &ReplaceSm) -> Response {
    let content = bytes::Bytes::copy_from_slice(pdu.short_message().as_ref());
    match gateway.replace_queued(
        pdu.message_id.as_str(),
        &user.uid,
        content,
        pdu.validity_period.as_str(),
    ) {
        Ok(()) => Response::Empty,
        Err(status) => Response::Error(status),
    }
}

/// The message every destination of a submit_multi gets (destination set per copy).
/// TLVs are not carried: submit_multi from clients is short_message only.
pub(super) fn multi_template(pdu: &SubmitMulti) -> Message {
    let single = SubmitSm::builder()
        .service_type(pdu.service_type.clone())
        .source_addr_ton(pdu.source_addr_ton)
        .source_addr_npi(pdu.source_addr_npi)
        .source_addr(pdu.source_addr.clone())
        .esm_class(pdu.esm_class)
        .protocol_id(pdu.protocol_id)
        .priority_flag(pdu.priority_flag)
        .schedule_delivery_time(pdu.schedule_delivery_time.clone())
        .validity_period(pdu.validity_period.clone())
        .registered_delivery(pdu.registered_delivery)
        .replace_if_present_flag(pdu.replace_if_present_flag)
        .data_coding(pdu.data_coding)
        .sm_default_msg_id(pdu.sm_default_msg_id)
        .short_message(pdu.short_message().clone())
        .build();
    Message::from_submit_sm(&single)
}
