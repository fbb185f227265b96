//! Stateless element-wise maps of numeric columns, with numpy's semantics:
//!
//! - `clip`: bounds values to `[min, max]` (either may be omitted); NaN stays NaN.
//! - `log1p`: `ln(1 + x)`, accurate near 0; `-1` gives `-inf`, below `-1` NaN.
//!
//! Both keep nulls; float32 stays float32, integers and float64 become float64. Both are
//! computed by the kernel of the same name (see [`crate::kernels`]).

use mlpipe_plugin_api::arrow::array::ArrayRef;
use mlpipe_plugin_api::arrow::datatypes::Field;
use mlpipe_plugin_api::{ComponentKind, Config, ConfigKey, ConfigType, Error, Result};

use crate::columns::{self, Accepts, Selection};
use crate::columnwise::{ColumnOp, Columnwise};
use crate::fitting::NoStats;
use crate::kernels::NumericKernel;
use crate::numeric::{NUMERIC, float_type};

/// The config keys of `clip`.
pub(crate) fn clip_keys() -> Vec<ConfigKey> {
    vec![
        columns::key("numeric columns to clip (names or glob patterns)"),
        ConfigKey::new(
            "min",
            ConfigType::Float,
            "the lower bound; none when absent",
        ),
        ConfigKey::new(
            "max",
            ConfigType::Float,
            "the upper bound; none when absent",
        ),
    ]
}

/// The config keys of `log1p`.
pub(crate) fn log1p_keys() -> Vec<ConfigKey> {
    vec![columns::key(
        "numeric columns to map to ln(1 + x) (names or glob patterns)",
    )]
}

/// `clip` from its validated config.
pub(crate) fn clip(config: &Config) -> Result<Columnwise<Clip>> {
    let min: Option<f64> = config.get("min")?;
    let max: Option<f64> = config.get("max")?;
    if min.is_none() && max.is_none() {
        return Err(Error::config("transform `clip` needs `min`, `max` or both"));
    }
    let (min, max) = (
        min.unwrap_or(f64::NEG_INFINITY),
        max.unwrap_or(f64::INFINITY),
    );
    if min > max {
        return Err(Error::config(format!(
            "transform `clip`: `min` ({min}) must not exceed `max` ({max})"
        )));
    }
    Ok(Columnwise::new(
        Clip {
            min,
            max,
            kernel: NumericKernel::from_config(config, "clip")?,
        },
        Selection::from_config(config, ComponentKind::Transform, "clip", "columns")?,
    ))
}

/// `log1p` from its validated config.
pub(crate) fn log1p(config: &Config) -> Result<Columnwise<Log1p>> {
    Ok(Columnwise::new(
        Log1p {
            kernel: NumericKernel::from_config(config, "log1p")?,
        },
        Selection::from_config(config, ComponentKind::Transform, "log1p", "columns")?,
    ))
}

/// The `clip` component.
pub(crate) struct Clip {
    min: f64,
    max: f64,
    kernel: NumericKernel,
}

impl Clip {
    fn map(&self, array: &ArrayRef) -> Result<ArrayRef> {
        self.kernel.call(array, &[self.min, self.max], &[])
    }
}

/// The `log1p` component.
pub(crate) struct Log1p {
    kernel: NumericKernel,
}

impl Log1p {
    fn map(&self, array: &ArrayRef) -> Result<ArrayRef> {
        self.kernel.call(array, &[], &[])
    }
}

/// The [`ColumnOp`] of a stateless numeric map with a `map` method.
macro_rules! stateless_map {
    ($component:ty, $name:literal) => {
        impl ColumnOp for $component {
            const NAME: &'static str = $name;
            type Stats = NoStats;
            type Params = ();
            type Prepared = ();

            fn accepts(&self) -> Accepts {
                NUMERIC
            }

            fn output_field(&self, input: &Field) -> Result<Field> {
                Ok(input.clone().with_data_type(float_type(input.data_type())))
            }

            fn new_stats(&self, _: &Field) -> Result<NoStats> {
                Ok(NoStats)
            }

            fn finish(&self, _: &str, _: NoStats) -> Result<()> {
                Ok(())
            }

            fn prepare(&self, _: Option<&()>, _: &Field) -> Result<()> {
                Ok(())
            }

            fn apply(&self, _: &(), array: &ArrayRef) -> Result<ArrayRef> {
                self.map(array)
            }
        }
    };
}

stateless_map!(Clip, "clip");
stateless_map!(Log1p, "log1p");

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{Array, AsArray, Float32Array, Float64Array, Int8Array};
    use mlpipe_plugin_api::arrow::datatypes::{DataType, Float32Type, Float64Type};
    use serde_json::json;

    use crate::testing::{batch_of, make, transform};

    use super::*;

    #[test]
    fn clip_bounds_values_and_keeps_nan_and_nulls() {
        let batch = batch_of(vec![
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(-5.0),
                    Some(0.5),
                    Some(f64::NAN),
                    None,
                    Some(9.0),
                ])) as ArrayRef,
            ),
            ("i", Arc::new(Int8Array::from(vec![-100, 0, 1, 2, 100]))),
        ]);
        let mut t = make("clip", &json!({"columns": ["*"], "min": -1, "max": 1}));
        let out = transform(&mut *t, batch.clone());
        let x = out.column(0).as_primitive::<Float64Type>();
        assert_eq!((x.value(0), x.value(1), x.value(4)), (-1.0, 0.5, 1.0));
        assert!(x.value(2).is_nan() && x.is_null(3));
        assert_eq!(out.column(1).data_type(), &DataType::Float64);
        let mut t = make("clip", &json!({"columns": ["x"], "max": 0}));
        let out = transform(&mut *t, batch);
        assert_eq!(out.column(0).as_primitive::<Float64Type>().value(0), -5.0);
        assert!(crate::testing::try_make("clip", &json!({"columns": ["x"]})).is_err());
        assert!(
            crate::testing::try_make("clip", &json!({"columns": ["x"], "min": 2, "max": 1}))
                .is_err()
        );
    }

    #[test]
    fn log1p_follows_numpy() {
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float32Array::from(vec![0.0f32, 1e-10, -1.0, -2.0, 1.0])) as ArrayRef,
        )]);
        let mut t = make("log1p", &json!({"columns": ["x"]}));
        let out = transform(&mut *t, batch);
        let x = out.column(0).as_primitive::<Float32Type>();
        assert_eq!(x.value(0), 0.0);
        assert_eq!(x.value(1), 1e-10);
        assert_eq!(x.value(2), f32::NEG_INFINITY);
        assert!(x.value(3).is_nan());
        assert_eq!(x.value(4), std::f32::consts::LN_2);
    }
}
