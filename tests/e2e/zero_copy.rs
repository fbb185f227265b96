//! Buffers cross the plugin boundary without copies, in both directions. The production
//! loader opens the testkit library in this process; its components report the address of
//! the data buffer they produced or received, and the host side compares it with its own.

use std::sync::Arc;

use arrow::array::{AsArray, Float64Array, RecordBatch};
use arrow::datatypes::Float64Type;
use mlpipe_plugin_api::Counters;
use mlpipe_plugin_api::ffi::PluginLibrary;
use mlpipe_tests::testkit;
use serde_json::json;

fn load_testkit() -> PluginLibrary {
    mlpipe_host::loader::open(&testkit()).expect("the testkit loads")
}

/// The address a testkit component reported.
fn reported_address(counters: &Counters) -> u64 {
    counters
        .iter()
        .find(|(name, _)| name == "data address")
        .map(|(_, address)| *address)
        .expect("testkit components report a `data address` counter")
}

/// The address of the values of the batch's float64 column `x`, as this side sees it.
fn address(batch: &RecordBatch) -> u64 {
    let x = batch.column_by_name("x").expect("a column x");
    x.as_primitive::<Float64Type>().values().inner().as_ptr() as u64
}

#[test]
fn a_buffer_a_plugin_source_allocated_is_read_by_the_host_at_the_same_address() {
    let library = load_testkit();
    let mut source = library
        .create_source("numbers", &json!({"rows": 150_000}))
        .expect("the source is created");
    let mut first_row = 0;
    while let Some(batch) = source.next_batch(65_536).expect("a batch") {
        let plugin_address = reported_address(&source.counters());
        assert_ne!(plugin_address, 0);
        assert_eq!(address(&batch), plugin_address, "the batch was copied");
        let x = batch.column(0).as_primitive::<Float64Type>();
        assert_eq!(x.value(0), first_row as f64);
        assert_eq!(x.value(x.len() - 1), (first_row + x.len() - 1) as f64);
        first_row += batch.num_rows();
    }
    assert_eq!(first_row, 150_000);
}

fn host_batch() -> RecordBatch {
    let x = Float64Array::from_iter_values((0..65_536).map(f64::from));
    RecordBatch::try_from_iter([("x", Arc::new(x) as _)]).expect("a batch")
}

#[test]
fn a_buffer_the_host_allocated_reaches_a_plugin_transform_and_comes_back_at_the_same_address() {
    let library = load_testkit();
    let mut transform = library
        .create_transform("passthrough", &json!({}), &[])
        .expect("the transform is created");
    let batch = host_batch();
    let output = transform.transform(batch.clone()).expect("transformed");
    assert_eq!(
        reported_address(&transform.counters()),
        address(&batch),
        "the plugin received a copy"
    );
    assert_eq!(address(&output), address(&batch), "the result was copied");
    assert_eq!(output, batch);
}

#[test]
fn a_buffer_the_host_allocated_reaches_a_plugin_sink_at_the_same_address() {
    let library = load_testkit();
    let mut sink = library
        .create_sink("discard", &json!({}))
        .expect("the sink is created");
    let batch = host_batch();
    sink.consume(batch.clone()).expect("consumed");
    assert_eq!(
        reported_address(&sink.counters()),
        address(&batch),
        "the plugin received a copy"
    );
}
