//! Sources across the boundary: the vtable, the plugin-side entry points, and
//! [`ForeignSource`], the host-side wrapper that implements [`Source`] again.

use std::cell::Cell;
use std::ffi::c_void;

use abi_stable::StableAbi;
use abi_stable::std_types::{ROption, RResult, RString};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::arrow::{FfiBatch, FfiSchema};
use super::error::{FfiError, into_result};
use super::instance::{Handle, VTable, call_mut, into_state, release};
use super::{from_json, or_remember, record_import, to_json};
use crate::error::{Error, Result};
use crate::traits::{Counters, Source};

/// The functions of a source. A prefix type: later API versions append entries after
/// `release`, and a newer host sees them as absent in plugins built earlier.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = SourceVTableRef)))]
pub struct SourceVTable {
    schema: unsafe extern "C" fn(*mut c_void) -> RResult<FfiSchema, FfiError>,
    next_batch: unsafe extern "C" fn(*mut c_void, u64) -> RResult<ROption<FfiBatch>, FfiError>,
    size_hint: unsafe extern "C" fn(*mut c_void) -> RResult<ROption<u64>, FfiError>,
    memory_usage: unsafe extern "C" fn(*mut c_void) -> RResult<u64, FfiError>,
    #[sabi(last_prefix_field)]
    release: unsafe extern "C" fn(*mut c_void),
    /// JSON: `[[name, count], ...]`. Absent in plugins built before it existed.
    counters: unsafe extern "C" fn(*mut c_void) -> RResult<RString, FfiError>,
}

impl VTable for SourceVTableRef {
    fn release_fn(&self) -> unsafe extern "C" fn(*mut c_void) {
        self.release()
    }
}

/// A source in wire form.
pub type FfiSource = Handle<SourceVTableRef>;

type Boxed = Box<dyn Source>;

unsafe extern "C" fn schema(state: *mut c_void) -> RResult<FfiSchema, FfiError> {
    // SAFETY: the host passes the state of a live source, one call at a time.
    unsafe {
        call_mut(state, |s: &mut Boxed| {
            FfiSchema::export(s.schema()?.as_ref())
        })
    }
}

unsafe extern "C" fn next_batch(
    state: *mut c_void,
    max_rows: u64,
) -> RResult<ROption<FfiBatch>, FfiError> {
    // SAFETY: the host passes the state of a live source, one call at a time.
    unsafe {
        call_mut(state, |s: &mut Boxed| {
            let max_rows = usize::try_from(max_rows).unwrap_or(usize::MAX);
            Ok(match s.next_batch(max_rows)? {
                Some(batch) => ROption::RSome(FfiBatch::export(batch)?),
                None => ROption::RNone,
            })
        })
    }
}

unsafe extern "C" fn size_hint(state: *mut c_void) -> RResult<ROption<u64>, FfiError> {
    // SAFETY: the host passes the state of a live source, one call at a time.
    unsafe {
        call_mut(state, |s: &mut Boxed| {
            Ok(s.size_hint().map(|n| n as u64).into())
        })
    }
}

unsafe extern "C" fn memory_usage(state: *mut c_void) -> RResult<u64, FfiError> {
    // SAFETY: the host passes the state of a live source, one call at a time.
    unsafe { call_mut(state, |s: &mut Boxed| Ok(s.memory_usage() as u64)) }
}

unsafe extern "C" fn counters(state: *mut c_void) -> RResult<RString, FfiError> {
    // SAFETY: the host passes the state of a live source, one call at a time.
    unsafe { call_mut(state, |s: &mut Boxed| to_json(&s.counters())) }
}

impl SourceVTable {
    abi_stable::staticref! {
        const VTABLE: abi_stable::prefix_type::WithMetadata<SourceVTable> =
        abi_stable::prefix_type::WithMetadata::new(SourceVTable {
            schema,
            next_batch,
            size_hint,
            memory_usage,
            release: release::<Boxed>,
            counters,
            })
    }
}

/// Wraps an author's source for the host (plugin side).
pub(crate) fn export(source: Boxed) -> FfiSource {
    Handle::new(
        SourceVTableRef(SourceVTable::VTABLE.as_prefix()),
        into_state(source),
    )
}

/// A source that lives in a plugin, seen by the host as a plain [`Source`].
pub struct ForeignSource {
    handle: FfiSource,
    /// The failure of the last infallible-looking call (see `Source::take_failure`).
    failure: Cell<Option<(&'static str, Error)>>,
}

impl std::fmt::Debug for ForeignSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForeignSource")
            .field("handle", &self.handle)
            .finish()
    }
}

impl ForeignSource {
    pub(crate) fn new(handle: FfiSource) -> ForeignSource {
        ForeignSource {
            handle,
            failure: Cell::new(None),
        }
    }
}

impl Source for ForeignSource {
    fn schema(&self) -> Result<SchemaRef> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        // SAFETY: the handle owns a live source; `&self` here and `&mut self` elsewhere
        // are serialized by the host (an instance is never called from two threads).
        into_result(unsafe { (vtable.schema())(state) })?.import()
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        // SAFETY: as in `schema`.
        let batch = into_result(unsafe { (vtable.next_batch())(state, max_rows as u64) })?;
        batch.into_option().map(record_import).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        // SAFETY: as in `schema`.
        let hint = into_result(unsafe { (vtable.size_hint())(state) })
            .map(|hint| hint.into_option().map(|n| n as usize));
        or_remember(&self.failure, "size_hint", hint)
    }

    fn memory_usage(&self) -> usize {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        // SAFETY: as in `schema`.
        let usage = into_result(unsafe { (vtable.memory_usage())(state) });
        or_remember(&self.failure, "memory_usage", usage.map(|n| n as usize))
    }

    fn counters(&self) -> Counters {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let Some(counters) = vtable.counters() else {
            return Vec::new();
        };
        // SAFETY: as above.
        let counters = into_result(unsafe { counters(state) })
            .and_then(|json| from_json(json.as_str(), "counters"));
        or_remember(&self.failure, "counters", counters)
    }

    fn take_failure(&mut self) -> Option<(&'static str, Error)> {
        self.failure.take()
    }
}
