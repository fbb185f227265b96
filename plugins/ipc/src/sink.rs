//! The `ipc` and `ipc_stream` sinks: write batches in the Arrow IPC file or stream format.
//!
//! A file is written atomically: into a temporary file beside the output
//! ([`PendingOutput`]), renamed onto it by a successful `flush`; an existing output is
//! refused unless `overwrite = true`. `ipc_stream` with `path = "-"` writes to standard
//! output instead and flushes after every batch, so that a reader (`pyarrow.ipc.open_stream`)
//! gets each batch as soon as it is written. A stream reader cannot tell a stream cut short
//! between two messages from a complete one, so a run that fails after it started writing
//! to standard output ends the stream with an incomplete message: the reader fails too.

use std::io::{self, BufWriter, IsTerminal, Stdout, Write};
use std::path::PathBuf;

use mlpipe_plugin_api::arrow::error::ArrowError;
use mlpipe_plugin_api::arrow::ipc::CompressionType;
use mlpipe_plugin_api::arrow::ipc::writer::{FileWriter, IpcWriteOptions, StreamWriter};
use mlpipe_plugin_api::files::{PendingOutput, SyncingFile};
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef, Sink,
};

use crate::message::CONTINUATION;

/// Which IPC format a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The file format: schema, batches, and a footer indexing them (random access).
    File,
    /// The stream format: schema and batches, read in order.
    Stream,
}

impl Format {
    fn component(self) -> &'static str {
        match self {
            Format::File => "ipc",
            Format::Stream => "ipc_stream",
        }
    }
}

/// The config keys of the `ipc` and `ipc_stream` sinks.
pub(crate) fn keys(format: Format) -> Vec<ConfigKey> {
    let path = match format {
        Format::File => "the output file",
        Format::Stream => "the output file, or \"-\" for standard output",
    };
    vec![
        ConfigKey::new("path", ConfigType::Path, path).required(),
        ConfigKey::new(
            "compression",
            ConfigType::String,
            "compression of the record batch buffers: none, lz4 or zstd (readers then decompress, no zero-copy reads)",
        )
        .default("none"),
        ConfigKey::new(
            "overwrite",
            ConfigType::Boolean,
            "replace an existing file at `path`",
        )
        .default(false),
    ]
}

/// Where the encoded bytes go.
enum Destination {
    File(SyncingFile),
    Stdout(Stdout),
}

impl Write for Destination {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Destination::File(file) => file.write(bytes),
            Destination::Stdout(stdout) => stdout.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Destination::File(file) => file.flush(),
            Destination::Stdout(stdout) => stdout.flush(),
        }
    }
}

/// An arrow-rs IPC writer of either format.
enum Writer {
    File(FileWriter<BufWriter<Destination>>),
    Stream(StreamWriter<BufWriter<Destination>>),
}

impl Writer {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        match self {
            Writer::File(writer) => writer.write(batch),
            Writer::Stream(writer) => writer.write(batch),
        }
    }

    fn flush(&mut self) -> Result<(), ArrowError> {
        match self {
            Writer::File(writer) => writer.flush(),
            Writer::Stream(writer) => writer.flush(),
        }
    }

    /// Writes the end of the file or stream and returns where it went.
    fn finish(self) -> Result<Destination, ArrowError> {
        let buffered = match self {
            Writer::File(writer) => writer.into_inner()?,
            Writer::Stream(writer) => writer.into_inner()?,
        };
        buffered
            .into_inner()
            .map_err(|e| ArrowError::from(e.into_error()))
    }

    /// The destination, unbuffered, for writing past the encoder.
    fn destination(&mut self) -> &mut BufWriter<Destination> {
        match self {
            Writer::File(writer) => writer.get_mut(),
            Writer::Stream(writer) => writer.get_mut(),
        }
    }
}

/// The output while it is being written.
struct Open {
    writer: Writer,
    /// The temporary file of a file output, renamed onto the output by `flush`.
    pending: Option<PendingOutput>,
    schema: SchemaRef,
}

/// Writes batches as an Arrow IPC file or stream.
pub(crate) struct IpcSink {
    format: Format,
    /// The output file; `None` for standard output.
    path: Option<PathBuf>,
    overwrite: bool,
    options: IpcWriteOptions,
    open: Option<Open>,
    finished: bool,
    batches: u64,
    rows: u64,
}

impl IpcSink {
    /// Builds the sink from its validated config; touches no file yet.
    pub(crate) fn from_config(config: &Config, format: Format) -> Result<IpcSink> {
        let component = format.component();
        let path: String = config.require("path")?;
        let path = match (path.as_str(), format) {
            ("", _) => {
                return Err(Error::config(format!(
                    "key `path` of sink `{component}` is empty; give the output file"
                )));
            }
            ("-", Format::File) => {
                return Err(Error::config(
                    "sink `ipc` writes the IPC file format, which needs a file; to write to \
                     standard output use sink `ipc_stream` with `path = \"-\"`",
                ));
            }
            ("-", Format::Stream) => None,
            (path, _) => Some(PathBuf::from(path)),
        };
        let compression = match config.require::<String>("compression")?.as_str() {
            "none" => None,
            "lz4" => Some(CompressionType::LZ4_FRAME),
            "zstd" => Some(CompressionType::ZSTD),
            other => {
                return Err(Error::config(format!(
                    "key `compression` of sink `{component}` must be none, lz4 or zstd, not {other:?}"
                )));
            }
        };
        let options = IpcWriteOptions::default()
            .try_with_compression(compression)
            .map_err(|e| Error::config(format!("key `compression` of sink `{component}`: {e}")))?;
        Ok(IpcSink {
            format,
            path,
            overwrite: config.require("overwrite")?,
            options,
            open: None,
            finished: false,
            batches: 0,
            rows: 0,
        })
    }

    /// How errors name the output.
    fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or("standard output".to_string(), |p| p.display().to_string())
    }

    /// Opens the output and writes the schema.
    fn start(&self, schema: &SchemaRef) -> Result<Open> {
        let (destination, pending) = match &self.path {
            Some(path) => {
                let (pending, file) = PendingOutput::create(path, self.overwrite)?;
                (Destination::File(file), Some(pending))
            }
            None => {
                let stdout = io::stdout();
                if stdout.is_terminal() {
                    return Err(Error::config(
                        "standard output is a terminal; pipe it into a reader (e.g. \
                         `mlpipe-host run p.toml | python train.py`) or set the sink's `path` to a file",
                    ));
                }
                (Destination::Stdout(stdout), None)
            }
        };
        let buffered = BufWriter::with_capacity(1 << 20, destination);
        let options = self.options.clone();
        let writer = match self.format {
            Format::File => {
                FileWriter::try_new_with_options(buffered, schema, options).map(Writer::File)
            }
            Format::Stream => {
                StreamWriter::try_new_with_options(buffered, schema, options).map(Writer::Stream)
            }
        };
        let mut writer = writer.map_err(|e| {
            Error::from(e).context(format!("{}: cannot write the schema", self.name()))
        })?;
        if pending.is_none() {
            writer.flush().map_err(|e| self.write_error(e))?;
        }
        Ok(Open {
            writer,
            pending,
            schema: schema.clone(),
        })
    }

    fn write_error(&self, error: ArrowError) -> Error {
        let closed =
            matches!(&error, ArrowError::IoError(_, e) if e.kind() == io::ErrorKind::BrokenPipe);
        if closed && self.path.is_none() {
            return Error::io(
                "standard output: the reader closed the pipe before the end of the stream",
            );
        }
        Error::from(error).context(format!("{}: cannot write", self.name()))
    }
}

impl Sink for IpcSink {
    fn begin(&mut self, schema: &SchemaRef) -> Result<()> {
        if self.finished {
            return Err(Error::internal(format!(
                "{}: begin called after flush; the output is already written",
                self.name()
            )));
        }
        if self.open.is_none() {
            self.open = Some(self.start(schema)?);
        }
        Ok(())
    }

    fn consume(&mut self, batch: RecordBatch) -> Result<()> {
        if self.open.is_none() {
            self.begin(&batch.schema())?;
        }
        let name = self.name();
        let to_stdout = self.path.is_none();
        let Some(open) = self.open.as_mut() else {
            return Err(Error::internal(format!("{name}: no writer after begin")));
        };
        if batch.schema().fields() != open.schema.fields() {
            return Err(Error::bad_data(format!(
                "{name}: a batch has the columns {:?} but the output was begun with {:?}; every \
                 batch must have the same schema",
                batch.schema().fields(),
                open.schema.fields()
            )));
        }
        let written = open.writer.write(&batch).and_then(|()| {
            if to_stdout {
                open.writer.flush()
            } else {
                Ok(())
            }
        });
        if let Err(error) = written {
            let hint = match (&error, self.format) {
                (ArrowError::InvalidArgumentError(m), Format::File) if m.contains("ictionary") => {
                    "; use sink `ipc_stream`, which can replace a dictionary between batches"
                }
                _ => "",
            };
            let error = self.write_error(error);
            return Err(Error::new(
                error.kind(),
                format!("{}{hint}", error.message()),
            ));
        }
        self.batches += 1;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let name = self.name();
        let Some(open) = self.open.take() else {
            return Err(Error::internal(format!(
                "{name}: flush before begin or any batch: no schema is known, so nothing was written"
            )));
        };
        let destination = open.writer.finish().map_err(|e| self.write_error(e))?;
        match (destination, open.pending) {
            (Destination::File(file), Some(pending)) => pending.commit(file)?,
            (Destination::Stdout(mut stdout), None) => stdout
                .flush()
                .map_err(|e| self.write_error(ArrowError::from(e)))?,
            _ => {
                return Err(Error::internal(format!(
                    "{name}: output and destination disagree"
                )));
            }
        }
        self.finished = true;
        Ok(())
    }

    fn counters(&self) -> Counters {
        vec![
            ("batches written".to_string(), self.batches),
            ("rows written".to_string(), self.rows),
        ]
    }
}

impl Drop for IpcSink {
    fn drop(&mut self) {
        // Dropped while writing: the run failed. A file output's temporary file goes with
        // `PendingOutput`; a stream on standard output gets an incomplete message, so that
        // its reader fails rather than take the stream for complete.
        if let Some(mut open) = self.open.take()
            && open.pending.is_none()
        {
            let destination = open.writer.destination();
            let _ = destination
                .write_all(&CONTINUATION)
                .and_then(|()| destination.flush());
        }
    }
}
