//! The adapters between smpp-core and the gateway: [`SmppFront`] authenticates client
//! binds and hands their submit_sm to [`Gateway::submit`]; [`UplinkSide`] hands the
//! uplinks' results, inbound PDUs and link states to the gateway.

use std::sync::Arc;

use smpp_core::{
    client::{Inbound, LinkState, SubmitResult, UplinkHandler},
    rusmpp::{CommandStatus, Pdu, pdus::SubmitSmResp, types::COctetString},
    server::{
        Authenticator, BindGrant, BindRequest, Request, RequestHandler, Response, SessionInfo,
    },
};

use super::Gateway;
use crate::{
    credentials::Requested,
    model::{Message, Origin},
};

/// The SMPP server's view of the gateway.
pub struct SmppFront {
    gateway: Arc<Gateway>,
}

impl SmppFront {
    pub(super) fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }
}

impl Authenticator for SmppFront {
    async fn authenticate(&self, request: &BindRequest) -> Result<BindGrant, CommandStatus> {
        let snap = self.gateway.snapshot.load_full();
        let user = snap
            .directory
            .authenticate(&request.system_id, &request.password)
            .await
            .ok_or(CommandStatus::EsmeRinvpaswd)?;
        if !user.smpp_bind {
            return Err(CommandStatus::EsmeRbindfail);
        }
        Ok(BindGrant {
            system_id: user.username.clone(),
            max_sessions: user.max_bindings,
            // The per-user throughput quota is enforced across binds by the gateway.
            submit_rate: None,
        })
    }
}

impl RequestHandler for SmppFront {
    async fn handle(&self, session: &Arc<SessionInfo>, request: Request) -> Response {
        let Request::SubmitSm(pdu) = request else {
            // Jasmin answers data_sm and other requests ESME_RSYSERR.
            return Response::Error(CommandStatus::EsmeRsyserr);
        };
        let user = match self
            .gateway
            .snapshot
            .load()
            .directory
            .by_username
            .get(&*session.system_id)
        {
            Some(user) => user.clone(),
            None => return Response::Error(CommandStatus::EsmeRinvsysid),
        };
        let mut msg = Message::from_submit_sm(&pdu);
        if msg.destination.addr.is_empty() {
            return Response::Error(CommandStatus::EsmeRinvdstadr);
        }
        msg.origin = Origin::Smpp {
            session_id: session.id,
        };
        let requested = Requested::from_smpp(&msg);
        match self.gateway.submit(&user, msg, requested).await {
            Ok(id) => match COctetString::from_string(id.to_string()) {
                Ok(id) => Response::Ok(Pdu::SubmitSmResp(
                    SubmitSmResp::builder().message_id(id).build(),
                )),
                Err(_) => Response::Error(CommandStatus::EsmeRsyserr),
            },
            Err(refusal) => Response::Error(refusal.smpp_status()),
        }
    }

    fn on_bound(&self, session: &Arc<SessionInfo>) {
        if session.kind.can_receive() {
            self.gateway.flush_pending(&session.system_id);
        }
    }
}

/// One uplink's view of the gateway.
pub(super) struct UplinkSide {
    gateway: Arc<Gateway>,
    cid: Arc<str>,
}

impl UplinkSide {
    pub(super) fn new(gateway: Arc<Gateway>, cid: Arc<str>) -> Self {
        Self { gateway, cid }
    }
}

impl UplinkHandler for UplinkSide {
    fn on_submit_result(&self, result: SubmitResult) {
        self.gateway.on_submit_result(&self.cid, result);
    }

    async fn on_inbound(&self, inbound: Inbound) -> CommandStatus {
        self.gateway.on_inbound(&self.cid, inbound).await
    }

    fn on_state(&self, state: LinkState) {
        if let LinkState::Disconnected { .. } = state {
            self.gateway.link_down(&self.cid);
        }
    }
}
