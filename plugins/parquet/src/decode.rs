//! Decoding on several threads. A *segment* is a run of row groups of one file read as
//! one stream; each column of each segment is one job, decoded by a reader of its own
//! projected to that column. Jobs are shared among scoped threads (the calling thread
//! included), and each segment's columns are put back together into batches in file
//! order. Every reader of a segment uses the same batch size and row selection, so the
//! columns' batches line up.

use std::fs::File;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mlpipe_plugin_api::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use mlpipe_plugin_api::arrow::datatypes::SchemaRef;
use mlpipe_plugin_api::predicate::Predicate;
use mlpipe_plugin_api::{Error, Result};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};

use crate::dataset::DatasetFile;
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
pub(crate) fn decode(
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
    let file = segment.file;
    let context = || format!("{}, column `{name}`", segment.describe());
    let handle = File::open(&file.path).map_err(|e| {
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
    let reader = builder.build().map_err(|e| parquet_error(context(), e))?;
    reader
        .map(|batch| {
            let batch = batch.map_err(|e| Error::from(e).context(context()))?;
            batch.columns().first().cloned().ok_or_else(|| {
                Error::bad_data(format!("{}: the reader returned no column", context()))
            })
        })
        .collect()
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
