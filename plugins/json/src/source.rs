//! The `ndjson` source: reads newline-delimited JSON files with arrow-json's decoder.
//!
//! Lines are fed to the decoder one at a time, so that every error is known to its line:
//! a syntax error at once; two values on one line from the decoder's row count; a value
//! that does not fit its column (found when the decoder builds the batch) by decoding the
//! batch's records again one by one. The raw bytes of the records of the batch being built
//! are kept until it is built, for that search and for `on_error = "skip"`, which drops the
//! malformed records, rebuilds the decoder from the others and counts what it skipped.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::PathBuf;

use mlpipe_plugin_api::arrow::datatypes::Field;
use mlpipe_plugin_api::arrow::json::ReaderBuilder;
use mlpipe_plugin_api::arrow::json::reader::Decoder;
use mlpipe_plugin_api::files;
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef, Source,
};

use crate::infer::{self, BOM, Layout};

/// The file names a directory given as `path` contributes.
const EXTENSIONS: [&str; 3] = [".ndjson", ".jsonl", ".json"];

/// The largest batch the decoder is built for, whatever the host asks for.
const MAX_BATCH_ROWS: usize = 1 << 16;

/// The config keys of the `ndjson` source.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "path",
            ConfigType::Paths,
            "the input: a file, a glob pattern, a directory (its .ndjson, .jsonl and .json files) or a list of them",
        )
        .required(),
        ConfigKey::new(
            "schema",
            ConfigType::StringList,
            "the columns as \"name: Type\" in Arrow's notation (\"id: Int64\", \"tags: List(Utf8)\", \"x: Float64 not null\"); inferred when absent",
        ),
        ConfigKey::new(
            "infer_rows",
            ConfigType::Integer,
            "values read (from the first files) to infer the schema; 0 = all",
        )
        .default(1000),
        ConfigKey::new(
            "on_error",
            ConfigType::String,
            "what a malformed record does: fail (an error naming file:line) or skip (skipped and counted)",
        )
        .default("fail"),
    ]
}

/// Reads NDJSON files one after the other.
pub(crate) struct NdjsonSource {
    layout: Layout,
    skip_errors: bool,
    /// The files not yet opened.
    files: VecDeque<PathBuf>,
    reading: Option<Reading>,
    skipped: u64,
    files_read: u64,
}

impl NdjsonSource {
    /// Expands the inputs and infers (or parses) the schema.
    pub(crate) fn from_config(config: &Config) -> Result<NdjsonSource> {
        let paths: Vec<String> = match config.get::<Vec<String>>("path") {
            Ok(Some(paths)) => paths,
            _ => vec![config.require::<String>("path")?],
        };
        let files = files::expand(&paths, "path", &EXTENSIONS)?;
        let skip_errors = match config.require::<String>("on_error")?.as_str() {
            "fail" => false,
            "skip" => true,
            other => {
                return Err(Error::config(format!(
                    "key `on_error` of source `ndjson` must be fail or skip, not {other:?}"
                )));
            }
        };
        let layout = match config.get::<Vec<String>>("schema")? {
            Some(entries) => infer::parse_schema(&entries)?,
            None => {
                let rows: i64 = config.require("infer_rows")?;
                let limit = match usize::try_from(rows) {
                    Ok(0) => None,
                    Ok(rows) => Some(rows),
                    Err(_) => {
                        return Err(Error::config(format!(
                            "key `infer_rows` of source `ndjson` must be 0 (all) or more, not {rows}"
                        )));
                    }
                };
                infer::infer(&files, limit)?
            }
        };
        Ok(NdjsonSource {
            layout,
            skip_errors,
            files: files.into(),
            reading: None,
            skipped: 0,
            files_read: 0,
        })
    }
}

impl Source for NdjsonSource {
    fn schema(&self) -> Result<SchemaRef> {
        Ok(self.layout.schema.clone())
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let max_rows = max_rows.clamp(1, MAX_BATCH_ROWS);
        loop {
            let reading = match &mut self.reading {
                Some(reading) => reading,
                None => {
                    let Some(path) = self.files.pop_front() else {
                        return Ok(None);
                    };
                    self.reading
                        .insert(Reading::open(path, &self.layout, self.skip_errors)?)
                }
            };
            if let Some(batch) = reading.next_batch(max_rows, &self.layout)? {
                return Ok(Some(batch));
            }
            self.skipped += reading.skipped;
            self.reading = None;
            self.files_read += 1;
        }
    }

    fn memory_usage(&self) -> usize {
        self.reading.as_ref().map_or(0, |r| r.pending.capacity())
    }

    fn counters(&self) -> Counters {
        let skipping = self.reading.as_ref().map_or(0, |r| r.skipped);
        vec![
            ("records skipped".to_string(), self.skipped + skipping),
            ("files read".to_string(), self.files_read),
        ]
    }
}

/// A record fed to the decoder and not yet in a batch: where its bytes start in
/// [`Reading::pending`] and the line it starts on.
#[derive(Debug, Clone, Copy)]
struct Record {
    start: usize,
    line: u64,
}

/// One file being read.
struct Reading {
    name: String,
    reader: BufReader<File>,
    skip_errors: bool,
    /// Lines read so far.
    line: u64,
    decoder: Decoder,
    /// The rows the decoder is built for.
    batch_rows: usize,
    /// The bytes of the records in the decoder, from the first not yet in a batch.
    pending: Vec<u8>,
    /// The complete records in the decoder.
    records: Vec<Record>,
    /// The record whose value continues on the next line, if any.
    open: Option<Record>,
    ended: bool,
    skipped: u64,
}

/// A decoder for `layout` building batches of up to `rows` rows.
fn decoder(layout: &Layout, rows: usize) -> Result<Decoder> {
    let builder = if layout.values {
        let field: &Field = layout.schema.field(0);
        ReaderBuilder::new_with_field(field.clone())
    } else {
        ReaderBuilder::new(layout.schema.clone())
    };
    Ok(builder
        .with_batch_size(rows)
        .with_coerce_primitive(layout.inferred)
        .build_decoder()?)
}

impl Reading {
    fn open(path: PathBuf, layout: &Layout, skip_errors: bool) -> Result<Reading> {
        let name = path.display().to_string();
        let file = File::open(&path).map_err(|e| Error::io(format!("{name}: cannot open: {e}")))?;
        Ok(Reading {
            name,
            reader: BufReader::with_capacity(1 << 20, file),
            skip_errors,
            line: 0,
            decoder: decoder(layout, 1)?,
            batch_rows: 0,
            pending: Vec::new(),
            records: Vec::new(),
            open: None,
            ended: false,
            skipped: 0,
        })
    }

    /// The next batch of at most `max_rows` rows from this file, or `None` at its end.
    fn next_batch(&mut self, max_rows: usize, layout: &Layout) -> Result<Option<RecordBatch>> {
        if self.batch_rows != max_rows && self.records.is_empty() && self.open.is_none() {
            // One more than asked, so that a line with a second value is seen as such even
            // when the batch is one short of full.
            self.decoder = decoder(layout, max_rows + 1)?;
            self.batch_rows = max_rows;
        }
        loop {
            if self.records.len() >= max_rows || (self.ended && !self.records.is_empty()) {
                if let Some(batch) = self.build(layout)? {
                    return Ok(Some(batch));
                }
                continue;
            }
            if self.ended {
                return Ok(None);
            }
            self.feed_line(layout)?;
        }
    }

    /// Reads one line and feeds it to the decoder.
    fn feed_line(&mut self, layout: &Layout) -> Result<()> {
        let start = self.pending.len();
        let read = self
            .reader
            .read_until(b'\n', &mut self.pending)
            .map_err(|e| Error::io(format!("{}: cannot read: {e}", self.name)))?;
        if read == 0 {
            self.ended = true;
            if self.open.is_some() {
                // A value at the very end (a number with no newline after it) ends only
                // when something follows it, as a newline would.
                self.pending.push(b'\n');
                self.feed(start, layout)?;
            }
            if let Some(open) = self.open.take() {
                let error = format!(
                    "the file ends inside the JSON value that starts on line {}",
                    open.line
                );
                self.reject(open, error, layout)?;
            }
            return Ok(());
        }
        self.line += 1;
        if self.line == 1 && self.pending[start..].starts_with(BOM) {
            self.pending.drain(start..start + BOM.len());
        }
        self.feed(start, layout)
    }

    /// Feeds the bytes of `pending` from `start` (a line) to the decoder.
    fn feed(&mut self, start: usize, layout: &Layout) -> Result<()> {
        let record = *self.open.get_or_insert(Record {
            start,
            line: self.line,
        });
        let before = self.records.len();
        let line = &self.pending[start..];
        let fed = match self.decoder.decode(line) {
            Ok(consumed) if consumed < line.len() => Err(None),
            Ok(_) => Ok(()),
            Err(e) => Err(Some(e.to_string())),
        };
        let buffered = self.decoder.len() - before;
        let several = || "a second JSON value on the line; NDJSON has one value a line".to_string();
        match fed {
            Err(error) => {
                self.open = None;
                self.reject(record, error.unwrap_or_else(several), layout)
            }
            Ok(()) if buffered > 1 => {
                self.open = None;
                self.reject(record, several(), layout)
            }
            Ok(()) if self.decoder.has_partial_record() => Ok(()),
            Ok(()) => {
                self.open = None;
                if buffered == 1 {
                    self.records.push(record);
                } else {
                    // A blank line.
                    self.pending.truncate(record.start);
                }
                Ok(())
            }
        }
    }

    /// A malformed record: the error, or (skipping) the decoder rebuilt without it.
    fn reject(&mut self, record: Record, error: String, layout: &Layout) -> Result<()> {
        if !self.skip_errors {
            let at = if record.line == self.line || self.ended {
                format!("{}", record.line)
            } else {
                format!("{} (in the value from line {})", self.line, record.line)
            };
            return Err(Error::bad_data(format!("{}:{at}: {error}", self.name)));
        }
        self.skipped += 1;
        self.pending.truncate(record.start);
        let all: Vec<usize> = (0..self.records.len()).collect();
        self.refeed(layout, &all)
    }

    /// Where the bytes of the `index`-th complete record are in `pending`.
    fn range(&self, index: usize) -> Range<usize> {
        let end = self
            .records
            .get(index + 1)
            .map_or(self.pending.len(), |next| next.start);
        self.records[index].start..end
    }

    /// Replaces the decoder with a fresh one fed the records at `indices` (which decoded
    /// before) again.
    fn refeed(&mut self, layout: &Layout, indices: &[usize]) -> Result<()> {
        self.decoder = decoder(layout, self.batch_rows + 1)?;
        for &index in indices {
            let range = self.range(index);
            self.decoder.decode(&self.pending[range]).map_err(|e| {
                Error::internal(format!(
                    "{}: a record decoded before failed again: {e}",
                    self.name
                ))
            })?;
        }
        Ok(())
    }

    /// Builds the batch of the complete records. A value that does not fit its column is
    /// found by decoding the records one by one: an error naming its line, or (skipping)
    /// a batch of the others, `None` when none is left.
    fn build(&mut self, layout: &Layout) -> Result<Option<RecordBatch>> {
        let built = self.decoder.flush();
        let batch = match built {
            Ok(batch) => batch,
            Err(_) => {
                let mut probe = decoder(layout, 1)?;
                let mut good = Vec::with_capacity(self.records.len());
                for index in 0..self.records.len() {
                    let decoded = probe
                        .decode(&self.pending[self.range(index)])
                        .and_then(|_| probe.flush());
                    match decoded {
                        Ok(_) => good.push(index),
                        Err(e) if !self.skip_errors => {
                            return Err(Error::bad_data(format!(
                                "{}:{}: {e}",
                                self.name, self.records[index].line
                            )));
                        }
                        Err(_) => {
                            self.skipped += 1;
                            probe = decoder(layout, 1)?;
                        }
                    }
                }
                self.refeed(layout, &good)?;
                self.decoder.flush().map_err(|e| {
                    Error::internal(format!(
                        "{}: records that decode alone fail together: {e}",
                        self.name
                    ))
                })?
            }
        };
        self.records.clear();
        self.pending.clear();
        Ok(batch)
    }
}
