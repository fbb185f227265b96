//! # mlpipe-plugin-csv
//!
//! The standard CSV plugin: a `csv` source and a `csv` sink.
//!
//! The source reads a dataset of CSV files (plain or gzip-compressed) into batches of
//! exactly the size the host asks for, parsing in parallel on scoped threads. Its parts:
//!
//! - `dialect`: delimiter, quote, escape, comment, null markers, and the reading rules;
//! - `tokenize`: where records and fields start and end (a fast 64-bytes-at-a-time
//!   tokenizer, and a general one that implements every rule);
//! - `split`: cutting a window of bytes into chunks at record boundaries;
//! - `decode`: typed Arrow arrays from the fields;
//! - `types`: type names and inference; `input`: files and windows; `chunk`: tokenized
//!   chunks and batch plans; `parallel`: scoped worker threads; `reader`: the rounds that
//!   tie them together; `source`: the config and the schema.
//!
//! The sink (`sink`) writes one file atomically, quoting only where needed.

mod bytes;
mod chunk;
mod decode;
mod dialect;
mod input;
mod parallel;
mod reader;
mod sink;
mod source;
mod split;
mod tokenize;
mod types;

#[cfg(test)]
mod tests;

use mlpipe_plugin_api::Plugin;

/// The plugin definition the host loads.
fn plugin() -> Plugin {
    Plugin::new("csv", env!("CARGO_PKG_VERSION"))
        .source(
            "csv",
            "reads CSV files (plain or gzip) in parallel, with inferred or declared column types",
            source::keys(),
            source::CsvSource::from_config,
        )
        .costly_reread()
        .sink(
            "csv",
            "writes a CSV file atomically, quoting values only where needed",
            sink::keys(),
            sink::CsvSink::from_config,
        )
}

mlpipe_plugin_api::export_plugin!(plugin);
