//! The `synthetic` source: a seeded dataset generated from a schema, for tests, examples
//! and benchmarks. Every value is a pure function of the seed, the column's name and the
//! row's index (see `random`), so the data is the same whatever batch sizes are asked for.
//!
//! ```toml
//! [source]
//! type = "synthetic"
//! rows = 1000000
//! seed = 7
//! columns = [
//!   { name = "id", type = "int64", dist = "sequence" },
//!   { name = "age", type = "int32", dist = "uniform", min = 18, max = 90, null_rate = 0.01 },
//!   { name = "score", type = "float64", dist = "normal", mean = 0.5, std = 0.1 },
//!   { name = "city", type = "string", values = ["Oslo", "Bergen", "Tromsø"], weights = [3, 2, 1] },
//!   { name = "emb", type = "float32", dist = "normal", dims = 8 },
//!   { name = "clicked", type = "bool", p = 0.1 },
//! ]
//! ```
//!
//! - Integer types (`int8` … `int64`, `uint8` … `uint64`): `dist = "sequence"` (`start`,
//!   default 0, plus the row index) or `"uniform"` (`min` ≤ value ≤ `max`, integers).
//! - `float32` / `float64`: `dist = "normal"` (`mean` 0, `std` 1) or `"uniform"` (`min` 0 ≤
//!   value < `max` 1); with `dims = n` a `FixedSizeList` of n values (an embedding).
//! - `string`: one of `values`, uniformly or by `weights`.
//! - `bool`: true with probability `p` (0.5).
//! - `null_rate` (0): each value is null with this probability.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float64Array, Int64Array, StringArray, make_array,
};
use mlpipe_plugin_api::arrow::buffer::NullBuffer;
use mlpipe_plugin_api::arrow::compute::{CastOptions, cast_with_options};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Error, RecordBatch, Result, SchemaRef, Source,
};
use serde::Deserialize;

use crate::cast::parse_type;
use crate::random::{Stream, column_word};

const NAME: &str = "synthetic";

/// The config keys of `synthetic`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new("rows", ConfigType::Integer, "the number of rows").required(),
        ConfigKey::new("seed", ConfigType::Integer, "the random seed").default(0),
        ConfigKey::new(
            "columns",
            ConfigType::Any,
            "a list of tables { name, type, dist, ... } (see the plugin's README)",
        )
        .required(),
    ]
}

/// One column as written in the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnSpec {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    dist: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    std: Option<f64>,
    start: Option<i64>,
    values: Option<Vec<String>>,
    weights: Option<Vec<f64>>,
    p: Option<f64>,
    dims: Option<usize>,
    #[serde(default)]
    null_rate: f64,
}

/// How a column's values are drawn.
#[derive(Debug, Clone)]
enum Generator {
    Sequence(i64),
    UniformInt {
        min: i64,
        /// `max - min + 1`; `None` for the whole int64 range (2^64 values).
        span: Option<u64>,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        min: f64,
        width: f64,
    },
    Categorical {
        values: Vec<String>,
        cumulative: Vec<f64>,
    },
    Bool(f64),
}

#[derive(Debug, Clone)]
struct Column {
    field: Field,
    /// The value type (the item type of an embedding).
    ty: DataType,
    generator: Generator,
    dims: Option<usize>,
    null_rate: f64,
    word: u64,
}

/// Generates rows.
pub(crate) struct Synthetic {
    schema: SchemaRef,
    columns: Vec<Column>,
    stream: Stream,
    rows: u64,
    next: u64,
}

fn bad(column: &str, message: impl std::fmt::Display) -> Error {
    Error::config(format!("source `{NAME}`, column `{column}`: {message}"))
}

impl Column {
    fn from_spec(spec: ColumnSpec) -> Result<Column> {
        let name = spec.name.clone();
        let ty = match spec.ty.as_str() {
            "bool" | "boolean" => DataType::Boolean,
            "string" => DataType::Utf8,
            other => parse_type(other).map_err(|e| bad(&name, e.message()))?,
        };
        if !(0.0..=1.0).contains(&spec.null_rate) {
            return Err(bad(&name, "`null_rate` must be between 0 and 1"));
        }
        let dist = spec.dist.as_deref();
        let generator = match (&ty, dist) {
            (t, Some("sequence")) if t.is_integer() => Generator::Sequence(spec.start.unwrap_or(0)),
            (t, Some("uniform")) if t.is_integer() => {
                let (Some(min), Some(max)) = (spec.min, spec.max) else {
                    return Err(bad(&name, "`uniform` integers need `min` and `max`"));
                };
                if min.fract() != 0.0 || max.fract() != 0.0 || min > max {
                    return Err(bad(
                        &name,
                        "`min` and `max` must be integers with min <= max",
                    ));
                }
                // The span of the whole int64 range, 2^64, is no u64: it takes the raw word.
                let span = (max as i64 as i128 - min as i64 as i128 + 1) as u128;
                Generator::UniformInt {
                    min: min as i64,
                    span: u64::try_from(span).ok(),
                }
            }
            (DataType::Float32 | DataType::Float64, Some("normal")) => {
                let std = spec.std.unwrap_or(1.0);
                if !(std >= 0.0 && std.is_finite()) {
                    return Err(bad(&name, "`std` must be a finite number of at least 0"));
                }
                Generator::Normal {
                    mean: spec.mean.unwrap_or(0.0),
                    std,
                }
            }
            (DataType::Float32 | DataType::Float64, Some("uniform")) => {
                let (min, max) = (spec.min.unwrap_or(0.0), spec.max.unwrap_or(1.0));
                if min > max {
                    return Err(bad(&name, "`min` must not exceed `max`"));
                }
                Generator::Uniform {
                    min,
                    width: max - min,
                }
            }
            (DataType::Utf8, None | Some("categorical")) => {
                let values = spec
                    .values
                    .clone()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| bad(&name, "string columns need `values`"))?;
                let weights = spec.weights.clone().unwrap_or(vec![1.0; values.len()]);
                if weights.len() != values.len() || weights.iter().any(|w| *w < 0.0) {
                    return Err(bad(
                        &name,
                        "`weights` must be one non-negative number per value",
                    ));
                }
                let total: f64 = weights.iter().sum();
                if !(total > 0.0 && total.is_finite()) {
                    return Err(bad(
                        &name,
                        "`weights` must not all be 0, and must sum to a finite number",
                    ));
                }
                let mut sum = 0.0;
                let cumulative = weights
                    .iter()
                    .map(|w| {
                        sum += w / total;
                        sum
                    })
                    .collect();
                Generator::Categorical { values, cumulative }
            }
            (DataType::Boolean, None) => {
                let p = spec.p.unwrap_or(0.5);
                if !(0.0..=1.0).contains(&p) {
                    return Err(bad(&name, "`p` is a probability, from 0 to 1"));
                }
                Generator::Bool(p)
            }
            (ty, dist) => {
                return Err(bad(
                    &name,
                    format!(
                        "no distribution {} for type {ty}: integers take `sequence` or `uniform`, floats `normal` or `uniform`, strings `values`, bools `p`",
                        dist.map_or("(none)".to_string(), |d| format!("`{d}`"))
                    ),
                ));
            }
        };
        let field = match spec.dims {
            Some(0) => return Err(bad(&name, "`dims` must be at least 1")),
            Some(dims)
                if matches!(
                    generator,
                    Generator::Normal { .. } | Generator::Uniform { .. }
                ) =>
            {
                let item = Arc::new(Field::new("item", ty.clone(), false));
                Field::new(
                    &name,
                    DataType::FixedSizeList(item, dims as i32),
                    spec.null_rate > 0.0,
                )
            }
            Some(_) => return Err(bad(&name, "`dims` is for float columns")),
            None => Field::new(&name, ty.clone(), spec.null_rate > 0.0),
        };
        Ok(Column {
            field,
            ty,
            generator,
            dims: spec.dims,
            null_rate: spec.null_rate,
            word: column_word(&name),
        })
    }

    /// The values of rows `start..start + n`.
    fn generate(&self, stream: Stream, start: u64, n: usize) -> Result<ArrayRef> {
        let rows = start..start + n as u64;
        let nulls = (self.null_rate > 0.0).then(|| {
            NullBuffer::from(
                rows.clone()
                    .map(|r| stream.uniform(r, self.word, 0) >= self.null_rate)
                    .collect::<Vec<bool>>(),
            )
        });
        let w = self.word;
        let per_row = self.dims.unwrap_or(1) as u64;
        let floats = |f: &dyn Fn(u64, u64) -> f64| -> Vec<f64> {
            rows.clone()
                .flat_map(|r| (0..per_row).map(move |d| (r, d)))
                .map(|(r, d)| f(r, d))
                .collect()
        };
        let array: ArrayRef = match &self.generator {
            Generator::Sequence(first) => {
                let values = rows
                    .clone()
                    .map(|r| i64::try_from(r).ok().and_then(|r| first.checked_add(r)))
                    .collect::<Option<Vec<i64>>>()
                    .ok_or_else(|| {
                        Error::bad_data(format!(
                            "column `{}`: the sequence from {first} passes the largest int64 \
                             after {} rows; start it lower",
                            self.field.name(),
                            i64::MAX - first
                        ))
                    })?;
                Arc::new(Int64Array::new(values.into(), nulls.clone()))
            }
            Generator::UniformInt { min, span } => Arc::new(Int64Array::new(
                rows.clone()
                    .map(|r| {
                        let word = stream.word(r, w, 1);
                        match span {
                            Some(span) => min.wrapping_add((word % span) as i64),
                            None => word as i64,
                        }
                    })
                    .collect(),
                nulls.clone(),
            )),
            Generator::Normal { mean, std } => Arc::new(Float64Array::from(floats(&|r, d| {
                mean + std * stream.normal(r, w, 1 + d)
            }))),
            Generator::Uniform { min, width } => Arc::new(Float64Array::from(floats(&|r, d| {
                min + width * stream.uniform(r, w, 1 + d)
            }))),
            Generator::Categorical { values, cumulative } => {
                let picks: StringArray = rows
                    .clone()
                    .map(|r| {
                        let u = stream.uniform(r, w, 1);
                        let i = cumulative
                            .partition_point(|&c| c <= u)
                            .min(values.len() - 1);
                        Some(values[i].as_str())
                    })
                    .collect();
                Arc::new(StringArray::new(
                    picks.offsets().clone(),
                    picks.values().clone(),
                    nulls.clone(),
                ))
            }
            Generator::Bool(p) => Arc::new(BooleanArray::new(
                rows.clone().map(|r| stream.uniform(r, w, 1) < *p).collect(),
                nulls.clone(),
            )),
        };
        let array = if matches!(self.ty, DataType::Utf8 | DataType::Boolean) {
            array
        } else {
            let strict = CastOptions {
                safe: false,
                ..Default::default()
            };
            cast_with_options(&array, &self.ty, &strict).map_err(|e| {
                bad(
                    self.field.name(),
                    format!("a value does not fit {}: {e}", self.ty),
                )
            })?
        };
        Ok(match (self.dims, &self.generator) {
            (Some(dims), _) => {
                let item = Arc::new(Field::new("item", self.ty.clone(), false));
                Arc::new(FixedSizeListArray::try_new(
                    item,
                    dims as i32,
                    array,
                    nulls,
                )?)
            }
            (None, Generator::Normal { .. } | Generator::Uniform { .. }) => {
                make_array(array.to_data().into_builder().nulls(nulls).build()?)
            }
            _ => array,
        })
    }
}

impl Synthetic {
    /// Builds the source from its validated config.
    pub(crate) fn from_config(config: &Config) -> Result<Synthetic> {
        let specs: Vec<ColumnSpec> = config
            .get::<Vec<ColumnSpec>>("columns")
            .map_err(|e| {
                Error::config(format!(
                    "key `columns` of source `{NAME}` must be a list of tables such as {{ name = \"x\", type = \"float64\", dist = \"normal\" }}: {}",
                    e.message()
                ))
            })?
            .unwrap_or_default();
        if specs.is_empty() {
            return Err(Error::config(format!(
                "key `columns` of source `{NAME}` is empty; describe at least one column"
            )));
        }
        let columns = specs
            .into_iter()
            .map(Column::from_spec)
            .collect::<Result<Vec<_>>>()?;
        let fields: Vec<Field> = columns.iter().map(|c| c.field.clone()).collect();
        let schema = Schema::new(fields);
        let mut names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::config(format!(
                "source `{NAME}`: two columns are named `{}`",
                pair[0]
            )));
        }
        Ok(Synthetic {
            schema: Arc::new(schema),
            columns,
            stream: Stream::new(config.require("seed")?, 0),
            rows: config.require("rows")?,
            next: 0,
        })
    }
}

impl Source for Synthetic {
    fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let n = (self.rows - self.next).min(max_rows.max(1) as u64) as usize;
        if n == 0 {
            return Ok(None);
        }
        let columns = self
            .columns
            .iter()
            .map(|c| c.generate(self.stream, self.next, n))
            .collect::<Result<Vec<_>>>()?;
        self.next += n as u64;
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }

    fn size_hint(&self) -> Option<usize> {
        usize::try_from(self.rows).ok()
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{Array, AsArray};
    use mlpipe_plugin_api::arrow::compute::concat_batches;
    use mlpipe_plugin_api::arrow::datatypes::{Float32Type, Float64Type, Int32Type, Int64Type};
    use serde_json::json;

    use super::*;

    fn source(rows: u64, columns: serde_json::Value) -> Box<dyn Source> {
        crate::plugin()
            .create_source(NAME, &json!({"rows": rows, "seed": 7, "columns": columns}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn read(mut s: Box<dyn Source>, batch: usize) -> RecordBatch {
        let schema = s.schema().unwrap();
        let mut batches = Vec::new();
        while let Some(b) = s.next_batch(batch).unwrap() {
            assert!(b.num_rows() <= batch);
            batches.push(b);
        }
        concat_batches(&schema, &batches).unwrap()
    }

    fn columns() -> serde_json::Value {
        json!([
            {"name": "id", "type": "int64", "dist": "sequence", "start": 100},
            {"name": "age", "type": "int32", "dist": "uniform", "min": 18, "max": 20, "null_rate": 0.1},
            {"name": "score", "type": "float64", "dist": "normal", "mean": 5, "std": 2},
            {"name": "u", "type": "float32", "dist": "uniform", "min": -1, "max": 1},
            {"name": "city", "type": "string", "values": ["a", "b"], "weights": [3, 1]},
            {"name": "emb", "type": "float32", "dist": "normal", "dims": 4},
            {"name": "flag", "type": "bool", "p": 0.25},
        ])
    }

    #[test]
    fn the_data_does_not_depend_on_batch_sizes() {
        let whole = read(source(1000, columns()), 1000);
        assert_eq!(read(source(1000, columns()), 7), whole);
        assert_eq!(whole.num_rows(), 1000);
        assert_eq!(source(5, columns()).size_hint(), Some(5));
    }

    #[test]
    fn distributions_have_their_parameters() {
        let t = read(source(40_000, columns()), 4096);
        let id = t.column(0).as_primitive::<Int64Type>();
        assert_eq!((id.value(0), id.value(39_999)), (100, 40_099));
        let age = t.column(1).as_primitive::<Int32Type>();
        assert!((age.null_count() as f64 / 40_000.0 - 0.1).abs() < 0.01);
        assert!(age.iter().flatten().all(|a| (18..=20).contains(&a)));
        assert!(age.iter().flatten().any(|a| a == 20));
        let score = t.column(2).as_primitive::<Float64Type>().values();
        let mean = score.iter().sum::<f64>() / 40_000.0;
        let var = score.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 40_000.0;
        assert!(
            (mean - 5.0).abs() < 0.05 && (var.sqrt() - 2.0).abs() < 0.05,
            "{mean} {var}"
        );
        let u = t.column(3).as_primitive::<Float32Type>();
        assert!(u.values().iter().all(|v| (-1.0..1.0).contains(v)));
        let city = t.column(4).as_string::<i32>();
        let a = city.iter().filter(|c| *c == Some("a")).count() as f64 / 40_000.0;
        assert!((a - 0.75).abs() < 0.01, "{a}");
        assert_eq!(
            t.schema().field(5).data_type(),
            &DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), 4)
        );
        let flag = t.column(6).as_boolean();
        assert!((flag.true_count() as f64 / 40_000.0 - 0.25).abs() < 0.01);
    }

    #[test]
    fn bad_columns_are_rejected() {
        for columns in [
            json!([]),
            json!([{"name": "x", "type": "int64"}]),
            json!([{"name": "x", "type": "float64", "dist": "sequence"}]),
            json!([{"name": "x", "type": "string"}]),
            json!([{"name": "x", "type": "int8", "dist": "uniform", "min": 0}]),
            json!([{"name": "x", "type": "float64", "dist": "normal", "colour": 1}]),
            json!([{"name": "x", "type": "bool"}, {"name": "x", "type": "bool"}]),
            json!([{"name": "x", "type": "bool", "p": 7.5}]),
            json!([{"name": "x", "type": "float64", "dist": "normal", "std": -3}]),
            json!([{"name": "x", "type": "string", "values": ["a", "b"], "weights": [1e308, 1e308]}]),
        ] {
            let config = json!({"rows": 1, "columns": columns});
            assert!(
                crate::plugin().create_source(NAME, &config).is_err(),
                "{columns}"
            );
        }
        let overflow = json!([{"name": "x", "type": "int8", "dist": "sequence", "start": 120}]);
        let mut s = source(20, overflow);
        let err = s.next_batch(20).unwrap_err();
        assert!(err.message().contains("does not fit Int8"), "{err}");
        let past_int64 =
            json!([{"name": "x", "type": "int64", "dist": "sequence", "start": i64::MAX - 1}]);
        let mut s = source(5, past_int64);
        let err = s.next_batch(5).unwrap_err();
        assert!(
            err.message()
                .contains("passes the largest int64 after 1 rows"),
            "{err}"
        );
    }

    #[test]
    fn uniform_integers_may_span_the_whole_int64_range() {
        let whole = json!([
            {"name": "x", "type": "int64", "dist": "uniform", "min": i64::MIN, "max": i64::MAX}
        ]);
        let batch = read(source(10_000, whole), 1_000);
        let x = batch.column(0).as_primitive::<Int64Type>();
        let negative = x.values().iter().filter(|&&v| v < 0).count();
        assert!((4_500..5_500).contains(&negative), "{negative}");
    }
}
