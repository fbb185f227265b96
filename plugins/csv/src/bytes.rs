//! Classifying bytes 64 at a time: one bit per byte that equals a given byte. The fast
//! tokenizer and the quote counting are built on it.
//!
//! On x86-64 it uses SSE2, which every x86-64 processor has: 16 bytes compared per
//! instruction and the results gathered with `movemask` (the compiler's own vectorization
//! of the portable loop widens every byte to 64 bits and is several times slower). Other
//! processors use the portable loop.

/// Bytes per block: one bit of a `u64` each.
pub(crate) const BLOCK: usize = 64;

/// For each of up to three bytes (`None` gives an empty mask): bit `i` is set where
/// `block[i]` equals it.
#[inline(always)]
pub(crate) fn masks(block: &[u8; BLOCK], bytes: [Option<u8>; 3]) -> [u64; 3] {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::masks(block, bytes)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        bytes.map(|byte| byte.map_or(0, |byte| portable_mask(block, byte)))
    }
}

/// Bit `i` is set where `block[i] == byte`.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn portable_mask(block: &[u8; BLOCK], byte: u8) -> u64 {
    let mut mask = 0u64;
    for (i, &b) in block.iter().enumerate() {
        mask |= u64::from(b == byte) << i;
    }
    mask
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };

    use super::BLOCK;

    #[inline(always)]
    pub(super) fn masks(block: &[u8; BLOCK], bytes: [Option<u8>; 3]) -> [u64; 3] {
        let mut masks = [0u64; 3];
        for lane in 0..BLOCK / 16 {
            for (mask, byte) in masks.iter_mut().zip(bytes) {
                let Some(byte) = byte else { continue };
                // SAFETY: SSE2 is part of every x86-64 processor, so its intrinsics can
                // run; `block` holds 64 bytes, so the 16 bytes from `16 * lane`
                // (lane < 4) are inside it, and `_mm_loadu_si128` accepts any alignment.
                let bits = unsafe {
                    let vector = _mm_loadu_si128(block.as_ptr().add(16 * lane).cast::<__m128i>());
                    _mm_movemask_epi8(_mm_cmpeq_epi8(vector, _mm_set1_epi8(byte as i8)))
                };
                *mask |= u64::from(bits as u16) << (16 * lane);
            }
        }
        masks
    }
}

/// The number of bytes of `data` equal to `byte`, and of those that follow `before` (when
/// given) directly.
pub(crate) fn count(data: &[u8], byte: u8, before: Option<u8>) -> (u64, u64) {
    let (mut all, mut following) = (0u64, 0u64);
    let mut carry = 0u64;
    let (blocks, rest) = data.as_chunks::<BLOCK>();
    for block in blocks {
        let [hits, leads, _] = masks(block, [Some(byte), before, None]);
        all += u64::from(hits.count_ones());
        following += u64::from((hits & (leads << 1 | carry)).count_ones());
        carry = leads >> 63;
    }
    let mut previous = (carry == 1).then_some(before).flatten();
    for &b in rest {
        if b == byte {
            all += 1;
            following += u64::from(previous.is_some() && previous == before);
        }
        previous = Some(b);
    }
    (all, following)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_mark_equal_bytes() {
        let mut block = [b'x'; BLOCK];
        block[0] = b'"';
        block[17] = b'"';
        block[63] = b',';
        let [quotes, commas, none] = masks(&block, [Some(b'"'), Some(b','), None]);
        assert_eq!(quotes, 1 | 1 << 17);
        assert_eq!(commas, 1 << 63);
        assert_eq!(none, 0);
        assert_eq!(portable_mask(&block, b'"'), quotes);
    }

    #[test]
    fn counts_match_a_plain_loop() {
        let data: Vec<u8> = (0..1000u32)
            .map(|i| b"a\\\"b\"\\"[(i * 7 % 6) as usize])
            .collect();
        for len in [0, 1, 63, 64, 65, 200, 1000] {
            let data = &data[..len];
            let all = data.iter().filter(|&&b| b == b'"').count() as u64;
            let following = data.windows(2).filter(|w| w == b"\\\"").count() as u64;
            assert_eq!(count(data, b'"', Some(b'\\')), (all, following), "{len}");
            assert_eq!(count(data, b'"', None), (all, 0));
        }
    }
}
