//! `hash_bucket`: maps each value of string or integer columns to one of `buckets`
//! buckets by a pinned hash, the same on every platform and in every version:
//!
//! ```text
//! bucket = murmur3_x86_32(bytes, seed) mod buckets
//! ```
//!
//! where `bytes` are a string's UTF-8 bytes, or an integer's value as int64 in 8
//! little-endian bytes, and the hash is read as an unsigned 32-bit number. From Python:
//! `sklearn.utils.murmurhash3_32(value, seed, positive=True) % buckets` (with
//! `value = x.to_bytes(8, "little", signed=True)` for integers). The output is int32;
//! nulls stay null. No fit.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{Array, ArrayRef, Int32Array};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field};
use mlpipe_plugin_api::{ComponentKind, Config, ConfigKey, ConfigType, Error, Result};

use crate::columns::{self, Accepts, Selection};
use crate::columnwise::{ColumnOp, Columnwise};
use crate::fitting::NoStats;
use crate::hashing::{KEYS, for_each_key_hash, murmur3_32};

const NAME: &str = "hash_bucket";

/// The config keys of `hash_bucket`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        columns::key("string or integer columns to hash (names or glob patterns)"),
        ConfigKey::new("buckets", ConfigType::Integer, "the number of buckets").required(),
        ConfigKey::new(
            "seed",
            ConfigType::Integer,
            "the hash seed (0 to 4294967295)",
        )
        .default(0),
    ]
}

/// Builds the transform from its validated config.
pub(crate) fn from_config(config: &Config) -> Result<Columnwise<HashBucket>> {
    let buckets: u64 = config.require("buckets")?;
    if !(1..=i32::MAX as u64).contains(&buckets) {
        return Err(Error::config(format!(
            "key `buckets` of transform `{NAME}` must be between 1 and {}, not {buckets}",
            i32::MAX
        )));
    }
    let seed = crate::split::seed(config, NAME)?;
    Ok(Columnwise::new(
        HashBucket {
            buckets: buckets as u32,
            seed,
        },
        Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
    ))
}

/// The operation on one column.
pub(crate) struct HashBucket {
    buckets: u32,
    seed: u32,
}

impl ColumnOp for HashBucket {
    const NAME: &'static str = NAME;
    type Stats = NoStats;
    type Params = ();
    type Prepared = ();

    fn accepts(&self) -> Accepts {
        KEYS
    }

    fn output_field(&self, input: &Field) -> Result<Field> {
        Ok(input.clone().with_data_type(DataType::Int32))
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
        let mut buckets = vec![0i32; array.len()];
        let (seed, n) = (self.seed, self.buckets);
        for_each_key_hash(
            array.as_ref(),
            |bytes| murmur3_32(bytes, seed),
            |row, hash| buckets[row] = (hash % n) as i32,
        )?;
        Ok(Arc::new(Int32Array::new(
            buckets.into(),
            array.logical_nulls(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{AsArray, Int64Array, StringArray};
    use mlpipe_plugin_api::arrow::datatypes::Int32Type;
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, make, transform};

    #[test]
    fn buckets_match_scikit_learn_murmurhash3_32() {
        // sklearn.utils.murmurhash3_32(v, seed, positive=True) % 1000 (1.9.1):
        // 'hello' → 613153351, 'a' → 1009084850, 42 as 8 LE bytes → 1871679806;
        // with seed 42: 'hello' → 3806057185.
        let batch = batch_of(vec![
            (
                "s",
                Arc::new(StringArray::from(vec![Some("hello"), None, Some("a")])) as ArrayRef,
            ),
            (
                "i",
                Arc::new(Int64Array::from(vec![Some(42), Some(42), None])),
            ),
        ]);
        let mut t = make(NAME, &json!({"columns": ["*"], "buckets": 1000}));
        let out = transform(&mut *t, batch.clone());
        let s = out.column(0).as_primitive::<Int32Type>();
        assert_eq!((s.value(0), s.value(2)), (351, 850));
        assert!(s.is_null(1));
        let i = out.column(1).as_primitive::<Int32Type>();
        assert_eq!(i.value(0), 806);
        assert!(i.is_null(2));
        let mut t = make(
            NAME,
            &json!({"columns": ["s"], "buckets": 1000, "seed": 42}),
        );
        let out = transform(&mut *t, batch);
        assert_eq!(out.column(0).as_primitive::<Int32Type>().value(0), 185);
    }

    #[test]
    fn bad_keys_are_rejected() {
        for config in [
            json!({"columns": ["s"], "buckets": 0}),
            json!({"columns": ["s"], "buckets": 10, "seed": 4294967296u64}),
        ] {
            assert!(crate::testing::try_make(NAME, &config).is_err(), "{config}");
        }
        let floats = batch_of(vec![(
            "f",
            Arc::new(mlpipe_plugin_api::arrow::array::Float64Array::from(vec![
                1.0,
            ])) as ArrayRef,
        )]);
        let t = make(NAME, &json!({"columns": ["f"], "buckets": 10}));
        let err = t.output_schema(&floats.schema()).unwrap_err();
        assert!(
            err.message()
                .contains("only string or integer columns can be selected"),
            "{err}"
        );
    }
}
