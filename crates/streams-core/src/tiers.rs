//! Where a stream's events live and what may be read (docs/architecture.md#storage-tiers): the hot
//! tier (SQLite rows), sealed segments in the archive (R2), and the first kept offset below which
//! retention has removed everything. Pure policy in the sans-IO style of `outbound`: what to seal
//! and when, what retention removes, which tier a read touches, and the segment format. The
//! durable layer executes it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::chunk::checksum;
use super::error::{ErrorCode, StreamError, StreamResult};
use super::store::StoredEvent;

/// Refuses a read that needs offset `needed` when retention has removed it:
/// every offset below `first_offset` (1 when nothing was trimmed) is gone.
pub fn ensure_kept(needed: u64, first_offset: u64) -> StreamResult<()> {
    if needed >= first_offset {
        return Ok(());
    }
    Err(StreamError::new(
        ErrorCode::Trimmed,
        format!("Offset {needed} was removed by retention; the first kept offset is {first_offset}."),
    ))
}

/// When the hot tier is sealed into a segment (docs/operations.md#archive-settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLimits {
    pub max_events: u64,
    pub max_bytes: u64,
}

impl Default for SegmentLimits {
    fn default() -> Self {
        Self { max_events: 10_000, max_bytes: 16 * 1024 * 1024 }
    }
}

/// Whether the hot tier holds a segment's worth: `count` events of `bytes` JSON.
pub fn seal_due(count: u64, bytes: u64, limits: SegmentLimits) -> bool {
    count > 0 && (count >= limits.max_events || bytes >= limits.max_bytes)
}

/// The offsets of the next segment: the oldest hot events, in order, up to
/// the event limit and, past the first event, within the byte limit. `hot`
/// lists the oldest hot events as `(offset, bytes)`. `None` when empty.
pub fn seal_range(hot: &[(u64, u64)], limits: SegmentLimits) -> Option<(u64, u64)> {
    let (first, _) = *hot.first()?;
    let mut bytes = 0u64;
    let mut last = first;
    for (index, &(offset, length)) in hot.iter().enumerate() {
        if index as u64 >= limits.max_events || (index > 0 && bytes + length > limits.max_bytes) {
            break;
        }
        bytes += length;
        last = offset;
    }
    Some((first, last))
}

/// A sealed segment as the `segments` table records it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentInfo {
    pub first: u64,
    pub last: u64,
    /// Bytes of event JSON it holds.
    pub bytes: u64,
    /// The checksum of its body, as written.
    pub checksum: u32,
    /// `createdAt` of its last event, in epoch milliseconds.
    pub last_at_ms: f64,
}

impl SegmentInfo {
    pub fn events(&self) -> u64 {
        self.last + 1 - self.first
    }
}

/// Which tier holds an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Removed by retention.
    Trimmed,
    /// In the segment at this index of the (ascending) segment list.
    Archived(usize),
    /// In SQLite (or not written yet).
    Hot,
}

/// The tier of `offset`, given the first kept offset and the kept segments in ascending order.
pub fn tier_of(offset: u64, first_offset: u64, segments: &[SegmentInfo]) -> Tier {
    if offset < first_offset {
        return Tier::Trimmed;
    }
    match segments.binary_search_by(|s| if s.last < offset { std::cmp::Ordering::Less } else if s.first > offset { std::cmp::Ordering::Greater } else { std::cmp::Ordering::Equal }) {
        Ok(index) => Tier::Archived(index),
        Err(_) => Tier::Hot,
    }
}

/// `config.retention` of `S/configured` (docs/protocol.md#retention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u64>,
}

impl Retention {
    pub fn is_set(&self) -> bool {
        self.max_events.is_some() || self.max_age_seconds.is_some()
    }

    /// Whether an event whose successors number `newer` and which was
    /// created at `at_ms` may go at `now_ms`: one of the limits is past it.
    /// The count limit never takes one of the newest `maxEvents`, the age
    /// limit never one younger than `maxAgeSeconds`.
    fn removes(&self, newer: u64, at_ms: f64, now_ms: f64) -> bool {
        self.max_events.is_some_and(|n| newer >= n) || self.max_age_seconds.is_some_and(|s| at_ms + s as f64 * 1000.0 <= now_ms)
    }
}

/// What the stream holds, as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrimInput<'a> {
    pub retention: Retention,
    pub max_offset: u64,
    pub first_offset: u64,
    /// The kept segments, ascending.
    pub segments: &'a [SegmentInfo],
    /// The oldest hot events as `(offset, createdAt ms)`, ascending.
    pub hot_oldest: &'a [(u64, f64)],
    /// Whether an archive is bound: then the count limit removes whole
    /// segments only, and hot rows wait for their seal.
    pub archive: bool,
    pub now_ms: f64,
}

/// What one retention step removes: the oldest `segments`, and hot rows up
/// to `hot_through`; afterwards the first kept offset is `first_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimPlan {
    pub first_offset: u64,
    pub segments: usize,
    pub hot_through: Option<u64>,
}

/// The next retention step, or `None` when nothing is due. Removal is whole
/// segments, oldest first, then hot rows once no segment precedes them.
pub fn plan_trim(input: &TrimInput<'_>) -> Option<TrimPlan> {
    let TrimInput { retention, max_offset, first_offset, segments, hot_oldest, archive, now_ms } = *input;
    if !retention.is_set() {
        return None;
    }
    let dropped = segments.iter().take_while(|s| retention.removes(max_offset - s.last, s.last_at_ms, now_ms)).count();
    let mut kept_from = segments.get(..dropped).and_then(|d| d.last()).map_or(first_offset, |s| s.last + 1);
    let mut hot_through = None;
    if dropped == segments.len() {
        let rule = if archive { Retention { max_events: None, ..retention } } else { retention };
        for &(offset, at_ms) in hot_oldest {
            // Removal stops at the first event that must stay: offsets are contiguous.
            if !rule.removes(max_offset - offset, at_ms, now_ms) {
                break;
            }
            hot_through = Some(offset);
            kept_from = offset + 1;
        }
    }
    (kept_from > first_offset).then_some(TrimPlan { first_offset: kept_from, segments: dropped, hot_through })
}

/// When retention next has something to remove by age (epoch ms): the
/// oldest kept unit's `createdAt` plus the limit. `None` without an age limit.
pub fn next_trim_at(retention: Retention, segments: &[SegmentInfo], hot_oldest_at_ms: Option<f64>) -> Option<f64> {
    let limit_ms = retention.max_age_seconds? as f64 * 1000.0;
    let oldest = segments.first().map(|s| s.last_at_ms).or(hot_oldest_at_ms)?;
    Some(oldest + limit_ms)
}

const SEGMENT_FORMAT: &str = "streams-segment/1";

/// How a segment object is stored: the layout of `encode_segment`, gzip-compressed, so R2 keeps
/// and moves a fraction of the bytes (docs/architecture.md#storage-tiers). Objects written
/// before compression hold the layout as is; `segment_is_compressed` tells them apart.
pub const SEGMENT_COMPRESSION: &str = "gzip";

/// Whether a segment object is compressed: a gzip member starts with the bytes 1f 8b, the
/// uncompressed layout with its JSON header's `{`. Either way `decode_segment` checks what the
/// (decompressed) bytes hold against the `segments` row.
pub fn segment_is_compressed(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// A segment object: a one-line JSON header (format, offsets, each event's
/// length, the body's checksum), a newline, then every event's committed JSON
/// back to back. Returns the bytes and the body's checksum.
pub fn encode_segment(first: u64, events: &[&str]) -> (Vec<u8>, u32) {
    let body_len: usize = events.iter().map(|e| e.len()).sum();
    let mut body = Vec::with_capacity(body_len);
    for event in events {
        body.extend_from_slice(event.as_bytes());
    }
    let sum = checksum(&body);
    let lengths: Vec<usize> = events.iter().map(|e| e.len()).collect();
    let last = first + events.len() as u64 - 1;
    let header = json!({"format": SEGMENT_FORMAT, "firstOffset": first, "lastOffset": last, "lengths": lengths, "checksum": sum});
    let mut bytes = header.to_string().into_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(&body);
    (bytes, sum)
}

/// The events of a segment object, checked against what the `segments`
/// table says it holds: the offsets, the lengths, the checksum. Any
/// disagreement is an error naming it, never another event.
pub fn decode_segment(bytes: &[u8], expected: &SegmentInfo) -> Result<Vec<StoredEvent>, String> {
    let newline = bytes.iter().position(|b| *b == b'\n').ok_or("no header")?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| "header: not UTF-8")?;
    let header: Value = serde_json::from_str(header).map_err(|e| format!("header: {e}"))?;
    if header.get("format").and_then(Value::as_str) != Some(SEGMENT_FORMAT) {
        return Err("unknown format".into());
    }
    let field = |name: &str| header.get(name).and_then(Value::as_u64).ok_or_else(|| format!("header lacks {name}"));
    let (first, last, sum) = (field("firstOffset")?, field("lastOffset")?, field("checksum")?);
    if (first, last) != (expected.first, expected.last) {
        return Err(format!("holds offsets {first}..={last}, expected {}..={}", expected.first, expected.last));
    }
    let lengths: Vec<usize> = header
        .get("lengths")
        .and_then(Value::as_array)
        .ok_or("header lacks lengths")?
        .iter()
        .map(|n| n.as_u64().map(|n| n as usize))
        .collect::<Option<_>>()
        .ok_or("a length is not an integer")?;
    let body = &bytes[newline + 1..];
    if lengths.len() as u64 != expected.events() || lengths.iter().sum::<usize>() != body.len() {
        return Err("lengths do not cover the body".into());
    }
    if sum != u64::from(expected.checksum) || checksum(body) != expected.checksum {
        return Err("checksum mismatch".into());
    }
    let mut events = Vec::with_capacity(lengths.len());
    let mut at = 0usize;
    for (index, length) in lengths.into_iter().enumerate() {
        let json = std::str::from_utf8(&body[at..at + length]).map_err(|_| "not UTF-8")?;
        events.push(StoredEvent { offset: first + index as u64, json: json.to_owned() });
        at += length;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment(first: u64, last: u64, last_at_ms: f64) -> SegmentInfo {
        SegmentInfo { first, last, bytes: 0, checksum: 0, last_at_ms }
    }

    #[test]
    fn reads_from_the_first_kept_offset_on_pass() {
        assert_eq!(ensure_kept(1, 1), Ok(()));
        assert_eq!(ensure_kept(5, 5), Ok(()));
        assert_eq!(ensure_kept(9, 5), Ok(()));
    }

    #[test]
    fn reads_before_the_first_kept_offset_are_trimmed() {
        let err = ensure_kept(4, 5).unwrap_err();
        assert_eq!(err.code, ErrorCode::Trimmed);
        assert_eq!(err.to_string(), "trimmed: Offset 4 was removed by retention; the first kept offset is 5.");
        assert_eq!(StreamError::parse(&err.to_string()), Some(err));
    }

    #[test]
    fn a_seal_is_due_at_either_limit() {
        let limits = SegmentLimits { max_events: 10, max_bytes: 100 };
        assert!(!seal_due(0, 0, limits));
        assert!(!seal_due(9, 99, limits));
        assert!(seal_due(10, 10, limits));
        assert!(seal_due(1, 100, limits));
    }

    #[test]
    fn a_segment_takes_the_oldest_events_within_the_limits() {
        let limits = SegmentLimits { max_events: 3, max_bytes: 100 };
        let hot: Vec<(u64, u64)> = (5..20).map(|o| (o, 10)).collect();
        assert_eq!(seal_range(&hot, limits), Some((5, 7)));
        assert_eq!(seal_range(&[(5, 60), (6, 50), (7, 1)], limits), Some((5, 5)), "bytes stop it");
        assert_eq!(seal_range(&[(5, 500), (6, 1)], limits), Some((5, 5)), "a big first event goes alone");
        assert_eq!(seal_range(&[], limits), None);
    }

    #[test]
    fn offsets_map_to_their_tier() {
        let segments = [segment(3, 5, 0.0), segment(6, 9, 0.0)];
        assert_eq!(tier_of(2, 3, &segments), Tier::Trimmed);
        assert_eq!(tier_of(3, 3, &segments), Tier::Archived(0));
        assert_eq!(tier_of(7, 3, &segments), Tier::Archived(1));
        assert_eq!(tier_of(10, 3, &segments), Tier::Hot);
    }

    #[test]
    fn a_segment_round_trips_and_refuses_damage() {
        let events = [r#"{"type":"a","offset":4}"#, "{}", r#"{"é":"\n"}"#];
        let (bytes, sum) = encode_segment(4, &events);
        let info = SegmentInfo { first: 4, last: 6, bytes: 0, checksum: sum, last_at_ms: 0.0 };
        let read = decode_segment(&bytes, &info).unwrap();
        assert_eq!(read.iter().map(|e| (e.offset, e.json.as_str())).collect::<Vec<_>>(), vec![(4, events[0]), (5, events[1]), (6, events[2])]);
        let mut damaged = bytes.clone();
        let at = damaged.len() - 2;
        damaged[at] ^= 1;
        assert_eq!(decode_segment(&damaged, &info), Err("checksum mismatch".into()));
        assert!(decode_segment(&bytes, &SegmentInfo { first: 5, last: 7, ..info.clone() }).is_err(), "another range");
        assert!(decode_segment(&bytes[..bytes.len() - 1], &info).is_err(), "truncated");
        assert!(decode_segment(b"", &info).is_err());
        let (other, other_sum) = encode_segment(4, &["{}", "{}", "{}"]);
        assert!(decode_segment(&other, &info).is_err(), "another segment's object");
        assert!(decode_segment(&bytes, &SegmentInfo { checksum: other_sum, ..info }).is_err());
    }

    #[test]
    fn only_a_gzip_member_counts_as_compressed() {
        let (bytes, _) = encode_segment(4, &[r#"{"type":"a"}"#]);
        assert!(!segment_is_compressed(&bytes), "the uncompressed layout starts with its header");
        assert!(segment_is_compressed(&[0x1f, 0x8b, 8, 0]));
        assert!(!segment_is_compressed(&[0x1f]));
        assert!(!segment_is_compressed(b""));
    }

    #[test]
    fn retention_by_count_removes_whole_segments_with_an_archive() {
        let segments = [segment(1, 10, 0.0), segment(11, 20, 0.0)];
        let retention = Retention { max_events: Some(15), max_age_seconds: None };
        let hot: Vec<(u64, f64)> = (21..=30).map(|o| (o, 0.0)).collect();
        let input = TrimInput { retention, max_offset: 30, first_offset: 1, segments: &segments, hot_oldest: &hot, archive: true, now_ms: 0.0 };
        assert_eq!(plan_trim(&input), Some(TrimPlan { first_offset: 11, segments: 1, hot_through: None }));
        let input = TrimInput { max_offset: 35, ..input };
        assert_eq!(plan_trim(&input), Some(TrimPlan { first_offset: 21, segments: 2, hot_through: None }), "hot rows wait for their seal");
        let none = TrimInput { max_offset: 24, ..input };
        assert_eq!(plan_trim(&none), None, "the second segment's last event is among the newest 15");
    }

    #[test]
    fn retention_without_an_archive_removes_hot_rows() {
        let hot: Vec<(u64, f64)> = (4..=30).map(|o| (o, 0.0)).collect();
        let retention = Retention { max_events: Some(5), max_age_seconds: None };
        let input = TrimInput { retention, max_offset: 30, first_offset: 4, segments: &[], hot_oldest: &hot, archive: false, now_ms: 0.0 };
        assert_eq!(plan_trim(&input), Some(TrimPlan { first_offset: 26, segments: 0, hot_through: Some(25) }));
    }

    #[test]
    fn retention_by_age_removes_what_is_older_in_either_tier() {
        let segments = [segment(1, 10, 1_000.0), segment(11, 20, 5_000.0)];
        let hot = [(21, 6_000.0), (22, 9_000.0)];
        let retention = Retention { max_events: None, max_age_seconds: Some(2) };
        let input = TrimInput { retention, max_offset: 22, first_offset: 1, segments: &segments, hot_oldest: &hot, archive: true, now_ms: 3_500.0 };
        assert_eq!(plan_trim(&input), Some(TrimPlan { first_offset: 11, segments: 1, hot_through: None }));
        let later = TrimInput { now_ms: 8_000.0, ..input };
        assert_eq!(plan_trim(&later), Some(TrimPlan { first_offset: 22, segments: 2, hot_through: Some(21) }));
        assert_eq!(next_trim_at(retention, &segments, Some(6_000.0)), Some(3_000.0));
        assert_eq!(next_trim_at(retention, &[], Some(6_000.0)), Some(8_000.0));
        assert_eq!(next_trim_at(Retention::default(), &segments, None), None);
    }

    proptest! {
        /// Whatever the layout, retention never keeps fewer events than the
        /// count limit asks, never removes one younger than the age limit,
        /// and removes whole units from the front.
        #[test]
        fn retention_keeps_what_was_asked(
            sizes in proptest::collection::vec(1u64..20, 0..8),
            hot in 0u64..40,
            max_events in proptest::option::of(1u64..100),
            max_age in proptest::option::of(1u64..100),
            now_s in 0u64..200,
            archive in any::<bool>(),
        ) {
            // Event i was created at second i.
            let mut segments = Vec::new();
            let mut next = 1u64;
            for size in sizes {
                segments.push(segment(next, next + size - 1, ((next + size - 1) * 1000) as f64));
                next += size;
            }
            let hot_oldest: Vec<(u64, f64)> = (next..next + hot).map(|o| (o, (o * 1000) as f64)).collect();
            let max_offset = next + hot - 1;
            let retention = Retention { max_events, max_age_seconds: max_age };
            let input = TrimInput { retention, max_offset, first_offset: 1, segments: &segments, hot_oldest: &hot_oldest, archive, now_ms: (now_s * 1000) as f64 };
            if let Some(plan) = plan_trim(&input) {
                prop_assert!(plan.first_offset > 1);
                let removed_through = plan.first_offset - 1;
                let removed_at_ms = (removed_through * 1000) as f64;
                let by_count = max_events.is_some_and(|n| max_offset - removed_through >= n);
                let by_age = max_age.is_some_and(|s| removed_at_ms + (s * 1000) as f64 <= input.now_ms);
                prop_assert!(by_count || by_age, "removed through {removed_through} with no limit past it");
                if plan.segments < segments.len() {
                    prop_assert_eq!(plan.first_offset, segments[plan.segments].first, "whole segments");
                    prop_assert!(plan.hot_through.is_none());
                }
                if archive && max_age.is_none() {
                    prop_assert!(plan.hot_through.is_none(), "count removes hot rows only without an archive");
                }
            }
        }

        #[test]
        fn a_segment_range_is_contiguous_and_within_limits(
            lengths in proptest::collection::vec(1u64..50, 1..60),
            max_events in 1u64..20,
            max_bytes in 1u64..200,
        ) {
            let hot: Vec<(u64, u64)> = lengths.iter().enumerate().map(|(i, l)| (100 + i as u64, *l)).collect();
            let limits = SegmentLimits { max_events, max_bytes };
            let (first, last) = seal_range(&hot, limits).unwrap();
            prop_assert_eq!(first, 100);
            let taken = &hot[..(last - first + 1) as usize];
            prop_assert!(taken.len() as u64 <= max_events);
            let bytes: u64 = taken.iter().map(|(_, l)| l).sum();
            prop_assert!(taken.len() == 1 || bytes <= max_bytes);
        }
    }
}
