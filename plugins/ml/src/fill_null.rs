//! `fill_null`: scikit-learn's `SimpleImputer`. Replaces the missing values of each column
//! by a value fitted from the column (`mean`, `most_frequent`) or given (`constant`).
//!
//! - Missing values are nulls and, in float columns, NaN (scikit-learn's default
//!   `missing_values=np.nan`); `nan_is_null = false` leaves NaN in the output. The fit
//!   always ignores both.
//! - `mean` and `median` take numeric columns; the output is float64, or float32 for
//!   float32 input. The median is numpy's (`linear`), exact while a column has at most
//!   `exact_limit` values and within the reported `rank_error` beyond.
//! - `most_frequent` and `constant` take string, integer and float columns and keep the
//!   column's type (a dictionary column becomes its value type). `most_frequent` breaks
//!   ties by the smallest value, as scikit-learn does.
//! - The output column has no nulls (its field is not nullable).
//! - Fitted parameters per column: `value` (the fill value) and `count` (values fitted on);
//!   for the median also `exact` and `rank_error`.

use mlpipe_plugin_api::arrow::array::{Array, ArrayRef, Int64Array, Scalar, StringArray};
use mlpipe_plugin_api::arrow::compute::kernels::zip::zip;
use mlpipe_plugin_api::arrow::compute::{CastOptions, cast_with_options, is_not_null};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field};
use mlpipe_plugin_api::{ComponentKind, Config, ConfigKey, ConfigType, Error, Result};
use serde::{Deserialize, Serialize};

use crate::columns::{self, Accepts, Selection};
use crate::columnwise::{ColumnOp, Columnwise, not_fitted};
use crate::fitting::{Stats, finite};
use crate::numeric::{NUMERIC, float_type, map_or_fill};
use crate::stats::moments::Moments;
use crate::stats::quantiles::{self, Bounds, Method, Quantiles};
use crate::stats::vocab::{CATEGORICAL, Category, Counts, Kind};
use crate::wire::{Reader, Writer};

const NAME: &str = "fill_null";

/// The config keys of `fill_null`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        columns::key("columns whose missing values to fill (names or glob patterns)"),
        ConfigKey::new(
            "strategy",
            ConfigType::String,
            "`mean`, `median`, `most_frequent` or `constant` (with `fill_value`)",
        )
        .default("mean"),
        ConfigKey::new(
            "fill_value",
            ConfigType::Any,
            "the value for strategy `constant`: a number or a string, of the column's kind",
        ),
        ConfigKey::new(
            "nan_is_null",
            ConfigType::Boolean,
            "whether NaN counts as missing in float columns (as scikit-learn's np.nan)",
        )
        .default(true),
    ]
    .into_iter()
    .chain(quantiles::keys())
    .collect()
}

/// How the fill value is found.
#[derive(Debug, Clone, PartialEq)]
enum Strategy {
    Mean,
    Median(Bounds),
    MostFrequent,
    Constant(Category),
}

/// Builds the transform from its validated config.
pub(crate) fn from_config(config: &Config) -> Result<Columnwise<FillNull>> {
    let name: String = config.require("strategy")?;
    let fill_value: Option<serde_json::Value> = config.get("fill_value")?;
    let strategy = match (name.as_str(), fill_value) {
        ("mean", None) => Strategy::Mean,
        ("median", None) => Strategy::Median(Bounds::from_config(config, NAME)?),
        ("most_frequent", None) => Strategy::MostFrequent,
        ("constant", Some(value)) => {
            Strategy::Constant(serde_json::from_value(value.clone()).map_err(|_| {
                Error::config(format!(
                    "key `fill_value` of transform `{NAME}` must be a number or a string, not {value}"
                ))
            })?)
        }
        ("constant", None) => {
            return Err(Error::config(format!(
                "transform `{NAME}` with strategy `constant` needs `fill_value`, e.g. fill_value = 0"
            )));
        }
        ("mean" | "median" | "most_frequent", Some(_)) => {
            return Err(Error::config(format!(
                "key `fill_value` of transform `{NAME}` is only for strategy `constant`, not `{name}`"
            )));
        }
        (other, _) => {
            return Err(Error::config(format!(
                "key `strategy` of transform `{NAME}` must be `mean`, `median`, `most_frequent` or `constant`, not `{other}`"
            )));
        }
    };
    let op = FillNull {
        strategy,
        nan_is_null: config.require("nan_is_null")?,
    };
    Ok(Columnwise::new(
        op,
        Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
    ))
}

/// The operation on one column.
pub(crate) struct FillNull {
    strategy: Strategy,
    nan_is_null: bool,
}

/// One column's fitted parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Fill {
    value: Category,
    count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rank_error: Option<f64>,
}

/// What a strategy accumulates.
pub(crate) enum FillStats {
    Mean(Moments),
    Median(Quantiles),
    Counts(Counts),
}

impl Stats for FillStats {
    fn update(&mut self, array: &dyn Array) -> Result<()> {
        match self {
            FillStats::Mean(m) => m.update(array),
            FillStats::Median(q) => q.update(array),
            FillStats::Counts(c) => c.update(array),
        }
    }

    fn merge(&mut self, other: Self) -> Result<()> {
        match (self, other) {
            (FillStats::Mean(a), FillStats::Mean(b)) => Stats::merge(a, b),
            (FillStats::Median(a), FillStats::Median(b)) => a.merge(b),
            (FillStats::Counts(a), FillStats::Counts(b)) => a.merge(b),
            _ => Err(Error::internal(
                "fill_null partials of different strategies",
            )),
        }
    }

    fn encode(&self, out: &mut Writer) {
        match self {
            FillStats::Mean(m) => {
                out.u64(0);
                m.encode(out);
            }
            FillStats::Counts(c) => {
                out.u64(1);
                c.encode(out);
            }
            FillStats::Median(q) => {
                out.u64(2);
                q.encode(out);
            }
        }
    }

    fn decode(input: &mut Reader) -> Result<Self> {
        match input.u64()? {
            0 => Ok(FillStats::Mean(Moments::decode(input)?)),
            1 => Ok(FillStats::Counts(Counts::decode(input)?)),
            _ => Ok(FillStats::Median(Quantiles::decode(input)?)),
        }
    }

    fn memory_usage(&self) -> usize {
        match self {
            FillStats::Mean(_) => 0,
            FillStats::Median(q) => q.memory_usage(),
            FillStats::Counts(c) => c.memory_usage(),
        }
    }
}

/// How a column is filled.
pub(crate) enum Prepared {
    /// Float output: nulls (and NaN when asked) become the value.
    Float(f64),
    /// Any other type: nulls become this one-row array of the output type.
    Other(ArrayRef),
}

/// The type a dictionary column is filled as: its value type.
fn plain_type(ty: &DataType) -> &DataType {
    match ty {
        DataType::Dictionary(_, values) => values,
        other => other,
    }
}

impl FillNull {
    fn output_type(&self, ty: &DataType) -> DataType {
        match self.strategy {
            Strategy::Mean | Strategy::Median(_) => float_type(ty),
            _ => plain_type(ty).clone(),
        }
    }
}

impl ColumnOp for FillNull {
    const NAME: &'static str = NAME;
    type Stats = FillStats;
    type Params = Fill;
    type Prepared = Prepared;

    fn accepts(&self) -> Accepts {
        match self.strategy {
            Strategy::Mean | Strategy::Median(_) => NUMERIC,
            _ => CATEGORICAL,
        }
    }

    fn output_field(&self, input: &Field) -> Result<Field> {
        if let Strategy::Constant(value) = &self.strategy {
            let fits = matches!(
                (value, Kind::of(input.data_type())),
                (Category::Text(_), Some(Kind::Text))
                    | (Category::Integer(_), Some(Kind::Integer | Kind::Float))
                    | (Category::Float(_), Some(Kind::Float))
            );
            if !fits {
                return Err(Error::config(format!(
                    "column `{}` has type {}, which the `fill_value` {value:?} does not fit; give a value of the column's kind, or `cast` the column first",
                    input.name(),
                    input.data_type()
                )));
            }
        }
        Ok(input
            .clone()
            .with_data_type(self.output_type(input.data_type()))
            .with_nullable(false))
    }

    fn needs_fit(&self) -> bool {
        !matches!(self.strategy, Strategy::Constant(_))
    }

    fn new_stats(&self, field: &Field) -> Result<FillStats> {
        Ok(match self.strategy {
            Strategy::Mean => FillStats::Mean(Moments::new(false)),
            Strategy::Median(bounds) => FillStats::Median(Quantiles::new(bounds)),
            _ => FillStats::Counts(Counts::new(Kind::of(field.data_type()).ok_or_else(
                || Error::internal("fill_null fitted on a column it does not accept"),
            )?)),
        })
    }

    fn finish(&self, column: &str, stats: FillStats) -> Result<Fill> {
        let none = || {
            Error::bad_data(
                "the column has no values (only missing ones) in the fitted data, so there is nothing to fill with; drop it, or use strategy `constant`",
            )
        };
        match stats {
            FillStats::Mean(m) => {
                if m.count == 0 {
                    return Err(none());
                }
                Ok(Fill {
                    value: Category::Float(finite(NAME, column, "mean", m.mean())?),
                    count: m.count,
                    exact: None,
                    rank_error: None,
                })
            }
            FillStats::Median(q) => {
                if q.count() == 0 {
                    return Err(none());
                }
                let median = q.quantiles(&[0.5], Method::Linear)[0];
                Ok(Fill {
                    value: Category::Float(finite(NAME, column, "median", median)?),
                    count: q.count(),
                    exact: Some(q.is_exact()),
                    rank_error: Some(q.rank_error()),
                })
            }
            FillStats::Counts(counts) => {
                let sorted = counts.into_sorted();
                let count = sorted.iter().map(|(_, c)| c).sum();
                // The first of the most frequent, in sorted order: the smallest.
                let top = sorted.iter().map(|(_, c)| *c).max().ok_or_else(none)?;
                let value = sorted
                    .into_iter()
                    .find(|(_, c)| *c == top)
                    .map(|(v, _)| v)
                    .ok_or_else(none)?;
                Ok(Fill {
                    value,
                    count,
                    exact: None,
                    rank_error: None,
                })
            }
        }
    }

    fn prepare(&self, params: Option<&Fill>, field: &Field) -> Result<Prepared> {
        let value = match (&self.strategy, params) {
            (Strategy::Constant(value), _) => value,
            (_, Some(params)) => &params.value,
            (_, None) => return Err(not_fitted(NAME)),
        };
        let output = self.output_type(field.data_type());
        match (value, &output) {
            (Category::Integer(v), DataType::Float32 | DataType::Float64) => {
                Ok(Prepared::Float(*v as f64))
            }
            (Category::Float(v), DataType::Float32 | DataType::Float64) => Ok(Prepared::Float(*v)),
            (Category::Text(v), _) if Kind::of(&output) == Some(Kind::Text) => Ok(Prepared::Other(
                cast_with_options(&StringArray::from(vec![v.as_str()]), &output, &strict())?,
            )),
            (Category::Integer(v), ty) if ty.is_integer() => {
                let one = Int64Array::from(vec![*v]);
                let cast = cast_with_options(&one, ty, &strict()).map_err(|_| {
                    Error::config(format!(
                        "the fill value {v} does not fit the column's type {ty}"
                    ))
                })?;
                Ok(Prepared::Other(cast))
            }
            (value, ty) => Err(Error::config(format!(
                "the fill value {value:?} does not fit the column's type {ty}; fit the pipeline again, or give a `fill_value` of the column's kind"
            ))),
        }
    }

    fn apply(&self, prepared: &Prepared, array: &ArrayRef) -> Result<ArrayRef> {
        match prepared {
            Prepared::Float(fill) => map_or_fill(array, |x| x, true, *fill, self.nan_is_null),
            Prepared::Other(value) => {
                let array = cast_with_options(array.as_ref(), value.data_type(), &strict())?;
                if array.null_count() == 0 {
                    return Ok(array);
                }
                let mask = is_not_null(array.as_ref())?;
                Ok(zip(&mask, &array, &Scalar::new(value.clone()))?)
            }
        }
    }
}

/// Casts that fail instead of producing nulls.
fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{
        AsArray, DictionaryArray, Float32Array, Float64Array, Int8Array, Int32Array,
    };
    use mlpipe_plugin_api::arrow::datatypes::{Float32Type, Float64Type, Int8Type, Int32Type};
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, fit_in_parts, make, transform};

    #[test]
    fn mean_fills_nulls_and_nan_in_every_numeric_type() {
        let batch = batch_of(vec![
            (
                "f64",
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    None,
                    Some(f64::NAN),
                    Some(4.0),
                ])) as ArrayRef,
            ),
            (
                "f32",
                Arc::new(Float32Array::from(vec![
                    Some(1.5f32),
                    Some(2.5),
                    None,
                    None,
                ])),
            ),
            (
                "i32",
                Arc::new(Int32Array::from(vec![Some(1), Some(2), None, Some(6)])),
            ),
        ]);
        let (params, mut t) = fit_in_parts(NAME, &json!({"columns": ["*"]}), &batch, 2);
        assert_eq!(params["columns"][0]["value"], 2.5);
        assert_eq!(params["columns"][0]["count"], 2);
        assert_eq!(params["columns"][2]["value"], 3.0);
        let out = transform(&mut *t, batch);
        let f64s = out.column(0).as_primitive::<Float64Type>();
        assert_eq!(f64s.values(), &[1.0, 2.5, 2.5, 4.0]);
        assert_eq!(f64s.null_count(), 0);
        assert_eq!(
            out.column(1).as_primitive::<Float32Type>().values(),
            &[1.5, 2.5, 2.0, 2.0]
        );
        assert_eq!(
            out.column(2).as_primitive::<Float64Type>().values(),
            &[1.0, 2.0, 3.0, 6.0]
        );
        assert!(!out.schema().field(0).is_nullable());
    }

    #[test]
    fn median_is_numpys() {
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![
                Some(4.0),
                None,
                Some(1.0),
                Some(f64::NAN),
                Some(2.0),
                Some(10.0),
            ])) as ArrayRef,
        )]);
        let (params, mut t) = fit_in_parts(
            NAME,
            &json!({"columns": ["x"], "strategy": "median"}),
            &batch,
            2,
        );
        assert_eq!(params["columns"][0]["value"], 3.0);
        assert_eq!(params["columns"][0]["exact"], true);
        let out = transform(&mut *t, batch);
        assert_eq!(
            out.column(0).as_primitive::<Float64Type>().values(),
            &[4.0, 3.0, 1.0, 3.0, 2.0, 10.0]
        );
    }

    #[test]
    fn nan_is_null_false_keeps_nan() {
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![Some(f64::NAN), None, Some(3.0)])) as ArrayRef,
        )]);
        let config = json!({"columns": ["x"], "nan_is_null": false});
        let (params, mut t) = fit_in_parts(NAME, &config, &batch, 1);
        // The fit still ignores NaN; only the output keeps it.
        assert_eq!(params["columns"][0]["value"], 3.0);
        let out = transform(&mut *t, batch);
        let x = out.column(0).as_primitive::<Float64Type>();
        assert!(x.value(0).is_nan());
        assert_eq!(x.value(2), 3.0);
    }

    #[test]
    fn most_frequent_breaks_ties_by_the_smallest_value() {
        let batch = batch_of(vec![
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    Some("a"),
                    None,
                    Some("b"),
                    Some("a"),
                ])) as ArrayRef,
            ),
            (
                "i",
                Arc::new(Int8Array::from(vec![
                    Some(9),
                    Some(-3),
                    Some(9),
                    None,
                    Some(-3),
                ])),
            ),
        ]);
        let config = json!({"columns": ["*"], "strategy": "most_frequent"});
        let (params, mut t) = fit_in_parts(NAME, &config, &batch, 2);
        assert_eq!(params["columns"][0]["value"], "a");
        assert_eq!(params["columns"][1]["value"], -3);
        let out = transform(&mut *t, batch);
        let s = out.column(0).as_string::<i32>();
        assert_eq!(s.value(2), "a");
        let i = out.column(1).as_primitive::<Int8Type>();
        assert_eq!(out.column(1).data_type(), &DataType::Int8);
        assert_eq!(i.values(), &[9, -3, 9, -3, -3]);
    }

    #[test]
    fn constant_needs_no_fit_and_checks_the_value_against_the_column() {
        let keys = Int32Array::from(vec![Some(0), None, Some(1)]);
        let dictionary = DictionaryArray::<Int32Type>::try_new(
            keys,
            Arc::new(StringArray::from(vec!["x", "y"])),
        )
        .unwrap();
        let batch = batch_of(vec![
            ("d", Arc::new(dictionary) as ArrayRef),
            (
                "s",
                Arc::new(StringArray::from(vec![None, Some("q"), None])),
            ),
        ]);
        let mut t = make(
            NAME,
            &json!({"columns": ["*"], "strategy": "constant", "fill_value": "?"}),
        );
        assert!(!t.needs_fit());
        let out = transform(&mut *t, batch.clone());
        let d = out.column(0).as_string::<i32>();
        assert_eq!((d.value(0), d.value(1), d.value(2)), ("x", "?", "y"));
        assert_eq!(out.column(1).as_string::<i32>().value(0), "?");

        let t = make(
            NAME,
            &json!({"columns": ["*"], "strategy": "constant", "fill_value": 1}),
        );
        let err = t.output_schema(&batch.schema()).unwrap_err();
        assert!(
            err.message().contains("column `d` has type Dictionary"),
            "{err}"
        );

        let ints = batch_of(vec![(
            "i",
            Arc::new(Int8Array::from(vec![None, Some(1)])) as ArrayRef,
        )]);
        let mut t = make(
            NAME,
            &json!({"columns": ["i"], "strategy": "constant", "fill_value": 300}),
        );
        let err = t.transform(ints).unwrap_err();
        assert!(
            err.message()
                .contains("does not fit the column's type Int8"),
            "{err}"
        );
    }

    #[test]
    fn bad_configs_say_what_is_expected() {
        for (config, expected) in [
            (
                json!({"columns": ["x"], "strategy": "median?"}),
                "must be `mean`",
            ),
            (
                json!({"columns": ["x"], "strategy": "constant"}),
                "needs `fill_value`",
            ),
            (
                json!({"columns": ["x"], "fill_value": 1}),
                "only for strategy `constant`",
            ),
            (
                json!({"columns": ["x"], "strategy": "constant", "fill_value": [1]}),
                "a number or a string",
            ),
        ] {
            let err = crate::testing::try_make(NAME, &config).err().unwrap();
            assert!(err.message().contains(expected), "{config}: {err}");
        }
    }
}
