//! # mlpipe-plugin-parquet
//!
//! The standard Parquet plugin:
//!
//! - source `parquet` reads a Parquet dataset (a file, a list, a glob or a directory of
//!   files), decoding its columns on several threads a chunk at a time; a column
//!   projection and a row filter are pushed into the reader, and row groups whose
//!   statistics rule out a match are never read;
//! - sink `parquet` writes one Parquet file **atomically**: into a temporary file beside the
//!   output, fsynced and renamed onto the output by a successful `flush`. A sink dropped
//!   without a successful flush (a failed run) deletes its temporary file, so a failed run
//!   leaves nothing behind.

mod dataset;
mod decode;
mod encoder;
mod encryption;
mod positioned;
mod sink;
mod source;

use mlpipe_plugin_api::{Config, Error, ErrorKind, MEMORY_BUDGET_KEY, Plugin, Result};
use parquet::errors::ParquetError;

/// The plugin definition the host loads.
fn plugin() -> Plugin {
    Plugin::new("parquet", env!("CARGO_PKG_VERSION"))
        .source(
            "parquet",
            "reads a Parquet file or dataset on several threads, with column projection and a row filter pushed into the reader",
            source::keys(),
            source::ParquetSource::from_config,
        )
        .sink(
            "parquet",
            "writes a Parquet file atomically (temporary file, renamed on success), encoding columns on its own threads",
            sink::keys(),
            sink::ParquetSink::from_config,
        )
}

/// A Parquet library error as a component error: failures of the underlying file are I/O
/// errors, everything else is about the data. `context` names the file and what failed.
/// Half the component's `memory_budget` (one buffer in use while the next fills), at most
/// `most`; `most` when the component was made without one.
fn half_the_budget(config: &Config, most: u64) -> Result<u64> {
    Ok(config
        .byte_size(MEMORY_BUDGET_KEY)?
        .map_or(most, |budget| (budget / 2).clamp(1, most)))
}

fn parquet_error(context: impl std::fmt::Display, error: ParquetError) -> Error {
    let kind = match &error {
        ParquetError::External(_) => ErrorKind::Io,
        _ => ErrorKind::BadData,
    };
    Error::new(kind, format!("{context}: {error}"))
}

/// Runs `read` (arrow-rs reading a file) and turns a panic into an error: arrow-rs 60
/// panics on some malformed files (e.g. in its bitmap reader), and a damaged input must
/// be an error that names the file, not a crash. `context` names the file and the part.
fn guarded<T>(
    context: impl Fn() -> String,
    read: impl FnOnce() -> mlpipe_plugin_api::Result<T>,
) -> mlpipe_plugin_api::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::bad_data(format!(
            "{}: the Parquet reader failed on this data ({message}); the file is corrupt",
            context()
        )))
    })
}

mlpipe_plugin_api::export_plugin!(plugin);

#[cfg(test)]
pub(crate) mod tests {
    use std::fs::File;
    use std::path::Path;
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use mlpipe_plugin_api::arrow::compute::concat_batches;
    use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
    use mlpipe_plugin_api::{ErrorKind, RecordBatch, SchemaRef, Sink, Source};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Compression;
    use serde_json::{Value, json};

    use super::plugin;

    pub(crate) fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("score", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    pub(crate) fn batch(start: i64, rows: i64) -> RecordBatch {
        let ids: Vec<i64> = (start..start + rows).collect();
        let scores: Vec<Option<f64>> = ids
            .iter()
            .map(|&i| (i % 3 != 0).then_some(i as f64 / 2.0))
            .collect();
        let names: Vec<Option<String>> = ids
            .iter()
            .map(|&i| (i % 4 != 0).then(|| format!("n{i}")))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Float64Array::from(scores)),
            Arc::new(StringArray::from(names)),
        ];
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    pub(crate) fn open_sink(config: Value) -> Box<dyn Sink> {
        plugin().create_sink("parquet", &config).unwrap()
    }

    pub(crate) fn open_source(config: Value) -> Box<dyn Source> {
        plugin().create_source("parquet", &config).unwrap()
    }

    pub(crate) fn write(path: &Path, extra: Value, batches: &[RecordBatch]) {
        let mut config = json!({ "path": path });
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        let mut sink = open_sink(config);
        sink.begin(&schema()).unwrap();
        for batch in batches {
            sink.consume(batch.clone()).unwrap();
        }
        sink.flush().unwrap();
    }

    pub(crate) fn read_all(source: &mut dyn Source, max_rows: usize) -> RecordBatch {
        let schema = source.schema().unwrap();
        let mut batches = Vec::new();
        while let Some(batch) = source.next_batch(max_rows).unwrap() {
            assert!(batch.num_rows() <= max_rows);
            assert_eq!(batch.schema().fields(), schema.fields());
            batches.push(batch);
        }
        concat_batches(&schema, &batches).unwrap()
    }

    pub(crate) fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn sink_then_source_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/sub/data.parquet");
        let input = [batch(0, 5), batch(5, 7)];
        write(&path, json!({}), &input);
        // Only the output is left: no temporary file.
        assert_eq!(entries(&dir.path().join("out/sub")), ["data.parquet"]);

        let mut source = open_source(json!({ "path": path }));
        assert_eq!(source.schema().unwrap().fields(), schema().fields());
        assert_eq!(source.size_hint(), Some(12));
        let read = read_all(source.as_mut(), 5);
        let expected = concat_batches(&schema(), &input).unwrap();
        assert_eq!(read, expected);
        assert!(source.next_batch(5).unwrap().is_none());
    }

    #[test]
    fn every_compression_round_trips_and_row_groups_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let input = [batch(0, 10)];
        for (codec, expected) in [
            ("zstd", Compression::ZSTD(Default::default())),
            ("snappy", Compression::SNAPPY),
            ("lz4", Compression::LZ4_RAW),
            ("gzip", Compression::GZIP(Default::default())),
            ("none", Compression::UNCOMPRESSED),
        ] {
            let path = dir.path().join(format!("{codec}.parquet"));
            write(
                &path,
                json!({ "compression": codec, "row_group_rows": 3 }),
                &input,
            );
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
            let metadata = builder.metadata();
            assert_eq!(metadata.num_row_groups(), 4, "{codec}");
            assert_eq!(metadata.row_group(0).column(0).compression(), expected);
            let read = read_all(open_source(json!({ "path": path })).as_mut(), 100);
            assert_eq!(read, input[0], "{codec}");
        }
    }

    #[test]
    fn an_empty_run_writes_a_readable_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.parquet");
        write(&path, json!({}), &[]);
        let mut source = open_source(json!({ "path": path }));
        assert_eq!(source.schema().unwrap().fields(), schema().fields());
        assert_eq!(source.size_hint(), Some(0));
        assert!(source.next_batch(100).unwrap().is_none());
    }

    #[test]
    fn the_source_projects_columns_in_the_requested_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        write(&path, json!({}), &[batch(0, 6)]);
        let mut source = open_source(json!({ "path": path, "columns": ["name", "id"] }));
        let schema = source.schema().unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["name", "id"]);
        let read = read_all(source.as_mut(), 4);
        let expected = batch(0, 6).project(&[2, 0]).unwrap();
        assert_eq!(read, expected);
    }

    #[test]
    fn unknown_projected_columns_are_config_errors_listing_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        write(&path, json!({}), &[batch(0, 2)]);
        let err = plugin()
            .create_source(
                "parquet",
                &json!({ "path": path, "columns": ["id", "nmae"] }),
            )
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.message().contains("no column `nmae`"), "{err}");
        assert!(err.message().contains("id, score, name"), "{err}");
        let err = plugin()
            .create_source("parquet", &json!({ "path": path, "columns": ["id", "id"] }))
            .err()
            .unwrap();
        assert!(err.message().contains("`id` twice"), "{err}");
    }

    #[test]
    fn source_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.parquet");
        let err = plugin()
            .create_source("parquet", &json!({ "path": missing }))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.message().contains("missing.parquet"), "{err}");

        let not_parquet = dir.path().join("a.csv");
        std::fs::write(&not_parquet, "a,b\n1,2\n").unwrap();
        let err = plugin()
            .create_source("parquet", &json!({ "path": not_parquet }))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::BadData);
        assert!(
            err.message()
                .contains("a.csv is not a readable Parquet file"),
            "{err}"
        );
    }

    #[test]
    fn the_sink_refuses_to_overwrite_unless_told_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        write(&path, json!({}), &[batch(0, 3)]);

        let mut refusing = open_sink(json!({ "path": path }));
        let err = refusing.begin(&schema()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.message().contains(&*path.to_string_lossy()), "{err}");
        assert!(err.message().contains("overwrite = true"), "{err}");
        drop(refusing);
        // The old file is intact and nothing else was created.
        assert_eq!(entries(dir.path()), ["out.parquet"]);
        let read = read_all(open_source(json!({ "path": path })).as_mut(), 100);
        assert_eq!(read, batch(0, 3));

        write(&path, json!({ "overwrite": true }), &[batch(10, 2)]);
        let read = read_all(open_source(json!({ "path": path })).as_mut(), 100);
        assert_eq!(read, batch(10, 2));
        assert_eq!(entries(dir.path()), ["out.parquet"]);
    }

    #[test]
    fn a_sink_dropped_without_flush_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let mut sink = open_sink(json!({ "path": path }));
        sink.begin(&schema()).unwrap();
        sink.consume(batch(0, 4)).unwrap();
        assert_eq!(entries(dir.path()).len(), 1, "the temporary file");
        assert!(!path.exists());
        drop(sink);
        assert!(!path.exists());
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));

        // Also when the failure left an existing output: it stays untouched.
        write(&path, json!({}), &[batch(0, 1)]);
        let mut sink = open_sink(json!({ "path": path, "overwrite": true }));
        sink.consume(batch(0, 4)).unwrap();
        drop(sink);
        assert_eq!(entries(dir.path()), ["out.parquet"]);
        let read = read_all(open_source(json!({ "path": path })).as_mut(), 100);
        assert_eq!(read, batch(0, 1));
    }

    #[test]
    fn consume_before_begin_begins_from_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lazy.parquet");
        let mut sink = open_sink(json!({ "path": path }));
        sink.consume(batch(0, 3)).unwrap();
        sink.consume(batch(3, 3)).unwrap();
        sink.flush().unwrap();
        sink.flush().unwrap();
        drop(sink);
        let read = read_all(open_source(json!({ "path": path })).as_mut(), 100);
        assert_eq!(read, batch(0, 6));
    }

    #[test]
    fn a_batch_of_another_schema_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        let mut sink = open_sink(json!({ "path": path }));
        sink.begin(&schema()).unwrap();
        let other = batch(0, 2).project(&[0]).unwrap();
        let err = sink.consume(other).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadData);
        assert!(err.message().contains("x.parquet"), "{err}");
        assert!(err.message().contains("(id: Int64 not null)"), "{err}");
        drop(sink);
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn bad_sink_configs_name_the_key() {
        let plugin = plugin();
        let err = plugin
            .create_sink(
                "parquet",
                &json!({ "path": "x.parquet", "compression": "bzip2" }),
            )
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.message().contains("`compression`"), "{err}");
        assert!(
            err.message().contains("zstd, snappy, lz4, gzip, none"),
            "{err}"
        );
        let err = plugin
            .create_sink(
                "parquet",
                &json!({ "path": "x.parquet", "row_group_rows": 0 }),
            )
            .err()
            .unwrap();
        assert!(err.message().contains("`row_group_rows`"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let mut sink = plugin
            .create_sink("parquet", &json!({ "path": dir.path(), "overwrite": true }))
            .unwrap();
        let err = sink.begin(&schema()).unwrap_err();
        assert!(err.message().contains("is a directory"), "{err}");
    }
}
