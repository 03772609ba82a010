//! Route filters over real sockets: each filter type in an MT route, with one message
//! that matches (it reaches the route's connector) and one that does not (it falls to
//! the DefaultRoute's connector). Both connectors bind to the test kit's SMSC simulator under
//! different system_ids, so the simulator tells which uplink carried a message.
//! ConnectorFilter is tried in an MO route, with the simulator generating MO traffic.

mod common;

use std::sync::Arc;

use chrono::{Local, Timelike};
use common::{
    Client, Hook, Shutdown, Sim, connect_esme, connector_toml, http_message, start_gateway,
    submit_sm, wait_bound,
};
use router::{Gateway, Message, RouterConfig, credentials::Requested};
use smpp_testkit::sim::SimConfig;

const USERS: &str = r#"
[[groups]]
gid = "g1"
[[groups]]
gid = "g2"
[[users]]
uid = "u1"
username = "bank"
password = "secret"
gid = "g1"
[[users]]
uid = "u2"
username = "shop"
password = "secret"
gid = "g2"
"#;

/// A gateway whose route 10 (filter `f`) goes to connector `hit` and whose DefaultRoute
/// goes to `miss`.
struct MtCase {
    shutdown: Shutdown,
    gw: Arc<Gateway>,
    port: u16,
    sim: Sim,
    sim_port: u16,
}

fn mt_config(sim_port: u16, filter: &str) -> String {
    format!(
        r#"{USERS}
{hit}
{miss}
[[filters]]
fid = "f"
{filter}
[[mt_routes]]
order = 10
type = "StaticMTRoute"
connector = "smppc(hit)"
filters = ["f"]
[[mt_routes]]
order = 0
type = "DefaultRoute"
connector = "smppc(miss)"
"#,
        hit = connector_toml("hit", "hit", sim_port),
        miss = connector_toml("miss", "miss", sim_port),
    )
}

impl MtCase {
    async fn start(filter: &str) -> Self {
        let shutdown = Shutdown::new();
        let sim = Sim::start(&shutdown, SimConfig::default()).await;
        let sim_port = sim.port;
        let (gw, port) = start_gateway(&shutdown, &mt_config(sim_port, filter)).await;
        wait_bound(&gw, &["hit", "miss"]).await;
        Self {
            shutdown,
            gw,
            port,
            sim,
            sim_port,
        }
    }

    async fn esme(&self, username: &str) -> Client {
        connect_esme(&self.shutdown, self.port, username, "secret").await
    }

    /// The next message at the operator came over `connector` with this content.
    async fn arrives(&mut self, connector: &str, content: &[u8]) {
        let got = self.sim.next_submit().await;
        assert_eq!(
            (&*got.system_id, got.pdu.short_message().as_ref()),
            (connector, content),
            "uplink that carried {:?}",
            String::from_utf8_lossy(content)
        );
    }

    /// Replace the filter `f` (Gateway::replace swaps the whole table).
    fn replace_filter(&self, filter: &str) {
        let config =
            RouterConfig::from_toml_str(&mt_config(self.sim_port, filter)).expect("config");
        self.gw.replace(&config).expect("replace");
    }

    /// A message through the HTTP entry point (`Gateway::submit`), with tags.
    async fn submit_http(&self, content: &'static [u8], tags: &[&str]) {
        let user = self.gw.authenticate("bank", "secret").await.expect("user");
        let msg = Message {
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..http_message(content)
        };
        self.gw
            .submit(&user, msg, Requested::default())
            .await
            .expect("accepted");
    }
}

#[tokio::test]
async fn transparent_filter_matches_every_message() {
    let mut case = MtCase::start("type = \"TransparentFilter\"").await;
    let mut bank = case.esme("bank").await;
    let mut shop = case.esme("shop").await;
    bank.accepted(submit_sm("BANK", "255700", b"one", 0, 0))
        .await;
    case.arrives("hit", b"one").await;
    shop.accepted(submit_sm("", "1", b"two", 0, 4)).await;
    case.arrives("hit", b"two").await;
}

#[tokio::test]
async fn user_filter_matches_the_sender_uid() {
    let mut case = MtCase::start("type = \"UserFilter\"\nuid = \"u1\"").await;
    let mut bank = case.esme("bank").await;
    let mut shop = case.esme("shop").await;
    bank.accepted(submit_sm("S", "255700", b"from u1", 0, 0))
        .await;
    case.arrives("hit", b"from u1").await;
    shop.accepted(submit_sm("S", "255700", b"from u2", 0, 0))
        .await;
    case.arrives("miss", b"from u2").await;
}

#[tokio::test]
async fn group_filter_matches_the_senders_group() {
    let mut case = MtCase::start("type = \"GroupFilter\"\ngid = \"g2\"").await;
    let mut bank = case.esme("bank").await;
    let mut shop = case.esme("shop").await;
    shop.accepted(submit_sm("S", "255700", b"from g2", 0, 0))
        .await;
    case.arrives("hit", b"from g2").await;
    bank.accepted(submit_sm("S", "255700", b"from g1", 0, 0))
        .await;
    case.arrives("miss", b"from g1").await;
}

#[tokio::test]
async fn source_addr_filter_is_anchored_at_the_start() {
    let mut case = MtCase::start("type = \"SourceAddrFilter\"\nsource_addr = \"BANK\"").await;
    let mut bank = case.esme("bank").await;
    bank.accepted(submit_sm("BANK1", "255700", b"bank1", 0, 0))
        .await;
    case.arrives("hit", b"bank1").await;
    bank.accepted(submit_sm("MYBANK", "255700", b"mybank", 0, 0))
        .await;
    case.arrives("miss", b"mybank").await;
}

#[tokio::test]
async fn destination_addr_filter_is_anchored_at_the_start() {
    let mut case =
        MtCase::start("type = \"DestinationAddrFilter\"\ndestination_addr = \"\\\\+?255\"").await;
    let mut bank = case.esme("bank").await;
    bank.accepted(submit_sm("S", "+255700", b"tz", 0, 0)).await;
    case.arrives("hit", b"tz").await;
    bank.accepted(submit_sm("S", "1255700", b"us", 0, 0)).await;
    case.arrives("miss", b"us").await;
}

#[tokio::test]
async fn short_message_filter_matches_the_content() {
    let mut case =
        MtCase::start("type = \"ShortMessageFilter\"\nshort_message = \"code \\\\d{4}\"").await;
    let mut bank = case.esme("bank").await;
    bank.accepted(submit_sm("S", "255700", b"code 1234", 0, 0))
        .await;
    case.arrives("hit", b"code 1234").await;
    bank.accepted(submit_sm("S", "255700", b"your code 1234", 0, 0))
        .await;
    case.arrives("miss", b"your code 1234").await;
}

#[tokio::test]
async fn date_interval_filter_uses_the_receive_date() {
    let today = Local::now().date_naive();
    let around = format!(
        "type = \"DateIntervalFilter\"\ndate_interval = \"{};{}\"",
        today.pred_opt().unwrap_or(today),
        today.succ_opt().unwrap_or(today)
    );
    let mut case = MtCase::start(&around).await;
    let mut bank = case.esme("bank").await;
    bank.accepted(submit_sm("S", "255700", b"today", 0, 0))
        .await;
    case.arrives("hit", b"today").await;
    case.replace_filter("type = \"DateIntervalFilter\"\ndate_interval = \"2001-01-01;2001-12-31\"");
    bank.accepted(submit_sm("S", "255700", b"not 2001", 0, 0))
        .await;
    case.arrives("miss", b"not 2001").await;
}

#[tokio::test]
async fn time_interval_filter_uses_the_receive_time() {
    // Two hours around now, and the two hours starting an hour from now (both may wrap
    // midnight, which the filter accepts).
    let hour = Local::now().hour();
    let at = |h: u32, end: bool| format!("{:02}:{}", h % 24, if end { "59:59" } else { "00:00" });
    let interval = |from: String, to: String| {
        format!("type = \"TimeIntervalFilter\"\ntime_interval = \"{from};{to}\"")
    };
    let mut case = MtCase::start(&interval(at(hour + 23, false), at(hour + 1, true))).await;
    let mut bank = case.esme("bank").await;
    bank.accepted(submit_sm("S", "255700", b"now", 0, 0)).await;
    case.arrives("hit", b"now").await;
    case.replace_filter(&interval(at(hour + 2, false), at(hour + 3, true)));
    bank.accepted(submit_sm("S", "255700", b"later", 0, 0))
        .await;
    case.arrives("miss", b"later").await;
}

#[tokio::test]
async fn tag_filter_matches_tags_from_the_http_entry() {
    let mut case = MtCase::start("type = \"TagFilter\"\ntag = \"otp\"").await;
    case.submit_http(b"tagged", &["promo", "otp"]).await;
    case.arrives("hit", b"tagged").await;
    case.submit_http(b"other tag", &["promo"]).await;
    case.arrives("miss", b"other tag").await;
}

#[tokio::test]
async fn script_filter_matches_when_the_script_sets_result() {
    let script = r#"type = "ScriptFilter"
script = 'result = message.content.contains("urgent") && message.priority == 0;'"#;
    let mut case = MtCase::start(script).await;
    let mut bank = case.esme("bank").await;
    bank.accepted(submit_sm("S", "255700", b"urgent: call", 0, 0))
        .await;
    case.arrives("hit", b"urgent: call").await;
    bank.accepted(submit_sm("S", "255700", b"whenever", 0, 0))
        .await;
    case.arrives("miss", b"whenever").await;
}

#[tokio::test]
async fn connector_filter_routes_mo_by_the_uplink_it_arrived_on() {
    let shutdown = Shutdown::new();
    let sim = Sim::start(
        &shutdown,
        SimConfig {
            mo_rate: 50.0,
            ..SimConfig::default()
        },
    )
    .await;
    let hook = Hook::start(&shutdown).await;
    let config = format!(
        r#"{USERS}
{opa}
{opb}
[[http_connectors]]
cid = "hook_a"
url = "{url_a}"
[[http_connectors]]
cid = "hook_b"
url = "{url_b}"
method = "GET"
[[filters]]
fid = "from_a"
type = "ConnectorFilter"
cid = "opa"
[[mo_routes]]
order = 10
type = "StaticMORoute"
connector = "http(hook_a)"
filters = ["from_a"]
[[mo_routes]]
order = 0
type = "DefaultRoute"
connector = "http(hook_b)"
"#,
        opa = connector_toml("opa", "opa", sim.port),
        opb = connector_toml("opb", "opb", sim.port),
        url_a = hook.url("/a"),
        url_b = hook.url("/b"),
    );
    let (gw, _port) = start_gateway(&shutdown, &config).await;
    wait_bound(&gw, &["opa", "opb"]).await;
    // The simulator sends its MO to each bound uplink in turn.
    let a = hook.wait_for("/a", 3).await;
    let b = hook.wait_for("/b", 3).await;
    for r in &a {
        assert_eq!(r.method, "POST");
        assert_eq!(r.param("origin-connector").as_deref(), Some("opa"), "{r:?}");
    }
    for r in &b {
        assert_eq!(r.method, "GET");
        assert_eq!(r.param("origin-connector").as_deref(), Some("opb"), "{r:?}");
    }
    assert!(
        a.iter().chain(&b).all(|r| r
            .param("content")
            .is_some_and(|c| c.starts_with("MO test "))),
        "the simulator's MO text"
    );
}
