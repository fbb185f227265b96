//! Stable hashes: pinned functions whose values never change across platforms, Rust
//! versions or releases of mlpipe.
//!
//! - [`fmix64`] is MurmurHash3's 64-bit finaliser, a bijective mixer, used as the hasher
//!   of in-memory maps keyed by numbers.

use std::hash::{BuildHasherDefault, Hasher};

/// MurmurHash3's 64-bit finaliser: a bijection that spreads every input bit over the
/// whole word.
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// A [`Hasher`] for maps keyed by one `u64` (number bits): [`fmix64`] of the key.
#[derive(Default)]
pub(crate) struct NumberHasher(u64);

impl Hasher for NumberHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = fmix64(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = fmix64(self.0 ^ n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by number bits.
pub(crate) type NumberMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<NumberHasher>>;
