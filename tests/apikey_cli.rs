//! `smsgw apikey` against a real `smsgw serve`: the first key is made in the store, works
//! over HTTP at once, and stops working once revoked.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

mod support;
use support::{free_port, wait_live};

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_config(dir: &Path, http: SocketAddr) -> std::path::PathBuf {
    let config = dir.join("smsgw.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[smpp]
listen = "{smpp}"
[http]
listen = "{http}"
[admin]
enabled = false
[durability]
mode = "memory"
dir = "journal"
[storage]
url = "sqlite://smsgw.db"
[[router.groups]]
gid = "g1"
[[router.users]]
uid = "u1"
username = "bank"
password = "pw"
gid = "g1"
quotas = {{ balance = "5" }}
"#,
            smpp = free_port(),
        ),
    )
    .expect("write config");
    config
}

fn apikey(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsgw"))
        .arg("apikey")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run smsgw apikey")
}

/// GET `path` with a bearer key; the status and body.
fn get(http: SocketAddr, path: &str, key: &str) -> Option<(u16, String)> {
    support::http(http, "GET", path, key, "")
}

#[test]
fn first_key_from_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = free_port();
    let config = write_config(dir.path(), http);
    let log = std::fs::File::create(dir.path().join("serve.log")).expect("log");
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_smsgw"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start smsgw"),
    );
    wait_live(http);

    let refused = apikey(
        &config,
        &["create", "--user", "nobody", "--scopes", "sms:send"],
    );
    assert!(!refused.status.success());
    let bad = apikey(
        &config,
        &["create", "--user", "u1", "--scopes", "sms:write"],
    );
    assert!(!bad.status.success());

    let made = apikey(
        &config,
        &["create", "--user", "u1", "--scopes", "account:read"],
    );
    assert!(made.status.success(), "{made:?}");
    let out = String::from_utf8_lossy(&made.stdout).into_owned();
    let secret = support::shown_secret(&out);
    let id = support::first_id(&out);
    let (status, body) = get(http, "/api/v1/account/balance", &secret).expect("answer");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"balance\":\"5.000000\""), "{body}");
    let listed = apikey(&config, &["list", "--user", "u1"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&secret));

    let revoked = apikey(&config, &["revoke", &id]);
    assert!(revoked.status.success(), "{revoked:?}");
    // The gateway re-reads a cached key within seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = get(http, "/api/v1/account/balance", &secret).expect("answer");
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "a revoked key still works");
        std::thread::sleep(Duration::from_millis(250));
    }
}
