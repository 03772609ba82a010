//! Groups and HTTP connectors: small objects keyed by id, added and removed whole.

use proto::admin as pb;
use router::config::{GroupConfig, HttpConnectorConfig};
use tonic::{Request, Response, Status};

use super::{
    apply::Change,
    auth::actor,
    convert::invalid,
    service::{AdminService, done, json},
};

type Reply<T> = Result<Response<T>, Status>;

impl AdminService {
    pub(super) async fn add_group_now(&self, request: Request<pb::Group>) -> Reply<pb::Group> {
        let actor = actor(&request)?;
        let g = request.into_inner();
        if g.gid.is_empty() {
            return Err(invalid("group: gid is required"));
        }
        let group = GroupConfig {
            gid: g.gid.clone(),
            enabled: g.enabled.unwrap_or(true),
        };
        let gid = g.gid.clone();
        let change = Change {
            actor: &actor,
            action: "group.add",
            subject: format!("group:{gid}"),
        };
        self.state
            .change(
                change,
                |c| {
                    if c.groups.iter().any(|x| x.gid == gid) {
                        return Err(Status::already_exists(format!("group {gid:?} exists")));
                    }
                    c.groups.push(group.clone());
                    Ok(())
                },
                |c| json(c.groups.iter().find(|x| x.gid == gid)),
            )
            .await?;
        Ok(Response::new(pb::Group {
            gid: g.gid,
            enabled: Some(group.enabled),
        }))
    }

    pub(super) async fn remove_group_now(&self, request: Request<pb::GroupRef>) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        let gid = request.into_inner().gid;
        let change = Change {
            actor: &actor,
            action: "group.remove",
            subject: format!("group:{gid}"),
        };
        self.state
            .change(
                change,
                |c| {
                    let before = c.groups.len();
                    c.groups.retain(|g| g.gid != gid);
                    if c.groups.len() == before {
                        return Err(Status::not_found(format!("no group {gid:?}")));
                    }
                    Ok(())
                },
                |c| json(c.groups.iter().find(|x| x.gid == gid)),
            )
            .await?;
        Ok(done(format!("group {gid} removed")))
    }

    pub(super) async fn add_http_now(
        &self,
        request: Request<pb::HttpConnector>,
    ) -> Reply<pb::HttpConnector> {
        let actor = actor(&request)?;
        let h = request.into_inner();
        if h.cid.is_empty() || h.url.is_empty() {
            return Err(invalid("http connector: cid and url are required"));
        }
        let connector = HttpConnectorConfig {
            cid: h.cid.clone(),
            url: h.url.clone(),
            method: if h.method.is_empty() {
                "POST".into()
            } else {
                h.method.to_uppercase()
            },
        };
        let cid = h.cid.clone();
        let change = Change {
            actor: &actor,
            action: "connector.http.add",
            subject: format!("connector:{cid}"),
        };
        let added = connector.clone();
        self.state
            .change(
                change,
                |c| {
                    if c.http_connectors.iter().any(|x| x.cid == cid) {
                        return Err(Status::already_exists(format!("connector {cid:?} exists")));
                    }
                    c.http_connectors.push(added);
                    Ok(())
                },
                |c| json(c.http_connectors.iter().find(|x| x.cid == cid)),
            )
            .await?;
        Ok(Response::new(pb::HttpConnector {
            cid: connector.cid,
            url: connector.url,
            method: connector.method,
        }))
    }

    pub(super) async fn remove_http_now(
        &self,
        request: Request<pb::ConnectorRef>,
    ) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        let cid = request.into_inner().cid;
        let change = Change {
            actor: &actor,
            action: "connector.http.remove",
            subject: format!("connector:{cid}"),
        };
        self.state
            .change(
                change,
                |c| {
                    let before = c.http_connectors.len();
                    c.http_connectors.retain(|x| x.cid != cid);
                    if c.http_connectors.len() == before {
                        return Err(Status::not_found(format!("no HTTP connector {cid:?}")));
                    }
                    Ok(())
                },
                |c| json(c.http_connectors.iter().find(|x| x.cid == cid)),
            )
            .await?;
        Ok(done(format!("connector {cid} removed")))
    }
}
