//! The error type every component returns, and the small taxonomy the host acts on.

use std::fmt;
use std::ops::Range;

use arrow::datatypes::Schema;
use arrow::error::ArrowError;

/// What kind of failure an [`Error`] reports. The host decides what to do by kind:
/// a config error is the user's to fix (exit status 2), a resource error may be retried
/// with less in flight, a panic poisons the component instance.
///
/// The numeric values cross the plugin boundary and never change; a value the host does
/// not know is reported as [`ErrorKind::Internal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u32)]
pub enum ErrorKind {
    /// The component's configuration is invalid; the message names the key.
    InvalidConfig = 1,
    /// Reading or writing a file, socket or other resource failed.
    Io = 2,
    /// The data is malformed or does not fit the expected schema; see [`Error::rows`].
    BadData = 3,
    /// Memory or another resource ran out; the host may retry with less in flight.
    ResourceExhausted = 4,
    /// The component panicked; the instance must not be called again.
    Panicked = 5,
    /// The run was cancelled.
    Cancelled = 6,
    /// A bug or an unexpected state inside the component.
    Internal = 7,
}

impl ErrorKind {
    /// The kind with the given wire value; unknown values map to [`ErrorKind::Internal`].
    pub fn from_code(code: u32) -> ErrorKind {
        match code {
            1 => ErrorKind::InvalidConfig,
            2 => ErrorKind::Io,
            3 => ErrorKind::BadData,
            4 => ErrorKind::ResourceExhausted,
            5 => ErrorKind::Panicked,
            6 => ErrorKind::Cancelled,
            _ => ErrorKind::Internal,
        }
    }

    /// The wire value of this kind.
    pub fn code(self) -> u32 {
        self as u32
    }

    fn label(self) -> &'static str {
        match self {
            ErrorKind::InvalidConfig => "invalid config",
            ErrorKind::Io => "i/o error",
            ErrorKind::BadData => "bad data",
            ErrorKind::ResourceExhausted => "resource exhausted",
            ErrorKind::Panicked => "panicked",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// An error from a component: a kind, a message, and the rows involved when known.
///
/// Messages should name what the user can act on: the file, the config key, the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    rows: Option<Range<u64>>,
}

/// The result type of every component method.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            rows: None,
        }
    }

    /// An invalid configuration; the message should name the key.
    pub fn config(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidConfig, message)
    }

    /// An I/O failure.
    pub fn io(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Io, message)
    }

    /// Malformed input data.
    pub fn bad_data(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadData, message)
    }

    /// An internal failure (a bug).
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }

    /// Attaches the range of rows (of the component's input or output) the error concerns.
    pub fn with_rows(mut self, rows: Range<u64>) -> Error {
        self.rows = Some(rows);
        self
    }

    /// Prefixes the message with context, e.g. a file name.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The rows the error concerns, when the component knows them.
    pub fn rows(&self) -> Option<Range<u64>> {
        self.rows.clone()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(rows) = &self.rows {
            write!(f, " (rows {}..{})", rows.start, rows.end)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<ArrowError> for Error {
    fn from(error: ArrowError) -> Error {
        let kind = match &error {
            ArrowError::IoError(..) => ErrorKind::Io,
            ArrowError::MemoryError(_) => ErrorKind::ResourceExhausted,
            ArrowError::ParseError(_)
            | ArrowError::CsvError(_)
            | ArrowError::JsonError(_)
            | ArrowError::SchemaError(_)
            | ArrowError::CastError(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::ParquetError(_)
            | ArrowError::IpcError(_)
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::DivideByZero => ErrorKind::BadData,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, error.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        Error::io(error.to_string())
    }
}

/// A schema's columns as `(name: type, name: type not null, ...)`, for error messages that
/// show what was found against what was expected.
pub fn describe_schema(schema: &Schema) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let null = if f.is_nullable() { "" } else { " not null" };
            format!("{}: {}{null}", f.name(), f.data_type())
        })
        .collect();
    format!("({})", columns.join(", "))
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field};

    use super::*;

    #[test]
    fn schemas_are_described_by_name_type_and_nullability() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
        ]);
        assert_eq!(describe_schema(&schema), "(id: Int64 not null, x: Float64)");
    }

    #[test]
    fn kinds_round_trip_through_their_codes() {
        for kind in [
            ErrorKind::InvalidConfig,
            ErrorKind::Io,
            ErrorKind::BadData,
            ErrorKind::ResourceExhausted,
            ErrorKind::Panicked,
            ErrorKind::Cancelled,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_code(kind.code()), kind);
        }
        assert_eq!(ErrorKind::from_code(999), ErrorKind::Internal);
    }

    #[test]
    fn display_shows_kind_message_and_rows() {
        let error = Error::bad_data("not a number in column `age`").with_rows(10..11);
        assert_eq!(
            error.to_string(),
            "bad data: not a number in column `age` (rows 10..11)"
        );
    }
}
