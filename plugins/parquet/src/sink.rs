//! The `parquet` sink: writes one Parquet file, or with `max_rows_per_file` a directory of
//! shards (`part-00000.parquet`, `part-00001.parquet`, …), atomically.
//!
//! Every file is written to a temporary file beside its final name
//! ([`PendingOutput`]); `flush` renames them all into place. Dropping the sink without a
//! successful `flush` deletes them, so a failed run leaves nothing behind — not even the
//! shards it had finished. Columns are encoded in parallel ([`ParallelWriter`]).

use std::fs;
use std::path::PathBuf;

use mlpipe_plugin_api::files::{PendingOutput, SyncingFile};
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef, Sink,
    describe_schema,
};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::encoder::{GroupLimits, ParallelWriter};
use crate::{half_the_budget, parquet_error};

/// The accepted values of `compression`, as listed in error messages.
const COMPRESSIONS: &str = "zstd, snappy, lz4, gzip, none";

/// The zstd levels the sink takes: the usual ones, and zstd's fast levels (no entropy
/// coding of literals; faster, larger files).
const ZSTD_LEVELS: &str = "1..=22, or a fast level from -1 down to -131072";

/// The config keys of the `parquet` sink.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "path",
            ConfigType::Path,
            "the output file; with `max_rows_per_file`, the directory of the shards",
        )
        .required(),
        ConfigKey::new(
            "compression",
            ConfigType::String,
            "the compression codec: zstd, snappy, lz4, gzip or none",
        )
        .default("zstd"),
        ConfigKey::new(
            "compression_level",
            ConfigType::Integer,
            format!(
                "the codec's level (default: zstd 1, gzip 6): zstd {ZSTD_LEVELS} (faster, larger files), gzip 0..=10"
            ),
        ),
        ConfigKey::new(
            "overwrite",
            ConfigType::Boolean,
            "replace an existing file (or the shards in the directory) at `path`",
        )
        .default(false),
        ConfigKey::new(
            "row_group_rows",
            ConfigType::Integer,
            "rows per row group, at most",
        )
        .default(1_048_576),
        ConfigKey::new(
            "row_group_bytes",
            ConfigType::ByteSize,
            "Arrow bytes per row group, at most (the sink holds about a row group's encoded pages, so this bounds its memory); default: half the sink's memory_budget, at most 32MiB",
        ),
        ConfigKey::memory_budget(
            "bytes the sink holds in encoded pages and queued batches: sets the default row_group_bytes (the host gives the sink its share of pipeline.memory_budget)",
        ),
        ConfigKey::new(
            "statistics",
            ConfigType::Boolean,
            "write min/max/null-count statistics per row group and per page (readers skip data by them)",
        )
        .default(true),
        ConfigKey::new(
            "dictionary",
            ConfigType::String,
            "dictionary encoding: auto (every column but floating-point ones; 64-bit columns fall back to plain after 16,384 distinct values a row group), on or off",
        )
        .default("auto"),
        ConfigKey::new(
            "max_rows_per_file",
            ConfigType::Integer,
            "write a directory of files of at most this many rows each (part-00000.parquet, ...) instead of one file",
        ),
        ConfigKey::new(
            "threads",
            ConfigType::Integer,
            "threads that encode columns in parallel; 0 = one per core",
        )
        .default(0),
    ]
}

/// Arrow bytes per row group when neither `row_group_bytes` nor a `memory_budget` below
/// twice this says less.
const ROW_GROUP_BYTES: u64 = 32 << 20;

/// Under `dictionary = "auto"`, the dictionary of a 64-bit column's chunk may grow to this
/// many bytes (16,384 distinct values) before the writer falls back to plain encoding,
/// instead of the 1 MiB other columns get: such columns are often keys or timestamps whose
/// values never repeat, and interning 131,072 of them per row group only to fall back
/// cost 7 % of the CPU time of Parquet → Parquet on the benchmark table (its `id`).
const WIDE_DICTIONARY_BYTES: usize = 128 << 10;

/// When to encode a column with a dictionary.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dictionary {
    /// Every column but floating-point ones, whose values rarely repeat: there the
    /// dictionary costs time and saves nothing (measured: ~25 % of the encode time of the
    /// benchmark dataset). 64-bit columns get a smaller dictionary
    /// ([`WIDE_DICTIONARY_BYTES`]).
    Auto,
    On,
    Off,
}

/// A file being written: where it goes and its writer.
struct OpenFile {
    output: PendingOutput,
    writer: ParallelWriter,
    rows: usize,
}

/// Writes a Parquet file, or a directory of shards.
pub(crate) struct ParquetSink {
    path: PathBuf,
    compression: Compression,
    overwrite: bool,
    row_groups: GroupLimits,
    statistics: bool,
    dictionary: Dictionary,
    max_rows_per_file: Option<usize>,
    threads: usize,
    /// The schema given to `begin` (or of the first batch), and the writer properties
    /// made for it.
    schema: Option<(SchemaRef, WriterProperties)>,
    /// The file being written.
    open: Option<OpenFile>,
    /// Finished files, waiting for `flush` to move them into place.
    done: Vec<(PendingOutput, SyncingFile)>,
    rows: u64,
    /// Files moved into place by `flush`.
    published: usize,
    /// Set by a successful `flush`.
    flushed: bool,
}

impl ParquetSink {
    /// Builds the sink from its validated config; touches no file yet.
    pub(crate) fn from_config(config: &Config) -> Result<ParquetSink> {
        let path: String = config.require("path")?;
        if path.is_empty() {
            return Err(Error::config(
                "key `path` of sink `parquet` is empty; give the output file, e.g. \"out/data.parquet\"",
            ));
        }
        let positive = |key: &str| -> Result<Option<usize>> {
            match config.get::<i64>(key)? {
                None => Ok(None),
                Some(n) => usize::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .map(Some)
                    .ok_or_else(|| {
                        Error::config(format!(
                            "key `{key}` of sink `parquet` must be at least 1, not {n}"
                        ))
                    }),
            }
        };
        let dictionary = match config.require::<String>("dictionary")?.as_str() {
            "auto" => Dictionary::Auto,
            "on" => Dictionary::On,
            "off" => Dictionary::Off,
            other => {
                return Err(Error::config(format!(
                    "key `dictionary` of sink `parquet` must be auto, on or off, not {other:?}"
                )));
            }
        };
        let threads = match config.require::<usize>("threads")? {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(ParquetSink {
            path: PathBuf::from(path),
            compression: parse_compression(
                &config.require::<String>("compression")?,
                config.get("compression_level")?,
            )?,
            overwrite: config.require("overwrite")?,
            row_groups: GroupLimits {
                rows: positive("row_group_rows")?.unwrap_or(1 << 20),
                bytes: match config.byte_size("row_group_bytes")? {
                    Some(0) => {
                        return Err(Error::config(
                            "key `row_group_bytes` of sink `parquet` must be a positive byte size",
                        ));
                    }
                    Some(bytes) => usize::try_from(bytes).unwrap_or(usize::MAX),
                    None => usize::try_from(half_the_budget(config, ROW_GROUP_BYTES)?)
                        .unwrap_or(usize::MAX),
                },
            },
            statistics: config.require("statistics")?,
            dictionary,
            max_rows_per_file: positive("max_rows_per_file")?,
            threads,
            schema: None,
            open: None,
            done: Vec::new(),
            rows: 0,
            published: 0,
            flushed: false,
        })
    }

    /// The writer properties for files of `schema`.
    fn properties(&self, schema: &SchemaRef) -> WriterProperties {
        let statistics = if self.statistics {
            EnabledStatistics::Page
        } else {
            EnabledStatistics::None
        };
        let mut properties = WriterProperties::builder()
            .set_compression(self.compression)
            .set_statistics_enabled(statistics)
            .set_dictionary_enabled(self.dictionary != Dictionary::Off);
        if self.dictionary == Dictionary::Auto {
            for field in schema.fields() {
                let column = ColumnPath::new(vec![field.name().clone()]);
                let ty = field.data_type();
                if ty.is_floating() {
                    properties = properties.set_column_dictionary_enabled(column, false);
                } else if ty.primitive_width() == Some(8) {
                    properties = properties
                        .set_column_dictionary_page_size_limit(column, WIDE_DICTIONARY_BYTES);
                }
            }
        }
        properties.build()
    }

    /// The path of shard `index`.
    fn shard_path(&self, index: usize) -> PathBuf {
        self.path.join(format!("part-{index:05}.parquet"))
    }

    /// The shards a directory holds (files named like ours).
    fn existing_shards(&self) -> Result<Vec<PathBuf>> {
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::io(format!(
                    "{}: cannot list the output directory: {e}",
                    self.path.display()
                )));
            }
        };
        let mut shards = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(format!("{}: {e}", self.path.display())))?;
            let path = path.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| is_shard_name(&n)) {
                shards.push(path);
            }
        }
        Ok(shards)
    }

    /// Refuses a sharded output whose directory is a file, or holds shards already
    /// (unless `overwrite`).
    fn check_directory(&self) -> Result<()> {
        let shown = self.path.display();
        if self.path.is_file() {
            return Err(Error::config(format!(
                "{shown} is a file, but with `max_rows_per_file` the sink's `path` names the directory of the shards"
            )));
        }
        if !self.overwrite && !self.existing_shards()?.is_empty() {
            return Err(Error::config(format!(
                "{shown} already holds shards (part-*.parquet); set `overwrite = true` on the sink to replace them, or choose another `path`"
            )));
        }
        Ok(())
    }

    /// Starts the next file.
    fn open_next(&mut self) -> Result<()> {
        let Some((schema, properties)) = &self.schema else {
            return Err(Error::internal("the sink was not begun"));
        };
        let path = match self.max_rows_per_file {
            Some(_) => self.shard_path(self.done.len()),
            None => self.path.clone(),
        };
        let (output, file) = PendingOutput::create(&path, self.overwrite)?;
        let writer = ParallelWriter::try_new(
            file,
            schema.clone(),
            properties.clone(),
            self.row_groups,
            self.threads,
        )
        .map_err(|e| {
            parquet_error(
                format!("{}: cannot write this schema as Parquet", path.display()),
                e,
            )
        })?;
        self.open = Some(OpenFile {
            output,
            writer,
            rows: 0,
        });
        Ok(())
    }

    /// Finishes the file being written; it waits in `done` for `flush`.
    fn close_open(&mut self) -> Result<()> {
        if let Some(open) = self.open.take() {
            let shown = open.output.path().display().to_string();
            let mut file = open
                .writer
                .finish()
                .map_err(|e| parquet_error(format!("{shown}: cannot finish the file"), e))?;
            // A shard waiting for `flush` keeps no syncing thread.
            file.stop_syncing().map_err(|e| {
                Error::io(format!(
                    "{shown}: a background sync of the file failed: {e}"
                ))
            })?;
            self.done.push((open.output, file));
        }
        Ok(())
    }

    /// Moves every finished file into place; with `overwrite`, deletes the shards of an
    /// earlier run that this one did not replace.
    fn publish(&mut self) -> Result<()> {
        let written = self.done.len();
        for (output, file) in self.done.drain(..) {
            output.commit(file)?;
            self.published += 1;
        }
        if self.max_rows_per_file.is_some() && self.overwrite {
            let ours: Vec<PathBuf> = (0..written).map(|i| self.shard_path(i)).collect();
            for stale in self.existing_shards()? {
                if !ours.contains(&stale) {
                    fs::remove_file(&stale).map_err(|e| {
                        Error::io(format!(
                            "{}: cannot delete this shard of an earlier run: {e}",
                            stale.display()
                        ))
                    })?;
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let limit = self.max_rows_per_file.unwrap_or(usize::MAX);
            if self.open.is_none() {
                self.open_next()?;
            }
            let Some(open) = self.open.as_mut() else {
                return Err(Error::internal("no file open after opening one"));
            };
            let take = (limit - open.rows).min(batch.num_rows() - offset);
            open.writer.write(&batch.slice(offset, take)).map_err(|e| {
                parquet_error(
                    format!("{}: cannot write a batch", open.output.path().display()),
                    e,
                )
            })?;
            open.rows += take;
            offset += take;
            if open.rows == limit {
                self.close_open()?;
            }
        }
        Ok(())
    }
}

/// Whether a file name is one of ours: `part-` + digits + `.parquet`.
fn is_shard_name(name: &str) -> bool {
    name.strip_prefix("part-")
        .and_then(|rest| rest.strip_suffix(".parquet"))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

impl Sink for ParquetSink {
    fn begin(&mut self, schema: &SchemaRef) -> Result<()> {
        if self.flushed {
            return Err(Error::internal(format!(
                "{}: begin called after flush; the output is already written",
                self.path.display()
            )));
        }
        if self.schema.is_some() {
            return Ok(());
        }
        if self.max_rows_per_file.is_some() {
            self.check_directory()?;
        }
        self.schema = Some((schema.clone(), self.properties(schema)));
        // The first file is created at once, so that an empty run still writes a
        // readable (empty) file and a refused output is reported before any data.
        self.open_next()
    }

    fn consume(&mut self, batch: RecordBatch) -> Result<()> {
        if self.schema.is_none() {
            self.begin(&batch.schema())?;
        }
        let Some((schema, _)) = &self.schema else {
            return Err(Error::internal("no schema after begin"));
        };
        // The writer does not check this itself: a batch missing a column would corrupt
        // the file.
        if batch.schema().fields() != schema.fields() {
            return Err(Error::bad_data(format!(
                "{}: a batch has the columns {} but the output was begun with {}; every batch must have the same schema",
                self.path.display(),
                describe_schema(&batch.schema()),
                describe_schema(schema)
            )));
        }
        self.rows += batch.num_rows() as u64;
        self.write(&batch)
    }

    fn flush(&mut self) -> Result<()> {
        if self.flushed {
            return Ok(());
        }
        if self.schema.is_none() {
            return Err(Error::internal(format!(
                "{}: flush before begin or any batch: no schema is known, so nothing was written",
                self.path.display()
            )));
        }
        self.close_open()?;
        self.publish()?;
        self.flushed = true;
        Ok(())
    }

    fn memory_usage(&self) -> usize {
        self.open.as_ref().map_or(0, |o| o.writer.memory_size())
    }

    fn counters(&self) -> Counters {
        let files = self.published + self.done.len() + usize::from(self.open.is_some());
        vec![
            ("rows written".to_string(), self.rows),
            ("files written".to_string(), files as u64),
        ]
    }
}

/// The codec named by the `compression` key, at `level` when given.
fn parse_compression(name: &str, level: Option<i64>) -> Result<Compression> {
    let bad_level = |range: &str| {
        Error::config(format!(
            "key `compression_level` of sink `parquet`: {} is not a {name} level; use {range}",
            level.unwrap_or_default()
        ))
    };
    match (name.to_ascii_lowercase().as_str(), level) {
        ("zstd", None) => Ok(Compression::ZSTD(ZstdLevel::default())),
        ("zstd", Some(level)) => i32::try_from(level)
            .ok()
            .and_then(|l| ZstdLevel::try_new(l).ok())
            // zstd reads 0 as its default level, 3: a level is asked for by its number.
            .filter(|_| level != 0)
            .map(Compression::ZSTD)
            .ok_or_else(|| bad_level(ZSTD_LEVELS)),
        ("gzip", None) => Ok(Compression::GZIP(GzipLevel::default())),
        ("gzip", Some(level)) => u32::try_from(level)
            .ok()
            .and_then(|l| GzipLevel::try_new(l).ok())
            .map(Compression::GZIP)
            .ok_or_else(|| bad_level("0..=10")),
        ("snappy" | "lz4" | "none" | "uncompressed", Some(_)) => Err(Error::config(format!(
            "key `compression_level` of sink `parquet`: {name} has no levels; remove the key, or use zstd or gzip"
        ))),
        ("snappy", None) => Ok(Compression::SNAPPY),
        ("lz4", None) => Ok(Compression::LZ4_RAW),
        ("none" | "uncompressed", None) => Ok(Compression::UNCOMPRESSED),
        _ => Err(Error::config(format!(
            "key `compression` of sink `parquet` must be one of {COMPRESSIONS}, not {name:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::path::Path;
    use std::sync::Arc;

    use mlpipe_plugin_api::ErrorKind;
    use mlpipe_plugin_api::arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use serde_json::json;

    use super::is_shard_name;
    use crate::tests::{batch, entries, open_sink, open_source, read_all, schema, write};

    #[test]
    fn only_our_shard_names_are_ours() {
        assert!(is_shard_name("part-00000.parquet"));
        assert!(is_shard_name("part-123456.parquet"));
        for other in [
            "part-.parquet",
            "part-1.parq",
            "data.parquet",
            "part-1a.parquet",
            ".part-00000.parquet",
        ] {
            assert!(!is_shard_name(other), "{other}");
        }
    }

    fn rows_of(path: &Path) -> i64 {
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        reader.metadata().file_metadata().num_rows()
    }

    #[test]
    fn shards_hold_at_most_max_rows_and_appear_only_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("train");
        let mut sink = open_sink(json!({ "path": out, "max_rows_per_file": 4 }));
        sink.begin(&schema()).unwrap();
        for start in [0, 3, 6, 9] {
            sink.consume(batch(start, 3)).unwrap();
        }
        // Finished shards wait, hidden, for the flush.
        assert!(
            entries(&out).iter().all(|name| name.starts_with('.')),
            "{:?}",
            entries(&out)
        );
        sink.flush().unwrap();
        assert_eq!(
            entries(&out),
            [
                "part-00000.parquet",
                "part-00001.parquet",
                "part-00002.parquet"
            ]
        );
        let rows: Vec<i64> = entries(&out)
            .iter()
            .map(|n| rows_of(&out.join(n)))
            .collect();
        assert_eq!(rows, [4, 4, 4]);
        // The report, read after the flush, counts what was written.
        assert_eq!(
            sink.counters(),
            [
                ("rows written".to_string(), 12),
                ("files written".to_string(), 3)
            ]
        );
        let mut source = open_source(json!({ "path": out }));
        assert_eq!(read_all(source.as_mut(), 100), batch(0, 12));

        // A failed run leaves no shard behind, finished or not.
        let failed = dir.path().join("failed");
        let mut sink = open_sink(json!({ "path": failed, "max_rows_per_file": 2 }));
        sink.consume(batch(0, 5)).unwrap();
        drop(sink);
        assert!(entries(&failed).is_empty(), "{:?}", entries(&failed));
    }

    #[test]
    fn shards_are_replaced_only_with_overwrite_and_then_all_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("data");
        let config = json!({ "path": out, "max_rows_per_file": 2 });
        write(&out, json!({ "max_rows_per_file": 2 }), &[batch(0, 5)]);
        assert_eq!(entries(&out).len(), 3);
        let mut refused = open_sink(config.clone());
        let error = refused.begin(&schema()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidConfig);
        assert!(error.message().contains("overwrite = true"), "{error}");
        drop(refused);
        write(
            &out,
            json!({ "max_rows_per_file": 2, "overwrite": true }),
            &[batch(10, 1)],
        );
        assert_eq!(entries(&out), ["part-00000.parquet"]);
        let mut source = open_source(json!({ "path": out }));
        assert_eq!(read_all(source.as_mut(), 100), batch(10, 1));

        let file = dir.path().join("file.parquet");
        write(&file, json!({}), &[batch(0, 1)]);
        let mut sink = open_sink(json!({ "path": file, "max_rows_per_file": 2 }));
        let error = sink.begin(&schema()).unwrap_err();
        assert!(
            error
                .message()
                .contains("names the directory of the shards"),
            "{error}"
        );
    }

    #[test]
    fn row_groups_close_at_their_rows_or_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let groups = |config: serde_json::Value| -> Vec<i64> {
            let path = dir.path().join("groups.parquet");
            write(&path, config, &[batch(0, 700), batch(700, 300)]);
            let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
            let groups = reader
                .metadata()
                .row_groups()
                .iter()
                .map(|g| g.num_rows())
                .collect();
            let mut source = open_source(json!({ "path": path }));
            assert_eq!(read_all(source.as_mut(), 1000), batch(0, 1000));
            groups
        };
        assert_eq!(
            groups(json!({ "row_group_rows": 400, "overwrite": true })),
            [400, 400, 200]
        );
        // A tenth of the rows' bytes closes a group every hundred rows or so.
        let bytes: usize = batch(0, 1000)
            .columns()
            .iter()
            .map(|c| c.to_data().get_slice_memory_size().unwrap())
            .sum();
        let by_bytes = groups(json!({ "row_group_bytes": bytes / 10, "overwrite": true }));
        assert!((9..=12).contains(&by_bytes.len()), "{by_bytes:?}");
        assert_eq!(by_bytes.iter().sum::<i64>(), 1000);
        // Without row_group_bytes, half the memory budget the host hands the sink; a
        // row_group_bytes given wins.
        let by_budget = groups(json!({ "memory_budget": bytes / 5, "overwrite": true }));
        assert_eq!(by_budget, by_bytes);
        let both =
            json!({ "memory_budget": bytes / 5, "row_group_bytes": bytes, "overwrite": true });
        assert_eq!(groups(both), [1000]);
        let error =
            open_sink_error(json!({ "path": dir.path().join("x.parquet"), "row_group_bytes": 0 }));
        assert!(error.contains("`row_group_bytes`"), "{error}");
    }

    #[test]
    fn the_memory_reported_follows_the_row_groups_and_never_wraps() {
        // Many row groups, each closed writer's memory taken back once: the report stays
        // within what a few row groups hold (a wrapped counter reads as exabytes).
        let dir = tempfile::tempdir().unwrap();
        let mut sink = open_sink(json!({
            "path": dir.path().join("m.parquet"), "row_group_rows": 50, "threads": 2
        }));
        sink.begin(&schema()).unwrap();
        let mut most = 0;
        for start in (0..5000).step_by(100) {
            sink.consume(batch(start, 100)).unwrap();
            most = most.max(sink.memory_usage());
        }
        assert!(most > 0 && most < 64 << 20, "{most}");
        sink.flush().unwrap();
        assert!(sink.memory_usage() < 64 << 20, "{}", sink.memory_usage());
    }

    fn open_sink_error(config: serde_json::Value) -> String {
        match crate::plugin().create_sink("parquet", &config) {
            Ok(_) => panic!("the config was accepted: {config}"),
            Err(error) => error.message().to_string(),
        }
    }

    /// The encodings of each column chunk of the first row group, and whether it has
    /// statistics.
    fn chunks(path: &Path) -> Vec<(Vec<Encoding>, bool)> {
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        let group = reader.metadata().row_group(0);
        group
            .columns()
            .iter()
            .map(|c| (c.encodings().collect(), c.statistics().is_some()))
            .collect()
    }

    #[test]
    fn dictionary_and_statistics_settings_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let dictionary = |columns: &[(Vec<Encoding>, bool)]| -> Vec<bool> {
            columns
                .iter()
                .map(|(encodings, _)| encodings.contains(&Encoding::RLE_DICTIONARY))
                .collect()
        };
        // Columns: id (int64), score (float64), name (string).
        for (setting, expected) in [
            ("auto", [true, false, true]),
            ("on", [true, true, true]),
            ("off", [false, false, false]),
        ] {
            let path = dir.path().join(format!("{setting}.parquet"));
            write(&path, json!({ "dictionary": setting }), &[batch(0, 100)]);
            assert_eq!(dictionary(&chunks(&path)), expected, "{setting}");
        }
        // A 64-bit column whose values do not repeat falls back to plain encoding early
        // (after 16,384 distinct values, not 131,072); one whose values repeat keeps its
        // dictionary.
        let wide = dir.path().join("wide.parquet");
        let rows = 100_000;
        let unique: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        let repeating: ArrayRef =
            Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i % 1000)));
        let table =
            RecordBatch::try_from_iter([("unique", unique), ("repeating", repeating)]).unwrap();
        let mut sink = open_sink(json!({ "path": wide }));
        sink.begin(&table.schema()).unwrap();
        sink.consume(table).unwrap();
        sink.flush().unwrap();
        let reader = SerializedFileReader::new(File::open(&wide).unwrap()).unwrap();
        let group = reader.metadata().row_group(0);
        let dictionary_bytes = |column: usize| {
            let chunk = group.column(column);
            chunk.data_page_offset() - chunk.dictionary_page_offset().unwrap()
        };
        assert!(dictionary_bytes(0) <= 140 << 10, "{}", dictionary_bytes(0));
        assert!(dictionary_bytes(1) < 10 << 10, "{}", dictionary_bytes(1));
        assert_eq!(dictionary(&chunks(&wide)), [true, true]);
        let with = dir.path().join("stats.parquet");
        write(&with, json!({}), &[batch(0, 10)]);
        assert!(chunks(&with).iter().all(|(_, stats)| *stats));
        let without = dir.path().join("nostats.parquet");
        write(&without, json!({ "statistics": false }), &[batch(0, 10)]);
        assert!(chunks(&without).iter().all(|(_, stats)| !*stats));
    }

    #[test]
    fn compression_levels_are_checked_per_codec() {
        let dir = tempfile::tempdir().unwrap();
        let size = |level: i64| {
            let path = dir.path().join(format!("z{level}.parquet"));
            let many: Vec<_> = (0..20).map(|i| batch(i * 1000, 1000)).collect();
            write(&path, json!({ "compression_level": level }), &many);
            std::fs::metadata(&path).unwrap().len()
        };
        let (default_size, fast_size) = (size(1), size(-5));
        assert!(
            size(19) < default_size,
            "a higher zstd level compresses more"
        );
        // A fast level leaves the literals unencoded: a larger file, which reads back.
        assert!(
            default_size < fast_size,
            "a fast zstd level compresses less"
        );
        let mut fast = open_source(json!({ "path": dir.path().join("z-5.parquet") }));
        let back = read_all(fast.as_mut(), 20_000);
        assert_eq!(back, batch(0, 20_000));
        for level in [22, -1, -131_072] {
            let config = json!({ "path": "x.parquet", "compression_level": level });
            assert!(
                crate::plugin().create_sink("parquet", &config).is_ok(),
                "{level}"
            );
        }
        let error = |config: serde_json::Value| {
            crate::plugin()
                .create_sink("parquet", &config)
                .err()
                .expect("refused")
                .to_string()
        };
        let zstd = error(json!({ "path": "x.parquet", "compression_level": 0 }));
        assert!(
            zstd.contains("0 is not a zstd level; use 1..=22, or a fast level from -1"),
            "{zstd}"
        );
        let too_fast = error(json!({ "path": "x.parquet", "compression_level": -131073 }));
        assert!(
            too_fast.contains("-131073 is not a zstd level"),
            "{too_fast}"
        );
        let gzip = error(json!({ "path": "x", "compression": "gzip", "compression_level": 11 }));
        assert!(gzip.contains("use 0..=10"), "{gzip}");
        let snappy = error(json!({ "path": "x", "compression": "snappy", "compression_level": 3 }));
        assert!(snappy.contains("snappy has no levels"), "{snappy}");
        let dictionary = error(json!({ "path": "x", "dictionary": "maybe" }));
        assert!(
            dictionary.contains("must be auto, on or off"),
            "{dictionary}"
        );
        let shards = error(json!({ "path": "x", "max_rows_per_file": 0 }));
        assert!(
            shards.contains("`max_rows_per_file` of sink `parquet` must be at least 1"),
            "{shards}"
        );
    }
}
