//! `standardize`: scikit-learn's `StandardScaler`. Fits each column's mean and population
//! standard deviation (ddof = 0) and maps `x` to `(x - mean) / scale`.
//!
//! - A constant column (scikit-learn's test: `var <= n·ε·var + (n·mean·ε)²`) gets
//!   `scale = 1`, so it maps to zeros instead of dividing by ~0.
//! - Nulls and NaN are ignored by the fit and stay null / NaN in the output.
//! - `impute = "mean"` first replaces missing values (nulls, NaN) by the column's mean:
//!   scikit-learn's `make_pipeline(SimpleImputer(strategy="mean"), StandardScaler())` in
//!   one stage, fitted in one pass instead of two (the imputed column has the same mean
//!   and the same sum of squared deviations over `count + missing` values), and missing
//!   values come out as 0, never null.
//! - float32 columns stay float32 (computed in float32, with the mean and scale rounded to
//!   float32); integer and float64 columns become float64.
//! - Applied by the `fill_standardize` kernel (see [`crate::kernels`]).
//! - Fitted parameters per column: `count` (values fitted on), `missing`, `mean`, `var`,
//!   `scale` (with `impute`, `var` and `scale` are the imputed column's).

use mlpipe_plugin_api::arrow::array::ArrayRef;
use mlpipe_plugin_api::arrow::datatypes::Field;
use mlpipe_plugin_api::{ComponentKind, Config, ConfigKey, ConfigType, Error, Result};
use serde::{Deserialize, Serialize};

use crate::columns::{self, Accepts, Selection};
use crate::columnwise::{ColumnOp, Columnwise, not_fitted};
use crate::fitting::finite;
use crate::kernels::{NumericKernel, center_and_scale};
use crate::numeric::{NUMERIC, float_type};
use crate::stats::moments::Moments;

const NAME: &str = "standardize";

/// The config keys of `standardize`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        columns::key("numeric columns to standardize (names or glob patterns)"),
        ConfigKey::new("with_mean", ConfigType::Boolean, "subtract the mean").default(true),
        ConfigKey::new(
            "with_std",
            ConfigType::Boolean,
            "divide by the standard deviation",
        )
        .default(true),
        ConfigKey::new(
            "impute",
            ConfigType::String,
            "`mean`: replace missing values by the mean first (SimpleImputer then StandardScaler, one fit pass)",
        ),
    ]
}

/// Builds the transform from its validated config.
pub(crate) fn from_config(config: &Config) -> Result<Columnwise<Standardize>> {
    let impute = match config.get::<String>("impute")?.as_deref() {
        None => false,
        Some("mean") => true,
        Some(other) => {
            return Err(Error::config(format!(
                "key `impute` of transform `{NAME}` can only be `mean`, not `{other}`"
            )));
        }
    };
    let op = Standardize {
        with_mean: config.require("with_mean")?,
        with_std: config.require("with_std")?,
        impute,
        kernel: NumericKernel::from_config(config, "fill_standardize")?,
    };
    Ok(Columnwise::new(
        op,
        Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
    ))
}

/// The operation on one column.
pub(crate) struct Standardize {
    with_mean: bool,
    with_std: bool,
    /// Replace missing values by the mean first.
    impute: bool,
    kernel: NumericKernel,
}

/// One column's fitted parameters (scikit-learn's `n_samples_seen_`, `mean_`, `var_`,
/// `scale_`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Scaling {
    pub count: u64,
    #[serde(default)]
    pub missing: u64,
    pub mean: f64,
    pub var: f64,
    pub scale: f64,
}

/// scikit-learn's `_is_constant_feature`: whether the variance is indistinguishable from
/// rounding noise of the mean.
fn is_constant(var: f64, mean: f64, count: u64) -> bool {
    let n = count as f64;
    let upper_bound = n * f64::EPSILON * var + (n * mean * f64::EPSILON).powi(2);
    var <= upper_bound
}

impl ColumnOp for Standardize {
    const NAME: &'static str = NAME;
    type Stats = Moments;
    type Params = Scaling;

    fn accepts(&self) -> Accepts {
        NUMERIC
    }

    fn output_field(&self, input: &Field) -> Result<Field> {
        let field = input.clone().with_data_type(float_type(input.data_type()));
        Ok(if self.impute {
            field.with_nullable(false)
        } else {
            field
        })
    }

    fn needs_fit(&self) -> bool {
        true
    }

    fn new_stats(&self, _: &Field) -> Result<Moments> {
        Ok(Moments::new(true))
    }

    fn finish(&self, column: &str, stats: Moments) -> Result<Scaling> {
        if stats.count == 0 {
            return Err(Error::bad_data(
                "the column has no values (only nulls or NaN) in the fitted data, so it has no mean; drop it or fill it first",
            ));
        }
        let mean = finite(NAME, column, "mean", stats.mean())?;
        // Imputed values equal the mean: they add rows, not squared deviations.
        let rows = if self.impute {
            stats.count + stats.missing
        } else {
            stats.count
        };
        let var = finite(
            NAME,
            column,
            "variance",
            stats.sum_of_squares() / rows as f64,
        )?;
        let scale = if is_constant(var, mean, rows) {
            1.0
        } else {
            var.sqrt()
        };
        Ok(Scaling {
            count: stats.count,
            missing: stats.missing,
            mean,
            var,
            scale,
        })
    }

    /// `[fill, center, scale]`: the kernel's scalar arguments.
    type Prepared = [f64; 3];

    fn prepare(&self, params: Option<&Scaling>, _: &Field) -> Result<[f64; 3]> {
        let params = params.ok_or_else(|| not_fitted(NAME))?;
        let center = if self.with_mean { params.mean } else { 0.0 };
        let scale = if self.with_std { params.scale } else { 1.0 };
        Ok([params.mean, center, scale])
    }

    fn apply(&self, &[fill, center, scale]: &[f64; 3], array: &ArrayRef) -> Result<ArrayRef> {
        if self.impute {
            // `fill_nan`: SimpleImputer treats NaN as missing too.
            self.kernel.call(array, &[fill, center, scale], &[true])
        } else {
            center_and_scale(&self.kernel, array, center, scale)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{Array, AsArray, Float32Array, Float64Array, Int64Array};
    use mlpipe_plugin_api::arrow::datatypes::{DataType, Float32Type, Float64Type};
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, fit_in_parts, transform};

    #[test]
    fn fits_across_instances_like_scikit_learn() {
        // x = 1..=10 with a null and a NaN; y constant; z integers.
        let x: Vec<Option<f64>> = (1..=10)
            .map(|i| match i {
                4 => None,
                7 => Some(f64::NAN),
                _ => Some(i as f64),
            })
            .collect();
        let batch = batch_of(vec![
            ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
            ("y", Arc::new(Float32Array::from(vec![2.5f32; 10]))),
            (
                "z",
                Arc::new(Int64Array::from((0..10).collect::<Vec<i64>>())),
            ),
            (
                "s",
                Arc::new(mlpipe_plugin_api::arrow::array::StringArray::from(vec![
                    "a";
                    10
                ])),
            ),
        ]);
        let config = json!({"columns": ["*"]});
        let (params, mut t) = fit_in_parts("standardize", &config, &batch, 3);
        let values = [1.0, 2.0, 3.0, 5.0, 6.0, 8.0, 9.0, 10.0];
        let mean = values.iter().sum::<f64>() / 8.0;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 8.0;
        let x = &params["columns"][0];
        assert_eq!(x["column"], "x");
        assert_eq!(x["count"], 8);
        assert!((x["mean"].as_f64().unwrap() - mean).abs() < 1e-15);
        assert!((x["var"].as_f64().unwrap() - var).abs() < 1e-14);
        // The constant column gets scale 1.
        assert_eq!(params["columns"][1]["scale"], 1.0);
        assert_eq!(params["version"], 1);
        assert_eq!(params["rows"], 10);

        let out = transform(&mut *t, batch);
        let x = out.column(0).as_primitive::<Float64Type>();
        assert!((x.value(0) - (1.0 - mean) / var.sqrt()).abs() < 1e-15);
        assert!(x.is_null(3));
        assert!(x.value(6).is_nan());
        let y = out.column(1).as_primitive::<Float32Type>();
        assert_eq!(y.value(0), 0.0);
        assert_eq!(out.column(2).data_type(), &DataType::Float64);
        assert_eq!(out.column(3).data_type(), &DataType::Utf8, "strings pass");
    }

    #[test]
    fn with_mean_and_with_std_switch_the_steps_off() {
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![1.0, 3.0])) as ArrayRef,
        )]);
        let config = json!({"columns": ["x"], "with_mean": false});
        let (_, mut t) = fit_in_parts("standardize", &config, &batch, 1);
        let out = transform(&mut *t, batch.clone());
        assert_eq!(
            out.column(0).as_primitive::<Float64Type>().values(),
            &[1.0, 3.0]
        );
        let config = json!({"columns": ["x"], "with_std": false});
        let (_, mut t) = fit_in_parts("standardize", &config, &batch, 1);
        let out = transform(&mut *t, batch);
        assert_eq!(
            out.column(0).as_primitive::<Float64Type>().values(),
            &[-1.0, 1.0]
        );

        // Imputed without centering: the missing value becomes mean / scale, not 0.
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0)])) as ArrayRef,
        )]);
        let config = json!({"columns": ["x"], "with_mean": false, "impute": "mean"});
        let (_, mut t) = fit_in_parts("standardize", &config, &batch, 1);
        let out = transform(&mut *t, batch);
        let scale = (2.0_f64 / 3.0).sqrt();
        assert_eq!(
            out.column(0).as_primitive::<Float64Type>().values(),
            &[1.0 / scale, 2.0 / scale, 3.0 / scale]
        );
    }

    #[test]
    fn impute_mean_equals_fill_null_then_standardize() {
        let x: Vec<Option<f64>> = vec![
            Some(1.0),
            None,
            Some(4.0),
            Some(f64::NAN),
            Some(10.0),
            Some(2.0),
        ];
        let batch = batch_of(vec![("x", Arc::new(Float64Array::from(x)) as ArrayRef)]);
        let config = json!({"columns": ["x"], "impute": "mean"});
        let (params, mut t) = fit_in_parts("standardize", &config, &batch, 2);
        // Imputed column: 1, 4.25, 4, 4.25, 10, 2 (mean 4.25); population variance over 6.
        let imputed = [1.0, 4.25, 4.0, 4.25, 10.0, 2.0];
        let var = imputed.iter().map(|v| (v - 4.25f64).powi(2)).sum::<f64>() / 6.0;
        assert_eq!(params["columns"][0]["missing"], 2);
        assert!((params["columns"][0]["var"].as_f64().unwrap() - var).abs() < 1e-14);
        let out = transform(&mut *t, batch);
        let x = out.column(0).as_primitive::<Float64Type>();
        assert_eq!(x.null_count(), 0);
        assert!(!out.schema().field(0).is_nullable());
        for (got, v) in x.values().iter().zip(imputed) {
            assert!((got - (v - 4.25) / var.sqrt()).abs() < 1e-15, "{got}");
        }
        assert!(
            crate::testing::try_make(
                "standardize",
                &json!({"columns": ["x"], "impute": "median"})
            )
            .is_err()
        );
    }

    #[test]
    fn errors_name_the_column() {
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![None, None])) as ArrayRef,
        )]);
        let mut t = crate::testing::try_make("standardize", &json!({"columns": ["x"]})).unwrap();
        t.fit(&batch).unwrap();
        let err = t.finish_fit().unwrap_err();
        assert!(err.message().contains("column `x`"), "{err}");
        assert!(err.message().contains("no values"), "{err}");

        let mut fresh =
            crate::testing::try_make("standardize", &json!({"columns": ["x"]})).unwrap();
        let err = fresh.transform(batch).unwrap_err();
        assert!(err.message().contains("must be fitted"), "{err}");
    }
}
