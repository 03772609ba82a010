//! `smsgw.admin.v1.Admin`: each RPC edits the configuration through
//! [`AdminState::change`] or reads the one in force.

use std::sync::Arc;

use proto::admin::{self as pb, admin_server::Admin};
use router::config::RouterConfig;
use serde_json::Value;
use tonic::{Request, Response, Status};

use super::{
    apply::{AdminState, Change, redact},
    auth::actor,
    convert::{self, UserFields},
};

type Reply<T> = Result<Response<T>, Status>;

pub struct AdminService {
    pub(super) state: Arc<AdminState>,
}

impl AdminService {
    pub fn new(state: Arc<AdminState>) -> Self {
        Self { state }
    }
}

pub(super) fn json<T: serde::Serialize>(v: Option<&T>) -> Option<Value> {
    v.and_then(|v| serde_json::to_value(v).ok())
}

fn find_user<'a>(c: &'a RouterConfig, uid: &str) -> Option<&'a router::config::UserConfig> {
    c.users.iter().find(|u| u.uid == uid)
}

fn no_user(uid: &str) -> Status {
    Status::not_found(format!("no user {uid:?}"))
}

pub(super) fn done(detail: impl Into<String>) -> Response<pb::Done> {
    Response::new(pb::Done {
        detail: detail.into(),
    })
}

/// Stored passwords are Argon2id hashes; hashing is slow by design, so off the runtime.
async fn hashed(password: String) -> Result<String, Status> {
    if password.starts_with("$argon2") {
        return Ok(password);
    }
    tokio::task::spawn_blocking(move || router::user::hash_password(&password))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(Status::internal)
}

impl AdminService {
    async fn set_enabled(&self, request: Request<pb::UserRef>, on: bool) -> Reply<pb::User> {
        let actor = actor(&request)?;
        let uid = request.into_inner().uid;
        let change = Change {
            actor: &actor,
            action: if on { "user.enable" } else { "user.disable" },
            subject: format!("user:{uid}"),
        };
        let config = self
            .state
            .change(
                change,
                |c| {
                    let user = c.users.iter_mut().find(|u| u.uid == uid);
                    user.ok_or_else(|| no_user(&uid))?.enabled = on;
                    Ok(())
                },
                |c| json(find_user(c, &uid)),
            )
            .await?;
        let user = find_user(&config, &uid).ok_or_else(|| no_user(&uid))?;
        Ok(Response::new(convert::user(user)))
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn list_users(&self, _: Request<pb::ListRequest>) -> Reply<pb::UserList> {
        let config = self.state.current().await;
        let users = config.users.iter().map(convert::user).collect();
        Ok(Response::new(pb::UserList { users }))
    }

    async fn get_user(&self, request: Request<pb::UserRef>) -> Reply<pb::User> {
        let uid = request.into_inner().uid;
        let config = self.state.current().await;
        let user = find_user(&config, &uid).ok_or_else(|| no_user(&uid))?;
        Ok(Response::new(convert::user(user)))
    }

    async fn add_user(&self, request: Request<pb::User>) -> Reply<pb::User> {
        let actor = actor(&request)?;
        let mut user = convert::new_user(request.into_inner())?;
        user.password = hashed(user.password).await?;
        let uid = user.uid.clone();
        let change = Change {
            actor: &actor,
            action: "user.add",
            subject: format!("user:{uid}"),
        };
        let added = user.clone();
        self.state
            .change(
                change,
                |c| {
                    if find_user(c, &uid).is_some() {
                        return Err(Status::already_exists(format!("user {uid:?} exists")));
                    }
                    c.users.push(added);
                    Ok(())
                },
                |c| json(find_user(c, &uid)),
            )
            .await?;
        Ok(Response::new(convert::user(&user)))
    }

    async fn update_user(&self, request: Request<pb::UserUpdate>) -> Reply<pb::User> {
        let actor = actor(&request)?;
        let u = request.into_inner();
        let password = match u.password.filter(|p| !p.is_empty()) {
            Some(p) => Some(hashed(p).await?),
            None => None,
        };
        let uid = u.uid.clone();
        let fields = UserFields {
            enabled: u.enabled,
            balance: u.balance,
            sms_count: u.sms_count,
            smpps_throughput: u.smpps_throughput,
            http_throughput: u.http_throughput,
            default_src_addr: u.default_src_addr,
            dst_addr_filter: u.dst_addr_filter,
            src_addr_filter: u.src_addr_filter,
            content_filter: u.content_filter,
            max_bindings: u.max_bindings,
        };
        let change = Change {
            actor: &actor,
            action: "user.update",
            subject: format!("user:{uid}"),
        };
        let config = self
            .state
            .change(
                change,
                |c| {
                    let user = c.users.iter_mut().find(|x| x.uid == uid);
                    let user = user.ok_or_else(|| no_user(&uid))?;
                    if let Some(v) = u.username.filter(|s| !s.is_empty()) {
                        user.username = v;
                    }
                    if let Some(v) = u.gid.filter(|s| !s.is_empty()) {
                        user.gid = v;
                    }
                    if let Some(v) = password {
                        user.password = v;
                    }
                    fields.apply(user);
                    Ok(())
                },
                |c| json(find_user(c, &uid)),
            )
            .await?;
        let user = find_user(&config, &uid).ok_or_else(|| no_user(&uid))?;
        Ok(Response::new(convert::user(user)))
    }

    async fn remove_user(&self, request: Request<pb::UserRef>) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        let uid = request.into_inner().uid;
        let change = Change {
            actor: &actor,
            action: "user.remove",
            subject: format!("user:{uid}"),
        };
        self.state
            .change(
                change,
                |c| {
                    let before = c.users.len();
                    c.users.retain(|u| u.uid != uid);
                    if c.users.len() == before {
                        return Err(no_user(&uid));
                    }
                    Ok(())
                },
                |c| json(find_user(c, &uid)),
            )
            .await?;
        Ok(done(format!("user {uid} removed")))
    }

    async fn enable_user(&self, request: Request<pb::UserRef>) -> Reply<pb::User> {
        self.set_enabled(request, true).await
    }

    async fn disable_user(&self, request: Request<pb::UserRef>) -> Reply<pb::User> {
        self.set_enabled(request, false).await
    }

    async fn list_groups(&self, _: Request<pb::ListRequest>) -> Reply<pb::GroupList> {
        let config = self.state.current().await;
        let groups = config
            .groups
            .iter()
            .map(|g| pb::Group {
                gid: g.gid.clone(),
                enabled: Some(g.enabled),
            })
            .collect();
        Ok(Response::new(pb::GroupList { groups }))
    }

    async fn add_group(&self, request: Request<pb::Group>) -> Reply<pb::Group> {
        self.add_group_now(request).await
    }

    async fn remove_group(&self, request: Request<pb::GroupRef>) -> Reply<pb::Done> {
        self.remove_group_now(request).await
    }

    async fn list_routes(&self, request: Request<pb::RouteTable>) -> Reply<pb::RouteList> {
        let table = convert::table(request.into_inner().table)?;
        let config = self.state.current().await;
        Ok(Response::new(super::tables::list_routes(&config, table)))
    }

    async fn add_route(&self, request: Request<pb::Route>) -> Reply<pb::Route> {
        let actor = actor(&request)?;
        super::tables::add_route(&self.state, &actor, request.into_inner()).await
    }

    async fn remove_route(&self, request: Request<pb::RouteRef>) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        super::tables::remove_route(&self.state, &actor, request.into_inner()).await
    }

    async fn flush_routes(&self, request: Request<pb::RouteTable>) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        super::tables::flush_routes(&self.state, &actor, request.into_inner()).await
    }

    async fn list_filters(&self, _: Request<pb::ListRequest>) -> Reply<pb::FilterList> {
        let config = self.state.current().await;
        let filters = config.filters.iter().map(convert::filter).collect();
        Ok(Response::new(pb::FilterList { filters }))
    }

    async fn add_filter(&self, request: Request<pb::Filter>) -> Reply<pb::Filter> {
        let actor = actor(&request)?;
        super::tables::add_filter(&self.state, &actor, request.into_inner()).await
    }

    async fn remove_filter(&self, request: Request<pb::FilterRef>) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        super::tables::remove_filter(&self.state, &actor, request.into_inner().fid).await
    }

    async fn list_interceptors(
        &self,
        request: Request<pb::RouteTable>,
    ) -> Reply<pb::InterceptorList> {
        let table = convert::table(request.into_inner().table)?;
        let config = self.state.current().await;
        Ok(Response::new(super::tables::list_interceptors(
            &config, table,
        )))
    }

    async fn add_interceptor(&self, request: Request<pb::Interceptor>) -> Reply<pb::Interceptor> {
        let actor = actor(&request)?;
        super::tables::add_interceptor(&self.state, &actor, request.into_inner()).await
    }

    async fn remove_interceptor(&self, request: Request<pb::RouteRef>) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        super::tables::remove_interceptor(&self.state, &actor, request.into_inner()).await
    }

    async fn list_connectors(&self, _: Request<pb::ListRequest>) -> Reply<pb::ConnectorList> {
        let config = self.state.current().await;
        Ok(Response::new(super::stats::connectors(
            &self.state,
            &config,
        )))
    }

    async fn get_connector(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::Connector> {
        self.get_connector_now(request).await
    }

    async fn add_smpp_connector(
        &self,
        request: Request<pb::SmppConnector>,
    ) -> Reply<pb::Connector> {
        self.add_smpp_now(request).await
    }

    async fn update_smpp_connector(
        &self,
        request: Request<pb::SmppConnectorUpdate>,
    ) -> Reply<pb::Connector> {
        self.update_smpp_now(request).await
    }

    async fn start_connector(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::Connector> {
        self.set_started(request, true).await
    }

    async fn stop_connector(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::Connector> {
        self.set_started(request, false).await
    }

    async fn remove_smpp_connector(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::Done> {
        self.remove_smpp_now(request).await
    }

    async fn add_http_connector(
        &self,
        request: Request<pb::HttpConnector>,
    ) -> Reply<pb::HttpConnector> {
        self.put_http_now(request, false).await
    }

    async fn update_http_connector(
        &self,
        request: Request<pb::HttpConnector>,
    ) -> Reply<pb::HttpConnector> {
        self.put_http_now(request, true).await
    }

    async fn remove_http_connector(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::Done> {
        self.remove_http_now(request).await
    }

    async fn get_balance(&self, request: Request<pb::AccountRef>) -> Reply<pb::Balance> {
        let uid = request.into_inner().uid;
        Ok(Response::new(self.state.balance(&uid)?))
    }

    async fn top_up(&self, request: Request<pb::TopUpRequest>) -> Reply<pb::Balance> {
        let actor = actor(&request)?;
        Ok(Response::new(
            self.state.top_up(&actor, request.into_inner()).await?,
        ))
    }

    async fn set_credit_limit(
        &self,
        request: Request<pb::CreditLimitRequest>,
    ) -> Reply<pb::Balance> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        Ok(Response::new(
            self.state.credit_limit(&actor, &r.uid, &r.limit).await?,
        ))
    }

    async fn suspend_account(&self, request: Request<pb::AccountRef>) -> Reply<pb::Balance> {
        let actor = actor(&request)?;
        let uid = request.into_inner().uid;
        Ok(Response::new(
            self.state.set_suspended(&actor, &uid, true).await?,
        ))
    }

    async fn resume_account(&self, request: Request<pb::AccountRef>) -> Reply<pb::Balance> {
        let actor = actor(&request)?;
        let uid = request.into_inner().uid;
        Ok(Response::new(
            self.state.set_suspended(&actor, &uid, false).await?,
        ))
    }

    async fn list_tariffs(&self, request: Request<pb::TariffFilter>) -> Reply<pb::TariffList> {
        let uid = request.into_inner().uid;
        Ok(Response::new(self.state.tariffs(&uid)?))
    }

    async fn set_tariff(&self, request: Request<pb::Tariff>) -> Reply<pb::Tariff> {
        let actor = actor(&request)?;
        Ok(Response::new(
            self.state.set_tariff(&actor, request.into_inner()).await?,
        ))
    }

    async fn remove_tariff(&self, request: Request<pb::TariffRef>) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        let id = request.into_inner().id;
        Ok(Response::new(self.state.remove_tariff(&actor, id).await?))
    }

    async fn list_lcr_costs(&self, _: Request<pb::ListRequest>) -> Reply<pb::LcrCostList> {
        Ok(Response::new(self.lcr_costs().await))
    }

    async fn set_lcr_cost(&self, request: Request<pb::LcrCost>) -> Reply<pb::LcrCost> {
        self.set_lcr_cost_now(request).await
    }

    async fn remove_lcr_cost(&self, request: Request<pb::LcrCost>) -> Reply<pb::Done> {
        self.remove_lcr_cost_now(request).await
    }

    async fn explain_route(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Reply<pb::RouteExplanation> {
        let r = request.into_inner();
        let e = self.state.gateway.explain(&r.user, &r.to);
        Ok(Response::new(pb::RouteExplanation {
            number: e.number.clone().unwrap_or_default(),
            network: e.network.clone().unwrap_or_default(),
            route: e.route.clone(),
            candidates: e
                .candidates
                .iter()
                .map(|c| pb::ExplainedCandidate {
                    connector: c.connector.clone(),
                    cost: router::lcr::format_micros(c.cost),
                    score: c.score,
                    state: c.state.into(),
                    verdict: c.verdict.into(),
                })
                .collect(),
            choice: e.choice.clone().unwrap_or_default(),
            note: e.note.clone(),
            text: e.to_string(),
            route_rate_micros: e.route_rate,
            mcc: e.mcc_mnc.map(|(mcc, _)| mcc.into()),
            mnc: e.mcc_mnc.map(|(_, mnc)| mnc.into()),
        }))
    }

    async fn load_networks(&self, request: Request<pb::NetworkTables>) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        let t = request.into_inner();
        let (prefix_rows, ported_rows) = (
            t.prefixes_csv.lines().count(),
            t.portability_csv.lines().count(),
        );
        let gateway = self.state.gateway.clone();
        let (networks, ported) = tokio::task::spawn_blocking(move || {
            gateway.load_networks(&t.prefixes_csv, &t.portability_csv)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(convert::invalid)?;
        self.state
            .audit(
                &actor,
                "lcr.networks.load",
                "lcr:networks".into(),
                serde_json::json!({
                    "prefix_lines": prefix_rows,
                    "portability_lines": ported_rows,
                    "networks": networks,
                    "ported": ported,
                }),
            )
            .await;
        Ok(done(format!(
            "number to network tables loaded: {networks} networks, {ported} ported numbers"
        )))
    }

    async fn apply_config(&self, request: Request<pb::ApplyRequest>) -> Reply<pb::ApplyResult> {
        self.apply_config_now(request).await
    }

    async fn export_config(&self, _: Request<pb::ListRequest>) -> Reply<pb::ConfigDocument> {
        let config = self.state.current().await;
        let value = serde_json::to_value(&config).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ConfigDocument {
            json: redact(value).to_string(),
        }))
    }
}
