//! Transforms across the boundary: the vtable, the plugin-side entry points, and
//! [`ForeignTransform`], the host-side wrapper that implements [`Transform`] again.

use std::ffi::c_void;

use abi_stable::StableAbi;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::arrow::{FfiBatch, FfiSchema};
use super::error::{FfiError, into_result};
use super::instance::{Handle, VTable, call_mut, into_state, release};
use super::{from_json, record_import, to_json};
use crate::error::Result;
use crate::traits::{ColumnUsage, Counters, Transform};

/// The functions of a transform (a prefix type, see [`super::source::SourceVTable`]).
///
/// The entries after `release` came with fitting; an older plugin lacks them, and the
/// host then treats its transforms as stateless (the trait's defaults).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = TransformVTableRef)))]
pub struct TransformVTable {
    output_schema: unsafe extern "C" fn(*mut c_void, FfiSchema) -> RResult<FfiSchema, FfiError>,
    transform: unsafe extern "C" fn(*mut c_void, FfiBatch) -> RResult<FfiBatch, FfiError>,
    memory_usage: unsafe extern "C" fn(*mut c_void) -> RResult<u64, FfiError>,
    reset: unsafe extern "C" fn(*mut c_void) -> RResult<(), FfiError>,
    #[sabi(last_prefix_field)]
    release: unsafe extern "C" fn(*mut c_void),
    finish: unsafe extern "C" fn(*mut c_void) -> RResult<ROption<FfiBatch>, FfiError>,
    /// JSON: `[[name, count], ...]`.
    counters: unsafe extern "C" fn(*mut c_void) -> RResult<RString, FfiError>,
    /// JSON of a [`ColumnUsage`], or none.
    column_usage:
        unsafe extern "C" fn(*mut c_void, FfiSchema) -> RResult<ROption<RString>, FfiError>,
    needs_fit: unsafe extern "C" fn(*mut c_void) -> RResult<bool, FfiError>,
    fit: unsafe extern "C" fn(*mut c_void, FfiBatch) -> RResult<(), FfiError>,
    fit_partial: unsafe extern "C" fn(*mut c_void) -> RResult<RVec<u8>, FfiError>,
    merge_fit: unsafe extern "C" fn(*mut c_void, RSlice<'_, u8>) -> RResult<(), FfiError>,
    /// JSON of the fitted parameters.
    finish_fit: unsafe extern "C" fn(*mut c_void) -> RResult<RString, FfiError>,
    load_fit: unsafe extern "C" fn(*mut c_void, RStr<'_>) -> RResult<(), FfiError>,
    quarantine_schema:
        unsafe extern "C" fn(*mut c_void, FfiSchema) -> RResult<ROption<FfiSchema>, FfiError>,
    take_quarantined: unsafe extern "C" fn(*mut c_void) -> RResult<ROption<FfiBatch>, FfiError>,
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

unsafe extern "C" fn finish(state: *mut c_void) -> RResult<ROption<FfiBatch>, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe {
        call_mut(state, |t: &mut Boxed| {
            Ok(match t.finish()? {
                Some(batch) => ROption::RSome(FfiBatch::export(batch)?),
                None => ROption::RNone,
            })
        })
    }
}

unsafe extern "C" fn counters(state: *mut c_void) -> RResult<RString, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe { call_mut(state, |t: &mut Boxed| to_json(&t.counters())) }
}

unsafe extern "C" fn column_usage(
    state: *mut c_void,
    input: FfiSchema,
) -> RResult<ROption<RString>, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe {
        call_mut(state, |t: &mut Boxed| {
            Ok(match t.column_usage(&input.import()?)? {
                Some(usage) => ROption::RSome(to_json(&usage)?),
                None => ROption::RNone,
            })
        })
    }
}

unsafe extern "C" fn needs_fit(state: *mut c_void) -> RResult<bool, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe { call_mut(state, |t: &mut Boxed| Ok(t.needs_fit())) }
}

unsafe extern "C" fn fit(state: *mut c_void, batch: FfiBatch) -> RResult<(), FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe { call_mut(state, |t: &mut Boxed| t.fit(&record_import(batch)?)) }
}

unsafe extern "C" fn fit_partial(state: *mut c_void) -> RResult<RVec<u8>, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe { call_mut(state, |t: &mut Boxed| Ok(t.fit_partial()?.into())) }
}

unsafe extern "C" fn merge_fit(
    state: *mut c_void,
    partial: RSlice<'_, u8>,
) -> RResult<(), FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe { call_mut(state, |t: &mut Boxed| t.merge_fit(partial.as_slice())) }
}

unsafe extern "C" fn finish_fit(state: *mut c_void) -> RResult<RString, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe { call_mut(state, |t: &mut Boxed| to_json(&t.finish_fit()?)) }
}

unsafe extern "C" fn load_fit(state: *mut c_void, params: RStr<'_>) -> RResult<(), FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe {
        call_mut(state, |t: &mut Boxed| {
            t.load_fit(&from_json(params.as_str(), "fitted parameters")?)
        })
    }
}

unsafe extern "C" fn quarantine_schema(
    state: *mut c_void,
    input: FfiSchema,
) -> RResult<ROption<FfiSchema>, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe {
        call_mut(state, |t: &mut Boxed| {
            Ok(match t.quarantine_schema(&input.import()?)? {
                Some(schema) => ROption::RSome(FfiSchema::export(&schema)?),
                None => ROption::RNone,
            })
        })
    }
}

unsafe extern "C" fn take_quarantined(state: *mut c_void) -> RResult<ROption<FfiBatch>, FfiError> {
    // SAFETY: the host passes the state of a live transform, one call at a time.
    unsafe {
        call_mut(state, |t: &mut Boxed| {
            Ok(match t.take_quarantined()? {
                Some(batch) => ROption::RSome(FfiBatch::export(batch)?),
                None => ROption::RNone,
            })
        })
    }
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
            finish,
            counters,
            column_usage,
            needs_fit,
            fit,
            fit_partial,
            merge_fit,
            finish_fit,
            load_fit,
            quarantine_schema,
            take_quarantined,
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

    // The entries below are absent in plugins built before fitting existed: the trait's
    // defaults (no held rows, no counters, unknown columns, stateless) stand in for them.

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let Some(finish) = vtable.finish() else {
            return Ok(None);
        };
        // SAFETY: as in `output_schema`.
        let batch = into_result(unsafe { finish(state) })?;
        batch.into_option().map(record_import).transpose()
    }

    fn counters(&self) -> Counters {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let Some(counters) = vtable.counters() else {
            return Vec::new();
        };
        // SAFETY: as in `output_schema`.
        into_result(unsafe { counters(state) })
            .and_then(|json| from_json(json.as_str(), "counters"))
            .unwrap_or_default()
    }

    fn quarantine_schema(&self, input: &SchemaRef) -> Result<Option<SchemaRef>> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let Some(quarantine_schema) = vtable.quarantine_schema() else {
            return Ok(None);
        };
        let input = FfiSchema::export(input)?;
        // SAFETY: as in `output_schema`.
        let schema = into_result(unsafe { quarantine_schema(state, input) })?;
        schema.into_option().map(|s| s.import()).transpose()
    }

    fn take_quarantined(&mut self) -> Result<Option<RecordBatch>> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let Some(take_quarantined) = vtable.take_quarantined() else {
            return Ok(None);
        };
        // SAFETY: as in `output_schema`.
        let batch = into_result(unsafe { take_quarantined(state) })?;
        batch.into_option().map(record_import).transpose()
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let Some(column_usage) = vtable.column_usage() else {
            return Ok(None);
        };
        let input = FfiSchema::export(input)?;
        // SAFETY: as in `output_schema`.
        let usage = into_result(unsafe { column_usage(state, input) })?;
        usage
            .into_option()
            .map(|json| from_json(json.as_str(), "column usage"))
            .transpose()
    }

    fn needs_fit(&self) -> bool {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        // A plugin that cannot answer is asked to fit, so that its error surfaces there.
        // SAFETY: as in `output_schema`.
        vtable
            .needs_fit()
            .is_some_and(|needs_fit| into_result(unsafe { needs_fit(state) }).unwrap_or(true))
    }

    fn fit(&mut self, batch: &RecordBatch) -> Result<()> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let fit = vtable.fit().ok_or_else(missing)?;
        let batch = FfiBatch::export(batch.clone())?;
        // SAFETY: as in `output_schema`.
        into_result(unsafe { fit(state, batch) })
    }

    fn fit_partial(&mut self) -> Result<Vec<u8>> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let fit_partial = vtable.fit_partial().ok_or_else(missing)?;
        // SAFETY: as in `output_schema`.
        Ok(into_result(unsafe { fit_partial(state) })?.into_vec())
    }

    fn merge_fit(&mut self, partial: &[u8]) -> Result<()> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let merge_fit = vtable.merge_fit().ok_or_else(missing)?;
        // SAFETY: as in `output_schema`; `partial` outlives the call.
        into_result(unsafe { merge_fit(state, partial.into()) })
    }

    fn finish_fit(&mut self) -> Result<serde_json::Value> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let finish_fit = vtable.finish_fit().ok_or_else(missing)?;
        // SAFETY: as in `output_schema`.
        let json = into_result(unsafe { finish_fit(state) })?;
        from_json(json.as_str(), "fitted parameters")
    }

    fn load_fit(&mut self, params: &serde_json::Value) -> Result<()> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let load_fit = vtable.load_fit().ok_or_else(missing)?;
        let json = params.to_string();
        // SAFETY: as in `output_schema`; `json` outlives the call.
        into_result(unsafe { load_fit(state, json.as_str().into()) })
    }
}

fn missing() -> crate::Error {
    crate::Error::internal(
        "the plugin was built before fitting existed in the plugin API; rebuild it against \
         this mlpipe-plugin-api",
    )
}
