//! A request's query string without a URL parser: workerd hands over URLs it
//! has already parsed and serialised (WHATWG), so the query is what follows the
//! first `?` up to any `#`, and `application/x-www-form-urlencoded` decodes it.
//! (The `url` crate did the same and brought IDNA's Unicode tables, a sixth of
//! the wasm, for hosts the Worker never reads.)

use worker::Request;

/// The raw query of `req`'s URL (empty when there is none).
pub fn raw_query(req: &Request) -> String {
    query_of(&req.inner().url()).to_owned()
}

fn query_of(url: &str) -> &str {
    let without_fragment = url.split_once('#').map_or(url, |(before, _)| before);
    without_fragment.split_once('?').map_or("", |(_, query)| query)
}

/// The decoded `key=value` pairs of a raw query, in order.
pub fn pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// `pairs` encoded back into a query.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_ends_at_the_fragment() {
        assert_eq!(query_of("https://h/p?a=1&b=2#x?y"), "a=1&b=2");
        assert_eq!(query_of("https://h/p#x?y"), "");
        assert_eq!(query_of("https://h/p"), "");
        assert_eq!(query_of("https://h/p?"), "");
    }

    #[test]
    fn pairs_decode_and_encode_back() {
        let decoded: Vec<_> = pairs("path=%2Fa%20b&k=x+y&flag").collect();
        assert_eq!(decoded, [("path".into(), "/a b".into()), ("k".into(), "x y".into()), ("flag".into(), String::new())]);
        assert_eq!(encode(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str()))), "path=%2Fa+b&k=x+y&flag=");
    }
}
