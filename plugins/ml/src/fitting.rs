//! Fit machinery shared by every fitted transform: per-column statistics keyed by column
//! name (accumulated over an instance's share of the batches, encoded as a partial,
//! merged across instances), and the JSON form of fitted parameters.
//!
//! Fitted parameters are one JSON object per transform:
//!
//! ```json
//! { "transform": "standardize", "version": 1, "plugin_version": "0.1.0", "rows": 5000000,
//!   "columns": [ { "column": "f0", "mean": 0.12, "scale": 1.5, ... }, ... ] }
//! ```
//!
//! `version` is the version of the transform's parameter format: a file of another version
//! is refused with a message saying to refit. `rows` is the number of rows fitted on.

use mlpipe_plugin_api::arrow::array::Array;
use mlpipe_plugin_api::arrow::datatypes::Field;
use mlpipe_plugin_api::{Error, RecordBatch, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::wire::{Reader, Writer};

/// The statistics a transform accumulates for one column.
pub(crate) trait Stats: Sized + Send {
    /// Adds one batch of the column.
    fn update(&mut self, array: &dyn Array) -> Result<()>;
    /// Adds another instance's statistics of the same column.
    fn merge(&mut self, other: Self) -> Result<()>;
    /// Writes the statistics into a partial.
    fn encode(&self, out: &mut Writer);
    /// Reads statistics written by [`Stats::encode`].
    fn decode(input: &mut Reader) -> Result<Self>;
    /// Bytes held.
    fn memory_usage(&self) -> usize {
        0
    }
}

/// Statistics of transforms that are not fitted.
pub(crate) struct NoStats;

impl Stats for NoStats {
    fn update(&mut self, _: &dyn Array) -> Result<()> {
        Ok(())
    }
    fn merge(&mut self, _: Self) -> Result<()> {
        Ok(())
    }
    fn encode(&self, _: &mut Writer) {}
    fn decode(_: &mut Reader) -> Result<Self> {
        Ok(NoStats)
    }
}

/// The statistics of each fitted column of one transform instance.
pub(crate) struct ColumnStats<S> {
    component: &'static str,
    rows: u64,
    columns: Vec<(String, S)>,
}

impl<S: Stats> ColumnStats<S> {
    /// No statistics yet, for `component`.
    pub(crate) fn new(component: &'static str) -> ColumnStats<S> {
        ColumnStats {
            component,
            rows: 0,
            columns: Vec::new(),
        }
    }

    /// Adds the columns at `indices` of `batch`; a column seen for the first time gets
    /// statistics from `make`.
    pub(crate) fn update(
        &mut self,
        batch: &RecordBatch,
        indices: &[usize],
        make: impl Fn(&Field) -> Result<S>,
    ) -> Result<()> {
        let schema = batch.schema();
        for &index in indices {
            let field = schema.field(index);
            let slot = match self.columns.iter().position(|(n, _)| n == field.name()) {
                Some(slot) => slot,
                None => {
                    self.columns.push((field.name().clone(), make(field)?));
                    self.columns.len() - 1
                }
            };
            self.columns[slot]
                .1
                .update(batch.column(index).as_ref())
                .map_err(|e| e.context(format!("column `{}`", field.name())))?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Encodes the statistics and forgets them.
    pub(crate) fn partial(&mut self) -> Vec<u8> {
        let mut out = Writer::new(self.component);
        out.u64(self.rows);
        out.u64(self.columns.len() as u64);
        for (name, stats) in &self.columns {
            out.str(name);
            stats.encode(&mut out);
        }
        self.rows = 0;
        self.columns.clear();
        out.finish()
    }

    /// Merges a partial of another instance into these statistics.
    pub(crate) fn merge(&mut self, partial: &[u8]) -> Result<()> {
        let mut input = Reader::new(partial, self.component)?;
        let rows = input.u64()?;
        let count = input.u64()?;
        for _ in 0..count {
            let name = input.str()?;
            let stats = S::decode(&mut input)?;
            match self.columns.iter_mut().find(|(n, _)| n == name) {
                Some((_, mine)) => mine
                    .merge(stats)
                    .map_err(|e| e.context(format!("column `{name}`")))?,
                None => self.columns.push((name.to_string(), stats)),
            }
        }
        input.end()?;
        self.rows += rows;
        Ok(())
    }

    /// The rows seen and each column's statistics, in the order the columns were first
    /// seen; the statistics are forgotten.
    pub(crate) fn take(&mut self) -> (u64, Vec<(String, S)>) {
        (
            std::mem::take(&mut self.rows),
            std::mem::take(&mut self.columns),
        )
    }

    /// Bytes held.
    pub(crate) fn memory_usage(&self) -> usize {
        self.columns
            .iter()
            .map(|(name, stats)| name.len() + stats.memory_usage())
            .sum()
    }
}

/// One column's fitted parameters in the JSON form.
#[derive(Serialize, Deserialize)]
struct FittedColumn<P> {
    column: String,
    #[serde(flatten)]
    params: P,
}

/// The JSON form of a transform's fitted parameters.
#[derive(Serialize, Deserialize)]
struct Fitted<P> {
    transform: String,
    version: u32,
    #[serde(default)]
    plugin_version: String,
    rows: u64,
    columns: Vec<FittedColumn<P>>,
}

/// Each fitted column's parameters, and the number of rows they were fitted on.
#[derive(Debug, Clone)]
pub(crate) struct Params<P> {
    pub rows: u64,
    pub columns: Vec<(String, P)>,
}

impl<P> Params<P> {
    /// The parameters of `column`.
    pub(crate) fn get(&self, column: &str) -> Option<&P> {
        self.columns
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, p)| p)
    }
}

impl<P: Serialize + DeserializeOwned> Params<P> {
    /// The JSON form, for `component` with parameter format `version`.
    pub(crate) fn to_json(&self, component: &str, version: u32) -> Result<serde_json::Value>
    where
        P: Clone,
    {
        let fitted = Fitted {
            transform: component.to_string(),
            version,
            plugin_version: env!("CARGO_PKG_VERSION").to_string(),
            rows: self.rows,
            columns: self
                .columns
                .iter()
                .map(|(column, params)| FittedColumn {
                    column: column.clone(),
                    params: params.clone(),
                })
                .collect(),
        };
        serde_json::to_value(fitted).map_err(|e| {
            Error::internal(format!(
                "transform `{component}`: cannot write its fitted parameters: {e}"
            ))
        })
    }

    /// Reads the JSON form written by [`Params::to_json`] for the same component and
    /// format version.
    pub(crate) fn from_json(
        component: &str,
        version: u32,
        json: &serde_json::Value,
    ) -> Result<Params<P>> {
        let refit = "fit the pipeline again (`mlpipe-host fit`) to write new ones";
        let named = json.get("transform").and_then(|t| t.as_str());
        if named != Some(component) {
            return Err(Error::config(format!(
                "the fitted parameters given to transform `{component}` are for {}; {refit}",
                named.map_or("no named transform".to_string(), |n| format!("`{n}`"))
            )));
        }
        let found = json.get("version").and_then(|v| v.as_u64());
        if found != Some(u64::from(version)) {
            return Err(Error::config(format!(
                "the fitted parameters of transform `{component}` have format version {}, this plugin reads version {version}; {refit}",
                found.map_or("(none)".to_string(), |v| v.to_string())
            )));
        }
        let fitted: Fitted<P> = serde_json::from_value(json.clone()).map_err(|e| {
            Error::config(format!(
                "the fitted parameters of transform `{component}` are malformed: {e}; {refit}"
            ))
        })?;
        Ok(Params {
            rows: fitted.rows,
            columns: fitted
                .columns
                .into_iter()
                .map(|c| (c.column, c.params))
                .collect(),
        })
    }
}

/// Checks that a fitted number is finite (JSON cannot hold NaN or infinities), naming the
/// column and the statistic.
pub(crate) fn finite(component: &str, column: &str, what: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::bad_data(format!(
            "transform `{component}`, column `{column}`: the fitted {what} is {value} (the data holds infinite values); clip or filter them before this transform"
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{ArrayRef, Int64Array};
    use mlpipe_plugin_api::arrow::datatypes::{DataType, Schema};
    use serde_json::json;

    use super::*;

    /// Counts values, for testing the machinery.
    struct Count(u64);

    impl Stats for Count {
        fn update(&mut self, array: &dyn Array) -> Result<()> {
            self.0 += (array.len() - array.null_count()) as u64;
            Ok(())
        }
        fn merge(&mut self, other: Self) -> Result<()> {
            self.0 += other.0;
            Ok(())
        }
        fn encode(&self, out: &mut Writer) {
            out.u64(self.0);
        }
        fn decode(input: &mut Reader) -> Result<Self> {
            Ok(Count(input.u64()?))
        }
    }

    fn batch(names: &[&str], values: Vec<Option<i64>>) -> RecordBatch {
        let fields: Vec<Field> = names
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, true))
            .collect();
        let columns: Vec<ArrayRef> = names
            .iter()
            .map(|_| Arc::new(Int64Array::from(values.clone())) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    #[test]
    fn partials_merge_by_column_name() {
        let mut a = ColumnStats::<Count>::new("count");
        let mut b = ColumnStats::<Count>::new("count");
        a.update(&batch(&["x", "y"], vec![Some(1), None]), &[0, 1], |_| {
            Ok(Count(0))
        })
        .unwrap();
        b.update(&batch(&["y", "z"], vec![Some(1), Some(2)]), &[0, 1], |_| {
            Ok(Count(0))
        })
        .unwrap();
        a.merge(&b.partial()).unwrap();
        assert_eq!(b.take().1.len(), 0, "a partial forgets the statistics");
        let (rows, columns) = a.take();
        assert_eq!(rows, 4);
        let counts: Vec<(&str, u64)> = columns.iter().map(|(n, c)| (n.as_str(), c.0)).collect();
        assert_eq!(counts, [("x", 1), ("y", 3), ("z", 2)]);
    }

    #[test]
    fn params_round_trip_and_refuse_other_transforms_and_versions() {
        let params = Params {
            rows: 10,
            columns: vec![("f0".to_string(), json!({"mean": 0.1}))],
        };
        let value = params.to_json("standardize", 1).unwrap();
        assert_eq!(value["columns"][0], json!({"column": "f0", "mean": 0.1}));
        let back = Params::<serde_json::Value>::from_json("standardize", 1, &value).unwrap();
        assert_eq!(back.rows, 10);
        assert_eq!(back.get("f0"), Some(&json!({"mean": 0.1})));
        let err = Params::<serde_json::Value>::from_json("min_max", 1, &value).unwrap_err();
        assert!(err.message().contains("are for `standardize`"), "{err}");
        let err = Params::<serde_json::Value>::from_json("standardize", 2, &value).unwrap_err();
        assert!(err.message().contains("format version 1"), "{err}");
    }
}
