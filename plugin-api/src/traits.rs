//! The safe traits a plugin author implements. No `unsafe`, no ABI types.
//!
//! Thread contract: the host may create an instance on one thread and call it on another
//! (hence `Send`), but it never calls one instance from two threads at once, so methods
//! take `&mut self` and need no locks. Kernels are plain functions and may be called from
//! several threads at once (hence `Sync`).

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;

use crate::error::Result;

/// Produces record batches: a file reader, a database cursor, a generator.
pub trait Source: Send {
    /// The schema of every batch this source returns.
    fn schema(&self) -> Result<SchemaRef>;

    /// The next batch of at most `max_rows` rows, or `None` when the source is exhausted.
    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>>;

    /// The total number of rows this source will produce, when it knows (for progress).
    fn size_hint(&self) -> Option<usize> {
        None
    }

    /// Bytes this source holds beyond the batches it has returned (buffers, caches).
    fn memory_usage(&self) -> usize {
        0
    }
}

/// Maps one record batch to another.
pub trait Transform: Send {
    /// The schema of the batches this transform returns for inputs of schema `input`.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef>;

    /// Transforms one batch.
    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch>;

    /// Bytes this transform holds between calls.
    fn memory_usage(&self) -> usize {
        0
    }

    /// Forgets any state carried between batches (called between runs or epochs).
    fn reset(&mut self) -> Result<()> {
        Ok(())
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
}

/// A compute function over Arrow arrays, with the signature its manifest entry declares.
pub trait Kernel: Send + Sync {
    /// Applies the kernel to its arguments.
    fn call(&self, args: &[ArrayRef]) -> Result<ArrayRef>;
}
