//! The monthly margin report from the CDR (`smsgw billing margin --month YYYY-MM`): per
//! carrying connector and destination network, what clients paid (revenue = debited
//! amounts), what the operators charge us (cost) and the difference (margin). Only
//! messages the operator took (CHARGED) count; amounts are micro-units, printed as
//! decimals, so the lines add up to the TOTAL exactly.

use std::io::Write;

use crate::error::BillingError;
use crate::money::Micros;
use crate::recovery::month_bounds;
use crate::store::{LedgerStore, MarginLine};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarginReport {
    pub year: i32,
    pub month: u32,
    pub lines: Vec<MarginLine>,
}

impl MarginReport {
    pub fn revenue(&self) -> Micros {
        Micros(self.lines.iter().map(|l| l.revenue.0).sum())
    }

    pub fn cost(&self) -> Micros {
        Micros(self.lines.iter().map(|l| l.cost.0).sum())
    }

    pub fn margin(&self) -> Micros {
        Micros(self.revenue().0 - self.cost().0)
    }

    pub fn write_csv(&self, mut w: impl Write) -> Result<(), BillingError> {
        let period = format!("{:04}-{:02}", self.year, self.month);
        writeln!(
            w,
            "period,currency,connector,operator,mcc,mnc,messages,parts,revenue,cost,margin"
        )?;
        let opt = |v: Option<u16>| v.map(|v| v.to_string()).unwrap_or_default();
        for l in &self.lines {
            writeln!(
                w,
                "{period},{},{},{},{},{},{},{},{},{},{}",
                l.currency,
                field(&l.connector),
                field(&l.operator),
                opt(l.mcc),
                opt(l.mnc),
                l.messages,
                l.parts,
                l.revenue,
                l.cost,
                Micros(l.revenue.0 - l.cost.0)
            )?;
        }
        writeln!(
            w,
            "{period},,TOTAL,,,,{},{},{},{},{}",
            self.lines.iter().map(|l| l.messages).sum::<i64>(),
            self.lines.iter().map(|l| l.parts).sum::<i64>(),
            self.revenue(),
            self.cost(),
            self.margin()
        )?;
        Ok(())
    }
}

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `YYYY-MM` → (year, month).
pub fn parse_month(text: &str) -> Result<(i32, u32), BillingError> {
    let bad = || BillingError::InvalidRequest(format!("{text:?} is not YYYY-MM"));
    let (y, m) = text.trim().split_once('-').ok_or_else(bad)?;
    let year = y.parse().map_err(|_| bad())?;
    let month = m.parse().map_err(|_| bad())?;
    month_bounds(year, month)?;
    Ok((year, month))
}

pub async fn margin(
    store: &dyn LedgerStore,
    year: i32,
    month: u32,
) -> Result<MarginReport, BillingError> {
    let (from, to) = month_bounds(year, month)?;
    Ok(MarginReport {
        year,
        month,
        lines: store.margin_lines(from, to).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse() {
        assert_eq!(parse_month("2026-12").ok(), Some((2026, 12)));
        assert!(parse_month("2026-13").is_err());
        assert!(parse_month("2026").is_err());
        assert!(parse_month("x-1").is_err());
    }
}
