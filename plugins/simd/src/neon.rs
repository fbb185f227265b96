//! The aarch64 vectors: NEON (Advanced SIMD), for `f32` and `f64`, and the
//! `#[target_feature]` entry point the dispatcher calls.
//!
//! **The invariant every `unsafe` block here relies on**: these vector types are used only
//! inside [`neon`] (the kernels' generic code is `#[inline(always)]` and is compiled into
//! it), and `Isa::dispatch` calls it only when the CPU was found to support NEON (`Isa`
//! values are made only by detection; every aarch64 Linux CPU has it). The types are `pub`
//! only because `Element` names them; their fields are private, so no code outside this
//! crate can make one.
//!
//! NEON's own `vminq`/`vmaxq` propagate NaN; the kernels' `min(a, b)` is
//! `if a < b { a } else { b }` on every instruction set, so it is a compare and a select
//! here, as in the scalar code.

use std::arch::aarch64::*;

use crate::isa::WithVector;
use crate::vector::{Element, Vector};

/// Runs `work` with `E`'s NEON vector, in a function compiled for NEON.
///
/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn neon<E: Element, W: WithVector<E>>(work: W) -> W::Output {
    work.run::<E::Neon>()
}

/// Runs intrinsics under the module invariant.
macro_rules! simd {
    ($body:expr) => {
        // SAFETY: the CPU supports NEON (module invariant); the intrinsics here take and
        // return registers only, no pointers.
        unsafe { $body }
    };
}

/// Lane-wise operations that map to one intrinsic each.
macro_rules! lanewise {
    ($($name:ident => $intrinsic:ident),* $(,)?) => {
        $(
            #[inline(always)]
            fn $name(self, other: Self) -> Self {
                Self(simd!($intrinsic(self.0, other.0)))
            }
        )*
    };
}

/// Two `f64` in a NEON register.
#[derive(Clone, Copy, Debug)]
pub struct F64x2(float64x2_t);

/// Four `f32` in a NEON register.
#[derive(Clone, Copy, Debug)]
pub struct F32x4(float32x4_t);

impl Vector for F64x2 {
    type Elem = f64;
    type Mask = uint64x2_t;
    const LANES: usize = 2;

    #[inline(always)]
    fn splat(value: f64) -> Self {
        Self(simd!(vdupq_n_f64(value)))
    }
    #[inline(always)]
    fn load(src: &[f64]) -> Self {
        let src = &src[..Self::LANES];
        // SAFETY: `src` holds LANES elements, so the load stays in bounds (NEON loads need
        // no alignment); the CPU supports NEON (module invariant).
        Self(unsafe { vld1q_f64(src.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, dst: &mut [f64]) {
        let dst = &mut dst[..Self::LANES];
        // SAFETY: `dst` holds LANES elements, so the store stays in bounds; the CPU supports
        // NEON (module invariant).
        unsafe { vst1q_f64(dst.as_mut_ptr(), self.0) }
    }
    lanewise! { add => vaddq_f64, sub => vsubq_f64, mul => vmulq_f64, div => vdivq_f64 }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Self(simd!(vfmaq_f64(c.0, self.0, b.0)))
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        Self(simd!(vbslq_f64(
            vcltq_f64(self.0, other.0),
            self.0,
            other.0
        )))
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        Self(simd!(vbslq_f64(
            vcgtq_f64(self.0, other.0),
            self.0,
            other.0
        )))
    }
    #[inline(always)]
    fn mask_from_bits(bits: u64) -> uint64x2_t {
        simd!({
            let lane_bits = vcombine_u64(vcreate_u64(1), vcreate_u64(2));
            vceqq_u64(vandq_u64(vdupq_n_u64(bits), lane_bits), lane_bits)
        })
    }
    #[inline(always)]
    fn mask_bits(mask: uint64x2_t) -> u64 {
        simd!((vgetq_lane_u64::<0>(mask) & 1) | ((vgetq_lane_u64::<1>(mask) & 1) << 1))
    }
    #[inline(always)]
    fn mask_and(a: uint64x2_t, b: uint64x2_t) -> uint64x2_t {
        simd!(vandq_u64(a, b))
    }
    #[inline(always)]
    fn not_nan(self) -> uint64x2_t {
        simd!(vceqq_f64(self.0, self.0))
    }
    #[inline(always)]
    fn eq(self, other: Self) -> uint64x2_t {
        simd!(vceqq_f64(self.0, other.0))
    }
    #[inline(always)]
    fn lt(self, other: Self) -> uint64x2_t {
        simd!(vcltq_f64(self.0, other.0))
    }
    #[inline(always)]
    fn select(mask: uint64x2_t, a: Self, b: Self) -> Self {
        Self(simd!(vbslq_f64(mask, a.0, b.0)))
    }
    #[inline(always)]
    fn reduce_add(self) -> f64 {
        simd!(vgetq_lane_f64::<0>(self.0) + vgetq_lane_f64::<1>(self.0))
    }
    #[inline(always)]
    fn reduce_min(self) -> f64 {
        simd!(<f64 as Vector>::min(
            vgetq_lane_f64::<0>(self.0),
            vgetq_lane_f64::<1>(self.0)
        ))
    }
    #[inline(always)]
    fn reduce_max(self) -> f64 {
        simd!(<f64 as Vector>::max(
            vgetq_lane_f64::<0>(self.0),
            vgetq_lane_f64::<1>(self.0)
        ))
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        // The scalar algorithm (see `vector.rs`) on both lanes.
        simd!({
            let bits = vreinterpretq_u64_f64(self.0);
            let shifted = vaddq_u64(bits, vdupq_n_u64(F64_SHIFT));
            let biased = vshrq_n_u64::<52>(shifted);
            let exponent = vandq_u64(shifted, vdupq_n_u64(F64_EXPONENT));
            let mantissa = vsubq_u64(bits, vsubq_u64(exponent, vdupq_n_u64(F64_ONE)));
            // `biased` < 2^12 converts exactly.
            let k = vsubq_f64(vcvtq_f64_u64(biased), vdupq_n_f64(1023.0));
            (Self(vreinterpretq_f64_u64(mantissa)), Self(k))
        })
    }
}

impl Vector for F32x4 {
    type Elem = f32;
    type Mask = uint32x4_t;
    const LANES: usize = 4;

    #[inline(always)]
    fn splat(value: f32) -> Self {
        Self(simd!(vdupq_n_f32(value)))
    }
    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        let src = &src[..Self::LANES];
        // SAFETY: `src` holds LANES elements, so the load stays in bounds (NEON loads need
        // no alignment); the CPU supports NEON (module invariant).
        Self(unsafe { vld1q_f32(src.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        let dst = &mut dst[..Self::LANES];
        // SAFETY: `dst` holds LANES elements, so the store stays in bounds; the CPU supports
        // NEON (module invariant).
        unsafe { vst1q_f32(dst.as_mut_ptr(), self.0) }
    }
    lanewise! { add => vaddq_f32, sub => vsubq_f32, mul => vmulq_f32, div => vdivq_f32 }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Self(simd!(vfmaq_f32(c.0, self.0, b.0)))
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        Self(simd!(vbslq_f32(
            vcltq_f32(self.0, other.0),
            self.0,
            other.0
        )))
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        Self(simd!(vbslq_f32(
            vcgtq_f32(self.0, other.0),
            self.0,
            other.0
        )))
    }
    #[inline(always)]
    fn mask_from_bits(bits: u64) -> uint32x4_t {
        simd!({
            let lane_bits = vcombine_u32(vcreate_u32(1 | (2 << 32)), vcreate_u32(4 | (8 << 32)));
            vceqq_u32(vandq_u32(vdupq_n_u32(bits as u32), lane_bits), lane_bits)
        })
    }
    #[inline(always)]
    fn mask_bits(mask: uint32x4_t) -> u64 {
        simd!({
            let lanes = vandq_u32(
                mask,
                vcombine_u32(vcreate_u32(1 | (2 << 32)), vcreate_u32(4 | (8 << 32))),
            );
            u64::from(vaddvq_u32(lanes))
        })
    }
    #[inline(always)]
    fn mask_and(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        simd!(vandq_u32(a, b))
    }
    #[inline(always)]
    fn not_nan(self) -> uint32x4_t {
        simd!(vceqq_f32(self.0, self.0))
    }
    #[inline(always)]
    fn eq(self, other: Self) -> uint32x4_t {
        simd!(vceqq_f32(self.0, other.0))
    }
    #[inline(always)]
    fn lt(self, other: Self) -> uint32x4_t {
        simd!(vcltq_f32(self.0, other.0))
    }
    #[inline(always)]
    fn select(mask: uint32x4_t, a: Self, b: Self) -> Self {
        Self(simd!(vbslq_f32(mask, a.0, b.0)))
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        // Halves first, then the last pair.
        simd!({
            let pair = vadd_f32(vget_low_f32(self.0), vget_high_f32(self.0));
            vget_lane_f32::<0>(pair) + vget_lane_f32::<1>(pair)
        })
    }
    #[inline(always)]
    fn reduce_min(self) -> f32 {
        simd!({
            let (low, high) = (vget_low_f32(self.0), vget_high_f32(self.0));
            let pair = vbsl_f32(vclt_f32(low, high), low, high);
            <f32 as Vector>::min(vget_lane_f32::<0>(pair), vget_lane_f32::<1>(pair))
        })
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        simd!({
            let (low, high) = (vget_low_f32(self.0), vget_high_f32(self.0));
            let pair = vbsl_f32(vcgt_f32(low, high), low, high);
            <f32 as Vector>::max(vget_lane_f32::<0>(pair), vget_lane_f32::<1>(pair))
        })
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        // The scalar algorithm (see `vector.rs`) on every lane.
        simd!({
            let bits = vreinterpretq_u32_f32(self.0);
            let shifted = vaddq_u32(bits, vdupq_n_u32(F32_SHIFT));
            let biased = vshrq_n_u32::<23>(shifted);
            let exponent = vandq_u32(shifted, vdupq_n_u32(F32_EXPONENT));
            let mantissa = vsubq_u32(bits, vsubq_u32(exponent, vdupq_n_u32(F32_ONE)));
            // `biased` < 2^9 converts exactly.
            let k = vsubq_f32(vcvtq_f32_u32(biased), vdupq_n_f32(127.0));
            (Self(vreinterpretq_f32_u32(mantissa)), Self(k))
        })
    }
}

const F64_ONE: u64 = 0x3ff0_0000_0000_0000;
const F64_EXPONENT: u64 = 0xfff0_0000_0000_0000;
const F64_SHIFT: u64 = F64_ONE - 0x3fe6_a09e_667f_3bcd;
const F32_ONE: u32 = 0x3f80_0000;
const F32_EXPONENT: u32 = 0xff80_0000;
const F32_SHIFT: u32 = F32_ONE - 0x3f35_04f3;
