//! Fitting a chain of transforms, and the stats file that keeps what was fitted.
//!
//! A chain fits in order, in scikit-learn `Pipeline` semantics: each stage is fitted on
//! the output of the stages before it. Done naively that is one pass over the data per
//! fitted stage; instead each pass (a *round*) fits every stage whose input is already
//! final. [`plan_round`] walks the chain with the columns each stage reads and writes
//! ([`ColumnUsage`]): a stage not applied in this round *taints* the columns it writes, and
//! a later stage can run in the same round only if it reads no tainted column. A stage that
//! cannot be skipped safely (it adds or removes columns, or does not say what it touches)
//! ends the round. `fill_null(f*) → standardize(f*) → ordinal(c*)` thus takes two fit
//! passes: `fill_null` and `ordinal` in the first, `standardize` in the second.

use std::collections::HashSet;
use std::path::Path;

use arrow::datatypes::SchemaRef;
use mlpipe_plugin_api::{ColumnUsage, Error as ComponentError, Transform};
use serde::{Deserialize, Serialize};

use super::engine::{Action, StageFailure};

/// One stage as the planner sees it.
pub trait PlannedStage {
    /// Whether the stage still needs fitting.
    fn unfitted(&self) -> bool;
    /// The stage's output schema for `input`.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, ComponentError>;
    /// The columns it reads and writes for `input`, when it says.
    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>, ComponentError>;
}

/// A transform instance together with whether its stage is fitted.
pub struct Planned<'a> {
    /// The instance (made by the stage's factory, fitted parameters loaded).
    pub transform: &'a dyn Transform,
    /// Whether the stage still needs fitting.
    pub unfitted: bool,
}

impl PlannedStage for Planned<'_> {
    fn unfitted(&self) -> bool {
        self.unfitted
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, ComponentError> {
        self.transform.output_schema(input)
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>, ComponentError> {
        self.transform.column_usage(input)
    }
}

/// The actions of one fit round and the schema before the first stage and after each
/// planned one. Stages after the last fitted one are left out: the round need not run
/// them. Errors name the position of the stage whose schema or usage failed.
pub fn plan_round(
    stages: &[impl PlannedStage],
    source_schema: SchemaRef,
) -> Result<(Vec<Action>, Vec<SchemaRef>), StageFailure> {
    let mut actions = Vec::new();
    let mut schemas = vec![source_schema];
    let mut tainted: HashSet<String> = HashSet::new();
    for (position, stage) in stages.iter().enumerate() {
        let input = schemas[position].clone();
        let usage = stage
            .column_usage(&input)
            .map_err(|e| (position, "column_usage", e))?;
        let reads_tainted = match &usage {
            Some(usage) => usage.reads.iter().any(|c| tainted.contains(c)),
            None => !tainted.is_empty(),
        };
        if !reads_tainted && !stage.unfitted() {
            let output = stage
                .output_schema(&input)
                .map_err(|e| (position, "output_schema", e))?;
            actions.push(Action::Apply);
            schemas.push(output);
            continue;
        }
        // Not applied in this round: later stages see its input unchanged. That is sound
        // only when it keeps the set of columns (so later name patterns resolve alike) and
        // says what it writes (which becomes tainted).
        actions.push(if reads_tainted {
            Action::Skip
        } else {
            Action::Fit
        });
        schemas.push(input.clone());
        let keeps_columns = stage.output_schema(&input).is_ok_and(|output| {
            output.fields().len() == input.fields().len()
                && output
                    .fields()
                    .iter()
                    .zip(input.fields())
                    .all(|(a, b)| a.name() == b.name())
        });
        match usage {
            Some(usage) if keeps_columns => tainted.extend(usage.writes),
            _ => break,
        }
    }
    let last_fit = actions.iter().rposition(|a| *a == Action::Fit);
    let keep = last_fit.map_or(0, |i| i + 1);
    actions.truncate(keep);
    schemas.truncate(keep + 1);
    Ok((actions, schemas))
}

/// The version of the stats file format this host writes and reads.
pub const STATS_FORMAT_VERSION: u32 = 1;

/// What `mlpipe-host fit` saves: the fitted parameters of every fitted stage, with what
/// identifies the stage, so that applying them to another pipeline is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitStats {
    /// Always `mlpipe-fit-stats`.
    pub format: String,
    /// [`STATS_FORMAT_VERSION`].
    pub version: u32,
    /// The host that fitted them (`mlpipe-host 0.1.0`).
    pub created_by: String,
    /// The source they were fitted on: component and config.
    pub source: StageIdentity,
    /// Rows read by each fit pass.
    pub rows_per_pass: Vec<u64>,
    /// One entry per fitted stage, in chain order.
    pub stages: Vec<FittedStage>,
}

/// Which component, with which config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageIdentity {
    /// `source`, `transform[i]`.
    pub stage: String,
    /// The component's name.
    pub component: String,
    /// The plugin that provides it.
    pub plugin: Option<String>,
    /// The component's config, as validated.
    pub config: serde_json::Value,
}

/// A fitted stage and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedStage {
    /// Which stage.
    #[serde(flatten)]
    pub identity: StageIdentity,
    /// What the transform's `finish_fit` returned.
    pub params: serde_json::Value,
}

impl FitStats {
    /// Reads a stats file; `what` is how to fix a wrong one.
    pub fn load(path: &Path) -> Result<FitStats, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the stats file: {e}", path.display()))?;
        let stats: FitStats = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: not an mlpipe stats file ({e}); write one with `mlpipe-host fit PIPELINE -o {}`",
                path.display(),
                path.display()
            )
        })?;
        if stats.format != "mlpipe-fit-stats" || stats.version != STATS_FORMAT_VERSION {
            return Err(format!(
                "{}: stats format `{}` version {}, but this host reads `mlpipe-fit-stats` version \
                 {STATS_FORMAT_VERSION}; refit with `mlpipe-host fit`",
                path.display(),
                stats.format,
                stats.version
            ));
        }
        Ok(stats)
    }

    /// Writes the stats file atomically (a temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let fail = |e: String| format!("{}: cannot write the stats file: {e}", path.display());
        let json = serde_json::to_string_pretty(self).map_err(|e| fail(e.to_string()))?;
        let (pending, mut file) = mlpipe_plugin_api::files::PendingOutput::create(path, true)
            .map_err(|e| fail(e.message().to_string()))?;
        std::io::Write::write_all(&mut file, format!("{json}\n").as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        pending
            .commit(file)
            .map_err(|e| fail(e.message().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// A stage for the planner: what it reads and writes, whether it keeps the columns.
    struct Fake {
        unfitted: bool,
        usage: Option<(&'static [&'static str], &'static [&'static str])>,
        adds: Option<&'static str>,
    }

    fn fake(
        unfitted: bool,
        reads: &'static [&'static str],
        writes: &'static [&'static str],
    ) -> Fake {
        Fake {
            unfitted,
            usage: Some((reads, writes)),
            adds: None,
        }
    }

    impl PlannedStage for Fake {
        fn unfitted(&self) -> bool {
            self.unfitted
        }

        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, ComponentError> {
            let mut fields: Vec<Field> =
                input.fields().iter().map(|f| f.as_ref().clone()).collect();
            if let Some(name) = self.adds {
                fields.push(Field::new(name, DataType::Float32, true));
            }
            Ok(Arc::new(Schema::new(fields)))
        }

        fn column_usage(&self, _: &SchemaRef) -> Result<Option<ColumnUsage>, ComponentError> {
            let owned = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
            Ok(self.usage.map(|(reads, writes)| ColumnUsage {
                reads: owned(reads),
                writes: owned(writes),
            }))
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(
            ["f0", "f1", "c0"]
                .map(|n| Field::new(n, DataType::Float64, true))
                .to_vec(),
        ))
    }

    fn actions(stages: &[Fake]) -> Vec<Action> {
        plan_round(stages, schema()).map_err(|e| e.2).unwrap().0
    }

    use Action::{Apply, Fit, Skip};

    #[test]
    fn independent_stages_fit_in_one_round_and_dependent_ones_wait() {
        let f = &["f0", "f1"][..];
        let c = &["c0"][..];
        // fill_null(f*) → standardize(f*) → ordinal(c*)
        let mut chain = vec![fake(true, f, f), fake(true, f, f), fake(true, c, c)];
        assert_eq!(actions(&chain), [Fit, Skip, Fit]);
        chain[0].unfitted = false;
        chain[2].unfitted = false;
        assert_eq!(actions(&chain), [Apply, Fit]);
    }

    #[test]
    fn a_stage_of_unknown_usage_or_that_adds_columns_ends_the_round() {
        let f = &["f0"][..];
        let c = &["c0"][..];
        let unknown = Fake {
            unfitted: true,
            usage: None,
            adds: None,
        };
        assert_eq!(actions(&[unknown, fake(true, c, c)]), [Fit]);
        let one_hot = Fake {
            unfitted: true,
            usage: Some((c, c)),
            adds: Some("c0_a"),
        };
        assert_eq!(actions(&[one_hot, fake(true, f, f)]), [Fit]);
    }

    #[test]
    fn stateless_stages_are_applied_unless_they_read_tainted_columns() {
        let f = &["f0"][..];
        let c = &["c0"][..];
        let chain = [
            fake(true, f, f),
            fake(false, f, f),
            fake(false, c, c),
            fake(true, c, c),
        ];
        assert_eq!(actions(&chain), [Fit, Skip, Apply, Fit]);
        let done = [fake(false, f, f), fake(false, c, c)];
        assert_eq!(actions(&done), Vec::<Action>::new());
    }
}
