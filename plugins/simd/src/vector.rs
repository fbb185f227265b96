//! The vector abstraction every kernel is written against, once.
//!
//! A [`Vector`] is `LANES` floats of one [`Element`] type on one instruction set. The
//! kernels in `ops` are generic over it and are instantiated for each instruction set's
//! vector types (`x86`, `neon`) and for the scalar types themselves: `f32` and `f64` are vectors of
//! one lane. The scalar fallback is therefore the same algorithm, operation for
//! operation, which is what makes the element-wise kernels bit-identical on every path.
//!
//! The operations have one meaning on every instruction set, including the edge cases:
//! `min(a, b)` is `if a < b { a } else { b }` (so a NaN in `a` yields `b`), `max` likewise,
//! and `mul_add` may or may not round once — kernels that promise bit-identical results
//! never call it.

use std::fmt::Debug;

use mlpipe_plugin_api::arrow::datatypes::{
    ArrowNativeType, ArrowPrimitiveType, Float32Type, Float64Type,
};

/// `LANES` floats of type `Elem` in a register of some instruction set.
///
/// Not part of the public API: the trait is public only so that [`Element`] may extend it.
pub trait Vector: Copy {
    /// The element type.
    type Elem: Element;
    /// A per-lane condition (a comparison result).
    type Mask: Copy;
    /// The number of elements.
    const LANES: usize;

    /// Every lane set to `value`.
    fn splat(value: Self::Elem) -> Self;
    /// Loads the first `LANES` elements of `src` (panics when it is shorter).
    fn load(src: &[Self::Elem]) -> Self;
    /// Stores into the first `LANES` elements of `dst` (panics when it is shorter).
    fn store(self, dst: &mut [Self::Elem]);

    /// Lane-wise `self + other`.
    fn add(self, other: Self) -> Self;
    /// Lane-wise `self - other`.
    fn sub(self, other: Self) -> Self;
    /// Lane-wise `self * other`.
    fn mul(self, other: Self) -> Self;
    /// Lane-wise `self / other`.
    fn div(self, other: Self) -> Self;
    /// Lane-wise `self * b + c`, rounded once or twice depending on the instruction set:
    /// only for reductions, whose results are not promised bit-identical.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// Lane-wise `if self < other { self } else { other }`.
    fn min(self, other: Self) -> Self;
    /// Lane-wise `if self > other { self } else { other }`.
    fn max(self, other: Self) -> Self;

    /// Lane `i` is true when bit `i` of `bits` is set (higher bits are ignored).
    fn mask_from_bits(bits: u64) -> Self::Mask;
    /// Bit `i` is set when lane `i` is true.
    fn mask_bits(mask: Self::Mask) -> u64;
    /// Lane-wise `a && b`.
    fn mask_and(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    /// Lanes that are not NaN.
    fn not_nan(self) -> Self::Mask;
    /// Lane-wise `self == other`.
    fn eq(self, other: Self) -> Self::Mask;
    /// Lane-wise `self < other`.
    fn lt(self, other: Self) -> Self::Mask;
    /// Lane-wise `if mask { a } else { b }`.
    fn select(mask: Self::Mask, a: Self, b: Self) -> Self;

    /// The sum of the lanes, added in a fixed order (halves first).
    fn reduce_add(self) -> Self::Elem;
    /// The lanes folded with [`min`](Vector::min), halves first.
    fn reduce_min(self) -> Self::Elem;
    /// The lanes folded with [`max`](Vector::max), halves first.
    fn reduce_max(self) -> Self::Elem;

    /// For positive, finite, normal lanes: `(m, k)` with `self = m · 2^k` exactly,
    /// `m ∈ [√2/2, √2)` and `k` an integer (as a float). Other lanes give unspecified
    /// values that callers replace.
    fn split_exponent(self) -> (Self, Self);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The element types the kernels take: `f32` and `f64`.
pub trait Element:
    Vector<Elem = Self, Mask = bool>
    + ArrowNativeType
    + sealed::Sealed
    + PartialOrd
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The Arrow type of arrays of this element.
    type Arrow: ArrowPrimitiveType<Native = Self>;
    /// The AVX2 vector of this element.
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    type Avx2: Vector<Elem = Self>;
    /// The AVX-512 vector of this element.
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    type Avx512: Vector<Elem = Self>;
    /// The NEON vector of this element.
    #[cfg(target_arch = "aarch64")]
    #[doc(hidden)]
    type Neon: Vector<Elem = Self>;

    /// `0`.
    const ZERO: Self;
    /// `+∞`.
    const INFINITY: Self;
    /// The machine epsilon (the gap between 1 and the next value).
    const EPSILON: Self;

    /// The value as an `f64` (exact).
    fn to_f64(self) -> f64;
    /// The `f64` rounded to this type.
    fn from_f64(value: f64) -> Self;

    /// `ln(1 + x)` lane-wise with this type's polynomial (see `log1p.rs`).
    #[doc(hidden)]
    fn log1p_lanes<V: Vector<Elem = Self>>(x: V) -> V;

    /// `block` as `f64`s: itself for `f64`, converted into `buffer` (at least as long)
    /// for `f32`.
    #[doc(hidden)]
    fn as_f64s<'b>(block: &'b [Self], buffer: &'b mut [f64]) -> &'b [f64];
}

/// The scalar operations, shared by `f32` and `f64`.
macro_rules! scalar_vector {
    ($t:ty, $bits:ty, $mantissa_bits:expr, $offset:expr) => {
        impl Vector for $t {
            type Elem = $t;
            type Mask = bool;
            const LANES: usize = 1;

            #[inline(always)]
            fn splat(value: $t) -> $t {
                value
            }
            #[inline(always)]
            fn load(src: &[$t]) -> $t {
                src[0]
            }
            #[inline(always)]
            fn store(self, dst: &mut [$t]) {
                dst[0] = self;
            }
            #[inline(always)]
            fn add(self, other: $t) -> $t {
                self + other
            }
            #[inline(always)]
            fn sub(self, other: $t) -> $t {
                self - other
            }
            #[inline(always)]
            fn mul(self, other: $t) -> $t {
                self * other
            }
            #[inline(always)]
            fn div(self, other: $t) -> $t {
                self / other
            }
            #[inline(always)]
            fn mul_add(self, b: $t, c: $t) -> $t {
                // Two roundings: a fused multiply-add in software would be slow on CPUs
                // without FMA, which are the ones the scalar path is for.
                self * b + c
            }
            #[inline(always)]
            fn min(self, other: $t) -> $t {
                if self < other { self } else { other }
            }
            #[inline(always)]
            fn max(self, other: $t) -> $t {
                if self > other { self } else { other }
            }
            #[inline(always)]
            fn mask_from_bits(bits: u64) -> bool {
                bits & 1 != 0
            }
            #[inline(always)]
            fn mask_bits(mask: bool) -> u64 {
                u64::from(mask)
            }
            #[inline(always)]
            fn mask_and(a: bool, b: bool) -> bool {
                a & b
            }
            #[inline(always)]
            #[allow(clippy::eq_op, reason = "x == x is false exactly for NaN")]
            fn not_nan(self) -> bool {
                self == self
            }
            #[inline(always)]
            fn eq(self, other: $t) -> bool {
                self == other
            }
            #[inline(always)]
            fn lt(self, other: $t) -> bool {
                self < other
            }
            #[inline(always)]
            fn select(mask: bool, a: $t, b: $t) -> $t {
                if mask { a } else { b }
            }
            #[inline(always)]
            fn reduce_add(self) -> $t {
                self
            }
            #[inline(always)]
            fn reduce_min(self) -> $t {
                self
            }
            #[inline(always)]
            fn reduce_max(self) -> $t {
                self
            }
            #[inline(always)]
            fn split_exponent(self) -> ($t, $t) {
                const ONE: $bits = (1.0 as $t).to_bits();
                const EXPONENT: $bits = !0 << $mantissa_bits;
                let bits = self.to_bits();
                // Moving the boundary from 1 to √2/2 puts the mantissa in [√2/2, √2).
                let shifted = bits.wrapping_add(ONE.wrapping_sub($offset));
                let biased = shifted >> $mantissa_bits;
                let mantissa = bits.wrapping_sub((shifted & EXPONENT).wrapping_sub(ONE));
                let k = biased as $t - (ONE >> $mantissa_bits) as $t;
                (<$t>::from_bits(mantissa), k)
            }
        }
    };
}

scalar_vector!(f64, u64, 52, 0x3fe6_a09e_667f_3bcd_u64);
scalar_vector!(f32, u32, 23, 0x3f35_04f3_u32);

impl Element for f64 {
    type Arrow = Float64Type;
    #[cfg(target_arch = "x86_64")]
    type Avx2 = crate::x86::F64x4;
    #[cfg(target_arch = "x86_64")]
    type Avx512 = crate::x86::F64x8;
    #[cfg(target_arch = "aarch64")]
    type Neon = crate::neon::F64x2;

    const ZERO: f64 = 0.0;
    const INFINITY: f64 = f64::INFINITY;
    const EPSILON: f64 = f64::EPSILON;

    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(value: f64) -> f64 {
        value
    }
    #[inline(always)]
    fn log1p_lanes<V: Vector<Elem = f64>>(x: V) -> V {
        crate::log1p::log1p_f64(x)
    }
    #[inline(always)]
    fn as_f64s<'b>(block: &'b [f64], _buffer: &'b mut [f64]) -> &'b [f64] {
        block
    }
}

impl Element for f32 {
    type Arrow = Float32Type;
    #[cfg(target_arch = "x86_64")]
    type Avx2 = crate::x86::F32x8;
    #[cfg(target_arch = "x86_64")]
    type Avx512 = crate::x86::F32x16;
    #[cfg(target_arch = "aarch64")]
    type Neon = crate::neon::F32x4;

    const ZERO: f32 = 0.0;
    const INFINITY: f32 = f32::INFINITY;
    const EPSILON: f32 = f32::EPSILON;

    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(value: f64) -> f32 {
        value as f32
    }
    #[inline(always)]
    fn log1p_lanes<V: Vector<Elem = f32>>(x: V) -> V {
        crate::log1p::log1p_f32(x)
    }
    #[inline(always)]
    fn as_f64s<'b>(block: &'b [f32], buffer: &'b mut [f64]) -> &'b [f64] {
        let buffer = &mut buffer[..block.len()];
        for (wide, &narrow) in buffer.iter_mut().zip(block) {
            *wide = f64::from(narrow);
        }
        buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_exponent_is_exact_and_in_range() {
        use std::f32::consts as c32;
        use std::f64::consts as c64;
        let low = c64::FRAC_1_SQRT_2;
        let around = |x: f64| {
            [
                f64::from_bits(x.to_bits() - 1),
                x,
                f64::from_bits(x.to_bits() + 1),
            ]
        };
        let inputs = [
            around(low),
            around(c64::SQRT_2),
            [1.0, 0.5, 3.0],
            [1e300, 2.3e-308, 7.5],
        ];
        for x in inputs.into_iter().flatten() {
            let (m, k) = x.split_exponent();
            assert!((low..2.0 * low).contains(&m), "{x}: m = {m}");
            assert_eq!(m * 2f64.powf(k), x, "{x}");
        }
        let low = c32::FRAC_1_SQRT_2;
        let around = |x: f32| {
            [
                f32::from_bits(x.to_bits() - 1),
                x,
                f32::from_bits(x.to_bits() + 1),
            ]
        };
        let inputs = [
            around(low),
            around(c32::SQRT_2),
            [1.0, 0.5, 3.0],
            [1e38, 2e-38, 7.5],
        ];
        for x in inputs.into_iter().flatten() {
            let (m, k) = x.split_exponent();
            assert!((low..2.0 * low).contains(&m), "{x}: m = {m}");
            assert_eq!(m * 2f32.powf(k), x, "{x}");
        }
    }
}
