//! What `smsgw admin` prints: aligned tables, or the replies as JSON with `--json`.

use proto::admin as pb;
use serde::Serialize;

/// `account rate`: what a message would cost an account (amounts as decimals).
#[derive(Serialize)]
pub struct Quote {
    pub uid: String,
    pub account_id: i64,
    pub destination: String,
    pub network: String,
    pub route: String,
    /// "tariff:<id>" or "route".
    pub source: String,
    pub parts: u32,
    pub price_per_part: String,
    pub total: String,
    pub currency: String,
}

pub struct Out {
    pub json: bool,
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
}

impl Out {
    fn emit<T: Serialize>(&self, value: &T, tabular: impl FnOnce()) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            tabular();
        }
        Ok(())
    }

    pub fn done(&self, d: &pb::Done) -> anyhow::Result<()> {
        self.emit(d, || println!("{}", d.detail))
    }

    pub fn users(&self, users: &[pb::User]) -> anyhow::Result<()> {
        self.emit(&users, || {
            let rows = users
                .iter()
                .map(|u| {
                    vec![
                        u.uid.clone(),
                        u.username.clone(),
                        u.gid.clone(),
                        opt(&u.enabled),
                        opt(&u.balance),
                        opt(&u.sms_count),
                        opt(&u.smpps_throughput),
                        opt(&u.dst_addr_filter),
                    ]
                })
                .collect();
            table(
                &[
                    "uid",
                    "username",
                    "gid",
                    "enabled",
                    "balance",
                    "sms_count",
                    "smpp/s",
                    "dst filter",
                ],
                rows,
            );
        })
    }

    pub fn groups(&self, groups: &[pb::Group]) -> anyhow::Result<()> {
        self.emit(&groups, || {
            let rows = groups
                .iter()
                .map(|g| vec![g.gid.clone(), opt(&g.enabled)])
                .collect();
            table(&["gid", "enabled"], rows);
        })
    }

    pub fn routes(&self, routes: &[pb::Route]) -> anyhow::Result<()> {
        self.emit(&routes, || {
            let rows = routes
                .iter()
                .map(|r| {
                    vec![
                        r.order.to_string(),
                        r.r#type.clone(),
                        r.connectors.join(","),
                        r.filters.join(","),
                        opt(&r.rate),
                    ]
                })
                .collect();
            table(&["order", "type", "connectors", "filters", "rate"], rows);
        })
    }

    pub fn filters(&self, filters: &[pb::Filter]) -> anyhow::Result<()> {
        self.emit(&filters, || {
            let rows = filters
                .iter()
                .map(|f| vec![f.fid.clone(), f.r#type.clone(), f.value.clone()])
                .collect();
            table(&["fid", "type", "value"], rows);
        })
    }

    pub fn interceptors(&self, list: &[pb::Interceptor]) -> anyhow::Result<()> {
        self.emit(&list, || {
            let rows = list
                .iter()
                .map(|i| {
                    let script = i.script.lines().next().unwrap_or_default().to_owned();
                    vec![
                        i.order.to_string(),
                        i.r#type.clone(),
                        i.filters.join(","),
                        script,
                    ]
                })
                .collect();
            table(&["order", "type", "filters", "script (first line)"], rows);
        })
    }

    pub fn connectors(&self, list: &[pb::Connector]) -> anyhow::Result<()> {
        self.emit(&list, || {
            let rows = list
                .iter()
                .map(|c| {
                    let n = |f: fn(&pb::ConnectorCounters) -> u64| {
                        c.counters
                            .as_ref()
                            .map_or("-".to_owned(), |x| f(x).to_string())
                    };
                    vec![
                        c.cid.clone(),
                        c.kind.clone(),
                        c.target.clone(),
                        c.bind.clone(),
                        if c.kind == "smpp" {
                            c.started.to_string()
                        } else {
                            "-".into()
                        },
                        if c.kind == "smpp" {
                            c.bound.to_string()
                        } else {
                            "-".into()
                        },
                        if c.kind == "smpp" {
                            c.pending.to_string()
                        } else {
                            "-".into()
                        },
                        n(|x| x.submitted),
                        n(|x| x.failed),
                        n(|x| x.receipts),
                    ]
                })
                .collect();
            table(
                &[
                    "cid",
                    "kind",
                    "target",
                    "bind",
                    "started",
                    "bound",
                    "pending",
                    "submitted",
                    "failed",
                    "receipts",
                ],
                rows,
            );
        })
    }

    pub fn lcr_costs(&self, list: &pb::LcrCostList) -> anyhow::Result<()> {
        self.emit(list, || {
            let rows = list
                .costs
                .iter()
                .map(|c| {
                    vec![
                        format!("{:03}/{:02}", c.mcc, c.mnc),
                        c.connector.clone(),
                        c.cost.clone(),
                    ]
                })
                .collect();
            table(&["network", "connector", "cost"], rows);
        })
    }

    pub fn tariffs(&self, list: &pb::TariffList) -> anyhow::Result<()> {
        self.emit(list, || {
            let rows = list
                .tariffs
                .iter()
                .map(|t| {
                    let network = match (t.mcc, t.mnc) {
                        (Some(mcc), Some(mnc)) => format!("{mcc:03}/{mnc:02}"),
                        (Some(mcc), None) => format!("{mcc:03}/*"),
                        _ => "-".to_owned(),
                    };
                    let tiers: Vec<String> = t
                        .tiers
                        .iter()
                        .map(|x| format!("{}:{}", x.min_volume, x.discount_bp))
                        .collect();
                    let blank = |s: &str| {
                        if s.is_empty() {
                            "-".to_owned()
                        } else {
                            s.to_owned()
                        }
                    };
                    vec![
                        t.id.to_string(),
                        if t.uid.is_empty() {
                            "(global)".to_owned()
                        } else {
                            t.uid.clone()
                        },
                        network,
                        blank(&t.prefix),
                        t.price.clone(),
                        t.currency.clone(),
                        t.valid_from.clone(),
                        blank(&t.valid_to),
                        blank(&tiers.join(",")),
                    ]
                })
                .collect();
            table(
                &[
                    "id", "uid", "network", "prefix", "price", "currency", "from", "to", "tiers",
                ],
                rows,
            );
        })
    }

    pub fn balance(&self, b: &pb::Balance) -> anyhow::Result<()> {
        self.emit(b, || {
            let row = vec![
                b.uid.clone(),
                b.account_id.to_string(),
                b.currency.clone(),
                b.balance.clone(),
                b.reserved.clone(),
                b.available.clone(),
                b.credit_limit.clone(),
                opt(&b.sms_count),
                b.status.clone(),
            ];
            table(
                &[
                    "uid",
                    "account",
                    "currency",
                    "balance",
                    "reserved",
                    "available",
                    "credit",
                    "sms_count",
                    "status",
                ],
                vec![row],
            );
        })
    }

    pub fn rate(&self, q: &Quote) -> anyhow::Result<()> {
        self.emit(q, || {
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_owned()
                } else {
                    s.to_owned()
                }
            };
            table(
                &[
                    "uid",
                    "account",
                    "destination",
                    "network",
                    "route",
                    "source",
                    "parts",
                    "per_part",
                    "total",
                    "currency",
                ],
                vec![vec![
                    q.uid.clone(),
                    q.account_id.to_string(),
                    q.destination.clone(),
                    dash(&q.network),
                    dash(&q.route),
                    q.source.clone(),
                    q.parts.to_string(),
                    q.price_per_part.clone(),
                    q.total.clone(),
                    q.currency.clone(),
                ]],
            );
        })
    }

    pub fn user_stats(&self, s: &pb::UserStatsList) -> anyhow::Result<()> {
        self.emit(s, || {
            let rows = s
                .users
                .iter()
                .map(|u| {
                    [
                        u.submit_requests,
                        u.accepted,
                        u.refused,
                        u.throttled,
                        u.receipts,
                        u.mo,
                    ]
                    .iter()
                    .fold(vec![u.uid.clone()], |mut row, n| {
                        row.push(n.to_string());
                        row
                    })
                })
                .collect();
            table(
                &[
                    "uid",
                    "submits",
                    "accepted",
                    "refused",
                    "throttled",
                    "receipts",
                    "mo",
                ],
                rows,
            );
        })
    }

    pub fn connector_stats(&self, s: &pb::ConnectorStatsList) -> anyhow::Result<()> {
        self.emit(s, || {
            let rows = s
                .connectors
                .iter()
                .map(|c| {
                    [
                        c.queued,
                        c.submitted,
                        c.failed,
                        c.requeued,
                        c.expired,
                        c.receipts,
                        c.receipts_unmatched,
                        c.mo,
                    ]
                    .iter()
                    .fold(
                        vec![c.cid.clone(), c.bound.to_string()],
                        |mut row, n| {
                            row.push(n.to_string());
                            row
                        },
                    )
                })
                .collect();
            table(
                &[
                    "cid",
                    "bound",
                    "queued",
                    "submitted",
                    "failed",
                    "requeued",
                    "expired",
                    "receipts",
                    "unmatched",
                    "mo",
                ],
                rows,
            );
        })
    }
}
