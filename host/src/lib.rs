//! # mlpipe-host
//!
//! The host side of mlpipe: it loads plugins, builds a pipeline from a TOML file, and runs
//! it. Usable embedded from Rust, with components registered in-process:
//!
//! ```
//! use std::sync::Arc;
//! use mlpipe_host::pipeline::{Pipeline, RunControl, SourceStage, Stage};
//! use mlpipe_host::registry::ComponentLabel;
//! use mlpipe_host::config::Settings;
//! use mlpipe_plugin_api::arrow::array::{Int64Array, RecordBatch};
//! use mlpipe_plugin_api::{Result, SchemaRef, Sink, Source};
//!
//! struct Numbers { left: i64 }
//! impl Source for Numbers {
//!     fn schema(&self) -> Result<SchemaRef> { Ok(batch(0).schema()) }
//!     fn next_batch(&mut self, _max_rows: usize) -> Result<Option<RecordBatch>> {
//!         self.left -= 1;
//!         Ok((self.left >= 0).then(|| batch(self.left)))
//!     }
//! }
//! fn batch(n: i64) -> RecordBatch {
//!     RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![n])) as _)]).unwrap()
//! }
//! #[derive(Default)]
//! struct Count(usize);
//! impl Sink for Count {
//!     fn consume(&mut self, batch: RecordBatch) -> Result<()> { self.0 += batch.num_rows(); Ok(()) }
//!     fn flush(&mut self) -> Result<()> { Ok(()) }
//! }
//!
//! let label = |stage: &str| ComponentLabel { stage: stage.into(), component: stage.into(), plugin: None };
//! let source = SourceStage::new(label("source"), Arc::new(|| Ok(Box::new(Numbers { left: 3 }) as _)));
//! let sink = Stage { label: label("sink"), component: Box::new(Count::default()) as _ };
//! let pipeline = Pipeline::new(Settings::default(), source, vec![], sink);
//! let (report, result) = pipeline.run(&RunControl::default(), |_progress| {});
//! result.unwrap();
//! assert_eq!(report.rows_written, 3);
//! ```

pub mod config;
pub mod error;
pub mod loader;
pub mod pipeline;
pub mod registry;
pub mod serve;
