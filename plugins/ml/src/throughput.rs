//! Per-transform throughput on the benchmark table, as an ignored test:
//!
//! ```sh
//! MLPIPE_TAB_ARROW=/work/bench/data/tab_1000000.arrow \
//!     cargo test --release -p mlpipe-plugin-ml -- --ignored --nocapture throughput
//! ```
//!
//! The file is the Arrow IPC output of `../shared/bench/gen_data.py` (16 float64 columns
//! `f0..f15` with ~2 % nulls, 4 string columns `c0..c3`, `id`, `label`). Each transform is
//! fitted on the whole table (one instance), then applied to 65,536-row batches; the test
//! prints fit and apply time and throughput in rows/s (rows of the whole table). Times are
//! the thread's CPU time (`/proc/thread-self/schedstat`), so that other processes on a
//! busy machine inflate them less than wall time; the `copy` row (arrow's `unary` identity
//! over the same columns: read, allocate, write) is the baseline to compare with.

use std::fs::File;
use std::sync::Arc;

use mlpipe_plugin_api::RecordBatch;
use mlpipe_plugin_api::arrow::array::{ArrayRef, AsArray};
use mlpipe_plugin_api::arrow::datatypes::Float64Type;
use mlpipe_plugin_api::arrow::ipc::reader::FileReader;
use serde_json::{Value, json};

use crate::testing::make;

const BATCH_ROWS: usize = 65_536;

fn table() -> Vec<RecordBatch> {
    let path = std::env::var("MLPIPE_TAB_ARROW")
        .expect("set MLPIPE_TAB_ARROW to an Arrow IPC file written by ../shared/bench/gen_data.py");
    let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    let reader = FileReader::try_new(file, None).expect("an Arrow IPC file");
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.expect("a readable batch");
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = BATCH_ROWS.min(batch.num_rows() - offset);
            batches.push(batch.slice(offset, len));
            offset += len;
        }
    }
    batches
}

/// CPU time of this thread, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let nanos: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("schedstat starts with the CPU time in ns");
    nanos as f64 / 1e9
}

fn report(name: &str, config: &str, rows: usize, fit: Option<f64>, apply: f64) {
    let fit = fit.map_or("-".to_string(), |s| {
        format!("{:.3} s ({:.1} M rows/s)", s, rows as f64 / s / 1e6)
    });
    println!(
        "{name:<12} {config:<44} fit {fit:<26} apply {apply:.3} s ({:.1} M rows/s)",
        rows as f64 / apply / 1e6
    );
}

/// The baseline: arrow's `unary` identity over the float columns.
fn copy(batches: &[RecordBatch]) {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let start = cpu_seconds();
    for batch in batches {
        let copies: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .filter_map(|column| column.as_primitive_opt::<Float64Type>())
            .map(|values| Arc::new(values.unary::<_, Float64Type>(|x| x)) as ArrayRef)
            .collect();
        std::hint::black_box(copies);
    }
    report("copy", "float64 columns", rows, None, cpu_seconds() - start);
}

/// The float columns packed into a 16-wide tensor column, as an embedding.
fn tensors(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    let mut t = make("to_tensor", &json!({"columns": ["f*"], "null_value": 0}));
    batches
        .iter()
        .map(|b| t.transform(b.clone()).expect("to_tensor"))
        .collect()
}

fn measure(name: &str, config: &Value, batches: &[RecordBatch]) {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut t = make(name, config);
    let fit = if t.needs_fit() {
        let start = cpu_seconds();
        for batch in batches {
            t.fit(batch).expect("fit");
        }
        let params = t.finish_fit().expect("finish_fit");
        t.load_fit(&params).expect("load_fit");
        Some(cpu_seconds() - start)
    } else {
        None
    };
    let start = cpu_seconds();
    for batch in batches {
        std::hint::black_box(t.transform(batch.clone()).expect("transform"));
    }
    std::hint::black_box(t.finish().expect("finish"));
    report(name, &config.to_string(), rows, fit, cpu_seconds() - start);
}

#[test]
#[ignore = "a measurement: needs MLPIPE_TAB_ARROW"]
fn throughput() {
    let batches = table();
    copy(&batches);
    let floats = json!({"columns": ["f*"]});
    let strings = json!({"columns": ["c*"]});
    measure("fill_null", &floats, &batches);
    measure("standardize", &floats, &batches);
    measure(
        "standardize",
        &json!({"columns": ["f*"], "impute": "mean"}),
        &batches,
    );
    measure("ordinal", &strings, &batches);
    measure("one_hot", &json!({"columns": ["c0", "c3"]}), &batches);
    measure(
        "hash_bucket",
        &json!({"columns": ["c*"], "buckets": 1024}),
        &batches,
    );
    measure("min_max", &floats, &batches);
    measure("robust", &floats, &batches);
    measure(
        "bucketize",
        &json!({"columns": ["f*"], "n_bins": 10}),
        &batches,
    );
    measure(
        "clip",
        &json!({"columns": ["f*"], "min": -1, "max": 1}),
        &batches,
    );
    measure("log1p", &floats, &batches);
    measure(
        "cast",
        &json!({"columns": ["f*"], "to": "float32"}),
        &batches,
    );
    measure(
        "to_tensor",
        &json!({"columns": ["f*"], "null_value": 0}),
        &batches,
    );
    measure(
        "split",
        &json!({"key": "id", "fractions": [0.8, 0.1, 0.1]}),
        &batches,
    );
    measure(
        "filter",
        &json!({"where": "f0 > 0 and c0 != 'a'"}),
        &batches,
    );
    measure(
        "validate",
        &json!({"rules": [{"column": "f*", "min": -1e9, "max": 1e9}], "on_violation": "drop"}),
        &batches,
    );
    measure(
        "normalize",
        &json!({"columns": ["features"]}),
        &tensors(&batches),
    );
    let noise = json!({"columns": ["f*"], "std": 0.1, "key": "id"});
    measure("gaussian_noise", &noise, &batches);
    let mask = json!({"columns": ["f*"], "rate": 0.1, "key": "id"});
    measure("random_mask", &mask, &batches);
    measure("sample", &json!({"fraction": 0.5, "key": "id"}), &batches);
    measure("shuffle", &json!({"buffer_rows": 262_144}), &batches);
}
