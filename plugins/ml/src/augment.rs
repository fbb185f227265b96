//! Seeded augmentation, reproducible per row (see `random`): the random draws of a row
//! depend on the seed, the epoch, the row's `key` column value and the column's name,
//! never on batching or workers. Rows with equal keys get equal draws.
//!
//! - `gaussian_noise`: `x + mean + std · z`, `z` standard normal; numeric columns
//!   (float32 stays float32, others become float64); nulls stay null.
//! - `random_mask`: with probability `rate`, a value becomes null (any column type) or, with
//!   `value`, that number (numeric columns).
//!
//! A null key is an error naming the row.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, RecordBatchOptions, Scalar,
};
use mlpipe_plugin_api::arrow::compute::kernels::zip::zip;
use mlpipe_plugin_api::arrow::compute::{cast, not, nullif};
use mlpipe_plugin_api::arrow::datatypes::{Field, Schema};
use mlpipe_plugin_api::{
    ColumnUsage, ComponentKind, Config, ConfigKey, ConfigType, Counters, Error, RecordBatch,
    Result, SchemaRef, Transform,
};

use crate::columns::{self, Accepts, PerSchema, Selection};
use crate::hashing::KEYS;
use crate::numeric::{NUMERIC, as_f64, float_type};
use crate::random::{Stream, column_word};
use crate::split::row_hashes;

/// The keys every seeded augmentation takes.
fn seed_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "key",
            ConfigType::String,
            "the column identifying rows (string or integer), which keys their random draws",
        )
        .required(),
        ConfigKey::new("seed", ConfigType::Integer, "the random seed").default(0),
        ConfigKey::new(
            "epoch",
            ConfigType::Integer,
            "mixed into the draws: a new epoch gives new draws for the same rows",
        )
        .default(0),
    ]
}

/// The config keys of `gaussian_noise`.
pub(crate) fn noise_keys() -> Vec<ConfigKey> {
    let mut keys = vec![
        columns::key("numeric columns to add noise to (names or glob patterns)"),
        ConfigKey::new("std", ConfigType::Float, "the noise's standard deviation").required(),
        ConfigKey::new("mean", ConfigType::Float, "the noise's mean").default(0.0),
    ];
    keys.extend(seed_keys());
    keys
}

/// The config keys of `random_mask`.
pub(crate) fn mask_keys() -> Vec<ConfigKey> {
    let mut keys = vec![
        columns::key("columns to mask (names or glob patterns)"),
        ConfigKey::new(
            "rate",
            ConfigType::Float,
            "the probability that a value is masked",
        )
        .required(),
        ConfigKey::new(
            "value",
            ConfigType::Float,
            "masked values become this number (numeric columns); null when absent",
        ),
    ];
    keys.extend(seed_keys());
    keys
}

/// What happens to one value.
#[derive(Debug, Clone, Copy)]
enum Effect {
    Noise { mean: f64, std: f64 },
    Mask { rate: f64, value: Option<f64> },
}

/// A seeded, per-row augmentation.
pub(crate) struct Augment {
    name: &'static str,
    effect: Effect,
    selection: Selection,
    key: String,
    stream: Stream,
    plan: PerSchema<Plan>,
    masked: u64,
}

struct Plan {
    key: usize,
    /// The augmented columns and their name words.
    columns: Vec<(usize, u64)>,
    output: SchemaRef,
}

/// The draw `random_mask` takes: `gaussian_noise` takes draws 0 and 1 (Box-Muller), so
/// the two draw apart even with the same seed, epoch and key — masking must not pick the
/// rows by their noise.
const MASK_DRAW: u64 = 2;

impl Augment {
    fn new(config: &Config, name: &'static str, effect: Effect) -> Result<Augment> {
        let seed: u64 = config.require("seed")?;
        let epoch: u64 = config.require("epoch")?;
        Ok(Augment {
            name,
            effect,
            selection: Selection::from_config(config, ComponentKind::Transform, name, "columns")?,
            key: config.require("key")?,
            stream: Stream::new(seed, epoch),
            plan: PerSchema::default(),
            masked: 0,
        })
    }

    /// `gaussian_noise` from its validated config.
    pub(crate) fn noise(config: &Config) -> Result<Augment> {
        let std: f64 = config.require("std")?;
        if !(std >= 0.0 && std.is_finite()) {
            return Err(Error::config(format!(
                "key `std` of transform `gaussian_noise` must be a finite number of at least 0, not {std}"
            )));
        }
        let effect = Effect::Noise {
            mean: config.require("mean")?,
            std,
        };
        Augment::new(config, "gaussian_noise", effect)
    }

    /// `random_mask` from its validated config.
    pub(crate) fn mask(config: &Config) -> Result<Augment> {
        let rate: f64 = config.require("rate")?;
        if !(0.0..=1.0).contains(&rate) {
            return Err(Error::config(format!(
                "key `rate` of transform `random_mask` must be between 0 and 1, not {rate}"
            )));
        }
        let effect = Effect::Mask {
            rate,
            value: config.get("value")?,
        };
        Augment::new(config, "random_mask", effect)
    }

    fn accepts(&self) -> Accepts {
        match self.effect {
            Effect::Noise { .. } | Effect::Mask { value: Some(_), .. } => NUMERIC,
            Effect::Mask { value: None, .. } => Accepts::ANY,
        }
    }

    fn plan_for(&self, input: &SchemaRef) -> Result<Plan> {
        let key = input.index_of(&self.key).map_err(|_| {
            let names: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
            Error::config(format!(
                "key `key` of transform `{}`: there is no column `{}`; the input columns are: {}",
                self.name,
                self.key,
                names.join(", ")
            ))
        })?;
        let ty = input.field(key).data_type();
        if !(KEYS.test)(ty) {
            return Err(Error::config(format!(
                "key `key` of transform `{}`: column `{}` has type {ty}; a key must be a string \
                 or integer column",
                self.name, self.key
            )));
        }
        let columns: Vec<(usize, u64)> = self
            .selection
            .resolve(input, self.accepts())?
            .into_iter()
            .map(|i| (i, column_word(input.field(i).name())))
            .collect();
        if columns.iter().any(|&(index, _)| index == key) {
            return Err(Error::config(format!(
                "transform `{}`: `columns` selects the key column `{}`, which keys the draws \
                 and must stay as it is; leave it out (a pattern such as \"*\" matches it too)",
                self.name, self.key
            )));
        }
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for &(index, _) in &columns {
            let field = &fields[index];
            fields[index] = match self.effect {
                Effect::Noise { .. } | Effect::Mask { value: Some(_), .. } => {
                    field.clone().with_data_type(float_type(field.data_type()))
                }
                Effect::Mask { value: None, .. } => field.clone().with_nullable(true),
            };
        }
        Ok(Plan {
            key,
            columns,
            output: Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())),
        })
    }

    fn augment(&self, column: &ArrayRef, rows: &[u64], word: u64) -> Result<(ArrayRef, u64)> {
        let stream = self.stream;
        match self.effect {
            Effect::Noise { mean, std } => {
                let noise: Vec<f64> = rows
                    .iter()
                    .map(|&row| mean + std * stream.normal(row, word, 0))
                    .collect();
                let out = add_noise(column, &noise)?;
                Ok((out, 0))
            }
            Effect::Mask { rate, value } => {
                let mask = BooleanArray::from(
                    rows.iter()
                        .map(|&row| stream.uniform(row, word, MASK_DRAW) < rate)
                        .collect::<Vec<_>>(),
                );
                let masked = mask.true_count() as u64;
                let out = match value {
                    None => nullif(column.as_ref(), &mask)?,
                    Some(value) => {
                        let ty = float_type(column.data_type());
                        let column = cast(column.as_ref(), &ty)?;
                        let value = cast(&Float64Array::from(vec![value]), &ty)?;
                        let keep = not(&mask)?;
                        zip(&keep, &column, &Scalar::new(value))?
                    }
                };
                Ok((out, masked))
            }
        }
    }
}

impl Augment {
    /// The augmented batch and the number of values masked.
    fn augment_batch(&self, batch: &RecordBatch, plan: &Plan) -> Result<(RecordBatch, u64)> {
        let rows = row_hashes(batch.column(plan.key).as_ref(), 0, self.name)
            .map_err(|e| e.context(format!("transform `{}`, key `{}`", self.name, self.key)))?;
        let mut columns = batch.columns().to_vec();
        let mut masked = 0;
        for &(index, word) in &plan.columns {
            let (out, count) = self.augment(&columns[index], &rows, word)?;
            columns[index] = out;
            masked += count;
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let out = RecordBatch::try_new_with_options(plan.output.clone(), columns, &options)?;
        Ok((out, masked))
    }
}

/// `x + noise` for every value of a numeric column, in float64, rounded to the output
/// type; nulls stay null.
fn add_noise(column: &ArrayRef, noise: &[f64]) -> Result<ArrayRef> {
    let wide = as_f64(column.as_ref())?;
    let sums: Vec<f64> = wide
        .values()
        .iter()
        .zip(noise)
        .map(|(x, n)| x + n)
        .collect();
    let out = Float64Array::new(sums.into(), wide.nulls().cloned());
    Ok(cast(&out, &float_type(column.data_type()))?)
}

impl Transform for Augment {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan_for(input)?.output)
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut plans = std::mem::take(&mut self.plan);
        let result = plans
            .get(&batch.schema(), |input| self.plan_for(input))
            .and_then(|plan| self.augment_batch(&batch, plan));
        self.plan = plans;
        let (out, masked) = result?;
        self.masked += masked;
        Ok(out)
    }

    fn counters(&self) -> Counters {
        match self.effect {
            Effect::Mask { .. } => vec![("values masked".to_string(), self.masked)],
            Effect::Noise { .. } => Vec::new(),
        }
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        let plan = self.plan_for(input)?;
        let written: Vec<String> = plan
            .columns
            .iter()
            .map(|&(i, _)| input.field(i).name().clone())
            .collect();
        let mut reads = written.clone();
        reads.push(self.key.clone());
        Ok(Some(ColumnUsage {
            reads,
            writes: written,
        }))
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{AsArray, Float32Array, Int64Array, StringArray};
    use mlpipe_plugin_api::arrow::datatypes::{DataType, Float32Type, Float64Type};
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, make, transform};

    fn batch(n: i64) -> RecordBatch {
        batch_of(vec![
            (
                "id",
                Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())) as ArrayRef,
            ),
            ("x", Arc::new(Float64Array::from(vec![1.0; n as usize]))),
            ("y", Arc::new(Float32Array::from(vec![2.0f32; n as usize]))),
            ("s", Arc::new(StringArray::from(vec!["t"; n as usize]))),
        ])
    }

    fn values(out: &RecordBatch, column: usize) -> Vec<f64> {
        match out.column(column).data_type() {
            DataType::Float32 => out
                .column(column)
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
            _ => out
                .column(column)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec(),
        }
    }

    #[test]
    fn noise_depends_on_the_row_key_not_on_batching() {
        let config =
            json!({"columns": ["x", "y"], "std": 0.5, "mean": 1.0, "key": "id", "seed": 3});
        let mut whole = make("gaussian_noise", &config);
        let all = transform(&mut *whole, batch(50_000));
        let x = values(&all, 1);
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        assert!(
            (mean - 2.0).abs() < 0.01 && (var - 0.25).abs() < 0.01,
            "{mean} {var}"
        );
        assert_eq!(all.column(2).data_type(), &DataType::Float32);
        assert_ne!(
            values(&all, 1)[0] - 1.0,
            values(&all, 2)[0] - 2.0,
            "columns draw apart"
        );
        let mut pieces = make("gaussian_noise", &config);
        let input = batch(50_000);
        let mut again = Vec::new();
        for start in (0..50_000).step_by(7_001) {
            let len = 7_001.min(50_000 - start);
            again.extend(values(&transform(&mut *pieces, input.slice(start, len)), 1));
        }
        assert_eq!(again, x);
        let other_epoch = json!({"columns": ["x"], "std": 0.5, "key": "id", "seed": 3, "epoch": 1});
        let mut t = make("gaussian_noise", &other_epoch);
        assert_ne!(values(&transform(&mut *t, batch(10)), 1), x[..10]);
    }

    #[test]
    fn noise_and_mask_with_the_same_seed_draw_apart() {
        let noise = json!({"columns": ["x"], "std": 1.0, "key": "id"});
        let noisy = transform(&mut *make("gaussian_noise", &noise), batch(40_000));
        let mask = json!({"columns": ["x"], "rate": 0.5, "key": "id"});
        let masked = transform(&mut *make("random_mask", &mask), noisy);
        let x = masked.column(1).as_primitive::<Float64Type>();
        // |z| averages sqrt(2/π) ≈ 0.798 over the rows the mask keeps, as over all rows.
        let kept: Vec<f64> = x.iter().flatten().map(|v| (v - 1.0).abs()).collect();
        let mean = kept.iter().sum::<f64>() / kept.len() as f64;
        assert!(
            (mean - 0.798).abs() < 0.03,
            "{mean} over {} rows",
            kept.len()
        );
    }

    #[test]
    fn mask_sets_nulls_or_a_value_at_the_rate() {
        let config = json!({"columns": ["s", "x"], "rate": 0.25, "key": "id"});
        let mut t = make("random_mask", &config);
        let out = transform(&mut *t, batch(40_000));
        let nulls = out.column(3).null_count();
        assert!((nulls as f64 / 40_000.0 - 0.25).abs() < 0.01, "{nulls}");
        assert_eq!(
            t.counters()[0].1,
            (nulls + out.column(1).null_count()) as u64
        );
        let config = json!({"columns": ["x"], "rate": 0.5, "value": -1, "key": "id"});
        let mut t = make("random_mask", &config);
        let out = transform(&mut *t, batch(1_000));
        let x = values(&out, 1);
        assert!(x.iter().all(|&v| v == 1.0 || v == -1.0));
        assert_eq!(out.column(1).null_count(), 0);
        let config = json!({"columns": ["s"], "rate": 0.5, "value": -1, "key": "id"});
        let t = make("random_mask", &config);
        assert!(t.output_schema(&batch(1).schema()).is_err());
        // The key keys the draws: a pattern may not take it in, and it must be a key type.
        let config = json!({"columns": ["*"], "rate": 0.5, "key": "id"});
        let error = make("random_mask", &config)
            .output_schema(&batch(1).schema())
            .unwrap_err();
        assert!(
            error.message().contains("selects the key column `id`"),
            "{error}"
        );
        let config = json!({"columns": ["y"], "std": 1.0, "key": "x"});
        let error = make("gaussian_noise", &config)
            .output_schema(&batch(1).schema())
            .unwrap_err();
        assert!(
            error.message().contains("column `x` has type Float64"),
            "{error}"
        );
        assert!(
            crate::testing::try_make(
                "random_mask",
                &json!({"columns": ["x"], "rate": 2, "key": "id"})
            )
            .is_err()
        );
    }
}
