//! `[settings]` changed by a reconfiguration (an admin's change) hold for the next
//! message, without a restart.

mod common;

use common::*;
use router::{Refusal, RouterConfig, credentials::Requested};
use smpp_testkit::{operator::Sim, sim::SimConfig};

fn config(sim_port: u16, settings: &str) -> String {
    format!(
        r#"
[settings]
{settings}
[[groups]]
gid = "g1"
[[users]]
uid = "u1"
username = "bank"
password = "secret"
gid = "g1"
{connector}
[[mt_routes]]
order = 0
type = "DefaultRoute"
connector = "smppc(op1)"
"#,
        connector = connector_toml("op1", "op1", sim_port),
    )
}

#[tokio::test]
async fn long_content_max_parts_changes_live() {
    let shutdown = Shutdown::new();
    let sim = Sim::start(&shutdown, SimConfig::default()).await;
    let (gw, _) = start_gateway(&shutdown, &config(sim.port, "")).await;
    wait_bound(&gw, &["op1"]).await;
    let user = gw.authenticate("bank", "secret").await.expect("user");
    // 400 GSM characters: 3 parts.
    let long = || {
        let mut m = http_message(&[b'a'; 400]);
        m.split_long = true;
        m
    };
    gw.submit(&user, long(), Requested::default())
        .await
        .expect("3 parts within the default of 5");

    let stricter = RouterConfig::from_toml_str(&config(sim.port, "long_content_max_parts = 2"))
        .expect("config");
    gw.reconfigure(&stricter).await.expect("reconfigured");
    assert_eq!(gw.settings().long_content_max_parts, 2);
    let refused = gw
        .submit(&user, long(), Requested::default())
        .await
        .expect_err("3 parts, at most 2");
    assert!(
        matches!(&refused, Refusal::InvalidArgument { value, .. } if value == "3 parts, at most 2"),
        "{refused:?}"
    );

    // A change the HTTP client cannot take (an unreadable CA file) is refused whole:
    // the settings in force stay.
    let bad = RouterConfig::from_toml_str(&config(
        sim.port,
        "long_content_max_parts = 9\nhttp_ca_file = \"/nonexistent/ca.pem\"",
    ))
    .expect("config");
    gw.reconfigure(&bad).await.expect_err("no such CA file");
    assert_eq!(gw.settings().long_content_max_parts, 2);
}
