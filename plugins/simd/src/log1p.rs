//! `ln(1 + x)` for vectors, one algorithm for every instruction set: musl's `log1p` and
//! `log1pf` (from FreeBSD's msun, after fdlibm), written with the [`Vector`] operations and
//! without fused multiply-adds, so that every path rounds identically.
//!
//! `1 + x = 2^k · (1 + f)` with `1 + f ∈ [√2/2, √2)`, the rounding error of `1 + x` kept as a
//! correction `c`, and `ln(1 + f) = f - f²/2 + s·(f²/2 + R(s²))` with `s = f / (2 + f)` and a
//! minimax polynomial `R`; near zero (`1 + x` already in range) `f = x` exactly. Error
//! against the correctly rounded result: below 1 ulp in musl's analysis; the tests measure
//! at most 1 ulp against Rust's `ln_1p` (f64) and against `ln_1p` in f64 rounded to f32
//! (f32) over millions of inputs.

use crate::vector::Vector;

/// `ln(1 + x)` lane-wise for `f64`.
#[inline(always)]
#[expect(clippy::excessive_precision, reason = "musl's constants, verbatim")]
pub(crate) fn log1p_f64<V: Vector<Elem = f64>>(x: V) -> V {
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const LG: [f64; 7] = [
        6.666_666_666_666_735_130e-1,
        3.999_999_999_940_941_908e-1,
        2.857_142_874_366_239_149e-1,
        2.222_219_843_214_978_396e-1,
        1.818_357_216_161_805_012e-1,
        1.531_383_769_920_937_332e-1,
        1.479_819_860_511_658_591e-1,
    ];
    let (f, k, c) = reduce(
        x,
        [-0.292_893_290_519_714_36, 0.414_213_538_169_860_84],
        54.0,
    );
    let s = f.div(V::splat(2.0).add(f));
    let z = s.mul(s);
    let w = z.mul(z);
    let lg = |i: usize| V::splat(LG[i]);
    let t1 = w.mul(lg(1).add(w.mul(lg(3).add(w.mul(lg(5))))));
    let t2 = z.mul(lg(0).add(w.mul(lg(2).add(w.mul(lg(4).add(w.mul(lg(6))))))));
    finish(x, f, k, c, s, t2.add(t1), [LN2_HI, LN2_LO])
}

/// `ln(1 + x)` lane-wise for `f32`.
#[inline(always)]
#[expect(clippy::excessive_precision, reason = "musl's constants, verbatim")]
pub(crate) fn log1p_f32<V: Vector<Elem = f32>>(x: V) -> V {
    const LN2_HI: f32 = 6.931_381_225_6e-1;
    const LN2_LO: f32 = 9.058_000_614_5e-6;
    const LG: [f32; 4] = [
        0.666_666_626_93,
        0.400_009_721_52,
        0.284_987_866_88,
        0.242_790_788_41,
    ];
    let (f, k, c) = reduce(x, [-0.292_893_23, 0.414_213_54], 25.0);
    let s = f.div(V::splat(2.0).add(f));
    let z = s.mul(s);
    let w = z.mul(z);
    let t1 = w.mul(V::splat(LG[1]).add(w.mul(V::splat(LG[3]))));
    let t2 = z.mul(V::splat(LG[0]).add(w.mul(V::splat(LG[2]))));
    finish(x, f, k, c, s, t2.add(t1), [LN2_HI, LN2_LO])
}

/// Splits `1 + x` into `(f, k, c)`: `1 + x ≈ 2^k · (1 + f)` and `c` the rounding error of
/// `1 + x` divided by `1 + x`. Inside `near` (where `1 + x ∈ [√2/2, √2)`) `f = x`, `k = 0`,
/// `c = 0`, exactly; the correction is dropped from exponent `no_correction` on.
#[inline(always)]
fn reduce<V: Vector>(x: V, near: [V::Elem; 2], no_correction: f64) -> (V, V, V) {
    let one = V::splat(from_f64::<V>(1.0));
    let zero = V::splat(from_f64::<V>(0.0));
    let u = one.add(x);
    let (m, k) = u.split_exponent();
    // musl: k >= 2 ? 1 - (u - x) : x - (u - 1), each exact in its range.
    let k_at_least_2 = V::splat(from_f64::<V>(1.5)).lt(k);
    let c = V::select(k_at_least_2, one.sub(u.sub(x)), x.sub(u.sub(one))).div(u);
    let c = V::select(k.lt(V::splat(from_f64::<V>(no_correction))), c, zero);
    let is_near = V::mask_and(V::splat(near[0]).lt(x), x.lt(V::splat(near[1])));
    (
        V::select(is_near, x, m.sub(one)),
        V::select(is_near, zero, k),
        V::select(is_near, zero, c),
    )
}

/// `k·ln2_hi + (f - (hfsq - (s·(hfsq + R) + (k·ln2_lo + c))))`, in musl's order, then the
/// special inputs: NaN and `+∞` stay, `±0` keeps its sign, `-1` gives `-∞`, `< -1` NaN.
#[inline(always)]
fn finish<V: Vector>(x: V, f: V, k: V, c: V, s: V, r: V, ln2: [V::Elem; 2]) -> V {
    let hfsq = V::splat(from_f64::<V>(0.5)).mul(f).mul(f);
    let y = s
        .mul(hfsq.add(r))
        .add(k.mul(V::splat(ln2[1])).add(c))
        .sub(hfsq)
        .add(f)
        .add(k.mul(V::splat(ln2[0])));
    let infinity = V::splat(from_f64::<V>(f64::INFINITY));
    let minus_one = V::splat(from_f64::<V>(-1.0));
    let y = V::select(x.eq(V::splat(from_f64::<V>(0.0))), x, y);
    let y = V::select(x.eq(infinity), x, y);
    let y = V::select(
        x.eq(minus_one),
        V::splat(from_f64::<V>(f64::NEG_INFINITY)),
        y,
    );
    let y = V::select(x.lt(minus_one), V::splat(from_f64::<V>(f64::NAN)), y);
    V::select(x.not_nan(), y, x)
}

#[inline(always)]
fn from_f64<V: Vector>(value: f64) -> V::Elem {
    crate::vector::Element::from_f64(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance in units in the last place between two finite floats of one sign.
    fn ulps_f64(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    fn ulps_f32(a: f32, b: f32) -> u64 {
        u64::from((a.to_bits() as i32 - b.to_bits() as i32).unsigned_abs())
    }

    /// Inputs spread over every binade from 1e-300 to 1e300, both signs, down to -1.
    fn inputs(n: usize) -> impl Iterator<Item = f64> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..n).map(move |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            let magnitude = 10f64.powf(unit * 600.0 - 300.0);
            if state & 1 == 0 {
                magnitude
            } else {
                -magnitude.min(1.0)
            }
        })
    }

    #[test]
    fn f64_is_within_one_ulp_of_std() {
        let mut worst = 0;
        for x in inputs(2_000_000) {
            let (ours, std) = (log1p_f64(x), x.ln_1p());
            let ulps = ulps_f64(ours, std);
            assert!(
                ulps <= 1,
                "log1p({x:e}) = {ours:e}, std {std:e}: {ulps} ulps"
            );
            worst = worst.max(ulps);
        }
        assert!(worst <= 1);
    }

    #[test]
    fn f32_is_within_one_ulp_of_the_rounded_f64_result() {
        for x in inputs(2_000_000)
            .map(|x| x as f32)
            .filter(|x| x.is_finite() && *x != 0.0)
        {
            let (ours, reference) = (log1p_f32(x), f64::from(x).ln_1p() as f32);
            let ulps = ulps_f32(ours, reference);
            assert!(
                ulps <= 1,
                "log1p({x:e}) = {ours:e}, reference {reference:e}: {ulps} ulps"
            );
        }
    }

    #[test]
    fn special_values() {
        for (x, expected) in [
            (0.0, 0.0),
            (-0.0, -0.0),
            (-1.0, f64::NEG_INFINITY),
            (f64::INFINITY, f64::INFINITY),
            (1e-310, 1e-310),
            (-1e-310, -1e-310),
        ] {
            let got = log1p_f64(x);
            assert_eq!(got.to_bits(), expected.to_bits(), "log1p({x:e}) = {got:e}");
            let got = log1p_f32(x as f32);
            assert_eq!(
                got.to_bits(),
                (expected as f32).to_bits(),
                "f32 log1p({x:e}) = {got:e}"
            );
        }
        for x in [-1.5, -f64::INFINITY, f64::NAN] {
            assert!(log1p_f64(x).is_nan() && log1p_f32(x as f32).is_nan(), "{x}");
        }
    }
}
