//! Cutting JSON into row-sized slices and putting it back together (docs/architecture.md#storage).

use super::limits::EVENT_CHUNK_SIZE;

/// Slices of at most `EVENT_CHUNK_SIZE` bytes, in order; empty input gives one
/// empty slice. Slices may split a character.
pub fn chunks(bytes: &[u8]) -> Vec<&[u8]> {
    if bytes.is_empty() {
        return vec![bytes];
    }
    bytes.chunks(EVENT_CHUNK_SIZE).collect()
}

/// Concatenates slices taken in `chunk_index` order and decodes them.
pub fn reassemble<I, B>(slices: I) -> Result<String, std::string::FromUtf8Error>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let mut bytes = Vec::new();
    for slice in slices {
        bytes.extend_from_slice(slice.as_ref());
    }
    String::from_utf8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_json_is_cut_at_the_chunk_size_and_reassembled_exactly() {
        // 716800 bytes with a 3-byte character straddling the first boundary.
        let mut text = "a".repeat(EVENT_CHUNK_SIZE - 1);
        text.push('€');
        text.push_str(&"b".repeat(716_800 - text.len()));
        assert_eq!(text.len(), 716_800);
        let parts = chunks(text.as_bytes());
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![524_288, 192_512]);
        assert!(std::str::from_utf8(parts[0]).is_err(), "the first slice splits the character");
        assert_eq!(reassemble(parts).unwrap(), text);
    }

    #[test]
    fn empty_input_is_one_empty_chunk() {
        assert_eq!(chunks(b""), vec![b"" as &[u8]]);
        assert_eq!(reassemble(Vec::<Vec<u8>>::new()).unwrap(), "");
    }

    #[test]
    fn broken_utf8_is_reported() {
        assert!(reassemble([vec![0xe2, 0x82]]).is_err());
    }
}
