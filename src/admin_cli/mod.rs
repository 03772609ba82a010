//! `smsgw admin …`: the jCli replacement, a gRPC client of the admin API.
//! Arguments are in `args.rs`; the calls and what they print are here.

mod args;
mod print;

use anyhow::Context;
use proto::{
    admin::{self as pb, admin_client::AdminClient, stats_client::StatsClient},
    billing::{self as bpb, billing_client::BillingClient},
};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

pub use args::AdminArgs;
use args::{
    AccountCmd, AdminCommand, ConnectorCmd, FilterCmd, GroupCmd, InterceptorCmd, LcrCostCmd,
    NetworkCmd, RouteCmd, StatsCmd, TableArg, TariffCmd, UserCmd,
};
use print::Out;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Client = AdminClient<InterceptedService<Channel, Bearer>>;

/// Runs one command; a refusal of the server prints as `Code: message`, the message
/// unquoted (`PermissionDenied: token "look" has role "read", …`).
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    command(args)
        .await
        .map_err(|error| match error.downcast::<Status>() {
            Ok(status) => anyhow::anyhow!("{:?}: {}", status.code(), status.message()),
            Err(error) => error,
        })
}

async fn command(args: AdminArgs) -> anyhow::Result<()> {
    let mut endpoint = Endpoint::from_shared(args.endpoint.clone()).context("bad --endpoint")?;
    if args.endpoint.starts_with("https://") {
        let tls = match &args.ca_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
            }
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        endpoint = endpoint.tls_config(tls).context("TLS set-up")?;
    } else if args.ca_file.is_some() {
        anyhow::bail!("--ca-file needs an https:// endpoint");
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the admin API at {}", args.endpoint))?;
    let bearer = Bearer(
        args.token
            .as_deref()
            .map(|t| format!("Bearer {t}").parse())
            .transpose()
            .context("the token must be printable ASCII")?,
    );
    let mut admin = AdminClient::with_interceptor(channel.clone(), bearer.clone());
    let out = Out { json: args.json };
    match args.command {
        AdminCommand::User { command } => user(&mut admin, &out, command).await,
        AdminCommand::Group { command } => group(&mut admin, &out, command).await,
        AdminCommand::Route { table, command } => {
            route(
                &mut admin,
                &out,
                table.unwrap_or(TableArg::Mt).into(),
                command,
            )
            .await
        }
        AdminCommand::Filter { command } => filter(&mut admin, &out, command).await,
        AdminCommand::Interceptor { table, command } => {
            interceptor(&mut admin, &out, table.into(), command).await
        }
        AdminCommand::Connector { command } => connector(&mut admin, &out, command).await,
        AdminCommand::Account {
            command:
                AccountCmd::Rate {
                    uid,
                    to,
                    parts,
                    route_rate,
                },
        } => {
            let mut billing = BillingClient::with_interceptor(channel, bearer);
            let query = RateQuery {
                uid,
                to,
                parts,
                route_rate,
            };
            rate(&mut admin, &mut billing, &out, query).await
        }
        AdminCommand::Account { command } => account(&mut admin, &out, command).await,
        AdminCommand::Tariff { command } => tariff(&mut admin, &out, command).await,
        AdminCommand::LcrCost { command } => lcr_cost(&mut admin, &out, command).await,
        AdminCommand::Network {
            command:
                NetworkCmd::Load {
                    prefixes,
                    portability,
                },
        } => {
            let read = |p: Option<std::path::PathBuf>| -> anyhow::Result<String> {
                match p {
                    Some(p) => std::fs::read_to_string(&p)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display())),
                    None => Ok(String::new()),
                }
            };
            let tables = pb::NetworkTables {
                prefixes_csv: read(prefixes)?,
                portability_csv: read(portability)?,
            };
            out.done(&admin.load_networks(tables).await?.into_inner())
        }
        AdminCommand::Stats { command } => {
            let mut stats = StatsClient::with_interceptor(channel, bearer);
            match command {
                StatsCmd::Users { uid } => {
                    let r = stats.user_stats(pb::StatsRequest {
                        id: uid.unwrap_or_default(),
                    });
                    out.user_stats(&r.await?.into_inner())
                }
                StatsCmd::Connectors { cid } => {
                    let r = stats.connector_stats(pb::StatsRequest {
                        id: cid.unwrap_or_default(),
                    });
                    out.connector_stats(&r.await?.into_inner())
                }
            }
        }
        AdminCommand::Export { toml } => {
            let doc = admin.export_config(pb::ListRequest {}).await?.into_inner();
            if toml {
                print!("{}", as_toml(&doc.json)?);
            } else {
                println!("{}", doc.json);
            }
            Ok(())
        }
        AdminCommand::Apply { file, dry_run, yes } => {
            let toml = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            apply(
                &mut admin,
                &file.display().to_string(),
                toml,
                None,
                dry_run,
                yes,
            )
            .await
        }
        AdminCommand::ImportJasmin {
            path,
            profile,
            start_connectors,
            dry_run,
            yes,
        } => {
            let mut import = jasmin_import::read_store(&path, &profile)?;
            if !start_connectors {
                let started = import.keep_connectors_stopped();
                if !started.is_empty() {
                    eprintln!(
                        "connectors {} were started in Jasmin: imported stopped (--start-connectors starts them)",
                        started.join(", ")
                    );
                }
            }
            import_jasmin(&mut admin, &path, import, dry_run, yes).await
        }
    }
}

/// The exported JSON as TOML (TOML has no null: absent fields take their defaults).
fn as_toml(json: &str) -> anyhow::Result<String> {
    fn drop_nulls(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(drop_nulls);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_str(json)?;
    drop_nulls(&mut value);
    Ok(toml::to_string(&value)?)
}

/// `apply`: the diff first (a dry run), then, once confirmed, the change. `made_from`:
/// the exported configuration `toml` was made from, which must still be in force when
/// the diff is taken (the server refuses a change made since the diff, this one made
/// since the export).
async fn apply(
    admin: &mut Client,
    source: &str,
    toml: String,
    made_from: Option<&str>,
    dry_run: bool,
    yes: bool,
) -> anyhow::Result<()> {
    let request = |dry_run, base: &str| pb::ApplyRequest {
        toml: toml.clone(),
        dry_run,
        base: base.to_owned(),
    };
    let preview = admin.apply_config(request(true, "")).await?.into_inner();
    if let Some(made_from) = made_from {
        let now = admin.export_config(pb::ListRequest {}).await?.into_inner();
        if now.json != made_from {
            anyhow::bail!("the configuration changed while {source} was prepared: run it again");
        }
    }
    if !preview.changes {
        println!("no change: {source} is the configuration in force");
        return Ok(());
    }
    print!("{}", preview.diff);
    if dry_run {
        return Ok(());
    }
    if !yes {
        eprint!("apply these changes? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            anyhow::bail!("not applied");
        }
    }
    let done = admin
        .apply_config(request(false, &preview.base))
        .await?
        .into_inner();
    if done.applied {
        println!("applied {source}");
    } else {
        println!("no change: the configuration in force already matched");
    }
    Ok(())
}

/// `import-jasmin`: Jasmin's store (read here) merged into the configuration in force,
/// then applied as `apply` does (the server checks it and audits it as one change).
async fn import_jasmin(
    admin: &mut Client,
    path: &std::path::Path,
    mut import: jasmin_import::Import,
    dry_run: bool,
    yes: bool,
) -> anyhow::Result<()> {
    let exported = admin.export_config(pb::ListRequest {}).await?.into_inner();
    let current: router::RouterConfig = serde_json::from_str(&exported.json)
        .context("the configuration in force did not read as a router configuration")?;
    let merged = import.merge_into(current);
    for line in import.summary() {
        eprintln!("{line}");
    }
    for note in &import.report {
        let kind = if note.dropped { "not imported" } else { "note" };
        eprintln!("{kind}: {note}");
    }
    let toml = toml::to_string(&merged).context("the merged configuration as TOML")?;
    let source = path.display().to_string();
    apply(admin, &source, toml, Some(&exported.json), dry_run, yes).await
}

async fn user(admin: &mut Client, out: &Out, command: UserCmd) -> anyhow::Result<()> {
    match command {
        UserCmd::List => out.users(
            &admin
                .list_users(pb::ListRequest {})
                .await?
                .into_inner()
                .users,
        ),
        UserCmd::Get { uid } => {
            out.users(&[admin.get_user(pb::UserRef { uid }).await?.into_inner()])
        }
        UserCmd::Add(a) => out.users(&[admin.add_user(a.into_user()).await?.into_inner()]),
        UserCmd::Update(a) => out.users(&[admin.update_user(a.into_update()).await?.into_inner()]),
        UserCmd::Remove { uid } => {
            out.done(&admin.remove_user(pb::UserRef { uid }).await?.into_inner())
        }
        UserCmd::Enable { uid } => {
            out.users(&[admin.enable_user(pb::UserRef { uid }).await?.into_inner()])
        }
        UserCmd::Disable { uid } => {
            out.users(&[admin.disable_user(pb::UserRef { uid }).await?.into_inner()])
        }
    }
}

async fn group(admin: &mut Client, out: &Out, command: GroupCmd) -> anyhow::Result<()> {
    match command {
        GroupCmd::List => out.groups(
            &admin
                .list_groups(pb::ListRequest {})
                .await?
                .into_inner()
                .groups,
        ),
        GroupCmd::Add { gid, disabled } => {
            let g = pb::Group {
                gid,
                enabled: Some(!disabled),
            };
            out.groups(&[admin.add_group(g).await?.into_inner()])
        }
        GroupCmd::Remove { gid } => {
            out.done(&admin.remove_group(pb::GroupRef { gid }).await?.into_inner())
        }
    }
}

async fn route(
    admin: &mut Client,
    out: &Out,
    table: pb::Table,
    command: RouteCmd,
) -> anyhow::Result<()> {
    let t = table as i32;
    match command {
        RouteCmd::List => out.routes(
            &admin
                .list_routes(pb::RouteTable { table: t })
                .await?
                .into_inner()
                .routes,
        ),
        RouteCmd::Add {
            order,
            r#type,
            connectors,
            filters,
            rate,
        } => {
            let r = pb::Route {
                table: t,
                order,
                r#type,
                connectors,
                filters,
                rate,
            };
            out.routes(&[admin.add_route(r).await?.into_inner()])
        }
        RouteCmd::Remove { order } => out.done(
            &admin
                .remove_route(pb::RouteRef { table: t, order })
                .await?
                .into_inner(),
        ),
        RouteCmd::Flush => out.done(
            &admin
                .flush_routes(pb::RouteTable { table: t })
                .await?
                .into_inner(),
        ),
        RouteCmd::Explain { to, user } => {
            let e = admin
                .explain_route(pb::ExplainRequest { to, user })
                .await?
                .into_inner();
            print!("{}", e.text);
            Ok(())
        }
    }
}

async fn filter(admin: &mut Client, out: &Out, command: FilterCmd) -> anyhow::Result<()> {
    match command {
        FilterCmd::List => out.filters(
            &admin
                .list_filters(pb::ListRequest {})
                .await?
                .into_inner()
                .filters,
        ),
        FilterCmd::Add { fid, r#type, value } => {
            let f = pb::Filter {
                fid,
                r#type,
                value: value.unwrap_or_default(),
            };
            out.filters(&[admin.add_filter(f).await?.into_inner()])
        }
        FilterCmd::Remove { fid } => out.done(
            &admin
                .remove_filter(pb::FilterRef { fid })
                .await?
                .into_inner(),
        ),
    }
}

async fn interceptor(
    admin: &mut Client,
    out: &Out,
    table: pb::Table,
    command: InterceptorCmd,
) -> anyhow::Result<()> {
    let t = table as i32;
    match command {
        InterceptorCmd::List => {
            let r = admin.list_interceptors(pb::RouteTable { table: t }).await?;
            out.interceptors(&r.into_inner().interceptors)
        }
        InterceptorCmd::Add {
            order,
            r#type,
            filters,
            script,
            script_file,
        } => {
            let script = match (script, script_file) {
                (Some(s), _) => s,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                (None, None) => anyhow::bail!("give --script or --script-file"),
            };
            let i = pb::Interceptor {
                table: t,
                order,
                r#type,
                filters,
                script,
            };
            out.interceptors(&[admin.add_interceptor(i).await?.into_inner()])
        }
        InterceptorCmd::Remove { order } => out.done(
            &admin
                .remove_interceptor(pb::RouteRef { table: t, order })
                .await?
                .into_inner(),
        ),
    }
}

async fn connector(admin: &mut Client, out: &Out, command: ConnectorCmd) -> anyhow::Result<()> {
    match command {
        ConnectorCmd::List => out.connectors(
            &admin
                .list_connectors(pb::ListRequest {})
                .await?
                .into_inner()
                .connectors,
        ),
        ConnectorCmd::Show { cid } => out.connectors(&[admin
            .get_connector(pb::ConnectorRef { cid })
            .await?
            .into_inner()]),
        ConnectorCmd::Add(a) => out.connectors(&[admin
            .add_smpp_connector(a.into_connector())
            .await?
            .into_inner()]),
        ConnectorCmd::Edit(e) => out.connectors(&[admin
            .update_smpp_connector(e.into_update())
            .await?
            .into_inner()]),
        ConnectorCmd::Start { cid } => out.connectors(&[admin
            .start_connector(pb::ConnectorRef { cid })
            .await?
            .into_inner()]),
        ConnectorCmd::Stop { cid } => out.connectors(&[admin
            .stop_connector(pb::ConnectorRef { cid })
            .await?
            .into_inner()]),
        ConnectorCmd::Remove { cid } => out.done(
            &admin
                .remove_smpp_connector(pb::ConnectorRef { cid })
                .await?
                .into_inner(),
        ),
        ConnectorCmd::AddHttp { cid, url, method } => {
            let c = pb::HttpConnector { cid, url, method };
            let added = admin.add_http_connector(c).await?.into_inner();
            out.done(&pb::Done {
                detail: format!("HTTP connector {} added", added.cid),
            })
        }
        ConnectorCmd::UpdateHttp { cid, url, method } => {
            let c = pb::HttpConnector { cid, url, method };
            let updated = admin.update_http_connector(c).await?.into_inner();
            out.done(&pb::Done {
                detail: format!(
                    "HTTP connector {} now {} {}",
                    updated.cid, updated.method, updated.url
                ),
            })
        }
        ConnectorCmd::RemoveHttp { cid } => out.done(
            &admin
                .remove_http_connector(pb::ConnectorRef { cid })
                .await?
                .into_inner(),
        ),
    }
}

async fn account(admin: &mut Client, out: &Out, command: AccountCmd) -> anyhow::Result<()> {
    let balance = match command {
        AccountCmd::Balance { uid } => admin.get_balance(pb::AccountRef { uid }).await?,
        AccountCmd::TopUp {
            uid,
            amount,
            sms_count,
            reference,
            reason,
        } => {
            let r = pb::TopUpRequest {
                uid,
                amount: amount.unwrap_or_default(),
                sms_count,
                reference: reference.unwrap_or_default(),
                reason: reason.unwrap_or_default(),
            };
            admin.top_up(r).await?
        }
        AccountCmd::CreditLimit { uid, limit } => {
            admin
                .set_credit_limit(pb::CreditLimitRequest { uid, limit })
                .await?
        }
        AccountCmd::Suspend { uid } => admin.suspend_account(pb::AccountRef { uid }).await?,
        AccountCmd::Resume { uid } => admin.resume_account(pb::AccountRef { uid }).await?,
        AccountCmd::Rate { .. } => anyhow::bail!("account rate is answered by rate()"),
    };
    out.balance(&balance.into_inner())
}

async fn tariff(admin: &mut Client, out: &Out, command: TariffCmd) -> anyhow::Result<()> {
    match command {
        TariffCmd::List { uid } => {
            let filter = pb::TariffFilter {
                uid: uid.unwrap_or_default(),
            };
            out.tariffs(&admin.list_tariffs(filter).await?.into_inner())
        }
        TariffCmd::Set(t) => {
            let set = admin.set_tariff(pb::Tariff::from(t)).await?.into_inner();
            out.tariffs(&pb::TariffList { tariffs: vec![set] })
        }
        TariffCmd::Remove { id } => out.done(
            &admin
                .remove_tariff(pb::TariffRef { id })
                .await?
                .into_inner(),
        ),
    }
}

async fn lcr_cost(admin: &mut Client, out: &Out, command: LcrCostCmd) -> anyhow::Result<()> {
    match command {
        LcrCostCmd::List => {
            let list = admin.list_lcr_costs(pb::ListRequest {}).await?.into_inner();
            out.lcr_costs(&list)
        }
        LcrCostCmd::Set {
            connector,
            mcc,
            mnc,
            cost,
        } => {
            let set = pb::LcrCost {
                connector,
                mcc,
                mnc,
                cost,
            };
            let set = admin.set_lcr_cost(set).await?.into_inner();
            out.lcr_costs(&pb::LcrCostList { costs: vec![set] })
        }
        LcrCostCmd::Remove {
            connector,
            mcc,
            mnc,
        } => {
            let gone = pb::LcrCost {
                connector,
                mcc,
                mnc,
                cost: String::new(),
            };
            out.done(&admin.remove_lcr_cost(gone).await?.into_inner())
        }
    }
}

struct RateQuery {
    uid: String,
    to: String,
    parts: u32,
    route_rate: Option<String>,
}

/// `account rate`: the account (GetBalance), the route and network the number takes
/// (ExplainRoute), then billing's price (Billing/Rate), as the gateway would charge it.
async fn rate(
    admin: &mut Client,
    billing: &mut BillingClient<InterceptedService<Channel, Bearer>>,
    out: &Out,
    q: RateQuery,
) -> anyhow::Result<()> {
    let account = admin
        .get_balance(pb::AccountRef { uid: q.uid.clone() })
        .await?
        .into_inner();
    let explained = admin
        .explain_route(pb::ExplainRequest {
            to: q.to.clone(),
            user: q.uid.clone(),
        })
        .await?
        .into_inner();
    let route_rate = match (&q.route_rate, explained.route_rate_micros) {
        (Some(text), _) => router::config::parse_micros(text)
            .map_err(|e| anyhow::anyhow!("--route-rate {text:?}: {e}"))?,
        (None, Some(rate)) => rate,
        (None, None) => anyhow::bail!(
            "no MT route for {} from {}: {} (give --route-rate to price it anyway)",
            q.to,
            q.uid,
            explained.note
        ),
    };
    let reply = billing
        .rate(bpb::RateRequest {
            account_id: account.account_id,
            destination: q.to.clone(),
            mcc: explained.mcc,
            mnc: explained.mnc,
            route_rate_micros: route_rate,
            parts: q.parts,
        })
        .await?
        .into_inner();
    out.rate(&print::Quote {
        uid: q.uid,
        account_id: account.account_id,
        destination: q.to,
        network: explained.network,
        route: if q.route_rate.is_some() {
            "--route-rate".into()
        } else {
            explained.route
        },
        source: reply.source,
        parts: q.parts,
        price_per_part: router::lcr::format_micros(reply.price_per_part_micros),
        total: router::lcr::format_micros(reply.total_micros),
        currency: reply.currency,
    })
}
