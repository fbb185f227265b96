//! The schema of an NDJSON dataset: given in the config, or inferred from a sample of its
//! first values.
//!
//! The sample is parsed with serde_json (strict RFC 8259: what it rejects is not JSON) and
//! the types are inferred by arrow-json's `infer_json_schema_from_iterator`, the inference
//! arrow-json's own reader uses. Values are read from the bytes as they come, so a value
//! may span several lines; two values on one line are an error, as NDJSON has one a line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
use mlpipe_plugin_api::arrow::ffi::FFI_ArrowSchema;
use mlpipe_plugin_api::arrow::json::reader::infer_json_schema_from_iterator;
use mlpipe_plugin_api::{Error, Result, SchemaRef};
use serde_json::{Map, Value};

/// The byte-order mark some editors put at the start of a UTF-8 file; it is skipped.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The name of the one column of a file whose values are not objects.
pub(crate) const VALUE_COLUMN: &str = "value";

/// What the rows of a dataset are.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// The columns of the batches.
    pub(crate) schema: SchemaRef,
    /// Whether each row is a JSON value of the one column [`VALUE_COLUMN`] (a file of
    /// numbers, arrays or strings) rather than an object with a key per column.
    pub(crate) values: bool,
    /// Whether the schema was inferred: every string column of an inferred schema (nested
    /// ones too) reads numbers and booleans as their JSON text, past the inference sample
    /// too — inference makes a column of mixed kinds (`1`, `"a"`, `true`) a string column,
    /// and a guess from a sample should not fail on the value after it. A given schema is
    /// held to strictly.
    pub(crate) inferred: bool,
}

/// Why a name holding a NUL character cannot be a column's.
const NUL_IN_NAME: &str = "contains a NUL character, which a column name cannot hold \
                           (Arrow's C Data Interface passes names as C strings)";

/// The first key of `value`, at any depth, holding a NUL character.
fn key_with_nul(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, value)| {
            if key.contains('\0') {
                Some(key.as_str())
            } else {
                key_with_nul(value)
            }
        }),
        Value::Array(items) => items.iter().find_map(key_with_nul),
        _ => None,
    }
}

/// The schema given as a list of `"name: Type"` entries, `Type` in Arrow's notation
/// (`Int64`, `Utf8`, `List(Int64)`, `Timestamp(µs, "UTC")`, ...), optionally followed by
/// `not null`.
pub(crate) fn parse_schema(entries: &[String]) -> Result<Layout> {
    if entries.is_empty() {
        return Err(Error::config(
            "key `schema` of source `ndjson` is empty; list the columns as \"name: Type\", or omit the key to infer them",
        ));
    }
    let fields = entries
        .iter()
        .map(|entry| {
            let bad = |why: String| {
                Error::config(format!(
                    "key `schema` of source `ndjson`: {entry:?} {why}; write each column as \
                     \"name: Type\", e.g. \"id: Int64\", \"tags: List(Utf8)\", \"ts: Timestamp(ms)\" \
                     (append \"not null\" for a required column)"
                ))
            };
            let Some((name, ty)) = entry.split_once(": ") else {
                return Err(bad("has no \": \"".to_string()));
            };
            let ty = ty.trim();
            let (ty, nullable) = match ty.strip_suffix("not null") {
                Some(ty) => (ty.trim_end(), false),
                None => (ty, true),
            };
            let data_type: DataType = ty.parse().map_err(|e| bad(format!("has an unknown type: {e}")))?;
            Ok(Field::new(name.trim(), data_type, nullable))
        })
        .collect::<Result<Vec<Field>>>()?;
    let schema = Schema::new(fields);
    // The schema must cross the plugin boundary as the batches will: checked as it will
    // be, at any depth of any type (a name holding a NUL character fails here).
    if let Err(e) = FFI_ArrowSchema::try_from(&schema) {
        return Err(Error::config(format!(
            "key `schema` of source `ndjson`: these columns cannot cross the plugin boundary \
             (Arrow's C Data Interface): {e}; a column name cannot hold a NUL character"
        )));
    }
    Ok(Layout {
        schema: Arc::new(schema),
        values: false,
        inferred: false,
    })
}

/// Infers the layout from the first `limit` values of the files (all of them when `None`).
pub(crate) fn infer(files: &[PathBuf], limit: Option<usize>) -> Result<Layout> {
    // The rows to infer from, each with the file (its index) and line its value is on.
    let mut sample: Vec<(Value, usize, u64)> = Vec::new();
    let mut first_kind: Option<(bool, String)> = None;
    for (file_index, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::io(format!("{name}: cannot open: {e}")))?;
        let mut values = Values::new(BufReader::with_capacity(1 << 16, file));
        while limit.is_none_or(|limit| sample.len() < limit) {
            let Some((value, line)) = values
                .next()
                .map_err(|e| e.context(format!("{name}:{}", values.line)))?
            else {
                break;
            };
            if let Some(key) = key_with_nul(&value) {
                return Err(Error::bad_data(format!(
                    "{name}:{line}: the key {key:?} {NUL_IN_NAME}"
                )));
            }
            let is_object = value.is_object();
            match &first_kind {
                None => first_kind = Some((is_object, format!("{name}:{line}"))),
                Some((objects, at)) if *objects != is_object => {
                    let (this, those) = if is_object {
                        ("an object", "values that are not objects")
                    } else {
                        ("not an object", "objects")
                    };
                    return Err(Error::bad_data(format!(
                        "{name}:{line}: this value is {this}, but the rows before it (from {at}) are {those}; \
                         every row must be an object, or none"
                    )));
                }
                Some(_) => {}
            }
            let row = if is_object {
                value
            } else {
                Value::Object(Map::from_iter([(VALUE_COLUMN.to_string(), value)]))
            };
            sample.push((row, file_index, line));
        }
    }
    let Some((objects, _)) = first_kind else {
        return Err(Error::bad_data(format!(
            "{}: no JSON value to infer the columns from; give them with the `schema` key",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    // Inference fails at the value that cannot be typed (with the values before it).
    let mut at = (0, 0);
    let schema = infer_json_schema_from_iterator(sample.iter().map(|(row, file, line)| {
        at = (*file, *line);
        Ok(row)
    }))
    .map_err(|e| {
        let (file, line) = at;
        Error::bad_data(format!(
            "{}:{line}: cannot infer the columns from this value and those before it: {e}; \
             give them with the `schema` key",
            files[file].display()
        ))
    })?;
    Ok(Layout {
        schema: Arc::new(schema),
        values: !objects,
        inferred: true,
    })
}

/// The JSON values of a reader, in order, with the line each starts on.
struct Values<R> {
    reader: R,
    /// Bytes read and not yet parsed start at `position`; whole lines only.
    buffer: Vec<u8>,
    position: usize,
    /// The line `position` is on (from 1).
    line: u64,
    ended: bool,
}

impl<R: BufRead> Values<R> {
    fn new(reader: R) -> Values<R> {
        Values {
            reader,
            buffer: Vec::new(),
            position: 0,
            line: 1,
            ended: false,
        }
    }

    /// Reads whole lines until at least `bytes` more are buffered or the input ends.
    fn fill(&mut self, bytes: usize) -> Result<()> {
        if self.position > 1 << 20 {
            self.buffer.drain(..self.position);
            self.position = 0;
        }
        let target = self.buffer.len() + bytes;
        while self.buffer.len() < target {
            let start = self.buffer.len();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buffer)
                .map_err(|e| Error::io(format!("cannot read: {e}")))?;
            if read == 0 {
                self.ended = true;
                break;
            }
            if start == 0 && self.line == 1 && self.buffer.starts_with(BOM) {
                self.buffer.drain(..BOM.len());
            }
        }
        Ok(())
    }

    /// Moves past `bytes` parsed or blank bytes, counting lines.
    fn advance(&mut self, bytes: usize) {
        let passed = &self.buffer[self.position..self.position + bytes];
        self.line += passed.iter().filter(|&&b| b == b'\n').count() as u64;
        self.position += bytes;
    }

    /// The next value and the line it starts on, or `None` at the end.
    fn next(&mut self) -> Result<Option<(Value, u64)>> {
        loop {
            let blank = self.buffer[self.position..]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .count();
            self.advance(blank);
            if self.position == self.buffer.len() {
                if self.ended {
                    return Ok(None);
                }
                self.fill(1 << 16)?;
                continue;
            }
            let mut stream = serde_json::Deserializer::from_slice(&self.buffer[self.position..])
                .into_iter::<Value>();
            match stream.next() {
                Some(Ok(value)) => {
                    let length = stream.byte_offset();
                    let rest = &self.buffer[self.position + length..];
                    let after = rest.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\r'));
                    if after.is_some_and(|&b| b != b'\n') {
                        let line = self.line
                            + self.buffer[self.position..self.position + length]
                                .iter()
                                .filter(|&&b| b == b'\n')
                                .count() as u64;
                        self.line = line;
                        return Err(Error::bad_data(
                            "a second JSON value on the line; NDJSON has one value a line",
                        ));
                    }
                    let line = self.line;
                    self.advance(length);
                    return Ok(Some((value, line)));
                }
                Some(Err(e)) if e.is_eof() && !self.ended => {
                    let unparsed = self.buffer.len() - self.position;
                    self.fill(unparsed.max(1 << 16))?;
                }
                Some(Err(e)) if e.is_eof() => {
                    return Err(Error::bad_data("the input ends inside a JSON value"));
                }
                Some(Err(e)) => {
                    // An error found at a newline (a control character in a string) comes
                    // at column 0 of the line after it: the newline ends the line before.
                    let at_newline = usize::from(e.column() == 0);
                    self.line += (e.line() - at_newline).saturating_sub(1) as u64;
                    // The position serde_json adds is relative to the value; the caller
                    // names the line.
                    let message = e.to_string();
                    let message = message
                        .rsplit_once(" at line ")
                        .map_or(message.as_str(), |(m, _)| m);
                    return Err(Error::bad_data(format!("not valid JSON: {message}")));
                }
                None => return Ok(None),
            }
        }
    }
}
