//! A component instance behind the boundary: an opaque state pointer, a vtable, and the
//! guarded calls that turn panics into errors and poison the instance.
//!
//! The plugin side boxes the author's component in an [`Instance`] and hands out its
//! address as `state`; only plugin-side code ever casts it back. The host side holds a
//! [`Handle`] and calls the vtable's functions with that pointer; dropping the handle
//! calls the vtable's `release` exactly once.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

use abi_stable::StableAbi;
use abi_stable::std_types::RResult;

use super::error::{FfiError, guard, panic_message};
use crate::error::{Error, ErrorKind, Result};

/// The plugin-side state of a component.
pub(crate) struct Instance<C> {
    component: C,
    poisoned: AtomicBool,
}

/// Boxes a component and returns its address as an opaque state pointer.
pub(crate) fn into_state<C>(component: C) -> *mut c_void {
    Box::into_raw(Box::new(Instance {
        component,
        poisoned: AtomicBool::new(false),
    }))
    .cast()
}

fn poisoned_error() -> Error {
    Error::new(
        ErrorKind::Panicked,
        "the component panicked in an earlier call and cannot be used again",
    )
}

fn record_panic<R>(poisoned: &AtomicBool, result: RResult<R, FfiError>) -> RResult<R, FfiError> {
    if let RResult::RErr(error) = &result
        && error.kind() == ErrorKind::Panicked
    {
        poisoned.store(true, Ordering::Release);
    }
    result
}

/// Calls `body` with exclusive access to the component behind `state`.
///
/// # Safety
/// `state` must come from [`into_state::<C>`], not be released yet, and not be in use by
/// another call (the host serializes calls to one instance).
pub(crate) unsafe fn call_mut<C, R>(
    state: *mut c_void,
    body: impl FnOnce(&mut C) -> Result<R>,
) -> RResult<R, FfiError> {
    // SAFETY: the caller guarantees that `state` is a live, unaliased `Instance<C>`.
    let instance = unsafe { &mut *state.cast::<Instance<C>>() };
    if instance.poisoned.load(Ordering::Acquire) {
        return RResult::RErr(poisoned_error().into());
    }
    let result = guard(|| body(&mut instance.component));
    record_panic(&instance.poisoned, result)
}

/// Calls `body` with shared access to the component behind `state` (kernels, which may
/// be called from several threads at once).
///
/// # Safety
/// `state` must come from [`into_state::<C>`] with `C: Sync`, and not be released yet.
pub(crate) unsafe fn call_ref<C: Sync, R>(
    state: *mut c_void,
    body: impl FnOnce(&C) -> Result<R>,
) -> RResult<R, FfiError> {
    // SAFETY: the caller guarantees that `state` is a live `Instance<C>`; only shared
    // references are made, and `C: Sync` allows them on several threads at once.
    let instance = unsafe { &*state.cast::<Instance<C>>() };
    if instance.poisoned.load(Ordering::Acquire) {
        return RResult::RErr(poisoned_error().into());
    }
    let result = guard(|| body(&instance.component));
    record_panic(&instance.poisoned, result)
}

/// Drops the component behind `state`. A panic in its destructor is reported on standard
/// error and otherwise ignored: there is no caller left to return it to.
///
/// # Safety
/// `state` must come from [`into_state::<C>`] and not be used again afterwards.
pub(crate) unsafe extern "C" fn release<C>(state: *mut c_void) {
    // SAFETY: the caller guarantees that `state` came from `into_state::<C>` and hands
    // its ownership back here, once.
    let instance = unsafe { Box::from_raw(state.cast::<Instance<C>>()) };
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(instance)))
    {
        eprintln!(
            "mlpipe: a plugin component panicked while being dropped: {}",
            panic_message(payload.as_ref())
        );
    }
}

/// The vtables of all component kinds end in the same `release` entry.
pub trait VTable: Copy {
    /// The vtable's `release` function.
    fn release_fn(&self) -> unsafe extern "C" fn(*mut c_void);
}

/// A component created by a plugin: its vtable and its opaque state.
#[repr(C)]
#[derive(StableAbi)]
pub struct Handle<V: VTable> {
    vtable: V,
    state: *mut c_void,
}

impl<V: VTable> Handle<V> {
    pub(crate) fn new(vtable: V, state: *mut c_void) -> Handle<V> {
        Handle { vtable, state }
    }

    pub(crate) fn vtable(&self) -> V {
        self.vtable
    }

    pub(crate) fn state(&self) -> *mut c_void {
        self.state
    }
}

impl<V: VTable> Drop for Handle<V> {
    fn drop(&mut self) {
        // SAFETY: `state` was created with this vtable's component type, and a handle is
        // the single owner of its state: it is released here, once.
        unsafe { (self.vtable.release_fn())(self.state) }
    }
}

// SAFETY: the state is an `Instance` of a component that is `Send` (the traits require
// it), and the handle is its single owner, so moving the handle to another thread moves
// the component with it.
unsafe impl<V: VTable + Send> Send for Handle<V> {}

impl<V: VTable> std::fmt::Debug for Handle<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("state", &self.state)
            .finish()
    }
}
