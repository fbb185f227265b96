//! `normalize`: scikit-learn's `Normalizer` over list columns (embeddings): scales each
//! row's vector to unit norm, `norm = "l2"` (default), `"l1"` or `"max"` (largest absolute
//! value). A row of norm 0 is left as it is (scikit-learn). A NaN makes its row's norm NaN.
//!
//! Takes `FixedSizeList`, `List` and `LargeList` columns of float32 or float64 and keeps
//! their type, offsets and nulls (computed in float64, rounded once). A null row stays
//! null; a null item stays null and counts as 0 in the norm. No fit.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, GenericListArray, OffsetSizeTrait,
};
use mlpipe_plugin_api::arrow::compute::cast;
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Float64Type};
use mlpipe_plugin_api::{ComponentKind, Config, ConfigKey, ConfigType, Error, Result};

use crate::columns::{self, Accepts, Selection};
use crate::columnwise::{ColumnOp, Columnwise};
use crate::fitting::NoStats;

const NAME: &str = "normalize";

/// List columns of float32 or float64 items.
const FLOAT_LISTS: Accepts = Accepts {
    test: |ty| match ty {
        DataType::FixedSizeList(item, _) | DataType::List(item) | DataType::LargeList(item) => {
            matches!(item.data_type(), DataType::Float32 | DataType::Float64)
        }
        _ => false,
    },
    what: "list or fixed-size-list of float32 or float64",
};

/// The config keys of `normalize`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        columns::key("list columns of floats to normalize row by row (names or glob patterns)"),
        ConfigKey::new("norm", ConfigType::String, "`l2`, `l1` or `max`").default("l2"),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Norm {
    L1,
    L2,
    Max,
}

/// Builds the transform from its validated config.
pub(crate) fn from_config(config: &Config) -> Result<Columnwise<Normalize>> {
    let norm: String = config.require("norm")?;
    let norm = match norm.as_str() {
        "l1" => Norm::L1,
        "l2" => Norm::L2,
        "max" => Norm::Max,
        other => {
            return Err(Error::config(format!(
                "key `norm` of transform `{NAME}` must be `l2`, `l1` or `max`, not `{other}`"
            )));
        }
    };
    Ok(Columnwise::new(
        Normalize { norm },
        Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
    ))
}

/// The operation on one column.
pub(crate) struct Normalize {
    norm: Norm,
}

impl Normalize {
    /// The list values scaled row by row, rows being `starts[i]..starts[i + 1]`; cast back
    /// to the item type of `values`.
    fn scale(&self, values: &ArrayRef, starts: impl Iterator<Item = usize>) -> Result<ArrayRef> {
        let wide = cast(values, &DataType::Float64)?;
        let wide = wide.as_primitive::<Float64Type>();
        let valid = |i: usize| wide.is_valid(i);
        let x = wide.values();
        let mut out = x.to_vec();
        let mut starts = starts.peekable();
        while let Some(start) = starts.next() {
            let Some(&end) = starts.peek() else { break };
            let row = start..end;
            let norm =
                match self.norm {
                    Norm::L1 => row.clone().filter(|&i| valid(i)).map(|i| x[i].abs()).sum(),
                    Norm::L2 => row
                        .clone()
                        .filter(|&i| valid(i))
                        .map(|i| x[i] * x[i])
                        .sum::<f64>()
                        .sqrt(),
                    Norm::Max => row.clone().filter(|&i| valid(i)).map(|i| x[i].abs()).fold(
                        0.0,
                        |m: f64, v| {
                            if v.is_nan() || m.is_nan() {
                                f64::NAN
                            } else {
                                m.max(v)
                            }
                        },
                    ),
                };
            if norm != 0.0 {
                for i in row {
                    out[i] = x[i] / norm;
                }
            }
        }
        let scaled =
            mlpipe_plugin_api::arrow::array::Float64Array::new(out.into(), wide.nulls().cloned());
        Ok(cast(&scaled, values.data_type())?)
    }

    fn list<O: OffsetSizeTrait>(&self, list: &GenericListArray<O>) -> Result<ArrayRef> {
        let offsets = list.offsets();
        let first = offsets[0].as_usize();
        let last = offsets[offsets.len() - 1].as_usize();
        // Rows index the whole values array; scale only the part the rows use.
        let values = list.values().slice(first, last - first);
        let scaled = self.scale(&values, offsets.iter().map(|o| o.as_usize() - first))?;
        let field = match list.data_type() {
            DataType::List(f) | DataType::LargeList(f) => f.clone(),
            _ => return Err(Error::internal("a list column without a list type")),
        };
        let rebased = mlpipe_plugin_api::arrow::buffer::OffsetBuffer::new(
            offsets
                .iter()
                .map(|o| *o - offsets[0])
                .collect::<Vec<O>>()
                .into(),
        );
        Ok(Arc::new(GenericListArray::<O>::try_new(
            field,
            rebased,
            scaled,
            list.nulls().cloned(),
        )?))
    }
}

impl ColumnOp for Normalize {
    const NAME: &'static str = NAME;
    type Stats = NoStats;
    type Params = ();
    type Prepared = ();

    fn accepts(&self) -> Accepts {
        FLOAT_LISTS
    }

    fn output_field(&self, input: &Field) -> Result<Field> {
        Ok(input.clone())
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
        match array.data_type() {
            DataType::FixedSizeList(field, n) => {
                let list = array.as_fixed_size_list();
                let width = *n as usize;
                let scaled = self.scale(list.values(), (0..=list.len()).map(|r| r * width))?;
                Ok(Arc::new(FixedSizeListArray::try_new(
                    field.clone(),
                    *n,
                    scaled,
                    list.nulls().cloned(),
                )?))
            }
            DataType::List(_) => self.list(array.as_list::<i32>()),
            DataType::LargeList(_) => self.list(array.as_list::<i64>()),
            other => Err(Error::internal(format!("normalize applied to {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{Float32Array, Float64Array, ListArray};
    use mlpipe_plugin_api::arrow::datatypes::Float32Type;
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, make, transform};

    fn fixed() -> ArrayRef {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let values = Arc::new(Float32Array::from(vec![3.0, 4.0, 0.0, 0.0, -1.0, 1.0]));
        Arc::new(FixedSizeListArray::try_new(item, 2, values, None).unwrap())
    }

    #[test]
    fn rows_get_unit_norm_and_zero_rows_stay() {
        let batch = batch_of(vec![("e", fixed())]);
        let mut t = make(NAME, &json!({"columns": ["e"]}));
        let out = transform(&mut *t, batch.clone());
        let values = out.column(0).as_fixed_size_list().values().clone();
        let v = values.as_primitive::<Float32Type>().values().to_vec();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert_eq!(v, [0.6, 0.8, 0.0, 0.0, -h, h]);
        let mut t = make(NAME, &json!({"columns": ["e"], "norm": "l1"}));
        let out = transform(&mut *t, batch.clone());
        let values = out.column(0).as_fixed_size_list().values().clone();
        assert_eq!(
            values.as_primitive::<Float32Type>().values()[..2],
            [3.0 / 7.0, 4.0 / 7.0]
        );
        let mut t = make(NAME, &json!({"columns": ["e"], "norm": "max"}));
        let out = transform(&mut *t, batch);
        let values = out.column(0).as_fixed_size_list().values().clone();
        assert_eq!(
            values.as_primitive::<Float32Type>().values()[..2],
            [0.75, 1.0]
        );
    }

    #[test]
    fn variable_lists_keep_their_offsets_and_nulls_even_when_sliced() {
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
            Some(vec![Some(1.0), Some(1.0)]),
            None,
            Some(vec![Some(2.0), None, Some(0.0)]),
            Some(vec![]),
        ]);
        let batch = batch_of(vec![("l", Arc::new(list) as ArrayRef)]).slice(1, 3);
        let mut t = make(NAME, &json!({"columns": ["l"]}));
        let out = transform(&mut *t, batch);
        let l = out.column(0).as_list::<i32>();
        assert!(l.is_null(0));
        let row = l.value(1);
        let row = row.as_primitive::<Float64Type>();
        assert_eq!(
            (row.value(0), row.is_null(1), row.value(2)),
            (1.0, true, 0.0)
        );
        assert_eq!(l.value(2).len(), 0);
        let floats = batch_of(vec![(
            "f",
            Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
        )]);
        let err = make(NAME, &json!({"columns": ["f"]}))
            .output_schema(&floats.schema())
            .unwrap_err();
        assert!(err.message().contains("list or fixed-size-list"), "{err}");
    }
}
