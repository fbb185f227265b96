//! Runs a pipeline: a source thread, a transform thread and the sink on the calling
//! thread, joined by bounded channels, so that a slow stage holds back the ones before it.
//!
//! The first error anywhere is recorded, the other stages stop at their next step, and
//! the sink is dropped without `flush`, so a failed run leaves no output behind.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use crossbeam_channel::{Receiver, Sender, bounded};
use mlpipe_plugin_api::{Error as ComponentError, Sink, Source, Transform};

use crate::config::{PipelineConfig, Settings};
use crate::error::{HostError, RunError};
use crate::registry::{ComponentLabel, Registry};

/// Batches allowed to wait between two stages.
const QUEUE_DEPTH: usize = 4;

/// A component with the label that names it in messages.
#[derive(Debug)]
pub struct Stage<C> {
    /// Which stage and component this is.
    pub label: ComponentLabel,
    /// The component.
    pub component: C,
}

impl<C> Stage<C> {
    fn fail(
        &self,
        method: &'static str,
        batch: Option<u64>,
        error: ComponentError,
    ) -> Box<RunError> {
        Box::new(RunError {
            stage: self.label.stage.clone(),
            component: self.label.component.clone(),
            plugin: self.label.plugin.clone(),
            method,
            batch,
            error,
        })
    }
}

/// A pipeline ready to run.
pub struct Pipeline {
    /// `[pipeline]` settings.
    pub settings: Settings,
    /// Where batches come from.
    pub source: Stage<Box<dyn Source>>,
    /// Applied in order to every batch.
    pub transforms: Vec<Stage<Box<dyn Transform>>>,
    /// Where batches go.
    pub sink: Stage<Box<dyn Sink>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("settings", &self.settings)
            .field("source", &self.source.label)
            .field(
                "transforms",
                &self.transforms.iter().map(|t| &t.label).collect::<Vec<_>>(),
            )
            .field("sink", &self.sink.label)
            .finish()
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// Rows the source produced.
    pub rows_read: u64,
    /// Rows the sink consumed.
    pub rows_written: u64,
    /// Batches the sink consumed.
    pub batches: u64,
    /// Arrow bytes the sink consumed (sum of the batches' buffer sizes).
    pub bytes_written: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Time spent inside the source, the transforms and the sink.
    pub busy: [Duration; 3],
    /// The schema of the output.
    pub output_schema: Option<SchemaRef>,
}

/// Progress reported after every batch the sink consumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Rows written so far.
    pub rows: u64,
    /// Rows the source expects to produce in all, when it knows.
    pub total_rows: Option<u64>,
    /// Arrow bytes written so far.
    pub bytes: u64,
    /// Time since the run started.
    pub elapsed: Duration,
}

/// The first error of a run; later ones are consequences and are dropped.
struct FirstError {
    slot: Mutex<Option<Box<RunError>>>,
    failed: AtomicBool,
}

impl FirstError {
    fn record(&self, error: Box<RunError>) {
        let mut slot = self
            .slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        self.failed.store(true, Ordering::Release);
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    fn take(self) -> Option<Box<RunError>> {
        self.slot
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Numbered {
    index: u64,
    batch: RecordBatch,
}

impl Pipeline {
    /// Creates every component the pipeline file names.
    pub fn from_config(
        config: &PipelineConfig,
        registry: &Registry,
    ) -> Result<Pipeline, HostError> {
        let (file, base) = (config.file.as_path(), config.base_dir());
        let (label, component) = registry.create_source(&config.source, file, &base)?;
        let source = Stage { label, component };
        let transforms = config
            .transforms
            .iter()
            .map(|spec| {
                registry
                    .create_transform(spec, file, &base)
                    .map(|(label, component)| Stage { label, component })
            })
            .collect::<Result<_, _>>()?;
        let (label, component) = registry.create_sink(&config.sink, file, &base)?;
        Ok(Pipeline {
            settings: config.settings.clone(),
            source,
            transforms,
            sink: Stage { label, component },
        })
    }

    /// Checks that every component exists and accepts its config, creating none of them
    /// and reading no data.
    pub fn validate(
        config: &PipelineConfig,
        registry: &Registry,
    ) -> Result<Vec<ComponentLabel>, HostError> {
        use mlpipe_plugin_api::ComponentKind;
        let file = config.file.as_path();
        let mut labels = vec![registry.check(ComponentKind::Source, &config.source, file)?];
        for spec in &config.transforms {
            labels.push(registry.check(ComponentKind::Transform, spec, file)?);
        }
        labels.push(registry.check(ComponentKind::Sink, &config.sink, file)?);
        Ok(labels)
    }

    /// Negotiates schemas, then runs every batch through to the sink.
    pub fn run(
        mut self,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<RunReport, Box<RunError>> {
        let started = Instant::now();
        let schemas = self.negotiate_schemas()?;
        let total_rows = self.source.component.size_hint().map(|n| n as u64);
        let errors = FirstError {
            slot: Mutex::new(None),
            failed: AtomicBool::new(false),
        };
        let (to_transforms, from_source) = bounded::<Numbered>(QUEUE_DEPTH);
        let (to_sink, from_transforms) = bounded::<Numbered>(QUEUE_DEPTH);
        let batch_rows = self.settings.batch_rows;
        let Pipeline {
            source,
            transforms,
            sink,
            ..
        } = self;
        let mut report = RunReport {
            output_schema: schemas.last().cloned(),
            ..RunReport::default()
        };
        let (source_time, transform_time, sink_time) = std::thread::scope(|scope| {
            let errors = &errors;
            let source_schema = schemas[0].clone();
            let source_thread = scope
                .spawn(move || read(source, &source_schema, batch_rows, to_transforms, errors));
            let transform_thread =
                scope.spawn(move || apply(transforms, &schemas, from_source, to_sink, errors));
            let sink_time = write(sink, from_transforms, errors, &mut report, |report| {
                on_progress(&Progress {
                    rows: report.rows_written,
                    total_rows,
                    bytes: report.bytes_written,
                    elapsed: started.elapsed(),
                })
            });
            let (source_time, rows_read) = source_thread.join().unwrap_or_default();
            report.rows_read = rows_read;
            (
                source_time,
                transform_thread.join().unwrap_or_default(),
                sink_time,
            )
        });
        report.busy = [source_time, transform_time, sink_time];
        report.elapsed = started.elapsed();
        match errors.take() {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// Asks each stage for its schema: the source's, each transform's output for its
    /// input, and tells the sink. Returns the schema after each transform, last = output.
    fn negotiate_schemas(&mut self) -> Result<Vec<SchemaRef>, Box<RunError>> {
        let mut schema = self
            .source
            .component
            .schema()
            .map_err(|e| self.source.fail("schema", None, e))?;
        let mut schemas = vec![schema.clone()];
        for stage in &self.transforms {
            schema = stage
                .component
                .output_schema(&schema)
                .map_err(|e| stage.fail("output_schema", None, e))?;
            schemas.push(schema.clone());
        }
        self.sink
            .component
            .begin(&schema)
            .map_err(|e| self.sink.fail("begin", None, e))?;
        Ok(schemas)
    }
}

fn check_schema(
    batch: &RecordBatch,
    expected: &SchemaRef,
    what: &str,
) -> Result<(), ComponentError> {
    if batch.schema().fields() == expected.fields() {
        return Ok(());
    }
    Err(ComponentError::bad_data(format!(
        "{what} returned a batch of schema {:?}, but declared {:?}",
        batch.schema().fields(),
        expected.fields()
    )))
}

/// The source thread: reads batches until the source is exhausted or the run fails.
fn read(
    mut source: Stage<Box<dyn Source>>,
    schema: &SchemaRef,
    batch_rows: usize,
    output: Sender<Numbered>,
    errors: &FirstError,
) -> (Duration, u64) {
    let mut busy = Duration::ZERO;
    let mut rows = 0;
    for index in 0.. {
        if errors.failed() {
            break;
        }
        let started = Instant::now();
        let next = source
            .component
            .next_batch(batch_rows)
            .and_then(|batch| match &batch {
                Some(b) => check_schema(b, schema, "next_batch").map(|_| batch),
                None => Ok(batch),
            });
        busy += started.elapsed();
        match next {
            Ok(Some(batch)) => {
                rows += batch.num_rows() as u64;
                if output.send(Numbered { index, batch }).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                errors.record(source.fail("next_batch", Some(index), error));
                break;
            }
        }
    }
    (busy, rows)
}

/// The transform thread: applies the chain to every batch, in order.
fn apply(
    mut transforms: Vec<Stage<Box<dyn Transform>>>,
    schemas: &[SchemaRef],
    input: Receiver<Numbered>,
    output: Sender<Numbered>,
    errors: &FirstError,
) -> Duration {
    let mut busy = Duration::ZERO;
    for Numbered { index, mut batch } in input {
        if errors.failed() {
            break;
        }
        let started = Instant::now();
        for (position, stage) in transforms.iter_mut().enumerate() {
            let result = stage.component.transform(batch).and_then(|out| {
                check_schema(&out, &schemas[position + 1], "transform").map(|_| out)
            });
            match result {
                Ok(out) => batch = out,
                Err(error) => {
                    errors.record(stage.fail("transform", Some(index), error));
                    return busy + started.elapsed();
                }
            }
        }
        busy += started.elapsed();
        if output.send(Numbered { index, batch }).is_err() {
            break;
        }
    }
    busy
}

/// The sink, on the calling thread: consumes every batch, then flushes if nothing failed.
fn write(
    mut sink: Stage<Box<dyn Sink>>,
    input: Receiver<Numbered>,
    errors: &FirstError,
    report: &mut RunReport,
    mut on_progress: impl FnMut(&RunReport),
) -> Duration {
    let mut busy = Duration::ZERO;
    for Numbered { index, batch } in input.iter() {
        if errors.failed() {
            break;
        }
        let rows = batch.num_rows() as u64;
        let bytes = batch.get_array_memory_size() as u64;
        let started = Instant::now();
        let result = sink.component.consume(batch);
        busy += started.elapsed();
        if let Err(error) = result {
            errors.record(sink.fail("consume", Some(index), error));
            return busy;
        }
        report.rows_written += rows;
        report.bytes_written += bytes;
        report.batches += 1;
        on_progress(report);
    }
    // Every sender is gone: the upstream stages finished or failed. Their errors were
    // recorded before their senders dropped, so this check sees them.
    if !errors.failed() {
        let started = Instant::now();
        if let Err(error) = sink.component.flush() {
            errors.record(sink.fail("flush", None, error));
        }
        busy += started.elapsed();
    }
    busy
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::sync::{Arc, Mutex};

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use mlpipe_plugin_api::Result;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
    }

    /// Counts 0..rows in batches; fails at batch `fail_at`.
    struct Counter {
        next: i64,
        rows: i64,
        fail_at: Option<u64>,
        batches: u64,
    }

    impl Source for Counter {
        fn schema(&self) -> Result<SchemaRef> {
            Ok(schema())
        }

        fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
            if self.fail_at == Some(self.batches) {
                return Err(ComponentError::bad_data("unreadable"));
            }
            self.batches += 1;
            let end = (self.next + max_rows as i64).min(self.rows);
            if self.next >= end {
                return Ok(None);
            }
            let values = Int64Array::from_iter_values(self.next..end);
            self.next = end;
            Ok(Some(RecordBatch::try_new(
                schema(),
                vec![Arc::new(values)],
            )?))
        }
    }

    /// Doubles `n`; fails on the batch with index `fail_at`.
    struct Double {
        seen: u64,
        fail_at: Option<u64>,
    }

    impl Transform for Double {
        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
            Ok(input.clone())
        }

        fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
            if self.fail_at == Some(self.seen) {
                return Err(ComponentError::bad_data("cannot double").with_rows(0..1));
            }
            self.seen += 1;
            let doubled: Int64Array = batch.column(0).as_primitive::<Int64Type>().unary(|n| n * 2);
            Ok(RecordBatch::try_new(
                batch.schema(),
                vec![Arc::new(doubled)],
            )?)
        }
    }

    /// Collects every value; records whether it was flushed.
    #[derive(Clone, Default)]
    struct Collect {
        values: Arc<Mutex<Vec<i64>>>,
        flushed: Arc<AtomicU64>,
        fail_at: Option<u64>,
    }

    impl Sink for Collect {
        fn consume(&mut self, batch: RecordBatch) -> Result<()> {
            let mut values = self.values.lock().unwrap();
            if self.fail_at == Some(values.len() as u64) {
                return Err(ComponentError::io("disk full"));
            }
            values.extend(batch.column(0).as_primitive::<Int64Type>().values().iter());
            Ok(())
        }

        fn flush(&mut self) -> Result<()> {
            self.flushed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn label(stage: &str) -> ComponentLabel {
        ComponentLabel {
            stage: stage.to_string(),
            component: format!("test-{}", stage.trim_end_matches("[0]")),
            plugin: None,
        }
    }

    fn pipeline(
        rows: i64,
        fail: (Option<u64>, Option<u64>, Option<u64>),
        sink: &Collect,
    ) -> Pipeline {
        let mut sink = sink.clone();
        sink.fail_at = fail.2;
        Pipeline {
            settings: Settings {
                batch_rows: 10,
                ..Settings::default()
            },
            source: Stage {
                label: label("source"),
                component: Box::new(Counter {
                    next: 0,
                    rows,
                    fail_at: fail.0,
                    batches: 0,
                }),
            },
            transforms: vec![Stage {
                label: label("transform[0]"),
                component: Box::new(Double {
                    seen: 0,
                    fail_at: fail.1,
                }),
            }],
            sink: Stage {
                label: label("sink"),
                component: Box::new(sink),
            },
        }
    }

    #[test]
    fn every_row_arrives_in_order_and_the_sink_is_flushed_once() {
        let sink = Collect::default();
        let mut updates = 0;
        let report = pipeline(95, (None, None, None), &sink)
            .run(|_| updates += 1)
            .unwrap();
        assert_eq!(
            *sink.values.lock().unwrap(),
            (0..95).map(|n| n * 2).collect::<Vec<_>>()
        );
        assert_eq!(sink.flushed.load(Ordering::SeqCst), 1);
        assert_eq!(
            (report.rows_read, report.rows_written, report.batches),
            (95, 95, 10)
        );
        assert_eq!(updates, 10);
    }

    #[test]
    fn a_failure_in_any_stage_names_it_and_skips_the_flush() {
        for (fail, stage, method, batch) in [
            ((Some(0), None, None), "source", "next_batch", Some(0)),
            ((Some(4), None, None), "source", "next_batch", Some(4)),
            ((None, Some(0), None), "transform[0]", "transform", Some(0)),
            ((None, Some(9), None), "transform[0]", "transform", Some(9)),
            ((None, None, Some(0)), "sink", "consume", Some(0)),
            ((None, None, Some(50)), "sink", "consume", Some(5)),
        ] {
            let sink = Collect::default();
            let error = pipeline(100, fail, &sink).run(|_| {}).unwrap_err();
            assert_eq!(
                (error.stage.as_str(), error.method, error.batch),
                (stage, method, batch)
            );
            assert_eq!(
                error.component,
                format!("test-{}", stage.trim_end_matches("[0]"))
            );
            assert_eq!(
                sink.flushed.load(Ordering::SeqCst),
                0,
                "{stage} failed, yet the sink flushed"
            );
        }
    }

    #[test]
    fn an_error_message_names_stage_component_method_and_batch() {
        let sink = Collect::default();
        let error = pipeline(100, (None, Some(3), None), &sink)
            .run(|_| {})
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "transform[0] `test-transform` failed in transform at batch 3: bad data: cannot double (rows 0..1)"
        );
    }
}
