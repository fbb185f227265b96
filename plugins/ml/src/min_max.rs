//! `min_max`: scikit-learn's `MinMaxScaler`. Fits each column's minimum and maximum and
//! maps `x` to `x * scale + min`, with `scale = (hi - lo) / (data_max - data_min)` and
//! `min = lo - data_min * scale` for `range = [lo, hi]`, the same two operations, in the
//! same order, as scikit-learn.
//!
//! - A constant column (range below 10·ε) gets `scale = hi - lo`, so it maps to `lo`.
//! - `clip = true` clips the output to `range` (for values outside the fitted range).
//! - Nulls and NaN are ignored by the fit and stay null / NaN.
//! - float32 stays float32 (computed in float32, as scikit-learn does for float32 data);
//!   integers and float64 become float64.
//! - Applied by the `min_max_scale` kernel, and `clip` with `clip = true` (see
//!   [`crate::kernels`]).
//! - Fitted parameters per column: `data_min`, `data_max`, `scale`, `min`, `count`.

use mlpipe_plugin_api::arrow::array::ArrayRef;
use mlpipe_plugin_api::arrow::datatypes::Field;
use mlpipe_plugin_api::{ComponentKind, Config, ConfigKey, ConfigType, Error, Result};
use serde::{Deserialize, Serialize};

use crate::columns::{self, Accepts, Selection};
use crate::columnwise::{ColumnOp, Columnwise, not_fitted};
use crate::fitting::finite;
use crate::kernels::NumericKernel;
use crate::numeric::{NUMERIC, float_type};
use crate::stats::extremes::Extremes;

const NAME: &str = "min_max";

/// The config keys of `min_max`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        columns::key("numeric columns to scale (names or glob patterns)"),
        ConfigKey::new(
            "range",
            ConfigType::FloatList,
            "[lo, hi]: the output range of the fitted data",
        )
        .default(vec![0.0, 1.0]),
        ConfigKey::new(
            "clip",
            ConfigType::Boolean,
            "clip outputs to `range` (values outside the fitted range)",
        )
        .default(false),
    ]
}

/// Builds the transform from its validated config.
pub(crate) fn from_config(config: &Config) -> Result<Columnwise<MinMax>> {
    let range: Vec<f64> = config.require("range")?;
    let (lo, hi) = match range[..] {
        [lo, hi] if lo < hi => (lo, hi),
        _ => {
            return Err(Error::config(format!(
                "key `range` of transform `{NAME}` must be two numbers [lo, hi] with lo < hi, not {range:?}"
            )));
        }
    };
    let clip = if config.require("clip")? {
        Some(NumericKernel::from_config(config, "clip")?)
    } else {
        None
    };
    let op = MinMax {
        lo,
        hi,
        scale: NumericKernel::from_config(config, "min_max_scale")?,
        clip,
    };
    Ok(Columnwise::new(
        op,
        Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
    ))
}

/// The operation on one column.
pub(crate) struct MinMax {
    lo: f64,
    hi: f64,
    scale: NumericKernel,
    /// Clips the output to `[lo, hi]` when set.
    clip: Option<NumericKernel>,
}

/// One column's fitted parameters (scikit-learn's `data_min_`, `data_max_`, `scale_`,
/// `min_`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Scaling {
    data_min: f64,
    data_max: f64,
    scale: f64,
    min: f64,
    count: u64,
}

impl ColumnOp for MinMax {
    const NAME: &'static str = NAME;
    type Stats = Extremes;
    type Params = Scaling;
    /// `[data_min, data_max, lo, hi]`: the kernel's scalar arguments.
    type Prepared = [f64; 4];

    fn accepts(&self) -> Accepts {
        NUMERIC
    }

    fn output_field(&self, input: &Field) -> Result<Field> {
        Ok(input.clone().with_data_type(float_type(input.data_type())))
    }

    fn needs_fit(&self) -> bool {
        true
    }

    fn new_stats(&self, _: &Field) -> Result<Extremes> {
        Ok(Extremes::default())
    }

    fn finish(&self, column: &str, stats: Extremes) -> Result<Scaling> {
        if stats.count == 0 {
            return Err(Error::bad_data(
                "the column has no values (only nulls or NaN) in the fitted data, so it has no range; drop it or fill it first",
            ));
        }
        let data_min = finite(NAME, column, "minimum", stats.min)?;
        let data_max = finite(NAME, column, "maximum", stats.max)?;
        let range = data_max - data_min;
        let range = if range < 10.0 * f64::EPSILON {
            1.0
        } else {
            range
        };
        let scale = (self.hi - self.lo) / range;
        Ok(Scaling {
            data_min,
            data_max,
            scale,
            min: self.lo - data_min * scale,
            count: stats.count,
        })
    }

    fn prepare(&self, params: Option<&Scaling>, _: &Field) -> Result<[f64; 4]> {
        let params = params.ok_or_else(|| not_fitted(NAME))?;
        Ok([params.data_min, params.data_max, self.lo, self.hi])
    }

    fn apply(&self, scalars: &[f64; 4], array: &ArrayRef) -> Result<ArrayRef> {
        let scaled = self.scale.call(array, scalars, &[])?;
        match &self.clip {
            Some(clip) => clip.call(&scaled, &[self.lo, self.hi], &[]),
            None => Ok(scaled),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{Array, AsArray, Float32Array, Float64Array, Int16Array};
    use mlpipe_plugin_api::arrow::datatypes::{DataType, Float32Type, Float64Type};
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, fit_in_parts, make, transform};

    #[test]
    fn scales_to_the_range_like_scikit_learn() {
        let batch = batch_of(vec![
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(-1.0),
                    None,
                    Some(f64::NAN),
                    Some(3.0),
                    Some(1.0),
                ])) as ArrayRef,
            ),
            ("c", Arc::new(Float32Array::from(vec![5.0f32; 5]))),
            ("i", Arc::new(Int16Array::from(vec![0, 10, 20, 30, 40]))),
        ]);
        let config = json!({"columns": ["*"], "range": [-1, 1]});
        let (params, mut t) = fit_in_parts(NAME, &config, &batch, 2);
        assert_eq!(params["columns"][0]["data_min"], -1.0);
        assert_eq!(params["columns"][0]["data_max"], 3.0);
        assert_eq!(params["columns"][0]["scale"], 0.5);
        assert_eq!(params["columns"][0]["min"], -0.5);
        let out = transform(&mut *t, batch);
        let x = out.column(0).as_primitive::<Float64Type>();
        assert_eq!((x.value(0), x.value(3), x.value(4)), (-1.0, 1.0, 0.0));
        assert!(x.is_null(1) && x.value(2).is_nan());
        // Constant column: maps to lo.
        assert_eq!(
            out.column(1).as_primitive::<Float32Type>().values(),
            &[-1.0f32; 5]
        );
        assert_eq!(out.column(2).data_type(), &DataType::Float64);
        assert_eq!(
            out.column(2).as_primitive::<Float64Type>().values(),
            &[-1.0, -0.5, 0.0, 0.5, 1.0]
        );
    }

    #[test]
    fn clip_bounds_values_outside_the_fitted_range() {
        let fit = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![0.0, 10.0])) as ArrayRef,
        )]);
        let later = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![-5.0, 20.0])) as ArrayRef,
        )]);
        let (params, mut t) = fit_in_parts(NAME, &json!({"columns": ["x"]}), &fit, 1);
        let out = transform(&mut *t, later.clone());
        assert_eq!(
            out.column(0).as_primitive::<Float64Type>().values(),
            &[-0.5, 2.0]
        );
        let mut t = make(NAME, &json!({"columns": ["x"], "clip": true}));
        t.load_fit(&params).unwrap();
        let out = transform(&mut *t, later);
        assert_eq!(
            out.column(0).as_primitive::<Float64Type>().values(),
            &[0.0, 1.0]
        );
    }

    #[test]
    fn bad_ranges_are_rejected() {
        for range in [json!([1, 0]), json!([0]), json!([0, 1, 2])] {
            let err = crate::testing::try_make(NAME, &json!({"columns": ["x"], "range": range}))
                .err()
                .unwrap();
            assert!(err.message().contains("lo < hi"), "{err}");
        }
    }
}
