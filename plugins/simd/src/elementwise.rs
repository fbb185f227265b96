//! The element-wise kernels on slices: fused null-aware fill + standardize, affine maps
//! (min-max scaling), clip and log1p. Each result element depends on one input element and
//! is computed with the same operations, in the same order, on every instruction set, so
//! the results are **bit-identical** across `scalar`, `avx2` and `avx512`.

use mlpipe_plugin_api::arrow::buffer::NullBuffer;

use crate::isa::{Isa, WithVector};
use crate::vector::{Element, Vector};
use crate::words::Words;

/// The parameters of [`fill_standardize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standardize<E> {
    /// The value that replaces missing elements.
    pub fill: E,
    /// Subtracted from every (filled) element.
    pub mean: E,
    /// Divides every centred element (a zero gives ±∞ or NaN: pass 1 for constant columns).
    pub scale: E,
    /// Whether NaN elements count as missing too (as scikit-learn's `SimpleImputer`).
    pub fill_nan: bool,
}

/// `out[i] = (v - mean) / scale` where `v = fill` when `x[i]` is null (per `nulls`), or NaN
/// and `fill_nan` is set, and `v = x[i]` otherwise: scikit-learn's `SimpleImputer` then
/// `StandardScaler`, in one pass. One subtraction and one division, each rounded once.
///
/// # Panics
/// When `out`, or `nulls`, is not as long as `x`.
pub fn fill_standardize<E: Element>(
    isa: Isa,
    x: &[E],
    nulls: Option<&NullBuffer>,
    params: Standardize<E>,
    out: &mut [E],
) {
    assert_eq!(x.len(), out.len(), "fill_standardize: output length");
    let words = Words::new(nulls, x.len());
    isa.dispatch(FillStandardize {
        params,
        x,
        words,
        out,
    });
}

/// `out[i] = x[i] * scale + offset`, rounded after the multiplication and after the
/// addition (no fused multiply-add), as NumPy computes `X *= scale; X += offset`.
///
/// # Panics
/// When `out` is not as long as `x`.
pub fn affine<E: Element>(isa: Isa, x: &[E], scale: E, offset: E, out: &mut [E]) {
    map(isa, Affine { scale, offset }, x, out);
}

/// The `(scale, offset)` of scikit-learn's `MinMaxScaler` fitted to `[data_min, data_max]`
/// with `feature_range = (range_min, range_max)`, computed as scikit-learn does in the
/// data's type: `scale = (range_max - range_min) / (data_max - data_min)` (a data range
/// below 10 machine epsilons counts as 1, scikit-learn's `_handle_zeros_in_scale`) and
/// `offset = range_min - data_min * scale`. With [`affine`] it gives scikit-learn's
/// `transform` bit for bit.
pub fn min_max_params<E: Element>(data_min: E, data_max: E, range_min: E, range_max: E) -> (E, E) {
    let range = data_max.sub(data_min);
    let range = if range < E::from_f64(10.0).mul(E::EPSILON) {
        E::from_f64(1.0)
    } else {
        range
    };
    let scale = range_max.sub(range_min).div(range);
    (scale, range_min.sub(data_min.mul(scale)))
}

/// `out[i] = min(max(x[i], lo), hi)` as NumPy's `clip`: NaN stays NaN, `lo > hi` gives
/// `hi`, and a NaN bound clips nothing on its side.
///
/// # Panics
/// When `out` is not as long as `x`.
pub fn clip<E: Element>(isa: Isa, x: &[E], lo: E, hi: E, out: &mut [E]) {
    map(isa, Clip { lo, hi }, x, out);
}

/// `out[i] = ln(1 + x[i])`, accurate for small `x[i]` (see `log1p.rs` for the algorithm and
/// its error bound). `x < -1` gives NaN, `-1` gives `-∞`, `±0` keeps its sign, `+∞` stays.
///
/// # Panics
/// When `out` is not as long as `x`.
pub fn log1p<E: Element>(isa: Isa, x: &[E], out: &mut [E]) {
    map(isa, Log1p, x, out);
}

/// An element-wise function, generic over the vector type.
trait Map<E: Element>: Copy {
    fn apply<V: Vector<Elem = E>>(self, x: V) -> V;
}

fn map<E: Element, M: Map<E>>(isa: Isa, op: M, x: &[E], out: &mut [E]) {
    assert_eq!(x.len(), out.len(), "element-wise kernel: output length");
    isa.dispatch(MapWork { op, x, out });
}

struct MapWork<'a, E, M> {
    op: M,
    x: &'a [E],
    out: &'a mut [E],
}

impl<E: Element, M: Map<E>> WithVector<E> for MapWork<'_, E, M> {
    type Output = ();

    /// Scalar steps until `out` is aligned to the vector width (so that no store splits a
    /// cache line), then four vectors per iteration, then single vectors, then scalars.
    #[inline(always)]
    fn run<V: Vector<Elem = E>>(self) {
        let op = self.op;
        let peel = self
            .out
            .as_ptr()
            .align_offset(size_of::<V>())
            .min(self.x.len());
        let (head, x) = self.x.split_at(peel);
        let (head_out, out) = self.out.split_at_mut(peel);
        for (x, out) in head.iter().zip(head_out) {
            *out = op.apply(*x);
        }
        let mut xs = x.chunks_exact(4 * V::LANES);
        let mut outs = out.chunks_exact_mut(4 * V::LANES);
        for (x, out) in (&mut xs).zip(&mut outs) {
            for lane in (0..4).map(|k| k * V::LANES) {
                op.apply(V::load(&x[lane..])).store(&mut out[lane..]);
            }
        }
        let mut xs = xs.remainder().chunks_exact(V::LANES);
        let mut outs = outs.into_remainder().chunks_exact_mut(V::LANES);
        for (x, out) in (&mut xs).zip(&mut outs) {
            op.apply(V::load(x)).store(out);
        }
        for (x, out) in xs.remainder().iter().zip(outs.into_remainder()) {
            *out = op.apply(*x);
        }
    }
}

#[derive(Clone, Copy)]
struct Affine<E> {
    scale: E,
    offset: E,
}

impl<E: Element> Map<E> for Affine<E> {
    #[inline(always)]
    fn apply<V: Vector<Elem = E>>(self, x: V) -> V {
        x.mul(V::splat(self.scale)).add(V::splat(self.offset))
    }
}

#[derive(Clone, Copy)]
struct Clip<E> {
    lo: E,
    hi: E,
}

impl<E: Element> Map<E> for Clip<E> {
    #[inline(always)]
    fn apply<V: Vector<Elem = E>>(self, x: V) -> V {
        // `max(lo, x)` is `x` when `x` is NaN; so is `min(hi, ·)` after it.
        V::splat(self.hi).min(V::splat(self.lo).max(x))
    }
}

#[derive(Clone, Copy)]
struct Log1p;

impl<E: Element> Map<E> for Log1p {
    #[inline(always)]
    fn apply<V: Vector<Elem = E>>(self, x: V) -> V {
        E::log1p_lanes(x)
    }
}

struct FillStandardize<'a, E> {
    params: Standardize<E>,
    x: &'a [E],
    words: Words<'a>,
    out: &'a mut [E],
}

impl<E: Element> Standardize<E> {
    #[inline(always)]
    fn apply<V: Vector<Elem = E>>(self, x: V, valid: V::Mask) -> V {
        let valid = if self.fill_nan {
            V::mask_and(valid, x.not_nan())
        } else {
            valid
        };
        V::select(valid, x, V::splat(self.fill))
            .sub(V::splat(self.mean))
            .div(V::splat(self.scale))
    }
}

impl<E: Element> WithVector<E> for FillStandardize<'_, E> {
    type Output = ();

    #[inline(always)]
    fn run<V: Vector<Elem = E>>(self) {
        let params = self.params;
        let blocks = self.x.chunks(64).zip(self.out.chunks_mut(64));
        for ((x, out), word) in blocks.zip(self.words) {
            let mut xs = x.chunks_exact(V::LANES);
            let mut outs = out.chunks_exact_mut(V::LANES);
            for (i, (x, out)) in (&mut xs).zip(&mut outs).enumerate() {
                let valid = V::mask_from_bits(word >> (i * V::LANES));
                params.apply(V::load(x), valid).store(out);
            }
            let tail = x.len() - xs.remainder().len();
            let rest = xs.remainder().iter().zip(outs.into_remainder());
            for (j, (x, out)) in rest.enumerate() {
                *out = params.apply(*x, E::mask_from_bits(word >> (tail + j)));
            }
        }
    }
}
