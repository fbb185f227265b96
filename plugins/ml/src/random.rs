//! Counter-based random numbers: every random draw is a pure function of
//! `(seed, epoch, row key, column, draw)`, so a row gets the same noise, mask or sampling
//! decision in every run, whatever the batching, the number of workers or the order rows
//! arrive in (`gaussian_noise`, `random_mask`, `sample`, the `synthetic` source).
//!
//! ```text
//! word(seed, epoch, row, column, draw) =
//!     fmix64(fmix64(fmix64(fmix64(fmix64(seed) ^ epoch) ^ row) ^ column) ^ draw)
//! uniform = (word >> 11) · 2^-53                         in [0, 1)
//! normal  = sqrt(-2 ln(1 - u1)) · cos(2π u2)             Box-Muller, u1 = draw 0, u2 = draw 1
//! ```
//!
//! `fmix64` is MurmurHash3's 64-bit finaliser (a bijection); `row` is the first 64-bit word
//! of MurmurHash3_x64_128 (seed 0) of the row's key (a string's UTF-8 bytes, an integer's
//! int64 little-endian bytes; see `split`), or the row index for the `synthetic` source;
//! `column` is the same hash of the column's name. The uniform and the hashes are exact
//! integer arithmetic, identical everywhere; the normal uses `ln`, `sqrt` and `cos` of the
//! platform's math library, which can differ in the last bit between platforms.

use crate::hashing::{fmix64, murmur3_128};

/// The random stream of one transform: its seed and epoch, mixed once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stream {
    base: u64,
}

impl Stream {
    /// The stream of `seed` in `epoch`.
    pub(crate) fn new(seed: u64, epoch: u64) -> Stream {
        Stream {
            base: fmix64(fmix64(seed) ^ epoch),
        }
    }

    /// The random word of draw `draw` for `row` and `column`.
    pub(crate) fn word(self, row: u64, column: u64, draw: u64) -> u64 {
        fmix64(fmix64(fmix64(self.base ^ row) ^ column) ^ draw)
    }

    /// A uniform number in [0, 1).
    pub(crate) fn uniform(self, row: u64, column: u64, draw: u64) -> f64 {
        (self.word(row, column, draw) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal number (Box-Muller over draws `2·draw` and `2·draw + 1`).
    pub(crate) fn normal(self, row: u64, column: u64, draw: u64) -> f64 {
        let u1 = self.uniform(row, column, 2 * draw);
        let u2 = self.uniform(row, column, 2 * draw + 1);
        (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The hash that stands for a column in draws: of its name.
pub(crate) fn column_word(name: &str) -> u64 {
    murmur3_128(name.as_bytes(), 0).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_pinned_and_independent_of_order() {
        let s = Stream::new(42, 0);
        let a = s.word(7, column_word("x"), 0);
        // Pinned: these values must never change.
        assert_eq!(column_word("x"), 0x6d16_e801_ba1a_fee7);
        assert_eq!(a, 0x9568_d073_e4d7_dbc5);
        assert_eq!(s.uniform(7, column_word("x"), 0), 0.583_630_588_812_268_9);
        assert_ne!(a, s.word(7, column_word("y"), 0));
        assert_ne!(a, Stream::new(42, 1).word(7, column_word("x"), 0));
        assert_ne!(a, Stream::new(43, 0).word(7, column_word("x"), 0));
        assert_eq!(
            Stream::new(0, 0).word(0, 0, 0),
            fmix64(fmix64(fmix64(fmix64(fmix64(0))))),
        );
    }

    #[test]
    fn uniforms_and_normals_have_their_moments() {
        let s = Stream::new(1, 0);
        let n = 200_000u64;
        let (mut sum, mut sum2, mut usum) = (0.0, 0.0, 0.0);
        for row in 0..n {
            let u = s.uniform(row, 0, 0);
            assert!((0.0..1.0).contains(&u));
            usum += u;
            let z = s.normal(row, 1, 0);
            sum += z;
            sum2 += z * z;
        }
        let n = n as f64;
        assert!((usum / n - 0.5).abs() < 0.005);
        assert!((sum / n).abs() < 0.01, "{}", sum / n);
        assert!((sum2 / n - 1.0).abs() < 0.02, "{}", sum2 / n);
    }
}
