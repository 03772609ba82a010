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

    /// Adds HTTP connector `cid` (`replace` false) or gives an existing one a new url
    /// and method (`replace` true).
    pub(super) async fn put_http_now(
        &self,
        request: Request<pb::HttpConnector>,
        replace: bool,
    ) -> Reply<pb::HttpConnector> {
        let actor = actor(&request)?;
        let h = request.into_inner();
        if h.cid.is_empty() || h.url.is_empty() {
            return Err(invalid("http connector: cid and url are required"));
        }
        let uri = h.url.parse::<axum::http::Uri>().ok();
        if !uri
            .as_ref()
            .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        {
            return Err(invalid(format!(
                "http connector {:?}: url {:?} is not an http:// or https:// URL",
                h.cid, h.url
            )));
        }
        let method = if h.method.is_empty() {
            "POST".to_owned()
        } else {
            h.method.to_uppercase()
        };
        if method != "GET" && method != "POST" {
            return Err(invalid(format!(
                "http connector {:?}: method {method:?} is not GET or POST",
                h.cid
            )));
        }
        let connector = HttpConnectorConfig {
            cid: h.cid.clone(),
            url: h.url.clone(),
            method,
        };
        let cid = h.cid.clone();
        let change = Change {
            actor: &actor,
            action: if replace {
                "connector.http.update"
            } else {
                "connector.http.add"
            },
            subject: format!("connector:{cid}"),
        };
        let put = connector.clone();
        self.state
            .change(
                change,
                |c| {
                    let existing = c.http_connectors.iter_mut().find(|x| x.cid == cid);
                    match (existing, replace) {
                        (Some(_), false) => {
                            Err(Status::already_exists(format!("connector {cid:?} exists")))
                        }
                        (None, true) => {
                            Err(Status::not_found(format!("no HTTP connector {cid:?}")))
                        }
                        (Some(x), true) => {
                            *x = put;
                            Ok(())
                        }
                        (None, false) => {
                            c.http_connectors.push(put);
                            Ok(())
                        }
                    }
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
