//! The `smsgw admin` command line, grouped as jCli is: user, group, route, filter,
//! interceptor, connector, account, stats.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use proto::admin as pb;

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The admin API (`[admin] listen`).
    #[arg(
        long,
        visible_alias = "server",
        env = "SMSGW_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub endpoint: String,
    /// PEM CA certificate(s) to trust for an https endpoint (`[admin.tls]` with a private
    /// CA or a self-signed certificate); default: the public web PKI roots.
    #[arg(long, env = "SMSGW_ADMIN_CA")]
    pub ca_file: Option<PathBuf>,
    /// Bearer token (one of `[admin] tokens`).
    #[arg(long, env = "SMSGW_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Users (SMPP and HTTP clients).
    User {
        #[command(subcommand)]
        command: UserCmd,
    },
    Group {
        #[command(subcommand)]
        command: GroupCmd,
    },
    /// MT or MO routes, in evaluation order (`route mt list`), or how a message would
    /// be routed now (`route explain --to 998901234567 --user bank1`).
    #[command(subcommand_precedence_over_arg = true)]
    Route {
        /// mt (default) or mo.
        table: Option<TableArg>,
        #[command(subcommand)]
        command: RouteCmd,
    },
    Filter {
        #[command(subcommand)]
        command: FilterCmd,
    },
    Interceptor {
        table: TableArg,
        #[command(subcommand)]
        command: InterceptorCmd,
    },
    /// SMPP client connectors (uplinks to operators) and HTTP connectors.
    Connector {
        #[command(subcommand)]
        command: ConnectorCmd,
    },
    /// Least-cost routing's number → network tables: `network load` reads the files
    /// again; `--prefixes F` / `--portability F` add CSV rows until the next load.
    Network {
        #[command(subcommand)]
        command: NetworkCmd,
    },
    /// Least-cost routing's cost table: what each connector charges per part, by
    /// network. A connector with a cost comes under LCR.
    LcrCost {
        #[command(subcommand)]
        command: LcrCostCmd,
    },
    /// A user's billing account.
    Account {
        #[command(subcommand)]
        command: AccountCmd,
    },
    /// Prices per part by network or destination prefix, global or per account (where
    /// none matches, the MT route's rate is charged).
    Tariff {
        #[command(subcommand)]
        command: TariffCmd,
    },
    Stats {
        #[command(subcommand)]
        command: StatsCmd,
    },
    /// The whole router configuration as JSON, or as TOML that `apply` takes back
    /// (passwords redacted as "***").
    Export {
        #[arg(long)]
        toml: bool,
    },
    /// Replace the whole router configuration by FILE (TOML: what `export --toml`
    /// writes, or a smsgw.toml's [router]) as one audited change. Shows the diff first
    /// and asks, unless --yes; --dry-run only shows it. "***" passwords keep theirs.
    Apply {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        yes: bool,
    },
    /// Bring in what Jasmin's `jcli persist` saved: PATH is its store directory
    /// (/etc/jasmin/store) or one of its files (jcli-prod.router-users, .smppccs, …). Users,
    /// groups, filters and connectors are added or take the store's settings; a routing
    /// table in the store replaces smsgw's (interceptors are Python: listed, not
    /// imported). Everything without an equivalent is listed; then it goes as `apply`
    /// does (diff, confirm, audited).
    ImportJasmin {
        path: PathBuf,
        /// The `jcli persist -p` profile whose files to read in a store directory.
        #[arg(long, default_value = jasmin_import::DEFAULT_PROFILE)]
        profile: String,
        /// Start the connectors Jasmin had started (default: all imported stopped, so
        /// that smsgw does not bind to an operator Jasmin is still bound to; start them
        /// with `connector start` when Jasmin is down).
        #[arg(long)]
        start_connectors: bool,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        yes: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum TableArg {
    Mt,
    Mo,
}

impl From<TableArg> for pb::Table {
    fn from(t: TableArg) -> Self {
        match t {
            TableArg::Mt => pb::Table::Mt,
            TableArg::Mo => pb::Table::Mo,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    List,
    Get {
        #[arg(long)]
        uid: String,
    },
    Add(UserAdd),
    Update(UserUpdate),
    Remove {
        #[arg(long)]
        uid: String,
    },
    Enable {
        #[arg(long)]
        uid: String,
    },
    Disable {
        #[arg(long)]
        uid: String,
    },
}

/// Quotas and filters shared by add and update; "" clears one.
#[derive(Args, Debug)]
pub struct UserOptions {
    /// Opening balance (new users) as a decimal; absent = unlimited.
    #[arg(long)]
    balance: Option<String>,
    #[arg(long)]
    sms_count: Option<u64>,
    #[arg(long)]
    smpps_throughput: Option<f64>,
    #[arg(long)]
    http_throughput: Option<f64>,
    #[arg(long)]
    default_src_addr: Option<String>,
    #[arg(long)]
    dst_addr_filter: Option<String>,
    #[arg(long)]
    src_addr_filter: Option<String>,
    #[arg(long)]
    content_filter: Option<String>,
    #[arg(long)]
    max_bindings: Option<u32>,
}

#[derive(Args, Debug)]
pub struct UserAdd {
    #[arg(long)]
    uid: String,
    #[arg(long)]
    username: String,
    #[arg(long)]
    password: String,
    #[arg(long)]
    gid: String,
    #[arg(long)]
    disabled: bool,
    /// The router's UserConfig as JSON, for what has no option (authorizations…).
    #[arg(long)]
    config_json: Option<String>,
    #[command(flatten)]
    options: UserOptions,
}

impl UserAdd {
    pub fn into_user(self) -> pb::User {
        let o = self.options;
        pb::User {
            uid: self.uid,
            username: self.username,
            password: self.password,
            gid: self.gid,
            enabled: Some(!self.disabled),
            balance: o.balance,
            sms_count: o.sms_count,
            smpps_throughput: o.smpps_throughput,
            http_throughput: o.http_throughput,
            default_src_addr: o.default_src_addr,
            dst_addr_filter: o.dst_addr_filter,
            src_addr_filter: o.src_addr_filter,
            content_filter: o.content_filter,
            max_bindings: o.max_bindings,
            config_json: self.config_json.unwrap_or_default(),
        }
    }
}

#[derive(Args, Debug)]
pub struct UserUpdate {
    #[arg(long)]
    uid: String,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    #[arg(long)]
    gid: Option<String>,
    #[command(flatten)]
    options: UserOptions,
}

impl UserUpdate {
    pub fn into_update(self) -> pb::UserUpdate {
        let o = self.options;
        pb::UserUpdate {
            uid: self.uid,
            username: self.username,
            password: self.password,
            gid: self.gid,
            enabled: None,
            balance: o.balance,
            sms_count: o.sms_count,
            smpps_throughput: o.smpps_throughput,
            http_throughput: o.http_throughput,
            default_src_addr: o.default_src_addr,
            dst_addr_filter: o.dst_addr_filter,
            src_addr_filter: o.src_addr_filter,
            content_filter: o.content_filter,
            max_bindings: o.max_bindings,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    List,
    Add {
        #[arg(long)]
        gid: String,
        #[arg(long)]
        disabled: bool,
    },
    Remove {
        #[arg(long)]
        gid: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Load the tables again (and add the rows of these CSV files).
    Load {
        /// `prefix,mcc,mnc,operator,country,region` lines.
        #[arg(long)]
        prefixes: Option<std::path::PathBuf>,
        /// `msisdn,mcc,mnc` lines.
        #[arg(long)]
        portability: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RouteCmd {
    List,
    /// Add (or replace) the route of this order.
    Add {
        #[arg(long)]
        order: u32,
        /// DefaultRoute, StaticMTRoute, RandomRoundrobinMTRoute, FailoverMTRoute, …MORoute
        #[arg(long = "type")]
        r#type: String,
        /// Repeat for round-robin and failover routes; none for an LcrRoute.
        #[arg(long = "connector")]
        connectors: Vec<String>,
        #[arg(long = "filter")]
        filters: Vec<String>,
        #[arg(long)]
        rate: Option<String>,
    },
    Remove {
        #[arg(long)]
        order: u32,
    },
    /// Remove every route of the table.
    Flush,
    /// How a message would be routed now: the destination's network, every candidate
    /// connector with its cost, health score and why it was kept or dropped, the choice.
    Explain {
        /// Destination number (E.164, international or national).
        #[arg(long)]
        to: String,
        /// Username (or uid) of the sender.
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum FilterCmd {
    List,
    Add {
        #[arg(long)]
        fid: String,
        #[arg(long = "type")]
        r#type: String,
        /// The filter's parameter: a cid, uid, gid, regex, interval, tag or script.
        #[arg(long)]
        value: Option<String>,
    },
    Remove {
        #[arg(long)]
        fid: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum InterceptorCmd {
    List,
    Add {
        #[arg(long)]
        order: u32,
        #[arg(long = "type")]
        r#type: String,
        #[arg(long = "filter")]
        filters: Vec<String>,
        #[arg(long)]
        script: Option<String>,
        #[arg(long)]
        script_file: Option<PathBuf>,
    },
    Remove {
        #[arg(long)]
        order: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConnectorCmd {
    List,
    /// One connector's status: started, bound, pending parts, counters, options.
    Show {
        #[arg(long)]
        cid: String,
    },
    /// Add an SMPP client connector; it starts at once unless --stopped.
    Add(SmppAdd),
    /// Change an SMPP connector's options: only its uplink restarts, queued parts wait.
    Edit(SmppEdit),
    /// Start an SMPP connector's uplink (and at every start of the gateway).
    Start {
        #[arg(long)]
        cid: String,
    },
    /// Stop (unbind) an SMPP connector; messages routed to it wait in its queue.
    Stop {
        #[arg(long)]
        cid: String,
    },
    /// Remove an SMPP connector (refused while a route uses it or parts wait for it).
    Remove {
        #[arg(long)]
        cid: String,
    },
    AddHttp {
        #[arg(long)]
        cid: String,
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "POST")]
        method: String,
    },
    /// A new url or method for an HTTP connector (the next MO routed to it goes there).
    UpdateHttp {
        #[arg(long)]
        cid: String,
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "POST")]
        method: String,
    },
    RemoveHttp {
        #[arg(long)]
        cid: String,
    },
}

/// Options of an SMPP connector shared by add and edit (smsgw.toml `[[connectors]]`).
#[derive(Args, Debug)]
pub struct SmppOptions {
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    port: Option<u16>,
    /// The system_id we bind with.
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// transceiver, transmitter or receiver.
    #[arg(long)]
    bind: Option<String>,
    /// submit_sm per second; 0 = no cap.
    #[arg(long)]
    submit_throughput: Option<f64>,
    #[arg(long)]
    window: Option<u32>,
    /// Other options as a JSON object, e.g. '{"queue_capacity": 5000, "tls": true}'.
    #[arg(long)]
    config_json: Option<String>,
}

#[derive(Args, Debug)]
pub struct SmppAdd {
    #[arg(long)]
    cid: String,
    /// Stored stopped: start it later with `connector start`.
    #[arg(long)]
    stopped: bool,
    #[command(flatten)]
    options: SmppOptions,
}

impl SmppAdd {
    pub fn into_connector(self) -> pb::SmppConnector {
        let o = self.options;
        pb::SmppConnector {
            cid: self.cid,
            host: o.host.unwrap_or_default(),
            port: o.port.map_or(0, u32::from),
            username: o.username.unwrap_or_default(),
            password: o.password.unwrap_or_default(),
            bind: o.bind.unwrap_or_default(),
            start: Some(!self.stopped),
            submit_throughput: o.submit_throughput,
            window: o.window,
            config_json: o.config_json.unwrap_or_default(),
        }
    }
}

#[derive(Args, Debug)]
pub struct SmppEdit {
    #[arg(long)]
    cid: String,
    #[command(flatten)]
    options: SmppOptions,
}

impl SmppEdit {
    pub fn into_update(self) -> pb::SmppConnectorUpdate {
        let o = self.options;
        pb::SmppConnectorUpdate {
            cid: self.cid,
            host: o.host,
            port: o.port.map(u32::from),
            username: o.username,
            password: o.password,
            bind: o.bind,
            submit_throughput: o.submit_throughput,
            window: o.window,
            config_json: o.config_json.unwrap_or_default(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    Balance {
        #[arg(long)]
        uid: String,
    },
    TopUp {
        #[arg(long)]
        uid: String,
        #[arg(long)]
        amount: Option<String>,
        #[arg(long, default_value_t = 0)]
        sms_count: i64,
        /// Idempotency key (e.g. the payment's id).
        #[arg(long)]
        reference: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    CreditLimit {
        #[arg(long)]
        uid: String,
        #[arg(long)]
        limit: String,
    },
    Suspend {
        #[arg(long)]
        uid: String,
    },
    Resume {
        #[arg(long)]
        uid: String,
    },
    /// What a message to `--to` costs this account now: its tariff (account, else
    /// global) for the destination's network, else the rate of the MT route it takes.
    Rate {
        #[arg(long)]
        uid: String,
        /// Destination number.
        #[arg(long)]
        to: String,
        /// Number of parts (a long message).
        #[arg(long, default_value_t = 1)]
        parts: u32,
        /// The route's rate per part as a decimal, instead of the matched route's.
        #[arg(long)]
        route_rate: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum LcrCostCmd {
    List,
    /// Adds or replaces the cost of `--connector` for `--mcc`/`--mnc`.
    Set {
        #[arg(long)]
        connector: String,
        #[arg(long)]
        mcc: u32,
        #[arg(long)]
        mnc: u32,
        /// Per part, a decimal ("0.012").
        #[arg(long)]
        cost: String,
    },
    Remove {
        #[arg(long)]
        connector: String,
        #[arg(long)]
        mcc: u32,
        #[arg(long)]
        mnc: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum TariffCmd {
    /// Every tariff, or `--uid`'s account overrides.
    List {
        #[arg(long)]
        uid: Option<String>,
    },
    /// Adds a tariff, or replaces tariff `--id`.
    Set(TariffSet),
    Remove {
        #[arg(long)]
        id: i64,
    },
}

#[derive(Args, Debug)]
pub struct TariffSet {
    /// Replace this tariff instead of adding one.
    #[arg(long)]
    id: Option<i64>,
    /// The user whose account it prices; absent: a global tariff.
    #[arg(long)]
    uid: Option<String>,
    /// Mobile country code (with `--mnc` for one network); or give `--prefix`.
    #[arg(long, conflicts_with = "prefix")]
    mcc: Option<u32>,
    #[arg(long, requires = "mcc")]
    mnc: Option<u32>,
    /// Destination prefix (digits).
    #[arg(long)]
    prefix: Option<String>,
    /// Price per part as a decimal ("0.015").
    #[arg(long)]
    price: String,
    /// Default: the account's currency.
    #[arg(long)]
    currency: Option<String>,
    /// RFC 3339 or a date; default now.
    #[arg(long)]
    valid_from: Option<String>,
    /// RFC 3339 or a date (exclusive); default open-ended.
    #[arg(long)]
    valid_to: Option<String>,
    /// A volume discount, MIN_PARTS:BASIS_POINTS (e.g. 100000:500 is 5 % from 100k
    /// parts a month); repeatable.
    #[arg(long = "tier", value_parser = parse_tier)]
    tiers: Vec<pb::VolumeTier>,
}

fn parse_tier(text: &str) -> Result<pb::VolumeTier, String> {
    let (min, bp) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: want MIN_PARTS:BASIS_POINTS"))?;
    Ok(pb::VolumeTier {
        min_volume: min.trim().parse().map_err(|e| format!("{min:?}: {e}"))?,
        discount_bp: bp.trim().parse().map_err(|e| format!("{bp:?}: {e}"))?,
    })
}

impl From<TariffSet> for pb::Tariff {
    fn from(t: TariffSet) -> Self {
        pb::Tariff {
            id: t.id.unwrap_or(0),
            uid: t.uid.unwrap_or_default(),
            mcc: t.mcc,
            mnc: t.mnc,
            prefix: t.prefix.unwrap_or_default(),
            price: t.price,
            currency: t.currency.unwrap_or_default(),
            valid_from: t.valid_from.unwrap_or_default(),
            valid_to: t.valid_to.unwrap_or_default(),
            tiers: t.tiers,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum StatsCmd {
    Users {
        #[arg(long)]
        uid: Option<String>,
    },
    Connectors {
        #[arg(long)]
        cid: Option<String>,
    },
}
