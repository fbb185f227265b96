//! The cost of one boundary crossing, source plugin → host, per batch: `next_batch` on the
//! testkit's `numbers` source loaded from its library with the production loader, for
//! batches of 1K, 64K and 1M float64 rows. The source returns the same batch every time
//! (`repeat = true`), so nothing but the crossing is measured: the call, the export of
//! the C Data Interface structs, the host's checks and import, and the release of the
//! batch back in the plugin. Zero copy means the cost does not grow with the batch.
//!
//! Baseline in the same run: the same `Source` call on an in-process component that
//! returns a cached batch (no boundary).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mlpipe_benches::float64_batch;
use mlpipe_plugin_api::{RecordBatch, Result, SchemaRef, Source};
use serde_json::json;

/// What the testkit source does with `repeat = true`, without a boundary.
struct Repeat(RecordBatch);

impl Source for Repeat {
    fn schema(&self) -> Result<SchemaRef> {
        Ok(self.0.schema())
    }

    fn next_batch(&mut self, _max_rows: usize) -> Result<Option<RecordBatch>> {
        Ok(Some(self.0.clone()))
    }
}

fn next_batch(source: &mut dyn Source, rows: usize) {
    let batch = source.next_batch(rows).expect("a batch").expect("endless");
    assert_eq!(batch.num_rows(), rows);
    black_box(batch);
}

fn boundary(c: &mut Criterion) {
    let library = mlpipe_host::loader::open(&mlpipe_tests::testkit()).expect("the testkit loads");
    let mut group = c.benchmark_group("source_to_host_per_batch");
    for rows in [1 << 10, 1 << 16, 1 << 20] {
        let config = json!({"endless": true, "repeat": true, "chunk_rows": rows});
        let mut plugin = library
            .create_source("numbers", &config)
            .expect("the testkit source");
        group.bench_with_input(BenchmarkId::new("plugin", rows), &rows, |b, &rows| {
            b.iter(|| next_batch(plugin.as_mut(), rows))
        });
        let mut in_process: Box<dyn Source> = Box::new(Repeat(float64_batch(rows, 1)));
        group.bench_with_input(BenchmarkId::new("in_process", rows), &rows, |b, &rows| {
            b.iter(|| next_batch(in_process.as_mut(), rows))
        });
    }
    group.finish();
}

criterion_group!(benches, boundary);
criterion_main!(benches);
