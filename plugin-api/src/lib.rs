//! # mlpipe-plugin-api
//!
//! Everything an mlpipe plugin depends on, and nothing else. A plugin is a `cdylib` that
//! implements some of the safe traits [`Source`], [`Transform`], [`Sink`] and [`Kernel`],
//! describes them in a [`Plugin`], and exports it with [`export_plugin!`]. Authors write no
//! `unsafe` and see no ABI types: batches arrive and leave as plain [`RecordBatch`]es.
//!
//! ```
//! use std::sync::Arc;
//! use mlpipe_plugin_api::{Config, ConfigKey, ConfigType, Plugin, RecordBatch, Result, SchemaRef, Transform};
//!
//! /// Keeps the first `n` columns.
//! struct Head { n: usize }
//!
//! impl Transform for Head {
//!     fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
//!         Ok(Arc::new(input.project(&(0..self.n.min(input.fields().len())).collect::<Vec<_>>())?))
//!     }
//!     fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
//!         let n = self.n.min(batch.num_columns());
//!         Ok(batch.project(&(0..n).collect::<Vec<_>>())?)
//!     }
//! }
//!
//! fn plugin() -> Plugin {
//!     Plugin::new("head", "1.0.0").transform(
//!         "head",
//!         "keeps the first n columns",
//!         [ConfigKey::new("n", ConfigType::Integer, "how many columns to keep").required()],
//!         |config: &Config| Ok(Head { n: config.require("n")? }),
//!     )
//! }
//! // In the plugin's lib.rs (crate-type = ["cdylib"]):
//! // mlpipe_plugin_api::export_plugin!(plugin);
//! # assert_eq!(plugin().manifest().components.len(), 1);
//! ```
//!
//! ## The contract
//! - **Threads.** The host may create a component on one thread and call it on another,
//!   but never calls one instance from two threads at once; kernels may be called
//!   concurrently. Plugins should not start thread pools of their own: the host owns the
//!   cores.
//! - **Panics** are caught at the boundary and reach the host as errors of kind
//!   [`ErrorKind::Panicked`]; the instance is not called again.
//! - **Versions.** A plugin declares the version of this crate it was built against; the
//!   host loads it when the major versions match (for `0.x`, the minor versions).
//!
//! See `ARCHITECTURE.md` in the repository for ownership and lifetimes across the boundary.

#![deny(missing_docs)]

pub mod columns;
mod error;
pub mod ffi;
pub mod files;
mod manifest;
mod plugin;
pub mod predicate;
mod traits;

pub use arrow;
pub use arrow::array::RecordBatch;
pub use arrow::datatypes::SchemaRef;

pub use crate::error::{Error, ErrorKind, Result, describe_schema};
pub use crate::manifest::{
    ComponentInfo, ComponentKind, Config, ConfigKey, ConfigType, Kernels, MEMORY_BUDGET_KEY,
    Manifest, parse_byte_size,
};
pub use crate::plugin::Plugin;
pub use crate::traits::{
    ColumnUsage, Counters, Kernel, Sink, Source, StatelessTransform, Transform, equal_batch_rows,
};

/// The version of this crate, which is the plugin API version a plugin declares.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exports a plugin from a `cdylib` crate. The argument is a function `fn() -> Plugin`;
/// it runs when the host first asks for the manifest, not when the library is loaded.
///
/// ```no_run
/// use mlpipe_plugin_api::Plugin;
///
/// fn plugin() -> Plugin {
///     Plugin::new("empty", "0.1.0")
/// }
///
/// mlpipe_plugin_api::export_plugin!(plugin);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($define:path) => {
        $crate::export_plugin!($define, api_version = $crate::API_VERSION);
    };
    ($define:path, api_version = $api_version:expr) => {
        const _: () = {
            extern "C" fn mlpipe_root_module() -> $crate::ffi::reexport::RootModuleResult {
                $crate::ffi::root_module($define, $api_version)
            }

            // The literal is `ffi::ROOT_SYMBOL`, which a test checks against abi_stable.
            #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
            static MLPIPE_ROOT_MODULE: $crate::ffi::reexport::LibHeader =
                $crate::ffi::lib_header(mlpipe_root_module);
        };
    };
}
