//! `cast`: converts columns to another type with arrow's cast kernels.
//!
//! - `to`: a type name: `bool`, `int8` … `int64`, `uint8` … `uint64`, `float16`,
//!   `float32`, `float64`, `string`, `large_string`, `binary`, `date32`, `date64`, or any
//!   type in arrow's notation (`Timestamp(Millisecond, None)`, `Dictionary(Int32, Utf8)`).
//! - A value that cannot be converted (`"abc"` to int, 300 to int8) is an error naming the
//!   column, the row and the value (`on_error = "fail"`, the default), or becomes null
//!   (`on_error = "null"`). Nulls stay null. Casting to the type a column already has is
//!   zero copy.
//! - A pair of types arrow cannot cast between is an error when the schema is checked.

use std::str::FromStr;

use mlpipe_plugin_api::arrow::array::{Array, ArrayRef};
use mlpipe_plugin_api::arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field};
use mlpipe_plugin_api::arrow::util::display::array_value_to_string;
use mlpipe_plugin_api::{ComponentKind, Config, ConfigKey, ConfigType, Error, Result};

use crate::columns::{self, Accepts, Selection};
use crate::columnwise::{ColumnOp, Columnwise};
use crate::fitting::NoStats;

const NAME: &str = "cast";

/// The config keys of `cast`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        columns::key("columns to convert (names or glob patterns)"),
        ConfigKey::new(
            "to",
            ConfigType::String,
            "the target type, e.g. `float32`, `int64`, `string`, `Timestamp(Millisecond, None)`",
        )
        .required(),
        ConfigKey::new(
            "on_error",
            ConfigType::String,
            "a value that cannot be converted: `fail` (an error naming it) or `null`",
        )
        .default("fail"),
    ]
}

/// Parses a type name: a short alias or arrow's notation.
pub(crate) fn parse_type(name: &str) -> Result<DataType> {
    use DataType::*;
    let alias = match name {
        "bool" | "boolean" => Some(Boolean),
        "int8" => Some(Int8),
        "int16" => Some(Int16),
        "int32" => Some(Int32),
        "int64" => Some(Int64),
        "uint8" => Some(UInt8),
        "uint16" => Some(UInt16),
        "uint32" => Some(UInt32),
        "uint64" => Some(UInt64),
        "float16" => Some(Float16),
        "float32" => Some(Float32),
        "float64" => Some(Float64),
        "string" | "utf8" => Some(Utf8),
        "large_string" => Some(LargeUtf8),
        "binary" => Some(Binary),
        "date32" => Some(Date32),
        "date64" => Some(Date64),
        _ => None,
    };
    match alias {
        Some(ty) => Ok(ty),
        None => DataType::from_str(name).map_err(|_| {
            Error::config(format!(
                "`{name}` is not a type: use bool, int8 … int64, uint8 … uint64, float16, float32, float64, string, large_string, binary, date32, date64, or arrow's notation such as `Timestamp(Millisecond, None)`"
            ))
        }),
    }
}

/// Builds the transform from its validated config.
pub(crate) fn from_config(config: &Config) -> Result<Columnwise<Cast>> {
    let to = parse_type(&config.require::<String>("to")?)
        .map_err(|e| e.context(format!("key `to` of transform `{NAME}`")))?;
    let on_error: String = config.require("on_error")?;
    let to_null = match on_error.as_str() {
        "fail" => false,
        "null" => true,
        other => {
            return Err(Error::config(format!(
                "key `on_error` of transform `{NAME}` must be `fail` or `null`, not `{other}`"
            )));
        }
    };
    Ok(Columnwise::new(
        Cast { to, to_null },
        Selection::from_config(config, ComponentKind::Transform, NAME, "columns")?,
    ))
}

/// The operation on one column.
pub(crate) struct Cast {
    to: DataType,
    to_null: bool,
}

impl ColumnOp for Cast {
    const NAME: &'static str = NAME;
    type Stats = NoStats;
    type Params = ();
    type Prepared = ();

    fn accepts(&self) -> Accepts {
        Accepts::ANY
    }

    fn output_field(&self, input: &Field) -> Result<Field> {
        if !can_cast_types(input.data_type(), &self.to) {
            return Err(Error::config(format!(
                "column `{}` cannot be cast from {} to {}",
                input.name(),
                input.data_type(),
                self.to
            )));
        }
        Ok(input
            .clone()
            .with_data_type(self.to.clone())
            .with_nullable(input.is_nullable() || self.to_null))
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
        let lenient = CastOptions {
            safe: true,
            ..Default::default()
        };
        if self.to_null {
            return Ok(cast_with_options(array, &self.to, &lenient)?);
        }
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        cast_with_options(array, &self.to, &strict).map_err(|error| {
            // Find the first value that does not convert, to name it.
            let failing = cast_with_options(array, &self.to, &lenient).ok().and_then(|cast| {
                (0..array.len()).find(|&row| array.is_valid(row) && cast.is_null(row))
            });
            match failing {
                Some(row) => {
                    let value =
                        array_value_to_string(array, row).unwrap_or_else(|_| "?".to_string());
                    Error::bad_data(format!(
                        "cannot cast the value `{value}` to {}; set on_error = \"null\" to make such values null",
                        self.to
                    ))
                    .with_rows(row as u64..row as u64 + 1)
                }
                None => Error::from(error),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{AsArray, Float64Array, Int64Array, StringArray};
    use mlpipe_plugin_api::arrow::datatypes::{Float32Type, Int8Type};
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, make, transform};

    #[test]
    fn casts_with_aliases_and_arrow_notation() {
        assert_eq!(parse_type("float32").unwrap(), DataType::Float32);
        assert_eq!(
            parse_type("Timestamp(Millisecond, None)").unwrap(),
            DataType::Timestamp(
                mlpipe_plugin_api::arrow::datatypes::TimeUnit::Millisecond,
                None
            )
        );
        let err = parse_type("float").unwrap_err();
        assert!(err.message().contains("is not a type"), "{err}");

        let batch = batch_of(vec![
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(1.5), None])) as ArrayRef,
            ),
            ("s", Arc::new(StringArray::from(vec!["2.25", "-1"]))),
        ]);
        let mut t = make(NAME, &json!({"columns": ["*"], "to": "float32"}));
        let out = transform(&mut *t, batch);
        let x = out.column(0).as_primitive::<Float32Type>();
        assert_eq!(x.value(0), 1.5);
        assert!(x.is_null(1));
        assert_eq!(
            out.column(1).as_primitive::<Float32Type>().values(),
            &[2.25, -1.0]
        );
    }

    #[test]
    fn failures_name_the_row_and_value_or_become_null() {
        let batch = batch_of(vec![(
            "i",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(300)])) as ArrayRef,
        )]);
        let mut t = make(NAME, &json!({"columns": ["i"], "to": "int8"}));
        let err = t.transform(batch.clone()).unwrap_err();
        assert!(
            err.message()
                .contains("cannot cast the value `300` to Int8"),
            "{err}"
        );
        assert!(err.message().contains("column `i`"), "{err}");
        assert_eq!(err.rows(), Some(2..3));

        let mut t = make(
            NAME,
            &json!({"columns": ["i"], "to": "int8", "on_error": "null"}),
        );
        let out = transform(&mut *t, batch);
        let i = out.column(0).as_primitive::<Int8Type>();
        assert_eq!(i.value(0), 1);
        assert!(i.is_null(1) && i.is_null(2));
    }

    #[test]
    fn impossible_casts_are_refused_with_the_schema() {
        let batch = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
        )]);
        let t = make(NAME, &json!({"columns": ["x"], "to": "Struct()"}));
        let err = t.output_schema(&batch.schema());
        assert!(err.is_err());
    }
}
