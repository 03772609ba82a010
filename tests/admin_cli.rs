//! `smsgw admin` against a real `smsgw serve`: the CLI's smoke test.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const TOKEN: &str = "cli-test-token";

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn admin(endpoint: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smsgw"));
    command.args(["admin", "--endpoint", endpoint]);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    command
        .args(args)
        .env_remove("SMSGW_ADMIN_TOKEN")
        .output()
        .expect("run smsgw admin")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn start(dir: &Path, admin_addr: SocketAddr) -> Serve {
    let config = dir.join("smsgw.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[smpp]
listen = "{smpp}"
[http]
listen = "{http}"
[durability]
mode = "memory"
dir = "journal"
[storage]
url = "sqlite://smsgw.db"
[admin]
listen = "{admin_addr}"
tokens = [{{ name = "ops", token = "{TOKEN}" }}]
[[router.groups]]
gid = "g1"
[[router.users]]
uid = "u1"
username = "bank"
password = "pw"
gid = "g1"
# Least-cost routing over two operators nobody listens for.
[[router.connectors]]
cid = "opa"
port = {dead_a}
[[router.connectors]]
cid = "opb"
port = {dead_b}
[[router.mt_routes]]
order = 10
type = "LcrRoute"
[router.lcr]
default_country = "UZ"
[[router.lcr.costs]]
connector = "opa"
mcc = 434
mnc = 4
cost = "0.01"
[[router.lcr.costs]]
connector = "opb"
mcc = 434
mnc = 4
cost = "0.02"
"#,
            smpp = free_port(),
            http = free_port(),
            dead_a = free_port().port(),
            dead_b = free_port().port(),
        ),
    )
    .expect("write config");
    serve(dir, &config)
}

fn serve(dir: &Path, config: &Path) -> Serve {
    let log = std::fs::File::create(dir.join("serve.log")).expect("log");
    Serve(
        Command::new(env!("CARGO_BIN_EXE_smsgw"))
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start smsgw"),
    )
}

/// Runs `smsgw admin` until the admin API answers (the gateway is starting).
fn first_answer(endpoint: &str, token: &str, args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = admin(endpoint, Some(token), args);
        if out.status.success() {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "admin API never answered: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{o:?}");
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

#[test]
fn account_commands_show_top_up_limit_suspend_resume_and_rate() {
    const READ: &str = "cli-read-token";
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_port();
    let endpoint = format!("http://{addr}");
    let config = dir.path().join("smsgw.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[smpp]
listen = "{smpp}"
[http]
enabled = false
[durability]
mode = "memory"
dir = "journal"
[storage]
url = "sqlite://smsgw.db"
currency = "USD"
[admin]
listen = "{addr}"
tokens = [{{ name = "ops", token = "{TOKEN}" }}, {{ name = "look", token = "{READ}", role = "read" }}]
[[router.groups]]
gid = "g1"
[[router.users]]
uid = "u1"
username = "bank"
password = "pw"
gid = "g1"
quotas = {{ balance = "5" }}
[[router.connectors]]
cid = "op1"
port = {dead}
[[router.mt_routes]]
order = 0
type = "DefaultRoute"
connector = "op1"
rate = "0.02"
"#,
            smpp = free_port(),
            dead = free_port().port(),
        ),
    )
    .expect("write config");
    let _serve = serve(dir.path(), &config);

    let table = first_answer(&endpoint, TOKEN, &["account", "balance", "--uid", "u1"]);
    let text = stdout(&table);
    assert!(
        text.starts_with("UID") && text.contains("AVAILABLE") && text.contains("USD"),
        "a table: {text}"
    );
    let b = json(&admin(
        &endpoint,
        Some(TOKEN),
        &["--json", "account", "balance", "--uid", "u1"],
    ));
    assert_eq!(b["uid"], "u1");
    assert_eq!(b["status"], "active");
    let before: f64 = b["balance"]
        .as_str()
        .expect("balance")
        .parse()
        .expect("decimal");

    let topped = json(&admin(
        &endpoint,
        Some(TOKEN),
        &[
            "--json",
            "account",
            "top-up",
            "--uid",
            "u1",
            "--amount",
            "10",
            "--reference",
            "pay-1",
        ],
    ));
    let after: f64 = topped["balance"]
        .as_str()
        .expect("balance")
        .parse()
        .expect("decimal");
    assert_eq!(after, before + 10.0, "{topped}");

    let limited = json(&admin(
        &endpoint,
        Some(TOKEN),
        &[
            "--json",
            "account",
            "credit-limit",
            "--uid",
            "u1",
            "--limit",
            "3.5",
        ],
    ));
    let limit: f64 = limited["credit_limit"]
        .as_str()
        .expect("limit")
        .parse()
        .expect("decimal");
    assert_eq!(limit, 3.5, "{limited}");

    let suspended = admin(
        &endpoint,
        Some(TOKEN),
        &["account", "suspend", "--uid", "u1"],
    );
    assert!(suspended.status.success(), "{suspended:?}");
    assert!(
        stdout(&suspended).contains("suspended"),
        "{}",
        stdout(&suspended)
    );
    let resumed = json(&admin(
        &endpoint,
        Some(TOKEN),
        &["--json", "account", "resume", "--uid", "u1"],
    ));
    assert_eq!(resumed["status"], "active", "{resumed}");

    // The price of a 3-part message: no tariff, so the route's 0.02 per part.
    let rate = admin(
        &endpoint,
        Some(TOKEN),
        &[
            "account",
            "rate",
            "--uid",
            "u1",
            "--to",
            "255700000001",
            "--parts",
            "3",
        ],
    );
    assert!(rate.status.success(), "{rate:?}");
    let text = stdout(&rate);
    assert!(
        text.contains("PER_PART") && text.contains("Default route"),
        "{text}"
    );
    let quote = json(&admin(
        &endpoint,
        Some(TOKEN),
        &[
            "--json",
            "account",
            "rate",
            "--uid",
            "u1",
            "--to",
            "255700000001",
            "--parts",
            "3",
        ],
    ));
    assert_eq!(quote["source"], "route", "{quote}");
    assert_eq!(quote["price_per_part"], "0.020000", "{quote}");
    assert_eq!(quote["total"], "0.060000", "{quote}");
    assert_eq!(quote["currency"], "USD", "{quote}");
    let overridden = json(&admin(
        &endpoint,
        Some(TOKEN),
        &[
            "--json",
            "account",
            "rate",
            "--uid",
            "u1",
            "--to",
            "255700000001",
            "--route-rate",
            "0.05",
        ],
    ));
    assert_eq!(overridden["total"], "0.050000", "{overridden}");

    // A tariff on the account's destination prefix prices the next quote at once (a
    // global one for the same prefix does not beat the account's own); removed, the
    // route's rate is back.
    let set = json(&admin(
        &endpoint,
        Some(TOKEN),
        &[
            "--json", "tariff", "set", "--uid", "u1", "--prefix", "2557", "--price", "0.015",
            "--tier", "1000:500",
        ],
    ));
    let tariff = &set["tariffs"][0];
    let id = tariff["id"].as_i64().expect("tariff id");
    assert_eq!(tariff["currency"], "USD", "{set}");
    assert_eq!(tariff["price"], "0.015000", "{set}");
    assert_eq!(tariff["tiers"][0]["discount_bp"], 500, "{set}");
    let global = admin(
        &endpoint,
        Some(TOKEN),
        &["tariff", "set", "--prefix", "255", "--price", "0.5"],
    );
    assert!(global.status.success(), "{global:?}");
    let priced = |parts: &str| {
        json(&admin(
            &endpoint,
            Some(TOKEN),
            &[
                "--json",
                "account",
                "rate",
                "--uid",
                "u1",
                "--to",
                "255700000001",
                "--parts",
                parts,
            ],
        ))
    };
    let quote = priced("3");
    assert_eq!(quote["source"], format!("tariff:{id}"), "{quote}");
    assert_eq!(quote["total"], "0.045000", "{quote}");
    let listed = admin(&endpoint, Some(READ), &["tariff", "list"]);
    let text = stdout(&listed);
    assert!(
        text.starts_with("ID") && text.contains("(global)") && text.contains("2557"),
        "{text}"
    );
    let own = json(&admin(
        &endpoint,
        Some(TOKEN),
        &["--json", "tariff", "list", "--uid", "u1"],
    ));
    assert_eq!(own["tariffs"].as_array().map(Vec::len), Some(1), "{own}");
    let bad = admin(
        &endpoint,
        Some(TOKEN),
        &["tariff", "set", "--prefix", "25x", "--price", "0.01"],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("prefix must be digits"), "{err}");
    let refused = admin(
        &endpoint,
        Some(READ),
        &["tariff", "set", "--prefix", "1", "--price", "0.01"],
    );
    assert!(!refused.status.success(), "{refused:?}");
    let removed = admin(
        &endpoint,
        Some(TOKEN),
        &["tariff", "remove", "--id", &id.to_string()],
    );
    assert!(removed.status.success(), "{removed:?}");
    let quote = priced("1");
    assert_eq!(quote["total"], "0.500000", "the global tariff now: {quote}");
    let again = admin(
        &endpoint,
        Some(TOKEN),
        &["tariff", "remove", "--id", &id.to_string()],
    );
    assert!(!again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!("no tariff {id}")));

    // A read token sees balances and rates, and cannot top up.
    let seen = admin(
        &endpoint,
        Some(READ),
        &["account", "balance", "--uid", "u1"],
    );
    assert!(seen.status.success(), "{seen:?}");
    let priced = admin(
        &endpoint,
        Some(READ),
        &["account", "rate", "--uid", "u1", "--to", "255700000001"],
    );
    assert!(priced.status.success(), "{priced:?}");
    let refused = admin(
        &endpoint,
        Some(READ),
        &["account", "top-up", "--uid", "u1", "--amount", "1"],
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("PermissionDenied: token \"look\" has role \"read\"") && err.contains("TopUp"),
        "{err}"
    );
    let unknown = admin(
        &endpoint,
        Some(TOKEN),
        &["account", "rate", "--uid", "nobody", "--to", "255700000001"],
    );
    assert!(!unknown.status.success(), "{unknown:?}");
}

#[test]
fn shell_completions_cover_the_admin_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_smsgw"))
            .args(["completions", shell])
            .output()
            .expect("run smsgw completions");
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = stdout(&out);
        for word in ["admin", "tariff", "lcr-cost", "update-http", "endpoint"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_smsgw"))
        .args(["completions", "cmd.exe"])
        .output()
        .expect("run smsgw completions");
    assert!(!bad.status.success());
}

#[test]
fn admin_cli_lists_and_adds_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_port();
    let endpoint = format!("http://{addr}");
    let _serve = start(dir.path(), addr);

    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let out = admin(&endpoint, Some(TOKEN), &["user", "list"]);
        if out.status.success() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "admin API never answered: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(stdout(&listed).contains("bank"), "{}", stdout(&listed));

    let refused = admin(&endpoint, None, &["user", "list"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("token"),
        "{refused:?}"
    );

    let add = [
        "user",
        "add",
        "--uid",
        "u2",
        "--username",
        "bank2",
        "--password",
        "pw2",
        "--gid",
        "g1",
    ];
    let added = admin(&endpoint, Some(TOKEN), &add);
    assert!(added.status.success(), "{added:?}");
    let users = admin(&endpoint, Some(TOKEN), &["--json", "user", "list"]);
    assert!(users.status.success(), "{users:?}");
    assert!(stdout(&users).contains("\"bank2\""), "{}", stdout(&users));
    let routes = admin(&endpoint, Some(TOKEN), &["route", "mt", "list"]);
    assert!(routes.status.success(), "{routes:?}");
    assert!(stdout(&routes).contains("LcrRoute"), "{}", stdout(&routes));
    let explained = admin(
        &endpoint,
        Some(TOKEN),
        &["route", "explain", "--to", "90 123 45 67", "--user", "bank"],
    );
    assert!(explained.status.success(), "{explained:?}");
    let text = stdout(&explained);
    eprintln!("{text}");
    assert!(text.contains("+998901234567"), "{text}");
    assert!(text.contains("434-04 Beeline"), "{text}");
    assert!(text.contains("opa") && text.contains("0.010000"), "{text}");
    assert!(text.contains("dropped: unbound"), "{text}");
    assert!(text.contains("choice       (none)"), "{text}");

    // Tables through the admin API: a new range, and a ported number.
    let prefixes = dir.path().join("extra.csv");
    std::fs::write(&prefixes, "99850,434,4,Beeline,UZ,new range\n").expect("write");
    let ported = dir.path().join("ported.csv");
    std::fs::write(&ported, "998931112233,434,4\n").expect("write");
    let loaded = admin(
        &endpoint,
        Some(TOKEN),
        &[
            "network",
            "load",
            "--prefixes",
            prefixes.to_str().expect("utf-8 path"),
            "--portability",
            ported.to_str().expect("utf-8 path"),
        ],
    );
    assert!(loaded.status.success(), "{loaded:?}");
    assert!(stdout(&loaded).contains("1 ported"), "{}", stdout(&loaded));
    for (to, by) in [
        ("998501234567", "prefix of 5"),
        ("+998931112233", "portability"),
    ] {
        let e = admin(
            &endpoint,
            Some(TOKEN),
            &["route", "explain", "--to", to, "--user", "bank"],
        );
        let text = stdout(&e);
        assert!(
            text.contains("434-04 Beeline") && text.contains(by),
            "{text}"
        );
    }
    let balance = admin(
        &endpoint,
        Some(TOKEN),
        &["account", "balance", "--uid", "u2"],
    );
    assert!(stdout(&balance).contains("USD"), "{balance:?}");

    // The cost table, live: opb becomes the cheaper one, then leaves the network.
    let explain = || {
        stdout(&admin(
            &endpoint,
            Some(TOKEN),
            &["route", "explain", "--to", "998901234567", "--user", "bank"],
        ))
    };
    let set = admin(
        &endpoint,
        Some(TOKEN),
        &[
            "lcr-cost",
            "set",
            "--connector",
            "opb",
            "--mcc",
            "434",
            "--mnc",
            "4",
            "--cost",
            "0.005",
        ],
    );
    assert!(set.status.success(), "{set:?}");
    let text = explain();
    let (at_a, at_b) = (text.find("opa"), text.find("opb"));
    assert!(
        at_b < at_a && text.contains("0.005000"),
        "opb first now: {text}"
    );
    let listed = json(&admin(
        &endpoint,
        Some(TOKEN),
        &["--json", "lcr-cost", "list"],
    ));
    assert_eq!(
        listed["costs"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let refused = admin(
        &endpoint,
        Some(TOKEN),
        &[
            "lcr-cost",
            "set",
            "--connector",
            "nope",
            "--mcc",
            "434",
            "--mnc",
            "4",
            "--cost",
            "0.001",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no SMPP connector \"nope\""),
        "{refused:?}"
    );
    let removed = admin(
        &endpoint,
        Some(TOKEN),
        &[
            "lcr-cost",
            "remove",
            "--connector",
            "opb",
            "--mcc",
            "434",
            "--mnc",
            "4",
        ],
    );
    assert!(removed.status.success(), "{removed:?}");
    let text = explain();
    assert!(text.contains("opa") && !text.contains("opb"), "{text}");

    // The whole configuration as TOML, and applied back as one change with its diff.
    let exported = admin(&endpoint, Some(TOKEN), &["export", "--toml"]);
    assert!(exported.status.success(), "{exported:?}");
    let text = stdout(&exported);
    assert!(
        text.contains("password = \"***\""),
        "secrets redacted: {text}"
    );
    let file = dir.path().join("router.toml");
    let path = file.to_str().expect("utf-8 path");
    std::fs::write(&file, &text).expect("write");
    let same = admin(&endpoint, Some(TOKEN), &["apply", path, "--yes"]);
    assert!(stdout(&same).starts_with("no change"), "{same:?}");
    std::fs::write(&file, format!("{text}\n[[groups]]\ngid = \"g9\"\n")).expect("write");
    let groups = || stdout(&admin(&endpoint, Some(TOKEN), &["group", "list"]));
    let preview = admin(&endpoint, Some(TOKEN), &["apply", path, "--dry-run"]);
    let diff = stdout(&preview);
    assert!(
        diff.contains("--- in force") && diff.contains("+      \"gid\": \"g9\""),
        "{diff}"
    );
    assert!(!groups().contains("g9"), "a dry run changes nothing");
    let applied = admin(&endpoint, Some(TOKEN), &["apply", path, "--yes"]);
    assert!(applied.status.success(), "{applied:?}");
    assert!(stdout(&applied).contains("applied"), "{applied:?}");
    assert!(groups().contains("g9"));
    // The kept passwords still work: bank binds (checked by the admin API's user list
    // having the same users), and a new user cannot take a redacted password.
    let stranger = format!(
        "{text}\n[[users]]\nuid = \"u9\"\nusername = \"new\"\npassword = \"***\"\ngid = \"g1\"\n"
    );
    std::fs::write(&file, stranger).expect("write");
    let refused = admin(&endpoint, Some(TOKEN), &["apply", path, "--yes"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("there is none in force to keep"),
        "{refused:?}"
    );
}

#[test]
fn admin_api_over_tls_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert = dir.path().join("admin-cert.pem");
    std::fs::write(&cert, generated.cert.pem()).expect("write cert");
    std::fs::write(
        dir.path().join("admin-key.pem"),
        generated.signing_key.serialize_pem(),
    )
    .expect("write key");
    let addr = free_port();
    let config = dir.path().join("smsgw.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[smpp]
listen = "{smpp}"
[http]
enabled = false
[durability]
mode = "memory"
dir = "journal"
[storage]
url = "sqlite://smsgw.db"
[admin]
listen = "{addr}"
tokens = [{{ name = "ops", token = "{TOKEN}" }}]
[admin.tls]
cert = "admin-cert.pem"
key = "admin-key.pem"
[[router.groups]]
gid = "g1"
[[router.users]]
uid = "u1"
username = "bank"
password = "pw"
gid = "g1"
"#,
            smpp = free_port(),
        ),
    )
    .expect("write config");
    let log = std::fs::File::create(dir.path().join("serve.log")).expect("log");
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_smsgw"))
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start smsgw"),
    );

    let tls_endpoint = format!("https://localhost:{}", addr.port());
    let ca = cert.to_str().expect("utf-8 path");
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let out = admin(
            &tls_endpoint,
            Some(TOKEN),
            &["--ca-file", ca, "user", "list"],
        );
        if out.status.success() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "admin API over TLS never answered: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(stdout(&listed).contains("bank"), "{}", stdout(&listed));

    // In clear, or without trusting the certificate, the CLI gets nowhere.
    let plain = admin(&format!("http://{addr}"), Some(TOKEN), &["user", "list"]);
    assert!(!plain.status.success(), "{plain:?}");
    let untrusted = admin(&tls_endpoint, Some(TOKEN), &["user", "list"]);
    assert!(!untrusted.status.success(), "{untrusted:?}");
    // TLS does not replace the token.
    let no_token = admin(&tls_endpoint, None, &["--ca-file", ca, "user", "list"]);
    assert!(!no_token.status.success(), "{no_token:?}");
    assert!(
        String::from_utf8_lossy(&no_token.stderr).contains("token"),
        "{no_token:?}"
    );
}
