//! Row filters: `filter` keeps the rows where a predicate is true (the predicate language
//! of `mlpipe_plugin_api::predicate`: comparisons, `and`/`or`/`not`, `is null`, `in
//! [...]`, SQL null semantics); `drop_nulls` drops the rows with missing values in the
//! selected columns (`how = "any"`, the default, or `"all"`; NaN counts as missing with
//! `nan_is_null = true`). Both count the rows they keep and drop.

use mlpipe_plugin_api::arrow::array::{Array, BooleanArray};
use mlpipe_plugin_api::arrow::buffer::BooleanBuffer;
use mlpipe_plugin_api::arrow::compute::filter_record_batch;
use mlpipe_plugin_api::arrow::datatypes::DataType;
use mlpipe_plugin_api::predicate::Predicate;
use mlpipe_plugin_api::{
    ColumnUsage, ComponentKind, Config, ConfigKey, ConfigType, Counters, Error, RecordBatch,
    Result, SchemaRef, Transform,
};

use crate::columns::{Accepts, PerSchema, Selection};
use crate::numeric::as_f64;

/// The config keys of `filter`.
pub(crate) fn filter_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "where",
            ConfigType::String,
            "the rows to keep, e.g. \"label = 1 and (age >= 18 or city in ['Oslo', 'Bergen'])\"",
        )
        .required(),
    ]
}

/// The config keys of `drop_nulls`.
pub(crate) fn drop_nulls_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "columns",
            ConfigType::StringList,
            "the columns to look at (names or glob patterns)",
        )
        .default(vec!["*"]),
        ConfigKey::new(
            "how",
            ConfigType::String,
            "`any`: drop a row with a missing value in any column; `all`: only when all are missing",
        )
        .default("any"),
        ConfigKey::new(
            "nan_is_null",
            ConfigType::Boolean,
            "count NaN in float columns as missing",
        )
        .default(false),
    ]
}

/// Rows kept and dropped, for the counters.
#[derive(Default)]
pub(crate) struct Tally {
    kept: u64,
    dropped: u64,
}

impl Tally {
    /// The rows of `batch` that `keep` marks, counted.
    pub(crate) fn apply(
        &mut self,
        batch: &RecordBatch,
        keep: &BooleanArray,
    ) -> Result<RecordBatch> {
        let kept = keep.true_count();
        self.kept += kept as u64;
        self.dropped += (batch.num_rows() - kept) as u64;
        if kept == batch.num_rows() {
            return Ok(batch.clone());
        }
        Ok(filter_record_batch(batch, keep)?)
    }

    /// `rows kept` and `rows dropped`.
    pub(crate) fn counters(&self) -> Counters {
        vec![
            ("rows kept".to_string(), self.kept),
            ("rows dropped".to_string(), self.dropped),
        ]
    }
}

/// Every column of `input`, as a row filter changes them all.
fn all_columns(input: &SchemaRef) -> Vec<String> {
    input.fields().iter().map(|f| f.name().clone()).collect()
}

/// Keeps the rows where a predicate is true.
pub(crate) struct Filter {
    predicate: Predicate,
    tally: Tally,
}

impl Filter {
    /// Builds the transform from its validated config.
    pub(crate) fn from_config(config: &Config) -> Result<Filter> {
        let text: String = config.require("where")?;
        let predicate =
            Predicate::parse(&text).map_err(|e| e.context("key `where` of transform `filter`"))?;
        Ok(Filter {
            predicate,
            tally: Tally::default(),
        })
    }
}

impl Transform for Filter {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.predicate
            .check(input)
            .map_err(|e| e.context("key `where` of transform `filter`"))?;
        Ok(input.clone())
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let keep = self
            .predicate
            .evaluate(&batch)
            .map_err(|e| e.context("transform `filter`"))?;
        self.tally.apply(&batch, &keep)
    }

    fn counters(&self) -> Counters {
        self.tally.counters()
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        self.output_schema(input)?;
        Ok(Some(ColumnUsage {
            reads: self
                .predicate
                .columns()
                .iter()
                .map(|c| c.to_string())
                .collect(),
            writes: all_columns(input),
        }))
    }
}

/// Drops the rows with missing values.
pub(crate) struct DropNulls {
    selection: Selection,
    all: bool,
    nan_is_null: bool,
    indices: PerSchema<Vec<usize>>,
    tally: Tally,
}

impl DropNulls {
    /// Builds the transform from its validated config.
    pub(crate) fn from_config(config: &Config) -> Result<DropNulls> {
        let how: String = config.require("how")?;
        let all = match how.as_str() {
            "any" => false,
            "all" => true,
            other => {
                return Err(Error::config(format!(
                    "key `how` of transform `drop_nulls` must be `any` or `all`, not `{other}`"
                )));
            }
        };
        Ok(DropNulls {
            selection: Selection::from_config(
                config,
                ComponentKind::Transform,
                "drop_nulls",
                "columns",
            )?,
            all,
            nan_is_null: config.require("nan_is_null")?,
            indices: PerSchema::default(),
            tally: Tally::default(),
        })
    }

    /// Whether each row has a value (not null, not NaN when asked) in column `array`.
    fn present(&self, array: &dyn Array) -> Result<BooleanBuffer> {
        let mut present = match array.logical_nulls() {
            Some(nulls) => nulls.inner().clone(),
            None => BooleanBuffer::new_set(array.len()),
        };
        if self.nan_is_null
            && matches!(
                array.data_type(),
                DataType::Float16 | DataType::Float32 | DataType::Float64
            )
        {
            let values = as_f64(array)?;
            let values = values.values();
            let number = BooleanBuffer::collect_bool(values.len(), |i| !values[i].is_nan());
            present = &present & &number;
        }
        Ok(present)
    }
}

impl Transform for DropNulls {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.selection.resolve(input, Accepts::ANY)?;
        Ok(input.clone())
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let selection = &self.selection;
        let indices = self
            .indices
            .get(&batch.schema(), |schema| {
                selection.resolve(schema, Accepts::ANY)
            })?
            .clone();
        let mut keep: Option<BooleanBuffer> = None;
        for index in indices {
            let present = self.present(batch.column(index).as_ref())?;
            keep = Some(match keep {
                None => present,
                Some(keep) if self.all => &keep | &present,
                Some(keep) => &keep & &present,
            });
        }
        let keep = keep.unwrap_or_else(|| BooleanBuffer::new_set(batch.num_rows()));
        self.tally.apply(&batch, &BooleanArray::new(keep, None))
    }

    fn counters(&self) -> Counters {
        self.tally.counters()
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        let reads = self
            .selection
            .resolve(input, Accepts::ANY)?
            .into_iter()
            .map(|i| input.field(i).name().clone())
            .collect();
        Ok(Some(ColumnUsage {
            reads,
            writes: all_columns(input),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{
        ArrayRef, AsArray, Float64Array, Int64Array, StringArray,
    };
    use mlpipe_plugin_api::arrow::datatypes::Int64Type;
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, make, transform};

    fn batch() -> RecordBatch {
        batch_of(vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef,
            ),
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(0.5),
                    None,
                    Some(f64::NAN),
                    Some(2.0),
                ])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("b"), None])),
            ),
        ])
    }

    fn ids(out: &RecordBatch) -> Vec<i64> {
        out.column(0).as_primitive::<Int64Type>().values().to_vec()
    }

    #[test]
    fn filter_keeps_rows_where_the_predicate_is_true() {
        let mut t = make("filter", &json!({"where": "x >= 0.5 or s in ['b']"}));
        let out = transform(&mut *t, batch());
        assert_eq!(ids(&out), [1, 3, 4]);
        assert_eq!(
            t.counters(),
            [
                ("rows kept".to_string(), 3),
                ("rows dropped".to_string(), 1)
            ]
        );
        let usage = t.column_usage(&batch().schema()).unwrap().unwrap();
        assert_eq!(usage.reads, ["x", "s"]);
    }

    #[test]
    fn filter_errors_name_the_key() {
        let err = crate::testing::try_make("filter", &json!({"where": "x >"}))
            .err()
            .unwrap();
        assert!(
            err.message().contains("key `where` of transform `filter`"),
            "{err}"
        );
        let t = make("filter", &json!({"where": "nope = 1"}));
        let err = t.output_schema(&batch().schema()).unwrap_err();
        assert!(err.message().contains("nope"), "{err}");
    }

    #[test]
    fn drop_nulls_any_all_and_nan() {
        let mut t = make("drop_nulls", &json!({}));
        assert_eq!(ids(&transform(&mut *t, batch())), [1, 3]);
        let mut t = make(
            "drop_nulls",
            &json!({"columns": ["x"], "nan_is_null": true}),
        );
        assert_eq!(ids(&transform(&mut *t, batch())), [1, 4]);
        let mut t = make("drop_nulls", &json!({"columns": ["x", "s"], "how": "all"}));
        assert_eq!(ids(&transform(&mut *t, batch())), [1, 3, 4]);
        assert_eq!(t.counters()[1], ("rows dropped".to_string(), 1));
    }
}
