//! The safe traits a plugin author implements. No `unsafe`, no ABI types.
//!
//! Thread contract: the host may create an instance on one thread and call it on another
//! (hence `Send`), but it never calls one instance from two threads at once, so methods
//! take `&mut self` and need no locks. Kernels are plain functions and may be called from
//! several threads at once (hence `Sync`).

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Named counts a component adds to the run report: rows skipped, rule violations, files
/// read. The host sums the counts of a transform's instances across workers.
pub type Counters = Vec<(String, u64)>;

/// Which columns a transform reads and which it writes, for one input schema.
///
/// The host uses it to fit independent stages of a chain in the same pass over the data:
/// a stage whose `reads` no earlier, not-yet-fitted stage `writes` can be fitted without
/// waiting for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnUsage {
    /// Input columns whose values the transform (and its fit) reads.
    pub reads: Vec<String>,
    /// Output columns the transform changes, adds or removes.
    pub writes: Vec<String>,
}

fn not_fittable() -> Error {
    Error::internal("this transform is not fitted from data, yet the host asked it to fit")
}

/// The rows of each batch when `rows` rows are handed out in the fewest equal batches of at
/// most `max_rows` (the last may be a little shorter): 1,000,000 rows at most 65,536 at a
/// time are 16 batches of 62,500. Such batches are never under half of `max_rows` unless
/// `rows` is, so the host passes them on without a copy, where batches of exactly
/// `max_rows` would leave a rest to be joined with the next unit's first rows — and every
/// batch after it straddling two units.
pub fn equal_batch_rows(rows: usize, max_rows: usize) -> usize {
    let (rows, max_rows) = (rows.max(1), max_rows.max(1));
    rows.div_ceil(rows.div_ceil(max_rows))
}

/// Produces record batches: a file reader, a database cursor, a generator.
pub trait Source: Send {
    /// The schema of every batch this source returns.
    fn schema(&self) -> Result<SchemaRef>;

    /// The next batch of at most `max_rows` rows, or `None` when the source is exhausted.
    /// The host passes a batch of at least half `max_rows` on as it is and gathers smaller
    /// ones (a copy): a source that decodes in units of its own (row groups, a file's record
    /// batches) best hands each out in [`equal_batch_rows`] batches.
    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>>;

    /// The total number of rows this source will produce, when it knows (for progress).
    fn size_hint(&self) -> Option<usize> {
        None
    }

    /// Bytes this source holds beyond the batches it has returned (buffers, caches).
    fn memory_usage(&self) -> usize {
        0
    }

    /// Named counts for the run report (e.g. malformed records skipped).
    fn counters(&self) -> Counters {
        Vec::new()
    }

    /// Only for wrappers of components that live elsewhere (the host's view of a plugin's
    /// component): the failure of the last call of a method that cannot return an error
    /// (`size_hint`, `memory_usage`, `counters`), with that method's name. A component
    /// written against this API never implements it.
    #[doc(hidden)]
    fn take_failure(&mut self) -> Option<(&'static str, Error)> {
        None
    }
}

/// Maps one record batch to another.
///
/// A transform that learns parameters from the data (scikit-learn's `fit`: a mean, a
/// vocabulary, quantiles) says so with [`needs_fit`](Transform::needs_fit). The host then
/// runs a fit pass before applying it: every worker's instance sees a share of the batches
/// in [`fit`](Transform::fit); the host collects each instance's
/// [`fit_partial`](Transform::fit_partial), merges them into one instance with
/// [`merge_fit`](Transform::merge_fit), calls [`finish_fit`](Transform::finish_fit) there,
/// and hands the resulting parameters to every instance with
/// [`load_fit`](Transform::load_fit) (also used to apply parameters saved by
/// `mlpipe-host fit`).
pub trait Transform: Send {
    /// The schema of the batches this transform returns for inputs of schema `input`.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef>;

    /// Transforms one batch. The result may have fewer (even zero) or more rows.
    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch>;

    /// Called once per instance after its last batch: returns rows the transform held
    /// back (a shuffle buffer), which then pass through the rest of the chain.
    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        Ok(None)
    }

    /// Bytes this transform holds between calls (fit statistics included).
    fn memory_usage(&self) -> usize {
        0
    }

    /// Forgets any state carried between batches (called between runs or epochs).
    fn reset(&mut self) -> Result<()> {
        Ok(())
    }

    /// Named counts for the run report (e.g. rule violations).
    fn counters(&self) -> Counters {
        Vec::new()
    }

    /// The schema of the rows this transform sets aside (rows that failed validation, with
    /// the rule they broke) for inputs of schema `input`; `None` (the default) when it sets
    /// none aside. The host then requires a `[quarantine]` sink in the pipeline.
    fn quarantine_schema(&self, input: &SchemaRef) -> Result<Option<SchemaRef>> {
        let _ = input;
        Ok(None)
    }

    /// The rows set aside since the last call, of the schema
    /// [`quarantine_schema`](Transform::quarantine_schema) declared; the host calls it after
    /// every batch and writes them to the `[quarantine]` sink.
    fn take_quarantined(&mut self) -> Result<Option<RecordBatch>> {
        Ok(None)
    }

    /// The columns this transform reads and writes for inputs of schema `input`; `None`
    /// (the default) means it may read and write any column.
    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        let _ = input;
        Ok(None)
    }

    /// Whether this transform must be fitted on the data before it is applied.
    fn needs_fit(&self) -> bool {
        false
    }

    /// Accumulates fit statistics from one batch of this transform's input.
    fn fit(&mut self, batch: &RecordBatch) -> Result<()> {
        let _ = batch;
        Err(not_fittable())
    }

    /// Returns this instance's accumulated statistics in a form of the plugin's choosing
    /// (only [`merge_fit`](Transform::merge_fit) of the same component reads it), and
    /// forgets them.
    fn fit_partial(&mut self) -> Result<Vec<u8>> {
        Err(not_fittable())
    }

    /// Merges statistics another instance returned from
    /// [`fit_partial`](Transform::fit_partial) into this one's.
    fn merge_fit(&mut self, partial: &[u8]) -> Result<()> {
        let _ = partial;
        Err(not_fittable())
    }

    /// Computes the fitted parameters from the merged statistics, starts using them, and
    /// returns them as JSON (saved by `mlpipe-host fit`; readable and versioned).
    fn finish_fit(&mut self) -> Result<serde_json::Value> {
        Err(not_fittable())
    }

    /// Starts using fitted parameters that [`finish_fit`](Transform::finish_fit) returned,
    /// in this run or in an earlier one.
    fn load_fit(&mut self, params: &serde_json::Value) -> Result<()> {
        let _ = params;
        Err(not_fittable())
    }

    /// Only for wrappers of components that live elsewhere (the host's view of a plugin's
    /// component): the failure of the last call of a method that cannot return an error
    /// (`size_hint`, `memory_usage`, `counters`), with that method's name. A component
    /// written against this API never implements it.
    #[doc(hidden)]
    fn take_failure(&mut self) -> Option<(&'static str, Error)> {
        None
    }
}

/// A transform with no state between batches, safe to call from several threads at once
/// (a projection, a cast, a row-wise formula): one instance serves every worker, instead of
/// one instance each. Register it with
/// [`Plugin::stateless_transform`](crate::Plugin::stateless_transform).
pub trait StatelessTransform: Send + Sync {
    /// The schema of the batches this transform returns for inputs of schema `input`.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef>;

    /// Transforms one batch.
    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch>;

    /// The columns this transform reads and writes (see [`Transform::column_usage`]).
    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        let _ = input;
        Ok(None)
    }
}

/// Consumes record batches: a file writer, a socket.
///
/// A sink that writes files must make its output appear only on a successful
/// [`flush`](Sink::flush) (write to a temporary name, rename at the end): when the host
/// drops a sink without flushing it, the run failed and nothing may be left behind.
pub trait Sink: Send {
    /// Called once before the first batch with the schema of every batch to come.
    fn begin(&mut self, schema: &SchemaRef) -> Result<()> {
        let _ = schema;
        Ok(())
    }

    /// Consumes one batch.
    fn consume(&mut self, batch: RecordBatch) -> Result<()>;

    /// Finishes the output: called once after the last batch of a successful run.
    fn flush(&mut self) -> Result<()>;

    /// Bytes this sink holds (buffered rows, encoder state).
    fn memory_usage(&self) -> usize {
        0
    }

    /// Named counts for the run report (e.g. files written).
    fn counters(&self) -> Counters {
        Vec::new()
    }

    /// Only for wrappers of components that live elsewhere (the host's view of a plugin's
    /// component): the failure of the last call of a method that cannot return an error
    /// (`size_hint`, `memory_usage`, `counters`), with that method's name. A component
    /// written against this API never implements it.
    #[doc(hidden)]
    fn take_failure(&mut self) -> Option<(&'static str, Error)> {
        None
    }
}

/// A compute function over Arrow arrays, with the signature its manifest entry declares.
pub trait Kernel: Send + Sync {
    /// Applies the kernel to its arguments.
    fn call(&self, args: &[ArrayRef]) -> Result<ArrayRef>;
}
