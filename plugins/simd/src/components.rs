//! The kernels as plugin components: each checks its Arrow arguments (count, types,
//! lengths), runs the slice kernel for `float32` or `float64`, and returns an Arrow array.
//! [`KERNELS`] is the one table the plugin, its manifest and the README are made from.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, PrimitiveArray, StructArray, UInt64Array,
};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Fields};
use mlpipe_plugin_api::{Config, ConfigKey, ConfigType, Error, Kernel, Result};

use crate::elementwise::{self, Standardize};
use crate::isa::{ISA_NAMES, Isa};
use crate::reduce;
use crate::vector::Element;

/// What a kernel computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    FillStandardize,
    MinMaxScale,
    Clip,
    Log1p,
    Moments,
    MinMax,
    L2Norm,
    Dot,
}

/// A kernel's entry in the manifest.
#[derive(Debug)]
pub(crate) struct KernelInfo {
    pub op: Op,
    pub name: &'static str,
    pub description: &'static str,
    pub signature: &'static str,
    /// The argument names, in order.
    pub args: &'static [&'static str],
    /// How many of the arguments must be given (the rest have defaults).
    pub required: usize,
}

/// Every kernel of the plugin. `T` is `float32` or `float64`, the same for all arguments;
/// `T[1]` is an array of one non-null element (a scalar).
pub(crate) const KERNELS: [KernelInfo; 8] = [
    KernelInfo {
        op: Op::FillStandardize,
        name: "fill_standardize",
        description: "fills nulls, subtracts the mean and divides by the scale, in one pass",
        signature: "(x: T, fill: T[1], mean: T[1], scale: T[1], fill_nan: boolean[1] = false) -> T (no nulls), T = float32 | float64",
        args: &["x", "fill", "mean", "scale", "fill_nan"],
        required: 4,
    },
    KernelInfo {
        op: Op::MinMaxScale,
        name: "min_max_scale",
        description: "scikit-learn's MinMaxScaler transform: x * scale + offset from the data and target ranges",
        signature: "(x: T, data_min: T[1], data_max: T[1], range_min: T[1], range_max: T[1]) -> T (nulls kept), T = float32 | float64",
        args: &["x", "data_min", "data_max", "range_min", "range_max"],
        required: 5,
    },
    KernelInfo {
        op: Op::Clip,
        name: "clip",
        description: "min(max(x, lo), hi), NaN kept",
        signature: "(x: T, lo: T[1], hi: T[1]) -> T (nulls kept), T = float32 | float64",
        args: &["x", "lo", "hi"],
        required: 3,
    },
    KernelInfo {
        op: Op::Log1p,
        name: "log1p",
        description: "ln(1 + x), accurate near zero",
        signature: "(x: T) -> T (nulls kept), T = float32 | float64",
        args: &["x"],
        required: 1,
    },
    KernelInfo {
        op: Op::Moments,
        name: "moments",
        description: "count, sum, mean and M2 of the non-null, non-NaN values (mergeable; variance = m2 / count)",
        signature: "(x: T) -> struct<count: uint64, sum: float64, mean: float64, m2: float64>[1], T = float32 | float64",
        args: &["x"],
        required: 1,
    },
    KernelInfo {
        op: Op::MinMax,
        name: "min_max",
        description: "smallest and largest non-null, non-NaN value (null when there is none)",
        signature: "(x: T) -> struct<min: T, max: T>[1], T = float32 | float64",
        args: &["x"],
        required: 1,
    },
    KernelInfo {
        op: Op::L2Norm,
        name: "l2_norm",
        description: "sqrt(sum of x²) over the non-null values, accumulated in float64",
        signature: "(x: T) -> float64[1], T = float32 | float64",
        args: &["x"],
        required: 1,
    },
    KernelInfo {
        op: Op::Dot,
        name: "dot",
        description: "sum of x * y over the rows where both are non-null, accumulated in float64",
        signature: "(x: T, y: T) -> float64[1], T = float32 | float64",
        args: &["x", "y"],
        required: 2,
    },
];

/// The config keys of a kernel.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "isa",
            ConfigType::String,
            format!(
                "instruction set: auto (the widest this CPU has), {}",
                ISA_NAMES.join(", ")
            ),
        )
        .default("auto"),
    ]
}

/// A kernel instance: what it computes and on which instruction set.
#[derive(Debug)]
pub(crate) struct SimdKernel {
    info: &'static KernelInfo,
    isa: Isa,
}

impl SimdKernel {
    pub(crate) fn from_config(info: &'static KernelInfo, config: &Config) -> Result<SimdKernel> {
        let isa = Isa::from_name(&config.require::<String>("isa")?)
            .map_err(|e| e.context(format!("kernel `{}`", info.name)))?;
        Ok(SimdKernel { info, isa })
    }

    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::bad_data(format!("kernel `{}`: {message}", self.info.name))
    }

    /// Argument `i` as an array of `E`.
    fn column<'a, E: Element>(
        &self,
        args: &'a [ArrayRef],
        i: usize,
    ) -> Result<&'a PrimitiveArray<E::Arrow>> {
        args[i].as_primitive_opt::<E::Arrow>().ok_or_else(|| {
            self.error(format_args!(
                "argument {} (`{}`) is {}, expected {} like `x`",
                i + 1,
                self.info.args[i],
                args[i].data_type(),
                args[0].data_type()
            ))
        })
    }

    /// Argument `i` as one non-null `E`.
    fn scalar<E: Element>(&self, args: &[ArrayRef], i: usize) -> Result<E> {
        let array = self.column::<E>(args, i)?;
        if array.len() != 1 || array.null_count() != 0 {
            return Err(self.error(format_args!(
                "argument {} (`{}`) must be one non-null value, got {} values ({} null)",
                i + 1,
                self.info.args[i],
                array.len(),
                array.null_count()
            )));
        }
        Ok(array.value(0))
    }

    /// Optional argument `i` as one non-null boolean; `false` when it is not given.
    fn flag(&self, args: &[ArrayRef], i: usize) -> Result<bool> {
        let Some(arg) = args.get(i) else {
            return Ok(false);
        };
        match arg.as_boolean_opt() {
            Some(flag) if flag.len() == 1 && flag.null_count() == 0 => Ok(flag.value(0)),
            _ => Err(self.error(format_args!(
                "argument {} (`{}`) must be one non-null boolean, got {} values of type {}",
                i + 1,
                self.info.args[i],
                arg.len(),
                arg.data_type()
            ))),
        }
    }

    fn call_typed<E: Element>(&self, args: &[ArrayRef]) -> Result<ArrayRef> {
        let x = self.column::<E>(args, 0)?;
        let values = x.values().as_ref();
        let isa = self.isa;
        let map = |f: &dyn Fn(&mut [E])| -> ArrayRef {
            let mut out = vec![E::ZERO; values.len()];
            f(&mut out);
            Arc::new(PrimitiveArray::<E::Arrow>::new(
                out.into(),
                x.nulls().cloned(),
            ))
        };
        Ok(match self.info.op {
            Op::FillStandardize => {
                let params = Standardize {
                    fill: self.scalar(args, 1)?,
                    mean: self.scalar(args, 2)?,
                    scale: self.scalar(args, 3)?,
                    fill_nan: self.flag(args, 4)?,
                };
                let mut out = vec![E::ZERO; values.len()];
                elementwise::fill_standardize(isa, values, x.nulls(), params, &mut out);
                Arc::new(PrimitiveArray::<E::Arrow>::new(out.into(), None))
            }
            Op::MinMaxScale => {
                let (scale, offset) = elementwise::min_max_params(
                    self.scalar(args, 1)?,
                    self.scalar(args, 2)?,
                    self.scalar(args, 3)?,
                    self.scalar(args, 4)?,
                );
                map(&|out| elementwise::affine(isa, values, scale, offset, out))
            }
            Op::Clip => {
                let (lo, hi) = (self.scalar(args, 1)?, self.scalar(args, 2)?);
                map(&|out| elementwise::clip(isa, values, lo, hi, out))
            }
            Op::Log1p => map(&|out| elementwise::log1p(isa, values, out)),
            Op::Moments => {
                let m = reduce::moments(isa, values, x.nulls());
                let fields = Fields::from(vec![
                    Field::new("count", DataType::UInt64, false),
                    Field::new("sum", DataType::Float64, false),
                    Field::new("mean", DataType::Float64, false),
                    Field::new("m2", DataType::Float64, false),
                ]);
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(UInt64Array::from(vec![m.count])),
                    Arc::new(Float64Array::from(vec![m.sum])),
                    Arc::new(Float64Array::from(vec![m.mean])),
                    Arc::new(Float64Array::from(vec![m.m2])),
                ];
                Arc::new(StructArray::try_new(fields, columns, None)?)
            }
            Op::MinMax => {
                let found = reduce::min_max(isa, values, x.nulls());
                let fields = Fields::from(vec![
                    Field::new("min", x.data_type().clone(), true),
                    Field::new("max", x.data_type().clone(), true),
                ]);
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(PrimitiveArray::<E::Arrow>::from_iter([found.map(|f| f.0)])),
                    Arc::new(PrimitiveArray::<E::Arrow>::from_iter([found.map(|f| f.1)])),
                ];
                Arc::new(StructArray::try_new(fields, columns, None)?)
            }
            Op::L2Norm => Arc::new(Float64Array::from(vec![reduce::l2_norm(
                isa,
                values,
                x.nulls(),
            )])),
            Op::Dot => {
                let y = self.column::<E>(args, 1)?;
                if y.len() != x.len() {
                    return Err(self.error(format_args!(
                        "`x` has {} rows and `y` {}; they must be as long",
                        x.len(),
                        y.len()
                    )));
                }
                let dot = reduce::dot(isa, values, x.nulls(), y.values().as_ref(), y.nulls());
                Arc::new(Float64Array::from(vec![dot]))
            }
        })
    }
}

impl Kernel for SimdKernel {
    fn call(&self, args: &[ArrayRef]) -> Result<ArrayRef> {
        let (required, all) = (self.info.required, self.info.args.len());
        if args.len() < required || args.len() > all {
            let expected = if required == all {
                format!("{all}")
            } else {
                format!("{required} to {all}")
            };
            return Err(self.error(format_args!(
                "takes {expected} arguments ({}), got {}; signature {}",
                self.info.args.join(", "),
                args.len(),
                self.info.signature
            )));
        }
        match args[0].data_type() {
            DataType::Float32 => self.call_typed::<f32>(args),
            DataType::Float64 => self.call_typed::<f64>(args),
            other => Err(self.error(format_args!(
                "argument 1 (`x`) is {other}; the kernel takes float32 or float64 (cast first)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{BooleanArray, Float32Array, StringArray};
    use mlpipe_plugin_api::arrow::datatypes::{Float64Type, UInt64Type};
    use mlpipe_plugin_api::{ErrorKind, Kernel};
    use serde_json::json;

    use super::*;

    fn kernel(name: &str, isa: &str) -> Box<dyn Kernel> {
        crate::plugin()
            .create_kernel(name, &json!({ "isa": isa }))
            .unwrap()
    }

    fn f64s(values: &[Option<f64>]) -> ArrayRef {
        Arc::new(Float64Array::from(values.to_vec()))
    }

    fn one(value: f64) -> ArrayRef {
        Arc::new(Float64Array::from(vec![value]))
    }

    #[test]
    fn the_manifest_lists_every_kernel_with_its_signature() {
        let manifest = crate::plugin().manifest();
        let names: Vec<&str> = manifest
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "fill_standardize",
                "min_max_scale",
                "clip",
                "log1p",
                "moments",
                "min_max",
                "l2_norm",
                "dot"
            ]
        );
        for component in &manifest.components {
            let signature = component.signature.as_deref().unwrap_or_default();
            assert!(signature.contains("T = float32 | float64"), "{signature}");
        }
    }

    #[test]
    fn kernels_compute_through_arrow_arrays_on_every_isa() {
        for isa in Isa::available() {
            let x = f64s(&[Some(1.0), None, Some(4.0), Some(f64::NAN)]);
            let out = kernel("fill_standardize", isa.name())
                .call(&[x.clone(), one(2.0), one(1.0), one(2.0)])
                .unwrap();
            let out = out.as_primitive::<Float64Type>();
            assert_eq!(out.null_count(), 0);
            assert_eq!(out.values()[..3], [0.0, 0.5, 1.5]);
            assert!(out.value(3).is_nan(), "NaN is kept unless fill_nan");

            let fill_nan: ArrayRef = Arc::new(BooleanArray::from(vec![true]));
            let filled = kernel("fill_standardize", isa.name())
                .call(&[x.clone(), one(2.0), one(1.0), one(2.0), fill_nan])
                .unwrap();
            assert_eq!(filled.as_primitive::<Float64Type>().value(3), 0.5);

            let clipped = kernel("clip", isa.name())
                .call(&[x.clone(), one(0.0), one(2.0)])
                .unwrap();
            assert_eq!(clipped.null_count(), 1, "nulls are kept");

            let scaled = kernel("min_max_scale", isa.name())
                .call(&[x.clone(), one(1.0), one(4.0), one(0.0), one(1.0)])
                .unwrap();
            let scaled = scaled.as_primitive::<Float64Type>();
            assert_eq!((scaled.value(0), scaled.value(2)), (0.0, 1.0));

            let moments = kernel("moments", isa.name())
                .call(std::slice::from_ref(&x))
                .unwrap();
            let moments = moments.as_struct();
            let column = |name: &str| moments.column_by_name(name).unwrap().clone();
            assert_eq!(column("count").as_primitive::<UInt64Type>().value(0), 2);
            assert_eq!(column("mean").as_primitive::<Float64Type>().value(0), 2.5);
            assert_eq!(column("m2").as_primitive::<Float64Type>().value(0), 4.5);

            let range = kernel("min_max", isa.name())
                .call(&[f64s(&[None, None])])
                .unwrap();
            assert_eq!(
                range.as_struct().column(0).null_count(),
                1,
                "no value: null min"
            );

            let y: ArrayRef = Arc::new(Float32Array::from(vec![3.0_f32, 4.0]));
            let norm = kernel("l2_norm", isa.name())
                .call(std::slice::from_ref(&y))
                .unwrap();
            assert_eq!(norm.as_primitive::<Float64Type>().value(0), 5.0);
            let dot = kernel("dot", isa.name()).call(&[y.clone(), y]).unwrap();
            assert_eq!(dot.as_primitive::<Float64Type>().value(0), 25.0);
        }
    }

    #[test]
    fn bad_arguments_are_errors_naming_the_kernel_and_argument() {
        let x = f64s(&[Some(1.0), Some(2.0)]);
        let cases: [(&str, Vec<ArrayRef>, &str); 7] = [
            (
                "fill_standardize",
                vec![x.clone(), one(0.0), one(0.0)],
                "takes 4 to 5 arguments (x, fill, mean, scale, fill_nan), got 3",
            ),
            (
                "fill_standardize",
                vec![x.clone(), one(0.0), one(0.0), one(1.0), one(1.0)],
                "argument 5 (`fill_nan`) must be one non-null boolean, got 1 values of type Float64",
            ),
            (
                "clip",
                vec![x.clone(), one(0.0)],
                "takes 3 arguments (x, lo, hi), got 2",
            ),
            (
                "clip",
                vec![x.clone(), one(0.0), x.clone()],
                "argument 3 (`hi`) must be one non-null value, got 2 values",
            ),
            (
                "dot",
                vec![x.clone(), Arc::new(Float32Array::from(vec![1.0_f32, 2.0]))],
                "argument 2 (`y`) is Float32, expected Float64 like `x`",
            ),
            ("dot", vec![x.clone(), one(1.0)], "`x` has 2 rows and `y` 1"),
            (
                "log1p",
                vec![Arc::new(StringArray::from(vec!["a"]))],
                "argument 1 (`x`) is Utf8",
            ),
        ];
        for (name, args, message) in cases {
            let error = kernel(name, "auto").call(&args).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::BadData);
            assert!(
                error.message().starts_with(&format!("kernel `{name}`: ")),
                "{error}"
            );
            assert!(error.message().contains(message), "{error}");
        }
        let error = crate::plugin()
            .create_kernel("log1p", &json!({ "isa": "sse9" }))
            .err()
            .unwrap();
        assert_eq!(error.kind(), ErrorKind::InvalidConfig);
        assert!(
            error.message().contains("kernel `log1p`: key `isa`"),
            "{error}"
        );
    }
}
