//! Re-batching to `batch_rows`: a batch larger than that is cut into zero-copy slices
//! (`RecordBatch::slice`); smaller ones are gathered and concatenated into pooled buffers.

use arrow::array::RecordBatch;
use arrow::error::ArrowError;

use super::metrics::Metrics;
use super::pool::BufferPool;

/// Gathers source batches into batches of exactly `rows` rows (the last may be shorter).
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
            if self.pending.is_empty() && batch.num_rows() >= self.rows {
                ready.push(batch.slice(0, self.rows));
                batch = batch.slice(self.rows, batch.num_rows() - self.rows);
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

    #[test]
    fn large_batches_are_sliced_without_copying_and_small_ones_gathered() {
        let (pool, metrics) = (BufferPool::default(), Metrics::default());
        let mut rebatcher = Rebatcher::new(10);
        let big = batch(0..25);
        let address = big.column(0).to_data().buffers()[0].as_ptr();
        let mut out = rebatcher.push(big, &pool, &metrics).unwrap();
        assert_eq!(
            out.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [10, 10]
        );
        assert_eq!(out[0].column(0).to_data().buffers()[0].as_ptr(), address);
        for small in [batch(25..28), batch(28..31), batch(31..37)] {
            out.extend(rebatcher.push(small, &pool, &metrics).unwrap());
        }
        out.extend(rebatcher.finish(&pool, &metrics).unwrap());
        assert_eq!(
            out.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [10, 10, 10, 7]
        );
        assert_eq!(values(&out), (0..37).collect::<Vec<_>>());
    }
}
