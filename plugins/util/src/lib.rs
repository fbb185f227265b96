//! # mlpipe-plugin-util
//!
//! Small components that are not a format and not a transform:
//!
//! - sink `discard` consumes every batch and keeps nothing: a dry run that still reads,
//!   decodes and transforms everything, and the baseline of the read benchmarks. Its
//!   counters report the rows and batches it saw.

use mlpipe_plugin_api::{Counters, Plugin, RecordBatch, Result, Sink};

/// Counts what it is given and drops it.
#[derive(Debug, Default)]
struct Discard {
    rows: u64,
    batches: u64,
}

impl Sink for Discard {
    fn consume(&mut self, batch: RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.batches += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn counters(&self) -> Counters {
        vec![
            ("rows discarded".to_string(), self.rows),
            ("batches discarded".to_string(), self.batches),
        ]
    }
}

/// The plugin definition the host loads.
fn plugin() -> Plugin {
    Plugin::new("util", env!("CARGO_PKG_VERSION")).sink(
        "discard",
        "consumes every batch and keeps nothing (dry runs, read benchmarks)",
        [],
        |_config| Ok(Discard::default()),
    )
}

mlpipe_plugin_api::export_plugin!(plugin);
