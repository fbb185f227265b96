//! # mlpipe-plugin-json
//!
//! The standard JSON plugin:
//!
//! - source `ndjson` reads newline-delimited JSON (one value a line; a value may continue
//!   over several lines, two values may not share one) with arrow-json's decoder. Objects
//!   become rows with a column per key, nested objects structs and arrays lists; a file of
//!   other values (numbers, arrays, strings) becomes one column `value`. The schema is
//!   inferred from a sample or given. Errors name `file:line`; `on_error = "skip"` skips
//!   malformed records instead and counts them.
//! - sink `ndjson` writes one JSON object a line, atomically.

mod infer;
mod sink;
mod source;

use mlpipe_plugin_api::Plugin;

/// The plugin definition the host loads.
fn plugin() -> Plugin {
    Plugin::new("json", env!("CARGO_PKG_VERSION"))
        .source(
            "ndjson",
            "reads newline-delimited JSON: one value a line, objects as rows; schema inferred or given",
            source::keys(),
            source::NdjsonSource::from_config,
        )
        .costly_reread()
        .sink(
            "ndjson",
            "writes newline-delimited JSON, one object a line, atomically (temporary file, renamed on success)",
            sink::keys(),
            sink::NdjsonSink::from_config,
        )
}

mlpipe_plugin_api::export_plugin!(plugin);

#[cfg(test)]
mod tests;
