//! The stable ABI: every `#[repr(C)]`/`StableAbi` type and every `unsafe` block of the
//! plugin boundary lives in this folder, so a change of ABI technology touches nothing else.
//!
//! Rules every type here follows:
//! - Wire structs (`Ffi*`) are what crosses; `Foreign*` are host-side wrappers that
//!   implement the author-facing traits again, so the host treats a plugin's component and
//!   an in-process one alike.
//! - Vtables and the root module are prefix types whose `last_prefix_field` is fixed:
//!   later API versions append entries and never reorder or remove them.
//! - Every plugin-side entry point runs under `catch_unwind`; a panic comes back as an
//!   error of kind `Panicked` and poisons the instance.
//! - Ownership: a component belongs to the host-side handle that received it, which calls
//!   `release` once; a batch or schema belongs to whoever holds its struct, and dropping
//!   it calls its producer's `release` callback.
//! - Enums cross as integers with fixed values; an unknown value is an error.

mod arrow;
mod error;
mod instance;
mod kernel;
mod root;
mod sink;
mod source;
mod transform;

use std::sync::atomic::{AtomicUsize, Ordering};

pub use self::arrow::{FfiBatch, FfiSchema, ImportStats};
pub use self::error::FfiError;
pub use self::kernel::{BorrowedKernel, FfiKernel, FfiKernelBinding, FfiKernelRef, KernelVTable};
pub use self::root::{
    ABI_EPOCH, LoadError, PluginLibrary, PluginMod, ROOT_SYMBOL, api_compatible, lib_header,
    root_module,
};
pub use self::sink::{FfiSink, ForeignSink, SinkVTable};
pub use self::source::{FfiSource, ForeignSource, SourceVTable};
pub use self::transform::{FfiTransform, ForeignTransform, TransformVTable};

/// The `abi_stable` types the export macro names in the plugin's crate.
#[doc(hidden)]
pub mod reexport {
    pub use abi_stable::library::{LibHeader, RootModuleResult};
}

static REALIGNED_BUFFERS: AtomicUsize = AtomicUsize::new(0);

/// How many under-aligned buffers this side has copied while importing batches.
pub fn realigned_buffers() -> usize {
    REALIGNED_BUFFERS.load(Ordering::Relaxed)
}

/// Encodes a value that crosses the boundary as JSON text.
fn to_json(value: &impl serde::Serialize) -> crate::Result<abi_stable::std_types::RString> {
    serde_json::to_string(value)
        .map(Into::into)
        .map_err(|e| crate::Error::internal(format!("cannot encode as JSON: {e}")))
}

/// Decodes JSON text that crossed the boundary; `what` names it in the error.
fn from_json<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> crate::Result<T> {
    serde_json::from_str(json)
        .map_err(|e| crate::Error::internal(format!("malformed {what} from the other side: {e}")))
}

/// Imports a batch that crossed the boundary, counting realigned buffers.
fn record_import(batch: FfiBatch) -> crate::Result<::arrow::array::RecordBatch> {
    let (batch, stats) = batch.import()?;
    if stats.realigned_buffers > 0 {
        REALIGNED_BUFFERS.fetch_add(stats.realigned_buffers, Ordering::Relaxed);
    }
    Ok(batch)
}
