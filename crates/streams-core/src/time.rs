//! Timestamps: the `toISOString` form the stream writes, and RFC 3339 parsing
//! for the breaker's clock (docs/protocol.md#committed-event, #circuit-breaker). The core never reads a clock.
//! Written out here rather than taken from a date crate: it is the only date
//! code the Worker needs, and the wasm size budget is tight.

const MS_PER_DAY: i64 = 86_400_000;

/// `YYYY-MM-DDTHH:MM:SS.sssZ` for epoch milliseconds, as `Date#toISOString`
/// (years 0 to 9999).
pub fn iso_from_ms(epoch_ms: f64) -> Option<String> {
    if !epoch_ms.is_finite() {
        return None;
    }
    let ms = epoch_ms.floor() as i64;
    let (days, in_day) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    ))
}

/// Epoch milliseconds of an RFC 3339 time (`T` or a space, an optional
/// fraction, `Z` or a `±hh:mm` offset); sub-millisecond digits are dropped.
pub fn parse_rfc3339_ms(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let mut frac = b[start..i.min(start + 3)].iter().fold(0, |n, d| n * 10 + i64::from(d - b'0'));
        for _ in (i - start)..3 {
            frac *= 10;
        }
        millis = frac;
    }
    let offset_minutes = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' { h * 60 + m } else { -(h * 60 + m) }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let ms = days * MS_PER_DAY + ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + millis;
    Some(ms as f64)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of `days_from_civil`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_strings_match_to_iso_string() {
        assert_eq!(iso_from_ms(0.0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_from_ms(1_767_607_200_123.0).unwrap(), "2026-01-05T10:00:00.123Z");
        assert_eq!(iso_from_ms(951_782_400_000.0).unwrap(), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_from_ms(-1.0).unwrap(), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso_from_ms(f64::NAN), None);
    }

    #[test]
    fn rfc3339_parses_with_zulu_or_offsets() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.500Z"), Some(1500.0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00-00:30"), Some(1_800_000.0));
        assert_eq!(parse_rfc3339_ms("2026-01-05T10:00:00.123456Z"), Some(1_767_607_200_123.0));
        assert_eq!(parse_rfc3339_ms("2026-01-05t10:00:00.1z"), Some(1_767_607_200_100.0));
        for bad in ["yesterday", "1970-01-01T00:00:00", "2026-02-30T00:00:00Z", "2026-01-05T24:00:00Z", "2026-01-05T10:00:00.Z", "2026-01-05T10:00:00+1:00", "2026-01-05T10:00:00Zjunk", ""] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn formatting_and_parsing_round_trip_across_years() {
        for ms in [0.0, 86_399_999.0, 1_000_000_000_000.0, 4_102_444_800_000.0, 253_402_300_799_999.0] {
            let iso = iso_from_ms(ms).unwrap();
            assert_eq!(parse_rfc3339_ms(&iso), Some(ms), "{iso}");
        }
    }
}
