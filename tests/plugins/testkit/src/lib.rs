//! # mlpipe-testkit
//!
//! A plugin for tests only. Its components misbehave on request, so that the end-to-end
//! tests can drive every failure path of the host through a real library:
//!
//! - source `numbers` produces one float64 column `x` holding the row number (0, 1, 2, …),
//!   finite or endless, fast or slow;
//! - transform `passthrough` returns its input unchanged, or with an undeclared column
//!   (`lie = true`);
//! - sink `discard` drops what it receives (its name deliberately collides with the
//!   standard `util/discard`, for the tests of qualified names);
//! - kernel `log1p` adds `shift` (1000) to each value instead: a replacement for the
//!   standard `simd/log1p` that the tests can tell apart by its output.
//!
//! Every component accepts `panic_in = "<method>"` (it panics on the first call of that
//! method) and `fail_at_row = N` (the call that produces or receives row N returns an
//! error). Every component's counters report the address of the data buffer of the last
//! batch it produced or received (`data address`), so a test can check that a buffer
//! crosses the boundary without being copied.

mod faults;
mod numbers;
mod passthrough;
mod shifted;

use mlpipe_plugin_api::arrow::array::{AsArray, RecordBatch};
use mlpipe_plugin_api::arrow::datatypes::Float64Type;
use mlpipe_plugin_api::{Counters, Plugin, Result, SchemaRef, Sink};

use crate::faults::Faults;

/// The counter that reports the address of the last data buffer a component saw.
const DATA_ADDRESS: &str = "data address";

/// The address of the values buffer of column `x`, or 0 when the batch has none.
fn data_address(batch: &RecordBatch) -> u64 {
    batch
        .column_by_name("x")
        .and_then(|x| x.as_primitive_opt::<Float64Type>())
        .map_or(0, |x| x.values().inner().as_ptr() as u64)
}

/// Drops every batch; remembers where the last one's data lived.
struct Discard {
    faults: Faults,
    rows: u64,
    address: u64,
}

impl Sink for Discard {
    fn begin(&mut self, _schema: &SchemaRef) -> Result<()> {
        self.faults.enter("begin");
        Ok(())
    }

    fn consume(&mut self, batch: RecordBatch) -> Result<()> {
        self.faults.enter("consume");
        self.faults.check_batch(&batch)?;
        self.rows += batch.num_rows() as u64;
        self.address = data_address(&batch);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.faults.enter("flush");
        Ok(())
    }

    fn memory_usage(&self) -> usize {
        self.faults.enter("memory_usage");
        0
    }

    fn counters(&self) -> Counters {
        vec![
            ("rows".to_string(), self.rows),
            (DATA_ADDRESS.to_string(), self.address),
        ]
    }
}

const SINK_METHODS: &[&str] = &["begin", "consume", "flush", "memory_usage"];

/// The plugin definition the host loads.
fn plugin() -> Plugin {
    Plugin::new("testkit", env!("CARGO_PKG_VERSION"))
        .source(
            "numbers",
            "float64 column `x` = row number; finite or endless, fast or slow, faulty on request",
            numbers::keys(),
            numbers::Numbers::from_config,
        )
        .transform(
            "passthrough",
            "returns its input unchanged (or, with lie = true, with an undeclared column)",
            passthrough::keys(),
            passthrough::Passthrough::from_config,
        )
        .sink(
            "discard",
            "drops every batch, reporting the address of the last one's data",
            Faults::keys(SINK_METHODS),
            |config| {
                Ok(Discard {
                    faults: Faults::from_config(config, SINK_METHODS)?,
                    rows: 0,
                    address: 0,
                })
            },
        )
        .kernel(
            "log1p",
            "x + shift (default 1000): stands in for the standard log1p, to be told apart",
            "(x: T) -> T (nulls kept), T = float32 | float64",
            shifted::keys(),
            shifted::Shifted::from_config,
        )
}

mlpipe_plugin_api::export_plugin!(plugin);
