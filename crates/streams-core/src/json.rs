//! JSON exactly as JavaScript writes it: numbers print as `JSON.stringify`
//! prints them, and objects put array-index keys first, as JS objects do.
//! Every JSON the stream stores or returns is written through here.

use serde::Serialize;
use serde_json::{Map, Value};

use super::limits::MAX_SAFE_INTEGER;

/// Compact JSON with JS number formatting.
pub fn to_json_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    to_json_string_sized(value, 128)
}

/// `to_json_string` into a buffer of `capacity` bytes. A big value whose
/// length is known ahead is written without growing: grown, the buffer would
/// briefly need three times the value's size (old, doubled, then trimmed).
pub fn to_json_string_sized<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(capacity);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, JsFormatter);
    value.serialize(&mut serializer)?;
    // A buffer that doubled as it grew (or was sized too big) would hold up
    // to twice the JSON for as long as it lives.
    if out.capacity() - out.len() > SHRINK_SLACK_BYTES {
        out.shrink_to_fit();
    }
    // serde_json writes only valid UTF-8.
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// Spare capacity above which `to_json_string` gives the rest back.
const SHRINK_SLACK_BYTES: usize = 64 * 1024;

/// A JSON object built from values that are already JSON text (stored
/// events, the state a commit serialised), so they are neither parsed nor
/// printed again. Each value is whole JSON; keys are quoted here. Setting a
/// key that is present replaces its value in place, as `Object.assign` does.
#[derive(Debug, Default)]
pub struct RawObject {
    entries: Vec<(String, String)>,
}

impl RawObject {
    /// Sets `key` to `json`, which must be one complete JSON value.
    pub fn raw(&mut self, key: &str, json: String) -> &mut Self {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = json,
            None => self.entries.push((key.to_owned(), json)),
        }
        self
    }

    pub fn value<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        // Values here are strings, numbers and JSON values: serialising cannot fail.
        self.raw(key, to_json_string(value).unwrap_or_else(|_| "null".into()))
    }

    /// Every entry of `map`, in its order.
    pub fn merge(&mut self, map: &Map<String, Value>) -> &mut Self {
        for (key, value) in map {
            self.value(key, value);
        }
        self
    }

    pub fn finish(&self) -> String {
        let mut out = String::with_capacity(2 + self.entries.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>());
        out.push('{');
        for (i, (key, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&to_json_string(key.as_str()).unwrap_or_else(|_| "\"\"".into()));
            out.push(':');
            out.push_str(value);
        }
        out.push('}');
        out
    }
}

/// JSON text of an array of JSON texts, in a buffer of exactly its size.
pub fn raw_array<'a>(items: impl Iterator<Item = &'a str> + Clone) -> String {
    // `[`, `]`, and a comma between each two.
    let mut out = String::with_capacity(items.clone().map(|item| item.len() + 1).sum::<usize>().max(1) + 1);
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

/// The length `to_json_string` would give, without building the string.
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, serde_json::Error> {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    value.serialize(&mut serde_json::Serializer::with_formatter(&mut counter, JsFormatter))?;
    Ok(counter.0)
}

/// Parses JSON text (duplicate keys: the last wins) and normalises it to the
/// value `JSON.parse` would give.
pub fn parse_json(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<Value>(text).map(normalize)
}

/// Parses the text `JSON.stringify` wrote for a JS value, unless the text may
/// misrepresent it. `JSON.stringify` writes `null` for NaN, ±Infinity, an
/// invalid Date, and `undefined` or a function in an array; `{}` for a Map,
/// Set, RegExp, Error or ArrayBuffer; `{"0":…}` for a typed array; and a Date
/// as its ISO string. So text holding any of those shapes is `None`: the
/// caller judges the value itself, where such values are refused
/// (docs/protocol.md#append-input). Text nested deeper than the parser's
/// limit of 128 is `None` too.
pub fn parse_js_text(text: &str) -> Option<Value> {
    let mut value = serde_json::from_str::<Value>(text).ok()?;
    to_js_form(&mut value).then_some(value)
}

/// Normalises numbers and key order in place (as `normalize`); false when
/// the value holds a shape `parse_js_text` does not trust.
fn to_js_form(value: &mut Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(_) => true,
        Value::Number(n) => {
            if !n.as_u64().is_some_and(|u| u <= MAX_SAFE_INTEGER) {
                *value = number_value(n.as_f64().unwrap_or(0.0));
            }
            true
        }
        Value::String(s) => !is_date_json(s),
        Value::Array(items) => items.iter_mut().all(to_js_form),
        Value::Object(map) => {
            if map.is_empty() || map.keys().next().is_some_and(|k| k == "0") || !map.values_mut().all(to_js_form) {
                return false;
            }
            if map.keys().any(|k| array_index(k).is_some()) {
                *map = js_key_order(std::mem::take(map).into_iter());
            }
            true
        }
    }
}

/// Whether `parse_js_text` would take text `JSON.stringify` wrote exactly as it is: it holds no
/// `null`, no `{}`, no object whose first key is `"0"`, no string in a Date's shape, no lone
/// surrogate (JSON.stringify escapes those as `\udXXX`), and nests at most `max_depth` deep.
/// Then the text is already what writing its parse back would give (numbers, key order and
/// escapes as JS writes them). A byte scan: whether the text is JSON at all its parse says.
pub fn is_plain_js_text(text: &str, max_depth: usize) -> bool {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'"' => {
                let start = i + 1;
                let mut escaped = false;
                i = start;
                loop {
                    match bytes.get(i) {
                        None => return false,
                        Some(b'"') => break,
                        Some(b'\\') => {
                            let lone_surrogate = bytes.get(i + 1) == Some(&b'u')
                                && matches!(bytes.get(i + 2), Some(b'd' | b'D'))
                                && matches!(bytes.get(i + 3), Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'));
                            if lone_surrogate {
                                return false;
                            }
                            escaped = true;
                            i += 2;
                        }
                        Some(_) => i += 1,
                    }
                }
                if !escaped && text.get(start..i).is_some_and(is_date_json) {
                    return false;
                }
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                let next = bytes.get(i + 1..).unwrap_or_default();
                if depth > max_depth || byte == b'{' && (next.starts_with(b"}") || next.starts_with(b"\"0\":")) {
                    return false;
                }
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'n' => return false,
            _ => i += 1,
        }
    }
    true
}

/// Whether `s` has the shape `Date.prototype.toJSON` writes:
/// `YYYY-MM-DDTHH:MM:SS.sssZ`, or with a signed six-digit year.
fn is_date_json(s: &str) -> bool {
    const SHAPE: &[u8] = b"-DD-DDTDD:DD:DD.DDDZ";
    let (year, rest) = match s.len() {
        24 => s.as_bytes().split_at(4),
        27 if s.starts_with(['+', '-']) => s.as_bytes()[1..].split_at(6),
        _ => return false,
    };
    year.iter().all(u8::is_ascii_digit)
        && rest.iter().zip(SHAPE).all(|(b, shape)| if *shape == b'D' { b.is_ascii_digit() } else { b == shape })
}

/// Rewrites numbers and key order into their JS form: an integral number that
/// a double holds exactly becomes an integer, anything else a double.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Number(n) => number_value(n.as_f64().unwrap_or(0.0)),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(map) => Value::Object(js_key_order(map.into_iter().map(|(k, v)| (k, normalize(v))))),
        other => other,
    }
}

/// A JSON number for a (finite) double, in its canonical form.
pub fn number_value(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() <= MAX_SAFE_INTEGER as f64 {
        // Integral and exact: prints without a fraction, -0 as 0.
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// Builds an object with JS property order: canonical array-index keys
/// ascending, then the rest in insertion order.
pub fn js_key_order(entries: impl Iterator<Item = (String, Value)>) -> Map<String, Value> {
    let mut map: Map<String, Value> = entries.collect();
    if map.keys().any(|k| array_index(k).is_some()) {
        let mut entries: Vec<(String, Value)> = std::mem::take(&mut map).into_iter().collect();
        // Stable: non-index keys keep their order after the indices.
        entries.sort_by_key(|(k, _)| array_index(k).map_or((1, 0), |i| (0, i)));
        map = entries.into_iter().collect();
    }
    map
}

fn array_index(key: &str) -> Option<u64> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u64>().ok().filter(|i| *i < u64::from(u32::MAX))
}

/// `Number.prototype.toString()` for a finite double (ECMA-262 Number::toString).
pub fn format_js_number(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let mut buffer = zmij::Buffer::new();
    let shortest = buffer.format_finite(x.abs());
    let (mantissa, exponent) = match shortest.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (shortest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = format!("{int_part}{frac_part}");
    let leading_zeros = all_digits.len() - all_digits.trim_start_matches('0').len();
    let digits = all_digits[leading_zeros..].trim_end_matches('0');
    // value = 0.d1d2…dk × 10^n
    let n = int_part.len() as i32 + exponent - leading_zeros as i32;
    let k = digits.len() as i32;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let sign = if e >= 0 { "+" } else { "-" };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{sign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{sign}{}", e.abs())
        }
    };
    if x < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

/// serde_json formatter that writes doubles the way JavaScript does.
struct JsFormatter;

impl serde_json::ser::Formatter for JsFormatter {
    fn write_f64<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, value: f64) -> std::io::Result<()> {
        writer.write_all(format_js_number(value).as_bytes())
    }
    fn write_f32<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, value: f32) -> std::io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

/// Depth of the deepest container in `value` (a scalar has depth 0).
pub fn depth(value: &Value) -> usize {
    // Iterative, so hostile nesting cannot exhaust the stack here.
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(d + 1);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(d + 1);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (1.5e-10, "1.5e-10"),
            (2.5e300, "2.5e+300"),
            (-0.0, "0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (123.456, "123.456"),
            (0.98333, "0.98333"),
        ];
        for (x, want) in cases {
            assert_eq!(format_js_number(*x), *want, "{x}");
        }
    }

    #[test]
    fn parsed_json_is_normalised_to_the_js_form() {
        let v = parse_json(r#"{"b":1.0,"2":2,"a":[1e400000000000000]}"#);
        assert!(v.is_err(), "out-of-range numbers are rejected");
        let v = parse_json(r#"{"b":1.0,"10":2,"a":1e21,"1":3,"x":18446744073709551615}"#).unwrap();
        assert_eq!(
            to_json_string(&v).unwrap(),
            r#"{"1":3,"10":2,"b":1,"a":1e+21,"x":18446744073709552000}"#
        );
    }

    #[test]
    fn a_grown_buffer_gives_back_what_it_does_not_hold() {
        let big = Value::String("x".repeat(1 << 20));
        let text = to_json_string(&big).unwrap();
        assert!(text.capacity() - text.len() <= SHRINK_SLACK_BYTES, "capacity {} for {} bytes", text.capacity(), text.len());
        let sized = to_json_string_sized(&big, text.len()).unwrap();
        assert_eq!((sized.len(), sized.capacity()), (text.len(), text.len()), "a right size is used as is");
    }

    #[test]
    fn raw_arrays_are_joined_in_a_buffer_of_their_size() {
        let big = "1".repeat(1 << 20);
        for items in [vec![], vec!["1"], vec![big.as_str(), "[]", "{}"]] {
            let joined = raw_array(items.iter().copied());
            assert_eq!(joined, format!("[{}]", items.join(",")));
            assert_eq!(joined.capacity(), joined.len());
        }
    }

    #[test]
    fn json_len_counts_what_to_json_string_writes() {
        let v = json!({"a": [1.5, "é\n", null], "b": 1e21});
        assert_eq!(json_len(&v).unwrap(), to_json_string(&v).unwrap().len());
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let v = parse_json(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(to_json_string(&v).unwrap(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn text_that_may_hide_a_non_json_value_is_not_trusted() {
        let parsed = parse_js_text(r#"{"b":1.0,"a":[1e21,"x",true,{"k":18446744073709551615}],"1":2}"#).unwrap();
        assert_eq!(to_json_string(&parsed).unwrap(), r#"{"1":2,"b":1,"a":[1e+21,"x",true,{"k":18446744073709552000}]}"#);
        for untrusted in [
            "null",
            r#"{"payload":null}"#,
            "[1,null]",
            r#"{"m":{}}"#,
            r#"{"u":{"0":1,"1":2}}"#,
            r#"{"at":"1970-01-01T00:00:00.000Z"}"#,
            r#"["+275760-09-13T00:00:00.000Z"]"#,
            r#"{"s":"a\ud800b"}"#,
            &format!("{}1{}", "[".repeat(129), "]".repeat(129)),
            "{",
        ] {
            assert_eq!(parse_js_text(untrusted), None, "{untrusted}");
        }
        for trusted in [r#"{"at":"1970-01-01T00:00:00Z"}"#, r#"{"at":"1970-01-01 00:00:00.000Z"}"#, r#"{"a":{"1":0}}"#, "[]", r#""x""#, "0"] {
            assert!(parse_js_text(trusted).is_some(), "{trusted}");
        }
    }

    #[test]
    fn depth_counts_nesting_without_recursion() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({"a":[{"b":[]}]})), 4);
    }
}
