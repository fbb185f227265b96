//! Agreement of every instruction set with the scalar path, and of the scalar path with
//! plain reference loops, over many lengths, offsets, nulls and special values.

use mlpipe_plugin_api::arrow::array::{Array, PrimitiveArray};
use mlpipe_plugin_api::arrow::buffer::NullBuffer;

use crate::vector::Element;
use crate::*;

/// Lengths around every vector width, group, 64-bit word and block boundary.
const LENGTHS: [usize; 22] = [
    0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 1000, 1023, 1024, 1025, 4099,
];
/// Slice offsets: unaligned values and validity bits that do not start a byte.
const OFFSETS: [usize; 3] = [0, 1, 3];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// What the test data may contain.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Data {
    /// Finite values of mixed magnitude and sign, some zeros of both signs.
    Finite,
    /// Also NaN.
    WithNan,
    /// Also NaN, +∞ and -∞.
    Special,
}

/// `len + offset` values (with or without nulls) sliced from `offset`: an array whose values
/// start at an unaligned address and whose validity starts mid-byte.
fn array<E: Element>(
    len: usize,
    offset: usize,
    nulls: bool,
    data: Data,
    seed: u64,
) -> PrimitiveArray<E::Arrow> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let values: Vec<E> = (0..len + offset)
        .map(|_| {
            let r = rng.next() % 100;
            let v = match r {
                0 if data != Data::Finite => f64::NAN,
                1 if data == Data::Special => f64::INFINITY,
                2 if data == Data::Special => f64::NEG_INFINITY,
                3 => -0.0,
                4 => 0.0,
                5..=9 => rng.unit() * 1e6,
                10..=14 => rng.unit() * 1e-6,
                15..=19 => rng.unit() - 1.0,
                _ => rng.unit() * 10.0,
            };
            E::from_f64(v)
        })
        .collect();
    let validity: Option<NullBuffer> = nulls.then(|| {
        NullBuffer::from(
            (0..len + offset)
                .map(|_| !rng.next().is_multiple_of(7))
                .collect::<Vec<_>>(),
        )
    });
    PrimitiveArray::<E::Arrow>::new(values.into(), validity).slice(offset, len)
}

fn simd_isas() -> Vec<Isa> {
    Isa::available()
        .into_iter()
        .filter(|isa| *isa != Isa::SCALAR)
        .collect()
}

/// Every combination of length, offset, nulls and data, for one element type.
fn cases<E: Element>(data: &[Data]) -> Vec<PrimitiveArray<E::Arrow>> {
    let mut arrays = Vec::new();
    for (seed, &len) in LENGTHS.iter().enumerate() {
        for &offset in &OFFSETS {
            for nulls in [false, true] {
                for &data in data {
                    arrays.push(array::<E>(
                        len,
                        offset,
                        nulls,
                        data,
                        seed as u64 * 31 + offset as u64,
                    ));
                }
            }
        }
    }
    arrays
}

fn bits<E: Element>(values: &[E]) -> Vec<u64> {
    values.iter().map(|v| v.to_f64().to_bits()).collect()
}

/// Runs an element-wise kernel on every instruction set and checks each output, bit for
/// bit, against the scalar one.
fn check_elementwise<E: Element>(
    name: &str,
    kernel: impl Fn(Isa, &PrimitiveArray<E::Arrow>, &mut [E]),
) {
    for x in cases::<E>(&[Data::Special]) {
        let mut expected = vec![E::ZERO; x.len()];
        kernel(Isa::SCALAR, &x, &mut expected);
        for isa in simd_isas() {
            let mut got = vec![E::ZERO; x.len()];
            kernel(isa, &x, &mut got);
            assert_eq!(
                bits(&got),
                bits(&expected),
                "{name} on {isa}, {} values, nulls {}",
                x.len(),
                x.null_count()
            );
        }
    }
}

fn elementwise_agree<E: Element>() {
    let e = E::from_f64;
    for fill_nan in [false, true] {
        let params = Standardize {
            fill: e(0.25),
            mean: e(-1.5),
            scale: e(3.0),
            fill_nan,
        };
        check_elementwise::<E>("fill_standardize", |isa, x, out| {
            fill_standardize(isa, x.values(), x.nulls(), params, out)
        });
    }
    let (scale, offset) = min_max_params(e(-3.0), e(7.0), e(-1.0), e(1.0));
    check_elementwise::<E>("affine", |isa, x, out| {
        affine(isa, x.values(), scale, offset, out)
    });
    check_elementwise::<E>("clip", |isa, x, out| {
        clip(isa, x.values(), e(-0.5), e(2.0), out)
    });
    check_elementwise::<E>("clip NaN bound", |isa, x, out| {
        clip(isa, x.values(), e(f64::NAN), e(0.0), out)
    });
    check_elementwise::<E>("log1p", |isa, x, out| log1p(isa, x.values(), out));
}

#[test]
fn element_wise_kernels_are_bit_identical_on_every_isa_f64() {
    elementwise_agree::<f64>();
}

#[test]
fn element_wise_kernels_are_bit_identical_on_every_isa_f32() {
    elementwise_agree::<f32>();
}

/// The documented bound on the difference of two sums of `n` terms (see `reduce.rs`).
fn sum_bound(n: usize, sum_abs: f64) -> f64 {
    2.0 * (BLOCK as f64 + n as f64 / BLOCK as f64) * f64::EPSILON / 2.0 * sum_abs
}

/// Within `bound`, or the same non-finite class (both NaN, or the same infinity).
fn close(a: f64, b: f64, bound: f64) -> bool {
    if a.is_finite() && b.is_finite() {
        (a - b).abs() <= bound
    } else {
        a.is_nan() && b.is_nan() || a == b
    }
}

fn valid_values<E: Element>(x: &PrimitiveArray<E::Arrow>) -> impl Iterator<Item = f64> + '_ {
    x.iter().flatten().map(Element::to_f64)
}

fn reductions_agree<E: Element>() {
    for x in cases::<E>(&[Data::Finite, Data::WithNan, Data::Special]) {
        let numbers: Vec<f64> = valid_values::<E>(&x).filter(|v| !v.is_nan()).collect();
        let n = x.len();
        let sum_abs: f64 = numbers.iter().map(|v| v.abs()).sum();
        let sum_squares: f64 = numbers.iter().map(|v| v * v).sum();
        let expected = moments(Isa::SCALAR, x.values(), x.nulls());
        let expected_range = min_max(Isa::SCALAR, x.values(), x.nulls());
        let expected_norm = l2_norm(Isa::SCALAR, x.values(), x.nulls());
        let y = array::<E>(n, 2, true, Data::Finite, n as u64);
        let expected_dot = dot(Isa::SCALAR, x.values(), x.nulls(), y.values(), y.nulls());
        let dot_abs: f64 = x
            .iter()
            .zip(y.iter())
            .filter_map(|(a, b)| Some((a?.to_f64() * b?.to_f64()).abs()))
            .sum();
        for isa in simd_isas() {
            let context = format!("{isa}, {n} values, {} null", x.null_count());
            let got = moments(isa, x.values(), x.nulls());
            assert_eq!(got.count, expected.count, "count, {context}");
            assert!(
                close(got.sum, expected.sum, sum_bound(n, sum_abs)),
                "sum {got:?} {expected:?}, {context}"
            );
            let mean_bound = sum_bound(n, sum_abs) / got.count.max(1) as f64;
            assert!(
                close(got.mean, expected.mean, mean_bound),
                "mean {got:?} {expected:?}, {context}"
            );
            assert!(
                close(got.m2, expected.m2, 2.0 * sum_bound(n, sum_squares)),
                "m2 {got:?} {expected:?}, {context}"
            );
            assert_eq!(
                min_max(isa, x.values(), x.nulls()),
                expected_range,
                "min_max, {context}"
            );
            let norm = l2_norm(isa, x.values(), x.nulls());
            let norm_bound = sum_bound(n, sum_squares) / expected_norm.max(f64::MIN_POSITIVE);
            assert!(
                close(norm, expected_norm, norm_bound),
                "l2 {norm} {expected_norm}, {context}"
            );
            let got_dot = dot(isa, x.values(), x.nulls(), y.values(), y.nulls());
            assert!(
                close(got_dot, expected_dot, sum_bound(n, dot_abs)),
                "dot {got_dot} {expected_dot}, {context}"
            );
        }
    }
}

#[test]
fn reductions_agree_within_the_stated_bounds_f64() {
    reductions_agree::<f64>();
}

#[test]
fn reductions_agree_within_the_stated_bounds_f32() {
    reductions_agree::<f32>();
}

/// The scalar path against plain loops written from the definitions.
fn scalar_matches_reference<E: Element>() {
    for x in cases::<E>(&[Data::WithNan]) {
        let context = format!("{} values, {} null", x.len(), x.null_count());
        let e = E::from_f64;
        let params = Standardize {
            fill: e(0.5),
            mean: e(2.0),
            scale: e(4.0),
            fill_nan: true,
        };
        let mut out = vec![E::ZERO; x.len()];
        fill_standardize(Isa::SCALAR, x.values(), x.nulls(), params, &mut out);
        for (i, (v, got)) in x.iter().zip(&out).enumerate() {
            let filled = v.filter(|v| !v.to_f64().is_nan()).unwrap_or(params.fill);
            let want = (filled.to_f64() - 2.0) / 4.0;
            assert_eq!(
                got.to_f64(),
                E::from_f64(want).to_f64(),
                "fill_standardize [{i}], {context}"
            );
        }

        let numbers: Vec<f64> = valid_values::<E>(&x).filter(|v| !v.is_nan()).collect();
        let m = moments(Isa::SCALAR, x.values(), x.nulls());
        assert_eq!(m.count as usize, numbers.len(), "{context}");
        if !numbers.is_empty() {
            let n = numbers.len() as f64;
            let mean = numbers.iter().sum::<f64>() / n;
            let m2: f64 = numbers.iter().map(|v| (v - mean) * (v - mean)).sum();
            let scale: f64 = numbers.iter().map(|v| v.abs()).sum::<f64>() / n;
            assert!(
                (m.mean - mean).abs() <= 1e-12 * scale,
                "mean {} {mean}, {context}",
                m.mean
            );
            assert!(
                (m.m2 - m2).abs() <= 1e-10 * m2.max(1e-300),
                "m2 {} {m2}, {context}",
                m.m2
            );
            let lo = numbers.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (got_lo, got_hi) = min_max(Isa::SCALAR, x.values(), x.nulls()).expect("values");
            assert_eq!((got_lo.to_f64(), got_hi.to_f64()), (lo, hi), "{context}");
        } else {
            assert_eq!(m, Moments::default());
            assert_eq!(
                min_max(Isa::SCALAR, x.values(), x.nulls()),
                None,
                "{context}"
            );
        }
    }
}

#[test]
fn the_scalar_path_matches_reference_loops() {
    scalar_matches_reference::<f64>();
    scalar_matches_reference::<f32>();
}

#[test]
fn moments_merge_like_one_pass_over_everything() {
    let x = array::<f64>(5000, 0, true, Data::Finite, 7);
    let whole = moments(Isa::detect(), x.values(), x.nulls());
    let (a, b) = (x.slice(0, 1234), x.slice(1234, 5000 - 1234));
    let merged = moments(Isa::detect(), a.values(), a.nulls()).merge(moments(
        Isa::detect(),
        b.values(),
        b.nulls(),
    ));
    assert_eq!(merged.count, whole.count);
    assert!(
        (merged.mean - whole.mean).abs() <= 1e-12 * whole.mean.abs().max(1.0),
        "{merged:?} {whole:?}"
    );
    assert!(
        (merged.m2 - whole.m2).abs() <= 1e-12 * whole.m2,
        "{merged:?} {whole:?}"
    );
    assert_eq!(Moments::default().merge(whole), whole);
    assert_eq!(whole.merge(Moments::default()), whole);
}

#[test]
fn special_values_follow_the_documented_semantics() {
    for isa in Isa::available() {
        let x = [f64::NAN, -3.0, 0.5, 9.0, f64::NEG_INFINITY];
        let mut out = [0.0; 5];
        clip(isa, &x, -1.0, 2.0, &mut out);
        assert!(out[0].is_nan(), "{isa}");
        assert_eq!(out[1..], [-1.0, 0.5, 2.0, -1.0], "{isa}");
        clip(isa, &x, 5.0, 2.0, &mut out);
        assert_eq!(out[1..], [2.0, 2.0, 2.0, 2.0], "lo > hi gives hi, {isa}");
        assert_eq!(
            min_max(isa, &x, None),
            Some((f64::NEG_INFINITY, 9.0)),
            "{isa}"
        );
        assert_eq!(min_max(isa, &[f64::NAN; 40], None), None, "{isa}");
        assert_eq!(min_max::<f64>(isa, &[], None), None, "{isa}");
        assert!(dot(isa, &x, None, &x, None).is_nan(), "{isa}");
        assert_eq!(l2_norm(isa, &[3.0_f32, 4.0], None), 5.0, "{isa}");
        let m = moments(isa, &[1.0, f64::NAN, 3.0], None);
        assert_eq!((m.count, m.sum, m.mean, m.m2), (2, 4.0, 2.0, 2.0), "{isa}");
    }
    // scikit-learn: MinMaxScaler().fit([[-3], [7]]) has scale_ 0.1 and min_ 0.3.
    assert_eq!(
        min_max_params(-3.0, 7.0, 0.0, 1.0),
        (0.1, 0.30000000000000004)
    );
    assert_eq!(
        min_max_params(2.0_f32, 2.0, 0.0, 1.0),
        (1.0, -2.0),
        "a constant column"
    );
    assert_eq!(
        min_max_params(1.0, 1.0 + 4.0 * f64::EPSILON, 0.0, 1.0),
        (1.0, -1.0),
        "a range under 10 epsilons counts as constant, as in scikit-learn"
    );
}
