//! The adapters between smpp-core and the gateway: [`SmppFront`] authenticates client
//! binds and hands their submit_sm to [`Gateway::submit`]; [`UplinkSide`] hands the
//! uplinks' results, inbound PDUs and link states to the gateway.

use std::sync::Arc;

use smpp_core::{
    client::{Inbound, LinkState, SubmitResult, UplinkHandler},
    rusmpp::{
        CommandStatus, Pdu,
        pdus::{DataSmResp, SubmitMulti, SubmitMultiResp, SubmitSmResp},
        types::COctetString,
        values::{DestAddress, Npi, Ton, UnsuccessSme},
    },
    server::{
        Authenticator, BindGrant, BindRequest, Request, RequestHandler, Response, SessionInfo,
    },
};

use super::{Gateway, ops};
use crate::{
    credentials::Requested,
    model::{Address, Message, Origin},
    user::User,
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
        let Some(user) = self
            .gateway
            .snapshot
            .load()
            .directory
            .by_username
            .get(&*session.system_id)
            .cloned()
        else {
            return Response::Error(CommandStatus::EsmeRinvsysid);
        };
        match request {
            Request::SubmitSm(pdu) => match self
                .submit(session, &user, Message::from_submit_sm(&pdu))
                .await
            {
                Ok(id) => Response::Ok(Pdu::SubmitSmResp(
                    SubmitSmResp::builder().message_id(id).build(),
                )),
                Err(status) => Response::Error(status),
            },
            Request::DataSm(pdu) => {
                let msg = Message::from_data_sm(&pdu, &Arc::from(""));
                match self.submit(session, &user, msg).await {
                    Ok(id) => Response::Ok(Pdu::DataSmResp(
                        DataSmResp::builder().message_id(id).build(),
                    )),
                    Err(status) => Response::Error(status),
                }
            }
            Request::SubmitMulti(pdu) => self.submit_multi(session, &user, &pdu).await,
            Request::QuerySm(pdu) => ops::query(&self.gateway, &user, &pdu),
            Request::CancelSm(pdu) => ops::cancel(&self.gateway, &user, &pdu),
            Request::ReplaceSm(pdu) => ops::replace(&self.gateway, &user, &pdu).await,
        }
    }

    fn on_bound(&self, session: &Arc<SessionInfo>) {
        if session.kind.can_receive() {
            self.gateway.flush_pending(&session.system_id);
        }
    }
}

impl SmppFront {
    /// The submit_sm path for one message from a client (submit_sm, data_sm, each
    /// destination of a submit_multi); returns our id as the response field.
    async fn submit(
        &self,
        session: &SessionInfo,
        user: &User,
        mut msg: Message,
    ) -> Result<COctetString<1, 65>, CommandStatus> {
        if msg.destination.addr.is_empty() {
            return Err(CommandStatus::EsmeRinvdstadr);
        }
        msg.origin = Origin::Smpp {
            session_id: session.id,
        };
        let requested = Requested::from_smpp(&msg);
        let id = self
            .gateway
            .submit(user, msg, requested)
            .await
            .map_err(|refusal| refusal.smpp_status())?;
        COctetString::from_string(id.to_string()).map_err(|_| CommandStatus::EsmeRsyserr)
    }

    /// Each destination through the submit path; the response carries the first
    /// accepted id and an unsuccess_sme per refused destination.
    async fn submit_multi(
        &self,
        session: &SessionInfo,
        user: &User,
        pdu: &SubmitMulti,
    ) -> Response {
        let template = Message::from_submit_multi(pdu);
        let mut first_id = None;
        let mut failed = Vec::new();
        for dest in pdu.dest_address() {
            let sme = match dest {
                DestAddress::SmeAddress(sme) => sme,
                // Distribution lists live on an SMSC; we keep none, and say so per name.
                DestAddress::DistributionListName(list) => {
                    failed.push(UnsuccessSme::new(
                        Ton::Unknown,
                        Npi::Unknown,
                        list.dl_name.clone(),
                        CommandStatus::EsmeRinvdestflag,
                    ));
                    continue;
                }
            };
            let mut msg = template.clone();
            msg.destination = Address::new(
                sme.destination_addr.as_str(),
                u8::from(sme.dest_addr_ton),
                u8::from(sme.dest_addr_npi),
            );
            match self.submit(session, user, msg).await {
                Ok(id) => {
                    first_id.get_or_insert(id);
                }
                Err(status) => failed.push(UnsuccessSme::new(
                    sme.dest_addr_ton,
                    sme.dest_addr_npi,
                    sme.destination_addr.clone(),
                    status,
                )),
            }
        }
        if first_id.is_none() && failed.is_empty() {
            return Response::Error(CommandStatus::EsmeRinvnumdests);
        }
        Response::Ok(Pdu::SubmitMultiResp(
            SubmitMultiResp::builder()
                .message_id(first_id.unwrap_or_default())
                .unsuccess_sme(failed)
                .build(),
        ))
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
