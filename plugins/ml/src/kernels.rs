//! The numeric kernels the element-wise transforms call (`fill_standardize`,
//! `min_max_scale`, `clip`, `log1p`): looked up by name when a transform is created, in the
//! kernels the pipeline resolved — the standard `simd` plugin's unless `[pipeline.kernels]`
//! picks another plugin's.
//!
//! Kernels take `float32` or `float64` columns: a column of another numeric type is cast to
//! `float64` first (the output type rule of [`crate::numeric`]), and scalar arguments travel
//! as one-element arrays of the column's type. What a kernel returns is checked before use,
//! since it may come from any plugin.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, make_array,
};
use mlpipe_plugin_api::arrow::buffer::NullBuffer;
use mlpipe_plugin_api::arrow::compute::cast;
use mlpipe_plugin_api::arrow::datatypes::DataType;
use mlpipe_plugin_api::{Config, Error, Kernel, Result};

use crate::numeric::float_type;

/// A kernel the transform found in its config, with the name it was asked for.
pub(crate) struct NumericKernel {
    name: &'static str,
    kernel: Arc<dyn Kernel>,
}

impl NumericKernel {
    /// The kernel the pipeline registered under `name`.
    pub(crate) fn from_config(config: &Config, name: &'static str) -> Result<NumericKernel> {
        Ok(NumericKernel {
            name,
            kernel: config.kernel(name)?,
        })
    }

    /// Calls the kernel on column `x` (cast to its float type), then the `scalars` (in the
    /// column's float type), then the boolean `flags`; returns a column of `x`'s float type
    /// and length.
    pub(crate) fn call(&self, x: &ArrayRef, scalars: &[f64], flags: &[bool]) -> Result<ArrayRef> {
        let ty = float_type(x.data_type());
        let x = if x.data_type() == &ty {
            x.clone()
        } else {
            cast(x, &ty)?
        };
        let mut args = Vec::with_capacity(1 + scalars.len() + flags.len());
        args.push(x.clone());
        for &value in scalars {
            args.push(match ty {
                DataType::Float32 => Arc::new(Float32Array::from(vec![value as f32])) as ArrayRef,
                _ => Arc::new(Float64Array::from(vec![value])),
            });
        }
        for &flag in flags {
            args.push(Arc::new(BooleanArray::from(vec![flag])));
        }
        let out = self.kernel.call(&args).map_err(|e| {
            // The standard kernels name themselves; another plugin's may not.
            if e.message().contains(&format!("kernel `{}`", self.name)) {
                e
            } else {
                e.context(format!("kernel `{}`", self.name))
            }
        })?;
        if out.data_type() != &ty || out.len() != x.len() {
            return Err(Error::internal(format!(
                "kernel `{}` returned {} values of type {} for {} values of type {ty}; \
                 the kernel chosen in [pipeline.kernels] does not keep the standard signature",
                self.name,
                out.len(),
                out.data_type(),
                x.len()
            )));
        }
        Ok(out)
    }
}

/// `(x - center) / scale` by the `fill_standardize` kernel, nulls kept and NaN staying NaN
/// (scalers without imputation: `standardize`, `robust`).
pub(crate) fn center_and_scale(
    kernel: &NumericKernel,
    array: &ArrayRef,
    center: f64,
    scale: f64,
) -> Result<ArrayRef> {
    // The fill is not used: the input's nulls are put back over the filled slots.
    let out = kernel.call(array, &[0.0, center, scale], &[false])?;
    with_nulls(out, array.nulls())
}

/// `values` with the validity of `nulls` (the values under nulls are whatever they are).
fn with_nulls(values: ArrayRef, nulls: Option<&NullBuffer>) -> Result<ArrayRef> {
    if nulls.is_none() && values.null_count() == 0 {
        return Ok(values);
    }
    let data = values
        .into_data()
        .into_builder()
        .nulls(nulls.cloned())
        .build()?;
    Ok(make_array(data))
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::Kernels;
    use mlpipe_plugin_api::arrow::array::{AsArray, Int32Array};
    use mlpipe_plugin_api::arrow::datatypes::{Float32Type, Float64Type};
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, make, transform};

    #[test]
    fn integers_are_cast_and_scalars_follow_the_column_type() {
        let mut clip = make("clip", &json!({"columns": ["*"], "min": -1.0, "max": 1.0}));
        let batch = batch_of(vec![
            (
                "i",
                Arc::new(Int32Array::from(vec![Some(-5), None, Some(5)])) as ArrayRef,
            ),
            ("f", Arc::new(Float32Array::from(vec![0.25_f32, 4.0, -0.5]))),
        ]);
        let out = transform(&mut *clip, batch);
        let i = out.column(0).as_primitive::<Float64Type>();
        assert_eq!((i.value(0), i.value(2)), (-1.0, 1.0));
        assert!(i.is_null(1));
        let f = out.column(1).as_primitive::<Float32Type>();
        assert_eq!(f.values(), &[0.25, 1.0, -0.5]);
    }

    #[test]
    fn a_missing_kernel_says_where_kernels_come_from() {
        let error = crate::plugin()
            .create_transform("log1p", &json!({"columns": ["*"]}))
            .err()
            .unwrap();
        assert!(
            error.message().contains("no kernel named `log1p`"),
            "{error}"
        );
        assert!(error.message().contains("`simd` plugin"), "{error}");
    }

    /// A kernel that breaks the contract: it returns one value whatever it is given.
    struct OneValue;

    impl Kernel for OneValue {
        fn call(&self, _: &[ArrayRef]) -> Result<ArrayRef> {
            Ok(Arc::new(Float64Array::from(vec![0.0])))
        }
    }

    #[test]
    fn a_kernel_that_breaks_the_signature_is_an_error_naming_it() {
        let mut kernels = Kernels::default();
        kernels.insert("log1p", Arc::new(OneValue));
        let mut log1p = crate::plugin()
            .create_transform_with_kernels("log1p", &json!({"columns": ["*"]}), kernels)
            .unwrap();
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef,
        )]);
        let error = log1p.transform(batch).unwrap_err();
        assert!(
            error
                .message()
                .contains("kernel `log1p` returned 1 values of type Float64 for 2 values"),
            "{error}"
        );
    }

    #[test]
    fn validity_is_replaced() {
        let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0]));
        let nulls = NullBuffer::from(vec![true, false, true]);
        let out = with_nulls(values.clone(), Some(&nulls)).unwrap();
        assert_eq!(out.null_count(), 1);
        assert!(out.is_null(1));
        assert_eq!(with_nulls(values, None).unwrap().null_count(), 0);
    }
}
