//! `serve --sink`: accept any bind and acknowledge every submit_sm with a fresh UUID,
//! routing nothing. It exists to measure the SMPP session engine alone.

use std::sync::Arc;

use smpp_core::{
    rusmpp::{CommandStatus, pdus::SubmitSmResp, types::COctetString},
    server::{
        Authenticator, BindGrant, BindRequest, Request, RequestHandler, Response, SessionInfo,
    },
};

pub struct Sink;

impl Authenticator for Sink {
    async fn authenticate(&self, request: &BindRequest) -> Result<BindGrant, CommandStatus> {
        Ok(BindGrant {
            system_id: request.system_id.as_str().into(),
            ..BindGrant::default()
        })
    }
}

impl RequestHandler for Sink {
    async fn handle(&self, _session: &Arc<SessionInfo>, request: Request) -> Response {
        match request {
            Request::SubmitSm(_) => {
                let id = uuid::Uuid::new_v4().to_string();
                match COctetString::from_string(id) {
                    Ok(id) => Response::Ok(SubmitSmResp::new(id, Vec::new()).into()),
                    Err(_) => Response::Error(CommandStatus::EsmeRsyserr),
                }
            }
            _ => Response::Error(CommandStatus::EsmeRsyserr),
        }
    }
}
