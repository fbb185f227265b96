//! The engine: builds a pipeline from its file, fits the transforms that learn from the
//! data, then runs the pipeline. Each pass over the data runs on a source thread, a pool of
//! transform workers and a sink thread ([`engine`]); fitting plans as few passes as the
//! chain allows ([`fit`]).

mod batcher;
pub mod budget;
mod engine;
pub mod fit;
pub mod metrics;
mod pool;
pub mod spill;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use mlpipe_plugin_api::{Error as ComponentError, Sink, Source, Transform};

use self::engine::{Action, Chain, Pass, fail, run_pass};
use self::fit::{FitStats, FittedStage, Planned, STATS_FORMAT_VERSION, StageIdentity, plan_round};
use self::metrics::{Metrics, PassReport, Report};
use self::spill::{Spilled, Spilling};
use crate::config::{PipelineConfig, Settings};
use crate::error::{HostError, RunError};
use crate::registry::{ComponentLabel, Registry};

/// A component that declares `memory_budget` (`MEMORY_BUDGET_KEY`) is given this fraction
/// of the pipeline's budget for buffers of its own, unless the pipeline file sets the key:
/// the rest is for the batches in flight and for what no component accounts.
pub const COMPONENT_SHARE: u64 = 16;

/// A component with the label that names it in messages.
#[derive(Debug)]
pub struct Stage<C> {
    /// Which stage and component this is.
    pub label: ComponentLabel,
    /// The component.
    pub component: C,
}

/// Makes a source; a pipeline that fits reads its input more than once.
pub type SourceFactory = Arc<dyn Fn() -> mlpipe_plugin_api::Result<Box<dyn Source>> + Send + Sync>;

/// Makes one instance of a transform; every worker gets its own.
pub type TransformFactory =
    Arc<dyn Fn() -> mlpipe_plugin_api::Result<Box<dyn Transform>> + Send + Sync>;

/// The source stage: its label, its config (kept in stats files) and how to make it.
pub struct SourceStage {
    /// Which stage and component this is.
    pub label: ComponentLabel,
    /// The component's validated config (`null` for in-process components).
    pub config: serde_json::Value,
    /// Makes an instance for each pass.
    pub factory: SourceFactory,
    /// An instance made already (when the pipeline was built), used by the first pass.
    pub ready: Option<Box<dyn Source>>,
    /// Whether the component declares reading its input again costly (`[pipeline] spill`).
    pub costly_reread: bool,
    /// The batches of the first pass, kept for the later ones.
    spilled: Option<Spilled>,
}

impl SourceStage {
    /// A source stage whose instances `factory` makes.
    pub fn new(label: ComponentLabel, factory: SourceFactory) -> SourceStage {
        SourceStage {
            label,
            config: serde_json::Value::Null,
            factory,
            ready: None,
            costly_reread: false,
            spilled: None,
        }
    }

    /// The source of the next pass: the batches a first pass spilled, when it did.
    fn instance(&mut self) -> Result<Stage<Box<dyn Source>>, Box<RunError>> {
        let component = match (&self.spilled, self.ready.take()) {
            (Some(spilled), _) => spilled
                .replay()
                .map_err(|e| fail(&self.label, "replay", None, e))?,
            (None, Some(source)) => source,
            (None, None) => (self.factory)().map_err(|e| fail(&self.label, "create", None, e))?,
        };
        Ok(Stage {
            label: self.label.clone(),
            component,
        })
    }
}

impl std::fmt::Debug for SourceStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceStage")
            .field("label", &self.label)
            .finish()
    }
}

/// A transform stage: its label, its config and how to make an instance for each worker.
pub struct TransformStage {
    /// Which stage and component this is.
    pub label: ComponentLabel,
    /// The component's validated config (`null` for in-process components).
    pub config: serde_json::Value,
    /// Makes an instance.
    pub factory: TransformFactory,
}

impl TransformStage {
    /// A transform stage whose instances `factory` makes.
    pub fn new(label: ComponentLabel, factory: TransformFactory) -> TransformStage {
        TransformStage {
            label,
            config: serde_json::Value::Null,
            factory,
        }
    }

    fn identity(&self) -> StageIdentity {
        StageIdentity {
            stage: self.label.stage.clone(),
            component: self.label.component.clone(),
            plugin: self.label.plugin.clone(),
            config: self.config.clone(),
        }
    }
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
    pub source: SourceStage,
    /// Applied in order to every batch.
    pub transforms: Vec<TransformStage>,
    /// Where batches go.
    pub sink: Stage<Box<dyn Sink>>,
    /// Where rows that transforms set aside go (`[quarantine]`), when there is such a sink.
    pub quarantine: Option<Stage<Box<dyn Sink>>>,
    /// The fitted parameters of each transform stage, once known.
    fitted: Vec<Option<serde_json::Value>>,
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
    /// The live metrics of the apply pass (for a progress display or a metrics endpoint).
    pub metrics: Arc<Metrics>,
}

/// Progress, reported by the watching thread about ten times a second.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Which pass over the data: `fit 1`, `fit 2`, …, `run`.
    pub pass: String,
    /// Rows read so far in this pass.
    pub rows: u64,
    /// Rows the source expects to produce in all, when it knows.
    pub total_rows: Option<u64>,
    /// Arrow bytes written so far.
    pub bytes: u64,
    /// Time since the pass started.
    pub elapsed: Duration,
}

/// Consumes and drops every batch: the sink of a fit pass.
struct Discard;

impl Sink for Discard {
    fn consume(&mut self, _: arrow::array::RecordBatch) -> mlpipe_plugin_api::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> mlpipe_plugin_api::Result<()> {
        Ok(())
    }
}

impl Pipeline {
    /// A pipeline of the given stages, none of them fitted yet.
    pub fn new(
        settings: Settings,
        source: SourceStage,
        transforms: Vec<TransformStage>,
        sink: Stage<Box<dyn Sink>>,
    ) -> Pipeline {
        let fitted = vec![None; transforms.len()];
        Pipeline {
            settings,
            source,
            transforms,
            sink,
            quarantine: None,
            fitted,
        }
    }

    /// Creates every component the pipeline file names (one instance of each, to check it
    /// can be made; each pass and each worker makes its own later).
    pub fn from_config(
        config: &PipelineConfig,
        registry: &Registry,
    ) -> Result<Pipeline, HostError> {
        use mlpipe_plugin_api::ComponentKind;
        let (file, base) = (config.file.as_path(), config.base_dir());
        let share = config.settings.memory_budget / COMPONENT_SHARE;
        let source = registry.source_stage(
            &registry.with_memory_share(ComponentKind::Source, &config.source, share),
            file,
            &base,
        )?;
        let kernels = registry.kernels(&config.kernels, file)?;
        let transforms = config
            .transforms
            .iter()
            .map(|spec| {
                let spec = registry.with_memory_share(ComponentKind::Transform, spec, share);
                registry.transform_stage(&spec, file, &base, &kernels)
            })
            .collect::<Result<_, _>>()?;
        let sink = |spec| registry.with_memory_share(ComponentKind::Sink, spec, share);
        let (label, component) = registry.create_sink(&sink(&config.sink), file, &base)?;
        let mut pipeline = Pipeline::new(
            config.settings.clone(),
            source,
            transforms,
            Stage { label, component },
        );
        if let Some(spec) = &config.quarantine {
            let (label, component) = registry.create_sink(&sink(spec), file, &base)?;
            pipeline.quarantine = Some(Stage { label, component });
        }
        Ok(pipeline)
    }

    /// Checks that every component, and every kernel as `[pipeline.kernels]` chooses it,
    /// exists and accepts its config, creating none of them and reading no data.
    pub fn validate(
        config: &PipelineConfig,
        registry: &Registry,
    ) -> Result<Vec<ComponentLabel>, HostError> {
        use mlpipe_plugin_api::ComponentKind;
        let file = config.file.as_path();
        let mut labels = vec![registry.check(ComponentKind::Source, &config.source, file)?];
        // Checked where `from_config` meets them (the same first error), listed last.
        let kernels = registry.check_kernels(&config.kernels, file)?;
        for spec in &config.transforms {
            labels.push(registry.check(ComponentKind::Transform, spec, file)?);
        }
        labels.push(registry.check(ComponentKind::Sink, &config.sink, file)?);
        if let Some(spec) = &config.quarantine {
            labels.push(registry.check(ComponentKind::Sink, spec, file)?);
        }
        labels.extend(kernels);
        Ok(labels)
    }

    /// The number of transform workers this pipeline runs.
    pub fn workers(&self) -> usize {
        match self.settings.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// A chain of new transform instances, with the parameters fitted so far loaded.
    fn make_chain(&self) -> Result<Chain, Box<RunError>> {
        make_chain(&self.transforms, &self.fitted)
    }

    /// Which stages of `chain` still need fitting.
    fn unfitted(&self, chain: &Chain) -> Vec<bool> {
        chain
            .iter()
            .zip(&self.fitted)
            .map(|(transform, params)| params.is_none() && transform.needs_fit())
            .collect()
    }

    /// Uses fitted parameters saved by [`Pipeline::stats`] (`mlpipe-host fit`): each must
    /// belong to a stage of this pipeline with the same component and config, and every
    /// stage that needs fitting must have them.
    pub fn load_stats(&mut self, stats: &FitStats) -> Result<(), Box<RunError>> {
        let stats_error = |label: &ComponentLabel, message: String| {
            fail(label, "load_fit", None, ComponentError::config(message))
        };
        for saved in &stats.stages {
            let position = self
                .transforms
                .iter()
                .position(|t| t.label.stage == saved.identity.stage);
            let Some(position) = position else {
                return Err(stats_error(
                    &ComponentLabel::host("stats file"),
                    format!(
                        "the stats file has parameters for {}, which this pipeline does not \
                         have; refit with `mlpipe-host fit`",
                        saved.identity.stage
                    ),
                ));
            };
            let stage = &self.transforms[position];
            if stage.identity().component != saved.identity.component
                || stage.config != saved.identity.config
            {
                return Err(stats_error(
                    &stage.label,
                    format!(
                        "the stats file was fitted for `{}` with config {}, but the pipeline \
                         has `{}` with config {}; refit with `mlpipe-host fit`",
                        saved.identity.component,
                        saved.identity.config,
                        stage.label.component,
                        stage.config
                    ),
                ));
            }
            self.fitted[position] = Some(saved.params.clone());
        }
        let chain = self.make_chain()?;
        let unfitted = self.unfitted(&chain);
        if let Some(position) = unfitted.iter().position(|u| *u) {
            return Err(stats_error(
                &self.transforms[position].label,
                "the stats file has no fitted parameters for this stage; refit with \
                 `mlpipe-host fit`"
                    .to_string(),
            ));
        }
        Ok(())
    }

    /// The fitted parameters of every fitted stage, as `mlpipe-host fit` saves them.
    pub fn stats(&self, passes: &[PassReport]) -> FitStats {
        FitStats {
            format: "mlpipe-fit-stats".to_string(),
            version: STATS_FORMAT_VERSION,
            created_by: format!("mlpipe-host {}", env!("CARGO_PKG_VERSION")),
            source: StageIdentity {
                stage: self.source.label.stage.clone(),
                component: self.source.label.component.clone(),
                plugin: self.source.label.plugin.clone(),
                config: self.source.config.clone(),
            },
            rows_per_pass: passes.iter().map(|p| p.rows_read).collect(),
            stages: self
                .transforms
                .iter()
                .zip(&self.fitted)
                .filter_map(|(stage, params)| {
                    params.as_ref().map(|params| FittedStage {
                        identity: stage.identity(),
                        params: params.clone(),
                    })
                })
                .collect(),
        }
    }

    /// Fits every stage that needs it, in as few passes over the data as the chain allows.
    /// Returns a report of each pass, and the error that stopped fitting, if one did.
    pub fn fit(
        &mut self,
        control: &RunControl,
        on_progress: impl FnMut(&Progress),
    ) -> (Vec<PassReport>, Result<(), Box<RunError>>) {
        self.fit_passes(control, on_progress, false)
    }

    /// [`Pipeline::fit`]; `then_apply` says whether an apply pass follows (a reason to
    /// spill the first pass's batches).
    fn fit_passes(
        &mut self,
        control: &RunControl,
        mut on_progress: impl FnMut(&Progress),
        then_apply: bool,
    ) -> (Vec<PassReport>, Result<(), Box<RunError>>) {
        let mut passes = Vec::new();
        loop {
            match self.fit_round(control, &mut passes, &mut on_progress, then_apply) {
                Ok(true) => {}
                Ok(false) => return (passes, Ok(())),
                Err(error) => return (passes, Err(error)),
            }
        }
    }

    /// One fit pass: plans it, runs it (its report goes to `passes`), merges each fitted
    /// stage's statistics over the workers. False when nothing is left to fit.
    fn fit_round(
        &mut self,
        control: &RunControl,
        passes: &mut Vec<PassReport>,
        on_progress: &mut impl FnMut(&Progress),
        then_apply: bool,
    ) -> Result<bool, Box<RunError>> {
        let chain = self.make_chain()?;
        let unfitted = self.unfitted(&chain);
        if !unfitted.contains(&true) {
            return Ok(false);
        }
        let mut source = self.source.instance()?;
        let source_schema = source
            .component
            .schema()
            .map_err(|e| fail(&source.label, "schema", None, e))?;
        let planned: Vec<Planned<'_>> = chain
            .iter()
            .zip(&unfitted)
            .map(|(transform, &unfitted)| Planned {
                transform: transform.as_ref(),
                unfitted,
            })
            .collect();
        let (actions, schemas) =
            plan_round(&planned, source_schema).map_err(|(position, method, error)| {
                fail(&self.transforms[position].label, method, None, error)
            })?;
        drop(planned);
        let quarantining = (0..actions.len())
            .map(|i| {
                Ok(actions[i] == Action::Apply
                    && chain[i]
                        .quarantine_schema(&schemas[i])
                        .map_err(|e| fail(&self.transforms[i].label, "quarantine_schema", None, e))?
                        .is_some())
            })
            .collect::<Result<Vec<bool>, Box<RunError>>>()?;
        let fitting: Vec<usize> = (0..actions.len())
            .filter(|&i| actions[i] == Action::Fit)
            .collect();
        let later_pass = then_apply || unfitted.iter().filter(|u| **u).count() > fitting.len();
        let mut spill = None;
        if later_pass
            && self.source.spilled.is_none()
            && self.settings.spill.spills(self.source.costly_reread)
        {
            let dir = (self.settings.spill_dir.clone()).unwrap_or_else(std::env::temp_dir);
            let (spilling, slot) = Spilling::new(source.component, &dir);
            source.component = Box::new(spilling);
            spill = Some(slot);
        }
        let settings = Settings {
            ordered: false,
            ..self.settings.clone()
        };
        let name = format!("fit {}", passes.len() + 1);
        let metrics = Metrics::default();
        let (transforms, fitted) = (&self.transforms, &self.fitted);
        let make_chain = || make_chain(transforms, fitted);
        let pass = Pass {
            name: name.clone(),
            source,
            stages: &self.transforms,
            actions,
            make_chain: &make_chain,
            first_chain: chain,
            schemas,
            sink: Stage {
                label: ComponentLabel::host("fit"),
                component: Box::new(Discard),
            },
            quarantining,
            quarantine: None,
            settings: &settings,
        };
        let (report, outcome) =
            run_pass(pass, self.workers(), control, &metrics, |p| on_progress(p));
        let (spill, spilled) = spill
            .and_then(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).take())
            .map_or((None, None), |(outcome, spilled)| (Some(outcome), spilled));
        passes.push(PassReport {
            spill,
            pass: name,
            fitted: fitting
                .iter()
                .map(|&i| self.transforms[i].label.stage.clone())
                .collect(),
            rows_read: report.rows_read,
            elapsed_seconds: report.elapsed_seconds,
        });
        let mut chains = outcome?.chains;
        if spilled.is_some() {
            self.source.spilled = spilled;
        }
        for &position in &fitting {
            let params = merge_fit(&mut chains, position)
                .map_err(|(method, e)| fail(&self.transforms[position].label, method, None, e))?;
            self.fitted[position] = Some(params);
        }
        Ok(true)
    }

    /// Runs the pipeline to its end: fits first what still needs fitting, then applies
    /// every stage and writes the output. Returns the report, whatever happened, and the
    /// error that stopped the run, if one did.
    pub fn run(
        mut self,
        control: &RunControl,
        mut on_progress: impl FnMut(&Progress),
    ) -> (Report, Result<(), Box<RunError>>) {
        let (passes, fitted) = self.fit_passes(control, &mut on_progress, true);
        let (workers, budget) = (self.workers(), self.settings.memory_budget);
        let empty = |passes: Vec<PassReport>| {
            let mut report = control.metrics.report(Duration::ZERO, workers, budget);
            report.fit_passes = passes;
            report
        };
        if let Err(error) = fitted {
            return (empty(passes), Err(error));
        }
        let prepared = self.make_chain().and_then(|chain| {
            let source = self.source.instance()?;
            let schemas = self.negotiate_schemas(&source, &chain)?;
            let quarantining = self.negotiate_quarantine(&chain, &schemas)?;
            Ok((chain, source, (schemas, quarantining)))
        });
        let (chain, source, (schemas, quarantining)) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return (empty(passes), Err(error)),
        };
        let (transforms, fitted) = (&self.transforms, &self.fitted);
        let make_chain = || make_chain(transforms, fitted);
        let pass = Pass {
            name: "run".to_string(),
            source,
            stages: &self.transforms,
            actions: vec![Action::Apply; self.transforms.len()],
            make_chain: &make_chain,
            first_chain: chain,
            schemas,
            sink: self.sink,
            // Without a stage that sets rows aside, the quarantine sink gets nothing, not even
            // a schema: it is dropped unused.
            quarantine: self.quarantine.filter(|_| quarantining.contains(&true)),
            quarantining,
            settings: &self.settings,
        };
        let (mut report, outcome) = run_pass(pass, workers, control, &control.metrics, on_progress);
        report.fit_passes = passes;
        match outcome {
            Ok(outcome) => {
                report.counters = outcome.counters;
                (report, Ok(()))
            }
            Err(error) => (report, Err(error)),
        }
    }

    /// Asks each stage for its schema: the source's, each transform's output for its
    /// input, and tells the sink. Returns the schema before the first transform and after
    /// each one; the last is the output's.
    fn negotiate_schemas(
        &mut self,
        source: &Stage<Box<dyn Source>>,
        chain: &Chain,
    ) -> Result<Vec<arrow::datatypes::SchemaRef>, Box<RunError>> {
        let mut schema = source
            .component
            .schema()
            .map_err(|e| fail(&source.label, "schema", None, e))?;
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

impl Pipeline {
    /// Asks each stage whether it sets rows aside, and with which schema; begins the
    /// `[quarantine]` sink with it. Every stage that sets rows aside must use the same
    /// schema, and the pipeline must have the sink.
    fn negotiate_quarantine(
        &mut self,
        chain: &Chain,
        schemas: &[arrow::datatypes::SchemaRef],
    ) -> Result<Vec<bool>, Box<RunError>> {
        let mut quarantine_schema: Option<(usize, arrow::datatypes::SchemaRef)> = None;
        let mut quarantining = Vec::new();
        for (position, (stage, transform)) in self.transforms.iter().zip(chain).enumerate() {
            let schema = transform
                .quarantine_schema(&schemas[position])
                .map_err(|e| fail(&stage.label, "quarantine_schema", None, e))?;
            quarantining.push(schema.is_some());
            let Some(schema) = schema else { continue };
            let refuse = |message: String| {
                fail(
                    &stage.label,
                    "quarantine_schema",
                    None,
                    ComponentError::config(message),
                )
            };
            match (&quarantine_schema, &self.quarantine) {
                (_, None) => {
                    return Err(refuse(
                        "this stage sets rows aside, but the pipeline has no [quarantine] sink \
                         to receive them; add one, e.g. [quarantine] type = \"parquet\" path = \
                         \"out/quarantine.parquet\""
                            .to_string(),
                    ));
                }
                (Some((first, earlier)), _) if earlier.fields() != schema.fields() => {
                    return Err(refuse(format!(
                        "this stage sets rows aside with columns {:?}, but {} sets aside {:?}; \
                         one [quarantine] sink takes one schema",
                        schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>(),
                        self.transforms[*first].label.stage,
                        earlier
                            .fields()
                            .iter()
                            .map(|f| f.name())
                            .collect::<Vec<_>>()
                    )));
                }
                _ => quarantine_schema = Some((position, schema)),
            }
        }
        if let (Some(sink), Some((_, schema))) = (&mut self.quarantine, quarantine_schema) {
            sink.component
                .begin(&schema)
                .map_err(|e| fail(&sink.label, "begin", None, e))?;
        }
        Ok(quarantining)
    }
}

/// A chain of new instances of `stages`, with the parameters in `fitted` loaded.
fn make_chain(
    stages: &[TransformStage],
    fitted: &[Option<serde_json::Value>],
) -> Result<Chain, Box<RunError>> {
    stages
        .iter()
        .zip(fitted)
        .map(|(stage, params)| {
            let mut transform =
                (stage.factory)().map_err(|e| fail(&stage.label, "create", None, e))?;
            if let Some(params) = params {
                transform
                    .load_fit(params)
                    .map_err(|e| fail(&stage.label, "load_fit", None, e))?;
            }
            Ok(transform)
        })
        .collect()
}

/// Merges the fit statistics of stage `position` over every worker's instance into the
/// first one, and finishes the fit there.
fn merge_fit(
    chains: &mut [Chain],
    position: usize,
) -> Result<serde_json::Value, (&'static str, ComponentError)> {
    let Some((first, others)) = chains.split_first_mut() else {
        return Err((
            "fit",
            ComponentError::internal("no worker finished the fit pass"),
        ));
    };
    for chain in others {
        let partial = chain[position]
            .fit_partial()
            .map_err(|e| ("fit_partial", e))?;
        first[position]
            .merge_fit(&partial)
            .map_err(|e| ("merge_fit", e))?;
    }
    first[position].finish_fit().map_err(|e| ("finish_fit", e))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::sync::{Arc, Mutex};

    use arrow::array::RecordBatch;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::SchemaRef;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use mlpipe_plugin_api::{ErrorKind, Result};
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use super::spill::{SpillOutcome, SpillPolicy};
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

    fn counter_source(rows: i64, fail_at: Option<u64>, chunk: Option<usize>) -> SourceStage {
        SourceStage::new(
            label("source"),
            Arc::new(move || {
                Ok(Box::new(Counter {
                    next: 0,
                    rows,
                    fail_at,
                    batches: 0,
                    chunk,
                }) as Box<dyn Source>)
            }),
        )
    }

    fn pipeline(
        rows: i64,
        fail: (Option<u64>, Option<u64>, Option<u64>),
        sink: &Collect,
        workers: usize,
    ) -> Pipeline {
        let mut sink = sink.clone();
        sink.fail_at = fail.2;
        Pipeline::new(
            Settings {
                batch_rows: 10,
                workers,
                ..Settings::default()
            },
            counter_source(rows, fail.0, None),
            vec![TransformStage::new(
                label("transform[0]"),
                double_factory(fail.1),
            )],
            Stage {
                label: label("sink"),
                component: Box::new(sink),
            },
        )
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
    fn small_source_batches_are_gathered_into_pooled_buffers() {
        let sink = Collect::default();
        let mut pipeline = pipeline(1000, (None, None, None), &sink, 1);
        pipeline.settings.batch_rows = 30;
        pipeline.source = counter_source(1000, None, Some(7));
        let (report, result) = run(pipeline);
        result.unwrap();
        assert_eq!(
            *sink.values.lock().unwrap(),
            (0..1000).map(|n| n * 2).collect::<Vec<_>>()
        );
        assert_eq!(report.batches_written, 34);
        assert!(report.pool_reused > 0, "{report:?}");
    }

    /// Subtracts the mean of `n`, fitted from the data: partial statistics are
    /// `(count, sum)` as 16 little-endian bytes.
    #[derive(Default)]
    struct Center {
        count: u64,
        sum: i64,
        mean: Option<i64>,
        /// Reads (and writes) this column.
        column: &'static str,
    }

    impl Transform for Center {
        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
            Ok(input.clone())
        }

        fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
            let mean = self
                .mean
                .ok_or_else(|| ComponentError::internal("applied before fitting"))?;
            let centered: Int64Array = batch
                .column(0)
                .as_primitive::<Int64Type>()
                .unary(|n| n - mean);
            Ok(RecordBatch::try_new(
                batch.schema(),
                vec![Arc::new(centered)],
            )?)
        }

        fn column_usage(&self, _: &SchemaRef) -> Result<Option<mlpipe_plugin_api::ColumnUsage>> {
            Ok(Some(mlpipe_plugin_api::ColumnUsage {
                reads: vec![self.column.to_string()],
                writes: vec![self.column.to_string()],
            }))
        }

        fn needs_fit(&self) -> bool {
            true
        }

        fn fit(&mut self, batch: &RecordBatch) -> Result<()> {
            let values = batch.column(0).as_primitive::<Int64Type>();
            self.count += values.len() as u64;
            self.sum += values.values().iter().sum::<i64>();
            Ok(())
        }

        fn fit_partial(&mut self) -> Result<Vec<u8>> {
            let mut bytes = self.count.to_le_bytes().to_vec();
            bytes.extend(self.sum.to_le_bytes());
            (self.count, self.sum) = (0, 0);
            Ok(bytes)
        }

        fn merge_fit(&mut self, partial: &[u8]) -> Result<()> {
            let word = |i: usize| -> [u8; 8] { partial[i * 8..i * 8 + 8].try_into().unwrap() };
            self.count += u64::from_le_bytes(word(0));
            self.sum += i64::from_le_bytes(word(1));
            Ok(())
        }

        fn finish_fit(&mut self) -> Result<serde_json::Value> {
            let mean = self.sum / self.count.max(1) as i64;
            self.mean = Some(mean);
            Ok(serde_json::json!({ "mean": mean }))
        }

        fn load_fit(&mut self, params: &serde_json::Value) -> Result<()> {
            self.mean = params["mean"].as_i64();
            Ok(())
        }
    }

    fn center(stage: &str, column: &'static str) -> TransformStage {
        let label = ComponentLabel {
            component: "center".to_string(),
            ..label(stage)
        };
        TransformStage::new(
            label,
            Arc::new(move || {
                Ok(Box::new(Center {
                    column,
                    ..Center::default()
                }) as Box<dyn Transform>)
            }),
        )
    }

    #[test]
    fn a_chain_fits_in_order_each_stage_on_the_output_of_the_stages_before() {
        for workers in [1, 3] {
            let sink = Collect::default();
            let mut pipeline = pipeline(100, (None, None, None), &sink, workers);
            // double, then center: center must see doubled values (mean 99, not 49).
            pipeline.transforms.push(center("transform[1]", "n"));
            pipeline.fitted.push(None);
            let (report, result) = run(pipeline);
            result.unwrap();
            assert_eq!(report.fit_passes.len(), 1, "{:?}", report.fit_passes);
            assert_eq!(report.fit_passes[0].fitted, ["transform[1]"]);
            assert_eq!(
                *sink.values.lock().unwrap(),
                (0..100).map(|n| n * 2 - 99).collect::<Vec<_>>()
            );
        }
    }

    /// A pipeline that fits `center` on 0..100 and applies it; its source counts how
    /// often it is created.
    fn fitting_pipeline(
        spill: SpillPolicy,
        costly_reread: bool,
    ) -> (Pipeline, Collect, Arc<AtomicU64>) {
        let sink = Collect::default();
        let mut pipeline = pipeline(100, (None, None, None), &sink, 2);
        pipeline.transforms = vec![center("transform[0]", "n")];
        pipeline.fitted = vec![None];
        pipeline.settings.spill = spill;
        let created = Arc::new(AtomicU64::new(0));
        let (counter, factory) = (created.clone(), pipeline.source.factory.clone());
        pipeline.source.factory = Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            factory()
        });
        pipeline.source.costly_reread = costly_reread;
        (pipeline, sink, created)
    }

    #[test]
    fn a_costly_source_is_read_once_and_replayed_from_the_spill() {
        for (spill, costly, reads) in [
            (SpillPolicy::Auto, true, 1),
            (SpillPolicy::Auto, false, 2),
            (SpillPolicy::Always, false, 1),
            (SpillPolicy::Never, true, 2),
        ] {
            let (pipeline, sink, created) = fitting_pipeline(spill, costly);
            let (report, result) = run(pipeline);
            result.unwrap();
            let case = format!("{spill:?}, costly {costly}");
            assert_eq!(created.load(Ordering::SeqCst), reads, "{case}");
            let kept = report.fit_passes[0].spill.clone();
            match reads {
                1 => assert!(
                    matches!(kept, Some(SpillOutcome::Kept { rows: 100, bytes }) if bytes > 800),
                    "{case}: {kept:?}"
                ),
                _ => assert_eq!(kept, None, "{case}"),
            }
            assert_eq!(
                *sink.values.lock().unwrap(),
                (0..100).map(|n| n - 49).collect::<Vec<_>>(),
                "{case}"
            );
            assert_eq!(report.rows_read, 100, "{case}");
        }
    }

    #[test]
    fn a_spill_that_cannot_be_written_is_abandoned_and_the_source_read_again() {
        let (mut pipeline, sink, created) = fitting_pipeline(SpillPolicy::Always, true);
        pipeline.settings.spill_dir = Some("/nonexistent/spill".into());
        let (report, result) = run(pipeline);
        result.unwrap();
        assert_eq!(created.load(Ordering::SeqCst), 2);
        let Some(SpillOutcome::Abandoned(reason)) = &report.fit_passes[0].spill else {
            panic!("{:?}", report.fit_passes[0].spill);
        };
        assert!(
            reason.starts_with("could not spill to /nonexistent/spill: ")
                && reason.ends_with("later passes read the source again"),
            "{reason}"
        );
        assert_eq!(sink.values.lock().unwrap().len(), 100);
    }

    #[test]
    fn fitting_without_applying_after_one_pass_spills_nothing() {
        let (mut pipeline, _, created) = fitting_pipeline(SpillPolicy::Always, true);
        let (passes, result) = pipeline.fit(&RunControl::default(), |_| {});
        result.unwrap();
        assert_eq!(passes[0].spill, None);
        assert_eq!(created.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_stage_that_reads_what_an_unfitted_stage_writes_waits_for_the_next_pass() {
        let sink = Collect::default();
        let mut pipeline = pipeline(100, (None, None, None), &sink, 2);
        pipeline.transforms = vec![center("transform[0]", "n"), center("transform[1]", "n")];
        pipeline.fitted = vec![None, None];
        let mut fitter = Pipeline::new(
            pipeline.settings.clone(),
            counter_source(100, None, None),
            vec![center("transform[0]", "n"), center("transform[1]", "n")],
            Stage {
                label: label("sink"),
                component: Box::new(Collect::default()),
            },
        );
        let (passes, result) = fitter.fit(&RunControl::default(), |_| {});
        result.unwrap();
        assert_eq!(passes.len(), 2);
        let stats = fitter.stats(&passes);
        assert_eq!(stats.stages[0].params["mean"], 49);
        // The second centering sees centered values: their mean is 0.
        assert_eq!(stats.stages[1].params["mean"], 0);
        assert_eq!(stats.rows_per_pass, [100, 100]);
        // Applying saved parameters runs no fit pass.
        pipeline.load_stats(&stats).unwrap();
        let (report, result) = run(pipeline);
        result.unwrap();
        assert!(report.fit_passes.is_empty());
        assert_eq!(
            *sink.values.lock().unwrap(),
            (0..100).map(|n| n - 49).collect::<Vec<_>>()
        );
    }

    #[test]
    fn stats_for_another_pipeline_are_refused() {
        let sink = Collect::default();
        let mut fitter = pipeline(10, (None, None, None), &sink, 1);
        fitter.transforms = vec![center("transform[0]", "n")];
        fitter.fitted = vec![None];
        let (passes, result) = fitter.fit(&RunControl::default(), |_| {});
        result.unwrap();
        let mut stats = fitter.stats(&passes);
        let mut other = pipeline(10, (None, None, None), &sink, 1);
        let error = other.load_stats(&stats).unwrap_err();
        assert!(
            error.to_string().contains(
                "`center` with config null, but the pipeline has `test-transform` with \
                 config null; refit with `mlpipe-host fit`"
            ),
            "{error}"
        );
        stats.stages.clear();
        let mut unfitted = pipeline(10, (None, None, None), &sink, 1);
        unfitted.transforms = vec![center("transform[0]", "n")];
        unfitted.fitted = vec![None];
        let error = unfitted.load_stats(&stats).unwrap_err();
        assert!(
            error.to_string().contains("no fitted parameters"),
            "{error}"
        );
    }

    /// Holds every batch back and returns them all at the end; counts what it held.
    #[derive(Default)]
    struct HoldAll {
        held: Vec<RecordBatch>,
        seen: u64,
    }

    impl Transform for HoldAll {
        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
            Ok(input.clone())
        }

        fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
            self.seen += batch.num_rows() as u64;
            let empty = batch.slice(0, 0);
            self.held.push(batch);
            Ok(empty)
        }

        fn finish(&mut self) -> Result<Option<RecordBatch>> {
            if self.held.is_empty() {
                return Ok(None);
            }
            let schema = self.held[0].schema();
            Ok(Some(arrow::compute::concat_batches(&schema, &self.held)?))
        }

        fn counters(&self) -> mlpipe_plugin_api::Counters {
            vec![("rows held".to_string(), self.seen)]
        }
    }

    #[test]
    fn rows_held_back_pass_through_the_rest_of_the_chain_and_counters_are_summed() {
        for workers in [1, 4] {
            let sink = Collect::default();
            let mut pipeline = pipeline(1000, (None, None, None), &sink, workers);
            pipeline.transforms.insert(
                0,
                TransformStage::new(
                    label("transform[0]"),
                    Arc::new(|| Ok(Box::new(HoldAll::default()) as Box<dyn Transform>)),
                ),
            );
            pipeline.fitted.push(None);
            let (report, result) = run(pipeline);
            result.unwrap();
            let mut values = sink.values.lock().unwrap().clone();
            values.sort_unstable();
            assert_eq!(values, (0..1000).map(|n| n * 2).collect::<Vec<_>>());
            let held: u64 = report
                .counters
                .iter()
                .filter(|c| c.name == "rows held")
                .map(|c| c.value)
                .sum();
            assert_eq!(held, 1000);
            assert_eq!(report.counters.len(), 1, "{:?}", report.counters);
        }
    }

    /// The schema of the rows `KeepEven` sets aside.
    fn aside_schema() -> SchemaRef {
        Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("n", arrow::datatypes::DataType::Int64, false),
            arrow::datatypes::Field::new("rule", arrow::datatypes::DataType::Utf8, false),
        ]))
    }

    /// Sets odd values aside (with the rule they broke) and keeps the even ones.
    #[derive(Default)]
    struct KeepEven {
        aside: Option<RecordBatch>,
    }

    impl Transform for KeepEven {
        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
            Ok(input.clone())
        }

        fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
            let values = batch.column(0).as_primitive::<Int64Type>();
            let even = arrow::compute::kernels::cmp::eq(
                &arrow::compute::kernels::numeric::rem(values, &Int64Array::new_scalar(2))?,
                &Int64Array::new_scalar(0),
            )?;
            let odd = arrow::compute::not(&even)?;
            let aside = arrow::compute::filter(values, &odd)?;
            let rules = arrow::array::StringArray::from(vec!["even"; aside.len()]);
            self.aside = Some(RecordBatch::try_new(
                aside_schema(),
                vec![aside, Arc::new(rules)],
            )?);
            Ok(arrow::compute::filter_record_batch(&batch, &even)?)
        }

        fn quarantine_schema(&self, _: &SchemaRef) -> Result<Option<SchemaRef>> {
            Ok(Some(aside_schema()))
        }

        fn take_quarantined(&mut self) -> Result<Option<RecordBatch>> {
            Ok(self.aside.take())
        }
    }

    #[test]
    fn rows_set_aside_reach_the_quarantine_sink_and_the_rest_the_output() {
        for workers in [1, 3] {
            let (sink, aside) = (Collect::default(), Collect::default());
            let mut pipeline = pipeline(101, (None, None, None), &sink, workers);
            pipeline.transforms = vec![TransformStage::new(
                label("transform[0]"),
                Arc::new(|| Ok(Box::new(KeepEven::default()) as Box<dyn Transform>)),
            )];
            pipeline.fitted = vec![None];
            pipeline.quarantine = Some(Stage {
                label: label("quarantine"),
                component: Box::new(aside.clone()),
            });
            let (_, result) = run(pipeline);
            result.unwrap();
            assert_eq!(
                *sink.values.lock().unwrap(),
                (0..=100).step_by(2).collect::<Vec<i64>>()
            );
            let mut odd = aside.values.lock().unwrap().clone();
            odd.sort_unstable();
            assert_eq!(odd, (1..100).step_by(2).collect::<Vec<i64>>());
            assert_eq!(aside.flushed.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn setting_rows_aside_without_a_quarantine_sink_is_an_error_that_says_what_to_add() {
        let sink = Collect::default();
        let mut pipeline = pipeline(10, (None, None, None), &sink, 1);
        pipeline.transforms = vec![TransformStage::new(
            label("transform[0]"),
            Arc::new(|| Ok(Box::new(KeepEven::default()) as Box<dyn Transform>)),
        )];
        pipeline.fitted = vec![None];
        let error = run(pipeline).1.unwrap_err();
        assert!(error.to_string().contains("[quarantine] type ="), "{error}");
        assert_eq!(error.stage, "transform[0]");
    }
}
