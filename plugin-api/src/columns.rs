//! Column selection, shared by every standard component: a list of column names and glob
//! patterns (`*` matches any run of characters, `?` exactly one, anything else itself), as
//! keys such as `columns = ["f*", "age"]` hold them, resolved against a schema.
//!
//! Rules, the same everywhere:
//! - the result is in list order (a column appears once, where its first matching entry
//!   puts it);
//! - a component that only accepts some types (e.g. numeric columns) lets a glob pattern
//!   match only columns of those types, while a plain name of a column of another type is
//!   an error naming the column, its type and what is accepted;
//! - an entry that matches no (acceptable) column is an error listing the columns.

use arrow::datatypes::{DataType, Schema};

use crate::{ComponentKind, Config, Error, Result};

/// Which column types a component accepts, with a description for error messages.
#[derive(Clone, Copy)]
pub struct Accepts {
    /// Whether a column of this type is accepted.
    pub test: fn(&DataType) -> bool,
    /// What is accepted, e.g. "numeric (integer or floating-point)".
    pub what: &'static str,
}

impl Accepts {
    /// Every type.
    pub const ANY: Accepts = Accepts {
        test: |_| true,
        what: "any",
    };
}

/// A list of column names and glob patterns from a component's config.
#[derive(Debug, Clone)]
pub struct Selection {
    kind: ComponentKind,
    component: &'static str,
    key: &'static str,
    patterns: Vec<String>,
}

impl Selection {
    /// Reads the list under `key` of the config of `component`, a `kind`: non-empty, no
    /// empty entries.
    pub fn from_config(
        config: &Config,
        kind: ComponentKind,
        component: &'static str,
        key: &'static str,
    ) -> Result<Selection> {
        let patterns: Vec<String> = config.require(key)?;
        Selection::new(kind, component, key, patterns)
    }

    /// A selection from a list read elsewhere (checked like [`Selection::from_config`]).
    pub fn new(
        kind: ComponentKind,
        component: &'static str,
        key: &'static str,
        patterns: Vec<String>,
    ) -> Result<Selection> {
        if patterns.is_empty() {
            return Err(Error::config(format!(
                "key `{key}` of {kind} `{component}` is empty; list at least one column name or pattern, e.g. {key} = [\"label\", \"feature_*\"]"
            )));
        }
        if let Some(empty) = patterns.iter().position(String::is_empty) {
            return Err(Error::config(format!(
                "key `{key}` of {kind} `{component}`: entry {empty} is an empty string; write a column name or a pattern such as \"x_*\""
            )));
        }
        Ok(Selection {
            kind,
            component,
            key,
            patterns,
        })
    }

    /// The indices of the selected columns of `schema`, in list order.
    pub fn resolve(&self, schema: &Schema, accepts: Accepts) -> Result<Vec<usize>> {
        let fields = schema.fields();
        let mut taken = vec![false; fields.len()];
        let mut indices = Vec::new();
        for pattern in &self.patterns {
            let is_glob = pattern.contains(['*', '?']);
            let mut matched = false;
            for (index, field) in fields.iter().enumerate() {
                if !glob_match(pattern, field.name()) {
                    continue;
                }
                if !(accepts.test)(field.data_type()) {
                    if is_glob {
                        continue;
                    }
                    return Err(Error::config(format!(
                        "key `{}` of {} `{}`: column `{}` has type {}; only {} columns can be selected here",
                        self.key,
                        self.kind,
                        self.component,
                        field.name(),
                        field.data_type(),
                        accepts.what
                    )));
                }
                matched = true;
                if !taken[index] {
                    taken[index] = true;
                    indices.push(index);
                }
            }
            if !matched {
                return Err(self.unmatched(pattern, schema, accepts));
            }
        }
        Ok(indices)
    }

    /// Whether a column of this name is selected (whatever its type).
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, name))
    }

    /// The error for a pattern that matches no column: names it and lists the columns.
    fn unmatched(&self, pattern: &str, schema: &Schema, accepts: Accepts) -> Error {
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
        let kind = if accepts.what == Accepts::ANY.what {
            String::new()
        } else {
            format!("{} ", accepts.what)
        };
        Error::config(format!(
            "key `{}` of {} `{}`: `{pattern}` matches no {kind}input column{hint}; the input columns are: {listed}",
            self.key, self.kind, self.component
        ))
    }
}

/// Whether `text` matches the glob `pattern`: `*` matches any run of characters (also
/// none), `?` exactly one character, anything else itself. Linear-time backtracking over
/// the last `*` only, which is enough because `*` is the only variable-length token.
pub fn glob_match(pattern: &str, text: &str) -> bool {
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
    use arrow::datatypes::Field;

    use super::*;

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

    const NUMERIC: Accepts = Accepts {
        test: |ty| ty.is_numeric(),
        what: "numeric (integer or floating-point)",
    };

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("f1", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("f2", DataType::Float32, true),
            Field::new("flag", DataType::Utf8, true),
        ])
    }

    fn selection(patterns: &[&str]) -> Selection {
        Selection::new(
            ComponentKind::Transform,
            "test",
            "columns",
            patterns.iter().map(|p| p.to_string()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn globs_skip_unaccepted_types_and_names_of_them_are_errors() {
        let s = schema();
        let numeric = NUMERIC;
        assert_eq!(selection(&["f*"]).resolve(&s, numeric).unwrap(), [1, 3]);
        assert_eq!(selection(&["*"]).resolve(&s, numeric).unwrap(), [0, 1, 3]);
        let err = selection(&["name"]).resolve(&s, numeric).unwrap_err();
        assert!(
            err.message()
                .contains("column `name` has type Utf8; only numeric (integer or floating-point) columns can be selected here"),
            "{err}"
        );
        let err = selection(&["n*"]).resolve(&s, numeric).unwrap_err();
        assert!(
            err.message()
                .contains("`n*` matches no numeric (integer or floating-point) input column"),
            "{err}"
        );
        assert!(err.message().contains("id, f1, name, f2, flag"), "{err}");
    }

    #[test]
    fn list_order_and_each_column_once() {
        let s = schema();
        assert_eq!(
            selection(&["flag", "f?", "*"])
                .resolve(&s, Accepts::ANY)
                .unwrap(),
            [4, 1, 3, 0, 2]
        );
        let err = selection(&["ID"]).resolve(&s, Accepts::ANY).unwrap_err();
        assert!(err.message().contains("did you mean `id`?"), "{err}");
    }

    #[test]
    fn empty_lists_and_entries_are_rejected() {
        assert!(Selection::new(ComponentKind::Transform, "t", "columns", vec![]).is_err());
        let err = Selection::new(
            ComponentKind::Transform,
            "t",
            "columns",
            vec!["a".into(), String::new()],
        )
        .unwrap_err();
        assert!(
            err.message().contains("entry 1 is an empty string"),
            "{err}"
        );
    }
}
