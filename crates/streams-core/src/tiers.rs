//! Where a stream's events live and what may be read (docs/architecture.md#storage-tiers):
//! the first kept offset and the refusal of reads before it.

use super::error::{ErrorCode, StreamError, StreamResult};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
