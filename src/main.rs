//! The `smsgw` binary: wires the crates together.

mod admin_cli;
mod admin_serve;
mod alloc;
mod apikey;
mod config;
mod config_audit;
mod health;
mod serve;
mod sink;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "smsgw",
    version,
    about = "SMPP 3.4 gateway: client binds in, operator uplinks out"
)]
struct Cli {
    /// Log as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (SMPP listener on 127.0.0.1:2775 by default).
    Serve {
        /// Configuration file (default: ./smsgw.toml if present, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Benchmark mode: accept any bind and ack every submit_sm without routing it.
        #[arg(long)]
        sink: bool,
    },
    /// Create or upgrade the billing store's tables.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print an Argon2id hash of the password read from stdin, for `password` in [router].
    HashPassword,
    /// Manage users, routes, filters, connectors and accounts of a running gateway
    /// over its gRPC admin API (the jCli replacement).
    Admin(Box<admin_cli::AdminArgs>),
    /// REST API v1 keys, made in the store directly (the gateway may be running).
    Apikey {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: apikey::ApikeyCommand,
    },
    /// Print a shell completion script: `smsgw completions bash > /etc/bash_completion.d/smsgw`
    /// (also zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Billing reports.
    Billing {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: BillingCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BillingCommand {
    /// Recompute every balance from the ledger and every charged total from the CDR;
    /// print the discrepancies and exit non-zero if there are any.
    Reconcile,
    /// Monthly invoice of an account from the CDR, as CSV on stdout.
    Invoice {
        #[arg(long)]
        account: i64,
        #[arg(long)]
        year: i32,
        #[arg(long)]
        month: u32,
    },
    /// Monthly margin from the CDR: revenue, operator cost and margin per carrying
    /// connector and destination network, as CSV on stdout.
    Margin {
        /// YYYY-MM
        #[arg(long)]
        month: String,
    },
    /// The audit log (balance changes, configuration loads), newest first.
    Audit {
        /// Only lines of this action, e.g. `balance.adjust` or `config.loaded`.
        #[arg(long)]
        action: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// Logs as `RUST_LOG` says, plus OTLP traces when `[telemetry]` asks for them. Each has
/// its own filter, so the message steps' DEBUG spans reach OTLP without flooding logs.
fn init_logging(
    json: bool,
    telemetry: Option<&api::telemetry::TelemetryConfig>,
) -> anyhow::Result<Option<api::telemetry::TelemetryGuard>> {
    use tracing_subscriber::{Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let (otel, guard) = match telemetry {
        Some(config) => api::telemetry::layer(config)?.unzip(),
        None => (None, None),
    };
    tracing_subscriber::registry().with(fmt).with(otel).init();
    Ok(guard)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    alloc::tune();
    let cli = Cli::parse();
    // Traces are set up with the logs, before anything runs; a broken config file is
    // reported by `serve` itself.
    let telemetry = match &cli.command {
        Command::Serve { config, .. } => config::Config::load(config.as_deref())
            .ok()
            .map(|loaded| loaded.config.telemetry),
        _ => None,
    };
    let _telemetry = init_logging(cli.log_json, telemetry.as_ref())?;
    match cli.command {
        Command::Serve { config, sink } => serve::run(config, sink).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "smsgw", &mut std::io::stdout());
            Ok(())
        }
        Command::Admin(args) => admin_cli::run(*args).await,
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let hash = router::user::hash_password(password.trim_end_matches(['\r', '\n']))
                .map_err(anyhow::Error::msg)?;
            println!("{hash}");
            Ok(())
        }
        Command::Migrate { config } => {
            let url = serve::storage_url(config.as_deref())?;
            billing::cli::migrate(&url).await?;
            println!("migrated {url}");
            Ok(())
        }
        Command::Apikey { config, command } => {
            let url = serve::storage_url(config.as_deref())?;
            apikey::run(&url, command).await
        }
        Command::Billing { config, command } => {
            let url = serve::storage_url(config.as_deref())?;
            match command {
                BillingCommand::Reconcile => {
                    let report = billing::cli::reconcile(&url).await?;
                    println!("{report}");
                    if !report.is_clean() {
                        std::process::exit(1);
                    }
                    Ok(())
                }
                BillingCommand::Margin { month } => {
                    billing::cli::margin_csv(&url, &month, std::io::stdout()).await?;
                    Ok(())
                }
                BillingCommand::Invoice {
                    account,
                    year,
                    month,
                } => {
                    billing::cli::invoice_csv(&url, account, year, month, std::io::stdout())
                        .await?;
                    Ok(())
                }
                BillingCommand::Audit { action, limit } => {
                    for e in billing::cli::audit_log(&url, action.as_deref(), limit).await? {
                        println!(
                            "{}\t{}\t{}\t{}\t{}\t{}",
                            e.at, e.actor, e.origin, e.action, e.subject, e.detail
                        );
                    }
                    Ok(())
                }
            }
        }
    }
}
