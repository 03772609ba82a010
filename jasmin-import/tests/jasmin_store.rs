//! The store files in tests/fixtures/jasmin were written by Jasmin 0.11.1's own code
//! (how: that directory's README). Every object they hold is checked here as smsgw
//! configuration, and the result is a configuration the router accepts.

use std::path::{Path, PathBuf};

use jasmin_import::{DEFAULT_PROFILE, read_store};
use router::{
    RouterConfig, Snapshot,
    config::{FilterConfig, FilterKindConfig, RouteConfig},
    idmap::IdForm,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/jasmin")
}

fn filter<'a>(filters: &'a [FilterConfig], fid: &str) -> &'a FilterKindConfig {
    &filters
        .iter()
        .find(|f| f.fid == fid)
        .unwrap_or_else(|| panic!("filter {fid}"))
        .kind
}

fn route(routes: &[RouteConfig], order: u32) -> &RouteConfig {
    routes
        .iter()
        .find(|r| r.order == order)
        .unwrap_or_else(|| panic!("route {order}"))
}

#[test]
fn a_real_jasmin_store_becomes_a_configuration_smsgw_runs() {
    let mut import = read_store(&fixtures(), DEFAULT_PROFILE).expect("reads");
    assert_eq!(import.files.len(), 9, "{:?}", import.files);
    assert!(import.files.iter().all(|f| f.contains("[Jasmin 0.11.1]")));

    let groups = import.groups.as_deref().expect("groups");
    let g: Vec<_> = groups.iter().map(|g| (g.gid.as_str(), g.enabled)).collect();
    assert_eq!(g, [("customers", true), ("resellers", false)]);

    let users = import.users.as_deref().expect("users");
    assert_eq!(users.len(), 3);
    let alice = &users[0];
    assert_eq!(
        (
            alice.uid.as_str(),
            alice.username.as_str(),
            alice.gid.as_str()
        ),
        ("user_1", "alice", "customers")
    );
    assert_eq!(
        alice.password,
        "$jasmin-md5$bdc88fc586d1f0bd41b602a6794bed28"
    );
    assert!(alice.enabled);
    let a = &alice.authorizations;
    assert!(a.http_send && a.smpps_send && a.http_long_content && a.dlr_level);
    assert!(!a.http_balance && !a.http_rate && !a.http_dlr_method);
    assert!(a.src_addr && !a.priority && !a.validity_period && !a.hex_content);
    assert!(a.schedule_delivery_time);
    let v = &alice.value_filters;
    assert_eq!(
        v.dst_addr.as_deref(),
        Some(r"(?-u:^(\+|00)?(33|216)\d{8,9}$)")
    );
    assert_eq!(v.src_addr.as_deref(), Some(r"(?-u:^(ACME|\d{5})$)"));
    assert_eq!(
        v.content.as_deref(),
        Some(r"(?-u:^[A-Za-z0-9 .,!?'-]{1,160}$)")
    );
    assert_eq!(
        (v.priority.as_deref(), v.validity_period.as_deref()),
        (None, None)
    );
    assert_eq!(alice.defaults.src_addr.as_deref(), Some("ACME"));
    let q = &alice.quotas;
    assert_eq!(q.balance.as_deref(), Some("100.5"));
    assert_eq!(q.sms_count, Some(10_000));
    assert_eq!(
        (q.http_throughput, q.smpps_throughput),
        (Some(5.0), Some(10.5))
    );
    assert!(alice.smpp.bind);
    assert_eq!(alice.smpp.max_bindings, Some(3));
    let bob = &users[1];
    assert!(!bob.enabled);
    assert_eq!(bob.quotas.balance.as_deref(), Some("50.25"));
    assert_eq!(bob.quotas.sms_count, None);
    assert!(!bob.smpp.bind);
    assert_eq!(bob.value_filters.dst_addr, None, "Jasmin's default `.*`");
    let carol = &users[2];
    assert_eq!(carol.gid, "resellers");
    assert_eq!(carol.quotas.balance, None, "unlimited (ND)");

    let connectors = import.connectors.as_deref().expect("connectors");
    let c1 = &connectors[0];
    assert_eq!(
        (c1.cid.as_str(), c1.host.as_str(), c1.port),
        ("smppc01", "192.0.2.10", 2776)
    );
    assert_eq!(
        (c1.username.as_str(), c1.password.as_str()),
        ("jasmin01", "s3cr3t01")
    );
    assert_eq!(
        (c1.systype.as_str(), c1.bind.as_str()),
        ("VMA", "transmitter")
    );
    assert_eq!(c1.submit_throughput, Some(25.0));
    assert_eq!(c1.dlr_id_form, IdForm::Decimal);
    assert!(c1.tls && c1.start);
    assert_eq!(
        (c1.con_loss_delay_secs, c1.con_fail_delay_secs),
        (15.0, 30.0)
    );
    assert_eq!((c1.elink_interval_secs, c1.res_to_secs), (45, 60));
    assert_eq!((c1.dlr_expiry_secs, c1.requeue_delay_ms), (43_200, 60_000));
    assert_eq!(c1.src_addr.as_deref(), Some("ACME"));
    let c2 = &connectors[1];
    assert_eq!(
        (c2.cid.as_str(), c2.host.as_str()),
        ("smppc02", "smsc2b.example.net")
    );
    assert_eq!(c2.submit_throughput, Some(10.5));
    assert_eq!(c2.dlr_id_form, IdForm::Hex);
    assert!(!c2.tls && !c2.start, "stopped in Jasmin, not started here");
    assert_eq!(c2.con_fail_delay_secs, 7.5);

    let http = import.http_connectors.as_deref().expect("http connectors");
    assert_eq!(http.len(), 1);
    assert_eq!(
        (
            http[0].cid.as_str(),
            http[0].url.as_str(),
            http[0].method.as_str()
        ),
        ("http_mo", "https://mo.example.com/jasmin/receive", "GET")
    );

    let filters = import.filters.as_deref().expect("filters");
    assert!(matches!(
        filter(filters, "f_all"),
        FilterKindConfig::TransparentFilter
    ));
    assert!(
        matches!(filter(filters, "f_user1"), FilterKindConfig::UserFilter { uid } if uid == "user_1")
    );
    assert!(
        matches!(filter(filters, "f_grp_cust"), FilterKindConfig::GroupFilter { gid } if gid == "customers")
    );
    assert!(
        matches!(filter(filters, "f_con_smppc01"), FilterKindConfig::ConnectorFilter { cid } if cid == "smppc01")
    );
    assert!(
        matches!(filter(filters, "f_src_fr"), FilterKindConfig::SourceAddrFilter { source_addr } if source_addr == r"^(\+|00)?33\d{9}$")
    );
    assert!(
        matches!(filter(filters, "f_dst_tn"), FilterKindConfig::DestinationAddrFilter { destination_addr } if destination_addr == r"^(\+|00)?216\d{8}$")
    );
    assert!(
        matches!(filter(filters, "f_sm_stop"), FilterKindConfig::ShortMessageFilter { short_message } if short_message == r"^(STOP|UNSUB)\b")
    );
    assert!(
        matches!(filter(filters, "f_di_2026"), FilterKindConfig::DateIntervalFilter { date_interval } if date_interval == "2026-01-01;2026-12-31")
    );
    assert!(
        matches!(filter(filters, "f_ti_office"), FilterKindConfig::TimeIntervalFilter { time_interval } if time_interval == "08:00:00;18:30:00")
    );
    assert!(
        matches!(filter(filters, "f_tag_21"), FilterKindConfig::TagFilter { tag } if tag == "21")
    );
    assert!(
        filters.iter().all(|f| f.fid != "f_evalpy"),
        "Python has no equivalent"
    );

    // Routes name the store's filters where a copy matches one.
    let mt = import.mt_routes.as_deref().expect("mt routes");
    let r50 = route(mt, 50);
    assert_eq!(r50.kind, "StaticMTRoute");
    assert_eq!(r50.filters, ["f_user1", "f_tag_21"]);
    assert_eq!(r50.connector.as_deref(), Some("smppc(smppc01)"));
    assert_eq!(r50.rate.as_deref(), Some("0.0125"));
    assert!(
        mt.iter().all(|r| r.order != 40),
        "route 40 needs the Python filter"
    );
    let r30 = route(mt, 30);
    assert_eq!(r30.kind, "FailoverMTRoute");
    assert_eq!(r30.connectors, ["smppc(smppc02)", "smppc(smppc01)"]);
    assert_eq!(r30.filters, ["f_tag_21", "f_di_2026"]);
    let r20 = route(mt, 20);
    assert_eq!(r20.kind, "RandomRoundrobinMTRoute");
    assert_eq!(r20.filters, ["f_grp_cust", "f_ti_office"]);
    assert_eq!(route(mt, 10).filters, ["f_user1", "f_dst_tn"]);
    assert_eq!(route(mt, 5).filters, ["f_all"]);
    let default = route(mt, 0);
    assert_eq!(default.kind, "DefaultRoute");
    assert_eq!(default.rate, None, "Jasmin's 0.0 is not rated");

    let mo = import.mo_routes.as_deref().expect("mo routes");
    let f30 = route(mo, 30);
    assert_eq!(f30.kind, "FailoverMORoute");
    assert_eq!(f30.connectors, ["smpps(alice)", "smpps(bob)"]);
    assert_eq!(f30.filters, ["f_src_fr", "f_ti_office"]);
    assert_eq!(route(mo, 20).connectors, ["http(http_mo)", "smpps(bob)"]);
    assert_eq!(route(mo, 10).filters, ["f_con_smppc01", "f_sm_stop"]);
    assert_eq!(route(mo, 10).connector.as_deref(), Some("smpps(alice)"));
    assert_eq!(route(mo, 0).connector.as_deref(), Some("http(http_mo)"));

    // What has no equivalent is reported, by item.
    let report: Vec<String> = import.report.iter().map(ToString::to_string).collect();
    let said = |needle: &str| report.iter().any(|line| line.contains(needle));
    assert!(
        said("filter f_evalpy: EvalPyFilter runs Python"),
        "{report:#?}"
    );
    assert!(said("mt route 40: EvalPyFilter runs Python"), "{report:#?}");
    assert!(
        said("mt interceptor 10 (StaticMTInterceptor)"),
        "{report:#?}"
    );
    assert!(said("mo interceptor 0 (DefaultInterceptor)"), "{report:#?}");
    assert!(said("user user_1: quota early_percent 25"), "{report:#?}");
    assert!(
        said("connector smppc01: source_addr_ton ALPHANUMERIC"),
        "{report:#?}"
    );
    assert!(
        said("connector smppc01: priority_flag LEVEL_1"),
        "{report:#?}"
    );
    assert!(
        said("connector smppc02: replace_if_present_flag REPLACE"),
        "{report:#?}"
    );
    assert!(said("connector smppc02: addressRange"), "{report:#?}");
    assert!(
        said("connector smppc02: reconnect on connection loss is off"),
        "{report:#?}"
    );
    assert!(
        !said("connector smppc02: source_addr_ton"),
        "defaults are not reported"
    );
    assert!(
        said("connector smppc01: TLS: Jasmin does not verify"),
        "{report:#?}"
    );
    let dropped: Vec<&str> = import
        .report
        .iter()
        .filter(|n| n.dropped)
        .map(|n| n.item.as_str())
        .collect();
    assert_eq!(
        dropped,
        [
            "filter f_evalpy",
            "mt route 40",
            "mt interceptor 10 (StaticMTInterceptor)",
            "mo interceptor 0 (DefaultInterceptor)"
        ]
    );

    // Merged into an empty configuration, the router builds it (routes, filters,
    // users and their regexes all valid).
    let config = import.merge_into(RouterConfig::default());
    let cids: Vec<String> = config.connectors.iter().map(|c| c.cid.clone()).collect();
    Snapshot::build(&config, &|cid| cids.iter().any(|c| c == cid)).expect("the router takes it");
}

#[test]
fn enums_pickled_by_name_read_as_by_value() {
    let by_value = read_store(&fixtures().join("jcli-prod.smppccs"), "any").expect("reads");
    let by_name =
        read_store(&fixtures().join("enum-by-name/jcli-prod.smppccs"), "any").expect("reads");
    assert_eq!(by_value.connectors, by_name.connectors);
    let lines = |i: &jasmin_import::Import| -> Vec<String> {
        i.report.iter().map(ToString::to_string).collect()
    };
    assert_eq!(lines(&by_value), lines(&by_name));
}

#[test]
fn an_import_replaces_items_of_the_same_id_and_keeps_the_rest() {
    let mut import = read_store(&fixtures(), DEFAULT_PROFILE).expect("reads");
    let mut current: RouterConfig = RouterConfig::from_toml_str(
        r#"
        [[groups]]
        gid = "customers"
        enabled = false
        [[groups]]
        gid = "own"
        [[mt_routes]]
        order = 0
        type = "DefaultRoute"
        connector = "smppc(mine)"
        "#,
    )
    .expect("parses");
    current = import.merge_into(current);
    let g: Vec<_> = current
        .groups
        .iter()
        .map(|g| (g.gid.as_str(), g.enabled))
        .collect();
    assert_eq!(
        g,
        [("customers", true), ("own", true), ("resellers", false)]
    );
    assert!(
        current
            .mt_routes
            .iter()
            .all(|r| r.connector.as_deref() != Some("smppc(mine)"))
    );
}

#[test]
fn a_directory_without_the_profile_names_those_it_has() {
    let error = read_store(&fixtures(), "jcli-test").expect_err("no such profile");
    assert!(
        error.to_string().contains("found profiles: jcli-prod"),
        "{error}"
    );
    let error = read_store(&fixtures().join("README.md"), "x").expect_err("not a store file");
    assert!(
        error.to_string().contains("not a Jasmin store file"),
        "{error}"
    );
}

#[test]
fn a_connector_in_force_takes_the_stores_settings_and_keeps_its_own() {
    let mut import = read_store(&fixtures(), DEFAULT_PROFILE).expect("reads");
    import.keep_connectors_stopped();
    let current = RouterConfig::from_toml_str(
        r#"
        [[connectors]]
        cid = "smppc01"
        host = "10.0.0.1"
        window = 200
        tls_ca_file = "/etc/smsgw/operator-ca.pem"
        "#,
    )
    .expect("parses");
    let merged = import.merge_into(current);
    let c = merged
        .connectors
        .iter()
        .find(|c| c.cid == "smppc01")
        .expect("smppc01");
    assert_eq!(
        (c.host.as_str(), c.port),
        ("192.0.2.10", 2776),
        "the store's"
    );
    assert_eq!(c.window, 200, "smsgw's own");
    assert_eq!(c.tls_ca_file.as_deref(), Some("/etc/smsgw/operator-ca.pem"));
    assert!(
        c.start,
        "a connector running in smsgw is not stopped by an import"
    );
    let new = merged
        .connectors
        .iter()
        .find(|c| c.cid == "smppc02")
        .expect("smppc02");
    assert!(!new.start);
}

#[test]
fn a_route_to_a_connector_nobody_has_is_left_out_and_reported() {
    // Only the routing table: its connectors are neither in the store read nor in force.
    let mut import =
        read_store(&fixtures().join("jcli-prod.router-mtroutes"), "any").expect("reads");
    let merged = import.merge_into(RouterConfig::default());
    assert!(merged.mt_routes.is_empty(), "{:?}", merged.mt_routes);
    assert!(
        import
            .report
            .iter()
            .any(|n| n.dropped && n.item == "mt route 0" && n.detail.contains("smppc(smppc01)")),
        "{:#?}",
        import.report
    );
}

#[test]
fn a_user_that_cannot_be_imported_is_disabled_where_it_exists() {
    let mut import = read_store(&fixtures(), DEFAULT_PROFILE).expect("reads");
    // As if user_1 had been refused (its value filter unreadable, say).
    import
        .users
        .as_mut()
        .expect("users")
        .retain(|u| u.uid != "user_1");
    import.skipped_users.push("user_1".into());
    let current = RouterConfig::from_toml_str(
        r#"
        [[users]]
        uid = "user_1"
        username = "alice"
        password = "old"
        gid = "customers"
        "#,
    )
    .expect("parses");
    let merged = import.merge_into(current);
    let alice = merged
        .users
        .iter()
        .find(|u| u.uid == "user_1")
        .expect("kept");
    assert!(!alice.enabled);
}
