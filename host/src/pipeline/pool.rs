//! A pool of byte buffers for the one place the engine copies: concatenating small batches
//! into one of `batch_rows` rows. A pooled buffer is lent out inside an Arrow array; the
//! pool keeps a handle to it, and once every array using it is dropped (the handle is the
//! sole owner again) the allocation is taken back and reused. Safe code only: Arrow's
//! `Buffer::into_mutable` succeeds exactly when no one else holds the buffer.

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use arrow::array::{Array, ArrayData, ArrayRef, BooleanBufferBuilder, RecordBatch, make_array};
use arrow::buffer::{Buffer, MutableBuffer, NullBuffer};
use arrow::error::ArrowError;

use super::metrics::Metrics;

/// Free buffers kept for reuse, at most.
const MAX_FREE: usize = 64;

/// Reusable allocations for concatenation.
#[derive(Debug, Default)]
pub struct BufferPool {
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    lent: Vec<Buffer>,
    free: Vec<MutableBuffer>,
}

impl BufferPool {
    /// An empty mutable buffer with room for `bytes`, reused when one is free.
    fn take(&self, bytes: usize, metrics: &Metrics) -> MutableBuffer {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let lent = std::mem::take(&mut state.lent);
        for buffer in lent {
            match buffer.into_mutable() {
                Ok(mut reclaimed) => {
                    reclaimed.clear();
                    if state.free.len() < MAX_FREE {
                        state.free.push(reclaimed);
                    }
                }
                Err(still_used) => state.lent.push(still_used),
            }
        }
        let best = state
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= bytes)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(index) => {
                metrics.pool_reused.fetch_add(1, Ordering::Relaxed);
                state.free.swap_remove(index)
            }
            None => {
                metrics.pool_allocated.fetch_add(1, Ordering::Relaxed);
                MutableBuffer::with_capacity(bytes)
            }
        }
    }

    /// Freezes a filled buffer and keeps a handle to take it back later.
    fn lend(&self, buffer: MutableBuffer) -> Buffer {
        let frozen: Buffer = buffer.into();
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lent
            .push(frozen.clone());
        frozen
    }

    /// Bytes held by free buffers (charged to the memory budget).
    pub fn free_bytes(&self) -> u64 {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.free.iter().map(|b| b.capacity() as u64).sum()
    }

    /// Concatenates batches of one schema. Fixed-width columns are copied into pooled
    /// buffers; other columns use Arrow's `concat`.
    pub fn concat(
        &self,
        batches: &[RecordBatch],
        metrics: &Metrics,
    ) -> Result<RecordBatch, ArrowError> {
        let Some(first) = batches.first() else {
            return Err(ArrowError::InvalidArgumentError(
                "nothing to concatenate".into(),
            ));
        };
        if batches.len() == 1 {
            return Ok(first.clone());
        }
        let schema = first.schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for index in 0..schema.fields().len() {
            let parts: Vec<&ArrayRef> = batches.iter().map(|b| b.column(index)).collect();
            columns.push(self.concat_column(&parts, metrics)?);
        }
        RecordBatch::try_new(schema, columns)
    }

    fn concat_column(
        &self,
        parts: &[&ArrayRef],
        metrics: &Metrics,
    ) -> Result<ArrayRef, ArrowError> {
        let data_type = parts[0].data_type();
        let width = match data_type.primitive_width() {
            Some(width) if !matches!(data_type, arrow::datatypes::DataType::Boolean) => width,
            _ => {
                let arrays: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                return arrow::compute::concat(&arrays);
            }
        };
        let rows: usize = parts.iter().map(|a| a.len()).sum();
        let mut values = self.take(rows * width, metrics);
        let mut validity = parts
            .iter()
            .any(|a| a.null_count() > 0)
            .then(|| BooleanBufferBuilder::new(rows));
        for part in parts {
            let data = part.to_data();
            let start = data.offset() * width;
            values.extend_from_slice(
                &data.buffers()[0].as_slice()[start..start + data.len() * width],
            );
            if let Some(bits) = validity.as_mut() {
                match data.nulls() {
                    Some(nulls) => bits.append_buffer(nulls.inner()),
                    None => bits.append_n(data.len(), true),
                }
            }
        }
        let nulls = validity.map(|mut bits| NullBuffer::new(bits.finish()));
        let data = ArrayData::builder(data_type.clone())
            .len(rows)
            .add_buffer(self.lend(values))
            .nulls(nulls)
            .build()?;
        Ok(make_array(data))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int32Array, StringArray};
    use arrow::compute::concat_batches;

    use super::*;

    fn batch(start: i32, rows: i32) -> RecordBatch {
        let ints = Int32Array::from_iter((start..start + rows).map(|i| (i % 3 != 0).then_some(i)));
        let floats = Float64Array::from_iter_values((start..start + rows).map(f64::from));
        let strings = StringArray::from_iter_values((start..start + rows).map(|i| i.to_string()));
        RecordBatch::try_from_iter([
            ("i", Arc::new(ints) as ArrayRef),
            ("f", Arc::new(floats) as ArrayRef),
            ("s", Arc::new(strings) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn concatenation_equals_arrow_concat_and_reuses_buffers() {
        let pool = BufferPool::default();
        let metrics = Metrics::default();
        let parts = [batch(0, 10).slice(3, 7), batch(10, 5), batch(15, 20)];
        let expected = concat_batches(&parts[0].schema(), &parts).unwrap();
        let first = pool.concat(&parts, &metrics).unwrap();
        assert_eq!(first, expected);
        assert_eq!(metrics.pool_allocated.load(Ordering::Relaxed), 2);
        drop(first);
        let second = pool.concat(&parts, &metrics).unwrap();
        assert_eq!(second, expected);
        assert_eq!(metrics.pool_reused.load(Ordering::Relaxed), 2);
        assert!(pool.free_bytes() == 0);
    }

    #[test]
    fn a_buffer_still_in_use_is_not_reused() {
        let pool = BufferPool::default();
        let metrics = Metrics::default();
        let parts = [batch(0, 4), batch(4, 4)];
        let kept = pool.concat(&parts, &metrics).unwrap();
        let again = pool.concat(&parts, &metrics).unwrap();
        assert_eq!(metrics.pool_reused.load(Ordering::Relaxed), 0);
        assert_eq!(kept, again);
    }
}
