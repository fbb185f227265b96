//! Transforms across the boundary: the vtable, the plugin-side entry points, and
//! [`ForeignTransform`], the host-side wrapper that implements [`Transform`] again.

use std::ffi::c_void;

use abi_stable::StableAbi;
use abi_stable::std_types::RResult;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::arrow::{FfiBatch, FfiSchema};
use super::error::{FfiError, into_result};
use super::instance::{Handle, VTable, call_mut, into_state, release};
use super::record_import;
use crate::error::Result;
use crate::traits::Transform;

/// The functions of a transform (a prefix type, see [`super::source::SourceVTable`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = TransformVTableRef)))]
#[sabi(missing_field(panic))]
pub struct TransformVTable {
    output_schema: unsafe extern "C" fn(*mut c_void, FfiSchema) -> RResult<FfiSchema, FfiError>,
    transform: unsafe extern "C" fn(*mut c_void, FfiBatch) -> RResult<FfiBatch, FfiError>,
    memory_usage: unsafe extern "C" fn(*mut c_void) -> RResult<u64, FfiError>,
    reset: unsafe extern "C" fn(*mut c_void) -> RResult<(), FfiError>,
    #[sabi(last_prefix_field)]
    release: unsafe extern "C" fn(*mut c_void),
}

impl VTable for TransformVTableRef {
    fn release_fn(&self) -> unsafe extern "C" fn(*mut c_void) {
        self.release()
    }
}

/// A transform in wire form.
pub type FfiTransform = Handle<TransformVTableRef>;

type Boxed = Box<dyn Transform>;

unsafe extern "C" fn output_schema(
    state: *mut c_void,
    input: FfiSchema,
) -> RResult<FfiSchema, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe {
        call_mut(state, |t: &mut Boxed| {
            FfiSchema::export(t.output_schema(&input.import()?)?.as_ref())
        })
    }
}

unsafe extern "C" fn transform(state: *mut c_void, batch: FfiBatch) -> RResult<FfiBatch, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe {
        call_mut(state, |t: &mut Boxed| {
            FfiBatch::export(t.transform(record_import(batch)?)?)
        })
    }
}

unsafe extern "C" fn memory_usage(state: *mut c_void) -> RResult<u64, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe { call_mut(state, |t: &mut Boxed| Ok(t.memory_usage() as u64)) }
}

unsafe extern "C" fn reset(state: *mut c_void) -> RResult<(), FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe { call_mut(state, |t: &mut Boxed| t.reset()) }
}

impl TransformVTable {
    abi_stable::staticref! {
        const VTABLE: abi_stable::prefix_type::WithMetadata<TransformVTable> =
        abi_stable::prefix_type::WithMetadata::new(TransformVTable {
            output_schema,
            transform,
            memory_usage,
            reset,
            release: release::<Boxed>,
            })
    }
}

/// Wraps an author's transform for the host (plugin side).
pub(crate) fn export(transform: Boxed) -> FfiTransform {
    Handle::new(
        TransformVTableRef(TransformVTable::VTABLE.as_prefix()),
        into_state(transform),
    )
}

/// A transform that lives in a plugin, seen by the host as a plain [`Transform`].
#[derive(Debug)]
pub struct ForeignTransform {
    handle: FfiTransform,
}

impl ForeignTransform {
    pub(crate) fn new(handle: FfiTransform) -> ForeignTransform {
        ForeignTransform { handle }
    }
}

impl Transform for ForeignTransform {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let input = FfiSchema::export(input)?;
        // SAFETY: the handle owns a live transform; the host never calls one instance
        // from two threads at once (`ForeignTransform` is not `Sync`).
        into_result(unsafe { (vtable.output_schema())(state, input) })?.import()
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let batch = FfiBatch::export(batch)?;
        // SAFETY: as in `output_schema`.
        record_import(into_result(unsafe { (vtable.transform())(state, batch) })?)
    }

    fn memory_usage(&self) -> usize {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        // SAFETY: as in `output_schema`.
        into_result(unsafe { (vtable.memory_usage())(state) }).map_or(0, |n| n as usize)
    }

    fn reset(&mut self) -> Result<()> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        // SAFETY: as in `output_schema`.
        into_result(unsafe { (vtable.reset())(state) })
    }
}
