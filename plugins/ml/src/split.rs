//! `split`: assigns every row to a part (train / validation / test) by a hash of a key
//! column, so that a row lands in the same part in every run, on every machine, whatever
//! the batching or the number of workers.
//!
//! ```text
//! h    = first 64-bit word of murmur3_x64_128(key bytes, seed)
//! part = the first i with h < floor(2^64 · (f_0 + … + f_i)); the last part otherwise
//! ```
//!
//! Key bytes are a string's UTF-8 bytes or an integer's value as int64 in 8 little-endian
//! bytes. Rows with equal keys land in the same part (group-aware splitting: key by user id
//! to keep a user's rows together). A null key is an error naming the row.
//!
//! Output: a column `output` (default `split`) of type dictionary<int8, utf8> holding the
//! part's name; or, with `keep = "<name>"`, only the rows of that part, unchanged. The
//! counters report the rows of each part.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, Int8Array, RecordBatchOptions, StringArray,
};
use mlpipe_plugin_api::arrow::compute::filter_record_batch;
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Int8Type, Schema};
use mlpipe_plugin_api::{
    ColumnUsage, Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef,
    Transform,
};

use crate::columns::PerSchema;
use crate::hashing::{KEYS, for_each_key_hash, murmur3_128};

const NAME: &str = "split";

/// Parts at most: the part column is a dictionary with int8 keys.
const MAX_PARTS: usize = i8::MAX as usize + 1;

/// The config keys of `split`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "key",
            ConfigType::String,
            "the string or integer column whose hash assigns the part (e.g. a row or user id)",
        )
        .required(),
        ConfigKey::new(
            "fractions",
            ConfigType::FloatList,
            "the share of each part, summing to 1, e.g. [0.8, 0.1, 0.1]",
        )
        .required(),
        ConfigKey::new(
            "names",
            ConfigType::StringList,
            "the parts' names; default [\"train\", \"test\"] for two parts, [\"train\", \"validation\", \"test\"] for three",
        ),
        ConfigKey::new(
            "seed",
            ConfigType::Integer,
            "the hash seed (0 to 4294967295)",
        )
        .default(0),
        ConfigKey::new("output", ConfigType::String, "the name of the added column")
            .default("split"),
        ConfigKey::new(
            "keep",
            ConfigType::String,
            "keep only the rows of this part (and add no column)",
        ),
    ]
}

/// Reads a seed key: an integer from 0 to 2^32 - 1.
pub(crate) fn seed(config: &Config, component: &str) -> Result<u32> {
    let seed: u64 = config.require("seed")?;
    u32::try_from(seed).map_err(|_| {
        Error::config(format!(
            "key `seed` of transform `{component}` must be between 0 and 4294967295, not {seed}"
        ))
    })
}

/// The hash of each row's key (first word of MurmurHash3_x64_128); a null key is an error.
pub(crate) fn row_hashes(array: &dyn Array, seed: u32, component: &str) -> Result<Vec<u64>> {
    if let Some(nulls) = array.logical_nulls()
        && let Some(row) = nulls.iter().position(|valid| !valid)
    {
        return Err(Error::bad_data(format!(
            "the key column has a null at row {row}; `{component}` needs a key on every row (fill or drop the nulls first)"
        ))
        .with_rows(row as u64..row as u64 + 1));
    }
    let mut hashes = vec![0u64; array.len()];
    for_each_key_hash(
        array,
        |bytes| murmur3_128(bytes, seed).0,
        |row, hash| hashes[row] = hash,
    )?;
    Ok(hashes)
}

/// Assigns rows to parts.
pub(crate) struct Split {
    key: String,
    names: Vec<String>,
    /// The exclusive upper bound of the hash of each part but the last.
    bounds: Vec<u64>,
    seed: u32,
    output: String,
    keep: Option<usize>,
    rows: Vec<u64>,
    plan: PerSchema<(usize, SchemaRef)>,
}

impl Split {
    /// Builds the transform from its validated config.
    pub(crate) fn from_config(config: &Config) -> Result<Split> {
        let fractions: Vec<f64> = config.require("fractions")?;
        let total: f64 = fractions.iter().sum();
        if fractions.is_empty()
            || fractions.iter().any(|f| f.is_nan() || *f < 0.0)
            || (total - 1.0).abs() > 1e-9
        {
            return Err(Error::config(format!(
                "key `fractions` of transform `{NAME}` must be shares of at least 0 summing to 1, not {fractions:?}"
            )));
        }
        let names: Vec<String> = match (config.get::<Vec<String>>("names")?, fractions.len()) {
            (Some(names), _) => names,
            (None, 2) => vec!["train".into(), "test".into()],
            (None, 3) => vec!["train".into(), "validation".into(), "test".into()],
            (None, n) => {
                return Err(Error::config(format!(
                    "transform `{NAME}` has {n} fractions: give their `names`"
                )));
            }
        };
        if names.len() != fractions.len() {
            return Err(Error::config(format!(
                "transform `{NAME}` has {} fractions but {} names",
                fractions.len(),
                names.len()
            )));
        }
        if names.len() > MAX_PARTS {
            return Err(Error::config(format!(
                "transform `{NAME}` has {} parts; it splits into at most {MAX_PARTS}",
                names.len()
            )));
        }
        if let Some(twice) = names
            .iter()
            .enumerate()
            .find_map(|(i, n)| names[..i].contains(n).then_some(n))
        {
            return Err(Error::config(format!(
                "key `names` of transform `{NAME}` names `{twice}` twice; each part needs its own name"
            )));
        }
        let keep = match config.get::<String>("keep")? {
            None => None,
            Some(part) => Some(names.iter().position(|n| *n == part).ok_or_else(|| {
                Error::config(format!(
                    "key `keep` of transform `{NAME}`: `{part}` is not one of the parts ({})",
                    names.join(", ")
                ))
            })?),
        };
        let mut cumulative = 0.0;
        let bounds = fractions[..fractions.len() - 1]
            .iter()
            .map(|f| {
                cumulative += f;
                // 2^64 · cumulative, saturating at u64::MAX.
                (cumulative * 18_446_744_073_709_551_616.0) as u64
            })
            .collect();
        Ok(Split {
            key: config.require("key")?,
            rows: vec![0; names.len()],
            names,
            bounds,
            seed: seed(config, NAME)?,
            output: config.require("output")?,
            keep,
            plan: PerSchema::default(),
        })
    }

    /// The key column's index and the output schema.
    fn plan_for(&self, input: &SchemaRef) -> Result<(usize, SchemaRef)> {
        let index = input.index_of(&self.key).map_err(|_| {
            let names: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
            Error::config(format!(
                "key `key` of transform `{NAME}`: there is no column `{}`; the input columns are: {}",
                self.key,
                names.join(", ")
            ))
        })?;
        let ty = input.field(index).data_type();
        if !(KEYS.test)(ty) {
            return Err(Error::config(format!(
                "key `key` of transform `{NAME}`: column `{}` has type {ty}; a key must be a string or integer column",
                self.key
            )));
        }
        if self.keep.is_some() {
            return Ok((index, input.clone()));
        }
        if input.index_of(&self.output).is_ok() {
            return Err(Error::config(format!(
                "transform `{NAME}`: the input already has a column `{}`; set `output` to another name",
                self.output
            )));
        }
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let ty = DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8));
        fields.push(Field::new(&self.output, ty, false));
        Ok((
            index,
            Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())),
        ))
    }

    /// The part of each row.
    fn parts(&self, key: &dyn Array) -> Result<Vec<i8>> {
        let hashes = row_hashes(key, self.seed, NAME)?;
        Ok(hashes
            .iter()
            .map(|h| self.bounds.partition_point(|bound| bound <= h) as i8)
            .collect())
    }
}

impl Transform for Split {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan_for(input)?.1)
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut plan = std::mem::take(&mut self.plan);
        let planned = plan
            .get(&batch.schema(), |input| self.plan_for(input))
            .cloned();
        self.plan = plan;
        let (index, output) = planned?;
        let parts = self
            .parts(batch.column(index).as_ref())
            .map_err(|e| e.context(format!("transform `{NAME}`, column `{}`", self.key)))?;
        for &part in &parts {
            self.rows[part as usize] += 1;
        }
        if let Some(keep) = self.keep {
            let mask: BooleanArray = parts.iter().map(|&p| Some(p as usize == keep)).collect();
            return Ok(filter_record_batch(&batch, &mask)?);
        }
        let names: ArrayRef = Arc::new(StringArray::from(self.names.clone()));
        let column = DictionaryArray::<Int8Type>::try_new(Int8Array::from(parts), names)?;
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(column));
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            output, columns, &options,
        )?)
    }

    fn counters(&self) -> Counters {
        self.names
            .iter()
            .zip(&self.rows)
            .map(|(name, rows)| (format!("rows in part {name}"), *rows))
            .collect()
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        self.plan_for(input)?;
        let writes = if self.keep.is_some() {
            // Dropping rows changes every column.
            input.fields().iter().map(|f| f.name().clone()).collect()
        } else {
            vec![self.output.clone()]
        };
        Ok(Some(ColumnUsage {
            reads: vec![self.key.clone()],
            writes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{AsArray, Int64Array};
    use mlpipe_plugin_api::arrow::datatypes::Int8Type;
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, make, transform};

    fn ids(n: i64) -> RecordBatch {
        batch_of(vec![(
            "id",
            Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())) as ArrayRef,
        )])
    }

    fn parts(out: &RecordBatch) -> Vec<i8> {
        out.column(1)
            .as_dictionary::<Int8Type>()
            .keys()
            .values()
            .to_vec()
    }

    #[test]
    fn fractions_hold_and_batching_does_not_matter() {
        let config = json!({"key": "id", "fractions": [0.8, 0.1, 0.1]});
        let mut whole = make(NAME, &config);
        let all = parts(&transform(&mut *whole, ids(100_000)));
        let share = |p: i8| all.iter().filter(|&&x| x == p).count() as f64 / 1e5;
        assert!((share(0) - 0.8).abs() < 0.01 && (share(1) - 0.1).abs() < 0.01);
        assert_eq!(
            whole.counters().iter().map(|(_, n)| n).sum::<u64>(),
            100_000
        );
        // The same rows in other batches (and another instance) land in the same parts.
        let mut other = make(NAME, &config);
        let batch = ids(100_000);
        let mut pieces = Vec::new();
        for start in (0..100_000).step_by(7_777) {
            let len = 7_777.min(100_000 - start);
            pieces.extend(parts(&transform(&mut *other, batch.slice(start, len))));
        }
        assert_eq!(pieces, all);
    }

    #[test]
    fn assignments_are_pinned() {
        // murmur3_x64_128(42 as 8 LE bytes, 0).h1 and of "user-7" decide these parts; they
        // must never change.
        let config = json!({"key": "id", "fractions": [0.5, 0.5]});
        let mut t = make(NAME, &config);
        let out = transform(&mut *t, ids(8));
        assert_eq!(parts(&out), expected_parts(8, 0));
        let keys = batch_of(vec![(
            "id",
            Arc::new(StringArray::from(vec!["user-7", "user-8"])) as ArrayRef,
        )]);
        let mut t = make(
            NAME,
            &json!({"key": "id", "fractions": [0.5, 0.5], "seed": 3}),
        );
        let out = transform(&mut *t, keys);
        let expected: Vec<i8> = ["user-7", "user-8"]
            .iter()
            .map(|k| i8::from(murmur3_128(k.as_bytes(), 3).0 >= 1 << 63))
            .collect();
        assert_eq!(parts(&out), expected);
    }

    fn expected_parts(n: i64, seed: u32) -> Vec<i8> {
        (0..n)
            .map(|i| i8::from(murmur3_128(&i.to_le_bytes(), seed).0 >= 1 << 63))
            .collect()
    }

    #[test]
    fn keep_filters_to_one_part() {
        let mut t = make(
            NAME,
            &json!({"key": "id", "fractions": [0.5, 0.5], "keep": "test"}),
        );
        let out = transform(&mut *t, ids(1000));
        let kept: Vec<i64> = out
            .column(0)
            .as_primitive::<mlpipe_plugin_api::arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        let expected: Vec<i64> = (0..1000)
            .filter(|&i| expected_parts(1000, 0)[i as usize] == 1)
            .collect();
        assert_eq!(kept, expected);
        assert_eq!(out.num_columns(), 1);
    }

    #[test]
    fn bad_configs_and_null_keys_are_errors() {
        for (config, expected) in [
            (
                json!({"key": "id", "fractions": [0.5, 0.6]}),
                "summing to 1",
            ),
            (
                json!({"key": "id", "fractions": [0.5, 0.25, 0.25, 0.0]}),
                "give their `names`",
            ),
            (
                json!({"key": "id", "fractions": [0.5, 0.5], "names": ["a"]}),
                "but 1 names",
            ),
            (
                json!({"key": "id", "fractions": [0.5, 0.5], "keep": "valid"}),
                "not one of the parts",
            ),
            (
                json!({"key": "id", "fractions": [0.5, 0.5], "names": ["a", "a"]}),
                "names `a` twice",
            ),
            (
                json!({
                    "key": "id",
                    "fractions": vec![1.0 / 129.0; 129],
                    "names": (0..129).map(|i| format!("p{i}")).collect::<Vec<_>>(),
                }),
                "129 parts; it splits into at most 128",
            ),
        ] {
            let err = crate::testing::try_make(NAME, &config).err().unwrap();
            assert!(err.message().contains(expected), "{config}: {err}");
        }
        let nulls = batch_of(vec![(
            "id",
            Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
        )]);
        let mut t = make(NAME, &json!({"key": "id", "fractions": [0.5, 0.5]}));
        let err = t.transform(nulls).unwrap_err();
        assert!(err.message().contains("null at row 1"), "{err}");
        let err = t
            .transform(batch_of(vec![(
                "x",
                Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            )]))
            .unwrap_err();
        assert!(err.message().contains("there is no column `id`"), "{err}");
    }
}
