//! Kernels across the boundary: the vtable, the plugin-side entry point, and
//! [`BorrowedKernel`], which implements [`Kernel`] again on the other side.
//!
//! Arguments cross as one row of a batch: column `argN` holds argument N as the single
//! element of a large list, so that arguments of different lengths (a column and
//! one-element scalars) travel together, still without a copy (the list's child is the
//! argument's array). The result crosses as the single column of another batch. Unlike
//! other components, a kernel may be called from several threads at once.
//!
//! Kernels are also handed *to* plugins: the host resolves the pipeline's kernels once,
//! keeps their handles for the life of the process, and passes each transform it creates
//! a list of [`FfiKernelBinding`]s (name + non-owning [`FfiKernelRef`]); the plugin side
//! wraps each in a [`BorrowedKernel`], which is what `Config::kernel` returns.

use std::ffi::c_void;

use abi_stable::StableAbi;
use abi_stable::std_types::{RResult, RStr};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, LargeListArray, RecordBatch};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::Field;

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

/// A kernel borrowed from the host: its vtable and state, without ownership. The host
/// keeps the kernel it points to alive until the process exits.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiKernelRef {
    vtable: KernelVTableRef,
    state: *mut c_void,
}

/// A kernel handed to a plugin under the name the pipeline registers it as.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiKernelBinding<'a> {
    /// The name transforms look it up by.
    pub name: RStr<'a>,
    /// The kernel.
    pub kernel: FfiKernelRef,
}

impl FfiKernel {
    /// Exports a kernel that lives on this side (an in-process plugin's) into wire form,
    /// so that it can be handed to plugins like a plugin's own kernel.
    pub fn export(kernel: Box<dyn Kernel>) -> FfiKernel {
        export(kernel)
    }

    /// Leaks the handle (the kernel then lives until the process exits) and returns a
    /// reference that may be handed to any plugin.
    pub fn leak(self) -> FfiKernelRef {
        let handle: &'static FfiKernel = Box::leak(Box::new(self));
        FfiKernelRef {
            vtable: handle.vtable(),
            state: handle.state(),
        }
    }
}

/// A kernel the host lent to this side; what `Config::kernel` hands a transform.
pub struct BorrowedKernel {
    kernel: FfiKernelRef,
}

impl std::fmt::Debug for FfiKernelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfiKernelRef")
            .field("state", &self.state)
            .finish()
    }
}

impl std::fmt::Debug for BorrowedKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kernel.fmt(f)
    }
}

impl BorrowedKernel {
    /// Wraps a reference to a kernel that lives until the process exits.
    pub fn new(kernel: FfiKernelRef) -> BorrowedKernel {
        BorrowedKernel { kernel }
    }
}

// SAFETY: a reference is only made by `FfiKernel::leak` (on either side of the boundary),
// so it points to a kernel that lives until the process exits; kernels are `Sync` by
// contract (the trait requires it) and only ever called through shared access
// (`call_ref`), so the reference may be moved to and used from any thread.
unsafe impl Send for FfiKernelRef {}
// SAFETY: as above.
unsafe impl Sync for FfiKernelRef {}

impl Kernel for BorrowedKernel {
    fn call(&self, args: &[ArrayRef]) -> Result<ArrayRef> {
        call_through(self.kernel.vtable, self.kernel.state, args)
    }
}

/// Calls a kernel through its vtable.
fn call_through(
    vtable: KernelVTableRef,
    state: *mut c_void,
    args: &[ArrayRef],
) -> Result<ArrayRef> {
    let args = FfiBatch::export(pack_arguments(args)?)?;
    // SAFETY: `vtable` and `state` belong to a live kernel (owned by a handle, or leaked
    // by the host), and kernels allow concurrent calls.
    result_column(record_import(into_result(unsafe {
        (vtable.call())(state, args)
    })?)?)
}

type Boxed = Box<dyn Kernel>;

/// Kernel arguments as one row: argument N becomes the one element of column `argN`.
fn pack_arguments(args: &[ArrayRef]) -> Result<RecordBatch> {
    let lists: Vec<ArrayRef> = args
        .iter()
        .map(|arg| {
            let item = Arc::new(Field::new_list_field(arg.data_type().clone(), true));
            let offsets = OffsetBuffer::from_lengths([arg.len()]);
            Ok(Arc::new(LargeListArray::try_new(item, offsets, arg.clone(), None)?) as ArrayRef)
        })
        .collect::<Result<_>>()?;
    arrays_to_batch(&lists)
}

/// The arguments [`pack_arguments`] packed.
fn unpack_arguments(batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| match column.as_list_opt::<i64>() {
            Some(list) if list.len() == 1 && list.is_valid(0) => Ok(list.value(0)),
            _ => Err(Error::bad_data(format!(
                "kernel argument {i} is {} of {} rows, not the one-element large list the \
                 kernel ABI passes arguments as; rebuild the plugin against this \
                 mlpipe-plugin-api",
                column.data_type(),
                column.len()
            ))),
        })
        .collect()
}

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
            let args = unpack_arguments(&record_import(args)?)?;
            let result = k.call(&args)?;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arrow::array::{Float64Array, Int32Array};
    use arrow::datatypes::Float64Type;

    use super::*;

    /// Where the values of the last `x` the kernel saw lived.
    static SEEN_AT: AtomicUsize = AtomicUsize::new(0);

    /// `x + y`, with `y` one value.
    struct AddScalar;

    impl Kernel for AddScalar {
        fn call(&self, args: &[ArrayRef]) -> Result<ArrayRef> {
            let x = args[0].as_primitive::<Float64Type>();
            let y = args[1].as_primitive::<Float64Type>().value(0);
            SEEN_AT.store(x.values().as_ptr() as usize, Ordering::SeqCst);
            Ok(Arc::new(x.unary::<_, Float64Type>(|v| v + y)))
        }
    }

    #[test]
    fn arguments_of_different_lengths_cross_without_a_copy() {
        let kernel = BorrowedKernel::new(FfiKernel::export(Box::new(AddScalar)).leak());
        let x = Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]).slice(1, 3);
        let address = x.values().as_ptr() as usize;
        let y: ArrayRef = Arc::new(Float64Array::from(vec![10.0]));
        let out = kernel.call(&[Arc::new(x), y]).unwrap();
        assert_eq!(
            out.as_primitive::<Float64Type>().values(),
            &[12.0, 13.0, 14.0]
        );
        assert_eq!(SEEN_AT.load(Ordering::SeqCst), address, "x was not copied");
    }

    #[test]
    fn arguments_not_packed_as_one_element_lists_are_refused() {
        let flat = arrays_to_batch(&[Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef]).unwrap();
        let error = unpack_arguments(&flat).unwrap_err();
        assert!(
            error
                .message()
                .contains("kernel argument 0 is Int32 of 2 rows"),
            "{error}"
        );
    }
}
