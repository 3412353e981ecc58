//! The hand-written RFC 3339 parser (kept for the wasm size budget) against
//! chrono's: both accept and reject the same texts and agree on the instant,
//! except that a second of 60 is always refused here, as `Date.parse` does,
//! where chrono reads it as a leap second.

use chrono::{DateTime, Timelike};
use proptest::prelude::*;

use streams_core::time::parse_rfc3339_ms;

/// What chrono makes of `text`: `None` when it refuses, or the epoch
/// milliseconds and whether it read a leap second.
fn chrono_ms(text: &str) -> Option<(f64, bool)> {
    let parsed = DateTime::parse_from_rfc3339(text).ok()?;
    Some((parsed.timestamp_millis() as f64, parsed.nanosecond() >= 1_000_000_000))
}

fn assert_agrees(text: &str) {
    let ours = parse_rfc3339_ms(text);
    match chrono_ms(text) {
        Some((_, true)) => assert_eq!(ours, None, "{text}: second 60 must be refused"),
        Some((ms, false)) => assert_eq!(ours, Some(ms), "{text}"),
        None => assert_eq!(ours, None, "{text}: chrono refuses it"),
    }
}

/// RFC 3339-shaped texts with every field sometimes just out of range.
fn rfc3339_like() -> impl Strategy<Value = String> {
    let zone = prop_oneof![
        Just("Z".to_owned()),
        Just("z".to_owned()),
        (prop_oneof![Just('+'), Just('-')], 0u32..=25, 0u32..=61).prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}")),
    ];
    let fraction = prop_oneof![Just(String::new()), "[0-9]{1,12}".prop_map(|d| format!(".{d}"))];
    (
        (0u32..=9999, 0u32..=13, 0u32..=32),
        prop_oneof![Just('T'), Just('t'), Just(' ')],
        (0u32..=24, 0u32..=60, 0u32..=61),
        fraction,
        zone,
    )
        .prop_map(|((y, mo, d), sep, (h, mi, s), frac, zone)| format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{zone}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn agrees_with_chrono_on_rfc3339_shaped_texts(text in rfc3339_like()) {
        assert_agrees(&text);
    }

    #[test]
    fn agrees_with_chrono_on_near_misses(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}[.0-9Zz+:-]{0,8}") {
        assert_agrees(&text);
    }
}

#[test]
fn second_60_is_refused_on_any_day_even_a_leap_second_day() {
    for text in ["2026-01-05T10:00:60Z", "2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5+00:00"] {
        assert!(chrono_ms(text).is_some_and(|(_, leap)| leap), "chrono reads {text} as a leap second");
        assert_eq!(parse_rfc3339_ms(text), None, "{text}");
    }
    assert_eq!(parse_rfc3339_ms("2016-12-31T23:59:59.999Z"), Some(1_483_228_799_999.0));
}
