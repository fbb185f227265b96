//! Re-batching to at most `batch_rows` rows: a batch larger than that is cut into zero-copy
//! slices (`RecordBatch::slice`), one of at least half that passes whole, smaller ones are
//! gathered and concatenated into pooled buffers. Letting the half-size batches through is
//! what arrow-rs' `BatchCoalescer` does for large batches: a source whose natural batches
//! (a Parquet row group split evenly, a CSV reader's batches within its text window) are
//! a little smaller than `batch_rows` costs no copy, and the transforms still get batches
//! large enough to amortise their per-batch cost.

use arrow::array::RecordBatch;
use arrow::error::ArrowError;

use super::metrics::Metrics;
use super::pool::BufferPool;

/// Gathers source batches into batches of at most `rows` rows and at least half that (the
/// last may be shorter).
#[derive(Debug)]
pub struct Rebatcher {
    rows: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

impl Rebatcher {
    /// A re-batcher to batches of `rows` rows.
    pub fn new(rows: usize) -> Rebatcher {
        Rebatcher {
            rows: rows.max(1),
            pending: Vec::new(),
            pending_rows: 0,
        }
    }

    /// Takes a batch; returns the batches that are complete.
    pub fn push(
        &mut self,
        mut batch: RecordBatch,
        pool: &BufferPool,
        metrics: &Metrics,
    ) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut ready = Vec::new();
        while batch.num_rows() > 0 {
            let wanted = self.rows - self.pending_rows;
            if self.pending.is_empty() && batch.num_rows() >= self.rows.div_ceil(2) {
                let whole = batch.num_rows().min(self.rows);
                ready.push(batch.slice(0, whole));
                batch = batch.slice(whole, batch.num_rows() - whole);
                continue;
            }
            let take = wanted.min(batch.num_rows());
            self.pending.push(batch.slice(0, take));
            self.pending_rows += take;
            batch = batch.slice(take, batch.num_rows() - take);
            if self.pending_rows == self.rows {
                ready.push(self.drain(pool, metrics)?);
            }
        }
        Ok(ready)
    }

    /// The rows still gathered, as one batch, at the end of the input.
    pub fn finish(
        &mut self,
        pool: &BufferPool,
        metrics: &Metrics,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        self.drain(pool, metrics).map(Some)
    }

    fn drain(&mut self, pool: &BufferPool, metrics: &Metrics) -> Result<RecordBatch, ArrowError> {
        let batches = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        pool.concat(&batches, metrics)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, AsArray, Int64Array};
    use arrow::datatypes::Int64Type;

    use super::*;

    fn batch(range: std::ops::Range<i64>) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from_iter_values(range)) as ArrayRef,
        )])
        .unwrap()
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    fn address(batch: &RecordBatch) -> *const i64 {
        batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .as_ptr()
    }

    #[test]
    fn large_batches_are_sliced_and_half_size_ones_pass_without_copying() {
        let (pool, metrics) = (BufferPool::default(), Metrics::default());
        let mut rebatcher = Rebatcher::new(10);
        let big = batch(0..25);
        let out = rebatcher.push(big.clone(), &pool, &metrics).unwrap();
        // 10 + 10, and the last 5 rows (half of 10) pass as they are.
        assert_eq!(
            out.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        for (offset, batch) in [0, 10, 20].into_iter().zip(&out) {
            assert_eq!(address(batch), address(&big).wrapping_add(offset));
        }
        let half = batch(25..30);
        let out = rebatcher.push(half.clone(), &pool, &metrics).unwrap();
        assert_eq!(address(&out[0]), address(&half));
        assert!(rebatcher.finish(&pool, &metrics).unwrap().is_none());
    }

    #[test]
    fn small_batches_are_gathered() {
        let (pool, metrics) = (BufferPool::default(), Metrics::default());
        let mut rebatcher = Rebatcher::new(10);
        let mut out = Vec::new();
        for small in [batch(0..3), batch(3..6), batch(6..12), batch(12..16)] {
            out.extend(rebatcher.push(small, &pool, &metrics).unwrap());
        }
        out.extend(rebatcher.finish(&pool, &metrics).unwrap());
        // 3 + 3 + 4 of the third; its last 2 wait, gathered with the fourth's 4 at the end.
        assert_eq!(
            out.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [10, 6]
        );
        assert_eq!(values(&out), (0..16).collect::<Vec<_>>());
    }
}
