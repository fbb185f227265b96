//! Count, mean and sum of squared deviations (M2) of a numeric column, computed per batch
//! with the corrected two-pass algorithm and merged across batches and instances with Chan
//! et al.'s pairwise formula, which needs no second pass over the data.
//!
//! The mean is kept as `shift + offset`, where `shift` is the rough mean of the first batch
//! and `offset` is small: on shifted data (1e9 + N(0, 1)) a mean stored as one float64 has
//! an absolute error of ~6e-8, which Chan's merge would square into the variance
//! (~1e-9 relative); the differences of shifts are exact and the offsets carry the fine
//! part, so the variance keeps ~1e-13 (see the tests).
//!
//! Missing values (nulls, and NaN) are counted apart and take no part in the moments,
//! as scikit-learn's `StandardScaler` and `SimpleImputer` ignore NaN when fitting.

use mlpipe_plugin_api::Result;
use mlpipe_plugin_api::arrow::array::Array;

use crate::fitting::Stats;
use crate::numeric::{as_f64, fold_valid};
use crate::wire::{Reader, Writer};

/// Moments of the non-missing values of a column.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Moments {
    /// Non-missing values.
    pub count: u64,
    /// Nulls and NaN.
    pub missing: u64,
    /// The mean is `shift + offset`.
    shift: f64,
    offset: f64,
    /// Sum of squared deviations from the mean (0 when only the mean is tracked).
    m2: f64,
    /// Whether M2 is tracked (a second pass over each batch), and the mean refined.
    with_m2: bool,
}

impl Moments {
    /// Empty moments; `with_m2` says whether the variance is wanted.
    pub(crate) fn new(with_m2: bool) -> Moments {
        Moments {
            with_m2,
            ..Moments::default()
        }
    }

    /// The moments of one batch of values.
    pub(crate) fn of(array: &dyn Array, with_m2: bool) -> Result<Moments> {
        let values = as_f64(array)?;
        let nulls = values.nulls();
        let values = values.values().as_ref();
        let ((sum, _), count) = fold_valid(values, nulls, |x| (x, 0.0));
        let missing = values.len() as u64 - count;
        let mut moments = Moments {
            count,
            missing,
            ..Moments::new(with_m2)
        };
        if count == 0 {
            return Ok(moments);
        }
        let shift = sum / count as f64;
        moments.shift = shift;
        if with_m2 {
            // Corrected two-pass: the deviations from the rough mean give the offset of
            // the exact mean (their sum is the rounding error of the first pass), and
            // Σd² − (Σd)²/n is M2 around the exact mean.
            let ((deviations, squares), _) =
                fold_valid(values, nulls, |x| (x - shift, (x - shift) * (x - shift)));
            moments.offset = deviations / count as f64;
            moments.m2 = (squares - deviations * moments.offset).max(0.0);
        }
        Ok(moments)
    }

    /// Adds the moments of other values (Chan, Golub and LeVeque's pairwise update).
    pub(crate) fn merge(&mut self, other: &Moments) {
        let missing = self.missing + other.missing;
        if other.count == 0 {
            self.missing = missing;
            return;
        }
        if self.count == 0 {
            *self = Moments {
                missing,
                with_m2: self.with_m2,
                ..*other
            };
            return;
        }
        let n = (self.count + other.count) as f64;
        // The difference of the means, fine part apart: shifts of similar size subtract
        // exactly.
        let delta = (other.shift - self.shift) + (other.offset - self.offset);
        let weight = other.count as f64 / n;
        self.offset += delta * weight;
        self.m2 += other.m2 + delta * delta * self.count as f64 * weight;
        self.count += other.count;
        self.missing = missing;
    }

    /// The mean of the values (NaN when there are none).
    pub(crate) fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.shift + self.offset
        }
    }

    /// The sum of squared deviations from the mean (M2); divided by the count, the
    /// population variance (ddof = 0).
    pub(crate) fn sum_of_squares(&self) -> f64 {
        self.m2
    }
}

impl Stats for Moments {
    fn update(&mut self, array: &dyn Array) -> Result<()> {
        let batch = Moments::of(array, self.with_m2)?;
        self.merge(&batch);
        Ok(())
    }

    fn merge(&mut self, other: Self) -> Result<()> {
        Moments::merge(self, &other);
        Ok(())
    }

    fn encode(&self, out: &mut Writer) {
        out.u64(u64::from(self.with_m2));
        out.u64(self.count);
        out.u64(self.missing);
        out.f64(self.shift);
        out.f64(self.offset);
        out.f64(self.m2);
    }

    fn decode(input: &mut Reader) -> Result<Self> {
        Ok(Moments {
            with_m2: input.u64()? != 0,
            count: input.u64()?,
            missing: input.u64()?,
            shift: input.f64()?,
            offset: input.f64()?,
            m2: input.f64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{Float32Array, Float64Array};

    use super::*;

    /// Mean and population variance computed the slow, exact-enough way: Kahan-summed
    /// two-pass in float64 over all values at once.
    fn reference(values: &[f64]) -> (f64, f64) {
        fn kahan(values: impl Iterator<Item = f64>) -> f64 {
            let (mut sum, mut carry) = (0.0f64, 0.0f64);
            for v in values {
                let y = v - carry;
                let t = sum + y;
                carry = (t - sum) - y;
                sum = t;
            }
            sum
        }
        let n = values.len() as f64;
        let mean = kahan(values.iter().copied()) / n;
        let var = kahan(values.iter().map(|v| (v - mean) * (v - mean))) / n;
        (mean, var)
    }

    /// A deterministic pseudo-normal sequence (sum of uniforms), shifted by `shift`.
    fn data(n: usize, shift: f64) -> Vec<f64> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        (0..n)
            .map(|_| {
                let mut sum = 0.0;
                for _ in 0..4 {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    sum += (state >> 11) as f64 / (1u64 << 53) as f64;
                }
                shift + (sum - 2.0)
            })
            .collect()
    }

    #[test]
    fn stable_on_shifted_data_across_batches_and_merges() {
        let values = data(200_003, 1e9);
        let (mean, var) = reference(&values);
        // Uneven batches, merged in two "instances" then together.
        let mut a = Moments::new(true);
        let mut b = Moments::new(true);
        for (i, chunk) in values.chunks(7919).enumerate() {
            let target = if i % 3 == 0 { &mut a } else { &mut b };
            target.update(&Float64Array::from(chunk.to_vec())).unwrap();
        }
        Moments::merge(&mut a, &b);
        assert_eq!(a.count, values.len() as u64);
        assert!(
            (a.mean() - mean).abs() <= 1e-15 * mean,
            "{} vs {mean}",
            a.mean()
        );
        let rel = ((a.sum_of_squares() / a.count as f64) - var).abs() / var;
        assert!(
            rel < 1e-12,
            "variance {} vs {var}: {rel:e}",
            (a.sum_of_squares() / a.count as f64)
        );
    }

    #[test]
    fn missing_values_are_counted_apart() {
        let array = Float64Array::from(vec![Some(1.0), None, Some(f64::NAN), Some(3.0)]);
        let m = Moments::of(&array, true).unwrap();
        assert_eq!((m.count, m.missing), (2, 2));
        assert_eq!(m.mean(), 2.0);
        assert_eq!(m.sum_of_squares() / m.count as f64, 1.0);

        let empty = Moments::of(&Float32Array::from(vec![None, None]), true).unwrap();
        assert_eq!((empty.count, empty.missing), (0, 2));
        let mut merged = empty;
        Moments::merge(&mut merged, &m);
        assert_eq!((merged.count, merged.missing, merged.mean()), (2, 4, 2.0));
    }

    #[test]
    fn partial_round_trip() {
        let m = Moments::of(&Float64Array::from(vec![1.0, 2.0, 4.0]), true).unwrap();
        let mut out = Writer::new("t");
        m.encode(&mut out);
        let bytes = out.finish();
        let mut input = Reader::new(&bytes, "t").unwrap();
        assert_eq!(Moments::decode(&mut input).unwrap(), m);
    }
}
