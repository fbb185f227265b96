//! The x86-64 vectors: AVX2 (with FMA) and AVX-512F, for `f32` and `f64`, and the
//! `#[target_feature]` entry points the dispatcher calls.
//!
//! **The invariant every `unsafe` block here relies on**: these vector types are used only
//! inside [`avx2`] and [`avx512`] (the kernels' generic code is `#[inline(always)]` and is
//! compiled into them), and `Isa::dispatch` calls those only when the CPU was found to
//! support the instruction set (`Isa` values are made only by detection). The types are
//! `pub` only because `Element` names them; their fields are private, so no code outside
//! this crate can make one.

use std::arch::x86_64::*;

use crate::isa::WithVector;
use crate::vector::{Element, Vector};

/// Runs `work` with `E`'s AVX2 vector, in a function compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2<E: Element, W: WithVector<E>>(work: W) -> W::Output {
    work.run::<E::Avx2>()
}

/// Runs `work` with `E`'s AVX-512 vector, in a function compiled for AVX-512F.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512<E: Element, W: WithVector<E>>(work: W) -> W::Output {
    work.run::<E::Avx512>()
}

/// Lane-wise operations that map to one intrinsic each.
macro_rules! lanewise {
    ($($name:ident => $intrinsic:ident),* $(,)?) => {
        $(
            #[inline(always)]
            fn $name(self, other: Self) -> Self {
                // SAFETY: the CPU supports this vector's instruction set (module invariant).
                Self(unsafe { $intrinsic(self.0, other.0) })
            }
        )*
    };
}

/// Runs intrinsics under the module invariant.
macro_rules! simd {
    ($body:expr) => {
        // SAFETY: the CPU supports this vector's instruction set (module invariant); the
        // intrinsics here take and return registers only, no pointers.
        unsafe { $body }
    };
}

/// Folds the eight `f32` of an AVX register with `$lanes` (an SSE intrinsic): halves,
/// then pairs, then the last two with `$last`.
macro_rules! reduce_ps {
    ($v:expr, $lanes:ident, $last:expr) => {{
        let four = simd!($lanes(
            _mm256_castps256_ps128($v),
            _mm256_extractf128_ps::<1>($v)
        ));
        let two = simd!($lanes(four, _mm_movehl_ps(four, four)));
        let (a, b) = simd!((
            _mm_cvtss_f32(two),
            _mm_cvtss_f32(_mm_shuffle_ps::<1>(two, two))
        ));
        $last(a, b)
    }};
}

/// Four `f64` in an AVX register.
#[derive(Clone, Copy, Debug)]
pub struct F64x4(__m256d);

/// Eight `f32` in an AVX register.
#[derive(Clone, Copy, Debug)]
pub struct F32x8(__m256);

/// Eight `f64` in an AVX-512 register.
#[derive(Clone, Copy, Debug)]
pub struct F64x8(__m512d);

/// Sixteen `f32` in an AVX-512 register.
#[derive(Clone, Copy, Debug)]
pub struct F32x16(__m512);

impl Vector for F64x4 {
    type Elem = f64;
    type Mask = __m256d;
    const LANES: usize = 4;

    #[inline(always)]
    fn splat(value: f64) -> Self {
        Self(simd!(_mm256_set1_pd(value)))
    }
    #[inline(always)]
    fn load(src: &[f64]) -> Self {
        let src = &src[..Self::LANES];
        // SAFETY: `src` holds LANES elements, so the unaligned load stays in bounds; the CPU
        // supports AVX (module invariant).
        Self(unsafe { _mm256_loadu_pd(src.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, dst: &mut [f64]) {
        let dst = &mut dst[..Self::LANES];
        // SAFETY: `dst` holds LANES elements, so the unaligned store stays in bounds; the
        // CPU supports AVX (module invariant).
        unsafe { _mm256_storeu_pd(dst.as_mut_ptr(), self.0) }
    }
    lanewise! {
        add => _mm256_add_pd, sub => _mm256_sub_pd, mul => _mm256_mul_pd,
        div => _mm256_div_pd, min => _mm256_min_pd, max => _mm256_max_pd,
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Self(simd!(_mm256_fmadd_pd(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn mask_from_bits(bits: u64) -> __m256d {
        simd!({
            let lane_bits = _mm256_setr_epi64x(1, 2, 4, 8);
            let set = _mm256_and_si256(_mm256_set1_epi64x(bits as i64), lane_bits);
            _mm256_castsi256_pd(_mm256_cmpeq_epi64(set, lane_bits))
        })
    }
    #[inline(always)]
    fn mask_bits(mask: __m256d) -> u64 {
        simd!(_mm256_movemask_pd(mask)) as u64
    }
    #[inline(always)]
    fn mask_and(a: __m256d, b: __m256d) -> __m256d {
        simd!(_mm256_and_pd(a, b))
    }
    #[inline(always)]
    fn not_nan(self) -> __m256d {
        simd!(_mm256_cmp_pd::<_CMP_ORD_Q>(self.0, self.0))
    }
    #[inline(always)]
    fn eq(self, other: Self) -> __m256d {
        simd!(_mm256_cmp_pd::<_CMP_EQ_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn lt(self, other: Self) -> __m256d {
        simd!(_mm256_cmp_pd::<_CMP_LT_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn select(mask: __m256d, a: Self, b: Self) -> Self {
        Self(simd!(_mm256_blendv_pd(b.0, a.0, mask)))
    }
    #[inline(always)]
    fn reduce_add(self) -> f64 {
        let (low, high) = simd!((
            _mm256_castpd256_pd128(self.0),
            _mm256_extractf128_pd::<1>(self.0)
        ));
        let pair = simd!(_mm_add_pd(low, high));
        simd!(_mm_cvtsd_f64(pair) + _mm_cvtsd_f64(_mm_unpackhi_pd(pair, pair)))
    }
    #[inline(always)]
    fn reduce_min(self) -> f64 {
        let (low, high) = simd!((
            _mm256_castpd256_pd128(self.0),
            _mm256_extractf128_pd::<1>(self.0)
        ));
        let pair = simd!(_mm_min_pd(low, high));
        simd!(<f64 as Vector>::min(
            _mm_cvtsd_f64(pair),
            _mm_cvtsd_f64(_mm_unpackhi_pd(pair, pair))
        ))
    }
    #[inline(always)]
    fn reduce_max(self) -> f64 {
        let (low, high) = simd!((
            _mm256_castpd256_pd128(self.0),
            _mm256_extractf128_pd::<1>(self.0)
        ));
        let pair = simd!(_mm_max_pd(low, high));
        simd!(<f64 as Vector>::max(
            _mm_cvtsd_f64(pair),
            _mm_cvtsd_f64(_mm_unpackhi_pd(pair, pair))
        ))
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        simd!({
            let bits = _mm256_castpd_si256(self.0);
            let shifted = _mm256_add_epi64(bits, _mm256_set1_epi64x(F64_SHIFT));
            let biased = _mm256_srli_epi64::<52>(shifted);
            let exponent = _mm256_and_si256(shifted, _mm256_set1_epi64x(F64_EXPONENT));
            let mantissa = _mm256_sub_epi64(
                bits,
                _mm256_sub_epi64(exponent, _mm256_set1_epi64x(F64_ONE)),
            );
            // `biased` < 2^52: as the mantissa of 2^52 it converts exactly.
            let magic = _mm256_set1_pd(F64_TWO_52);
            let biased = _mm256_sub_pd(
                _mm256_castsi256_pd(_mm256_or_si256(biased, _mm256_castpd_si256(magic))),
                magic,
            );
            let k = _mm256_sub_pd(biased, _mm256_set1_pd(1023.0));
            (Self(_mm256_castsi256_pd(mantissa)), Self(k))
        })
    }
}

impl Vector for F32x8 {
    type Elem = f32;
    type Mask = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    fn splat(value: f32) -> Self {
        Self(simd!(_mm256_set1_ps(value)))
    }
    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        let src = &src[..Self::LANES];
        // SAFETY: `src` holds LANES elements, so the unaligned load stays in bounds; the CPU
        // supports AVX (module invariant).
        Self(unsafe { _mm256_loadu_ps(src.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        let dst = &mut dst[..Self::LANES];
        // SAFETY: `dst` holds LANES elements, so the unaligned store stays in bounds; the
        // CPU supports AVX (module invariant).
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), self.0) }
    }
    lanewise! {
        add => _mm256_add_ps, sub => _mm256_sub_ps, mul => _mm256_mul_ps,
        div => _mm256_div_ps, min => _mm256_min_ps, max => _mm256_max_ps,
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Self(simd!(_mm256_fmadd_ps(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn mask_from_bits(bits: u64) -> __m256 {
        simd!({
            let lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let set = _mm256_and_si256(_mm256_set1_epi32(bits as i32), lane_bits);
            _mm256_castsi256_ps(_mm256_cmpeq_epi32(set, lane_bits))
        })
    }
    #[inline(always)]
    fn mask_bits(mask: __m256) -> u64 {
        simd!(_mm256_movemask_ps(mask)) as u64
    }
    #[inline(always)]
    fn mask_and(a: __m256, b: __m256) -> __m256 {
        simd!(_mm256_and_ps(a, b))
    }
    #[inline(always)]
    fn not_nan(self) -> __m256 {
        simd!(_mm256_cmp_ps::<_CMP_ORD_Q>(self.0, self.0))
    }
    #[inline(always)]
    fn eq(self, other: Self) -> __m256 {
        simd!(_mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn lt(self, other: Self) -> __m256 {
        simd!(_mm256_cmp_ps::<_CMP_LT_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn select(mask: __m256, a: Self, b: Self) -> Self {
        Self(simd!(_mm256_blendv_ps(b.0, a.0, mask)))
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        reduce_ps!(self.0, _mm_add_ps, |a: f32, b: f32| a + b)
    }
    #[inline(always)]
    fn reduce_min(self) -> f32 {
        reduce_ps!(self.0, _mm_min_ps, <f32 as Vector>::min)
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        reduce_ps!(self.0, _mm_max_ps, <f32 as Vector>::max)
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        simd!({
            let bits = _mm256_castps_si256(self.0);
            let shifted = _mm256_add_epi32(bits, _mm256_set1_epi32(F32_SHIFT));
            let biased = _mm256_srli_epi32::<23>(shifted);
            let exponent = _mm256_and_si256(shifted, _mm256_set1_epi32(F32_EXPONENT));
            let mantissa =
                _mm256_sub_epi32(bits, _mm256_sub_epi32(exponent, _mm256_set1_epi32(F32_ONE)));
            let k = _mm256_sub_ps(_mm256_cvtepi32_ps(biased), _mm256_set1_ps(127.0));
            (Self(_mm256_castsi256_ps(mantissa)), Self(k))
        })
    }
}

impl Vector for F64x8 {
    type Elem = f64;
    type Mask = __mmask8;
    const LANES: usize = 8;

    #[inline(always)]
    fn splat(value: f64) -> Self {
        Self(simd!(_mm512_set1_pd(value)))
    }
    #[inline(always)]
    fn load(src: &[f64]) -> Self {
        let src = &src[..Self::LANES];
        // SAFETY: `src` holds LANES elements, so the unaligned load stays in bounds; the CPU
        // supports AVX-512F (module invariant).
        Self(unsafe { _mm512_loadu_pd(src.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, dst: &mut [f64]) {
        let dst = &mut dst[..Self::LANES];
        // SAFETY: `dst` holds LANES elements, so the unaligned store stays in bounds; the
        // CPU supports AVX-512F (module invariant).
        unsafe { _mm512_storeu_pd(dst.as_mut_ptr(), self.0) }
    }
    lanewise! {
        add => _mm512_add_pd, sub => _mm512_sub_pd, mul => _mm512_mul_pd,
        div => _mm512_div_pd, min => _mm512_min_pd, max => _mm512_max_pd,
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Self(simd!(_mm512_fmadd_pd(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn mask_from_bits(bits: u64) -> __mmask8 {
        bits as __mmask8
    }
    #[inline(always)]
    fn mask_bits(mask: __mmask8) -> u64 {
        u64::from(mask)
    }
    #[inline(always)]
    fn mask_and(a: __mmask8, b: __mmask8) -> __mmask8 {
        a & b
    }
    #[inline(always)]
    fn not_nan(self) -> __mmask8 {
        simd!(_mm512_cmp_pd_mask::<_CMP_ORD_Q>(self.0, self.0))
    }
    #[inline(always)]
    fn eq(self, other: Self) -> __mmask8 {
        simd!(_mm512_cmp_pd_mask::<_CMP_EQ_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn lt(self, other: Self) -> __mmask8 {
        simd!(_mm512_cmp_pd_mask::<_CMP_LT_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn select(mask: __mmask8, a: Self, b: Self) -> Self {
        Self(simd!(_mm512_mask_blend_pd(mask, b.0, a.0)))
    }
    #[inline(always)]
    fn reduce_add(self) -> f64 {
        let (low, high) = simd!((
            _mm512_castpd512_pd256(self.0),
            _mm512_extractf64x4_pd::<1>(self.0)
        ));
        F64x4(simd!(_mm256_add_pd(low, high))).reduce_add()
    }
    #[inline(always)]
    fn reduce_min(self) -> f64 {
        let (low, high) = simd!((
            _mm512_castpd512_pd256(self.0),
            _mm512_extractf64x4_pd::<1>(self.0)
        ));
        F64x4(simd!(_mm256_min_pd(low, high))).reduce_min()
    }
    #[inline(always)]
    fn reduce_max(self) -> f64 {
        let (low, high) = simd!((
            _mm512_castpd512_pd256(self.0),
            _mm512_extractf64x4_pd::<1>(self.0)
        ));
        F64x4(simd!(_mm256_max_pd(low, high))).reduce_max()
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        simd!({
            let bits = _mm512_castpd_si512(self.0);
            let shifted = _mm512_add_epi64(bits, _mm512_set1_epi64(F64_SHIFT));
            let biased = _mm512_srli_epi64::<52>(shifted);
            let exponent = _mm512_and_si512(shifted, _mm512_set1_epi64(F64_EXPONENT));
            let mantissa =
                _mm512_sub_epi64(bits, _mm512_sub_epi64(exponent, _mm512_set1_epi64(F64_ONE)));
            let magic = _mm512_set1_pd(F64_TWO_52);
            let biased = _mm512_sub_pd(
                _mm512_castsi512_pd(_mm512_or_si512(biased, _mm512_castpd_si512(magic))),
                magic,
            );
            let k = _mm512_sub_pd(biased, _mm512_set1_pd(1023.0));
            (Self(_mm512_castsi512_pd(mantissa)), Self(k))
        })
    }
}

impl Vector for F32x16 {
    type Elem = f32;
    type Mask = __mmask16;
    const LANES: usize = 16;

    #[inline(always)]
    fn splat(value: f32) -> Self {
        Self(simd!(_mm512_set1_ps(value)))
    }
    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        let src = &src[..Self::LANES];
        // SAFETY: `src` holds LANES elements, so the unaligned load stays in bounds; the CPU
        // supports AVX-512F (module invariant).
        Self(unsafe { _mm512_loadu_ps(src.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        let dst = &mut dst[..Self::LANES];
        // SAFETY: `dst` holds LANES elements, so the unaligned store stays in bounds; the
        // CPU supports AVX-512F (module invariant).
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), self.0) }
    }
    lanewise! {
        add => _mm512_add_ps, sub => _mm512_sub_ps, mul => _mm512_mul_ps,
        div => _mm512_div_ps, min => _mm512_min_ps, max => _mm512_max_ps,
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Self(simd!(_mm512_fmadd_ps(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn mask_from_bits(bits: u64) -> __mmask16 {
        bits as __mmask16
    }
    #[inline(always)]
    fn mask_bits(mask: __mmask16) -> u64 {
        u64::from(mask)
    }
    #[inline(always)]
    fn mask_and(a: __mmask16, b: __mmask16) -> __mmask16 {
        a & b
    }
    #[inline(always)]
    fn not_nan(self) -> __mmask16 {
        simd!(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(self.0, self.0))
    }
    #[inline(always)]
    fn eq(self, other: Self) -> __mmask16 {
        simd!(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn lt(self, other: Self) -> __mmask16 {
        simd!(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn select(mask: __mmask16, a: Self, b: Self) -> Self {
        Self(simd!(_mm512_mask_blend_ps(mask, b.0, a.0)))
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        let (low, high) = simd!(split_m512(self.0));
        F32x8(simd!(_mm256_add_ps(low, high))).reduce_add()
    }
    #[inline(always)]
    fn reduce_min(self) -> f32 {
        let (low, high) = simd!(split_m512(self.0));
        F32x8(simd!(_mm256_min_ps(low, high))).reduce_min()
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        let (low, high) = simd!(split_m512(self.0));
        F32x8(simd!(_mm256_max_ps(low, high))).reduce_max()
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        simd!({
            let bits = _mm512_castps_si512(self.0);
            let shifted = _mm512_add_epi32(bits, _mm512_set1_epi32(F32_SHIFT));
            let biased = _mm512_srli_epi32::<23>(shifted);
            let exponent = _mm512_and_si512(shifted, _mm512_set1_epi32(F32_EXPONENT));
            let mantissa =
                _mm512_sub_epi32(bits, _mm512_sub_epi32(exponent, _mm512_set1_epi32(F32_ONE)));
            let k = _mm512_sub_ps(_mm512_cvtepi32_ps(biased), _mm512_set1_ps(127.0));
            (Self(_mm512_castsi512_ps(mantissa)), Self(k))
        })
    }
}

// The constants of `split_exponent`, as in `vector::scalar_vector!`: the bits of 1.0, the
// exponent field, and 1.0 minus the bits of √2/2 (the mantissa range's lower end).
const F64_ONE: i64 = 0x3ff0_0000_0000_0000;
const F64_EXPONENT: i64 = 0xfff0_0000_0000_0000_u64 as i64;
const F64_SHIFT: i64 = F64_ONE - 0x3fe6_a09e_667f_3bcd;
const F64_TWO_52: f64 = 4_503_599_627_370_496.0;
const F32_ONE: i32 = 0x3f80_0000;
const F32_EXPONENT: i32 = 0xff80_0000_u32 as i32;
const F32_SHIFT: i32 = F32_ONE - 0x3f35_04f3;

/// The low and high halves of an AVX-512 register.
#[inline]
#[target_feature(enable = "avx512f")]
fn split_m512(v: __m512) -> (__m256, __m256) {
    let low = _mm512_castps512_ps256(v);
    let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponent_constants_match_the_scalar_ones() {
        assert_eq!(F64_ONE as u64, 1.0_f64.to_bits());
        assert_eq!(F32_ONE as u32, 1.0_f32.to_bits());
        assert_eq!(F64_TWO_52, 2f64.powi(52));
    }
}
