//! The hot tier: events as rows of `events` (inline JSON, or a described row plus slices in
//! `event_chunks`), page and point reads, and the state snapshot in `core_state`
//! (docs/architecture.md#storage).

use js_sys::{Array, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

use streams_core::chunk::{chunks, reassemble, ChunkSummary};
use streams_core::json::raw_array;
use streams_core::limits::EVENT_CHUNK_SIZE;
use streams_core::store::{StoreError, StoredEvent};
use streams_core::tiers::Tier;
use streams_core::CORE_STATE_VERSION;

use super::{as_u64, blob, corrupt, first_cell, js_int, SqlStore, Statement};
use crate::js::{parse_in_js, string_of};

/// The joined JSON of the events one `INSERT_FROM_JSON` writes stays under
/// this, well under the platform's 2 MB cap on a bound value; an inline event
/// is at most one slice (`EVENT_CHUNK_SIZE`), so a group always fits one.
const INSERT_TEXT_BYTES: usize = 1024 * 1024;
/// A capped page read concatenates at most this much JSON in one SQL value:
/// well under the platform's 2 MB cap on a value (`SQLITE_TOOBIG`).
const PAGE_TEXT_BYTES: usize = 1024 * 1024;

impl SqlStore {
    /// Statements that insert events: one inline event with three bindings;
    /// more as one statement per ~1 MiB of their JSON, bound as one text (a
    /// JSON array) that SQLite splits; bigger events (or bytes that are not
    /// UTF-8) as a described row plus slices.
    pub(super) fn push_events(&self, statements: &mut Vec<Statement>, events: &[Row<'_>]) {
        let inline: Vec<(&Row<'_>, &str)> = events.iter().filter_map(|row| Some((row, row.inline_text()?))).collect();
        if let [(row, text)] = inline[..] {
            let bindings = [js_int(row.offset), row.key.map_or(JsValue::NULL, JsValue::from_str), JsValue::from_str(text)];
            statements.push((self.query(INSERT_ONE), bindings.iter().collect()));
        } else {
            let texts: Vec<&str> = inline.iter().map(|(_, text)| *text).collect();
            for range in json_array_groups(&texts, INSERT_TEXT_BYTES) {
                let group = &inline[range];
                let Some((first, _)) = group.first() else { continue };
                let joined = JsValue::from_str(&raw_array(group.iter().map(|(_, text)| *text)));
                // Consecutive offsets without keys come from the array's own
                // indexes: SQLite then reads nothing out of each event's JSON.
                let numbered = group.iter().enumerate().all(|(i, (row, _))| row.key.is_none() && row.offset == first.offset + i as u64);
                if numbered {
                    statements.push((self.query(INSERT_NUMBERED), [js_int(first.offset), joined].iter().collect()));
                } else {
                    statements.push((self.query(INSERT_FROM_JSON), std::iter::once(joined).collect()));
                }
            }
        }
        for row in events.iter().filter(|row| row.inline_text().is_none()) {
            let summary = ChunkSummary::of(row.bytes);
            let described = [js_int(row.offset), row.key.map_or(JsValue::NULL, JsValue::from_str), js_int(summary.count), js_int(summary.byte_length), js_int(summary.checksum.into())];
            statements.push((self.query(INSERT_CHUNKED), described.iter().collect()));
            for (index, chunk) in chunks(row.bytes).into_iter().enumerate() {
                statements.push((self.query(INSERT_CHUNK), [js_int(row.offset), js_int(index as u64), Uint8Array::from(chunk).into()].iter().collect()));
            }
        }
    }

    /// Replaces every `core_state` row with the chunks of `state_json`.
    fn push_state(&self, statements: &mut Vec<Statement>, state_json: &str) {
        let parts = chunks(state_json.as_bytes());
        if self.inner.state_rows.get() != Some(parts.len()) {
            statements.push((self.query(DELETE_STATE), Array::new()));
        }
        for (index, chunk) in parts.into_iter().enumerate() {
            let row = [js_int(index as u64), JsValue::from_f64(CORE_STATE_VERSION as f64), Uint8Array::from(chunk).into()];
            statements.push((self.query(INSERT_STATE), row.iter().collect()));
        }
    }

    /// Commits `statements` with the state, when given; a snapshot that
    /// follows a commit's last offset is also kept in the history.
    pub(super) fn commit_state(&self, mut statements: Vec<Statement>, state_json: Option<&str>, at_offset: Option<u64>) -> Result<(), StoreError> {
        if let Some(json) = state_json {
            self.push_state(&mut statements, json);
            if let Some(at) = at_offset {
                self.push_history(&mut statements, at, json);
            }
        }
        self.run_all(statements)?;
        if let Some(json) = state_json {
            self.inner.state_rows.set(Some(chunks(json.as_bytes()).len()));
        }
        Ok(())
    }

    /// Keeps `state_json` in the history as the state right after `at`.
    pub(super) fn push_history(&self, statements: &mut Vec<Statement>, at: u64, state_json: &str) {
        for (index, chunk) in chunks(state_json.as_bytes()).into_iter().enumerate() {
            let row = [js_int(at), js_int(index as u64), JsValue::from_f64(CORE_STATE_VERSION as f64), Uint8Array::from(chunk).into()];
            statements.push((self.query(INSERT_HISTORY), row.iter().collect()));
        }
    }

    /// The newest snapshot of this state version at or below `offset`.
    pub(super) fn history_at_or_below(&self, offset: u64) -> Result<Option<(u64, String)>, StoreError> {
        let version = JsValue::from_f64(CORE_STATE_VERSION as f64);
        let Some(at) = first_cell(self.rows(SELECT_HISTORY_AT, &[js_int(offset), version.clone()])?) else { return Ok(None) };
        let slices = self.rows(SELECT_HISTORY_CHUNKS, &[at.clone(), version])?.into_iter().map(|r| blob(&r.get(0))).collect::<Option<Vec<_>>>();
        let json = slices.and_then(|s| reassemble(s).ok());
        Ok(json.map(|json| (as_u64(&at), json)))
    }

    /// The event in the row matched by `query` (by offset or by key), its
    /// slices checked against the row's description. `None` when no row matches.
    pub(super) fn event_where(&self, query: &'static str, binding: JsValue) -> Result<Option<StoredEvent>, StoreError> {
        let Some(row) = self.rows(query, &[binding])?.into_iter().next() else { return Ok(None) };
        let offset = as_u64(&row.get(0));
        let json = row.get(1);
        if let Some(text) = string_of(&json) {
            return Ok(Some(StoredEvent { offset, json: text }));
        }
        let bytes = if json.is_null() {
            let summary = ChunkSummary { count: as_u64(&row.get(2)), byte_length: as_u64(&row.get(3)), checksum: as_u64(&row.get(4)) as u32 };
            let slices = self.rows(SELECT_CHUNKS, &[js_int(offset)])?.into_iter().map(|r| blob(&r.get(0))).collect::<Option<Vec<_>>>();
            slices.ok_or_else(|| "a slice is not a BLOB".to_owned()).and_then(|s| summary.verify(s))
        } else {
            // A BLOB where the text belongs still carries the bytes.
            blob(&json).ok_or_else(|| "not TEXT".to_owned()).and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".into()))
        };
        Ok(Some(StoredEvent { offset, json: bytes.unwrap_or_else(|why| corrupt(offset, &why)) }))
    }

    /// Events after `after` and before `before` from `events`, read as one
    /// concatenated string per page instead of one JS object per row.
    pub(super) fn log_range(&self, after: u64, before: u64, limit: usize, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events: Vec<StoredEvent> = Vec::new();
        let mut bytes = 0usize;
        let mut after = after;
        while events.len() < limit {
            let page = self.page(after, before, limit - events.len())?;
            for event in page.events {
                if !events.is_empty() && bytes + event.json.len() > max_bytes {
                    return Ok(events);
                }
                bytes += event.json.len();
                after = event.offset;
                events.push(event);
            }
            if !page.more {
                break;
            }
        }
        Ok(events)
    }

    /// Up to `wanted` events after `after` and before `before` as a JS array,
    /// parsed from the text SQLite joined without that text ever being copied
    /// into wasm. `None` unless the hot tier alone holds the page
    /// from `after + 1` on, every event inline, in one SQL value: other pages
    /// take `read_range`. The offsets, joined in the same order as the JSON,
    /// must count up from `after + 1`, and the array's length must be the count.
    pub fn page_js(&self, after: u64, before: u64, wanted: usize) -> Result<Option<JsValue>, StoreError> {
        if self.inner.legacy.get() || self.tier(after + 1) != Tier::Hot {
            return Ok(None);
        }
        // An error here is the text being too big for one value.
        let Ok(rows) = self.rows(SELECT_PAGE_ARRAY, &[js_int(after), js_int(before), js_int(wanted as u64)]) else { return Ok(None) };
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        let count = as_u64(&row.get(0));
        if count == 0 || as_u64(&row.get(1)) != count || !string_of(&row.get(2)).is_some_and(|offsets| counts_up(&offsets, after + 1, count)) {
            return Ok(None);
        }
        Ok(parse_in_js(&row.get(3)).filter(|page| Array::is_array(page) && page.unchecked_ref::<Array>().length() as u64 == count))
    }

    /// Up to `wanted` events after `after`: the whole page as one string when
    /// every row holds its JSON and the text fits one SQL value, else a page
    /// capped in bytes that reads other rows one by one.
    fn page(&self, after: u64, before: u64, wanted: usize) -> Result<Page, StoreError> {
        let bindings = [js_int(after), js_int(before), js_int(wanted as u64)];
        // An error here is the text being too big for one value: the capped read follows.
        if let Ok(rows) = self.rows(SELECT_WHOLE_PAGE, &bindings) {
            if let Some(row) = rows.into_iter().next() {
                let (count, texts) = (as_u64(&row.get(0)) as usize, as_u64(&row.get(1)) as usize);
                if count == 0 {
                    return Ok(Page { events: Vec::new(), more: false });
                }
                let (offsets, text) = (string_of(&row.get(2)).unwrap_or_default(), string_of(&row.get(3)).unwrap_or_default());
                if let Some(events) = (texts == count).then(|| split_whole_page(&offsets, &text)).flatten() {
                    return Ok(Page { more: events.len() == wanted, events });
                }
            }
        }
        self.capped_page(after, before, wanted)
    }

    fn capped_page(&self, after: u64, before: u64, wanted: usize) -> Result<Page, StoreError> {
        let row = self.rows(SELECT_CAPPED_PAGE, &[js_int(after), js_int(before), js_int(wanted as u64), js_int(PAGE_TEXT_BYTES as u64)])?;
        let Some(row) = row.into_iter().next() else { return Ok(Page { events: Vec::new(), more: false }) };
        let fetched = as_u64(&row.get(0)) as usize;
        let (lengths, text) = (string_of(&row.get(1)).unwrap_or_default(), string_of(&row.get(2)).unwrap_or_default());
        let mut events = Vec::new();
        for entry in split_page(&lengths, &text).unwrap_or_default() {
            let event = match entry {
                PageEntry::Inline(offset, json) => StoredEvent { offset, json: json.to_owned() },
                PageEntry::Elsewhere(offset) => match self.event_where(SELECT_BY_OFFSET, js_int(offset))? {
                    Some(event) => event,
                    None => return Ok(Page { events, more: false }),
                },
            };
            events.push(event);
        }
        if events.is_empty() && fetched > 0 {
            // The page's order could not be trusted, or its first event alone
            // is over the page size: take one event row by row.
            let Some(next) = self.rows(SELECT_NEXT_OFFSET, &[js_int(after), js_int(before)])?.into_iter().next() else {
                return Ok(Page { events, more: false });
            };
            events.extend(self.event_where(SELECT_BY_OFFSET, next.get(0))?);
            return Ok(Page { more: !events.is_empty(), events });
        }
        Ok(Page { more: !(events.len() == fetched && fetched < wanted) && !events.is_empty(), events })
    }
}

/// Runs of `texts` whose JSON array (`[a,b,…]`) stays within `max_bytes` (a
/// text longer than that alone in its own), in order.
fn json_array_groups(texts: &[&str], max_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut bytes = 1;
    for (i, text) in texts.iter().enumerate() {
        if i > start && bytes + text.len() + 1 > max_bytes {
            groups.push(start..i);
            start = i;
            bytes = 1;
        }
        bytes += text.len() + 1;
    }
    if start < texts.len() {
        groups.push(start..texts.len());
    }
    groups
}

/// An event to write: its bytes, and the same as text when they are UTF-8.
pub(super) struct Row<'a> {
    pub offset: u64,
    pub key: Option<&'a str>,
    pub bytes: &'a [u8],
    pub text: Option<&'a str>,
}

impl<'a> Row<'a> {
    /// The text stored inline in the event's own row: UTF-8 of at most one slice.
    fn inline_text(&self) -> Option<&'a str> {
        self.text.filter(|t| t.len() <= EVENT_CHUNK_SIZE)
    }
}

/// Events read for one page, and whether the log may go on after them.
struct Page {
    events: Vec<StoredEvent>,
    more: bool,
}

/// Splits a page read by `SELECT_WHOLE_PAGE`: `offsets` joined by commas
/// and `text`, every row's JSON object joined by commas. `None` unless the
/// offsets ascend and the text splits at its top-level commas into exactly
/// one object per offset, since SQLite does not promise `group_concat`'s order.
fn split_whole_page(offsets: &str, text: &str) -> Option<Vec<StoredEvent>> {
    let mut previous = 0u64;
    let mut events = Vec::new();
    let mut objects = split_objects(text)?.into_iter();
    for offset in offsets.split(',') {
        let offset: u64 = offset.parse().ok()?;
        if offset <= previous {
            return None;
        }
        previous = offset;
        events.push(StoredEvent { offset, json: objects.next()?.to_owned() });
    }
    objects.next().is_none().then_some(events)
}

/// Whether `offsets`, joined by commas, are exactly `first`, `first + 1`, … (`count` of them).
fn counts_up(offsets: &str, first: u64, count: u64) -> bool {
    let mut expected = first;
    for offset in offsets.split(',') {
        if offset.parse::<u64>().ok() != Some(expected) {
            return false;
        }
        expected += 1;
    }
    expected - first == count
}

/// The JSON objects of `text`, objects joined by commas, split at the commas
/// outside them; `None` when `text` is not such a list.
fn split_objects(text: &str) -> Option<Vec<&str>> {
    let mut objects = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0usize, false, false, 0usize);
    for (i, byte) in text.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 => {
                objects.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_string || depth != 0 {
        return None;
    }
    objects.push(&text[start..]);
    objects.iter().all(|o| o.starts_with('{') && o.ends_with('}')).then_some(objects)
}

/// One event of a page: its JSON within the page's text, or only its offset
/// when it lives elsewhere (in slices, or a cell that is not TEXT).
enum PageEntry<'a> {
    Inline(u64, &'a str),
    Elsewhere(u64),
}

/// Splits a page read by `SELECT_CAPPED_PAGE`: `lengths` lists `<offset> <bytes>`
/// (−1 bytes: not inline) and `text` is the inline JSON joined by commas.
/// `None` unless the offsets ascend and the lengths cover `text` exactly,
/// since SQLite does not promise `group_concat`'s order.
fn split_page<'a>(lengths: &str, text: &'a str) -> Option<Vec<PageEntry<'a>>> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    let mut previous = 0u64;
    for item in lengths.split(',').filter(|s| !s.is_empty()) {
        let (offset, length) = item.split_once(' ')?;
        let offset: u64 = offset.parse().ok()?;
        if offset <= previous {
            return None;
        }
        previous = offset;
        if length == "-1" {
            entries.push(PageEntry::Elsewhere(offset));
            continue;
        }
        let length: usize = length.parse().ok()?;
        if at > 0 {
            text.get(at..at + 1).filter(|c| *c == ",")?;
            at += 1;
        }
        entries.push(PageEntry::Inline(offset, text.get(at..at + length)?));
        at += length;
    }
    (at == text.len()).then_some(entries)
}
pub(super) const SELECT_BY_OFFSET: &str = r#"SELECT "offset", json, chunk_count, byte_length, checksum FROM events WHERE "offset" = ?"#;
pub(super) const SELECT_BY_KEY: &str = r#"SELECT "offset", json, chunk_count, byte_length, checksum FROM events WHERE idempotency_key = ?"#;
const SELECT_CHUNKS: &str = r#"SELECT chunk_bytes FROM event_chunks WHERE "offset" = ? ORDER BY chunk_index"#;
const SELECT_NEXT_OFFSET: &str = r#"SELECT "offset" FROM events WHERE "offset" > ? AND "offset" < ? ORDER BY "offset" LIMIT 1"#;
/// Up to ?3 events after ?1 and before ?2: how many, how many hold their
/// JSON as text, their offsets and their JSON, each joined by commas.
/// Every bound number is a JS double, a REAL to SQLite: a `LIMIT` of a REAL
/// parameter cost each statement about 25 µs more than one of an integer
/// (measured in workerd), so the page queries cast it.
const SELECT_WHOLE_PAGE: &str = r#"SELECT count(*), sum(typeof(json) = 'text'), group_concat("offset"), group_concat(json, ',') FROM (SELECT "offset", json FROM events WHERE "offset" > ?1 AND "offset" < ?2 ORDER BY "offset" LIMIT CAST(?3 AS INTEGER))"#;
/// The same, capped: how many events there are, `<offset> <bytes>` of those
/// within the first ?4 bytes of inline JSON (−1: not inline), and that JSON
/// joined by commas.
const SELECT_CAPPED_PAGE: &str = r#"SELECT count(*), group_concat(CASE WHEN upto <= ?4 THEN "offset" || ' ' || len END, ','), group_concat(CASE WHEN upto <= ?4 AND len >= 0 THEN json END, ',') FROM (SELECT "offset", json, len, sum(max(len, 0)) OVER (ORDER BY "offset" ROWS UNBOUNDED PRECEDING) AS upto FROM (SELECT "offset", json, CASE WHEN typeof(json) = 'text' THEN length(CAST(json AS BLOB)) ELSE -1 END AS len FROM events WHERE "offset" > ?1 AND "offset" < ?2 ORDER BY "offset" LIMIT CAST(?3 AS INTEGER)))"#;
/// `SELECT_WHOLE_PAGE` with the JSON as one array.
/// Both aggregates see the rows in one order, so offsets that ascend mean the
/// JSON does too; asking SQLite to sort inside `group_concat` costs a fifth of a page read.
const SELECT_PAGE_ARRAY: &str = r#"SELECT count(*), sum(typeof(json) = 'text'), group_concat("offset"), '[' || group_concat(json, ',') || ']' FROM (SELECT "offset", json FROM events WHERE "offset" > ?1 AND "offset" < ?2 ORDER BY "offset" LIMIT CAST(?3 AS INTEGER))"#;
const INSERT_ONE: &str = r#"INSERT INTO events ("offset", idempotency_key, json) VALUES (?, ?, ?)"#;
/// Every event of `?`, a JSON array of committed events, as a row: its offset
/// and key read from its own JSON, and its text exactly as written (SQLite
/// keeps a JSON element's text as it was, escapes and number forms included).
const INSERT_FROM_JSON: &str = r#"INSERT INTO events ("offset", idempotency_key, json) SELECT value ->> 'offset', value ->> 'idempotencyKey', value FROM json_each(?)"#;
/// The same for events numbered `?1`, `?1 + 1`, … in the array `?2`, none with a key.
const INSERT_NUMBERED: &str = r#"INSERT INTO events ("offset", json) SELECT ?1 + key, value FROM json_each(?2)"#;
const INSERT_CHUNKED: &str = r#"INSERT INTO events ("offset", idempotency_key, chunk_count, byte_length, checksum) VALUES (?, ?, ?, ?, ?)"#;
const INSERT_CHUNK: &str = r#"INSERT INTO event_chunks ("offset", chunk_index, chunk_bytes) VALUES (?, ?, ?)"#;
const DELETE_STATE: &str = "DELETE FROM core_state";
const INSERT_HISTORY: &str = "INSERT OR REPLACE INTO state_history (at_offset, chunk_index, version, chunk_bytes) VALUES (?, ?, ?, ?)";
const SELECT_HISTORY_AT: &str = "SELECT at_offset FROM state_history WHERE at_offset <= ? AND version = ? ORDER BY at_offset DESC LIMIT 1";
const SELECT_HISTORY_CHUNKS: &str = "SELECT chunk_bytes FROM state_history WHERE at_offset = ? AND version = ? ORDER BY chunk_index";
const INSERT_STATE: &str = "INSERT OR REPLACE INTO core_state (chunk_index, version, chunk_bytes) VALUES (?, ?, ?)";

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[PageEntry<'_>]) -> Vec<(u64, Option<String>)> {
        entries
            .iter()
            .map(|e| match e {
                PageEntry::Inline(o, json) => (*o, Some((*json).to_owned())),
                PageEntry::Elsewhere(o) => (*o, None),
            })
            .collect()
    }

    #[test]
    fn events_are_grouped_into_json_arrays_of_a_bounded_size() {
        let arrays = |texts: &[&str], max| json_array_groups(texts, max).into_iter().map(|r| raw_array(texts[r].iter().copied())).collect::<Vec<_>>();
        assert_eq!(arrays(&["{}", "{}", "{}"], 100), vec!["[{},{},{}]"]);
        assert_eq!(arrays(&["{\"a\":1}", "{}", "{}"], 10), vec!["[{\"a\":1}]", "[{},{}]"]);
        assert_eq!(arrays(&["{\"long\":1}", "{}"], 4), vec!["[{\"long\":1}]", "[{}]"]);
        assert!(json_array_groups(&[], 10).is_empty());
    }

    #[test]
    fn a_page_splits_by_its_lengths() {
        let page = split_page("1 7,2 -1,3 2", r#"{"a":1},{}"#).unwrap();
        assert_eq!(offsets(&page), vec![(1, Some(r#"{"a":1}"#.into())), (2, None), (3, Some("{}".into()))]);
        assert_eq!(offsets(&split_page("", "").unwrap()), vec![]);
        assert_eq!(offsets(&split_page("4 -1", "").unwrap()), vec![(4, None)]);
    }

    #[test]
    fn a_whole_page_splits_at_the_commas_between_objects() {
        let text = r#"{"a":[1,{"b":"x,}]\\\"{"}]},{},{"c":","}"#;
        let events = split_whole_page("3,5,9", text).unwrap();
        assert_eq!(events.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![3, 5, 9]);
        assert_eq!(events.iter().map(|e| e.json.as_str()).collect::<Vec<_>>(), vec![r#"{"a":[1,{"b":"x,}]\\\"{"}]}"#, "{}", r#"{"c":","}"#]);
        assert_eq!(events.iter().map(|e| e.json.as_str()).collect::<Vec<_>>().join(","), text);
    }

    #[test]
    fn a_whole_page_that_does_not_split_one_object_per_offset_is_refused() {
        assert!(split_whole_page("1,2", "{},{},{}").is_none(), "more objects than offsets");
        assert!(split_whole_page("1,2,3", "{},{}").is_none(), "fewer objects than offsets");
        assert!(split_whole_page("2,1", "{},{}").is_none(), "descending offsets");
        assert!(split_whole_page("1,2", "{,{}").is_none(), "unbalanced");
        assert!(split_whole_page("1", "<damaged>").is_none(), "not an object");
        assert!(split_whole_page("1,2", r#"{"s":"},{"}"#).is_none(), "a comma inside a string does not split");
        assert!(split_whole_page("1", "{}]").is_none());
    }

    #[test]
    fn a_page_array_is_taken_only_when_its_offsets_count_up_from_the_first() {
        assert!(counts_up("5,6,7", 5, 3));
        assert!(counts_up("1", 1, 1));
        assert!(!counts_up("5,7,6", 5, 3), "out of order");
        assert!(!counts_up("6,7,8", 5, 3), "starts late");
        assert!(!counts_up("5,6", 5, 3), "fewer than the count");
        assert!(!counts_up("5,6,7", 5, 2), "more than the count");
        assert!(!counts_up("5,x", 5, 2));
        assert!(!counts_up("", 5, 1));
    }

    #[test]
    fn a_page_out_of_order_or_not_covering_its_text_is_refused() {
        assert!(split_page("2 2,1 2", "{},{}").is_none(), "descending offsets");
        assert!(split_page("1 2,2 2", "{},{},{}").is_none(), "text left over");
        assert!(split_page("1 2,2 3", "{},{}").is_none(), "text too short");
        assert!(split_page("1 2,2 2", "{};{}").is_none(), "not comma-separated");
        assert!(split_page("1 x", "{}").is_none());
        assert!(split_page("1 1", "é").is_none(), "inside a character");
    }
}
