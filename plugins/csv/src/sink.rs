//! The `csv` sink: writes one CSV file atomically.
//!
//! `begin` refuses an existing output (unless `overwrite = true`) and opens a temporary
//! file beside it (`files::PendingOutput`); `flush` renames it onto the output. A sink
//! dropped without `flush` leaves nothing behind.
//!
//! Values are written so that readers get them back exactly: numbers in their shortest
//! round-trip form (`lexical-core`), `true`/`false`, dates and timestamps in ISO 8601
//! (arrow's formatter), nulls as `null_value` (empty by default). A text value is quoted
//! when it holds the delimiter, the quote, a line break, is empty, or equals `null_value`,
//! so `""` (empty text) and an empty field (null) stay apart.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use lexical_core::ToLexical;
use mlpipe_plugin_api::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, GenericStringArray, PrimitiveArray,
    StringViewArray,
};
use mlpipe_plugin_api::arrow::buffer::NullBuffer;
use mlpipe_plugin_api::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use mlpipe_plugin_api::arrow::error::ArrowError;
use mlpipe_plugin_api::arrow::util::display::{ArrayFormatter, FormatOptions};
use mlpipe_plugin_api::files::{PendingOutput, SyncingFile};
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef, Sink,
};

use crate::dialect::{CR, Dialect, LF, single_byte};

/// How the sink names itself in messages.
const COMPONENT: &str = "sink `csv`";

/// Bytes gathered before a write to the file.
const WRITE_BYTES: usize = 1 << 20;

/// The config keys of the `csv` sink.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new("path", ConfigType::Path, "the output file").required(),
        ConfigKey::new(
            "overwrite",
            ConfigType::Boolean,
            "replace an existing file at `path`",
        )
        .default(false),
        ConfigKey::new(
            "has_header",
            ConfigType::Boolean,
            "write the column names as the first line",
        )
        .default(true),
        ConfigKey::new(
            "delimiter",
            ConfigType::String,
            "the field separator (one byte)",
        )
        .default(","),
        ConfigKey::new(
            "quote",
            ConfigType::String,
            "the quote character, used where a value needs it (one byte)",
        )
        .default("\""),
        ConfigKey::new(
            "null_value",
            ConfigType::String,
            "the text written for a null",
        )
        .default(""),
    ]
}

/// Writes a CSV file through a temporary file renamed on `flush`.
pub(crate) struct CsvSink {
    path: PathBuf,
    overwrite: bool,
    has_header: bool,
    style: Style,
    /// The temporary file, from `begin` to `flush`.
    output: Option<(PendingOutput, BufWriter<SyncingFile>)>,
    /// Rows formatted and not yet written.
    lines: Vec<u8>,
    /// Scratch space for values arrow formats.
    text: String,
    rows: u64,
}

impl CsvSink {
    pub(crate) fn from_config(config: &Config) -> Result<CsvSink> {
        let path: String = config.require("path")?;
        if path.is_empty() {
            return Err(Error::config(format!(
                "key `path` of {COMPONENT} is empty; give the output file, e.g. \"out/data.csv\""
            )));
        }
        let byte = |key: &str| -> Result<u8> {
            let value: String = config.require(key)?;
            Ok(single_byte(&value, key, COMPONENT, false)?.unwrap_or(b','))
        };
        let dialect = Dialect {
            delimiter: byte("delimiter")?,
            quote: Some(byte("quote")?),
            escape: None,
            comment: None,
        }
        .validated(COMPONENT)?;
        let null_value: String = config.require("null_value")?;
        let style = Style {
            delimiter: dialect.delimiter,
            quote: dialect.quote.unwrap_or(b'"'),
            null_value: null_value.clone().into_bytes(),
        };
        if style.null_value.iter().any(|&b| style.special(b)) {
            return Err(Error::config(format!(
                "key `null_value` of {COMPONENT} must not hold the delimiter, the quote or a line break, not {null_value:?}"
            )));
        }
        Ok(CsvSink {
            path: PathBuf::from(path),
            overwrite: config.require("overwrite")?,
            has_header: config.require("has_header")?,
            style,
            output: None,
            lines: Vec::new(),
            text: String::new(),
            rows: 0,
        })
    }
}

/// Writes the formatted lines to the temporary file and empties them.
fn write_out(
    output: &mut Option<(PendingOutput, BufWriter<SyncingFile>)>,
    lines: &mut Vec<u8>,
) -> Result<()> {
    let Some((pending, writer)) = output.as_mut() else {
        return Err(Error::internal(format!(
            "{COMPONENT} was given rows before `begin`"
        )));
    };
    writer
        .write_all(lines)
        .map_err(|e| Error::io(format!("{}: cannot write: {e}", pending.path().display())))?;
    lines.clear();
    Ok(())
}

/// How values are written: the delimiter, the quote and the null marker.
struct Style {
    delimiter: u8,
    quote: u8,
    null_value: Vec<u8>,
}

impl Style {
    /// Whether a byte forces quotes around the value that holds it.
    fn special(&self, byte: u8) -> bool {
        byte == self.delimiter || byte == self.quote || byte == LF || byte == CR
    }

    /// Appends a value, quoted when it needs to be: when it holds a special byte, when it
    /// reads as the null marker (a float NaN under `null_value = "NaN"` too), and when it
    /// is empty `text`.
    fn push_value(&self, line: &mut Vec<u8>, value: &[u8], text: bool) {
        let needs_quotes = (text && value.is_empty())
            || value == self.null_value
            || value.iter().any(|&b| self.special(b));
        if !needs_quotes {
            line.extend_from_slice(value);
            return;
        }
        line.push(self.quote);
        for &byte in value {
            if byte == self.quote {
                line.push(byte);
            }
            line.push(byte);
        }
        line.push(self.quote);
    }
}

impl Sink for CsvSink {
    fn begin(&mut self, schema: &SchemaRef) -> Result<()> {
        if let Some(field) = schema.fields().iter().find(|f| f.data_type().is_nested()) {
            return Err(Error::config(format!(
                "{COMPONENT}: column `{}` has type {}, which has no CSV form; drop it with a `select` transform, or write Parquet or Arrow instead",
                field.name(),
                field.data_type()
            )));
        }
        let (pending, file) = PendingOutput::create(&self.path, self.overwrite)?;
        self.output = Some((pending, BufWriter::with_capacity(WRITE_BYTES, file)));
        if self.has_header {
            for (i, field) in schema.fields().iter().enumerate() {
                if i > 0 {
                    self.lines.push(self.style.delimiter);
                }
                self.style
                    .push_value(&mut self.lines, field.name().as_bytes(), true);
            }
            self.lines.push(LF);
            write_out(&mut self.output, &mut self.lines)?;
        }
        Ok(())
    }

    fn consume(&mut self, batch: RecordBatch) -> Result<()> {
        // A value arrow cannot show (a timestamp out of range) is an error, not text.
        let options = FormatOptions::default().with_display_error(false);
        let cells: Vec<Cells<'_>> = batch
            .columns()
            .iter()
            .map(|array| Cells::new(array, &options))
            .collect::<Result<_>>()?;
        // Nulls as the values mean them: a dictionary's null value, a null-typed column.
        let nulls: Vec<Option<NullBuffer>> =
            batch.columns().iter().map(|a| a.logical_nulls()).collect();
        let CsvSink {
            path,
            style,
            output,
            lines,
            text,
            rows,
            ..
        } = self;
        for row in 0..batch.num_rows() {
            for (i, column) in cells.iter().enumerate() {
                if i > 0 {
                    lines.push(style.delimiter);
                }
                if nulls[i].as_ref().is_some_and(|n| n.is_null(row)) {
                    lines.extend_from_slice(&style.null_value);
                    continue;
                }
                column.write(row, lines, text, style).map_err(|e| {
                    Error::bad_data(format!(
                        "{}: column `{}`, row {}: cannot write the value: {e}; cast or drop \
                         the column before the sink",
                        path.display(),
                        batch.schema().field(i).name(),
                        *rows + row as u64
                    ))
                })?;
            }
            lines.push(LF);
            if lines.len() >= WRITE_BYTES {
                write_out(output, lines)?;
            }
        }
        write_out(output, lines)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let Some((pending, writer)) = self.output.take() else {
            return Err(Error::internal(format!("{COMPONENT}: flush without begin")));
        };
        let file = writer.into_inner().map_err(|e| {
            Error::io(format!(
                "{}: cannot write: {}",
                pending.path().display(),
                e.error()
            ))
        })?;
        pending.commit(file)
    }

    fn memory_usage(&self) -> usize {
        self.lines.capacity() + self.output.as_ref().map_or(0, |(_, w)| w.capacity())
    }

    fn counters(&self) -> Counters {
        vec![("rows written".to_string(), self.rows)]
    }
}

/// One column of a batch, ready to write cell by cell.
enum Cells<'a> {
    Int8(&'a PrimitiveArray<Int8Type>),
    Int16(&'a PrimitiveArray<Int16Type>),
    Int32(&'a PrimitiveArray<Int32Type>),
    Int64(&'a PrimitiveArray<Int64Type>),
    UInt8(&'a PrimitiveArray<UInt8Type>),
    UInt16(&'a PrimitiveArray<UInt16Type>),
    UInt32(&'a PrimitiveArray<UInt32Type>),
    UInt64(&'a PrimitiveArray<UInt64Type>),
    Float32(&'a PrimitiveArray<Float32Type>),
    Float64(&'a PrimitiveArray<Float64Type>),
    Bool(&'a BooleanArray),
    Utf8(&'a GenericStringArray<i32>),
    LargeUtf8(&'a GenericStringArray<i64>),
    Utf8View(&'a StringViewArray),
    /// Anything else arrow can display (dates, timestamps, decimals, dictionaries, ...),
    /// and whether its values are text (a dictionary of strings), which an empty value
    /// must be quoted to stay.
    Formatted(ArrayFormatter<'a>, bool),
}

impl<'a> Cells<'a> {
    fn new(array: &'a ArrayRef, options: &'a FormatOptions<'a>) -> Result<Cells<'a>> {
        Ok(match array.data_type() {
            DataType::Int8 => Cells::Int8(array.as_primitive()),
            DataType::Int16 => Cells::Int16(array.as_primitive()),
            DataType::Int32 => Cells::Int32(array.as_primitive()),
            DataType::Int64 => Cells::Int64(array.as_primitive()),
            DataType::UInt8 => Cells::UInt8(array.as_primitive()),
            DataType::UInt16 => Cells::UInt16(array.as_primitive()),
            DataType::UInt32 => Cells::UInt32(array.as_primitive()),
            DataType::UInt64 => Cells::UInt64(array.as_primitive()),
            DataType::Float32 => Cells::Float32(array.as_primitive()),
            DataType::Float64 => Cells::Float64(array.as_primitive()),
            DataType::Boolean => Cells::Bool(array.as_boolean()),
            DataType::Utf8 => Cells::Utf8(array.as_string()),
            DataType::LargeUtf8 => Cells::LargeUtf8(array.as_string()),
            DataType::Utf8View => Cells::Utf8View(array.as_string_view()),
            other => {
                let text = matches!(other, DataType::Dictionary(_, values)
                    if matches!(**values, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View));
                let formatter = ArrayFormatter::try_new(array.as_ref(), options)?;
                Cells::Formatted(formatter, text)
            }
        })
    }

    /// Appends the value of `row`, which is not null, to `line`.
    fn write(
        &self,
        row: usize,
        line: &mut Vec<u8>,
        text: &mut String,
        style: &Style,
    ) -> std::result::Result<(), ArrowError> {
        match self {
            Cells::Int8(a) => number(a, row, line, style),
            Cells::Int16(a) => number(a, row, line, style),
            Cells::Int32(a) => number(a, row, line, style),
            Cells::Int64(a) => number(a, row, line, style),
            Cells::UInt8(a) => number(a, row, line, style),
            Cells::UInt16(a) => number(a, row, line, style),
            Cells::UInt32(a) => number(a, row, line, style),
            Cells::UInt64(a) => number(a, row, line, style),
            Cells::Float32(a) => number(a, row, line, style),
            Cells::Float64(a) => number(a, row, line, style),
            Cells::Bool(a) => {
                let value: &[u8] = if a.value(row) { b"true" } else { b"false" };
                style.push_value(line, value, false);
            }
            Cells::Utf8(a) => style.push_value(line, a.value(row).as_bytes(), true),
            Cells::LargeUtf8(a) => style.push_value(line, a.value(row).as_bytes(), true),
            Cells::Utf8View(a) => style.push_value(line, a.value(row).as_bytes(), true),
            Cells::Formatted(formatter, is_text) => {
                text.clear();
                formatter.value(row).write(text)?;
                style.push_value(line, text.as_bytes(), *is_text);
            }
        }
        Ok(())
    }
}

/// Appends a number in its shortest form that reads back to the same value.
fn number<T>(array: &PrimitiveArray<T>, row: usize, line: &mut Vec<u8>, style: &Style)
where
    T: ArrowPrimitiveType,
    T::Native: ToLexical,
{
    let mut buffer = [0u8; lexical_core::BUFFER_SIZE];
    let written = lexical_core::write(array.value(row), &mut buffer);
    style.push_value(line, written, false);
}
