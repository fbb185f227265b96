//! Errors as they cross the boundary, and the panic guard every exported call runs under.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::StableAbi;
use abi_stable::std_types::{RResult, RString};

use crate::error::{Error, ErrorKind};

/// An [`Error`] in its wire form: the kind as an integer, the message, the row range.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiError {
    kind: u32,
    message: RString,
    has_rows: bool,
    rows_start: u64,
    rows_end: u64,
}

impl FfiError {
    pub(crate) fn kind(&self) -> ErrorKind {
        ErrorKind::from_code(self.kind)
    }
}

impl From<Error> for FfiError {
    fn from(error: Error) -> FfiError {
        let rows = error.rows();
        FfiError {
            kind: error.kind().code(),
            message: error.message().into(),
            has_rows: rows.is_some(),
            rows_start: rows.as_ref().map_or(0, |r| r.start),
            rows_end: rows.map_or(0, |r| r.end),
        }
    }
}

impl From<FfiError> for Error {
    fn from(error: FfiError) -> Error {
        let converted = Error::new(
            ErrorKind::from_code(error.kind),
            error.message.into_string(),
        );
        if error.has_rows {
            converted.with_rows(error.rows_start..error.rows_end)
        } else {
            converted
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// Runs `body` under `catch_unwind`: a panic becomes an [`ErrorKind::Panicked`] error
/// instead of unwinding into the caller (which would abort the host process).
pub(crate) fn guard<T>(body: impl FnOnce() -> Result<T, Error>) -> RResult<T, FfiError> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(error)) => RResult::RErr(error.into()),
        Err(payload) => {
            RResult::RErr(Error::new(ErrorKind::Panicked, panic_message(payload.as_ref())).into())
        }
    }
}

/// Converts a call's wire result into a plain result.
pub(crate) fn into_result<T>(result: RResult<T, FfiError>) -> Result<T, Error> {
    result.into_result().map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_kind_message_and_rows_across_the_wire() {
        let original = Error::bad_data("bad row").with_rows(5..9);
        let back = Error::from(FfiError::from(original.clone()));
        assert_eq!(back, original);
    }

    #[test]
    fn guard_turns_a_panic_into_an_error() {
        let result = into_result(guard(|| -> Result<(), Error> { panic!("boom {}", 7) }));
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Panicked);
        assert_eq!(error.message(), "boom 7");
    }
}
