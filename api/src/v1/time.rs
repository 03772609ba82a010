//! Time on the API: unix microseconds inside, RFC 3339 (UTC) on the wire.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

pub fn rfc3339(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An RFC 3339 time, or a date (`2026-12-01`, midnight UTC), as unix microseconds.
pub fn parse(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let t = super::parse("2026-12-03T06:15:00.250Z").expect("time");
        assert_eq!(super::rfc3339(t), "2026-12-03T06:15:00.250Z");
        assert_eq!(
            super::parse("2026-12-03"),
            super::parse("2026-12-03T00:00:00Z")
        );
        assert!(super::parse("yesterday").is_none());
    }
}
