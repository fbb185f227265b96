//! One pass over the data: a source thread, a pool of transform workers and a sink thread,
//! while the calling thread watches (progress, memory pressure, cancellation, the size of
//! the worker pool).
//!
//! ```text
//! source ─▶ re-batcher ─▶ [admission: memory budget] ─▶ transform queue ─▶ worker 1..N
//!                                                                  (own transform chain each)
//!        sink ◀─ reorder buffer ◀─ output queue ◀──────────────────────────┘
//! ```
//!
//! Each worker runs its chain by the pass's [`Action`]s: an apply pass applies every stage;
//! a fit pass applies the stages already fitted, feeds the ones being fitted, and skips
//! the rest (see [`super::fit`]). The four buffers (the re-batcher's pending rows, the
//! transform queue, the output queue and the reorder buffer) are bounded in batches by
//! their channels and, together, in bytes by the [`MemoryBudget`]: the source waits before
//! admitting a batch that would exceed it, and nothing else ever waits on memory, so no
//! stage can deadlock on it. The first error anywhere stops every stage; the sink is then
//! dropped without `flush`, so a failed run leaves no output behind.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use crossbeam_channel::{Receiver, Sender, bounded};
use mlpipe_plugin_api::{Error as ComponentError, ErrorKind, Sink, Source, Transform};

use super::batcher::Rebatcher;
use super::budget::{AdmitError, Charge, MemoryBudget, available_memory, batch_bytes};
use super::metrics::{CounterReport, Metrics, Report};
use super::pool::BufferPool;
use super::{Progress, RunControl, Stage, TransformStage};
use crate::config::Settings;
use crate::error::RunError;
use crate::registry::ComponentLabel;

/// What a worker does with one stage of its chain in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Transform the batch.
    Apply,
    /// Feed the batch to the stage's fit, and pass it on unchanged.
    Fit,
    /// Pass the batch on unchanged (a stage that cannot run in this fit pass).
    Skip,
}

/// A stage that failed: its position in the chain, the method, the component's error.
pub type StageFailure = (usize, &'static str, ComponentError);

/// A worker's transform instances, one per stage of the pass.
pub type Chain = Vec<Box<dyn Transform>>;

/// Makes a worker's chain (instances with their fitted parameters loaded).
pub type ChainMaker<'a> = &'a (dyn Fn() -> Result<Chain, Box<RunError>> + Sync);

/// Everything one pass needs.
pub struct Pass<'a> {
    /// What the progress display calls this pass (`fit 1/2`, `run`).
    pub name: String,
    /// The source, created for this pass.
    pub source: Stage<Box<dyn Source>>,
    /// The transform stages; the pass runs the first `actions.len()` of them.
    pub stages: &'a [TransformStage],
    /// What to do with each stage.
    pub actions: Vec<Action>,
    /// Makes each worker's chain.
    pub make_chain: ChainMaker<'a>,
    /// A chain already made (for the schema negotiation); worker 0 uses it.
    pub first_chain: Chain,
    /// The schema before the first stage and after each one (as the actions leave it).
    pub schemas: Vec<SchemaRef>,
    /// The sink, already begun.
    pub sink: Stage<Box<dyn Sink>>,
    /// Which stages set rows aside (`Transform::take_quarantined` is called after each of
    /// their batches), one flag per action.
    pub quarantining: Vec<bool>,
    /// Where set-aside rows go, already begun; without it they are dropped (fit passes).
    pub quarantine: Option<Stage<Box<dyn Sink>>>,
    /// The `[pipeline]` settings (`ordered` false for fit passes: order does not matter).
    pub settings: &'a Settings,
}

/// What a finished pass leaves: every worker's chain (whose fit statistics the caller
/// merges) and the counters of every component.
pub struct PassOutcome {
    /// Every worker's chain.
    pub chains: Vec<Chain>,
    /// Named counts from the source, the transforms (summed over workers) and the sink.
    pub counters: Vec<CounterReport>,
}

pub(crate) fn fail(
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

/// Batches a worker emits after its input ran out (rows a transform held back, from
/// `Transform::finish`) are numbered from here, after every source batch.
const TAIL_INDEX: u64 = 1 << 62;

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
const QUARANTINE_SLOT: usize = 3;
const WORKER_SLOTS: usize = 4;

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
    schemas: &'a [SchemaRef],
    stages: &'a [TransformStage],
    actions: &'a [Action],
    quarantining: &'a [bool],
    /// Chains of finished workers, and the counters of the source and the sink.
    chains: Mutex<Vec<Chain>>,
    counters: Mutex<Vec<CounterReport>>,
}

impl Shared<'_> {
    fn add_counters(&self, label: &ComponentLabel, counters: mlpipe_plugin_api::Counters) {
        let mut all = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        all.extend(counters.into_iter().map(|(name, value)| CounterReport {
            stage: label.stage.clone(),
            component: label.component.clone(),
            name,
            value,
        }));
    }
}

/// Runs one pass to its end. Returns the report, whatever happened, and what the pass
/// left, or the error that stopped it.
pub fn run_pass(
    pass: Pass<'_>,
    workers: usize,
    control: &RunControl,
    metrics: &Metrics,
    mut on_progress: impl FnMut(&Progress),
) -> (Report, Result<PassOutcome, Box<RunError>>) {
    let started = Instant::now();
    let budget = pass.settings.memory_budget;
    let mut source = pass.source;
    let total_rows = source.component.size_hint().map(|n| n as u64);
    if let Some(error) = failure_of(source.component.take_failure(), &source.label) {
        return (
            metrics.report(started.elapsed(), workers, budget),
            Err(error),
        );
    }
    let shared = Shared {
        settings: pass.settings,
        workers,
        budget: MemoryBudget::new(budget),
        pool: BufferPool::default(),
        metrics,
        errors: FirstError::default(),
        source_done: AtomicBool::new(false),
        gate: WorkerGate {
            limit: Mutex::new(workers),
            changed: Condvar::new(),
        },
        schemas: &pass.schemas,
        stages: pass.stages,
        actions: &pass.actions,
        quarantining: &pass.quarantining,
        chains: Mutex::new(Vec::new()),
        counters: Mutex::new(Vec::new()),
    };
    metrics.active_workers.set(workers as u64);
    let queue_depth = (2 * workers).max(4);
    let (to_workers, from_source) = bounded::<Numbered>(queue_depth);
    let (to_sink, from_workers) = bounded::<Numbered>(queue_depth);
    let (done_tx, done_rx) = bounded::<()>(1);
    let (sink, make_chain) = (pass.sink, pass.make_chain);
    let (to_quarantine, quarantine) = match pass.quarantine {
        Some(sink) => {
            let (sender, receiver) = bounded::<Numbered>(queue_depth);
            (Some(sender), Some((sink, receiver)))
        }
        None => (None, None),
    };
    let name = pass.name;
    std::thread::scope(|scope| {
        let shared = &shared;
        scope.spawn(move || read(source, to_workers, shared));
        let mut first_chain = Some(pass.first_chain);
        scope.spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .thread_name(|i| format!("mlpipe-worker-{i}"))
                .build();
            match pool {
                Ok(pool) => pool.scope(|pool_scope| {
                    for index in 0..workers {
                        let chain = first_chain.take();
                        let (input, output) = (from_source.clone(), to_sink.clone());
                        let quarantine = to_quarantine.clone();
                        pool_scope.spawn(move |_| {
                            let outputs = Outputs { output, quarantine };
                            work(index, chain, make_chain, input, outputs, shared)
                        });
                    }
                }),
                Err(error) => shared.errors.record(fail(
                    &ComponentLabel::host("worker pool"),
                    "start",
                    None,
                    ComponentError::new(
                        ErrorKind::ResourceExhausted,
                        format!("cannot start {workers} worker threads: {error}"),
                    ),
                )),
            }
        });
        let quarantine_done = quarantine.map(|(sink, receiver)| {
            scope.spawn(move || write(sink, receiver, shared, SinkRole::Quarantine))
        });
        scope.spawn(move || {
            let ordered = shared.settings.ordered;
            write(sink, from_workers, shared, SinkRole::Output { ordered });
            // The quarantine sink ends when the last worker does; the run is done when both
            // sinks are.
            if let Some(quarantine) = quarantine_done {
                let _ = quarantine.join();
            }
            let _ = done_tx.send(());
        });
        watch(shared, control, workers, &done_rx, |rows, bytes| {
            on_progress(&Progress {
                pass: name.clone(),
                rows,
                total_rows,
                bytes,
                elapsed: started.elapsed(),
            })
        });
    });
    let Shared {
        errors,
        chains,
        counters,
        ..
    } = shared;
    let report = metrics.report(started.elapsed(), workers, budget);
    if let Some(error) = errors.take() {
        return (report, Err(error));
    }
    let mut chains = chains.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut counters = counters.into_inner().unwrap_or_else(|p| p.into_inner());
    match transform_counters(pass.stages, &mut chains) {
        Ok(summed) => counters.extend(summed),
        Err(error) => return (report, Err(error)),
    }
    (report, Ok(PassOutcome { chains, counters }))
}

/// The counters of each transform stage, summed over the workers' instances.
fn transform_counters(
    stages: &[TransformStage],
    chains: &mut [Chain],
) -> Result<Vec<CounterReport>, Box<RunError>> {
    let mut summed: Vec<CounterReport> = Vec::new();
    for chain in chains {
        for (stage, transform) in stages.iter().zip(chain) {
            let counters = transform.counters();
            if let Some(error) = failure_of(transform.take_failure(), &stage.label) {
                return Err(error);
            }
            for (name, value) in counters {
                match summed
                    .iter_mut()
                    .find(|c| c.stage == stage.label.stage && c.name == name)
                {
                    Some(counter) => counter.value += value,
                    None => summed.push(CounterReport {
                        stage: stage.label.stage.clone(),
                        component: stage.label.component.clone(),
                        name,
                        value,
                    }),
                }
            }
        }
    }
    Ok(summed)
}

/// The failure of a component's last call that could not return one (`size_hint`,
/// `memory_usage`, `counters`; what its `take_failure` gave), as the run's error.
fn failure_of(
    failure: Option<(&'static str, ComponentError)>,
    label: &ComponentLabel,
) -> Option<Box<RunError>> {
    failure.map(|(method, error)| fail(label, method, None, error))
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
        let usage = source.component.memory_usage() as u64;
        if let Some(error) = failure_of(source.component.take_failure(), &source.label) {
            shared.errors.record(error);
            break;
        }
        shared.budget.set_component_usage(SOURCE_SLOT, usage);
        shared
            .budget
            .set_component_usage(POOL_SLOT, shared.pool.free_bytes());
        if finished {
            break;
        }
    }
    shared.source_done.store(true, Ordering::Release);
    let counters = source.component.counters();
    match failure_of(source.component.take_failure(), &source.label) {
        Some(error) => shared.errors.record(error),
        None => shared.add_counters(&source.label, counters),
    }
}

/// Where a worker sends what it produces.
struct Outputs {
    /// Transformed batches, to the sink.
    output: Sender<Numbered>,
    /// Rows set aside, to the quarantine sink (none in fit passes: they are dropped).
    quarantine: Option<Sender<Numbered>>,
}

impl Outputs {
    /// Sends to `sender`, counting the time blocked; false when the receiver is gone
    /// (the run failed).
    fn send(sender: &Sender<Numbered>, item: Numbered, shared: &Shared<'_>) -> bool {
        let (sent, waited) = timed(|| sender.send(item));
        shared.metrics.transforms.record_wait_output(waited);
        match sent {
            Ok(()) => true,
            Err(returned) => {
                shared.budget.release(returned.into_inner().charge);
                false
            }
        }
    }

    /// Hands rows a stage set aside to the quarantine sink.
    fn quarantine(&self, index: u64, batch: RecordBatch, shared: &Shared<'_>) {
        if let Some(sender) = &self.quarantine {
            let charge = shared.budget.charge(&batch);
            Outputs::send(
                sender,
                Numbered {
                    index,
                    batch,
                    charge,
                },
                shared,
            );
        }
    }
}

/// Runs `batch` (number `index`) through the stages from `from` on, as the pass's actions
/// say. The error names the stage and the method.
fn run_chain(
    chain: &mut Chain,
    from: usize,
    (index, mut batch): (u64, RecordBatch),
    outputs: &Outputs,
    shared: &Shared<'_>,
) -> Result<RecordBatch, StageFailure> {
    let stages = shared.actions.iter().zip(chain.iter_mut()).enumerate();
    for (position, (action, transform)) in stages.skip(from) {
        match action {
            Action::Apply => {
                batch = transform
                    .transform(batch)
                    .and_then(|out| {
                        check_schema(&out, &shared.schemas[position + 1], "transform").map(|_| out)
                    })
                    .map_err(|e| (position, "transform", e))?;
                if shared.quarantining[position]
                    && let Some(aside) = transform
                        .take_quarantined()
                        .map_err(|e| (position, "take_quarantined", e))?
                {
                    outputs.quarantine(index, aside, shared);
                }
            }
            Action::Fit => transform.fit(&batch).map_err(|e| (position, "fit", e))?,
            Action::Skip => {}
        }
    }
    Ok(batch)
}

/// A transform worker: takes batches, runs its own chain of transform instances on them,
/// hands the results to the sink; when the input runs out, hands over the rows its
/// transforms held back, then leaves its chain for the caller.
fn work(
    index: usize,
    chain: Option<Chain>,
    make_chain: ChainMaker<'_>,
    input: Receiver<Numbered>,
    outputs: Outputs,
    shared: &Shared<'_>,
) {
    let metrics = &shared.metrics.transforms;
    let chain = match chain {
        Some(chain) => Ok(chain),
        None => make_chain(),
    };
    let mut chain = match chain {
        Ok(chain) => chain,
        Err(error) => return shared.errors.record(error),
    };
    let finished = || {
        shared.errors.failed() || (shared.source_done.load(Ordering::Acquire) && input.is_empty())
    };
    let send = |item: Numbered| Outputs::send(&outputs.output, item, shared);
    let mut drained = false;
    loop {
        if !shared.gate.wait_turn(index, finished) {
            drained = !shared.errors.failed();
            break;
        }
        let (received, waited) = timed(|| input.recv_timeout(Duration::from_millis(100)));
        metrics.record_wait_input(waited);
        let Numbered {
            index: batch_index,
            batch,
            charge,
        } = match received {
            Ok(item) => item,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                drained = !shared.errors.failed();
                break;
            }
        };
        shared.metrics.transform_queue.set(input.len() as u64);
        if shared.errors.failed() {
            shared.budget.release(charge);
            break;
        }
        let (result, busy) =
            timed(|| run_chain(&mut chain, 0, (batch_index, batch), &outputs, shared));
        let batch = match result {
            Ok(batch) => batch,
            Err((position, method, error)) => {
                shared.budget.release(charge);
                let label = &shared.stages[position].label;
                shared
                    .errors
                    .record(fail(label, method, Some(batch_index), error));
                break;
            }
        };
        let out_charge = shared.budget.charge(&batch);
        shared.budget.release(charge);
        metrics.record_batch(batch.num_rows(), batch_bytes(&batch), busy);
        let usage: usize = chain.iter().map(|t| t.memory_usage()).sum();
        let failure = shared
            .stages
            .iter()
            .zip(chain.iter_mut())
            .find_map(|(stage, transform)| failure_of(transform.take_failure(), &stage.label));
        if let Some(error) = failure {
            shared.budget.release(out_charge);
            shared.errors.record(error);
            break;
        }
        shared
            .budget
            .set_component_usage(WORKER_SLOTS + index, usage as u64);
        let item = Numbered {
            index: batch_index,
            batch,
            charge: out_charge,
        };
        if !send(item) {
            break;
        }
    }
    if drained {
        drain_held_rows(index, &mut chain, &outputs, shared);
    }
    shared
        .chains
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(chain);
}

/// At the end of the input: asks each applied stage for the rows it held back and runs
/// them through the stages after it.
fn drain_held_rows(worker: usize, chain: &mut Chain, outputs: &Outputs, shared: &Shared<'_>) {
    for position in 0..shared.actions.len() {
        if shared.actions[position] != Action::Apply {
            continue;
        }
        let label = &shared.stages[position].label;
        let held = match chain[position].finish() {
            Ok(Some(batch)) => batch,
            Ok(None) => continue,
            Err(error) => return shared.errors.record(fail(label, "finish", None, error)),
        };
        let index = TAIL_INDEX + (worker * shared.actions.len() + position) as u64;
        let held = check_schema(&held, &shared.schemas[position + 1], "finish")
            .map_err(|e| (position, "finish", e))
            .and_then(|()| run_chain(chain, position + 1, (index, held), outputs, shared));
        match held {
            Ok(batch) => {
                let charge = shared.budget.charge(&batch);
                let item = Numbered {
                    index,
                    batch,
                    charge,
                };
                if !Outputs::send(&outputs.output, item, shared) {
                    return;
                }
            }
            Err((position, method, error)) => {
                let label = &shared.stages[position].label;
                return shared.errors.record(fail(label, method, None, error));
            }
        }
    }
}

/// Which sink a sink thread serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SinkRole {
    /// The pipeline's output: in source order (a reorder buffer, held-back rows last)
    /// unless `ordered` is false; counted in the sink metrics.
    Output { ordered: bool },
    /// The `[quarantine]` sink: rows set aside, as they arrive.
    Quarantine,
}

/// A sink thread: consumes batches, then flushes if nothing failed.
fn write(
    mut sink: Stage<Box<dyn Sink>>,
    input: Receiver<Numbered>,
    shared: &Shared<'_>,
    role: SinkRole,
) {
    let main = role != SinkRole::Quarantine;
    let uncounted = super::metrics::StageMetrics::default();
    let metrics = if main {
        &shared.metrics.sink
    } else {
        &uncounted
    };
    let ordered = role == SinkRole::Output { ordered: true };
    let mut reorder: BTreeMap<u64, Numbered> = BTreeMap::new();
    let mut tails: BTreeMap<u64, Numbered> = BTreeMap::new();
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
            let batch = (index < TAIL_INDEX).then_some(index);
            shared
                .errors
                .record(fail(&sink.label, "consume", batch, error));
            return false;
        }
        metrics.record_batch(rows, bytes, busy);
        let slot = if main { SINK_SLOT } else { QUARANTINE_SLOT };
        let usage = sink.component.memory_usage() as u64;
        if let Some(error) = failure_of(sink.component.take_failure(), &sink.label) {
            shared.errors.record(error);
            return false;
        }
        shared.budget.set_component_usage(slot, usage);
        true
    };
    let mut ok = true;
    loop {
        let (received, waited) = timed(|| input.recv());
        metrics.record_wait_input(waited);
        let Ok(item) = received else { break };
        if shared.errors.failed() {
            shared.budget.release(item.charge);
            break;
        }
        if item.index >= TAIL_INDEX && ordered {
            tails.insert(item.index, item);
            continue;
        }
        if !ordered {
            if !consume(item, &mut sink) {
                ok = false;
                break;
            }
            continue;
        }
        reorder.insert(item.index, item);
        while let Some(item) = reorder.remove(&next) {
            next += 1;
            if !consume(item, &mut sink) {
                ok = false;
                break;
            }
        }
        if main {
            shared
                .metrics
                .sink_queue
                .set((input.len() + reorder.len()) as u64);
        }
        if !ok {
            break;
        }
    }
    // Every sender is gone: upstream finished or failed, and recorded its error first.
    let mut tails = std::mem::take(&mut tails).into_values();
    if ok && !shared.errors.failed() {
        ok = tails.all(|item| consume(item, &mut sink));
    }
    for item in tails.chain(std::mem::take(&mut reorder).into_values()) {
        shared.budget.release(item.charge);
    }
    if ok && !shared.errors.failed() {
        let (result, busy) = timed(|| sink.component.flush());
        metrics.record_busy(busy);
        if let Err(error) = result {
            shared
                .errors
                .record(fail(&sink.label, "flush", None, error));
        }
    }
    let counters = sink.component.counters();
    match failure_of(sink.component.take_failure(), &sink.label) {
        Some(error) => shared.errors.record(error),
        None => shared.add_counters(&sink.label, counters),
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
    let mut last_tick = Instant::now();
    loop {
        let finished = done.recv_timeout(Duration::from_millis(100)).is_ok();
        let parked = (workers - limit) as u64 * last_tick.elapsed().as_nanos() as u64;
        metrics
            .parked_worker_nanos
            .fetch_add(parked, Ordering::Relaxed);
        last_tick = Instant::now();
        if control.cancel.load(Ordering::Acquire) && !shared.errors.failed() {
            shared.errors.record(fail(
                &ComponentLabel::host("mlpipe-host"),
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
            metrics.source.rows.load(Ordering::Relaxed),
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
        if shared.settings.adaptive_workers && window.0.elapsed() >= Duration::from_millis(500) {
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
    use super::*;

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
}
