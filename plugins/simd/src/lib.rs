//! # mlpipe-plugin-simd
//!
//! The standard kernel plugin: numeric kernels over `float32` and `float64` Arrow arrays,
//! written once against a small vector abstraction and compiled for AVX2 (with FMA),
//! AVX-512F, NEON (aarch64) and plain scalar code; the instruction set is detected at run time, or forced
//! with the `isa` config key. Transforms call the kernels by name through the host's
//! registry, so another plugin can provide a faster one under the same name.
//!
//! Kernels (signatures in `components::KERNELS` and in the README):
//!
//! - element-wise, bit-identical on every instruction set: `fill_standardize`,
//!   `min_max_scale`, `clip`, `log1p`;
//! - reductions, within the bounds stated in `reduce.rs`: `moments` (count, sum, mean,
//!   M2), `min_max`, `l2_norm`, `dot`.
//!
//! The crate is also an `rlib` whose slice functions the benchmarks and tests call
//! directly.
//!
//! ```
//! use mlpipe_plugin_simd::{Isa, Standardize, fill_standardize};
//!
//! let x = [1.0_f64, 2.0, 3.0];
//! let mut out = [0.0; 3];
//! let params = Standardize { fill: 0.0, mean: 2.0, scale: 0.5, fill_nan: false };
//! fill_standardize(Isa::detect(), &x, None, params, &mut out);
//! assert_eq!(out, [-2.0, 0.0, 2.0]);
//! ```

#![deny(missing_docs)]

mod components;
mod elementwise;
mod isa;
mod log1p;
#[cfg(target_arch = "aarch64")]
mod neon;
mod reduce;
#[cfg(test)]
mod tests;
mod vector;
mod words;
#[cfg(target_arch = "x86_64")]
mod x86;

use mlpipe_plugin_api::Plugin;

pub use crate::elementwise::{Standardize, affine, clip, fill_standardize, log1p, min_max_params};
pub use crate::isa::Isa;
pub use crate::reduce::{BLOCK, Moments, dot, l2_norm, min_max, moments};
pub use crate::vector::Element;

/// The plugin definition: what the host loads through `export_plugin!`, and what a Rust
/// program (or another plugin's tests) can create kernels from in process.
pub fn plugin() -> Plugin {
    components::KERNELS.iter().fold(
        Plugin::new("simd", env!("CARGO_PKG_VERSION")),
        |plugin, info| {
            plugin.kernel(
                info.name,
                info.description,
                info.signature,
                components::keys(),
                move |config| components::SimdKernel::from_config(info, config),
            )
        },
    )
}

mlpipe_plugin_api::export_plugin!(plugin);
