//! # mlpipe-plugin-csv
//!
//! The standard CSV plugin: a `csv` source built on arrow's CSV reader.
//!
//! The column types are inferred from the first `infer_rows` records when the source is
//! created (so the schema is known before the run starts); a column with no values in
//! that sample is read as text. The file is then read in batches of the size the host
//! asks for. Errors name the file and, when the reader knows it, the line.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::sync::Arc;

use mlpipe_plugin_api::arrow::csv::reader::{Format, Reader, ReaderBuilder};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
use mlpipe_plugin_api::arrow::error::ArrowError;
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Error, Plugin, RecordBatch, Result, SchemaRef, Source,
};
use regex::Regex;

/// The largest batch the arrow reader is built for, whatever the host asks for: it bounds
/// the reader's buffers (a larger request is answered with batches of this size).
const MAX_READ_ROWS: usize = 1 << 20;

/// The config keys of the `csv` source.
fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new("path", ConfigType::Path, "the CSV file").required(),
        ConfigKey::new(
            "has_header",
            ConfigType::Boolean,
            "whether the first line names the columns",
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
            "the quote character (one byte)",
        )
        .default("\""),
        ConfigKey::new(
            "null_values",
            ConfigType::StringList,
            "fields equal to one of these are null",
        )
        .default(vec![""]),
        ConfigKey::new(
            "infer_rows",
            ConfigType::Integer,
            "rows read to infer the column types",
        )
        .default(1000),
    ]
}

/// Reads a CSV file.
struct CsvSource {
    path: String,
    schema: SchemaRef,
    infer_rows: usize,
    /// The file and format until the first `next_batch` builds the reader.
    pending_open: Option<(File, Format)>,
    reader: Option<Reader<File>>,
    /// Rows read by the arrow reader but not yet returned.
    remainder: Option<RecordBatch>,
}

impl CsvSource {
    fn from_config(config: &Config) -> Result<CsvSource> {
        let path: String = config.require("path")?;
        let has_header: bool = config.require("has_header")?;
        let delimiter = single_byte(config, "delimiter")?;
        let quote = single_byte(config, "quote")?;
        let null_values: Vec<String> = config.require("null_values")?;
        let infer_rows: i64 = config.require("infer_rows")?;
        let infer_rows = usize::try_from(infer_rows)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                Error::config(format!(
                    "key `infer_rows` must be at least 1, not {infer_rows} (it is the number of rows read to infer the column types)"
                ))
            })?;

        let format = Format::default()
            .with_header(has_header)
            .with_delimiter(delimiter)
            .with_quote(quote)
            .with_null_regex(null_regex(&null_values)?);

        let mut file = File::open(&path).map_err(|e| {
            Error::io(format!(
                "{path}: cannot open the CSV file: {e} (check the `path` key; a relative path is resolved against the pipeline file's directory)"
            ))
        })?;
        let (inferred, _) = format
            .infer_schema(BufReader::new(&file), Some(infer_rows))
            .map_err(|e| reader_error(&path, e, None))?;
        if inferred.fields().is_empty() {
            return Err(Error::bad_data(format!(
                "{path}: the file is empty; a CSV source needs at least a header line or one row"
            )));
        }
        file.rewind()
            .map_err(|e| Error::io(format!("{path}: cannot seek back to the start: {e}")))?;

        Ok(CsvSource {
            path,
            schema: Arc::new(text_for_untyped(&inferred)),
            infer_rows,
            pending_open: Some((file, format)),
            reader: None,
            remainder: None,
        })
    }

    /// The next batch from the arrow reader, building it on first use with `max_rows`.
    fn read(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        if let Some((file, format)) = self.pending_open.take() {
            let reader = ReaderBuilder::new(self.schema.clone())
                .with_format(format)
                .with_batch_size(max_rows.clamp(1, MAX_READ_ROWS))
                .build(file)
                .map_err(|e| reader_error(&self.path, e, None))?;
            self.reader = Some(reader);
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        match reader.next() {
            None => {
                self.reader = None;
                Ok(None)
            }
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(e)) => {
                // The reader cannot resume after an error.
                self.reader = None;
                Err(reader_error(
                    &self.path,
                    e,
                    Some((&self.schema, self.infer_rows)),
                ))
            }
        }
    }
}

impl Source for CsvSource {
    fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let max_rows = max_rows.max(1);
        let batch = match self.remainder.take() {
            Some(batch) => batch,
            None => loop {
                match self.read(max_rows)? {
                    Some(batch) if batch.num_rows() == 0 => continue,
                    Some(batch) => break batch,
                    None => return Ok(None),
                }
            },
        };
        let batch = if batch.num_rows() > max_rows {
            self.remainder = Some(batch.slice(max_rows, batch.num_rows() - max_rows));
            batch.slice(0, max_rows)
        } else {
            batch
        };
        Ok(Some(batch))
    }

    fn memory_usage(&self) -> usize {
        self.remainder
            .as_ref()
            .map_or(0, RecordBatch::get_array_memory_size)
    }
}

/// A string key that must be exactly one byte (a delimiter, a quote).
fn single_byte(config: &Config, key: &str) -> Result<u8> {
    let value: String = config.require(key)?;
    match value.as_bytes() {
        [byte] => Ok(*byte),
        _ => Err(Error::config(format!(
            "key `{key}` of source `csv` must be exactly one byte (one ASCII character, e.g. \",\", \";\" or \"\\t\"), not {value:?}"
        ))),
    }
}

/// A regex matching exactly the given field values.
fn null_regex(null_values: &[String]) -> Result<Regex> {
    let pattern = if null_values.is_empty() {
        // An empty class never matches: no field is null.
        "[^\\s\\S]".to_string()
    } else {
        let alternatives: Vec<String> = null_values.iter().map(|v| regex::escape(v)).collect();
        format!("^(?:{})$", alternatives.join("|"))
    };
    Regex::new(&pattern).map_err(|e| {
        Error::config(format!(
            "key `null_values`: cannot build a matcher for {null_values:?}: {e}"
        ))
    })
}

/// The inferred schema with every column that had no values in the sample read as text,
/// so that values after the sample are kept rather than read as nulls.
fn text_for_untyped(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            DataType::Null => field.as_ref().clone().with_data_type(DataType::Utf8),
            _ => field.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// An error of the arrow reader, naming the file (arrow's message names the line). A
/// parse error while reading (after inference, with the `schema` read and the `infer_rows`
/// of the sample) names the column and gets a hint about `infer_rows`.
fn reader_error(path: &str, error: ArrowError, reading: Option<(&Schema, usize)>) -> Error {
    let message = match (&error, reading) {
        (ArrowError::ParseError(detail), Some((schema, infer_rows))) => format!(
            "{path}: {} (the column types were inferred from the first {infer_rows} rows; if a column's later values have another type, raise `infer_rows`)",
            locate_parse_error(detail, schema)
        ),
        _ => format!("{path}: {error}"),
    };
    Error::new(Error::from(error).kind(), message)
}

/// Rewrites arrow's "for column 3 at line 41" in a value-parsing error, which counts
/// columns from 0 and lines from 0 (the header being line 0), as "for column `name` at
/// line 42" counting lines from 1 like an editor. Leaves other messages unchanged.
fn locate_parse_error(detail: &str, schema: &Schema) -> String {
    let Ok(pattern) = Regex::new(r"for column (\d+) at line (\d+)") else {
        return detail.to_string();
    };
    let Some(captures) = pattern.captures(detail) else {
        return detail.to_string();
    };
    let (Some(whole), Some(column), Some(line)) =
        (captures.get(0), captures.get(1), captures.get(2))
    else {
        return detail.to_string();
    };
    let name = column
        .as_str()
        .parse::<usize>()
        .ok()
        .and_then(|index| schema.fields().get(index));
    let (Some(field), Ok(line)) = (name, line.as_str().parse::<usize>()) else {
        return detail.to_string();
    };
    format!(
        "{}for column `{}` at line {}{}",
        &detail[..whole.start()],
        field.name(),
        line + 1,
        &detail[whole.end()..]
    )
}

/// The plugin definition the host loads.
fn plugin() -> Plugin {
    Plugin::new("csv", env!("CARGO_PKG_VERSION")).source(
        "csv",
        "reads a CSV file, inferring the column types from its first rows",
        keys(),
        CsvSource::from_config,
    )
}

mlpipe_plugin_api::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use mlpipe_plugin_api::arrow::array::{Array, AsArray};
    use mlpipe_plugin_api::arrow::datatypes::{DataType, Float64Type, Int64Type};
    use mlpipe_plugin_api::{ErrorKind, RecordBatch, Source};
    use serde_json::{Value, json};

    use super::plugin;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn open_source(config: Value) -> Box<dyn Source> {
        plugin().create_source("csv", &config).unwrap()
    }

    fn read_all(source: &mut dyn Source, max_rows: usize) -> Vec<RecordBatch> {
        let mut batches = Vec::new();
        while let Some(batch) = source.next_batch(max_rows).unwrap() {
            assert!(batch.num_rows() <= max_rows);
            assert_eq!(batch.schema().fields(), source.schema().unwrap().fields());
            batches.push(batch);
        }
        batches
    }

    #[test]
    fn reads_a_file_with_header_inferring_types() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "a.csv",
            "id,score,name\n1,0.5,ann\n2,1.5,bob\n3,2,cy\n",
        );
        let mut source = open_source(json!({ "path": path }));
        let schema = source.schema().unwrap();
        let types: Vec<&DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            [&DataType::Int64, &DataType::Float64, &DataType::Utf8]
        );
        assert_eq!(schema.field(0).name(), "id");

        let batches = read_all(source.as_mut(), 2);
        assert_eq!(
            batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [2, 1]
        );
        let ids = batches[1].column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.value(0), 3);
        let scores = batches[0].column(1).as_primitive::<Float64Type>();
        assert_eq!(scores.value(1), 1.5);
        assert_eq!(batches[1].column(2).as_string::<i32>().value(0), "cy");
        assert!(source.next_batch(2).unwrap().is_none());
    }

    #[test]
    fn max_rows_is_honoured_even_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = std::iter::once("n\n".to_string())
            .chain((0..10).map(|i| format!("{i}\n")))
            .collect();
        let path = write(dir.path(), "n.csv", &text);
        let mut source = open_source(json!({ "path": path }));
        let mut seen = Vec::new();
        for max_rows in [4, 3, 1, 100, 100] {
            if let Some(batch) = source.next_batch(max_rows).unwrap() {
                assert!(batch.num_rows() <= max_rows);
                let values = batch.column(0).as_primitive::<Int64Type>();
                seen.extend(values.values().iter().copied());
            }
        }
        assert_eq!(seen, (0..10).collect::<Vec<i64>>());
        assert!(source.next_batch(5).unwrap().is_none());
    }

    #[test]
    fn null_values_become_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "n.csv", "a,b\n1,x\nNA,\n3,NA\n");
        let mut source = open_source(json!({ "path": path, "null_values": ["NA", ""] }));
        let batch = read_all(source.as_mut(), 100).remove(0);
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Int64);
        let a = batch.column(0);
        assert!(a.is_valid(0) && a.is_null(1) && a.is_valid(2));
        let b = batch.column(1);
        assert!(b.is_valid(0) && b.is_null(1) && b.is_null(2));

        // With no null values, an empty field is an empty string.
        let path = write(dir.path(), "e.csv", "s\nx\n\"\"\n");
        let mut source = open_source(json!({ "path": path, "null_values": [] }));
        let batch = read_all(source.as_mut(), 100).remove(0);
        assert_eq!(batch.column(0).null_count(), 0);
        assert_eq!(batch.column(0).as_string::<i32>().value(1), "");
    }

    #[test]
    fn null_values_are_literal_not_regex() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "n.csv", "s\nN.A\nNxA\n");
        let mut source = open_source(json!({ "path": path, "null_values": ["N.A"] }));
        let batch = read_all(source.as_mut(), 100).remove(0);
        assert!(batch.column(0).is_null(0));
        assert!(batch.column(0).is_valid(1));
    }

    #[test]
    fn a_quoted_field_may_contain_the_delimiter() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "q.csv", "name;note\nann;'a;b'\nbob;plain\n");
        let mut source = open_source(json!({ "path": path, "delimiter": ";", "quote": "'" }));
        let batch = read_all(source.as_mut(), 100).remove(0);
        assert_eq!(batch.num_columns(), 2);
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "a;b");

        let path = write(dir.path(), "d.csv", "name,note\nann,\"a,b\"\n");
        let mut source = open_source(json!({ "path": path }));
        let batch = read_all(source.as_mut(), 100).remove(0);
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "a,b");
    }

    #[test]
    fn without_header_columns_are_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "h.csv", "1,2\n3,4\n");
        let mut source = open_source(json!({ "path": path, "has_header": false }));
        let schema = source.schema().unwrap();
        assert_eq!(schema.field(0).name(), "column_1");
        let rows: usize = read_all(source.as_mut(), 100)
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 2);
    }

    #[test]
    fn columns_empty_in_the_sample_are_read_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "s.csv", "a,b\n1,\n2,\n3,late\n");
        let mut source = open_source(json!({ "path": path, "infer_rows": 2 }));
        assert_eq!(
            source.schema().unwrap().field(1).data_type(),
            &DataType::Utf8
        );
        let batch = read_all(source.as_mut(), 100).remove(0);
        assert_eq!(batch.column(1).as_string::<i32>().value(2), "late");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.csv");
        let err = plugin()
            .create_source("csv", &json!({ "path": path }))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.message().contains(&*path.to_string_lossy()), "{err}");
    }

    #[test]
    fn bad_delimiter_and_quote_are_config_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "a.csv", "a\n1\n");
        for (key, value) in [("delimiter", ";;"), ("delimiter", ""), ("quote", "«")] {
            let err = plugin()
                .create_source("csv", &json!({ "path": path, key: value }))
                .err()
                .unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig);
            assert!(err.message().contains(&format!("key `{key}`")), "{err}");
        }
        let err = plugin()
            .create_source("csv", &json!({ "path": path, "infer_rows": 0 }))
            .err()
            .unwrap();
        assert!(err.message().contains("`infer_rows`"), "{err}");
    }

    #[test]
    fn bad_rows_are_errors_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "bad.csv", "a,b\n1,2\n3,4\n5,6,7\n");
        // Within the inference sample: creating the source fails.
        let err = plugin()
            .create_source("csv", &json!({ "path": path }))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::BadData);
        assert!(err.message().contains(&*path.to_string_lossy()), "{err}");
        assert!(err.message().contains("line 4"), "{err}");
        // After the sample: reading fails.
        let mut source = open_source(json!({ "path": path, "infer_rows": 1 }));
        let err = source.next_batch(100).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadData);
        assert!(err.message().contains(&*path.to_string_lossy()), "{err}");
        assert!(err.message().contains("line 4"), "{err}");
        assert!(source.next_batch(100).unwrap().is_none());

        let path = write(dir.path(), "late.csv", "n\n1\n2\nthree\n");
        let mut source = open_source(json!({ "path": path, "infer_rows": 2 }));
        let err = source.next_batch(100).unwrap_err();
        assert!(err.message().contains("late.csv"), "{err}");
        assert!(err.message().contains("for column `n` at line 4"), "{err}");
        assert!(err.message().contains("infer_rows"), "{err}");
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "empty.csv", "");
        let err = plugin()
            .create_source("csv", &json!({ "path": path }))
            .err()
            .unwrap();
        assert!(err.message().contains("empty.csv"), "{err}");
    }
}
