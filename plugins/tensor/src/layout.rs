//! Where each feature lands in a row of the float32 features matrix, and the label's
//! dtype: resolved once from the input schema, then used to copy every batch into a
//! shard's row-major buffers.

use mlpipe_plugin_api::arrow::array::{Array, ArrayRef, AsArray};
use mlpipe_plugin_api::arrow::buffer::NullBuffer;
use mlpipe_plugin_api::arrow::compute::cast;
use mlpipe_plugin_api::arrow::datatypes::{DataType, Float32Type, Schema};
use mlpipe_plugin_api::{Error, RecordBatch, Result};
use safetensors::Dtype;

/// One feature column and its place in a row.
#[derive(Debug, Clone)]
pub(crate) struct FeatureColumn {
    /// The column's name.
    pub name: String,
    index: usize,
    /// How many features it gives: 1, or the list size of a fixed-size list.
    pub width: usize,
    /// Its first position in a row.
    pub offset: usize,
    /// Whether it is a fixed-size list (its features are named `name[i]`).
    is_list: bool,
}

/// The label column and how its values are written.
#[derive(Debug, Clone)]
pub(crate) struct Label {
    /// The column's name.
    pub name: String,
    index: usize,
    /// The NumPy name of its dtype (`int8`, `float64`, `bool`, ...).
    pub numpy_name: &'static str,
    /// The `.npy` descr (`|i1`, `<f8`, `|b1`, ...).
    pub descr: &'static str,
    /// The safetensors dtype.
    pub dtype: Dtype,
}

/// The features and label of the sink's input.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub features: Vec<FeatureColumn>,
    /// Features per row.
    pub width: usize,
    pub label: Option<Label>,
}

fn column_index(schema: &Schema, name: &str, key: &str) -> Result<usize> {
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::config(format!(
            "key `{key}`: the input has no column `{name}`; its columns are {}",
            names.join(", ")
        ))
    })
}

impl Layout {
    /// Resolves the feature and label columns against `schema`.
    pub(crate) fn new(schema: &Schema, features: &[String], label: Option<&str>) -> Result<Layout> {
        let mut columns: Vec<FeatureColumn> = Vec::with_capacity(features.len());
        let mut width = 0;
        for name in features {
            if columns.iter().any(|c| &c.name == name) {
                return Err(Error::config(format!(
                    "key `features` names `{name}` twice"
                )));
            }
            let index = column_index(schema, name, "features")?;
            let (columns_width, is_list) = match schema.field(index).data_type() {
                DataType::FixedSizeList(item, size) if item.data_type().is_numeric() => {
                    match usize::try_from(*size) {
                        Ok(size) if size > 0 => (size, true),
                        _ => {
                            return Err(Error::config(format!(
                                "key `features`: column `{name}` is a list of {size} values; a \
                                 feature needs at least one (drop the column)"
                            )));
                        }
                    }
                }
                data_type if data_type.is_numeric() => (1, false),
                other => {
                    return Err(Error::config(format!(
                        "key `features`: column `{name}` has type {other}; features must be \
                         numeric, or fixed-size lists of numbers (encode other columns first, \
                         e.g. strings with an ordinal encoder)"
                    )));
                }
            };
            columns.push(FeatureColumn {
                name: name.clone(),
                index,
                width: columns_width,
                offset: width,
                is_list,
            });
            width += columns_width;
        }
        let label = label
            .map(|name| {
                let index = column_index(schema, name, "label")?;
                let data_type = schema.field(index).data_type();
                let (numpy_name, descr, dtype) = label_dtype(data_type).ok_or_else(|| {
                    Error::config(format!(
                        "key `label`: column `{name}` has type {data_type}; a label must be a \
                         boolean, integer or float column"
                    ))
                })?;
                Ok::<_, Error>(Label {
                    name: name.to_string(),
                    index,
                    numpy_name,
                    descr,
                    dtype,
                })
            })
            .transpose()?;
        Ok(Layout {
            features: columns,
            width,
            label,
        })
    }

    /// Feature names, one per position in a row: a column's name, or `name[i]` for the
    /// elements of a fixed-size list column.
    pub(crate) fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width);
        for column in &self.features {
            if column.is_list {
                names.extend((0..column.width).map(|i| format!("{}[{i}]", column.name)));
            } else {
                names.push(column.name.clone());
            }
        }
        names
    }

    /// Appends the rows of `batch` to `features` (row-major, `width` per row) and their
    /// labels to `labels`. `first_row` is the number of rows before `batch`, for errors.
    /// Nulls in features become `fill`, or are an error naming the column and row.
    pub(crate) fn append(
        &self,
        batch: &RecordBatch,
        first_row: u64,
        fill: Option<f32>,
        features: &mut Vec<f32>,
        labels: &mut Vec<u8>,
    ) -> Result<()> {
        let rows = batch.num_rows();
        let start = features.len();
        features.resize(start + rows * self.width, 0.0);
        let out = &mut features[start..];
        for column in &self.features {
            let array = batch.column(column.index);
            let (values, element_nulls, row_nulls) = match array.data_type() {
                DataType::FixedSizeList(..) => {
                    let list = array.as_fixed_size_list();
                    (
                        list.values().clone(),
                        list.values().logical_nulls(),
                        list.logical_nulls(),
                    )
                }
                _ => (array.clone(), array.logical_nulls(), None),
            };
            let values = as_f32(&values)?;
            let values = values.as_primitive::<Float32Type>().values();
            let width = column.width;
            let rows_out = out.chunks_exact_mut(self.width);
            if width == 1 {
                for (row, value) in rows_out.zip(values.iter()) {
                    row[column.offset] = *value;
                }
            } else {
                for (row, values) in rows_out.zip(values.chunks_exact(width)) {
                    row[column.offset..column.offset + width].copy_from_slice(values);
                }
            }
            let nulls =
                null_rows(row_nulls.as_ref(), 1).chain(null_rows(element_nulls.as_ref(), width));
            for r in nulls {
                let Some(fill) = fill else {
                    let row = first_row + r as u64;
                    return Err(Error::bad_data(format!(
                        "tensor sink: feature column `{}` is null at row {row}; set `fill` on \
                         the sink to replace nulls, or impute the column before the sink",
                        column.name
                    ))
                    .with_rows(row..row + 1));
                };
                out[r * self.width + column.offset..][..width].fill(fill);
            }
        }
        if let Some(label) = &self.label {
            append_label(label, batch.column(label.index), first_row, labels)?;
        }
        Ok(())
    }
}

/// The rows (of `per_row` entries each) holding the nulls of `nulls`, in order; a row
/// repeats once per null in it.
fn null_rows(nulls: Option<&NullBuffer>, per_row: usize) -> impl Iterator<Item = usize> + '_ {
    nulls
        .filter(|nulls| nulls.null_count() > 0)
        .into_iter()
        .flat_map(move |nulls| nulls.iter().enumerate().filter(|(_, valid)| !valid))
        .map(move |(i, _)| i / per_row)
}

/// The array as float32 (cast unless it already is).
fn as_f32(array: &ArrayRef) -> Result<ArrayRef> {
    if array.data_type() == &DataType::Float32 {
        return Ok(array.clone());
    }
    Ok(cast(array, &DataType::Float32)?)
}

fn append_label(label: &Label, array: &ArrayRef, first_row: u64, out: &mut Vec<u8>) -> Result<()> {
    if let Some(nulls) = array.logical_nulls().filter(|n| n.null_count() > 0) {
        let r = nulls.iter().position(|valid| !valid).unwrap_or(0);
        let row = first_row + r as u64;
        return Err(Error::bad_data(format!(
            "tensor sink: label column `{}` is null at row {row}; drop or fill the rows with \
             missing labels before the sink",
            label.name
        ))
        .with_rows(row..row + 1));
    }
    if let Some(booleans) = array.as_boolean_opt() {
        out.extend(booleans.values().iter().map(u8::from));
        return Ok(());
    }
    let data = array.to_data();
    let size = array.data_type().primitive_width().unwrap_or(0);
    let bytes = &data.buffers()[0].as_slice()[data.offset() * size..][..data.len() * size];
    out.extend_from_slice(bytes);
    Ok(())
}

/// The NumPy name, `.npy` descr and safetensors dtype of a label type.
fn label_dtype(data_type: &DataType) -> Option<(&'static str, &'static str, Dtype)> {
    Some(match data_type {
        DataType::Boolean => ("bool", "|b1", Dtype::BOOL),
        DataType::Int8 => ("int8", "|i1", Dtype::I8),
        DataType::Int16 => ("int16", "<i2", Dtype::I16),
        DataType::Int32 => ("int32", "<i4", Dtype::I32),
        DataType::Int64 => ("int64", "<i8", Dtype::I64),
        DataType::UInt8 => ("uint8", "|u1", Dtype::U8),
        DataType::UInt16 => ("uint16", "<u2", Dtype::U16),
        DataType::UInt32 => ("uint32", "<u4", Dtype::U32),
        DataType::UInt64 => ("uint64", "<u8", Dtype::U64),
        DataType::Float16 => ("float16", "<f2", Dtype::F16),
        DataType::Float32 => ("float32", "<f4", Dtype::F32),
        DataType::Float64 => ("float64", "<f8", Dtype::F64),
        _ => return None,
    })
}
