//! Fast all-zero detection for page data.

/// Bytes checked between early exits: long enough for the compiler to vectorise the OR.
const ZERO_CHUNK_BYTES: usize = 256;

/// True when every byte of `data` is zero.
pub fn is_all_zero(data: &[u8]) -> bool {
    let mut chunks = data.chunks_exact(ZERO_CHUNK_BYTES);
    for chunk in &mut chunks {
        // OR-reduce 16-byte lanes without branches; exit at the first non-zero chunk.
        let acc = chunk.chunks_exact(16).fold(0u128, |acc, lane| {
            let mut a = [0u8; 16];
            a.copy_from_slice(lane);
            acc | u128::from_ne_bytes(a)
        });
        if acc != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_any_single_non_zero_byte() {
        let mut page = vec![0u8; 4096 + 7];
        assert!(is_all_zero(&page));
        for at in [0, 1, 255, 256, 4095, 4096, 4102] {
            page[at] = 0x80;
            assert!(!is_all_zero(&page), "byte {at}");
            page[at] = 0;
        }
        assert!(is_all_zero(&[]));
    }
}
