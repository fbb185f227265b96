//! Sinks across the boundary: the vtable, the plugin-side entry points, and
//! [`ForeignSink`], the host-side wrapper that implements [`Sink`] again.

use std::cell::Cell;
use std::ffi::c_void;

use abi_stable::StableAbi;
use abi_stable::std_types::{RResult, RString};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::arrow::{FfiBatch, FfiSchema};
use super::error::{FfiError, into_result};
use super::instance::{Handle, VTable, call_mut, into_state, release};
use super::{from_json, or_remember, record_import, to_json};
use crate::error::{Error, Result};
use crate::traits::{Counters, Sink};

/// The functions of a sink (a prefix type, see [`super::source::SourceVTable`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = SinkVTableRef)))]
pub struct SinkVTable {
    begin: unsafe extern "C" fn(*mut c_void, FfiSchema) -> RResult<(), FfiError>,
    consume: unsafe extern "C" fn(*mut c_void, FfiBatch) -> RResult<(), FfiError>,
    flush: unsafe extern "C" fn(*mut c_void) -> RResult<(), FfiError>,
    memory_usage: unsafe extern "C" fn(*mut c_void) -> RResult<u64, FfiError>,
    #[sabi(last_prefix_field)]
    release: unsafe extern "C" fn(*mut c_void),
    /// JSON: `[[name, count], ...]`. Absent in plugins built before it existed.
    counters: unsafe extern "C" fn(*mut c_void) -> RResult<RString, FfiError>,
}

impl VTable for SinkVTableRef {
    fn release_fn(&self) -> unsafe extern "C" fn(*mut c_void) {
        self.release()
    }
}

/// A sink in wire form.
pub type FfiSink = Handle<SinkVTableRef>;

type Boxed = Box<dyn Sink>;

unsafe extern "C" fn begin(state: *mut c_void, schema: FfiSchema) -> RResult<(), FfiError> {
    // SAFETY: the host passes the state of a live sink, one call at a time.
    unsafe { call_mut(state, |s: &mut Boxed| s.begin(&schema.import()?)) }
}

unsafe extern "C" fn consume(state: *mut c_void, batch: FfiBatch) -> RResult<(), FfiError> {
    // SAFETY: the host passes the state of a live sink, one call at a time.
    unsafe { call_mut(state, |s: &mut Boxed| s.consume(record_import(batch)?)) }
}

unsafe extern "C" fn flush(state: *mut c_void) -> RResult<(), FfiError> {
    // SAFETY: the host passes the state of a live sink, one call at a time.
    unsafe { call_mut(state, |s: &mut Boxed| s.flush()) }
}

unsafe extern "C" fn memory_usage(state: *mut c_void) -> RResult<u64, FfiError> {
    // SAFETY: the host passes the state of a live sink, one call at a time.
    unsafe { call_mut(state, |s: &mut Boxed| Ok(s.memory_usage() as u64)) }
}

unsafe extern "C" fn counters(state: *mut c_void) -> RResult<RString, FfiError> {
    // SAFETY: the host passes the state of a live sink, one call at a time.
    unsafe { call_mut(state, |s: &mut Boxed| to_json(&s.counters())) }
}

impl SinkVTable {
    abi_stable::staticref! {
        const VTABLE: abi_stable::prefix_type::WithMetadata<SinkVTable> =
        abi_stable::prefix_type::WithMetadata::new(SinkVTable {
            begin,
            consume,
            flush,
            memory_usage,
            release: release::<Boxed>,
            counters,
            })
    }
}

/// Wraps an author's sink for the host (plugin side).
pub(crate) fn export(sink: Boxed) -> FfiSink {
    Handle::new(
        SinkVTableRef(SinkVTable::VTABLE.as_prefix()),
        into_state(sink),
    )
}

/// A sink that lives in a plugin, seen by the host as a plain [`Sink`].
pub struct ForeignSink {
    handle: FfiSink,
    /// The failure of the last infallible-looking call (see `Sink::take_failure`).
    failure: Cell<Option<(&'static str, Error)>>,
}

impl std::fmt::Debug for ForeignSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForeignSink")
            .field("handle", &self.handle)
            .finish()
    }
}

impl ForeignSink {
    pub(crate) fn new(handle: FfiSink) -> ForeignSink {
        ForeignSink {
            handle,
            failure: Cell::new(None),
        }
    }
}

impl Sink for ForeignSink {
    fn begin(&mut self, schema: &SchemaRef) -> Result<()> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let schema = FfiSchema::export(schema)?;
        // SAFETY: the handle owns a live sink; the host never calls one instance from two
        // threads at once (`ForeignSink` is not `Sync`).
        into_result(unsafe { (vtable.begin())(state, schema) })
    }

    fn consume(&mut self, batch: RecordBatch) -> Result<()> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        let batch = FfiBatch::export(batch)?;
        // SAFETY: as in `begin`.
        into_result(unsafe { (vtable.consume())(state, batch) })
    }

    fn flush(&mut self) -> Result<()> {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        // SAFETY: as in `begin`.
        into_result(unsafe { (vtable.flush())(state) })
    }

    fn memory_usage(&self) -> usize {
        let (vtable, state) = (self.handle.vtable(), self.handle.state());
        // SAFETY: as in `begin`.
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
