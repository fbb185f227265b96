//! Shared by the benchmarks: float64 batches, and in-process components that add no work of
//! their own, so that what a benchmark measures is the boundary or the engine around them.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Float64Array, RecordBatch};
use arrow::compute::sum;
use arrow::datatypes::Float64Type;
use mlpipe_plugin_api::{Result, SchemaRef, Sink, Source, Transform};

/// A batch of `columns` float64 columns `c0, c1, …` of `rows` rows.
pub fn float64_batch(rows: usize, columns: usize) -> RecordBatch {
    let columns = (0..columns).map(|c| {
        let values = (0..rows).map(|row| (row * (c + 1)) as f64);
        (
            format!("c{c}"),
            Arc::new(Float64Array::from_iter_values(values)) as ArrayRef,
        )
    });
    RecordBatch::try_from_iter(columns).expect("columns of equal length")
}

/// The bytes of a batch's Arrow buffers: the data a pipeline moves.
pub fn buffer_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|column| column.get_buffer_memory_size() as u64)
        .sum()
}

/// Hands out batches it already holds (clones: shared buffers, no copy).
#[derive(Debug, Clone)]
pub struct InMemorySource {
    batches: std::vec::IntoIter<RecordBatch>,
    schema: SchemaRef,
}

impl InMemorySource {
    /// A source of these batches, in order; they must share one schema.
    pub fn new(batches: &[RecordBatch]) -> InMemorySource {
        InMemorySource {
            schema: batches[0].schema(),
            batches: Vec::from(batches).into_iter(),
        }
    }
}

impl Source for InMemorySource {
    fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    fn next_batch(&mut self, _max_rows: usize) -> Result<Option<RecordBatch>> {
        Ok(self.batches.next())
    }
}

/// Returns its input; with `read = true` it first reads every value (sums each column),
/// the least work a real transform does.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    /// Whether to read every value.
    pub read: bool,
}

impl Transform for Identity {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(input.clone())
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.read {
            for column in batch.columns() {
                if let Some(values) = column.as_primitive_opt::<Float64Type>() {
                    std::hint::black_box(sum(values));
                }
            }
        }
        Ok(batch)
    }
}

/// Drops every batch.
#[derive(Debug, Default)]
pub struct Discard;

impl Sink for Discard {
    fn consume(&mut self, batch: RecordBatch) -> Result<()> {
        std::hint::black_box(batch);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_memory_source_returns_its_batches_without_copying_them() {
        let batches = [float64_batch(10, 2), float64_batch(5, 2)];
        let mut source = InMemorySource::new(&batches);
        for expected in &batches {
            let batch = source.next_batch(100).unwrap().unwrap();
            assert_eq!(&batch, expected);
            assert_eq!(
                batch.column(1).to_data().buffers()[0].as_ptr(),
                expected.column(1).to_data().buffers()[0].as_ptr()
            );
        }
        assert!(source.next_batch(100).unwrap().is_none());
        assert_eq!(buffer_bytes(&batches[1]), 2 * 5 * 8);
    }
}
