//! `select` and `drop`: zero-copy projections by a list of column names and glob patterns
//! (`*` matches any run of characters, `?` exactly one).
//!
//! - `select` keeps the matching columns in the order of the list; every column appears at
//!   most once (where its first matching entry puts it).
//! - `drop` removes the matching columns and keeps the others in input order.
//!
//! In both, an entry that matches no input column is an error listing the columns.

use std::sync::Arc;

use mlpipe_plugin_api::{
    ColumnUsage, ComponentKind, Config, ConfigKey, RecordBatch, Result, SchemaRef, Transform,
};

use crate::columns::{self, Accepts, PerSchema, Selection};

/// The config keys of `select`.
pub(crate) fn select_keys() -> Vec<ConfigKey> {
    vec![columns::key(
        "column names or glob patterns (`*`, `?`), output in this order; a pattern matching nothing is an error",
    )]
}

/// The config keys of `drop`.
pub(crate) fn drop_keys() -> Vec<ConfigKey> {
    vec![columns::key(
        "column names or glob patterns (`*`, `?`) of the columns to remove; a pattern matching nothing is an error",
    )]
}

/// Keeps (`select`) or removes (`drop`) the columns matching a selection.
pub(crate) struct Projection {
    selection: Selection,
    drop: bool,
    /// The kept column indices per input schema.
    indices: PerSchema<Vec<usize>>,
}

impl Projection {
    /// `select` from its validated config.
    pub(crate) fn select(config: &Config) -> Result<Projection> {
        Projection::new(config, "select", false)
    }

    /// `drop` from its validated config.
    pub(crate) fn drop(config: &Config) -> Result<Projection> {
        Projection::new(config, "drop", true)
    }

    fn new(config: &Config, component: &'static str, drop: bool) -> Result<Projection> {
        Ok(Projection {
            selection: Selection::from_config(
                config,
                ComponentKind::Transform,
                component,
                "columns",
            )?,
            drop,
            indices: PerSchema::default(),
        })
    }

    /// The indices of the kept columns, in output order.
    fn kept(selection: &Selection, drop: bool, schema: &SchemaRef) -> Result<Vec<usize>> {
        let matched = selection.resolve(schema, Accepts::ANY)?;
        Ok(if drop {
            (0..schema.fields().len())
                .filter(|i| !matched.contains(i))
                .collect()
        } else {
            matched
        })
    }
}

impl Transform for Projection {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let indices = Projection::kept(&self.selection, self.drop, input)?;
        Ok(Arc::new(input.project(&indices)?))
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let (selection, drop) = (&self.selection, self.drop);
        let indices = self.indices.get(&batch.schema(), |schema| {
            Projection::kept(selection, drop, schema)
        })?;
        Ok(batch.project(indices)?)
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        let kept = Projection::kept(&self.selection, self.drop, input)?;
        let removed = (0..input.fields().len())
            .filter(|i| !kept.contains(i))
            .map(|i| input.field(i).name().clone())
            .collect();
        Ok(Some(ColumnUsage {
            reads: Vec::new(),
            writes: removed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{ArrayRef, Int64Array};
    use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
    use mlpipe_plugin_api::{ErrorKind, RecordBatch, Transform};
    use serde_json::json;

    fn batch(names: &[&str]) -> RecordBatch {
        let fields: Vec<Field> = names
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, false))
            .collect();
        let columns: Vec<ArrayRef> = (0..names.len() as i64)
            .map(|i| Arc::new(Int64Array::from(vec![i, i * 10])) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn select(columns: serde_json::Value) -> Box<dyn Transform> {
        crate::testing::try_make("select", &json!({ "columns": columns })).unwrap()
    }

    fn names(schema: &Schema) -> Vec<String> {
        schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    #[test]
    fn selects_in_pattern_order_with_globs_each_column_once() {
        let input = batch(&["id", "x_1", "label", "x_2", "y"]);
        let mut t = select(json!(["label", "x_*", "*"]));
        let schema = t.output_schema(&input.schema()).unwrap();
        assert_eq!(names(&schema), ["label", "x_1", "x_2", "id", "y"]);

        let out = t.transform(input.clone()).unwrap();
        assert_eq!(out.schema(), schema);
        assert_eq!(out.num_rows(), 2);
        // Zero copy: the selected columns are the input's arrays.
        assert!(Arc::ptr_eq(out.column(0), input.column(2)));
        assert!(Arc::ptr_eq(out.column(4), input.column(4)));
    }

    #[test]
    fn question_mark_matches_one_character() {
        let input = batch(&["f1", "f10", "f2", "g1"]);
        let mut t = select(json!(["f?"]));
        let out = t.transform(input).unwrap();
        assert_eq!(names(&out.schema()), ["f1", "f2"]);
    }

    #[test]
    fn transform_follows_a_changed_input_schema() {
        let mut t = select(json!(["b*"]));
        let first = t.transform(batch(&["a", "b1"])).unwrap();
        assert_eq!(names(&first.schema()), ["b1"]);
        let second = t.transform(batch(&["b2", "a", "b3"])).unwrap();
        assert_eq!(names(&second.schema()), ["b2", "b3"]);
    }

    #[test]
    fn unmatched_pattern_is_an_error_naming_it_and_the_columns() {
        let input = batch(&["species", "Island"]);
        let t = select(json!(["species", "body_*"]));
        let err = t.output_schema(&input.schema()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(
            err.message().contains("`body_*` matches no input column"),
            "{err}"
        );
        assert!(err.message().contains("species, Island"), "{err}");

        let mut t = select(json!(["island"]));
        let err = t.transform(input).unwrap_err();
        assert!(err.message().contains("did you mean `Island`?"), "{err}");
    }

    #[test]
    fn drop_removes_matches_and_keeps_input_order() {
        let input = batch(&["id", "x_1", "label", "x_2", "y"]);
        let mut t = crate::testing::try_make("drop", &json!({ "columns": ["y", "x_*"] })).unwrap();
        let out = t.transform(input.clone()).unwrap();
        assert_eq!(names(&out.schema()), ["id", "label"]);
        assert!(Arc::ptr_eq(out.column(1), input.column(2)));
        let usage = t.column_usage(&input.schema()).unwrap().unwrap();
        assert_eq!(usage.writes, ["x_1", "x_2", "y"]);
        let err = t.transform(batch(&["id"])).unwrap_err();
        assert!(
            err.message().contains("transform `drop`: `y` matches no"),
            "{err}"
        );
    }

    #[test]
    fn bad_configs_are_rejected() {
        let err = crate::testing::try_make("select", &json!({ "columns": [] }))
            .err()
            .unwrap();
        assert!(err.message().contains("`columns`"), "{err}");
        let err = crate::testing::try_make("select", &json!({}))
            .err()
            .unwrap();
        assert!(
            err.message().contains("missing required key `columns`"),
            "{err}"
        );
        let err = crate::testing::try_make("select", &json!({ "columns": "a" }))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    }
}
