//! An array's validity as 64-bit words, one per 64 elements from the array's first element
//! (whatever the bitmap's bit offset): bit `i` of word `w` is set when element `64·w + i`
//! is valid. Kernels turn the low bits of a word into a lane mask.

use mlpipe_plugin_api::arrow::buffer::NullBuffer;
use mlpipe_plugin_api::arrow::util::bit_chunk_iterator::BitChunkIterator;

/// The validity words of one array; all ones when it has no nulls.
pub(crate) enum Words<'a> {
    AllValid,
    Bitmap {
        chunks: BitChunkIterator<'a>,
        remainder: Option<u64>,
    },
}

impl<'a> Words<'a> {
    /// The words of an array of `len` elements with these nulls.
    ///
    /// # Panics
    /// When `nulls` does not have `len` entries.
    pub(crate) fn new(nulls: Option<&'a NullBuffer>, len: usize) -> Words<'a> {
        match nulls.filter(|nulls| nulls.null_count() > 0) {
            None => Words::AllValid,
            Some(nulls) => {
                assert_eq!(nulls.len(), len, "validity length");
                let chunks = nulls.inner().bit_chunks();
                let remainder = (chunks.remainder_len() > 0).then(|| chunks.remainder_bits());
                Words::Bitmap {
                    chunks: chunks.iter(),
                    remainder,
                }
            }
        }
    }
}

impl Iterator for Words<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        match self {
            Words::AllValid => Some(u64::MAX),
            Words::Bitmap { chunks, remainder } => chunks.next().or_else(|| remainder.take()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_the_array_offset() {
        let valid: Vec<bool> = (0..200).map(|i| i % 3 != 0).collect();
        let nulls = NullBuffer::from(valid.clone());
        for offset in [0, 1, 7, 64, 65] {
            let len = 200 - offset - 3;
            let sliced = nulls.slice(offset, len);
            let words: Vec<u64> = Words::new(Some(&sliced), len).collect();
            assert_eq!(words.len(), len.div_ceil(64));
            for (i, &expected) in valid[offset..offset + len].iter().enumerate() {
                assert_eq!(words[i / 64] >> (i % 64) & 1 == 1, expected, "{offset} {i}");
            }
        }
        assert_eq!(Words::new(None, 5).next(), Some(u64::MAX));
    }
}
