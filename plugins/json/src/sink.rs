//! The `ndjson` sink: writes one JSON object a line with arrow-json's writer, atomically
//! (a temporary file beside the output, renamed onto it by a successful `flush`; an
//! existing output is refused unless `overwrite = true`).

use std::io::BufWriter;
use std::path::PathBuf;

use mlpipe_plugin_api::arrow::array::Array;
use mlpipe_plugin_api::arrow::json::writer::{LineDelimited, Writer, WriterBuilder};
use mlpipe_plugin_api::arrow::util::display::{ArrayFormatter, FormatOptions};
use mlpipe_plugin_api::files::{PendingOutput, SyncingFile};
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef, Sink,
};

/// The config keys of the `ndjson` sink.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new("path", ConfigType::Path, "the output file").required(),
        ConfigKey::new(
            "overwrite",
            ConfigType::Boolean,
            "replace an existing file at `path`",
        )
        .default(false),
        ConfigKey::new(
            "explicit_nulls",
            ConfigType::Boolean,
            "write null values as `\"key\": null` instead of leaving the key out",
        )
        .default(false),
    ]
}

/// The output while it is being written.
struct Open {
    writer: Writer<BufWriter<SyncingFile>, LineDelimited>,
    pending: PendingOutput,
    schema: SchemaRef,
}

/// Writes batches as newline-delimited JSON.
pub(crate) struct NdjsonSink {
    path: PathBuf,
    overwrite: bool,
    explicit_nulls: bool,
    open: Option<Open>,
    finished: bool,
    rows: u64,
}

impl NdjsonSink {
    /// Builds the sink from its validated config; touches no file yet.
    pub(crate) fn from_config(config: &Config) -> Result<NdjsonSink> {
        let path: String = config.require("path")?;
        if path.is_empty() {
            return Err(Error::config(
                "key `path` of sink `ndjson` is empty; give the output file",
            ));
        }
        Ok(NdjsonSink {
            path: PathBuf::from(path),
            overwrite: config.require("overwrite")?,
            explicit_nulls: config.require("explicit_nulls")?,
            open: None,
            finished: false,
            rows: 0,
        })
    }
}

impl Sink for NdjsonSink {
    fn begin(&mut self, schema: &SchemaRef) -> Result<()> {
        if self.finished {
            return Err(Error::internal(format!(
                "{}: begin called after flush; the file is already written",
                self.path.display()
            )));
        }
        if self.open.is_none() {
            let (pending, file) = PendingOutput::create(&self.path, self.overwrite)?;
            let writer = WriterBuilder::new()
                .with_explicit_nulls(self.explicit_nulls)
                .build::<_, LineDelimited>(BufWriter::with_capacity(1 << 20, file));
            self.open = Some(Open {
                writer,
                pending,
                schema: schema.clone(),
            });
        }
        Ok(())
    }

    fn consume(&mut self, batch: RecordBatch) -> Result<()> {
        if self.open.is_none() {
            self.begin(&batch.schema())?;
        }
        let shown = self.path.display();
        let Some(open) = self.open.as_mut() else {
            return Err(Error::internal(format!("{shown}: no writer after begin")));
        };
        if batch.schema().fields() != open.schema.fields() {
            return Err(Error::bad_data(format!(
                "{shown}: a batch has the columns {:?} but the file was begun with {:?}; every \
                 batch must have the same schema",
                batch.schema().fields(),
                open.schema.fields()
            )));
        }
        check_temporal(&batch, self.rows).map_err(|e| e.context(shown.to_string()))?;
        open.writer
            .write(&batch)
            .map_err(|e| Error::from(e).context(format!("{shown}: cannot write")))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let shown = self.path.display().to_string();
        let Some(mut open) = self.open.take() else {
            return Err(Error::internal(format!(
                "{shown}: flush before begin or any batch: no schema is known, so nothing was written"
            )));
        };
        open.writer
            .finish()
            .map_err(|e| Error::from(e).context(format!("{shown}: cannot write")))?;
        let file = open
            .writer
            .into_inner()
            .into_inner()
            .map_err(|e| Error::io(format!("{shown}: cannot write: {}", e.error())))?;
        open.pending.commit(file)?;
        self.finished = true;
        Ok(())
    }

    fn counters(&self) -> Counters {
        vec![("rows written".to_string(), self.rows)]
    }
}

/// Refuses a date, time or timestamp arrow cannot show (one out of chrono's range):
/// arrow-json would write the text of the error as the value. `first_row` numbers the
/// batch's rows in the sink's input.
fn check_temporal(batch: &RecordBatch, first_row: u64) -> Result<()> {
    let options = FormatOptions::default().with_display_error(false);
    let mut text = String::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !field.data_type().is_temporal() {
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        for row in (0..column.len()).filter(|&row| column.is_valid(row)) {
            text.clear();
            formatter.value(row).write(&mut text).map_err(|e| {
                Error::bad_data(format!(
                    "column `{}`, row {}: cannot write the value: {e}; cast or drop the \
                     column before the sink",
                    field.name(),
                    first_row + row as u64
                ))
            })?;
        }
    }
    Ok(())
}
