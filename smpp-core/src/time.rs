//! SMPP 3.4 time fields (§7.1.1): `schedule_delivery_time` and `validity_period` are
//! either absolute (`YYMMDDhhmmsstnnp`, p = `+` or `-` quarter hours from UTC) or
//! relative (`YYMMDDhhmmss000R`).

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};

/// The instant an SMPP time field names, counted from now; None when it is empty or
/// malformed. An absolute time in the past is now.
pub fn deadline(text: &str) -> Option<Instant> {
    // Most messages carry none: they cost no clock reads.
    if text.is_empty() {
        return None;
    }
    deadline_at(text, Instant::now(), Utc::now().timestamp())
}

fn deadline_at(text: &str, now: Instant, now_unix: i64) -> Option<Instant> {
    let b = text.as_bytes();
    if b.len() != 16 || !b[..12].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |i: usize| i64::from(b[i] - b'0') * 10 + i64::from(b[i + 1] - b'0');
    let secs = match b[15] {
        b'R' => {
            // Relative: years and months as 365 and 30 days, as SMSCs count them.
            ((n(0) * 365 + n(2) * 30 + n(4)) * 24 + n(6)) * 3600 + n(8) * 60 + n(10)
        }
        sign @ (b'+' | b'-') => {
            let date = NaiveDate::from_ymd_opt(
                2000 + i32::try_from(n(0)).ok()?,
                u32::try_from(n(2)).ok()?,
                u32::try_from(n(4)).ok()?,
            )?;
            let local = date.and_hms_opt(
                u32::try_from(n(6)).ok()?,
                u32::try_from(n(8)).ok()?,
                u32::try_from(n(10)).ok()?,
            )?;
            let quarters = i64::from(b[13].checked_sub(b'0').filter(|d| *d <= 9)?) * 10
                + i64::from(b[14].checked_sub(b'0').filter(|d| *d <= 9)?);
            let offset = quarters * 15 * 60 * if sign == b'+' { 1 } else { -1 };
            let at = Utc.from_utc_datetime(&local).timestamp() - offset;
            (at - now_unix).max(0)
        }
        _ => return None,
    };
    now.checked_add(Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_times() {
        let now = Instant::now();
        // 1 day, 2 hours, 3 minutes, 4 seconds from now.
        assert_eq!(
            deadline_at("000001020304000R", now, 0),
            Some(now + Duration::from_secs(86_400 + 2 * 3600 + 3 * 60 + 4))
        );
        // 2026-12-01 10:00:00 at UTC+1 (4 quarters) is 09:00 UTC.
        let at = Utc
            .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
            .single()
            .map(|t| t.timestamp())
            .expect("valid");
        assert_eq!(
            deadline_at("261201100000004+", now, at - 60),
            Some(now + Duration::from_secs(60))
        );
        // In the past: now.
        assert_eq!(deadline_at("261201100000004+", now, at + 60), Some(now));
    }

    #[test]
    fn malformed_times_are_none() {
        let now = Instant::now();
        for bad in [
            "",
            "0000010203040000",
            "abcdef020304000R",
            "261301100000004+",
            "2612011000000x4+",
        ] {
            assert_eq!(deadline_at(bad, now, 0), None, "{bad}");
        }
    }
}
