//! Numeric columns: which types count as numeric, the floating-point type a numeric
//! transform outputs, and vectorised maps over a column's values.
//!
//! Output types follow scikit-learn: float32 stays float32, every other numeric type
//! (integers, float64) becomes float64. The maps here compute in float64 and round once to
//! the output type (the scalers call kernels instead: [`crate::kernels`]). Nulls stay null; the value slots under nulls are computed too (they
//! are arbitrary and hidden by the validity bitmap), which keeps the loops branch-free.

use std::sync::Arc;

use mlpipe_plugin_api::Result;
use mlpipe_plugin_api::arrow::array::{Array, ArrayRef, AsArray, Float64Array, PrimitiveArray};
use mlpipe_plugin_api::arrow::buffer::NullBuffer;
use mlpipe_plugin_api::arrow::compute::cast;
use mlpipe_plugin_api::arrow::datatypes::{DataType, Float32Type, Float64Type};

use crate::columns::Accepts;

/// Integer and floating-point columns.
pub(crate) const NUMERIC: Accepts = Accepts {
    test: is_numeric,
    what: "numeric (integer or floating-point)",
};

/// Whether `ty` is an integer or floating-point type (float16 excepted).
pub(crate) fn is_numeric(ty: &DataType) -> bool {
    use DataType::*;
    matches!(
        ty,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float32 | Float64
    )
}

/// The type a numeric transform outputs for an input of type `ty`.
pub(crate) fn float_type(ty: &DataType) -> DataType {
    match ty {
        DataType::Float32 => DataType::Float32,
        _ => DataType::Float64,
    }
}

/// The column's values as float64: zero copy for a float64 column, a cast otherwise.
pub(crate) fn as_f64(array: &dyn Array) -> Result<Float64Array> {
    match array.as_primitive_opt::<Float64Type>() {
        Some(values) => Ok(values.clone()),
        None => Ok(cast(array, &DataType::Float64)?
            .as_primitive::<Float64Type>()
            .clone()),
    }
}

/// Maps every present value through `f` (computed in float64) and replaces every missing
/// one — a null, or NaN when `nan_is_missing` — by `fill`; the result has no nulls and has
/// type [`float_type`] of the input. `f` must map only NaN to NaN (true of the affine maps
/// that use this). A column with nothing missing and `f` the identity is returned as it is.
///
/// Three simple loops instead of one with a per-value select, measured faster: `f` over
/// every slot (vectorised), then `fill` written at the null slots (usually few), then,
/// when asked, NaN replaced by `fill` (vectorised).
pub(crate) fn map_or_fill(
    array: &ArrayRef,
    f: impl Fn(f64) -> f64,
    identity: bool,
    fill: f64,
    nan_is_missing: bool,
) -> Result<ArrayRef> {
    if let Some(values) = array.as_primitive_opt::<Float32Type>() {
        if identity && values.null_count() == 0 && !nan_is_missing {
            return Ok(array.clone());
        }
        let mut out: Vec<f32> = values
            .values()
            .iter()
            .map(|&x| f(f64::from(x)) as f32)
            .collect();
        patch(
            &mut out,
            values.nulls(),
            nan_is_missing,
            fill as f32,
            f32::is_nan,
        );
        return Ok(Arc::new(PrimitiveArray::<Float32Type>::new(
            out.into(),
            None,
        )));
    }
    let values = as_f64(array.as_ref())?;
    // Integers (cast to float64) hold no NaN.
    let nan_is_missing = nan_is_missing && array.data_type() == &DataType::Float64;
    if identity && values.null_count() == 0 && !nan_is_missing {
        return Ok(Arc::new(values));
    }
    let mut out: Vec<f64> = values.values().iter().map(|&x| f(x)).collect();
    patch(&mut out, values.nulls(), nan_is_missing, fill, f64::is_nan);
    Ok(Arc::new(Float64Array::new(out.into(), None)))
}

/// Writes `fill` into the null slots of `values` and, with `nan`, into its NaN slots.
fn patch<T: Copy>(
    values: &mut [T],
    nulls: Option<&NullBuffer>,
    nan: bool,
    fill: T,
    is_nan: impl Fn(T) -> bool,
) {
    if let Some(nulls) = nulls {
        for row in (!nulls.inner()).set_indices() {
            values[row] = fill;
        }
    }
    if nan {
        for value in values {
            *value = if is_nan(*value) { fill } else { *value };
        }
    }
}

/// Calls `visit(chunk, mask)` for consecutive chunks of at most 64 values, `mask` holding
/// their validity bits (bit `j` set: value `j` is not null). Kernels written over a chunk
/// and its mask vectorise: no branch, no per-value bit lookup.
pub(crate) fn for_each_chunk<T>(
    values: &[T],
    nulls: Option<&NullBuffer>,
    mut visit: impl FnMut(&[T], u64),
) {
    match nulls {
        None => values.chunks(64).for_each(|chunk| visit(chunk, u64::MAX)),
        Some(nulls) => {
            let bits = nulls.inner().bit_chunks();
            let mut chunks = values.chunks_exact(64);
            for (chunk, mask) in chunks.by_ref().zip(bits.iter()) {
                visit(chunk, mask);
            }
            visit(chunks.remainder(), bits.remainder_bits());
        }
    }
}

/// Sums `f(x)` over the values that are neither null nor NaN, and counts them, with eight
/// accumulators per sum. `f` returns two terms, summed apart.
pub(crate) fn fold_valid(
    values: &[f64],
    nulls: Option<&NullBuffer>,
    f: impl Fn(f64) -> (f64, f64),
) -> ((f64, f64), u64) {
    let mut lanes = [[0.0f64; 8]; 2];
    let mut counts = [0u64; 8];
    for_each_chunk(values, nulls, |chunk, mut mask| {
        let mut groups = chunk.chunks_exact(8);
        for group in groups.by_ref() {
            let group = group.try_into().unwrap_or(&[f64::NAN; 8]);
            fold_group(&mut lanes, &mut counts, group, mask, &f);
            mask >>= 8;
        }
        let rest = groups.remainder();
        if !rest.is_empty() {
            // Padding with NaN: not counted, as a NaN value is not.
            let mut padded = [f64::NAN; 8];
            padded[..rest.len()].copy_from_slice(rest);
            fold_group(&mut lanes, &mut counts, &padded, mask, &f);
        }
    });
    let count = counts.iter().sum();
    let sum = |lanes: &[f64; 8]| lanes.iter().sum::<f64>();
    ((sum(&lanes[0]), sum(&lanes[1])), count)
}

/// One group of eight values of [`fold_valid`]: value `j` goes to lane `j` when bit `j` of
/// `bits` is set and it is not NaN. The bit tested is a constant per lane, and the lanes
/// are independent, so the loop vectorises even for baseline x86-64.
#[inline(always)]
fn fold_group(
    lanes: &mut [[f64; 8]; 2],
    counts: &mut [u64; 8],
    group: &[f64; 8],
    bits: u64,
    f: &impl Fn(f64) -> (f64, f64),
) {
    for j in 0..8 {
        let x = group[j];
        let keep = ((bits >> j) & 1 == 1) & !x.is_nan();
        let (a, b) = f(x);
        lanes[0][j] += if keep { a } else { 0.0 };
        lanes[1][j] += if keep { b } else { 0.0 };
        counts[j] += u64::from(keep);
    }
}

/// The smallest and largest values that are neither null nor NaN, and their count
/// (`(+inf, -inf, 0)` when there are none).
pub(crate) fn min_max_valid(values: &[f64], nulls: Option<&NullBuffer>) -> (f64, f64, u64) {
    let mut low = [f64::INFINITY; 8];
    let mut high = [f64::NEG_INFINITY; 8];
    let mut count = 0u64;
    for_each_chunk(values, nulls, |chunk, mask| {
        for (j, &x) in chunk.iter().enumerate() {
            let keep = (mask >> j) & 1 == 1 && !x.is_nan();
            low[j % 8] = if keep && x < low[j % 8] {
                x
            } else {
                low[j % 8]
            };
            high[j % 8] = if keep && x > high[j % 8] {
                x
            } else {
                high[j % 8]
            };
            count += u64::from(keep);
        }
    });
    let low = low.into_iter().fold(f64::INFINITY, f64::min);
    let high = high.into_iter().fold(f64::NEG_INFINITY, f64::max);
    (low, high, count)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn folds_skip_nulls_and_nan_at_any_offset() {
        let values: Vec<Option<f64>> = (0..200)
            .map(|i| match i % 7 {
                0 => None,
                3 => Some(f64::NAN),
                _ => Some(i as f64),
            })
            .collect();
        let array = Float64Array::from(values.clone());
        for offset in [0, 1, 63, 64, 65, 130] {
            let slice = array.slice(offset, 200 - offset);
            let ((sum, squares), count) =
                fold_valid(slice.values(), slice.nulls(), |x| (2.0 * x, x * x));
            let expected: Vec<f64> = values[offset..]
                .iter()
                .flatten()
                .copied()
                .filter(|x| !x.is_nan())
                .collect();
            assert_eq!(count, expected.len() as u64, "offset {offset}");
            assert_eq!(sum, 2.0 * expected.iter().sum::<f64>(), "offset {offset}");
            assert_eq!(squares, expected.iter().map(|x| x * x).sum::<f64>());
        }
    }

    #[test]
    fn extremes_skip_nulls_and_nan() {
        let array =
            Float64Array::from(vec![Some(f64::NAN), Some(-2.0), None, Some(7.5), Some(0.0)]);
        assert_eq!(min_max_valid(array.values(), array.nulls()), (-2.0, 7.5, 3));
        let none = Float64Array::from(vec![None, Some(f64::NAN)]);
        assert_eq!(
            min_max_valid(none.values(), none.nulls()),
            (f64::INFINITY, f64::NEG_INFINITY, 0)
        );
    }

    #[test]
    fn float64_columns_are_viewed_without_a_copy() {
        let values = Float64Array::from(vec![1.0, 2.0]);
        let view = as_f64(&values).unwrap();
        assert_eq!(view.values().as_ptr(), values.values().as_ptr());
    }
}
