//! `robust`: scikit-learn's `RobustScaler`. Fits each column's median and interquartile
//! range and maps `x` to `(x - median) / (q_high - q_low)`, with `quantile_range =
//! [25, 75]` by default and the quantiles of numpy's `linear` method (`nanpercentile`).
//!
//! - A range below 10·ε gets scale 1. `with_centering` / `with_scaling` switch the steps.
//! - Quantiles are exact while a column has at most `exact_limit` values, and within the
//!   reported `rank_error` of the requested rank beyond (see `stats::quantiles`).
//! - Nulls and NaN are ignored by the fit and stay null / NaN.
//! - float32 stays float32 (computed in float32); integers and float64 become float64.
//! - Applied by the `fill_standardize` kernel (see [`crate::kernels`]).
//! - Fitted parameters per column: `center`, `scale`, `q_low`, `q_high`, `count`, `exact`,
//!   `rank_error`. (scikit-learn's `unit_variance` is not supported.)

use mlpipe_plugin_api::arrow::array::ArrayRef;
use mlpipe_plugin_api::arrow::datatypes::Field;
use mlpipe_plugin_api::{ComponentKind, Config, ConfigKey, ConfigType, Error, Result};
use serde::{Deserialize, Serialize};

use crate::columns::{self, Accepts, Selection};
use crate::columnwise::{ColumnOp, Columnwise, not_fitted};
use crate::fitting::finite;
use crate::kernels::{NumericKernel, center_and_scale};
use crate::numeric::{NUMERIC, float_type};
use crate::stats::quantiles::{self, Bounds, Method, Quantiles};

const NAME: &str = "robust";

/// The config keys of `robust`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    let mut keys = vec![
        columns::key("numeric columns to scale (names or glob patterns)"),
        ConfigKey::new("with_centering", ConfigType::Boolean, "subtract the median").default(true),
        ConfigKey::new(
            "with_scaling",
            ConfigType::Boolean,
            "divide by the quantile range",
        )
        .default(true),
        ConfigKey::new(
            "quantile_range",
            ConfigType::FloatList,
            "[low, high] percentiles whose difference is the scale",
        )
        .default(vec![25.0, 75.0]),
    ];
    keys.extend(quantiles::keys());
    keys
}

/// Builds the transform from its validated config.
pub(crate) fn from_config(config: &Config) -> Result<Columnwise<Robust>> {
    let range: Vec<f64> = config.require("quantile_range")?;
    let (low, high) = match range[..] {
        [low, high] if 0.0 <= low && low < high && high <= 100.0 => (low, high),
        _ => {
            return Err(Error::config(format!(
                "key `quantile_range` of transform `{NAME}` must be two percentiles [low, high] with 0 <= low < high <= 100, not {range:?}"
            )));
        }
    };
    let op = Robust {
        with_centering: config.require("with_centering")?,
        with_scaling: config.require("with_scaling")?,
        low: low / 100.0,
        high: high / 100.0,
        bounds: Bounds::from_config(config, NAME)?,
        kernel: NumericKernel::from_config(config, "fill_standardize")?,
    };
    Ok(Columnwise::new(
        op,
        Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
    ))
}

/// The operation on one column.
pub(crate) struct Robust {
    with_centering: bool,
    with_scaling: bool,
    /// The quantile range, as fractions.
    low: f64,
    high: f64,
    bounds: Bounds,
    kernel: NumericKernel,
}

/// One column's fitted parameters (scikit-learn's `center_`, `scale_`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Scaling {
    center: f64,
    scale: f64,
    q_low: f64,
    q_high: f64,
    count: u64,
    exact: bool,
    rank_error: f64,
}

impl ColumnOp for Robust {
    const NAME: &'static str = NAME;
    type Stats = Quantiles;
    type Params = Scaling;
    /// `(center, scale)`.
    type Prepared = (f64, f64);

    fn accepts(&self) -> Accepts {
        NUMERIC
    }

    fn output_field(&self, input: &Field) -> Result<Field> {
        Ok(input.clone().with_data_type(float_type(input.data_type())))
    }

    fn needs_fit(&self) -> bool {
        true
    }

    fn new_stats(&self, _: &Field) -> Result<Quantiles> {
        Ok(Quantiles::new(self.bounds))
    }

    fn finish(&self, column: &str, stats: Quantiles) -> Result<Scaling> {
        if stats.count() == 0 {
            return Err(Error::bad_data(
                "the column has no values (only nulls or NaN) in the fitted data, so it has no median; drop it or fill it first",
            ));
        }
        let q = stats.quantiles(&[0.5, self.low, self.high], Method::Linear);
        let center = finite(NAME, column, "median", q[0])?;
        let (q_low, q_high) = (
            finite(NAME, column, "low quantile", q[1])?,
            finite(NAME, column, "high quantile", q[2])?,
        );
        let range = q_high - q_low;
        Ok(Scaling {
            center,
            scale: if range < 10.0 * f64::EPSILON {
                1.0
            } else {
                range
            },
            q_low,
            q_high,
            count: stats.count(),
            exact: stats.is_exact(),
            rank_error: stats.rank_error(),
        })
    }

    fn prepare(&self, params: Option<&Scaling>, _: &Field) -> Result<(f64, f64)> {
        let params = params.ok_or_else(|| not_fitted(NAME))?;
        let center = if self.with_centering {
            params.center
        } else {
            0.0
        };
        let scale = if self.with_scaling { params.scale } else { 1.0 };
        Ok((center, scale))
    }

    fn apply(&self, &(center, scale): &(f64, f64), array: &ArrayRef) -> Result<ArrayRef> {
        center_and_scale(&self.kernel, array, center, scale)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{Array, AsArray, Float64Array};
    use mlpipe_plugin_api::arrow::datatypes::Float64Type;
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, fit_in_parts};

    #[test]
    fn scales_by_the_interquartile_range_like_scikit_learn() {
        // RobustScaler().fit([[1], [2], [3], [4], [10], [nan]]): center_ 3, scale_ 2.
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![
                Some(10.0),
                Some(1.0),
                None,
                Some(3.0),
                Some(f64::NAN),
                Some(2.0),
                Some(4.0),
            ])) as ArrayRef,
        )]);
        let (params, mut t) = fit_in_parts(NAME, &json!({"columns": ["x"]}), &batch, 3);
        let x = &params["columns"][0];
        assert_eq!(
            (x["center"].as_f64(), x["scale"].as_f64()),
            (Some(3.0), Some(2.0))
        );
        assert_eq!(x["exact"], true);
        let out = crate::testing::transform(&mut *t, batch);
        let x = out.column(0).as_primitive::<Float64Type>();
        assert_eq!(x.value(0), 3.5);
        assert!(x.is_null(2) && x.value(4).is_nan());
    }

    #[test]
    fn beyond_the_exact_limit_it_reports_its_rank_error() {
        let values: Vec<f64> = (0..100_000)
            .map(|i| ((i * 7919) % 100_000) as f64)
            .collect();
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(values)) as ArrayRef,
        )]);
        let config = json!({"columns": ["x"], "exact_limit": 1000, "sketch_k": 512});
        let (params, _) = fit_in_parts(NAME, &config, &batch, 2);
        let x = &params["columns"][0];
        assert_eq!(x["exact"], false);
        let error = x["rank_error"].as_f64().unwrap();
        assert!(error > 0.0 && error < 0.02, "{error}");
        let center = x["center"].as_f64().unwrap();
        assert!(
            (center - 49_999.5).abs() <= error * 100_000.0 + 1.0,
            "{center}"
        );
    }

    #[test]
    fn bad_ranges_are_rejected() {
        for range in [json!([75, 25]), json!([0, 101]), json!([50])] {
            let config = json!({"columns": ["x"], "quantile_range": range});
            assert!(crate::testing::try_make(NAME, &config).is_err());
        }
    }
}
