//! Kernels across the boundary: the vtable, the plugin-side entry point, and
//! [`ForeignKernel`], the host-side wrapper that implements [`Kernel`] again.
//!
//! Arguments cross as the columns `arg0, arg1, …` of one batch, the result as the single
//! column of another. Unlike other components, a kernel may be called from several
//! threads at once.

use std::ffi::c_void;

use abi_stable::StableAbi;
use abi_stable::std_types::RResult;
use arrow::array::{ArrayRef, RecordBatch};

use super::arrow::{FfiBatch, arrays_to_batch};
use super::error::{FfiError, into_result};
use super::instance::{Handle, VTable, call_ref, into_state, release};
use super::record_import;
use crate::error::{Error, Result};
use crate::traits::Kernel;

/// The functions of a kernel (a prefix type, see [`super::source::SourceVTable`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = KernelVTableRef)))]
#[sabi(missing_field(panic))]
pub struct KernelVTable {
    call: unsafe extern "C" fn(*mut c_void, FfiBatch) -> RResult<FfiBatch, FfiError>,
    #[sabi(last_prefix_field)]
    release: unsafe extern "C" fn(*mut c_void),
}

impl VTable for KernelVTableRef {
    fn release_fn(&self) -> unsafe extern "C" fn(*mut c_void) {
        self.release()
    }
}

/// A kernel in wire form.
pub type FfiKernel = Handle<KernelVTableRef>;

type Boxed = Box<dyn Kernel>;

fn result_column(batch: RecordBatch) -> Result<ArrayRef> {
    match batch.columns() {
        [column] => Ok(column.clone()),
        columns => Err(Error::bad_data(format!(
            "a kernel must return one column, it returned {}",
            columns.len()
        ))),
    }
}

unsafe extern "C" fn call(state: *mut c_void, args: FfiBatch) -> RResult<FfiBatch, FfiError> {
    // SAFETY: the host passes the state of a live kernel; kernels are `Sync`, so calls
    // from several threads at once are allowed.
    unsafe {
        call_ref(state, |k: &Boxed| {
            let args = record_import(args)?;
            let result = k.call(args.columns())?;
            FfiBatch::export(arrays_to_batch(&[result])?)
        })
    }
}

impl KernelVTable {
    abi_stable::staticref! {
        const VTABLE: abi_stable::prefix_type::WithMetadata<KernelVTable> =
        abi_stable::prefix_type::WithMetadata::new(KernelVTable {
            call,
            release: release::<Boxed>,
            })
    }
}

/// Wraps an author's kernel for the host (plugin side).
pub(crate) fn export(kernel: Boxed) -> FfiKernel {
    Handle::new(
        KernelVTableRef(KernelVTable::VTABLE.as_prefix()),
        into_state(kernel),
    )
}

/// A kernel that lives in a plugin, seen by the host as a plain [`Kernel`].
#[derive(Debug)]
pub struct ForeignKernel {
    handle: FfiKernel,
}

impl ForeignKernel {
    pub(crate) fn new(handle: FfiKernel) -> ForeignKernel {
        ForeignKernel { handle }
    }
}

// SAFETY: a kernel's state is only ever reached through `call_ref` (shared access), and
// the `Kernel` trait requires `Sync`, so calls from several threads at once are sound.
unsafe impl Sync for ForeignKernel {}

impl Kernel for ForeignKernel {
    fn call(&self, args: &[ArrayRef]) -> Result<ArrayRef> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let args = FfiBatch::export(arrays_to_batch(args)?)?;
        // SAFETY: the handle owns a live kernel; see the `Sync` impl above.
        result_column(record_import(into_result(unsafe {
            (vtable.call())(state, args)
        })?)?)
    }
}
