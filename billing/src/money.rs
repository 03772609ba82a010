//! Money as integer micro-units: no floating point anywhere near a balance.

use std::fmt;
use std::str::FromStr;

use crate::error::BillingError;

/// Micro-units per currency unit (1 = 10^-6 of the account's currency).
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// An amount of money in micro-units of some currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub i64);

impl Micros {
    pub const ZERO: Micros = Micros(0);

    /// Whole currency units, e.g. `Micros::units(5)` is 5.000000.
    pub const fn units(units: i64) -> Micros {
        Micros(units * MICROS_PER_UNIT)
    }

    pub fn checked_add(self, other: Micros) -> Option<Micros> {
        self.0.checked_add(other.0).map(Micros)
    }

    pub fn checked_sub(self, other: Micros) -> Option<Micros> {
        self.0.checked_sub(other.0).map(Micros)
    }

    /// `self × n` (price per part × parts), `None` on overflow.
    pub fn checked_mul(self, n: i64) -> Option<Micros> {
        self.0.checked_mul(n).map(Micros)
    }

    /// `percent`% of self, rounded down to the micro-unit; the remainder stays with the
    /// caller so that share + remainder is always exactly the original amount.
    pub fn percent_floor(self, percent: u8) -> Micros {
        Micros((i128::from(self.0) * i128::from(percent) / 100) as i64)
    }

    /// Applies a discount in basis points (1/100 of a percent), rounding half up to the
    /// nearest micro-unit: the one rounding rule of tariffs, stated once.
    pub fn discounted(self, discount_bp: u16) -> Micros {
        let keep = i128::from(10_000 - i64::from(discount_bp.min(10_000)));
        let scaled = i128::from(self.0) * keep;
        Micros(((scaled + 5_000) / 10_000) as i64)
    }
}

impl fmt::Display for Micros {
    /// Fixed six decimals, as NUMERIC(18,6) prints it: `-1.250000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let unit = MICROS_PER_UNIT as u64;
        write!(f, "{sign}{}.{:06}", abs / unit, abs % unit)
    }
}

impl FromStr for Micros {
    type Err = BillingError;

    /// Parses a decimal with at most six fractional digits ("12", "0.0125", "-3.5").
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BillingError::InvalidAmount(format!("not a decimal amount: {s:?}"));
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty()
            || frac.len() > 6
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let int: i64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let frac_val: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse::<i64>().map_err(|_| bad())? * 10_i64.pow(6 - frac.len() as u32)
        };
        let v = int
            .checked_mul(MICROS_PER_UNIT)
            .and_then(|v| v.checked_add(frac_val))
            .ok_or_else(bad)?;
        Ok(Micros(if neg { -v } else { v }))
    }
}

/// ISO 4217 code, three upper-case ASCII letters, stored inline so comparing is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn new(code: &str) -> Result<Currency, BillingError> {
        let b = code.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(BillingError::InvalidCurrency(code.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        // Only upper-case ASCII is ever stored (checked in `new`).
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = BillingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for (s, v) in [
            ("0.000000", 0),
            ("1.250000", 1_250_000),
            ("-0.000001", -1),
            ("12.000000", 12_000_000),
        ] {
            assert_eq!(Micros(v).to_string(), s);
            assert_eq!(s.parse::<Micros>().ok(), Some(Micros(v)));
        }
        assert_eq!("0.0125".parse::<Micros>().ok(), Some(Micros(12_500)));
        assert_eq!("3".parse::<Micros>().ok(), Some(Micros(3_000_000)));
        for bad in [
            "",
            ".",
            "1.2345678",
            "1e3",
            "abc",
            "--1",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Micros>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn percent_split_never_loses_a_micro() {
        for amount in [0, 1, 3, 7, 99, 100, 12_345, 1_000_001] {
            for p in [1u8, 33, 50, 99, 100] {
                let share = Micros(amount).percent_floor(p);
                assert!(share.0 <= amount);
                assert_eq!(share.0 + (amount - share.0), amount);
            }
        }
        assert_eq!(Micros(10).percent_floor(33), Micros(3));
    }

    #[test]
    fn discount_rounds_half_up() {
        assert_eq!(Micros(10_000).discounted(1_000), Micros(9_000));
        // 15 × 0.5 = 7.5 → 8
        assert_eq!(Micros(15).discounted(5_000), Micros(8));
        assert_eq!(Micros(15).discounted(0), Micros(15));
        assert_eq!(Micros(15).discounted(10_000), Micros(0));
    }

    #[test]
    fn currency_codes() {
        assert_eq!(
            Currency::new("EUR").map(|c| c.to_string()).ok(),
            Some("EUR".into())
        );
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert!(Currency::new(bad).is_err());
        }
    }
}
