//! SMPP client connectors (uplinks, Jasmin `smppccm`) through the change funnel: add,
//! update, start, stop, remove. The stored `start` flag is what the uplink does now and
//! what a restart comes back to; the gateway restarts only the uplink that changed.

use proto::admin as pb;
use router::config::{ConnectorConfig, RouterConfig};
use serde_json::{Map, Value, json};
use tonic::{Request, Response, Status};

use super::{
    apply::{AdminState, Change},
    auth::{Actor, actor},
    convert::invalid,
    service::{AdminService, done, json},
    stats,
};

type Reply<T> = Result<Response<T>, Status>;

fn find<'a>(c: &'a RouterConfig, cid: &str) -> Option<&'a ConnectorConfig> {
    c.connectors.iter().find(|x| x.cid == cid)
}

fn no_connector(cid: &str) -> Status {
    Status::not_found(format!("no SMPP connector {cid:?}"))
}

/// Drops JSON nulls so that an absent typed field leaves the base (or the default).
fn set(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value.filter(|v| !v.is_null()) {
        map.insert(key.to_owned(), v);
    }
}

fn text(s: String) -> Option<Value> {
    (!s.is_empty()).then_some(Value::String(s))
}

/// A JSON object given by the admin (`config_json`), or an empty one.
fn object(text: &str, what: &str) -> Result<Map<String, Value>, Status> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid(format!(
            "{what}: config_json must be a JSON object"
        ))),
        Err(e) => Err(invalid(format!("{what}: config_json: {e}"))),
    }
}

fn decode(map: Map<String, Value>, cid: &str) -> Result<ConnectorConfig, Status> {
    serde_json::from_value(Value::Object(map)).map_err(|e| invalid(format!("connector {cid}: {e}")))
}

/// A new connector from `AddSmppConnector`: `config_json` is the base, typed fields win.
pub fn new_connector(c: pb::SmppConnector) -> Result<ConnectorConfig, Status> {
    if c.cid.trim().is_empty() {
        return Err(invalid("connector: cid is required"));
    }
    let mut map = object(&c.config_json, "connector")?;
    map.insert("cid".into(), Value::String(c.cid.clone()));
    set(&mut map, "host", text(c.host));
    set(&mut map, "port", (c.port != 0).then(|| json!(c.port)));
    set(&mut map, "username", text(c.username));
    set(&mut map, "password", text(c.password));
    set(&mut map, "bind", text(c.bind));
    set(&mut map, "start", c.start.map(Value::Bool));
    set(
        &mut map,
        "submit_throughput",
        c.submit_throughput.map(|v| json!(v)),
    );
    set(&mut map, "window", c.window.map(|v| json!(v)));
    decode(map, &c.cid)
}

/// `old` with the fields of an `UpdateSmppConnector`. The cid and the start flag stay.
pub fn updated(
    old: &ConnectorConfig,
    u: pb::SmppConnectorUpdate,
) -> Result<ConnectorConfig, Status> {
    let Value::Object(mut map) =
        serde_json::to_value(old).map_err(|e| Status::internal(e.to_string()))?
    else {
        return Err(Status::internal("a connector is not a JSON object"));
    };
    for (key, value) in object(&u.config_json, "connector")? {
        if key == "cid" || key == "start" {
            return Err(invalid(format!(
                "connector {}: {key} cannot be updated (remove and add, or start/stop)",
                old.cid
            )));
        }
        map.insert(key, value);
    }
    set(&mut map, "host", u.host.map(Value::String));
    set(&mut map, "port", u.port.map(|v| json!(v)));
    set(&mut map, "username", u.username.map(Value::String));
    set(
        &mut map,
        "password",
        u.password.filter(|p| !p.is_empty()).map(Value::String),
    );
    set(&mut map, "bind", u.bind.map(Value::String));
    set(
        &mut map,
        "submit_throughput",
        u.submit_throughput.map(|v| json!(v)),
    );
    set(&mut map, "window", u.window.map(|v| json!(v)));
    decode(map, &old.cid)
}

/// The routes that send to `cid`, as "MT route 10".
fn routes_using(c: &RouterConfig, cid: &str) -> Vec<String> {
    let names = |r: &router::config::RouteConfig| {
        r.connector.as_deref() == Some(cid) || r.connectors.iter().any(|x| x == cid)
    };
    let mt = c
        .mt_routes
        .iter()
        .filter(|r| names(r))
        .map(|r| format!("MT route {}", r.order));
    let mo = c
        .mo_routes
        .iter()
        .filter(|r| names(r))
        .map(|r| format!("MO route {}", r.order));
    mt.chain(mo).collect()
}

impl AdminService {
    fn status(&self, config: &RouterConfig, cid: &str) -> Result<pb::Connector, Status> {
        let c = find(config, cid).ok_or_else(|| no_connector(cid))?;
        Ok(stats::smpp_connector(&self.state, c))
    }

    pub(super) async fn get_connector_now(
        &self,
        request: Request<pb::ConnectorRef>,
    ) -> Reply<pb::Connector> {
        let cid = request.into_inner().cid;
        let config = self.state.current().await;
        Ok(Response::new(self.status(&config, &cid)?))
    }

    /// One change to one connector through the funnel, answered with its new status.
    async fn change_connector(
        &self,
        actor: &Actor,
        action: &str,
        cid: &str,
        edit: impl FnOnce(&mut RouterConfig) -> Result<(), Status>,
    ) -> Reply<pb::Connector> {
        let change = Change {
            actor,
            action,
            subject: format!("connector:{cid}"),
        };
        let config = self
            .state
            .change(change, edit, |c| json(find(c, cid)))
            .await?;
        Ok(Response::new(self.status(&config, cid)?))
    }

    pub(super) async fn add_smpp_now(
        &self,
        request: Request<pb::SmppConnector>,
    ) -> Reply<pb::Connector> {
        let actor = actor(&request)?;
        let connector = new_connector(request.into_inner())?;
        let cid = connector.cid.clone();
        self.change_connector(&actor, "connector.smpp.add", &cid, |c| {
            if find(c, &cid).is_some() || c.http_connectors.iter().any(|h| h.cid == cid) {
                return Err(Status::already_exists(format!("connector {cid:?} exists")));
            }
            c.connectors.push(connector);
            Ok(())
        })
        .await
    }

    pub(super) async fn update_smpp_now(
        &self,
        request: Request<pb::SmppConnectorUpdate>,
    ) -> Reply<pb::Connector> {
        let actor = actor(&request)?;
        let update = request.into_inner();
        let cid = update.cid.clone();
        self.change_connector(&actor, "connector.smpp.update", &cid, |c| {
            let slot = c.connectors.iter_mut().find(|x| x.cid == cid);
            let slot = slot.ok_or_else(|| no_connector(&cid))?;
            *slot = updated(slot, update)?;
            Ok(())
        })
        .await
    }

    /// Start or stop: the stored `start` flag changes, and with it the uplink.
    pub(super) async fn set_started(
        &self,
        request: Request<pb::ConnectorRef>,
        on: bool,
    ) -> Reply<pb::Connector> {
        let actor = actor(&request)?;
        let cid = request.into_inner().cid;
        let action = if on {
            "connector.smpp.start"
        } else {
            "connector.smpp.stop"
        };
        self.change_connector(&actor, action, &cid, |c| {
            let slot = c.connectors.iter_mut().find(|x| x.cid == cid);
            slot.ok_or_else(|| no_connector(&cid))?.start = on;
            Ok(())
        })
        .await
    }

    pub(super) async fn remove_smpp_now(
        &self,
        request: Request<pb::ConnectorRef>,
    ) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        let cid = request.into_inner().cid;
        let change = Change {
            actor: &actor,
            action: "connector.smpp.remove",
            subject: format!("connector:{cid}"),
        };
        let state: &AdminState = &self.state;
        state
            .change(
                change,
                |c| {
                    if find(c, &cid).is_none() {
                        return Err(no_connector(&cid));
                    }
                    let routes = routes_using(c, &cid);
                    if !routes.is_empty() {
                        return Err(Status::failed_precondition(format!(
                            "connector {cid} is used by {}: remove those routes first",
                            routes.join(", ")
                        )));
                    }
                    if c.lcr.costs.iter().any(|k| k.connector == cid) {
                        return Err(Status::failed_precondition(format!(
                            "connector {cid} is in the [lcr] cost table"
                        )));
                    }
                    let pending = state.gateway.pending_on(&cid);
                    if pending > 0 {
                        return Err(Status::failed_precondition(format!(
                            "connector {cid} still has {pending} message part(s) queued or in \
                             flight: start it so that they drain before removing it"
                        )));
                    }
                    c.connectors.retain(|x| x.cid != cid);
                    Ok(())
                },
                |c| json(find(c, &cid)),
            )
            .await?;
        Ok(done(format!("connector {cid} removed")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ConnectorConfig {
        new_connector(pb::SmppConnector {
            cid: "op".into(),
            port: 2776,
            ..pb::SmppConnector::default()
        })
        .expect("defaults fill the rest")
    }

    #[test]
    fn typed_fields_override_the_json_base_and_defaults_fill_the_rest() {
        let c = new_connector(pb::SmppConnector {
            cid: "op".into(),
            host: "smsc.example".into(),
            window: Some(8),
            config_json: r#"{"window": 2, "queue_capacity": 7, "systype": "x"}"#.into(),
            ..pb::SmppConnector::default()
        })
        .expect("valid");
        assert_eq!(
            (c.host.as_str(), c.port, c.window),
            ("smsc.example", 2775, 8)
        );
        assert_eq!((c.queue_capacity, c.systype.as_str()), (7, "x"));
        assert!(c.start, "absent start = started");
        let err = new_connector(pb::SmppConnector {
            cid: "op".into(),
            config_json: r#"{"no_such_option": 1}"#.into(),
            ..pb::SmppConnector::default()
        })
        .expect_err("unknown field");
        assert!(
            err.message().contains("no_such_option"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn an_update_changes_only_what_it_names() {
        let old = base();
        let new = updated(
            &old,
            pb::SmppConnectorUpdate {
                cid: "op".into(),
                port: Some(2800),
                password: Some(String::new()),
                config_json: r#"{"requeue_count": 9}"#.into(),
                ..pb::SmppConnectorUpdate::default()
            },
        )
        .expect("valid");
        assert_eq!((new.port, new.requeue_count), (2800, 9));
        assert_eq!(
            new.password, old.password,
            "an empty password is not a change"
        );
        assert_eq!(new.host, old.host);
        for bad in [r#"{"start": false}"#, r#"{"cid": "x"}"#, "[1]"] {
            let u = pb::SmppConnectorUpdate {
                cid: "op".into(),
                config_json: bad.into(),
                ..pb::SmppConnectorUpdate::default()
            };
            assert_eq!(
                updated(&old, u).expect_err(bad).code(),
                tonic::Code::InvalidArgument
            );
        }
    }
}
