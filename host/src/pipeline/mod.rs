//! The engine: runs a pipeline on a source thread, a pool of transform workers and a sink
//! thread, while the calling thread watches (progress, memory pressure, cancellation, the
//! size of the worker pool).
//!
//! ```text
//! source ─▶ re-batcher ─▶ [admission: memory budget] ─▶ transform queue ─▶ worker 1..N
//!                                                                  (own transform chain each)
//!        sink ◀─ reorder buffer ◀─ output queue ◀──────────────────────────┘
//! ```
//!
//! The four buffers (the re-batcher's pending rows, the transform queue, the output queue
//! and the reorder buffer) are bounded in batches by their channels and, together, in bytes
//! by the [`budget`](budget::MemoryBudget): the source waits before admitting a batch that
//! would exceed it, and nothing else ever waits on memory, so no stage can deadlock on it.
//! The first error anywhere stops every stage; the sink is then dropped without `flush`, so
//! a failed run leaves no output behind.

mod batcher;
pub mod budget;
pub mod metrics;
mod pool;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use crossbeam_channel::{Receiver, Sender, bounded};
use mlpipe_plugin_api::{Error as ComponentError, ErrorKind, Sink, Source, Transform};

use self::batcher::Rebatcher;
use self::budget::{AdmitError, Charge, MemoryBudget, available_memory, batch_bytes};
use self::metrics::{Metrics, Report};
use self::pool::BufferPool;
use crate::config::{PipelineConfig, Settings};
use crate::error::{HostError, RunError};
use crate::registry::{ComponentLabel, Registry};

/// A component with the label that names it in messages.
#[derive(Debug)]
pub struct Stage<C> {
    /// Which stage and component this is.
    pub label: ComponentLabel,
    /// The component.
    pub component: C,
}

fn fail(
    label: &ComponentLabel,
    method: &'static str,
    batch: Option<u64>,
    error: ComponentError,
) -> Box<RunError> {
    Box::new(RunError {
        stage: label.stage.clone(),
        component: label.component.clone(),
        plugin: label.plugin.clone(),
        method,
        batch,
        error,
    })
}

/// Makes one instance of a transform; every worker gets its own.
pub type TransformFactory =
    Arc<dyn Fn() -> mlpipe_plugin_api::Result<Box<dyn Transform>> + Send + Sync>;

/// A transform stage: its label and how to make an instance for each worker.
pub struct TransformStage {
    /// Which stage and component this is.
    pub label: ComponentLabel,
    /// Makes an instance.
    pub factory: TransformFactory,
}

impl std::fmt::Debug for TransformStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformStage")
            .field("label", &self.label)
            .finish()
    }
}

/// A pipeline ready to run.
pub struct Pipeline {
    /// `[pipeline]` settings.
    pub settings: Settings,
    /// Where batches come from.
    pub source: Stage<Box<dyn Source>>,
    /// Applied in order to every batch.
    pub transforms: Vec<TransformStage>,
    /// Where batches go.
    pub sink: Stage<Box<dyn Sink>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("settings", &self.settings)
            .field("source", &self.source.label)
            .field("transforms", &self.transforms)
            .field("sink", &self.sink.label)
            .finish()
    }
}

/// What the caller shares with a running pipeline.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// Set it to stop the run (SIGINT, SIGTERM); the run then fails as cancelled.
    pub cancel: Arc<AtomicBool>,
    /// The live metrics (for a progress display or a metrics endpoint).
    pub metrics: Arc<Metrics>,
}

/// Progress, reported by the watching thread about ten times a second.
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
#[derive(Default)]
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

/// A batch in flight: its position in source order and the memory it holds.
struct Numbered {
    index: u64,
    batch: RecordBatch,
    charge: Charge,
}

/// How many transform workers may run; the watching thread adapts it.
struct WorkerGate {
    limit: Mutex<usize>,
    changed: Condvar,
}

impl WorkerGate {
    /// Waits while worker `index` is above the limit; false when `finished()` says the
    /// worker is no longer needed (checked again on every wake-up, so a parked worker
    /// cannot outlive its input).
    fn wait_turn(&self, index: usize, finished: impl Fn() -> bool) -> bool {
        let mut limit = self.limit.lock().unwrap_or_else(|p| p.into_inner());
        while index >= *limit {
            if finished() {
                return false;
            }
            limit = self
                .changed
                .wait_timeout(limit, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    fn set(&self, limit: usize) {
        *self.limit.lock().unwrap_or_else(|p| p.into_inner()) = limit;
        self.changed.notify_all();
    }
}

/// Slots of component memory usage in the budget.
const SOURCE_SLOT: usize = 0;
const SINK_SLOT: usize = 1;
const POOL_SLOT: usize = 2;
const WORKER_SLOTS: usize = 3;

/// Everything the stage threads share.
struct Shared<'a> {
    settings: &'a Settings,
    workers: usize,
    budget: MemoryBudget,
    pool: BufferPool,
    metrics: &'a Metrics,
    errors: FirstError,
    /// Set when the source has no more batches or the run failed: idle workers leave.
    source_done: AtomicBool,
    gate: WorkerGate,
    schemas: Vec<SchemaRef>,
}

impl Pipeline {
    /// Creates every component the pipeline file names (one instance of each transform
    /// now, to check it can be made; the workers make their own when the run starts).
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
                    .transform_factory(spec, file, &base)
                    .map(|(label, factory)| TransformStage { label, factory })
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

    /// The number of transform workers this pipeline runs.
    pub fn workers(&self) -> usize {
        match self.settings.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Runs the pipeline to its end. Returns the report, whatever happened, and the error
    /// that stopped the run, if one did.
    pub fn run(
        mut self,
        control: &RunControl,
        mut on_progress: impl FnMut(&Progress),
    ) -> (Report, Result<(), Box<RunError>>) {
        let started = Instant::now();
        let workers = self.workers();
        let metrics = control.metrics.as_ref();
        let budget = self.settings.memory_budget;
        let report = |metrics: &Metrics| metrics.report(started.elapsed(), workers, budget);
        let mut first_chain = match self.make_chain() {
            Ok(chain) => chain,
            Err(error) => return (report(metrics), Err(error)),
        };
        let schemas = match self.negotiate_schemas(&mut first_chain) {
            Ok(schemas) => schemas,
            Err(error) => return (report(metrics), Err(error)),
        };
        let total_rows = self.source.component.size_hint().map(|n| n as u64);
        let shared = Shared {
            settings: &self.settings,
            workers,
            budget: MemoryBudget::new(self.settings.memory_budget),
            pool: BufferPool::default(),
            metrics,
            errors: FirstError::default(),
            source_done: AtomicBool::new(false),
            gate: WorkerGate {
                limit: Mutex::new(workers),
                changed: Condvar::new(),
            },
            schemas,
        };
        metrics.active_workers.set(workers as u64);
        let queue_depth = (2 * workers).max(4);
        let (to_workers, from_source) = bounded::<Numbered>(queue_depth);
        let (to_sink, from_workers) = bounded::<Numbered>(queue_depth);
        let (done_tx, done_rx) = bounded::<()>(1);
        let Pipeline {
            source,
            transforms,
            sink,
            ..
        } = self;
        std::thread::scope(|scope| {
            let shared = &shared;
            scope.spawn(move || read(source, to_workers, shared));
            let mut chains = vec![first_chain];
            let transforms = &transforms;
            scope.spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .thread_name(|i| format!("mlpipe-worker-{i}"))
                    .build();
                match pool {
                    Ok(pool) => pool.scope(|pool_scope| {
                        for index in 0..workers {
                            let chain = chains.pop();
                            let (input, output) = (from_source.clone(), to_sink.clone());
                            pool_scope.spawn(move |_| {
                                work(index, chain, transforms, input, output, shared)
                            });
                        }
                    }),
                    Err(error) => shared.errors.record(fail(
                        &ComponentLabel {
                            stage: "pipeline".into(),
                            component: "worker pool".into(),
                            plugin: None,
                        },
                        "start",
                        None,
                        ComponentError::new(
                            ErrorKind::ResourceExhausted,
                            format!("cannot start {workers} worker threads: {error}"),
                        ),
                    )),
                }
            });
            scope.spawn(move || {
                write(sink, from_workers, shared);
                let _ = done_tx.send(());
            });
            watch(
                shared,
                control,
                workers,
                &done_rx,
                |progress_rows, bytes| {
                    on_progress(&Progress {
                        rows: progress_rows,
                        total_rows,
                        bytes,
                        elapsed: started.elapsed(),
                    })
                },
            );
        });
        let Shared { errors, .. } = shared;
        let final_report = report(metrics);
        match errors.take() {
            Some(error) => (final_report, Err(error)),
            None => (final_report, Ok(())),
        }
    }

    fn make_chain(&self) -> Result<Vec<Box<dyn Transform>>, Box<RunError>> {
        self.transforms
            .iter()
            .map(|stage| (stage.factory)().map_err(|e| fail(&stage.label, "create", None, e)))
            .collect()
    }

    /// Asks each stage for its schema: the source's, each transform's output for its
    /// input, and tells the sink. Returns the schema before the first transform and after
    /// each one; the last is the output's.
    fn negotiate_schemas(
        &mut self,
        chain: &mut [Box<dyn Transform>],
    ) -> Result<Vec<SchemaRef>, Box<RunError>> {
        let mut schema = self
            .source
            .component
            .schema()
            .map_err(|e| fail(&self.source.label, "schema", None, e))?;
        let mut schemas = vec![schema.clone()];
        for (stage, transform) in self.transforms.iter().zip(chain.iter()) {
            schema = transform
                .output_schema(&schema)
                .map_err(|e| fail(&stage.label, "output_schema", None, e))?;
            schemas.push(schema.clone());
        }
        self.sink
            .component
            .begin(&schema)
            .map_err(|e| fail(&self.sink.label, "begin", None, e))?;
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

fn timed<T>(body: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = body();
    (value, started.elapsed())
}

/// The source thread: reads, re-batches, waits for room in the budget, hands batches to
/// the workers.
fn read(mut source: Stage<Box<dyn Source>>, output: Sender<Numbered>, shared: &Shared<'_>) {
    let metrics = &shared.metrics.source;
    let mut rebatcher = Rebatcher::new(shared.settings.batch_rows);
    let mut next_index = 0;
    let label = &source.label;
    let mut send = |batch: RecordBatch| -> bool {
        let (admitted, waited) = timed(|| {
            shared
                .budget
                .admit(&batch, shared.workers as u64, &shared.errors.failed)
        });
        metrics.record_wait_output(waited);
        let charge = match admitted {
            Ok(charge) => charge,
            Err(AdmitError::Cancelled) => return false,
            Err(AdmitError::TooLarge { bytes, budget }) => {
                shared.errors.record(fail(label, "next_batch", Some(next_index), ComponentError::new(
                    ErrorKind::ResourceExhausted,
                    format!(
                        "a batch of {} rows takes {bytes} bytes, more than the whole memory_budget of {budget} bytes; \
                         lower pipeline.batch_rows (now {}) or raise pipeline.memory_budget",
                        batch.num_rows(),
                        shared.settings.batch_rows
                    ),
                )));
                return false;
            }
        };
        let item = Numbered {
            index: next_index,
            batch,
            charge,
        };
        next_index += 1;
        let (sent, waited) = timed(|| output.send(item));
        metrics.record_wait_output(waited);
        shared.metrics.transform_queue.set(output.len() as u64);
        match sent {
            Ok(()) => true,
            Err(returned) => {
                shared.budget.release(returned.into_inner().charge);
                false
            }
        }
    };
    let schema = &shared.schemas[0];
    for call in 0.. {
        if shared.errors.failed() {
            break;
        }
        let (next, busy) = timed(|| {
            source
                .component
                .next_batch(shared.settings.batch_rows)
                .and_then(|batch| match &batch {
                    Some(b) => check_schema(b, schema, "next_batch").map(|_| batch),
                    None => Ok(batch),
                })
        });
        let finished = matches!(next, Ok(None));
        let ready = match next {
            Ok(Some(batch)) => {
                metrics.record_batch(batch.num_rows(), batch_bytes(&batch), busy);
                rebatcher.push(batch, &shared.pool, shared.metrics)
            }
            Ok(None) => {
                metrics.record_busy(busy);
                rebatcher
                    .finish(&shared.pool, shared.metrics)
                    .map(|b| b.into_iter().collect())
            }
            Err(error) => {
                shared
                    .errors
                    .record(fail(&source.label, "next_batch", Some(call), error));
                break;
            }
        };
        match ready {
            Ok(batches) => {
                if !batches.into_iter().all(&mut send) {
                    break;
                }
            }
            Err(error) => {
                shared
                    .errors
                    .record(fail(&source.label, "next_batch", Some(call), error.into()));
                break;
            }
        }
        shared
            .budget
            .set_component_usage(SOURCE_SLOT, source.component.memory_usage() as u64);
        shared
            .budget
            .set_component_usage(POOL_SLOT, shared.pool.free_bytes());
        if finished {
            break;
        }
    }
    shared.source_done.store(true, Ordering::Release);
}

/// A transform worker: takes batches, runs its own chain of transform instances on them,
/// hands the results to the sink.
fn work(
    index: usize,
    chain: Option<Vec<Box<dyn Transform>>>,
    stages: &[TransformStage],
    input: Receiver<Numbered>,
    output: Sender<Numbered>,
    shared: &Shared<'_>,
) {
    let metrics = &shared.metrics.transforms;
    let chain = match chain {
        Some(chain) => Ok(chain),
        None => stages
            .iter()
            .map(|stage| (stage.factory)().map_err(|e| fail(&stage.label, "create", None, e)))
            .collect::<Result<Vec<_>, _>>(),
    };
    let mut chain = match chain {
        Ok(chain) => chain,
        Err(error) => return shared.errors.record(error),
    };
    let finished = || {
        shared.errors.failed() || (shared.source_done.load(Ordering::Acquire) && input.is_empty())
    };
    loop {
        if !shared.gate.wait_turn(index, finished) {
            break;
        }
        let (received, waited) = timed(|| input.recv_timeout(Duration::from_millis(100)));
        metrics.record_wait_input(waited);
        let Numbered {
            index: batch_index,
            mut batch,
            charge,
        } = match received {
            Ok(item) => item,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        shared.metrics.transform_queue.set(input.len() as u64);
        if shared.errors.failed() {
            shared.budget.release(charge);
            break;
        }
        let started = Instant::now();
        let mut failed = None;
        for (position, (stage, transform)) in stages.iter().zip(chain.iter_mut()).enumerate() {
            let result = transform.transform(batch.clone()).and_then(|out| {
                check_schema(&out, &shared.schemas[position + 1], "transform").map(|_| out)
            });
            match result {
                Ok(out) => batch = out,
                Err(error) => {
                    failed = Some(fail(&stage.label, "transform", Some(batch_index), error));
                    break;
                }
            }
        }
        let busy = started.elapsed();
        if let Some(error) = failed {
            shared.budget.release(charge);
            shared.errors.record(error);
            break;
        }
        let out_charge = shared.budget.charge(&batch);
        shared.budget.release(charge);
        metrics.record_batch(batch.num_rows(), batch_bytes(&batch), busy);
        let usage: usize = chain.iter().map(|t| t.memory_usage()).sum();
        shared
            .budget
            .set_component_usage(WORKER_SLOTS + index, usage as u64);
        let item = Numbered {
            index: batch_index,
            batch,
            charge: out_charge,
        };
        let (sent, waited) = timed(|| output.send(item));
        metrics.record_wait_output(waited);
        if let Err(returned) = sent {
            shared.budget.release(returned.into_inner().charge);
            break;
        }
    }
}

/// The sink thread: consumes batches (in source order unless `ordered = false`), then
/// flushes if nothing failed.
fn write(mut sink: Stage<Box<dyn Sink>>, input: Receiver<Numbered>, shared: &Shared<'_>) {
    let metrics = &shared.metrics.sink;
    let ordered = shared.settings.ordered;
    let mut reorder: BTreeMap<u64, Numbered> = BTreeMap::new();
    let mut next = 0;
    let consume = |item: Numbered, sink: &mut Stage<Box<dyn Sink>>| -> bool {
        let Numbered {
            index,
            batch,
            charge,
        } = item;
        let (rows, bytes) = (batch.num_rows(), batch_bytes(&batch));
        let (result, busy) = timed(|| sink.component.consume(batch));
        shared.budget.release(charge);
        if let Err(error) = result {
            shared
                .errors
                .record(fail(&sink.label, "consume", Some(index), error));
            return false;
        }
        metrics.record_batch(rows, bytes, busy);
        shared
            .budget
            .set_component_usage(SINK_SLOT, sink.component.memory_usage() as u64);
        true
    };
    loop {
        let (received, waited) = timed(|| input.recv());
        metrics.record_wait_input(waited);
        let Ok(item) = received else { break };
        if shared.errors.failed() {
            shared.budget.release(item.charge);
            break;
        }
        if !ordered {
            if !consume(item, &mut sink) {
                break;
            }
            continue;
        }
        reorder.insert(item.index, item);
        let mut ok = true;
        while let Some(item) = reorder.remove(&next) {
            next += 1;
            if !consume(item, &mut sink) {
                ok = false;
                break;
            }
        }
        shared
            .metrics
            .sink_queue
            .set((input.len() + reorder.len()) as u64);
        if !ok {
            break;
        }
    }
    for (_, item) in std::mem::take(&mut reorder) {
        shared.budget.release(item.charge);
    }
    // Every sender is gone: upstream finished or failed, and recorded its error first.
    if !shared.errors.failed() {
        let (result, busy) = timed(|| sink.component.flush());
        metrics.record_busy(busy);
        if let Err(error) = result {
            shared
                .errors
                .record(fail(&sink.label, "flush", None, error));
        }
    }
}

/// Memory below which the machine counts as short, and the in-flight window is halved.
fn low_memory_mark(budget: u64) -> u64 {
    (budget / 2).max(256 << 20)
}

/// The calling thread, while the stages run: reports progress, turns a cancel request
/// into the run's error, watches system memory, and adapts the number of active workers.
fn watch(
    shared: &Shared<'_>,
    control: &RunControl,
    workers: usize,
    done: &Receiver<()>,
    mut progress: impl FnMut(u64, u64),
) {
    let metrics = shared.metrics;
    let mut last_pressure_check = Instant::now();
    let mut window = (Instant::now(), 0u64, 0u64);
    let mut limit = workers;
    loop {
        let finished = done.recv_timeout(Duration::from_millis(100)).is_ok();
        if control.cancel.load(Ordering::Acquire) && !shared.errors.failed() {
            shared.errors.record(fail(
                &ComponentLabel {
                    stage: "pipeline".into(),
                    component: "mlpipe-host".into(),
                    plugin: None,
                },
                "run",
                None,
                ComponentError::new(
                    ErrorKind::Cancelled,
                    "interrupted (SIGINT or SIGTERM); no output was published",
                ),
            ));
        }
        let (in_flight, peak) = shared.budget.usage();
        metrics.memory.set(in_flight);
        metrics.memory.raise_max(peak);
        progress(
            metrics.sink.rows.load(Ordering::Relaxed),
            metrics.sink.bytes.load(Ordering::Relaxed),
        );
        if finished {
            break;
        }
        if last_pressure_check.elapsed() >= Duration::from_millis(500) {
            last_pressure_check = Instant::now();
            if let Some(available) = available_memory() {
                shared
                    .budget
                    .set_pressure(available < low_memory_mark(shared.budget.limit()));
                metrics
                    .pressure_events
                    .store(shared.budget.pressure_events(), Ordering::Relaxed);
            }
        }
        // Adapt the pool every half second: when workers mostly wait for input the source
        // is the bottleneck, and a parked worker leaves its core to the source; when the
        // source mostly waits for room, wake one up again.
        if window.0.elapsed() >= Duration::from_millis(500) {
            let idle = metrics.transforms.wait_input_nanos.load(Ordering::Relaxed);
            let blocked = metrics.source.wait_output_nanos.load(Ordering::Relaxed);
            let span = window.0.elapsed().as_nanos() as f64;
            let idle_share = (idle - window.1) as f64 / (span * limit as f64);
            let blocked_share = (blocked - window.2) as f64 / span;
            if shared.source_done.load(Ordering::Acquire) {
                // Nothing left for the source to do: every worker drains the queue.
                limit = workers;
            } else if idle_share > 0.6 && limit > 1 {
                limit -= 1;
            } else if blocked_share > 0.2 && limit < workers {
                limit += 1;
            }
            shared.gate.set(limit);
            metrics.active_workers.set(limit as u64);
            window = (Instant::now(), idle, blocked);
        }
    }
    shared.gate.set(workers);
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
        /// Rows per batch when smaller than asked.
        chunk: Option<usize>,
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
            let end =
                (self.next + self.chunk.unwrap_or(max_rows).min(max_rows) as i64).min(self.rows);
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

    /// Each worker's instance counts its own batches, so `fail_at` is the `fail_at`-th
    /// batch one instance sees: with one worker, the batch of that index.
    fn double_factory(fail_at: Option<u64>) -> TransformFactory {
        Arc::new(move || Ok(Box::new(Double { seen: 0, fail_at }) as Box<dyn Transform>))
    }

    fn run(pipeline: Pipeline) -> (Report, Result<(), Box<RunError>>) {
        pipeline.run(&RunControl::default(), |_| {})
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
        workers: usize,
    ) -> Pipeline {
        let mut sink = sink.clone();
        sink.fail_at = fail.2;
        Pipeline {
            settings: Settings {
                batch_rows: 10,
                workers,
                ..Settings::default()
            },
            source: Stage {
                label: label("source"),
                component: Box::new(Counter {
                    next: 0,
                    rows,
                    fail_at: fail.0,
                    batches: 0,
                    chunk: None,
                }),
            },
            transforms: vec![TransformStage {
                label: label("transform[0]"),
                factory: double_factory(fail.1),
            }],
            sink: Stage {
                label: label("sink"),
                component: Box::new(sink),
            },
        }
    }

    #[test]
    fn every_row_arrives_in_order_and_the_sink_is_flushed_once() {
        for workers in [1, 2, 4] {
            let sink = Collect::default();
            let (report, result) = run(pipeline(95, (None, None, None), &sink, workers));
            result.unwrap();
            assert_eq!(
                *sink.values.lock().unwrap(),
                (0..95).map(|n| n * 2).collect::<Vec<_>>()
            );
            assert_eq!(sink.flushed.load(Ordering::SeqCst), 1);
            assert_eq!(
                (
                    report.rows_read,
                    report.rows_written,
                    report.batches_written
                ),
                (95, 95, 10)
            );
            assert!(report.memory_peak_bytes > 0);
        }
    }

    #[test]
    fn unordered_runs_deliver_every_row() {
        let sink = Collect::default();
        let mut pipeline = pipeline(1000, (None, None, None), &sink, 3);
        pipeline.settings.ordered = false;
        run(pipeline).1.unwrap();
        let mut values = sink.values.lock().unwrap().clone();
        values.sort_unstable();
        assert_eq!(values, (0..1000).map(|n| n * 2).collect::<Vec<_>>());
    }

    #[test]
    fn a_failure_in_any_stage_at_any_batch_names_it_and_skips_the_flush() {
        for workers in [1, 4] {
            for (fail, stage, method, batch) in [
                ((Some(0), None, None), "source", "next_batch", Some(0)),
                ((Some(4), None, None), "source", "next_batch", Some(4)),
                ((Some(10), None, None), "source", "next_batch", Some(10)),
                ((None, Some(0), None), "transform[0]", "transform", None),
                ((None, Some(2), None), "transform[0]", "transform", None),
                ((None, None, Some(0)), "sink", "consume", Some(0)),
                ((None, None, Some(50)), "sink", "consume", Some(5)),
                ((None, None, Some(90)), "sink", "consume", Some(9)),
            ] {
                let sink = Collect::default();
                let started = Instant::now();
                let (_, result) = run(pipeline(100, fail, &sink, workers));
                let error = result.unwrap_err();
                assert_eq!(
                    (error.stage.as_str(), error.method),
                    (stage, method),
                    "{error}"
                );
                if batch.is_some() || workers == 1 {
                    assert!(error.batch.is_some(), "{error}");
                }
                if let Some(batch) = batch {
                    assert_eq!(error.batch, Some(batch), "{error}");
                }
                assert_eq!(
                    error.component,
                    format!("test-{}", stage.trim_end_matches("[0]"))
                );
                assert_eq!(
                    sink.flushed.load(Ordering::SeqCst),
                    0,
                    "{stage} failed, yet the sink flushed"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "{stage} failure took {:?}",
                    started.elapsed()
                );
            }
        }
    }

    #[test]
    fn an_error_message_names_stage_component_method_and_batch() {
        let sink = Collect::default();
        let (_, result) = run(pipeline(100, (None, Some(3), None), &sink, 1));
        assert_eq!(
            result.unwrap_err().to_string(),
            "transform[0] `test-transform` failed in transform at batch 3: bad data: cannot double (rows 0..1)"
        );
    }

    #[test]
    fn a_batch_larger_than_the_budget_is_an_error_that_says_what_to_change() {
        let sink = Collect::default();
        let mut pipeline = pipeline(100, (None, None, None), &sink, 2);
        pipeline.settings.memory_budget = 40;
        let error = run(pipeline).1.unwrap_err();
        assert_eq!(error.error.kind(), ErrorKind::ResourceExhausted);
        assert!(
            error
                .to_string()
                .contains("lower pipeline.batch_rows (now 10)"),
            "{error}"
        );
    }

    #[test]
    fn the_budget_holds_with_many_batches_in_flight() {
        let sink = Collect::default();
        let mut pipeline = pipeline(10_000, (None, None, None), &sink, 4);
        pipeline.settings.memory_budget = 2_000;
        let (report, result) = run(pipeline);
        result.unwrap();
        assert_eq!(report.rows_written, 10_000);
        assert!(
            report.memory_peak_bytes <= 2_000,
            "{}",
            report.memory_peak_bytes
        );
    }

    #[test]
    fn cancelling_stops_the_run_without_flushing() {
        let sink = Collect::default();
        let control = RunControl::default();
        control.cancel.store(true, Ordering::Release);
        let (_, result) = pipeline(1_000_000, (None, None, None), &sink, 2).run(&control, |_| {});
        let error = result.unwrap_err();
        assert_eq!(error.error.kind(), ErrorKind::Cancelled);
        assert_eq!(sink.flushed.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_parked_worker_leaves_when_it_is_no_longer_needed() {
        let gate = WorkerGate {
            limit: Mutex::new(1),
            changed: Condvar::new(),
        };
        assert!(gate.wait_turn(0, || false));
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let parked = scope.spawn(|| gate.wait_turn(1, || done.load(Ordering::Acquire)));
            done.store(true, Ordering::Release);
            assert!(!parked.join().unwrap());
        });
        gate.set(2);
        assert!(gate.wait_turn(1, || true));
    }

    #[test]
    fn small_source_batches_are_gathered_into_pooled_buffers() {
        let sink = Collect::default();
        let mut pipeline = pipeline(1000, (None, None, None), &sink, 1);
        pipeline.settings.batch_rows = 30;
        pipeline.source.component = Box::new(Counter {
            next: 0,
            rows: 1000,
            fail_at: None,
            batches: 0,
            chunk: Some(7),
        });
        let (report, result) = run(pipeline);
        result.unwrap();
        assert_eq!(
            *sink.values.lock().unwrap(),
            (0..1000).map(|n| n * 2).collect::<Vec<_>>()
        );
        assert_eq!(report.batches_written, 34);
        assert!(report.pool_reused > 0, "{report:?}");
    }
}
