//! Faults a component injects on request: a panic in a chosen method, an error at a
//! chosen row.

use std::ops::Range;

use mlpipe_plugin_api::arrow::array::{AsArray, RecordBatch};
use mlpipe_plugin_api::arrow::datatypes::Float64Type;
use mlpipe_plugin_api::{Config, ConfigKey, ConfigType, Error, Result};

/// What a component was configured to do wrong.
pub(crate) struct Faults {
    panic_in: Option<String>,
    fail_at_row: Option<u64>,
}

impl Faults {
    /// The config keys of the faults, for a component whose methods are `methods`.
    pub(crate) fn keys(methods: &[&str]) -> [ConfigKey; 2] {
        [
            ConfigKey::new(
                "panic_in",
                ConfigType::String,
                format!("panic when this method is called: {}", methods.join(", ")),
            ),
            ConfigKey::new(
                "fail_at_row",
                ConfigType::Integer,
                "return an error from the call that produces or receives this row number",
            ),
        ]
    }

    /// Reads the faults from a component's config.
    pub(crate) fn from_config(config: &Config, methods: &[&str]) -> Result<Faults> {
        let panic_in: Option<String> = config.get("panic_in")?;
        if let Some(method) = &panic_in
            && !methods.contains(&method.as_str())
        {
            return Err(Error::config(format!(
                "key `panic_in`: `{method}` is not a method of this component; use one of {}",
                methods.join(", ")
            )));
        }
        Ok(Faults {
            panic_in,
            fail_at_row: config.get("fail_at_row")?,
        })
    }

    /// Called first in every method: panics if this is the configured one.
    pub(crate) fn enter(&self, method: &str) {
        if self.panic_in.as_deref() == Some(method) {
            panic!("testkit: panicking in `{method}` as configured");
        }
    }

    /// Fails if the rows about to be produced include the configured row.
    pub(crate) fn check_range(&self, rows: Range<u64>) -> Result<()> {
        match self.fail_at_row {
            Some(row) if rows.contains(&row) => Err(failure(row)),
            _ => Ok(()),
        }
    }

    /// Fails if a batch received holds the configured row (in its column `x`).
    pub(crate) fn check_batch(&self, batch: &RecordBatch) -> Result<()> {
        let Some(row) = self.fail_at_row else {
            return Ok(());
        };
        let holds_row = batch
            .column_by_name("x")
            .and_then(|x| x.as_primitive_opt::<Float64Type>())
            .is_some_and(|x| x.values().contains(&(row as f64)));
        if holds_row {
            return Err(failure(row));
        }
        Ok(())
    }
}

fn failure(row: u64) -> Error {
    Error::bad_data(format!("testkit: failing at row {row} as configured")).with_rows(row..row + 1)
}
