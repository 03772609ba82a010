//! A whole admin stack over real sockets: the SMSC simulator as the operator, a Gateway
//! with billing on `store_url`, its SMPP listener, and the admin gRPC server.

#![allow(dead_code)]

use std::sync::Arc;

use api::admin::{self, Auth, Origin, Role, Token};
use billing::{BillingConfig, BillingEngine, EngineCharging, UserAccount};
use proto::admin::admin_client::AdminClient;
use router::{Deps, Gateway, RouterConfig, Snapshot};
use smpp_core::server::{Server, ServerConfig, SessionRegistry};
use smpp_testkit::{
    esme::ClientConfig,
    sim::{ReceivedSubmit, SimConfig},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Status, service::interceptor::InterceptedService, transport::Channel};

pub use smpp_testkit::{LONG_WAIT as WAIT, esme::Client, operator::Sim};
pub const TOKEN: &str = "s3cret-ops-token";
/// A token with role "read" (named "auditor").
pub const READ_TOKEN: &str = "s3cret-read-token";
/// A token with role "charging" (named "remote-router").
pub const CHARGING_TOKEN: &str = "s3cret-charging-token";

pub fn router_toml(sim_port: u16, extra: &str) -> String {
    format!(
        r#"
[[groups]]
gid = "g1"
[[users]]
uid = "u1"
username = "bank"
password = "pw"
gid = "g1"
[[connectors]]
cid = "op1"
username = "op1"
port = {sim_port}
con_fail_delay_secs = 0.1
con_loss_delay_secs = 0.1
[[mt_routes]]
order = 0
type = "DefaultRoute"
connector = "op1"
rate = "0.01"
{extra}
"#
    )
}

pub struct Stack {
    pub shutdown: CancellationToken,
    pub gateway: Arc<Gateway>,
    pub engine: BillingEngine,
    pub smpp_port: u16,
    pub admin_url: String,
    pub origin: Origin,
    /// The operator.
    pub sim: Sim,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The operator: an SMSC simulator recording every submit_sm.
pub async fn start_sim(shutdown: &CancellationToken) -> Sim {
    Sim::start(shutdown, SimConfig::default()).await
}

/// Polls `f` until it holds, for at most [`WAIT`].
pub async fn wait_until(f: impl FnMut() -> bool) {
    smpp_testkit::wait_for("condition", WAIT, f).await;
}

impl Stack {
    /// `store_url`: `memory:` or `sqlite://…`; `extra` is appended to the router table.
    pub async fn start(store_url: &str, extra: &str) -> Stack {
        let sim = start_sim(&CancellationToken::new()).await;
        Self::start_on(store_url, extra, &sim).await
    }

    /// With an operator simulator that outlives this stack (restart tests).
    pub async fn start_on(store_url: &str, extra: &str, sim: &Sim) -> Stack {
        let sim_port = sim.port;
        let shutdown = CancellationToken::new();
        let file = RouterConfig::from_toml_str(&router_toml(sim_port, extra)).expect("config");
        let store = admin::store::open(store_url).await.expect("config store");
        let (config, origin) = admin::load_or_seed(store.as_ref(), file)
            .await
            .expect("load or seed");
        let engine = BillingEngine::open(BillingConfig {
            url: store_url.into(),
            ..BillingConfig::default()
        })
        .await
        .expect("billing");
        let snapshot = Snapshot::build(&config, &|_| true).expect("snapshot");
        let users = snapshot.directory.by_uid.values().map(|u| UserAccount {
            uid: u.uid.to_string(),
            balance: u.balance,
            sms_count: u.sms_count,
        });
        let charging = Arc::new(
            EngineCharging::attach(engine.clone(), users, "EUR")
                .await
                .expect("accounts"),
        );
        let registry = SessionRegistry::new();
        let handle = Gateway::start(
            config.clone(),
            registry.clone(),
            shutdown.clone(),
            Deps {
                charging: Some(charging.clone()),
                ..Deps::default()
            },
        )
        .expect("gateway");
        let gateway = handle.gateway.clone();

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smpp");
        let smpp_port = listener.local_addr().expect("addr").port();
        let server = Server::new(
            ServerConfig::default(),
            handle.smpp.clone(),
            handle.smpp.clone(),
            registry,
        );
        let stop = shutdown.clone();
        tokio::spawn(async move { server.serve(listener, stop).await });

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let admin_url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = admin::state(gateway.clone(), charging, store, config);
        let auth = Auth::new([
            Token {
                name: "ops".into(),
                token: TOKEN.into(),
                role: Role::Admin,
            },
            Token {
                name: "auditor".into(),
                token: READ_TOKEN.into(),
                role: Role::Read,
            },
            Token {
                name: "remote-router".into(),
                token: CHARGING_TOKEN.into(),
                role: Role::Charging,
            },
        ]);
        tokio::spawn(admin::serve(listener, state, auth, shutdown.clone()));

        let bound = gateway.clone();
        wait_until(|| bound.connector("op1").is_some_and(|c| c.is_bound())).await;
        Stack {
            shutdown,
            gateway,
            engine,
            smpp_port,
            admin_url,
            origin,
            sim: sim.clone(),
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.admin_url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect admin")
    }

    /// An admin client sending `token` (None: no authorization header).
    pub async fn admin(
        &self,
        token: Option<&str>,
    ) -> AdminClient<
        InterceptedService<
            Channel,
            impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<>,
        >,
    > {
        let header = token.map(|t| format!("Bearer {t}").parse().expect("ascii"));
        AdminClient::with_interceptor(self.channel().await, move |mut r: Request<()>| {
            if let Some(h) = &header {
                r.metadata_mut().insert("authorization", Clone::clone(h));
            }
            Ok(r)
        })
    }

    pub async fn next_submit(&mut self) -> ReceivedSubmit {
        self.sim.next_submit().await
    }
}

/// A client application bound to the gateway as a transceiver.
pub async fn connect_esme(
    shutdown: &CancellationToken,
    port: u16,
    user: &str,
    password: &str,
) -> Client {
    let config = ClientConfig {
        queue: 16,
        wait: WAIT,
        ..ClientConfig::default()
    };
    Client::connect(shutdown, port, user, password, config).await
}
