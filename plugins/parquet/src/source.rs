//! The `parquet` source: reads a dataset of Parquet files (a file, a list, a glob or a
//! directory) in file order, decoding row groups on several threads, with an optional
//! column projection and row filter pushed into the reader.
//!
//! The source reads a *segment* at a time (one row group, or a run of small ones of one
//! file) through a reader per column kept open ([`ColumnStreams`]), and decodes one chunk
//! of every column at a time, on several threads — so what it holds is one chunk of
//! decoded rows (about `CHUNK_BYTES`), however large the row groups are. With a filter,
//! row groups whose statistics rule out a match are never read, and a segment's filter
//! columns are decoded first and the other columns only for the matching rows.

use std::collections::VecDeque;
use std::path::PathBuf;

use mlpipe_plugin_api::columns::Selection;
use mlpipe_plugin_api::predicate::Predicate;
use mlpipe_plugin_api::{
    ComponentKind, Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef,
    Source, equal_batch_rows, files,
};

use crate::dataset::{Columns, DICTIONARY_READABLE, DatasetFile};
use crate::decode::{ColumnStreams, Segment, select};
use crate::half_the_budget;

/// The largest batch the readers are built for, whatever the host asks for.
const MAX_READ_ROWS: usize = 1 << 20;

/// Decoded bytes a reader's chunk (all columns) aims at, at most: half the source's
/// `memory_budget` (one chunk is handed out while the next decodes) where that is less.
/// A segment is handed out in equal batches of at most the rows the host asks for (a row
/// group of 1,000,000 rows in 16 batches of 62,500 rather than 15 of 65,536 and a rest),
/// and chunks are a whole number of them, so that every batch is a zero-copy slice of one
/// chunk.
const CHUNK_BYTES: u64 = 32 << 20;

/// Consecutive small row groups are read as one segment up to this many uncompressed
/// bytes, so that tiny row groups do not each cost a reader per column.
const SEGMENT_BYTES: u64 = 8 << 20;

/// The config keys of the `parquet` source.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "path",
            ConfigType::Paths,
            "the Parquet file, or a list, glob pattern or directory of files (one dataset, read in order)",
        )
        .required(),
        ConfigKey::new(
            "columns",
            ConfigType::StringList,
            "the columns to read, in this order (projection pushed into the reader); all when absent",
        ),
        ConfigKey::new(
            "filter",
            ConfigType::String,
            "keep only the rows where this predicate is true, e.g. \"label = 1 and score >= 0.5\"; row groups whose statistics rule out a match are skipped",
        ),
        ConfigKey::new(
            "read_dictionary",
            ConfigType::StringList,
            "string or binary columns (names or glob patterns) to read as dictionaries, Dictionary(Int32, Utf8): the reader hands out the file's dictionary pages and keys instead of copying every value, and encoders (ordinal, one_hot) look up each distinct value once",
        ),
        ConfigKey::new(
            "threads",
            ConfigType::Integer,
            "threads that decode columns in parallel; 0 = one per core",
        )
        .default(0),
        ConfigKey::memory_budget(
            "bytes of decoded rows the source holds: a chunk is half of it, at most 32 MiB (the host gives the source its share of pipeline.memory_budget)",
        ),
    ]
}

/// Reads a Parquet dataset.
pub(crate) struct ParquetSource {
    files: Vec<DatasetFile>,
    columns: Columns,
    filter: Option<Predicate>,
    threads: usize,
    /// Decoded bytes a chunk aims at.
    chunk_bytes: u64,
    /// Row groups not yet opened, in dataset order: (file, row group).
    pending: VecDeque<(usize, usize)>,
    /// The segment being read.
    stream: Option<ColumnStreams>,
    /// The rows of the batches the segment being read is handed out in.
    batch_rows: usize,
    /// The decoded rows of the last chunk not yet handed out, and the bytes a decoded row
    /// of it took.
    ready: Option<RecordBatch>,
    bytes_per_row: usize,
    total_rows: Option<usize>,
    row_groups_read: u64,
    row_groups_pruned: u64,
    rows_filtered_out: u64,
}

impl ParquetSource {
    /// Finds the dataset's files, reads their footers, checks the columns and the filter,
    /// and prunes row groups by their statistics. Reads no data.
    pub(crate) fn from_config(config: &Config) -> Result<ParquetSource> {
        let paths: Vec<String> = match config.get::<String>("path") {
            Ok(Some(path)) => vec![path],
            _ => config.require("path")?,
        };
        let wanted: Option<Vec<String>> = config.get("columns")?;
        let filter = config
            .get::<String>("filter")?
            .map(|text| {
                Predicate::parse(&text).map_err(|e| e.context("key `filter` of source `parquet`"))
            })
            .transpose()?;
        let threads = match config.require::<usize>("threads")? {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let chunk_bytes = half_the_budget(config, CHUNK_BYTES)?;
        let paths: Vec<PathBuf> = files::expand(&paths, "path", &[".parquet", ".parq"])?;
        let mut files = paths
            .iter()
            .map(|path| DatasetFile::open(path, filter.is_some()))
            .collect::<Result<Vec<_>>>()?;
        let Some(first) = files.first() else {
            return Err(Error::internal("the dataset's path expanded to no file"));
        };
        let first_path = first.path.clone();
        let dictionary: Vec<String> = match config.get::<Vec<String>>("read_dictionary")? {
            Some(patterns) => {
                let schema = first.schema();
                Selection::new(
                    ComponentKind::Source,
                    "parquet",
                    "read_dictionary",
                    patterns,
                )?
                .resolve(schema, DICTIONARY_READABLE)
                .map_err(|e| e.context(first_path.display()))?
                .into_iter()
                .map(|index| schema.field(index).name().clone())
                .collect()
            }
            None => Vec::new(),
        };
        for file in &mut files {
            file.read_as_dictionary(&dictionary)?;
        }
        let mut columns = Columns::plan(
            &first_path,
            files[0].schema(),
            wanted.as_deref(),
            filter.as_ref(),
        )?;
        let mut pending = VecDeque::new();
        let mut row_groups_pruned = 0;
        for (index, file) in files.iter_mut().enumerate() {
            columns.locate(file, &first_path)?;
            let kept = file.row_groups_to_read(filter.as_ref())?;
            row_groups_pruned += (file.row_groups().len() - kept.len()) as u64;
            pending.extend(kept.into_iter().map(|group| (index, group)));
        }
        let total_rows = match filter {
            Some(_) => None,
            None => usize::try_from(files.iter().map(DatasetFile::num_rows).sum::<u64>()).ok(),
        };
        Ok(ParquetSource {
            files,
            columns,
            filter,
            threads,
            chunk_bytes,
            pending,
            stream: None,
            batch_rows: 1,
            ready: None,
            bytes_per_row: 0,
            total_rows,
            row_groups_read: 0,
            row_groups_pruned,
            rows_filtered_out: 0,
        })
    }

    /// Opens readers on the next segment that has rows to read (after the filter), to be
    /// handed out in equal batches of at most `max_rows`, reading chunks of a whole number
    /// of them. Leaves `stream` empty when no segment is left.
    fn open_next_segment(&mut self, max_rows: usize) -> Result<()> {
        let threads = self.threads;
        let output = self.columns.output.clone();
        let width = output.fields().len();
        let filter = self.filter.clone();
        let filter_schema = self.columns.filter.clone();
        while let Some((file, row_groups, rows, bytes)) =
            next_segment(&mut self.pending, &self.files)
        {
            let mut segment = Segment {
                file: &self.files[file],
                row_groups,
                selection: None,
            };
            // Batches for `n` rows, and a whole number of them of about `chunk_bytes`.
            let equal =
                |n: u64| equal_batch_rows(usize::try_from(n).unwrap_or(usize::MAX), max_rows);
            let chunk_bytes = self.chunk_bytes;
            let chunk_rows = |batch_rows: usize| {
                let batch_bytes = bytes.saturating_mul(batch_rows as u64) / rows.max(1);
                let multiple = (chunk_bytes / batch_bytes.max(1)).max(1) as usize;
                batch_rows
                    .saturating_mul(multiple)
                    .clamp(1, MAX_READ_ROWS.max(batch_rows))
            };
            let groups = segment.row_groups.len() as u64;
            let mut kept = rows;
            if let (Some(filter), Some(filter_schema)) = (&filter, &filter_schema) {
                let columns = width..width + filter_schema.fields().len();
                let matched = select(
                    std::slice::from_mut(&mut segment),
                    filter,
                    columns,
                    filter_schema,
                    chunk_rows(equal(rows)),
                    threads,
                )?;
                kept = matched.first().copied().unwrap_or(0) as u64;
                self.rows_filtered_out += rows.saturating_sub(kept);
                if kept == 0 {
                    self.row_groups_read += groups;
                    continue;
                }
            }
            let batch_rows = equal(kept);
            let stream = ColumnStreams::open(&segment, 0..width, &output, chunk_rows(batch_rows))?;
            self.batch_rows = batch_rows;
            self.row_groups_read += groups;
            self.stream = Some(stream);
            return Ok(());
        }
        Ok(())
    }

    /// Decodes the next chunk into `ready` (which is empty), opening the next segment when the current one
    /// is done; decodes nothing at the end of the dataset.
    fn decode_chunk(&mut self, batch_rows: usize) -> Result<()> {
        loop {
            if self.stream.is_none() {
                self.open_next_segment(batch_rows)?;
            }
            let threads = self.threads;
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            match stream.next(threads)? {
                Some(chunk) if chunk.num_rows() > 0 => {
                    self.bytes_per_row = chunk.get_array_memory_size() / chunk.num_rows();
                    self.ready = Some(chunk);
                    return Ok(());
                }
                Some(_) => {}
                None => self.stream = None,
            }
        }
    }

    /// Whether every row has been decoded.
    fn decoded_all(&self) -> bool {
        self.pending.is_empty() && self.stream.is_none()
    }

    /// The next batch of the decoded chunk: `batch_rows` of its rows, at most `max_rows`
    /// (fewer at the end of a segment), a zero-copy slice.
    fn take(&mut self, max_rows: usize) -> Option<RecordBatch> {
        let chunk = self.ready.take()?;
        let rows = chunk.num_rows().min(self.batch_rows).min(max_rows);
        if rows < chunk.num_rows() {
            self.ready = Some(chunk.slice(rows, chunk.num_rows() - rows));
        }
        Some(chunk.slice(0, rows))
    }
}

/// Takes the next segment off `pending`: one row group, or consecutive small ones of one
/// file (up to `SEGMENT_BYTES`); returns its file, row groups, rows and uncompressed bytes.
fn next_segment(
    pending: &mut VecDeque<(usize, usize)>,
    files: &[DatasetFile],
) -> Option<(usize, Vec<usize>, u64, u64)> {
    let &(file, first) = pending.front()?;
    let (mut groups, mut bytes, mut rows) = (Vec::new(), 0, 0);
    while let Some(&(next_file, group)) = pending.front() {
        if next_file != file {
            break;
        }
        let group_bytes = files[file].read_bytes(group);
        if group != first && bytes + group_bytes > SEGMENT_BYTES {
            break;
        }
        pending.pop_front();
        bytes += group_bytes;
        rows += files[file].row_groups()[group].num_rows().max(0) as u64;
        groups.push(group);
    }
    Some((file, groups, rows, bytes))
}

impl Source for ParquetSource {
    fn schema(&self) -> Result<SchemaRef> {
        Ok(self.columns.output.clone())
    }

    /// A segment's rows in equal batches of at most `max_rows` (see `CHUNK_BYTES`): the
    /// host passes batches of at least half its batch size on without copying them.
    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let max_rows = max_rows.clamp(1, MAX_READ_ROWS);
        loop {
            if let Some(batch) = self.take(max_rows) {
                return Ok(Some(batch));
            }
            if self.decoded_all() {
                return Ok(None);
            }
            if let Err(error) = self.decode_chunk(max_rows) {
                // A failed chunk leaves nothing more to read.
                self.pending.clear();
                self.stream = None;
                return Err(error);
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.total_rows
    }

    fn memory_usage(&self) -> usize {
        let rows = self.ready.as_ref().map_or(0, RecordBatch::num_rows);
        rows.saturating_mul(self.bytes_per_row)
    }

    fn counters(&self) -> Counters {
        let mut counters = vec![
            ("files".to_string(), self.files.len() as u64),
            ("row groups read".to_string(), self.row_groups_read),
        ];
        if self.filter.is_some() {
            counters.push((
                "row groups pruned by statistics".to_string(),
                self.row_groups_pruned,
            ));
            counters.push((
                "rows removed by the filter".to_string(),
                self.rows_filtered_out,
            ));
        }
        counters
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use mlpipe_plugin_api::ErrorKind;
    use mlpipe_plugin_api::arrow::array::{
        ArrayRef, AsArray, BinaryArray, Int64Array, LargeStringArray,
    };
    use mlpipe_plugin_api::arrow::compute::{cast, concat_batches, filter_record_batch};
    use mlpipe_plugin_api::arrow::datatypes::{DataType, Int32Type, Int64Type};
    use parquet::arrow::ArrowWriter;
    use serde_json::json;

    use super::*;
    use crate::tests::{batch, open_source, read_all, schema, write};

    fn counter(source: &dyn Source, name: &str) -> u64 {
        let counters = source.counters();
        let found = counters.iter().find(|(n, _)| n == name);
        found
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no counter {name:?}"))
    }

    fn error(config: serde_json::Value) -> Error {
        match crate::plugin().create_source("parquet", &config) {
            Ok(_) => panic!("{config} was accepted"),
            Err(error) => error,
        }
    }

    /// Three files, a.parquet (rows 0..5), b.parquet (5..12, row groups of 3 rows) and
    /// c.parquet (12..13), beside files a dataset skips.
    fn dataset(dir: &Path) {
        write(&dir.join("a.parquet"), json!({}), &[batch(0, 5)]);
        write(
            &dir.join("b.parquet"),
            json!({ "row_group_rows": 3 }),
            &[batch(5, 7)],
        );
        write(&dir.join("c.parquet"), json!({}), &[batch(12, 1)]);
        std::fs::write(dir.join("_SUCCESS"), "").unwrap();
        std::fs::write(dir.join("notes.txt"), "not parquet").unwrap();
    }

    #[test]
    fn a_dataset_is_read_in_order_from_a_directory_a_glob_or_a_list() {
        let dir = tempfile::tempdir().unwrap();
        dataset(dir.path());
        let all = batch(0, 13);
        for path in [json!(dir.path()), json!(dir.path().join("*.parquet"))] {
            let mut source = open_source(json!({ "path": path }));
            assert_eq!(source.size_hint(), Some(13));
            assert_eq!(read_all(source.as_mut(), 4), all, "{path}");
            assert_eq!(counter(source.as_ref(), "files"), 3);
            assert_eq!(counter(source.as_ref(), "row groups read"), 5);
        }
        let listed = json!([dir.path().join("c.parquet"), dir.path().join("a.parquet")]);
        let mut source = open_source(json!({ "path": listed }));
        let expected = concat_batches(&schema(), &[batch(12, 1), batch(0, 5)]).unwrap();
        assert_eq!(read_all(source.as_mut(), 100), expected);
    }

    #[test]
    fn threads_and_batch_sizes_do_not_change_what_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let input: Vec<RecordBatch> = (0..5).map(|i| batch(i * 40, 40)).collect();
        write(
            &dir.path().join("a.parquet"),
            json!({ "row_group_rows": 7 }),
            &input,
        );
        write(
            &dir.path().join("b.parquet"),
            json!({ "row_group_rows": 50 }),
            &input,
        );
        let expected = read_all(
            open_source(json!({ "path": dir.path(), "threads": 1 })).as_mut(),
            1000,
        );
        assert_eq!(expected.num_rows(), 400);
        for (threads, rows) in [(1, 3), (2, 64), (4, 10), (0, 1 << 20)] {
            let mut source = open_source(json!({ "path": dir.path(), "threads": threads }));
            assert_eq!(
                read_all(source.as_mut(), rows),
                expected,
                "{threads} threads, {rows} rows"
            );
        }
    }

    #[test]
    fn row_groups_are_handed_out_in_equal_zero_copy_batches() {
        // Files of 1,000 and 200 rows (segments do not span files), batches of at most
        // 300: 4 x 250, then 200.
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.parquet"), json!({}), &[batch(0, 1000)]);
        write(
            &dir.path().join("b.parquet"),
            json!({}),
            &[batch(1000, 200)],
        );
        let path = dir.path();
        let mut source = open_source(json!({ "path": path }));
        let mut batches = Vec::new();
        while let Some(batch) = source.next_batch(300).unwrap() {
            batches.push(batch);
        }
        let rows: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(rows, [250, 250, 250, 250, 200]);
        // The first row group's batches are slices of one decoded chunk, one after the other.
        let address = |batch: &RecordBatch| {
            batch
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .as_ptr()
        };
        for pair in batches[..4].windows(2) {
            assert_eq!(address(&pair[1]), address(&pair[0]).wrapping_add(250));
        }
        let all = concat_batches(&schema(), &batches).unwrap();
        assert_eq!(all, batch(0, 1200));
    }

    #[test]
    fn the_memory_budget_bounds_the_decoded_rows_held() {
        // One row group of 4,000 rows; batches of 100. Without a budget the source decodes
        // the whole group at once; with one it holds about half its budget, in whole batches.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one_group.parquet");
        write(&path, json!({}), &[batch(0, 4000)]);
        let held = |config: serde_json::Value| {
            let mut source = open_source(config);
            let first = source.next_batch(100).unwrap().unwrap();
            assert_eq!(first, batch(0, 100));
            let held = source.memory_usage();
            assert_eq!(read_all(source.as_mut(), 100), batch(100, 3900));
            held
        };
        let whole = held(json!({ "path": path }));
        let budget = whole / 5;
        let bounded = held(json!({ "path": path, "memory_budget": budget }));
        assert!(
            bounded > 0 && bounded <= budget / 2,
            "{bounded} of {budget}"
        );
    }

    #[test]
    fn a_file_whose_schema_differs_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.parquet"), json!({}), &[batch(0, 3)]);
        let other = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("score", Arc::new(Int64Array::from(vec![2])) as ArrayRef),
        ])
        .unwrap();
        let b = dir.path().join("b.parquet");
        let mut sink = crate::tests::open_sink(json!({ "path": b }));
        sink.consume(other).unwrap();
        sink.flush().unwrap();

        let mismatch = error(json!({ "path": dir.path() }));
        assert_eq!(mismatch.kind(), ErrorKind::BadData);
        let message = mismatch.message();
        assert!(
            message
                .contains("b.parquet: column `score` is of type Int64 here but of type Float64 in"),
            "{message}"
        );
        assert!(message.contains("a.parquet"), "{message}");
        let missing = error(json!({ "path": dir.path(), "columns": ["name"] }));
        assert!(
            missing
                .message()
                .contains("b.parquet: has no column `name`"),
            "{missing}"
        );
        // The columns both files have with the same types read fine.
        let mut source = open_source(json!({ "path": dir.path(), "columns": ["id"] }));
        assert_eq!(read_all(source.as_mut(), 10).num_rows(), 4);
    }

    #[test]
    fn the_filter_prunes_row_groups_and_keeps_the_matching_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        write(&path, json!({ "row_group_rows": 10 }), &[batch(0, 50)]);
        let text = "id >= 42 or name = 'n3'";
        let mut source = open_source(json!({ "path": path, "filter": text, "threads": 2 }));
        assert_eq!(source.size_hint(), None);
        let read = read_all(source.as_mut(), 4);
        let all = batch(0, 50);
        let mask = Predicate::parse(text).unwrap().evaluate(&all).unwrap();
        let expected = filter_record_batch(&all, &mask).unwrap();
        assert_eq!(read, expected);
        let ids: Vec<i64> = read
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec();
        assert_eq!(ids, [3, 42, 43, 44, 45, 46, 47, 48, 49]);
        // Row groups 1..=3 hold ids 10..40 and names n10..n39, so neither test can match.
        assert_eq!(
            counter(source.as_ref(), "row groups pruned by statistics"),
            3
        );
        assert_eq!(counter(source.as_ref(), "row groups read"), 2);
        assert_eq!(counter(source.as_ref(), "rows removed by the filter"), 11);

        // The filter may read columns the output leaves out.
        let mut source =
            open_source(json!({ "path": path, "filter": "id >= 48", "columns": ["name"] }));
        let read = read_all(source.as_mut(), 100);
        assert_eq!(read, batch(48, 2).project(&[2]).unwrap());
        // A filter nothing matches reads nothing.
        let mut source = open_source(json!({ "path": path, "filter": "id > 1000" }));
        assert_eq!(read_all(source.as_mut(), 100).num_rows(), 0);
        assert_eq!(counter(source.as_ref(), "row groups read"), 0);
    }

    #[test]
    fn filter_mistakes_are_config_errors_that_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        write(&path, json!({}), &[batch(0, 5)]);
        let unknown = error(json!({ "path": path, "filter": "nmae = 'x'" }));
        assert_eq!(unknown.kind(), ErrorKind::InvalidConfig);
        assert!(
            unknown
                .message()
                .contains("key `filter` of source `parquet`"),
            "{unknown}"
        );
        assert!(
            unknown
                .message()
                .contains("the columns are: id, score, name"),
            "{unknown}"
        );
        let syntax = error(json!({ "path": path, "filter": "id >> 3" }));
        assert!(syntax.message().contains("at character 5"), "{syntax}");
        let types = error(json!({ "path": path, "filter": "name > 3" }));
        assert!(
            types.message().contains("compare it with a string"),
            "{types}"
        );
    }

    /// `batch` with its `name` column read back as plain strings.
    fn plain_names(batch: &RecordBatch) -> RecordBatch {
        let names = cast(batch.column(2), &DataType::Utf8).unwrap();
        let mut columns = batch.columns().to_vec();
        columns[2] = names;
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    #[test]
    fn string_columns_read_as_dictionaries_hold_the_same_values() {
        let dir = tempfile::tempdir().unwrap();
        dataset(dir.path());
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        for (threads, rows) in [(1, 3), (2, 4), (0, 100)] {
            let mut source = open_source(json!({
                "path": dir.path(), "read_dictionary": ["na*"], "threads": threads
            }));
            let read = read_all(source.as_mut(), rows);
            assert_eq!(read.schema().field(2).data_type(), &dictionary);
            assert_eq!(read.schema().field(1).data_type(), &DataType::Float64);
            // Each batch's keys index the dictionary pages, not a copy of every value.
            let keys = read.column(2).as_dictionary::<Int32Type>();
            assert!(keys.values().len() <= keys.len(), "{threads}, {rows}");
            assert_eq!(
                plain_names(&read),
                batch(0, 13),
                "{threads} threads, {rows} rows"
            );
        }
        // With a filter on the dictionary column, and on another column.
        for text in ["name = 'n5' or name in ['n9', 'n11']", "id > 9"] {
            let mut source = open_source(json!({
                "path": dir.path(), "read_dictionary": ["name"], "filter": text
            }));
            let read = plain_names(&read_all(source.as_mut(), 2));
            let all = batch(0, 13);
            let mask = Predicate::parse(text).unwrap().evaluate(&all).unwrap();
            assert_eq!(read, filter_record_batch(&all, &mask).unwrap(), "{text}");
        }
        // Statistics prune row groups of a dictionary column as they do of a plain one.
        let pruned = |config: serde_json::Value| {
            let mut source = open_source(config);
            read_all(source.as_mut(), 100);
            counter(source.as_ref(), "row groups pruned by statistics")
        };
        let plain = pruned(json!({ "path": dir.path(), "filter": "name = 'n6'" }));
        let dictionaries = pruned(json!({
            "path": dir.path(), "filter": "name = 'n6'", "read_dictionary": ["name"]
        }));
        assert!(plain > 0);
        assert_eq!(dictionaries, plain);
    }

    #[test]
    fn read_dictionary_mistakes_name_the_column_and_the_choices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        write(&path, json!({}), &[batch(0, 5)]);
        let wrong_type = error(json!({ "path": path, "read_dictionary": ["id"] }));
        assert_eq!(wrong_type.kind(), ErrorKind::InvalidConfig);
        assert!(
            wrong_type.message().contains(
                "key `read_dictionary` of source `parquet`: column `id` has type Int64; only string or binary columns can be selected here"
            ) && wrong_type.message().starts_with(&path.display().to_string()),
            "{wrong_type}"
        );
        let unmatched = error(json!({ "path": path, "read_dictionary": ["c*"] }));
        assert!(
            unmatched.message().contains(
                "`c*` matches no string or binary input column; the input columns are: id, score, name"
            ),
            "{unmatched}"
        );
        // A glob passes over columns of other types.
        let mut source = open_source(json!({ "path": path, "read_dictionary": ["*"] }));
        let read = read_all(source.as_mut(), 10);
        assert_eq!(plain_names(&read), batch(0, 5));
    }

    #[test]
    fn large_strings_and_binaries_read_as_dictionaries_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        let values = ["b", "a", "b", "c", "a"];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(LargeStringArray::from(values.to_vec())),
            Arc::new(BinaryArray::from_iter_values(
                values.iter().map(|v| v.as_bytes()),
            )),
        ];
        let input = RecordBatch::try_from_iter([
            ("large", columns[0].clone()),
            ("bytes", columns[1].clone()),
        ])
        .unwrap();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), input.schema(), None)
                .unwrap();
        writer.write(&input).unwrap();
        writer.close().unwrap();
        let mut source = open_source(json!({ "path": path, "read_dictionary": ["*"] }));
        let read = read_all(source.as_mut(), 2);
        for (column, original) in read.columns().iter().zip(input.columns()) {
            assert!(
                matches!(column.data_type(), DataType::Dictionary(key, value)
                if **key == DataType::Int32 && value.as_ref() == original.data_type())
            );
            assert_eq!(&cast(column, original.data_type()).unwrap(), original);
        }
    }

    mod mutations {
        //! The reader on damaged files: truncated at every length, and with random bytes
        //! overwritten. Every outcome must be rows or an error naming the file — never a
        //! panic (a panic fails the test).

        use std::sync::OnceLock;

        use mlpipe_plugin_api::arrow::array::{
            BooleanArray, Date32Array, DictionaryArray, Float64Array, ListArray, StringArray,
            StructArray,
        };
        use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Int32Type};
        use parquet::arrow::ArrowWriter;
        use parquet::basic::{Compression, ZstdLevel};
        use parquet::file::properties::WriterProperties;
        use proptest::prelude::*;

        use super::*;

        /// A small file with many kinds of column and page, in each of three codecs.
        fn originals() -> &'static [Vec<u8>] {
            static FILES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
            FILES.get_or_init(|| {
                let rows = 300;
                let ints: Vec<Option<i64>> = (0..rows).map(|i| (i % 7 != 0).then_some(i)).collect();
                let floats: Vec<Option<f64>> = (0..rows)
                    .map(|i| (i % 5 != 0).then_some(i as f64 / 3.0))
                    .collect();
                let strings: Vec<Option<String>> = (0..rows)
                    .map(|i| (i % 3 != 0).then(|| format!("s{}", i % 17)))
                    .collect();
                let dictionary: DictionaryArray<Int32Type> =
                    (0..rows).map(|i| ["a", "b", "c"][i as usize % 3]).collect();
                let lists = ListArray::from_iter_primitive::<Int32Type, _, _>((0..rows).map(|i| {
                    (i % 4 != 0).then(|| (0..i % 3).map(|v| Some(v as i32)).collect::<Vec<_>>())
                }));
                let flags =
                    BooleanArray::from((0..rows).map(|i| Some(i % 2 == 0)).collect::<Vec<_>>());
                let days = Date32Array::from((0..rows).map(|i| i as i32).collect::<Vec<_>>());
                let pair = StructArray::from(vec![
                    (
                        Arc::new(Field::new("x", DataType::Boolean, true)),
                        Arc::new(flags.clone()) as ArrayRef,
                    ),
                    (
                        Arc::new(Field::new("d", DataType::Date32, true)),
                        Arc::new(days) as ArrayRef,
                    ),
                ]);
                let batch = RecordBatch::try_from_iter([
                    ("id", Arc::new(Int64Array::from(ints)) as ArrayRef),
                    ("f", Arc::new(Float64Array::from(floats)) as ArrayRef),
                    ("s", Arc::new(StringArray::from(strings)) as ArrayRef),
                    ("k", Arc::new(dictionary) as ArrayRef),
                    ("l", Arc::new(lists) as ArrayRef),
                    ("b", Arc::new(flags) as ArrayRef),
                    ("p", Arc::new(pair) as ArrayRef),
                ])
                .unwrap();
                [
                    Compression::UNCOMPRESSED,
                    Compression::SNAPPY,
                    Compression::ZSTD(ZstdLevel::default()),
                ]
                .into_iter()
                .map(|codec| {
                    let properties = WriterProperties::builder()
                        .set_compression(codec)
                        .set_max_row_group_row_count(Some(120))
                        .set_data_page_row_count_limit(50)
                        .set_write_batch_size(50)
                        .build();
                    let mut bytes = Vec::new();
                    let mut writer =
                        ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).unwrap();
                    writer.write(&batch).unwrap();
                    writer.close().unwrap();
                    bytes
                })
                .collect()
            })
        }

        /// Reads the bytes as a file, with and without a filter, to the end or the first error.
        fn read(bytes: &[u8]) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("damaged.parquet");
            std::fs::write(&path, bytes).unwrap();
            for filter in [None, Some("id > 100 or s = 's3' or f is null")] {
                let mut config = json!({ "path": path, "threads": 2 });
                if let Some(filter) = filter {
                    config["filter"] = json!(filter);
                }
                let mut source = match crate::plugin().create_source("parquet", &config) {
                    Ok(source) => source,
                    Err(error) => {
                        assert!(error.message().contains("damaged.parquet"), "{error}");
                        continue;
                    }
                };
                // Bounded: a reader that never ends would fail here rather than hang.
                for _ in 0..10_000 {
                    match source.next_batch(64) {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(error) => {
                            assert!(error.message().contains("damaged.parquet"), "{error}");
                            break;
                        }
                    }
                }
            }
        }

        #[test]
        fn truncations_are_errors_naming_the_file() {
            let original = &originals()[1];
            // Every length within the footer's reach, every 7th byte before it.
            let footer = original.len().saturating_sub(2048);
            for length in (0..footer).step_by(7).chain(footer..original.len()) {
                read(&original[..length]);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(600))]
            #[test]
            fn overwritten_bytes_never_panic(
                file in 0usize..3,
                edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
            ) {
                let mut bytes = originals()[file].clone();
                for (at, value) in edits {
                    let at = at.index(bytes.len());
                    bytes[at] = value;
                }
                read(&bytes);
            }
        }
    }
}
