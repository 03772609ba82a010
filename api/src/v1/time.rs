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

/// Spaces the turns of a batching writer: a turn starts at least `gap` after the one
/// before it started. Under load each turn (one transaction, one round of hand-offs to
/// the database's thread) then takes more rows; the first turn after a quiet spell
/// starts at once.
pub(crate) struct Cadence {
    gap: std::time::Duration,
    last: Option<tokio::time::Instant>,
}

impl Cadence {
    pub(crate) fn new(gap: std::time::Duration) -> Self {
        Self { gap, last: None }
    }

    /// Waits out the rest of the gap, and starts the next turn.
    pub(crate) async fn next_turn(&mut self) {
        if let Some(last) = self.last {
            let due = last + self.gap;
            if tokio::time::Instant::now() < due {
                tokio::time::sleep_until(due).await;
            }
        }
        self.last = Some(tokio::time::Instant::now());
    }
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

    #[tokio::test(start_paused = true)]
    async fn a_cadence_spaces_turns_but_not_the_first_after_a_pause() {
        use std::time::Duration;
        use tokio::time::Instant;
        let mut cadence = super::Cadence::new(Duration::from_millis(5));
        let start = Instant::now();
        cadence.next_turn().await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the first turn goes at once"
        );
        cadence.next_turn().await;
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let resumed = Instant::now();
        cadence.next_turn().await;
        assert_eq!(resumed.elapsed(), Duration::ZERO, "after a pause: at once");
    }
}
