//! Jasmin's users (`jasmin.routing.jasminApi.User`), with their credentials.

use super::*;

pub(super) fn user(u: &Value) -> Result<(UserConfig, Vec<Note>), Note> {
    let uid = str_attr(u, "uid").unwrap_or_default();
    let item = format!("user {uid}");
    let fail = |detail: String| {
        Note::dropped(
            item.clone(),
            format!("{detail}: user not imported (one of this uid in force is disabled)"),
        )
    };
    let username = str_attr(u, "username").ok_or_else(|| fail("no username".into()))?;
    let password = match u.attr("password") {
        // md5(password).digest(), 16 raw bytes.
        Some(Value::Bytes(digest)) if digest.len() == 16 => format!(
            "{}{}",
            router::user::JASMIN_MD5_PREFIX,
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        _ => {
            return Err(fail(
                "its password is not the 16-byte MD5 digest Jasmin stores".into(),
            ));
        }
    };
    let gid = u
        .attr("group")
        .and_then(|g| str_attr(g, "gid"))
        .ok_or_else(|| fail("no group".into()))?;
    let mut notes = vec![Note::caveat(
        item.clone(),
        "its password is kept as Jasmin's unsalted MD5 digest (it logs in as before); set a new one with `smsgw admin user update` to store it as Argon2",
    )];
    let mt = u.attr("mt_credential");
    let section = |name: &str| mt.and_then(|m| m.attr(name));
    let auth = section("authorizations");
    let allowed = |key: &str| {
        auth.and_then(|a| a.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    };
    let authorizations = AuthorizationsConfig {
        http_send: allowed("http_send"),
        http_balance: allowed("http_balance"),
        http_rate: allowed("http_rate"),
        smpps_send: allowed("smpps_send"),
        http_long_content: allowed("http_long_content"),
        dlr_level: allowed("set_dlr_level"),
        http_dlr_method: allowed("http_set_dlr_method"),
        src_addr: allowed("set_source_address"),
        priority: allowed("set_priority"),
        validity_period: allowed("set_validity_period"),
        hex_content: allowed("set_hex_content"),
        schedule_delivery_time: allowed("set_schedule_delivery_time"),
    };
    let filters = section("value_filters");
    let value_filter = |key: &str, default: &str| -> Result<Option<String>, Note> {
        // Only an absent filter is no filter: one that cannot be read fails the user.
        let Some(value) = filters.and_then(|f| f.get(key)) else {
            return Ok(None);
        };
        match value.pattern() {
            None => Err(fail(format!("value filter {key} {value} cannot be read"))),
            Some(p) if p == default => Ok(None),
            Some(p) => value_filter_regex(p)
                .map(Some)
                .map_err(|e| fail(format!("value filter {key}: {e}"))),
        }
    };
    let value_filters = ValueFiltersConfig {
        dst_addr: value_filter("destination_address", ".*")?,
        src_addr: value_filter("source_address", ".*")?,
        priority: value_filter("priority", "^[0-3]$")?,
        validity_period: value_filter("validity_period", r"^\d+$")?,
        content: value_filter("content", ".*")?,
    };
    let defaults = DefaultsConfig {
        src_addr: section("defaults")
            .and_then(|d| d.get("source_address"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let quota = |key: &str| {
        section("quotas")
            .and_then(|q| q.get(key))
            .filter(|v| !v.is_none())
    };
    if let Some(percent) = quota("early_decrement_balance_percent").and_then(Value::as_f64) {
        notes.push(Note::caveat(
            item.clone(),
            format!(
                "quota early_percent {percent}: smsgw charges the whole message when it is accepted and refunds it when it fails, so there is no early part"
            ),
        ));
    }
    let quotas = QuotasConfig {
        balance: quota("balance").and_then(Value::as_f64).map(decimal),
        sms_count: quota("submit_sm_count")
            .and_then(Value::as_i64)
            .map(|n| u64::try_from(n).unwrap_or(0)),
        smpps_throughput: quota("smpps_throughput").and_then(Value::as_f64),
        http_throughput: quota("http_throughput").and_then(Value::as_f64),
    };
    let smpps = u.attr("smpps_credential");
    // Newer Jasmin keeps a CIDR allow-list of binds per user, which smsgw has not: a
    // user restricted by it is imported disabled rather than open to every address.
    let mut enabled = bool_attr(u, "enabled").unwrap_or(true);
    if let Some(ip) = smpps
        .and_then(|s| s.attr("authorizations"))
        .and_then(|a| a.get("ip"))
        .and_then(Value::as_str)
        .filter(|ip| !matches!(ip.trim(), "" | "0.0.0.0/0" | "0.0.0.0/0,::/0"))
    {
        enabled = false;
        notes.push(Note::caveat(
            item.clone(),
            format!("binds only from {ip} in Jasmin; smsgw has no per-user address list: imported disabled"),
        ));
    }
    let smpp = SmppCredConfig {
        bind: smpps
            .and_then(|s| s.attr("authorizations"))
            .and_then(|a| a.get("bind"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
        max_bindings: smpps
            .and_then(|s| s.attr("quotas"))
            .and_then(|q| q.get("max_bindings"))
            .and_then(Value::as_i64)
            // A negative count (jcli's relative updates can make one) admits no bind.
            .map(|n| usize::try_from(n).unwrap_or(0)),
    };
    Ok((
        UserConfig {
            uid,
            username,
            password,
            gid,
            enabled,
            authorizations,
            value_filters,
            defaults,
            quotas,
            smpp,
        },
        notes,
    ))
}
