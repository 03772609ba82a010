//! Monthly invoices from the CDR, as CSV: one line per (operator, charge status, price
//! per part), then a total. Amounts are what was actually debited (`cdr.charged`), so a
//! refunded message of an early_percent account shows its retained early share.

use std::io::Write;

use crate::account::AccountId;
use crate::error::BillingError;
use crate::money::{Currency, Micros};
use crate::recovery::month_bounds;
use crate::store::{InvoiceLine, LedgerStore};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoice {
    pub account: AccountId,
    pub currency: Currency,
    pub year: i32,
    pub month: u32,
    pub lines: Vec<InvoiceLine>,
}

impl Invoice {
    pub fn total(&self) -> Micros {
        Micros(self.lines.iter().map(|l| l.amount.0).sum())
    }

    pub fn messages(&self) -> i64 {
        self.lines.iter().map(|l| l.messages).sum()
    }

    pub fn parts(&self) -> i64 {
        self.lines.iter().map(|l| l.parts).sum()
    }

    pub fn write_csv(&self, mut w: impl Write) -> Result<(), BillingError> {
        let period = format!("{:04}-{:02}", self.year, self.month);
        writeln!(
            w,
            "account_id,period,currency,operator,charge_status,price_per_part,messages,parts,amount"
        )?;
        for l in &self.lines {
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{}",
                self.account,
                period,
                self.currency,
                csv_field(&l.operator),
                l.charge_status.as_str(),
                l.price_per_part,
                l.messages,
                l.parts,
                l.amount
            )?;
        }
        writeln!(
            w,
            "{},{},{},TOTAL,,,{},{},{}",
            self.account,
            period,
            self.currency,
            self.messages(),
            self.parts(),
            self.total()
        )?;
        Ok(())
    }
}

pub async fn invoice(
    store: &dyn LedgerStore,
    account: AccountId,
    year: i32,
    month: u32,
) -> Result<Invoice, BillingError> {
    let (from, to) = month_bounds(year, month)?;
    let acc = store
        .load_accounts()
        .await?
        .into_iter()
        .find(|a| a.id == account)
        .ok_or(BillingError::UnknownAccount(account))?;
    Ok(Invoice {
        account,
        currency: acc.currency,
        year,
        month,
        lines: store.invoice_lines(account, from, to).await?,
    })
}

/// Quotes a field when it holds a separator, a quote or a line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::ChargeStatus;

    #[test]
    fn csv_lines_and_total() {
        let inv = Invoice {
            account: AccountId(7),
            currency: Currency::new("EUR").unwrap_or_else(|e| panic!("{e}")),
            year: 2026,
            month: 3,
            lines: vec![
                InvoiceLine {
                    operator: "Op, Inc".into(),
                    charge_status: ChargeStatus::Charged,
                    price_per_part: Micros(12_500),
                    messages: 2,
                    parts: 3,
                    amount: Micros(37_500),
                },
                InvoiceLine {
                    operator: "B".into(),
                    charge_status: ChargeStatus::Refunded,
                    price_per_part: Micros(10_000),
                    messages: 1,
                    parts: 1,
                    amount: Micros(5_000),
                },
            ],
        };
        let mut out = Vec::new();
        inv.write_csv(&mut out).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8(out).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[1],
            "7,2026-03,EUR,\"Op, Inc\",CHARGED,0.012500,2,3,0.037500"
        );
        assert_eq!(lines[3], "7,2026-03,EUR,TOTAL,,,3,4,0.042500");
    }
}
