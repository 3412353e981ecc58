//! Timestamps: the `toISOString` form the stream writes, and RFC 3339 parsing
//! for the breaker's clock (spec §3.2, §7). The core never reads a clock.

use chrono::{DateTime, SecondsFormat, Utc};

/// `YYYY-MM-DDTHH:MM:SS.sssZ` for epoch milliseconds, as `Date#toISOString`.
pub fn iso_from_ms(epoch_ms: f64) -> Option<String> {
    let dt = DateTime::<Utc>::from_timestamp_millis(epoch_ms.floor() as i64)?;
    Some(dt.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Epoch milliseconds of an RFC 3339 time with `Z` or a `±hh:mm` offset.
pub fn parse_rfc3339_ms(text: &str) -> Option<f64> {
    DateTime::parse_from_rfc3339(text).ok().map(|dt| dt.timestamp_millis() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_strings_match_to_iso_string() {
        assert_eq!(iso_from_ms(0.0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_from_ms(1_767_607_200_123.0).unwrap(), "2026-01-05T10:00:00.123Z");
    }

    #[test]
    fn rfc3339_parses_with_zulu_or_offsets() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.500Z"), Some(1500.0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00"), None);
    }
}
