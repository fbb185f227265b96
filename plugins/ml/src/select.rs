//! The `select` transform: keeps the columns named by a list of column names and glob
//! patterns (`*` matches any run of characters, `?` exactly one), in the order of the list.
//! Every column appears at most once (where its first matching entry puts it); an entry
//! that matches no input column is an error. Selection is zero copy.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::datatypes::Schema;
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Error, RecordBatch, Result, SchemaRef, Transform,
};

/// The config keys of `select`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "columns",
            ConfigType::StringList,
            "column names or glob patterns (`*`, `?`), output in this order; a pattern matching nothing is an error",
        )
        .required(),
    ]
}

/// Keeps the columns matching `patterns`.
pub(crate) struct Select {
    patterns: Vec<String>,
    /// The input schema seen last and the column indices it resolved to.
    resolved: Option<(SchemaRef, Vec<usize>)>,
}

impl Select {
    /// Builds the transform from its validated config.
    pub(crate) fn from_config(config: &Config) -> Result<Select> {
        let patterns: Vec<String> = config.require("columns")?;
        if patterns.is_empty() {
            return Err(Error::config(
                "key `columns` of transform `select` is empty; list at least one column name or pattern, e.g. columns = [\"label\", \"feature_*\"]",
            ));
        }
        if let Some(empty) = patterns.iter().position(String::is_empty) {
            return Err(Error::config(format!(
                "key `columns` of transform `select`: entry {empty} is an empty string; write a column name or a pattern such as \"x_*\""
            )));
        }
        Ok(Select {
            patterns,
            resolved: None,
        })
    }

    /// The indices of the selected columns of `schema`, in output order.
    fn resolve(&self, schema: &Schema) -> Result<Vec<usize>> {
        let fields = schema.fields();
        let mut taken = vec![false; fields.len()];
        let mut indices = Vec::new();
        for pattern in &self.patterns {
            let mut matched = false;
            for (index, field) in fields.iter().enumerate() {
                if !glob_match(pattern, field.name()) {
                    continue;
                }
                matched = true;
                if let Some(slot) = taken.get_mut(index)
                    && !*slot
                {
                    *slot = true;
                    indices.push(index);
                }
            }
            if !matched {
                return Err(unmatched(pattern, schema));
            }
        }
        Ok(indices)
    }

    /// The indices for a batch of schema `schema`, resolved once per distinct schema.
    fn indices_for(&mut self, schema: &SchemaRef) -> Result<&[usize]> {
        let stale = match &self.resolved {
            Some((seen, _)) => !(Arc::ptr_eq(seen, schema) || seen.fields() == schema.fields()),
            None => true,
        };
        if stale {
            let indices = self.resolve(schema)?;
            self.resolved = Some((schema.clone(), indices));
        }
        Ok(self
            .resolved
            .as_ref()
            .map(|(_, indices)| indices.as_slice())
            .unwrap_or_default())
    }
}

/// The error for a pattern that matches no column: names it and lists the input columns.
fn unmatched(pattern: &str, schema: &Schema) -> Error {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let listed = if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    };
    let hint = names
        .iter()
        .find(|name| name.eq_ignore_ascii_case(pattern))
        .map(|name| format!(" (did you mean `{name}`? names are case-sensitive)"))
        .unwrap_or_default();
    Error::config(format!(
        "key `columns` of transform `select`: `{pattern}` matches no input column{hint}; the input columns are: {listed}"
    ))
}

impl Transform for Select {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let indices = self.resolve(input)?;
        Ok(Arc::new(input.project(&indices)?))
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        let indices = self.indices_for(&schema)?;
        Ok(batch.project(indices)?)
    }
}

/// Whether `text` matches the glob `pattern`: `*` matches any run of characters (also
/// none), `?` exactly one character, anything else itself. Linear-time backtracking over
/// the last `*` only, which is enough because `*` is the only variable-length token.
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // The position of the last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pattern.get(p), text.get(t)) {
            (Some('*'), _) => {
                star = Some((p, t));
                p += 1;
            }
            (Some(&wanted), Some(&got)) if wanted == '?' || wanted == got => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry.
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{ArrayRef, Int64Array};
    use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
    use mlpipe_plugin_api::{ErrorKind, RecordBatch, Transform};
    use serde_json::json;

    use super::glob_match;

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
        crate::plugin()
            .create_transform("select", &json!({ "columns": columns }))
            .unwrap()
    }

    fn names(schema: &Schema) -> Vec<String> {
        schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("a", "a"));
        assert!(!glob_match("a", "ab"));
        assert!(!glob_match("ab", "a"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*_mm", "bill_length_mm"));
        assert!(!glob_match("*_mm", "bill_length_cm"));
        assert!(glob_match("f?", "f1"));
        assert!(!glob_match("f?", "f"));
        assert!(!glob_match("f?", "f12"));
        assert!(glob_match("a*b*c", "a__b__b__c"));
        assert!(!glob_match("a*b*c", "a__b__b__"));
        assert!(glob_match("**x", "x"));
        assert!(glob_match("é?", "éü"));
        assert!(!glob_match("", "a"));
        assert!(glob_match("", ""));
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
    fn bad_configs_are_rejected() {
        let plugin = crate::plugin();
        let err = plugin
            .create_transform("select", &json!({ "columns": [] }))
            .err()
            .unwrap();
        assert!(err.message().contains("`columns`"), "{err}");
        let err = plugin.create_transform("select", &json!({})).err().unwrap();
        assert!(
            err.message().contains("missing required key `columns`"),
            "{err}"
        );
        let err = plugin
            .create_transform("select", &json!({ "columns": "a" }))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    }
}
