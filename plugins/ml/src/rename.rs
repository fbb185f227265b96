//! `rename`: renames columns by a table `{ old = "new" }`; zero copy (the arrays, types
//! and field metadata are kept). A name that is not an input column, or a result with two
//! columns of the same name, is an error.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::RecordBatchOptions;
use mlpipe_plugin_api::arrow::datatypes::{Field, Schema};
use mlpipe_plugin_api::{
    ColumnUsage, Config, ConfigKey, ConfigType, Error, RecordBatch, Result, SchemaRef, Transform,
};

use crate::columns::PerSchema;

const NAME: &str = "rename";

/// The config keys of `rename`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "mapping",
            ConfigType::Table,
            "old name = new name, e.g. mapping = { f0 = \"age\" }",
        )
        .required(),
    ]
}

/// Renames columns.
pub(crate) struct Rename {
    mapping: BTreeMap<String, String>,
    output: PerSchema<SchemaRef>,
}

impl Rename {
    /// Builds the transform from its validated config.
    pub(crate) fn from_config(config: &Config) -> Result<Rename> {
        let mapping: BTreeMap<String, String> = config.get("mapping")?.unwrap_or_default();
        if mapping.is_empty() {
            return Err(Error::config(format!(
                "key `mapping` of transform `{NAME}` is empty; give at least one old = \"new\" pair"
            )));
        }
        if let Some((old, _)) = mapping.iter().find(|(_, new)| new.is_empty()) {
            return Err(Error::config(format!(
                "key `mapping` of transform `{NAME}`: the new name of `{old}` is empty"
            )));
        }
        Ok(Rename {
            mapping,
            output: PerSchema::default(),
        })
    }

    fn renamed(&self, input: &Schema) -> Result<Schema> {
        for old in self.mapping.keys() {
            if input.index_of(old).is_err() {
                let names: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(Error::config(format!(
                    "key `mapping` of transform `{NAME}`: there is no input column `{old}`; the input columns are: {}",
                    names.join(", ")
                )));
            }
        }
        let fields: Vec<Field> = input
            .fields()
            .iter()
            .map(|f| match self.mapping.get(f.name()) {
                Some(new) => f.as_ref().clone().with_name(new),
                None => f.as_ref().clone(),
            })
            .collect();
        let mut names: Vec<&String> = fields.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::config(format!(
                "transform `{NAME}` would make two columns named `{}`",
                pair[0]
            )));
        }
        Ok(Schema::new_with_metadata(fields, input.metadata().clone()))
    }
}

impl Transform for Rename {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(Arc::new(self.renamed(input)?))
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut output = std::mem::take(&mut self.output);
        let schema = output
            .get(&batch.schema(), |input| Ok(Arc::new(self.renamed(input)?)))
            .cloned();
        self.output = output;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            schema?,
            batch.columns().to_vec(),
            &options,
        )?)
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        self.renamed(input)?;
        Ok(Some(ColumnUsage {
            reads: Vec::new(),
            writes: self
                .mapping
                .iter()
                .flat_map(|(old, new)| [old.clone(), new.clone()])
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{ArrayRef, Int64Array, StringArray};
    use serde_json::json;

    use crate::testing::{batch_of, make, transform};

    #[test]
    fn renames_in_place_without_copying() {
        let input = batch_of(vec![
            ("a", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("b", Arc::new(StringArray::from(vec!["x"]))),
        ]);
        let mut t = make("rename", &json!({"mapping": {"a": "age"}}));
        let out = transform(&mut *t, input.clone());
        assert_eq!(out.schema().field(0).name(), "age");
        assert_eq!(out.schema().field(1).name(), "b");
        assert!(Arc::ptr_eq(out.column(0), input.column(0)));
    }

    #[test]
    fn missing_columns_and_collisions_are_errors() {
        let input = batch_of(vec![
            ("a", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("b", Arc::new(Int64Array::from(vec![2]))),
        ]);
        let mut t = make("rename", &json!({"mapping": {"c": "d"}}));
        let err = t.transform(input.clone()).unwrap_err();
        assert!(err.message().contains("no input column `c`"), "{err}");
        let t = make("rename", &json!({"mapping": {"a": "b"}}));
        let err = t.output_schema(&input.schema()).unwrap_err();
        assert!(err.message().contains("two columns named `b`"), "{err}");
        // Swapping names is fine.
        let mut t = make("rename", &json!({"mapping": {"a": "b", "b": "a"}}));
        let out = transform(&mut *t, input);
        assert_eq!(out.schema().field(0).name(), "b");
        assert!(crate::testing::try_make("rename", &json!({"mapping": {}})).is_err());
    }
}
