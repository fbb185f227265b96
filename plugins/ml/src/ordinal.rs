//! `ordinal`: scikit-learn's `OrdinalEncoder`. Fits each column's categories, sorted
//! (strings by UTF-8 bytes, numbers by value), and maps every value to its position.
//!
//! - Output: int32, never null. Nulls (and NaN) map to `null_code` (-1; scikit-learn's
//!   `encoded_missing_value`) and are never a category.
//! - A value not seen when fitting is an error naming it, unless `unknown_code` is set
//!   (scikit-learn's `handle_unknown="use_encoded_value"`, `unknown_value`).
//! - `min_frequency` (a count, or a fraction of the rows when below 1) and
//!   `max_categories` group infrequent categories into one code, placed after the frequent
//!   ones, exactly as scikit-learn does.
//! - Fitted parameters per column: `categories` (the frequent categories; code = index),
//!   `infrequent` (the categories sharing code `len(categories)`), `missing` (missing
//!   values seen).

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{ArrayRef, Int32Array};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field};
use mlpipe_plugin_api::{ComponentKind, Config, ConfigKey, ConfigType, Error, Result};

use crate::columns::{self, Accepts, Selection};
use crate::columnwise::{ColumnOp, Columnwise, not_fitted};
use crate::encoders::{Categories, Frequency, frequency_keys};
use crate::stats::vocab::{CATEGORICAL, Counts, Kind, Lookup, Position, unknown_error};

const NAME: &str = "ordinal";

/// The config keys of `ordinal`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    let mut keys = vec![columns::key(
        "string, integer or float columns to encode (names or glob patterns)",
    )];
    keys.extend(frequency_keys());
    keys.extend([
        ConfigKey::new(
            "unknown_code",
            ConfigType::Integer,
            "the code of values not seen when fitting; when absent they are an error",
        ),
        ConfigKey::new(
            "null_code",
            ConfigType::Integer,
            "the code of nulls and NaN",
        )
        .default(-1),
    ]);
    keys
}

/// Builds the transform from its validated config.
pub(crate) fn from_config(config: &Config) -> Result<Columnwise<Ordinal>> {
    let op = Ordinal {
        frequency: Frequency::from_config(config, NAME)?,
        unknown_code: config.get("unknown_code")?,
        null_code: config.require("null_code")?,
    };
    Ok(Columnwise::new(
        op,
        Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
    ))
}

/// The operation on one column.
pub(crate) struct Ordinal {
    frequency: Frequency,
    unknown_code: Option<i32>,
    null_code: i32,
}

/// A column's lookup and the code of each of its positions.
pub(crate) struct Codes {
    lookup: Lookup,
    codes: Vec<i32>,
}

impl ColumnOp for Ordinal {
    const NAME: &'static str = NAME;
    type Stats = Counts;
    type Params = Categories;
    type Prepared = Codes;

    fn accepts(&self) -> Accepts {
        CATEGORICAL
    }

    fn output_field(&self, input: &Field) -> Result<Field> {
        Ok(input
            .clone()
            .with_data_type(DataType::Int32)
            .with_nullable(false))
    }

    fn needs_fit(&self) -> bool {
        true
    }

    fn new_stats(&self, field: &Field) -> Result<Counts> {
        Kind::of(field.data_type())
            .map(Counts::new)
            .ok_or_else(|| Error::internal("ordinal fitted on a column it does not accept"))
    }

    fn finish(&self, _: &str, counts: Counts) -> Result<Categories> {
        let (categories, infrequent, missing) = self.frequency.split(counts, false);
        Ok(Categories {
            categories,
            infrequent,
            missing,
        })
    }

    fn prepare(&self, params: Option<&Categories>, field: &Field) -> Result<Codes> {
        let params = params.ok_or_else(|| not_fitted(NAME))?;
        let frequent = params.categories.len();
        let outputs = frequent + usize::from(!params.infrequent.is_empty());
        if let Some(code) = self.unknown_code
            && usize::try_from(code).is_ok_and(|c| c < outputs)
        {
            return Err(Error::config(format!(
                "key `unknown_code` = {code} of transform `{NAME}` is the code of a category (codes 0..{outputs} are taken); use a negative code or one of at least {outputs}"
            )));
        }
        let codes = (0..frequent + params.infrequent.len())
            .map(|i| i.min(frequent) as i32)
            .collect();
        Ok(Codes {
            lookup: params.lookup(field.data_type())?,
            codes,
        })
    }

    fn apply(&self, prepared: &Codes, array: &ArrayRef) -> Result<ArrayRef> {
        let positions = prepared.lookup.positions(array.as_ref())?;
        let unknown = self.unknown_code.unwrap_or(i32::MIN);
        let mut saw_unknown = false;
        let codes: Vec<i32> = positions
            .iter()
            .map(|p| match p {
                Position::At(i) => prepared.codes[*i as usize],
                Position::Missing => self.null_code,
                Position::Unknown => {
                    saw_unknown = true;
                    unknown
                }
            })
            .collect();
        if saw_unknown && self.unknown_code.is_none() {
            return Err(unknown_error(
                array.as_ref(),
                &positions,
                "set `unknown_code` to give such values a code",
            ));
        }
        Ok(Arc::new(Int32Array::from(codes)))
    }
}

#[cfg(test)]
mod tests {
    use mlpipe_plugin_api::arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
    use mlpipe_plugin_api::arrow::datatypes::Int32Type;
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, fit_in_parts, make, transform};

    fn codes(out: &mlpipe_plugin_api::RecordBatch, column: usize) -> Vec<i32> {
        out.column(column)
            .as_primitive::<Int32Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn sorted_categories_null_code_and_every_kind() {
        let batch = batch_of(vec![
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    Some("a"),
                    None,
                    Some("c"),
                    Some("a"),
                ])) as ArrayRef,
            ),
            (
                "i",
                Arc::new(Int64Array::from(vec![
                    Some(10),
                    Some(-5),
                    Some(10),
                    None,
                    Some(0),
                ])),
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![
                    Some(0.5),
                    Some(f64::NAN),
                    Some(-1.0),
                    Some(0.5),
                    None,
                ])),
            ),
        ]);
        let (params, mut t) = fit_in_parts(NAME, &json!({"columns": ["*"]}), &batch, 3);
        assert_eq!(params["columns"][0]["categories"], json!(["a", "b", "c"]));
        assert_eq!(params["columns"][0]["missing"], 1);
        assert_eq!(params["columns"][1]["categories"], json!([-5, 0, 10]));
        assert_eq!(params["columns"][2]["categories"], json!([-1.0, 0.5]));
        let out = transform(&mut *t, batch);
        assert_eq!(codes(&out, 0), [1, 0, -1, 2, 0]);
        assert_eq!(codes(&out, 1), [2, 0, 2, -1, 1]);
        assert_eq!(codes(&out, 2), [1, -1, 0, 1, -1]);
        assert_eq!(out.column(0).null_count(), 0);
    }

    #[test]
    fn infrequent_categories_share_the_last_code() {
        // Checked against scikit-learn 1.9.1: OrdinalEncoder(min_frequency=2) codes
        // a→0, b→2 (infrequent), c→1.
        let values = ["a", "a", "a", "a", "a", "b", "c", "c", "c"];
        let batch = batch_of(vec![(
            "s",
            Arc::new(StringArray::from(values.to_vec())) as ArrayRef,
        )]);
        let config = json!({"columns": ["s"], "min_frequency": 2});
        let (params, mut t) = fit_in_parts(NAME, &config, &batch, 2);
        assert_eq!(params["columns"][0]["infrequent"], json!(["b"]));
        let out = transform(&mut *t, batch.clone());
        assert_eq!(codes(&out, 0), [0, 0, 0, 0, 0, 2, 1, 1, 1]);
        // A fraction of the rows: 0.2 × 9 = 1.8, so "b" (1) is infrequent, "c" (3) not.
        let config = json!({"columns": ["s"], "min_frequency": 0.2});
        let (params, _) = fit_in_parts(NAME, &config, &batch, 1);
        assert_eq!(params["columns"][0]["infrequent"], json!(["b"]));
        let config = json!({"columns": ["s"], "max_categories": 2});
        let (params, _) = fit_in_parts(NAME, &config, &batch, 1);
        assert_eq!(params["columns"][0]["categories"], json!(["a"]));
        assert_eq!(params["columns"][0]["infrequent"], json!(["b", "c"]));
    }

    #[test]
    fn unknown_values_are_an_error_or_get_the_unknown_code() {
        let fit = batch_of(vec![(
            "s",
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        )]);
        let apply = batch_of(vec![(
            "s",
            Arc::new(StringArray::from(vec!["b", "zz"])) as ArrayRef,
        )]);
        let (params, mut t) = fit_in_parts(NAME, &json!({"columns": ["s"]}), &fit, 1);
        let err = t.transform(apply.clone()).unwrap_err();
        assert!(err.message().contains("unknown category `zz`"), "{err}");
        assert!(err.message().contains("column `s`"), "{err}");
        assert_eq!(err.rows(), Some(1..2));

        let config = json!({"columns": ["s"], "unknown_code": 7});
        let mut t = make(NAME, &config);
        t.load_fit(&params).unwrap();
        assert_eq!(codes(&transform(&mut *t, apply.clone()), 0), [1, 7]);

        let config = json!({"columns": ["s"], "unknown_code": 1});
        let mut t = make(NAME, &config);
        t.load_fit(&params).unwrap();
        let err = t.transform(apply).unwrap_err();
        assert!(err.message().contains("is the code of a category"), "{err}");
    }

    #[test]
    fn bad_frequency_keys_are_rejected() {
        for config in [
            json!({"columns": ["s"], "min_frequency": 1.5}),
            json!({"columns": ["s"], "min_frequency": 0}),
            json!({"columns": ["s"], "max_categories": 0}),
        ] {
            assert!(crate::testing::try_make(NAME, &config).is_err(), "{config}");
        }
    }
}
