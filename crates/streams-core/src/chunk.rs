//! Cutting JSON into row-sized slices, putting it back together, and the
//! checksum that proves nothing was lost in between (docs/architecture.md#storage).

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

/// A cheap 32-bit checksum of `bytes` (FNV-1a over 8-byte words, folded):
/// it catches a missing, repeated or altered slice, not an adversary. 32 bits
/// so that it crosses into JS as an exact number.
pub fn checksum(bytes: &[u8]) -> u32 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(word);
        hash = (hash ^ u64::from_le_bytes(buf)).wrapping_mul(PRIME);
    }
    for &byte in words.remainder() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
    }
    (hash ^ (hash >> 32)) as u32
}

/// How an event's slices are described on its row, checked on every read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSummary {
    pub count: u64,
    pub byte_length: u64,
    pub checksum: u32,
}

impl ChunkSummary {
    pub fn of(bytes: &[u8]) -> Self {
        Self { count: chunks(bytes).len() as u64, byte_length: bytes.len() as u64, checksum: checksum(bytes) }
    }

    /// Reassembles `slices` (in `chunk_index` order) if they are exactly the
    /// ones described: same count, same total length, same checksum.
    pub fn verify(&self, slices: Vec<Vec<u8>>) -> Result<String, String> {
        if slices.len() as u64 != self.count {
            return Err(format!("{} chunks stored, {} expected", slices.len(), self.count));
        }
        let bytes = slices.concat();
        if bytes.len() as u64 != self.byte_length {
            return Err(format!("{} bytes stored, {} expected", bytes.len(), self.byte_length));
        }
        if checksum(&bytes) != self.checksum {
            return Err("checksum mismatch".into());
        }
        String::from_utf8(bytes).map_err(|_| "not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_accepts_exactly_its_slices() {
        let text = format!("{{\"s\":\"{}\"}}", "x".repeat(3 * EVENT_CHUNK_SIZE));
        let summary = ChunkSummary::of(text.as_bytes());
        let owned = || chunks(text.as_bytes()).into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>();
        assert_eq!(summary.count, 4);
        assert_eq!(summary.verify(owned()).unwrap(), text);
        let mut missing_middle = owned();
        missing_middle.remove(1);
        assert!(summary.verify(missing_middle).unwrap_err().contains("chunks"));
        let mut short = owned();
        short[1].pop();
        assert!(summary.verify(short).unwrap_err().contains("bytes"));
        let mut altered = owned();
        altered[2][7] = b'y';
        assert_eq!(summary.verify(altered).unwrap_err(), "checksum mismatch");
        let ordered = format!("{}{}", "a".repeat(EVENT_CHUNK_SIZE), "b".repeat(EVENT_CHUNK_SIZE));
        let mut swapped = chunks(ordered.as_bytes()).into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>();
        swapped.swap(0, 1);
        assert_eq!(ChunkSummary::of(ordered.as_bytes()).verify(swapped).unwrap_err(), "checksum mismatch");
    }

    #[test]
    fn the_checksum_sees_order_and_length() {
        assert_ne!(checksum(b"ab"), checksum(b"ba"));
        assert_ne!(checksum(b""), checksum(b"\0"));
        assert_ne!(checksum(b"12345678abcdefgh"), checksum(b"abcdefgh12345678"));
    }

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
