//! `/balance` and `/rate` (docs/jasmin-compat.md §1.7): JSON answers; errors are JSON strings
//! with the same status codes as `/send`.

use proto::charging::{ChargeError, Micros};
use router::{Refusal, split, user::User};
use serde_json::{Value, json};

use super::{
    Caller, Failure,
    params::{Params, balance_fields, rate_fields},
    send::{base_message, coding, content},
};

/// Money as Jasmin shows it: a float in the account's currency.
fn money(micros: Micros) -> Value {
    // Display only: the ledger stays in integer micro-units.
    json!(micros as f64 / 1_000_000.0)
}

fn denied(user: &User, what: &str) -> Failure {
    Failure::bad_request(format!(
        "Authorization failed for user [{}] (Cannot check {what}).",
        user.username
    ))
}

/// `{"balance": <float|"ND">, "sms_count": <int|"ND">}`.
pub async fn balance(gateway: &Caller<'_>, args: Params) -> Result<Value, Failure> {
    args.validate(&balance_fields())?;
    let user = gateway.authenticate(&args).await?;
    if !user.authorizations.http_balance {
        return Err(denied(&user, "balance"));
    }
    let b = gateway
        .charging()
        .balance(&user.uid)
        .await
        .map_err(|e| match e {
            ChargeError::Busy(_) => Failure::from(Refusal::ChargingBusy),
            other => Failure::from(Refusal::Unknown(other.to_string())),
        })?;
    Ok(json!({
        "balance": b.balance.map_or(json!("ND"), money),
        "sms_count": b.sms_count.map_or(json!("ND"), |n| json!(n)),
    }))
}

/// `{"submit_sm_count": N, "unit_rate": <float>}` for the route `/send` would take.
pub async fn rate(gateway: &Caller<'_>, mut args: Params) -> Result<Value, Failure> {
    if !args.contains("coding") {
        args.set_text("coding", "0");
    }
    if !args.contains("content") && !args.contains("hex-content") {
        args.set_text("content", "");
    }
    args.validate(&rate_fields())?;
    if args.contains("content") && args.contains("hex-content") {
        return Err(super::params::ArgError::BothContents.into());
    }
    let coding = coding(&args)?;
    // Unlike Jasmin (which counts raw UTF-8 bytes here), the parts are counted on the
    // bytes `/send` would send, so `/rate` predicts what `/send` charges.
    let content = content(&args, coding)?;
    let user = gateway.authenticate(&args).await?;
    if !user.authorizations.http_rate {
        return Err(denied(&user, "rate"));
    }
    let parts = split::count_parts(&content, coding).max(1);
    let mut message = base_message(&args, coding, content);
    message.uid = user.uid.clone();
    message.gid = user.gid.clone();
    if message.source.addr.is_empty()
        && let Some(default) = &user.default_src_addr
    {
        message.source.addr = default.clone();
    }
    let snapshot = gateway.snapshot();
    let route = snapshot.mt.select(&message).ok_or(Refusal::NoRoute)?;
    // Jasmin bills nothing to a user without a balance quota.
    let unit_rate = if user.balance.is_some() {
        money(route.rate)
    } else {
        json!(0.0)
    };
    Ok(json!({ "submit_sm_count": parts, "unit_rate": unit_rate }))
}
