//! Engine throughput, in bytes of Arrow data moved per second: an in-memory source, one
//! identity transform and a discarding sink, with 1, 2 and (when the machine has more
//! cores) N workers, against a plain loop that calls the same components on the same
//! batches on one thread, in the same run.
//!
//! Two transforms: `read` sums every value (the least work a real transform does, so the
//! figure is a throughput and can scale with workers), `noop` returns its input untouched
//! (what is left is the engine's own cost per batch).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mlpipe_benches::{Discard, Identity, InMemorySource, buffer_bytes, float64_batch};
use mlpipe_host::config::Settings;
use mlpipe_host::pipeline::{
    Pipeline, RunControl, SourceFactory, SourceStage, Stage, TransformFactory, TransformStage,
};
use mlpipe_host::registry::ComponentLabel;
use mlpipe_plugin_api::{RecordBatch, Sink, Source, Transform};

/// 64 batches of 64K rows × 4 float64 columns: 128 MiB per pass, more than the caches.
const BATCHES: usize = 64;
const ROWS: usize = 1 << 16;
const COLUMNS: usize = 4;

fn label(stage: &str) -> ComponentLabel {
    ComponentLabel {
        stage: stage.to_string(),
        component: stage.to_string(),
        plugin: None,
    }
}

fn run_engine(batches: &[RecordBatch], identity: Identity, workers: usize) {
    let settings = Settings {
        batch_rows: ROWS,
        workers,
        ..Settings::default()
    };
    let source = InMemorySource::new(batches);
    let source: SourceFactory = Arc::new(move || Ok(Box::new(source.clone()) as Box<dyn Source>));
    let transform: TransformFactory =
        Arc::new(move || Ok(Box::new(identity) as Box<dyn Transform>));
    let pipeline = Pipeline::new(
        settings,
        SourceStage::new(label("source"), source),
        vec![TransformStage::new(label("transform[0]"), transform)],
        Stage {
            label: label("sink"),
            component: Box::new(Discard),
        },
    );
    let (report, result) = pipeline.run(&RunControl::default(), |_| {});
    result.expect("the run succeeds");
    assert_eq!(report.batches_written, BATCHES as u64);
}

fn run_loop(batches: &[RecordBatch], mut identity: Identity) {
    let mut sink = Discard;
    for batch in batches {
        let output = identity.transform(batch.clone()).expect("transformed");
        sink.consume(output).expect("consumed");
    }
    black_box(&sink);
}

fn engine(c: &mut Criterion) {
    let batches: Vec<RecordBatch> = (0..BATCHES).map(|_| float64_batch(ROWS, COLUMNS)).collect();
    let bytes: u64 = batches.iter().map(buffer_bytes).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut workers = vec![1, 2, cores];
    workers.sort_unstable();
    workers.dedup();
    for (name, identity) in [
        ("read", Identity { read: true }),
        ("noop", Identity { read: false }),
    ] {
        let mut group = c.benchmark_group(format!("engine_{name}"));
        group.throughput(Throughput::Bytes(bytes));
        group.sample_size(20);
        group.bench_function("plain_loop", |b| b.iter(|| run_loop(&batches, identity)));
        for &n in &workers {
            group.bench_with_input(BenchmarkId::new("workers", n), &n, |b, &n| {
                b.iter(|| run_engine(&batches, identity, n))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, engine);
criterion_main!(benches);
