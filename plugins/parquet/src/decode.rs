//! Decoding on several threads. A *segment* is a run of row groups of one file read as
//! one stream; each of its columns is read by a reader of its own projected to that
//! column, and every reader of a segment uses the same batch size and row selection, so
//! the columns' batches line up. [`ColumnStreams`] keeps a segment's readers open and
//! decodes one batch of every column at a time (the source's data, a chunk at a time);
//! [`decode`] reads whole segments (a filter's columns). Columns are shared among scoped
//! threads, the calling thread included.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mlpipe_plugin_api::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use mlpipe_plugin_api::arrow::datatypes::SchemaRef;
use mlpipe_plugin_api::predicate::Predicate;
use mlpipe_plugin_api::{Error, Result};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection,
};

use crate::dataset::DatasetFile;
use crate::positioned::PositionedFile;
use crate::{guarded, parquet_error};

/// Row groups of one file, read as one stream.
pub(crate) struct Segment<'a> {
    pub(crate) file: &'a DatasetFile,
    pub(crate) row_groups: Vec<usize>,
    /// The rows to read, over the segment's rows; all when `None`.
    pub(crate) selection: Option<RowSelection>,
}

impl Segment<'_> {
    /// The rows the segment's readers return.
    fn rows(&self) -> usize {
        match &self.selection {
            Some(selection) => selection.row_count(),
            None => self.row_groups_rows(),
        }
    }

    /// The rows of the segment's row groups, as the footer states them.
    fn row_groups_rows(&self) -> usize {
        let groups = self.file.row_groups();
        self.row_groups
            .iter()
            .map(|&g| usize::try_from(groups[g].num_rows()).unwrap_or(0))
            .sum()
    }

    /// Names the segment in errors: the file and its row groups.
    fn describe(&self) -> String {
        let groups = match self.row_groups.as_slice() {
            [one] => format!("row group {one}"),
            [first, .., last] => format!("row groups {first}..={last}"),
            [] => "no row group".to_string(),
        };
        format!("{}: {groups}", self.file.path.display())
    }
}

/// Decodes the columns at `columns` (positions in each file's `roots`) of every segment,
/// on up to `threads` threads; returns each segment's batches of `schema`, in order.
fn decode(
    segments: &[Segment<'_>],
    columns: Range<usize>,
    schema: &SchemaRef,
    batch_rows: usize,
    threads: usize,
) -> Result<Vec<Vec<RecordBatch>>> {
    let width = columns.len();
    // The largest column chunks first, so that the threads finish together (a round ends
    // when its slowest job does).
    let size = |job: usize| {
        let (segment, position) = (&segments[job / width], columns.start + job % width);
        let root = segment.file.roots[position];
        let bytes = |&group: &usize| segment.file.column_bytes(group, root);
        segment.row_groups.iter().map(bytes).sum::<u64>()
    };
    let mut order: Vec<usize> = (0..segments.len() * width).collect();
    order.sort_by_cached_key(|&job| std::cmp::Reverse(size(job)));
    let decoded = parallel(order.len(), threads, |k| {
        let job = order[k];
        let (segment, column) = (&segments[job / width], job % width);
        let name = schema.field(column).name();
        guarded(
            || format!("{}, column `{name}`", segment.describe()),
            || decode_column(segment, columns.start + column, name, batch_rows),
        )
    })?;
    let mut in_order: Vec<Vec<ArrayRef>> = vec![Vec::new(); order.len()];
    for (job, arrays) in order.into_iter().zip(decoded) {
        in_order[job] = arrays;
    }
    let mut chunks = in_order.into_iter();
    segments
        .iter()
        .map(|segment| {
            let columns: Vec<Vec<ArrayRef>> = chunks.by_ref().take(width).collect();
            assemble(segment, schema, columns)
        })
        .collect()
}

/// Which rows of each segment match `filter`, whose columns are at `columns` (positions
/// in each file's `roots`) and form `schema`. Sets each segment's selection (none when
/// every row matches) and returns how many rows matched in each.
pub(crate) fn select(
    segments: &mut [Segment<'_>],
    filter: &Predicate,
    columns: Range<usize>,
    schema: &SchemaRef,
    batch_rows: usize,
    threads: usize,
) -> Result<Vec<usize>> {
    let decoded = decode(segments, columns, schema, batch_rows, threads)?;
    let mut matched = Vec::with_capacity(segments.len());
    for (segment, batches) in segments.iter_mut().zip(decoded) {
        let masks = batches
            .iter()
            .map(|batch| filter.evaluate(batch))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.context(segment.describe()))?;
        let count: usize = masks.iter().map(|m| m.true_count()).sum();
        if count < segment.row_groups_rows() {
            segment.selection = Some(RowSelection::from_filters(&masks));
        }
        matched.push(count);
    }
    Ok(matched)
}

/// The column at `position` (named `name`) of one segment, in batches of `batch_rows` rows.
fn decode_column(
    segment: &Segment<'_>,
    position: usize,
    name: &str,
    batch_rows: usize,
) -> Result<Vec<ArrayRef>> {
    let context = || format!("{}, column `{name}`", segment.describe());
    open_column(segment, position, name, batch_rows)?
        .map(|batch| {
            let batch = batch.map_err(|e| Error::from(e).context(context()))?;
            only_column(batch, &context)
        })
        .collect()
}

/// A reader of the column at `position` (named `name`) of one segment.
fn open_column(
    segment: &Segment<'_>,
    position: usize,
    name: &str,
    batch_rows: usize,
) -> Result<ParquetRecordBatchReader> {
    let file = segment.file;
    let handle = PositionedFile::open(&file.path).map_err(|e| {
        Error::io(format!(
            "{}: cannot open the file: {e}",
            file.path.display()
        ))
    })?;
    let mask = ProjectionMask::roots(file.metadata.parquet_schema(), [file.roots[position]]);
    let mut builder =
        ParquetRecordBatchReaderBuilder::new_with_metadata(handle, file.metadata.clone())
            .with_projection(mask)
            .with_row_groups(segment.row_groups.clone())
            .with_batch_size(batch_rows);
    if let Some(selection) = &segment.selection {
        builder = builder.with_row_selection(selection.clone());
    }
    builder
        .build()
        .map_err(|e| parquet_error(format!("{}, column `{name}`", segment.describe()), e))
}

/// The one column of a batch a single-column reader returned.
fn only_column(batch: RecordBatch, context: &dyn Fn() -> String) -> Result<ArrayRef> {
    batch
        .columns()
        .first()
        .cloned()
        .ok_or_else(|| Error::bad_data(format!("{}: the reader returned no column", context())))
}

/// One segment being read a batch at a time: a reader per column, kept open between
/// batches, so that what is decoded at once is one batch, however large the row groups.
pub(crate) struct ColumnStreams {
    describe: String,
    schema: SchemaRef,
    /// Column names, for errors.
    names: Vec<String>,
    readers: Vec<Mutex<ParquetRecordBatchReader>>,
    /// Column indexes, largest column chunks first (so that the threads finish together).
    order: Vec<usize>,
    /// Rows left to return when the schema has no columns (nothing to read them from).
    columnless_rows: usize,
}

impl ColumnStreams {
    /// Opens readers of the columns at `columns` (positions in the file's `roots`, forming
    /// `schema`) of `segment`, returning batches of `batch_rows` rows.
    pub(crate) fn open(
        segment: &Segment<'_>,
        columns: Range<usize>,
        schema: &SchemaRef,
        batch_rows: usize,
    ) -> Result<ColumnStreams> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let readers = columns
            .clone()
            .zip(&names)
            .map(|(position, name)| {
                guarded(
                    || format!("{}, column `{name}`", segment.describe()),
                    || open_column(segment, position, name, batch_rows),
                )
                .map(Mutex::new)
            })
            .collect::<Result<Vec<_>>>()?;
        let size = |column: usize| {
            let root = segment.file.roots[columns.start + column];
            let bytes = |&group: &usize| segment.file.column_bytes(group, root);
            segment.row_groups.iter().map(bytes).sum::<u64>()
        };
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by_cached_key(|&column| std::cmp::Reverse(size(column)));
        Ok(ColumnStreams {
            describe: segment.describe(),
            schema: schema.clone(),
            names,
            readers,
            order,
            columnless_rows: if columns.is_empty() {
                segment.rows()
            } else {
                0
            },
        })
    }

    /// The next batch, its columns decoded on up to `threads` threads; `None` at the end.
    pub(crate) fn next(&mut self, threads: usize) -> Result<Option<RecordBatch>> {
        if self.readers.is_empty() {
            let rows = std::mem::take(&mut self.columnless_rows);
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            return Ok((rows > 0)
                .then(|| RecordBatch::try_new_with_options(self.schema.clone(), vec![], &options))
                .transpose()?);
        }
        let decoded = parallel(self.order.len(), threads, |k| {
            let column = self.order[k];
            let context = || format!("{}, column `{}`", self.describe, self.names[column]);
            guarded(context, || {
                let mut reader = self.readers[column].lock().map_err(|_| {
                    Error::internal(format!("{}: a reader was poisoned", context()))
                })?;
                reader
                    .next()
                    .map(|batch| {
                        let batch = batch.map_err(|e| Error::from(e).context(context()))?;
                        only_column(batch, &context)
                    })
                    .transpose()
            })
        })?;
        let mut arrays: Vec<Option<ArrayRef>> = vec![None; self.order.len()];
        for (&column, array) in self.order.iter().zip(decoded) {
            arrays[column] = array;
        }
        if arrays.iter().all(Option::is_none) {
            return Ok(None);
        }
        let arrays: Option<Vec<ArrayRef>> = arrays.into_iter().collect();
        let corrupt = |what: String| {
            Error::bad_data(format!("{}: {what}; the file is corrupt", self.describe))
        };
        let arrays =
            arrays.ok_or_else(|| corrupt("its columns hold different numbers of rows".into()))?;
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map(Some)
            .map_err(|e| corrupt(format!("the columns do not fit together ({e})")))
    }
}

/// Puts a segment's columns (each a list of arrays) together into batches, checking that
/// every column holds the segment's rows.
fn assemble(
    segment: &Segment<'_>,
    schema: &SchemaRef,
    columns: Vec<Vec<ArrayRef>>,
) -> Result<Vec<RecordBatch>> {
    let rows = segment.rows();
    if columns.is_empty() {
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        return Ok(vec![RecordBatch::try_new_with_options(
            schema.clone(),
            Vec::new(),
            &options,
        )?]);
    }
    for (field, column) in schema.fields().iter().zip(&columns) {
        let decoded: usize = column.iter().map(|array| array.len()).sum();
        if decoded != rows {
            return Err(Error::bad_data(format!(
                "{}: column `{}` holds {decoded} rows where the row groups hold {rows}; the file is corrupt",
                segment.describe(),
                field.name()
            )));
        }
    }
    let batches = columns.first().map_or(0, Vec::len);
    let mut columns: Vec<_> = columns.into_iter().map(Vec::into_iter).collect();
    (0..batches)
        .map(|_| {
            let arrays: Vec<ArrayRef> = columns.iter_mut().filter_map(Iterator::next).collect();
            RecordBatch::try_new(schema.clone(), arrays).map_err(|e| {
                Error::bad_data(format!(
                    "{}: the columns do not fit together ({e}); the file is corrupt",
                    segment.describe()
                ))
            })
        })
        .collect()
}

/// Runs `job(0..jobs)` on up to `threads` scoped threads, the calling one included, and
/// returns the results in job order; stops handing out jobs after the first error.
fn parallel<T: Send>(
    jobs: usize,
    threads: usize,
    job: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let threads = threads.clamp(1, jobs.max(1));
    if threads == 1 {
        return (0..jobs).map(job).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = || {
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= jobs {
                break;
            }
            let result = job(index);
            failed.fetch_or(result.is_err(), Ordering::Relaxed);
            done.push((index, result));
        }
        done
    };
    let mut results: Vec<Option<Result<T>>> = (0..jobs).map(|_| None).collect();
    std::thread::scope(|scope| {
        // A helper the system cannot start leaves its share to the others.
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("parquet-decode".into())
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        let mut record = |done: Vec<(usize, Result<T>)>| {
            for (index, result) in done {
                results[index] = Some(result);
            }
        };
        record(work());
        for helper in helpers {
            match helper.join() {
                Ok(done) => record(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let mut ordered = Vec::with_capacity(jobs);
    for result in results {
        match result {
            Some(result) => ordered.push(result?),
            // Only after an error: the jobs after it were not run.
            None => break,
        }
    }
    if ordered.len() != jobs {
        // Unreachable: a missing result means a job failed, which `?` returned above.
        return Err(Error::internal("a decoding job was not run"));
    }
    Ok(ordered)
}
