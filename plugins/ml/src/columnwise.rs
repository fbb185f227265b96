//! The generic transform behind every column-wise operation (`standardize`, `fill_null`,
//! `ordinal`, `clip`, `cast`, ...): each selected column is replaced, in place, by a
//! function of itself and of its fitted parameters; other columns pass through untouched
//! (zero copy), embeddings included.
//!
//! A [`ColumnOp`] says what one column needs (accepted types, output field, statistics,
//! parameters, the kernel); [`Columnwise`] does the rest: column selection, per-schema
//! caching, fitting (statistics per column, partials, merging), the JSON form of the
//! fitted parameters, loading them back, and errors that name the transform and column.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{ArrayRef, RecordBatchOptions};
use mlpipe_plugin_api::arrow::datatypes::{Field, Schema};
use mlpipe_plugin_api::{ColumnUsage, Counters, Error, RecordBatch, Result, SchemaRef, Transform};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::columns::{Accepts, PerSchema, Selection};
use crate::fitting::{ColumnStats, Params, Stats};

/// One column-wise operation.
pub(crate) trait ColumnOp: Send + 'static {
    /// The component's name.
    const NAME: &'static str;
    /// The version of the fitted parameters' format.
    const VERSION: u32 = 1;
    /// What a column accumulates while fitting.
    type Stats: Stats;
    /// One column's fitted parameters.
    type Params: Serialize + DeserializeOwned + Clone + Send;
    /// What [`prepare`](ColumnOp::prepare) derives from a column's parameters.
    type Prepared: Send;

    /// The column types the operation takes.
    fn accepts(&self) -> Accepts;
    /// The output field for an input field.
    fn output_field(&self, input: &Field) -> Result<Field>;
    /// Whether the operation must be fitted before it is applied.
    fn needs_fit(&self) -> bool {
        false
    }
    /// Empty statistics for a column.
    fn new_stats(&self, field: &Field) -> Result<Self::Stats>;
    /// The parameters fitted from a column's statistics.
    fn finish(&self, column: &str, stats: Self::Stats) -> Result<Self::Params>;
    /// What [`apply`](ColumnOp::apply) needs for one column of the input schema, derived
    /// once per schema from the column's fitted parameters (`None` when the operation is
    /// not fitted): checks that the parameters fit the column go here.
    fn prepare(&self, params: Option<&Self::Params>, field: &Field) -> Result<Self::Prepared>;
    /// The output column for an input column.
    fn apply(&self, prepared: &Self::Prepared, array: &ArrayRef) -> Result<ArrayRef>;
    /// Named counts for the run report (the op keeps them itself).
    fn counters(&self) -> Counters {
        Vec::new()
    }
}

/// How batches of one input schema are transformed.
struct Plan<P> {
    output: SchemaRef,
    /// Each selected column's index and what the op prepared for it.
    columns: Vec<(usize, P)>,
}

/// A transform applying `O` to every selected column.
pub(crate) struct Columnwise<O: ColumnOp> {
    op: O,
    selection: Selection,
    stats: ColumnStats<O::Stats>,
    params: Option<Params<O::Params>>,
    plan: PerSchema<Plan<O::Prepared>>,
}

impl<O: ColumnOp> Columnwise<O> {
    /// The transform for `op` over the columns of `selection`.
    pub(crate) fn new(op: O, selection: Selection) -> Columnwise<O> {
        Columnwise {
            op,
            selection,
            stats: ColumnStats::new(O::NAME),
            params: None,
            plan: PerSchema::default(),
        }
    }
}

/// The output schema for `input` when the columns at `indices` are transformed by `op`.
fn output_schema_for<O: ColumnOp>(op: &O, input: &Schema, indices: &[usize]) -> Result<Schema> {
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for &index in indices {
        fields[index] = op
            .output_field(&fields[index])
            .map_err(|e| e.context(format!("transform `{}`", O::NAME)))?;
    }
    Ok(Schema::new_with_metadata(fields, input.metadata().clone()))
}

/// How `op` transforms batches of schema `input`, with the fitted `params`.
fn plan_for<O: ColumnOp>(
    op: &O,
    selection: &Selection,
    params: Option<&Params<O::Params>>,
    input: &SchemaRef,
) -> Result<Plan<O::Prepared>> {
    let indices = selection.resolve(input, op.accepts())?;
    let output = Arc::new(output_schema_for(op, input, &indices)?);
    let mut columns = Vec::with_capacity(indices.len());
    for index in indices {
        let field = input.field(index);
        let name = field.name();
        let fitted = match (params, op.needs_fit()) {
            (_, false) => None,
            (None, true) => return Err(not_fitted(O::NAME)),
            (Some(params), true) => Some(params.get(name).ok_or_else(|| {
                let fitted: Vec<&str> = params.columns.iter().map(|(n, _)| n.as_str()).collect();
                Error::config(format!(
                    "transform `{}`: column `{name}` was not among the fitted columns ({}); fit the pipeline again on data with this column",
                    O::NAME,
                    fitted.join(", ")
                ))
            })?),
        };
        let prepared = op
            .prepare(fitted, field)
            .map_err(|e| e.context(format!("transform `{}`, column `{name}`", O::NAME)))?;
        columns.push((index, prepared));
    }
    Ok(Plan { output, columns })
}

/// The error for applying a fitted transform before it was fitted.
pub(crate) fn not_fitted(component: &str) -> Error {
    Error::internal(format!(
        "transform `{component}` must be fitted before it is applied, and was not: run it with `mlpipe-host run` (which fits first), or give fitted parameters with `--stats`"
    ))
}

impl<O: ColumnOp> Transform for Columnwise<O> {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let indices = self.selection.resolve(input, self.op.accepts())?;
        Ok(Arc::new(output_schema_for(&self.op, input, &indices)?))
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        let Columnwise {
            op,
            selection,
            params,
            plan,
            ..
        } = self;
        let plan = plan.get(&schema, |input| {
            plan_for(op, selection, params.as_ref(), input)
        })?;
        let mut columns = batch.columns().to_vec();
        for (index, prepared) in &plan.columns {
            columns[*index] = op.apply(prepared, &columns[*index]).map_err(|e| {
                e.context(format!(
                    "transform `{}`, column `{}`",
                    O::NAME,
                    schema.field(*index).name()
                ))
            })?;
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            plan.output.clone(),
            columns,
            &options,
        )?)
    }

    fn memory_usage(&self) -> usize {
        self.stats.memory_usage()
    }

    fn counters(&self) -> Counters {
        self.op.counters()
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        let names: Vec<String> = self
            .selection
            .resolve(input, self.op.accepts())?
            .into_iter()
            .map(|i| input.field(i).name().clone())
            .collect();
        Ok(Some(ColumnUsage {
            reads: names.clone(),
            writes: names,
        }))
    }

    fn needs_fit(&self) -> bool {
        self.op.needs_fit()
    }

    fn fit(&mut self, batch: &RecordBatch) -> Result<()> {
        let indices = self.selection.resolve(&batch.schema(), self.op.accepts())?;
        let op = &self.op;
        self.stats
            .update(batch, &indices, |field| op.new_stats(field))
    }

    fn fit_partial(&mut self) -> Result<Vec<u8>> {
        Ok(self.stats.partial())
    }

    fn merge_fit(&mut self, partial: &[u8]) -> Result<()> {
        self.stats.merge(partial)
    }

    fn finish_fit(&mut self) -> Result<serde_json::Value> {
        let (rows, columns) = self.stats.take();
        if columns.is_empty() {
            return Err(Error::bad_data(format!(
                "transform `{}` cannot be fitted: its input had no rows",
                O::NAME
            )));
        }
        let columns = columns
            .into_iter()
            .map(|(name, stats)| {
                let params = self
                    .op
                    .finish(&name, stats)
                    .map_err(|e| e.context(format!("transform `{}`, column `{name}`", O::NAME)))?;
                Ok((name, params))
            })
            .collect::<Result<Vec<_>>>()?;
        let params = Params { rows, columns };
        let json = params.to_json(O::NAME, O::VERSION)?;
        self.params = Some(params);
        self.plan.clear();
        Ok(json)
    }

    fn load_fit(&mut self, params: &serde_json::Value) -> Result<()> {
        self.params = Some(Params::from_json(O::NAME, O::VERSION, params)?);
        self.plan.clear();
        Ok(())
    }
}
