//! Stable hashes: pinned functions whose values never change across platforms, Rust
//! versions or releases of mlpipe, because split assignments, hash buckets and random
//! draws depend on them.
//!
//! - [`murmur3_32`] is MurmurHash3_x86_32 (Austin Appleby, public domain), the hash of
//!   scikit-learn's `FeatureHasher` and `sklearn.utils.murmurhash3_32`: `hash_bucket`
//!   uses it, so its buckets can be reproduced from Python.
//! - [`murmur3_128`] is MurmurHash3_x64_128; its first 64-bit word keys rows (`split`,
//!   `sample`, `gaussian_noise`, `random_mask`).
//! - [`fmix64`] is MurmurHash3's 64-bit finaliser, a bijective mixer used for counter-based
//!   random numbers and as the hasher of in-memory maps keyed by numbers.
//!
//! Both hashes pass SMHasher's verification test (see the tests), which pins them.
//!
//! How values are hashed (row keys): a string hashes its UTF-8 bytes; an integer hashes the
//! 8 little-endian bytes of its value as a 64-bit two's complement integer (every integer
//! type is widened to int64 first, so `7u8` and `7i64` hash alike; a uint64 at or above
//! 2^63 hashes its own 8 bytes, those of the int64 with the same bits).

use std::hash::{BuildHasherDefault, Hasher};

use mlpipe_plugin_api::arrow::array::{Array, AsArray, Int64Array};
use mlpipe_plugin_api::arrow::compute::{CastOptions, cast_with_options};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use mlpipe_plugin_api::{Error, Result};

use crate::columns::Accepts;

/// MurmurHash3_x86_32 of `data` with `seed`.
pub(crate) fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in blocks.by_ref() {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h ^= mix(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .enumerate()
            .fold(0u32, |k, (i, &b)| k ^ (u32::from(b) << (8 * i)));
        h ^= mix(k);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// MurmurHash3's 64-bit finaliser: a bijection that spreads every input bit over the
/// whole word.
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// MurmurHash3_x64_128 of `data` with `seed`: the two 64-bit words `(h1, h2)`.
pub(crate) fn murmur3_128(data: &[u8], seed: u32) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let mix1 = |k: u64| k.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    let mix2 = |k: u64| k.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    let word = |bytes: &[u8]| {
        bytes
            .iter()
            .enumerate()
            .fold(0u64, |k, (i, &b)| k ^ (u64::from(b) << (8 * i)))
    };
    let (mut h1, mut h2) = (u64::from(seed), u64::from(seed));
    let mut blocks = data.chunks_exact(16);
    for block in blocks.by_ref() {
        h1 ^= mix1(word(&block[..8]));
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        h2 ^= mix2(word(&block[8..]));
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    if tail.len() > 8 {
        h2 ^= mix2(word(&tail[8..]));
    }
    if !tail.is_empty() {
        h1 ^= mix1(word(&tail[..tail.len().min(8)]));
    }
    h1 ^= data.len() as u64;
    h2 ^= data.len() as u64;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
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

/// Columns that can key rows: strings and integers.
pub(crate) const KEYS: Accepts = Accepts {
    test: is_key,
    what: "string or integer",
};

fn is_key(ty: &DataType) -> bool {
    use DataType::*;
    match ty {
        Utf8 | LargeUtf8 | Utf8View => true,
        Dictionary(_, values) => is_key(values),
        other => other.is_integer(),
    }
}

/// Calls `visit(row, hash)` for every non-null row of a key column, with `hash` the hash
/// of its value by `hash_bytes` (strings: UTF-8 bytes; integers: 8 little-endian bytes of
/// the value as int64).
pub(crate) fn for_each_key_hash<H: Copy>(
    array: &dyn Array,
    hash_bytes: impl Fn(&[u8]) -> H,
    mut visit: impl FnMut(usize, H),
) -> Result<()> {
    let values = match array.data_type() {
        DataType::Dictionary(_, values) => values.as_ref(),
        other => other,
    };
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    match values {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast_with_options(array, &DataType::Utf8, &options)?;
            for (row, value) in text.as_string::<i32>().iter().enumerate() {
                if let Some(value) = value {
                    visit(row, hash_bytes(value.as_bytes()));
                }
            }
        }
        integer if integer.is_integer() => {
            let ints: Int64Array = if *integer == DataType::UInt64 {
                // The same bits: a uint64 at or above 2^63 hashes as the int64 they make.
                cast_with_options(array, &DataType::UInt64, &options)?
                    .as_primitive::<UInt64Type>()
                    .unary(|value| value as i64)
            } else {
                cast_with_options(array, &DataType::Int64, &options)?
                    .as_primitive::<Int64Type>()
                    .clone()
            };
            for (row, value) in ints.iter().enumerate() {
                if let Some(value) = value {
                    visit(row, hash_bytes(&value.to_le_bytes()));
                }
            }
        }
        _ => {
            return Err(Error::config(format!(
                "a key column must hold strings or integers, not {}",
                array.data_type()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SMHasher's `VerificationTest`: hash keys {}, {0}, {0, 1}, ..., {0..254} with seeds
    /// 256 - len, then hash the concatenated results with seed 0; the first four bytes,
    /// little-endian, are the function's published verification value.
    fn verification(hash: impl Fn(&[u8], u32) -> Vec<u8>) -> u32 {
        let key: Vec<u8> = (0..=255u8).collect();
        let mut all = Vec::new();
        for len in 0..256 {
            all.extend(hash(&key[..len], 256 - len as u32));
        }
        let last = hash(&all, 0);
        u32::from_le_bytes([last[0], last[1], last[2], last[3]])
    }

    #[test]
    fn smhasher_verification_values() {
        assert_eq!(
            verification(|d, s| murmur3_32(d, s).to_le_bytes().to_vec()),
            0xB0F5_7EE3
        );
        let x64 = |d: &[u8], s| {
            let (h1, h2) = murmur3_128(d, s);
            [h1.to_le_bytes(), h2.to_le_bytes()].concat()
        };
        assert_eq!(verification(x64), 0x6384_BA69);
    }

    #[test]
    fn x64_128_agrees_with_the_reference() {
        // mmh3.hash64("hello") = (-3758069500696749310, 6565844092913065241).
        assert_eq!(
            murmur3_128(b"hello", 0),
            (0xcbd8_a7b3_41bd_9b02, 6_565_844_092_913_065_241)
        );
        assert_eq!(murmur3_128(b"", 0), (0, 0));
    }

    #[test]
    fn agrees_with_scikit_learn_murmurhash3_32() {
        // sklearn.utils.murmurhash3_32(key, seed, positive=True), scikit-learn 1.9.1.
        let vectors: [(&[u8], u32, u32); 9] = [
            (b"", 0, 0),
            (b"", 42, 142_593_372),
            (b"a", 0, 1_009_084_850),
            (b"a", 42, 3_001_393_763),
            (b"hello", 0, 613_153_351),
            (b"hello", 42, 3_806_057_185),
            (
                b"The quick brown fox jumps over the lazy dog",
                0,
                776_992_547,
            ),
            ("é".as_bytes(), 0, 269_551_495),
            (&42i64.to_le_bytes(), 0, 1_871_679_806),
        ];
        for (key, seed, expected) in vectors {
            assert_eq!(murmur3_32(key, seed), expected, "{key:?} seed {seed}");
        }
    }

    #[test]
    fn key_hashes_widen_integers_and_skip_nulls() {
        use mlpipe_plugin_api::arrow::array::{Int64Array, StringArray, UInt8Array};
        let mut small = Vec::new();
        for_each_key_hash(
            &UInt8Array::from(vec![Some(7), None]),
            |b| murmur3_32(b, 0),
            |r, h| small.push((r, h)),
        )
        .unwrap();
        let mut wide = Vec::new();
        for_each_key_hash(
            &Int64Array::from(vec![7]),
            |b| murmur3_32(b, 0),
            |r, h| wide.push((r, h)),
        )
        .unwrap();
        assert_eq!(small, wide);
        let mut text = Vec::new();
        for_each_key_hash(
            &StringArray::from(vec!["hello"]),
            |b| murmur3_32(b, 0),
            |_, h| text.push(h),
        )
        .unwrap();
        assert_eq!(text, [613_153_351]);
    }

    #[test]
    fn a_uint64_key_hashes_the_bits_of_the_int64_alike() {
        use mlpipe_plugin_api::arrow::array::{Float64Array, Int64Array, UInt64Array};
        let hashes = |array: &dyn Array| {
            let mut hashes = Vec::new();
            for_each_key_hash(array, |b| murmur3_32(b, 0), |_, h| hashes.push(h)).unwrap();
            hashes
        };
        let unsigned = UInt64Array::from(vec![7, u64::MAX, 1 << 63]);
        let signed = Int64Array::from(vec![7, -1, i64::MIN]);
        assert_eq!(hashes(&unsigned), hashes(&signed));
        let floats = Float64Array::from(vec![1.0]);
        let error = for_each_key_hash(&floats, |b| murmur3_32(b, 0), |_, _| ()).unwrap_err();
        assert!(
            error.message().contains("strings or integers, not Float64"),
            "{error}"
        );
    }
}
