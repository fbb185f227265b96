//! `to_tensor`: packs numeric columns (and fixed-size-list columns, e.g. embeddings) into
//! one `FixedSizeList<float32>` column, row by row in the order of `columns`, tagged with
//! Arrow's canonical `arrow.fixed_shape_tensor` extension type (shape `[width]`): the
//! features matrix a trainer reads without copying.
//!
//! - Values are converted to float32 (`dtype = "float64"` keeps float64).
//! - A null value is an error naming the column and row, unless `null_value` is given
//!   (then it takes that value). NaN stays NaN.
//! - The packed columns are removed (`keep_inputs = true` keeps them); the tensor column,
//!   named `output` (default `features`), is appended last. It is never null. Its item
//!   field is declared nullable (it holds no nulls), as pyarrow declares it: pyarrow then
//!   reads the column back from Parquet as a `FixedShapeTensorType` (with a non-nullable
//!   item it falls back to a plain fixed-size list).

use std::collections::HashMap;
use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, FixedSizeListArray, PrimitiveArray,
    RecordBatchOptions,
};
use mlpipe_plugin_api::arrow::compute::cast;
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema};
use mlpipe_plugin_api::{
    ColumnUsage, ComponentKind, Config, ConfigKey, ConfigType, Error, RecordBatch, Result,
    SchemaRef, Transform,
};

use crate::columns::{self, Accepts, PerSchema, Selection};
use crate::numeric::{for_each_chunk, is_numeric};

const NAME: &str = "to_tensor";

/// Numeric columns and fixed-size lists of numbers.
const PACKABLE: Accepts = Accepts {
    test: |ty| width(ty).is_some(),
    what: "numeric or fixed-size-list-of-numbers",
};

/// How many tensor values a column of type `ty` gives per row.
fn width(ty: &DataType) -> Option<usize> {
    match ty {
        DataType::FixedSizeList(item, n) if is_numeric(item.data_type()) => {
            usize::try_from(*n).ok()
        }
        ty if is_numeric(ty) => Some(1),
        _ => None,
    }
}

/// The config keys of `to_tensor`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        columns::key(
            "numeric or fixed-size-list columns to pack, in this order (names or glob patterns)",
        ),
        ConfigKey::new("output", ConfigType::String, "the tensor column's name")
            .default("features"),
        ConfigKey::new("dtype", ConfigType::String, "`float32` or `float64`").default("float32"),
        ConfigKey::new(
            "null_value",
            ConfigType::Float,
            "the value of nulls; when absent a null is an error",
        ),
        ConfigKey::new(
            "keep_inputs",
            ConfigType::Boolean,
            "keep the packed columns",
        )
        .default(false),
    ]
}

/// Packs columns into a tensor column.
pub(crate) struct ToTensor {
    selection: Selection,
    output: String,
    double: bool,
    null_value: Option<f64>,
    keep_inputs: bool,
    plan: PerSchema<Plan>,
}

struct Plan {
    schema: SchemaRef,
    /// The packed columns with their widths, in tensor order.
    packed: Vec<(usize, usize)>,
    width: usize,
    /// The input columns that stay.
    kept: Vec<usize>,
}

impl ToTensor {
    /// Builds the transform from its validated config.
    pub(crate) fn from_config(config: &Config) -> Result<ToTensor> {
        let dtype: String = config.require("dtype")?;
        let double = match dtype.as_str() {
            "float32" => false,
            "float64" => true,
            other => {
                return Err(Error::config(format!(
                    "key `dtype` of transform `{NAME}` must be `float32` or `float64`, not `{other}`"
                )));
            }
        };
        Ok(ToTensor {
            selection: Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
            output: config.require("output")?,
            double,
            null_value: config.get("null_value")?,
            keep_inputs: config.require("keep_inputs")?,
            plan: PerSchema::default(),
        })
    }

    fn value_type(&self) -> DataType {
        if self.double {
            DataType::Float64
        } else {
            DataType::Float32
        }
    }

    fn plan_for(&self, input: &SchemaRef) -> Result<Plan> {
        let selected = self.selection.resolve(input, PACKABLE)?;
        let packed: Vec<(usize, usize)> = selected
            .iter()
            .map(|&i| (i, width(input.field(i).data_type()).unwrap_or(0)))
            .collect();
        let width: usize = packed.iter().map(|(_, w)| w).sum();
        let kept: Vec<usize> = (0..input.fields().len())
            .filter(|i| self.keep_inputs || !selected.contains(i))
            .collect();
        let mut fields: Vec<Field> = kept.iter().map(|&i| input.field(i).clone()).collect();
        if fields.iter().any(|f| f.name() == &self.output) {
            return Err(Error::config(format!(
                "transform `{NAME}`: the output already has a column `{}`; set `output` to another name",
                self.output
            )));
        }
        let item = Arc::new(Field::new("item", self.value_type(), true));
        fields.push(
            Field::new(
                &self.output,
                DataType::FixedSizeList(
                    item,
                    i32::try_from(width).map_err(|_| {
                        Error::config(format!(
                            "transform `{NAME}`: a tensor of {width} values is too wide"
                        ))
                    })?,
                ),
                false,
            )
            .with_metadata(tensor_metadata(width)),
        );
        Ok(Plan {
            schema: Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())),
            packed,
            width,
            kept,
        })
    }

    /// Writes one column's values into the row-major tensor buffer at `offset`.
    fn scatter<T: ArrowPrimitiveType>(
        &self,
        column: &ArrayRef,
        offset: usize,
        width: usize,
        out: &mut [T::Native],
        from_f64: impl Fn(f64) -> T::Native,
    ) -> Result<()> {
        // A list column's values, and its own (row-level) nulls.
        let (values, per_row, row_nulls) = match column.data_type() {
            DataType::FixedSizeList(_, n) => {
                let list = column.as_fixed_size_list();
                let n = *n as usize;
                (
                    list.values().slice(0, list.len() * n),
                    n,
                    list.logical_nulls(),
                )
            }
            _ => (column.clone(), 1, None),
        };
        if let (Some(row), None) = (
            row_nulls.as_ref().and_then(|n| n.iter().position(|v| !v)),
            self.null_value,
        ) {
            return Err(null_error(row));
        }
        let values = cast(&values, &T::DATA_TYPE)?;
        let values = values.as_primitive::<T>();
        if let (Some(row), None) = (first_null(values), self.null_value) {
            return Err(null_error(row / per_row));
        }
        let fill = from_f64(self.null_value.unwrap_or(0.0));
        let rows = column.len();
        let mut at = 0;
        for_each_chunk(values.values(), values.nulls(), |chunk, mask| {
            for (j, &x) in chunk.iter().enumerate() {
                let (row, item) = ((at + j) / per_row, (at + j) % per_row);
                if row < rows {
                    out[row * width + offset + item] = if (mask >> j) & 1 == 1 { x } else { fill };
                }
            }
            at += chunk.len();
        });
        // A null list row takes `null_value` whatever values lie under it.
        if let (Some(nulls), Some(fill)) = (row_nulls, self.null_value) {
            for row in (0..rows).filter(|&r| nulls.is_null(r)) {
                let at = row * width + offset;
                out[at..at + per_row].fill(from_f64(fill));
            }
        }
        Ok(())
    }

    fn pack<T: ArrowPrimitiveType>(
        &self,
        batch: &RecordBatch,
        plan: &Plan,
        from_f64: impl Fn(f64) -> T::Native + Copy,
    ) -> Result<ArrayRef> {
        let mut values = vec![from_f64(0.0); batch.num_rows() * plan.width];
        let mut offset = 0;
        for &(index, width) in &plan.packed {
            self.scatter::<T>(
                batch.column(index),
                offset,
                plan.width,
                &mut values,
                from_f64,
            )
            .map_err(|e| {
                e.context(format!(
                    "transform `{NAME}`, column `{}`",
                    batch.schema().field(index).name()
                ))
            })?;
            offset += width;
        }
        let item = Arc::new(Field::new("item", T::DATA_TYPE, true));
        let values = Arc::new(PrimitiveArray::<T>::new(values.into(), None));
        Ok(Arc::new(FixedSizeListArray::try_new(
            item,
            plan.width as i32,
            values,
            None,
        )?))
    }
}

/// The field metadata of the canonical `arrow.fixed_shape_tensor` extension type with
/// shape `[width]`. Written by hand: arrow-rs 60's `FixedShapeTensor` writes
/// `"dim_names":null`, which pyarrow (and arrow-rs itself) refuse to read back.
fn tensor_metadata(width: usize) -> HashMap<String, String> {
    HashMap::from([
        (
            "ARROW:extension:name".to_string(),
            "arrow.fixed_shape_tensor".to_string(),
        ),
        (
            "ARROW:extension:metadata".to_string(),
            format!("{{\"shape\":[{width}]}}"),
        ),
    ])
}

fn first_null(array: &dyn Array) -> Option<usize> {
    array
        .logical_nulls()
        .and_then(|nulls| nulls.iter().position(|valid| !valid))
}

fn null_error(row: usize) -> Error {
    Error::bad_data(format!(
        "a null at row {row}; fill nulls first (`fill_null`) or set `null_value`"
    ))
    .with_rows(row as u64..row as u64 + 1)
}

impl Transform for ToTensor {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan_for(input)?.schema)
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut plans = std::mem::take(&mut self.plan);
        let result = (|| {
            let plan = plans.get(&batch.schema(), |input| self.plan_for(input))?;
            let tensor = if self.double {
                self.pack::<Float64Type>(&batch, plan, |x| x)?
            } else {
                self.pack::<Float32Type>(&batch, plan, |x| x as f32)?
            };
            let mut columns: Vec<ArrayRef> =
                plan.kept.iter().map(|&i| batch.column(i).clone()).collect();
            columns.push(tensor);
            let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            Ok(RecordBatch::try_new_with_options(
                plan.schema.clone(),
                columns,
                &options,
            )?)
        })();
        self.plan = plans;
        result
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        let reads: Vec<String> = self
            .selection
            .resolve(input, PACKABLE)?
            .into_iter()
            .map(|i| input.field(i).name().clone())
            .collect();
        let mut writes = vec![self.output.clone()];
        if !self.keep_inputs {
            writes.extend(reads.iter().cloned());
        }
        Ok(Some(ColumnUsage { reads, writes }))
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{Float64Array, Int32Array};
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, make, transform};

    fn embeddings() -> ArrayRef {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let values = Arc::new(PrimitiveArray::<Float32Type>::from(vec![
            Some(0.5),
            Some(1.5),
            None,
            None,
            Some(2.5),
            Some(3.5),
        ]));
        let nulls = Some(vec![true, false, true].into());
        Arc::new(FixedSizeListArray::try_new(item, 2, values, nulls).unwrap())
    }

    fn batch() -> RecordBatch {
        batch_of(vec![
            ("id", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "b",
                Arc::new(Float64Array::from(vec![Some(10.0), Some(20.0), None])),
            ),
            ("emb", embeddings()),
            ("a", Arc::new(Int32Array::from(vec![7, 8, 9]))),
        ])
    }

    #[test]
    fn packs_rows_in_list_order_with_the_extension_type() {
        let config = json!({"columns": ["a", "b", "emb"], "null_value": -1.0});
        let mut t = make(NAME, &config);
        let out = transform(&mut *t, batch());
        assert_eq!(out.num_columns(), 2);
        let field = out.schema().field(1).clone();
        assert_eq!(field.name(), "features");
        assert_eq!(
            field.extension_type_name(),
            Some("arrow.fixed_shape_tensor")
        );
        assert_eq!(field.extension_type_metadata(), Some(r#"{"shape":[4]}"#));
        let tensor = out.column(1).as_fixed_size_list();
        assert_eq!(tensor.value_length(), 4);
        let values = tensor.values().as_primitive::<Float32Type>();
        assert_eq!(
            values.values(),
            &[
                7.0, 10.0, 0.5, 1.5, 8.0, 20.0, -1.0, -1.0, 9.0, -1.0, 2.5, 3.5
            ]
        );
    }

    #[test]
    fn nulls_are_errors_without_null_value() {
        let mut t = make(NAME, &json!({"columns": ["a", "b"]}));
        let err = t.transform(batch()).unwrap_err();
        assert!(err.message().contains("column `b`"), "{err}");
        assert_eq!(err.rows(), Some(2..3));
        let mut t = make(NAME, &json!({"columns": ["emb"]}));
        let err = t.transform(batch()).unwrap_err();
        assert_eq!(err.rows(), Some(1..2));
    }

    #[test]
    fn float64_and_kept_inputs() {
        let config =
            json!({"columns": ["a"], "dtype": "float64", "keep_inputs": true, "output": "x"});
        let mut t = make(NAME, &config);
        let out = transform(&mut *t, batch().slice(1, 2));
        assert_eq!(out.num_columns(), 5);
        let values = out.column(4).as_fixed_size_list().values().clone();
        assert_eq!(values.as_primitive::<Float64Type>().values(), &[8.0, 9.0]);
    }
}
