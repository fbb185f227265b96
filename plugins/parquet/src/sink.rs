//! The `parquet` sink: writes one Parquet file atomically.
//!
//! `begin` refuses an existing output (unless `overwrite = true`), creates the output's
//! directory and opens a temporary file beside the output (`.<name>.mlpipe-tmp-<pid>-<n>`,
//! so that the final rename stays within one file system). `flush` finishes the file,
//! fsyncs it and renames it onto the output. Dropping the sink without a successful
//! `flush` deletes the temporary file: a failed run leaves nothing behind.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind as IoErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use mlpipe_plugin_api::arrow::datatypes::DataType;
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Error, RecordBatch, Result, SchemaRef, Sink,
};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::encoder::ParallelWriter;
use crate::parquet_error;

/// The accepted values of `compression`, as listed in error messages.
const COMPRESSIONS: &str = "zstd, snappy, lz4, gzip, none";

/// Distinguishes the temporary files of several sinks of one process.
static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The config keys of the `parquet` sink.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new("path", ConfigType::Path, "the output file").required(),
        ConfigKey::new(
            "compression",
            ConfigType::String,
            "the compression codec: zstd, snappy, lz4, gzip or none",
        )
        .default("zstd"),
        ConfigKey::new(
            "overwrite",
            ConfigType::Boolean,
            "replace an existing file at `path`",
        )
        .default(false),
        ConfigKey::new("row_group_rows", ConfigType::Integer, "rows per row group")
            .default(1_048_576),
        ConfigKey::new(
            "threads",
            ConfigType::Integer,
            "threads that encode columns in parallel; 0 = one per core",
        )
        .default(0),
    ]
}

/// Writes a Parquet file through a temporary file renamed on `flush`.
pub(crate) struct ParquetSink {
    path: PathBuf,
    compression: Compression,
    overwrite: bool,
    row_group_rows: usize,
    threads: usize,
    writer: Option<ParallelWriter>,
    /// The schema given to `begin` (or of the first batch).
    schema: Option<SchemaRef>,
    /// The temporary file while it exists and has not been renamed onto `path`.
    temp: Option<PathBuf>,
    /// Set by a successful `flush`.
    finished: bool,
}

impl ParquetSink {
    /// Builds the sink from its validated config; touches no file yet.
    pub(crate) fn from_config(config: &Config) -> Result<ParquetSink> {
        let path: String = config.require("path")?;
        if path.is_empty() {
            return Err(Error::config(
                "key `path` of sink `parquet` is empty; give the output file, e.g. \"out/data.parquet\"",
            ));
        }
        let compression: String = config.require("compression")?;
        let row_group_rows: i64 = config.require("row_group_rows")?;
        let row_group_rows = usize::try_from(row_group_rows)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                Error::config(format!(
                    "key `row_group_rows` of sink `parquet` must be at least 1, not {row_group_rows}"
                ))
            })?;
        let threads: usize = match config.require::<usize>("threads")? {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(ParquetSink {
            path: PathBuf::from(path),
            compression: parse_compression(&compression)?,
            overwrite: config.require("overwrite")?,
            row_group_rows,
            threads,
            writer: None,
            schema: None,
            temp: None,
            finished: false,
        })
    }

    /// Refuses an output that exists (unless `overwrite`) or is a directory.
    fn check_target(&self) -> Result<()> {
        let path = self.path.display();
        match fs::metadata(&self.path) {
            Ok(meta) if meta.is_dir() => Err(Error::config(format!(
                "{path} is a directory; set the sink's `path` to a file name, e.g. \"{}\"",
                self.path.join("data.parquet").display()
            ))),
            Ok(_) if !self.overwrite => Err(Error::config(format!(
                "{path} already exists; set `overwrite = true` on the sink to replace it, or choose another `path`"
            ))),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == IoErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("{path}: cannot check the output: {e}"))),
        }
    }

    /// Creates the output's directory if missing; returns the temporary file's path.
    fn prepare_temp(&self) -> Result<PathBuf> {
        let Some(name) = self.path.file_name() else {
            return Err(Error::config(format!(
                "key `path` of sink `parquet`: {} does not name a file; give a file name such as \"out/data.parquet\"",
                self.path.display()
            )));
        };
        let dir = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(|e| {
            Error::io(format!(
                "{}: cannot create the output directory {}: {e}",
                self.path.display(),
                dir.display()
            ))
        })?;
        let temp = dir.join(format!(
            ".{}.mlpipe-tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(temp)
    }

    /// Deletes the temporary file, if any.
    fn discard(&mut self) {
        self.writer = None;
        if let Some(temp) = self.temp.take() {
            // Nothing more can be done if this fails; the name marks it as ours.
            let _ = fs::remove_file(temp);
        }
    }

    /// Finishes the file, syncs it and renames it onto the output.
    fn finish(&mut self, writer: ParallelWriter, temp: &Path) -> Result<()> {
        let path = self.path.display();
        let file = writer
            .finish()
            .map_err(|e| parquet_error(format!("{path}: cannot finish the file"), e))?;
        file.sync_all().map_err(|e| {
            Error::io(format!(
                "{path}: cannot sync the temporary file {}: {e}",
                temp.display()
            ))
        })?;
        drop(file);
        if !self.overwrite && self.path.exists() {
            return Err(Error::config(format!(
                "{path} was created by someone else while the pipeline ran; nothing was replaced. Set `overwrite = true` on the sink to replace it"
            )));
        }
        fs::rename(temp, &self.path).map_err(|e| {
            Error::io(format!(
                "{path}: cannot move the finished temporary file {} into place: {e}",
                temp.display()
            ))
        })?;
        // Makes the rename itself durable; not every platform can open a directory.
        if let Some(dir) = temp.parent()
            && let Ok(dir) = File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn begin(&mut self, schema: &SchemaRef) -> Result<()> {
        if self.finished {
            return Err(Error::internal(format!(
                "{}: begin called after flush; the file is already written",
                self.path.display()
            )));
        }
        if self.writer.is_some() {
            return Ok(());
        }
        self.check_target()?;
        let temp = self.prepare_temp()?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| {
                Error::io(format!(
                    "{}: cannot create the temporary file {}: {e}",
                    self.path.display(),
                    temp.display()
                ))
            })?;
        self.temp = Some(temp);
        let mut properties = WriterProperties::builder().set_compression(self.compression);
        // Float columns rarely repeat values: dictionary encoding costs time and saves
        // nothing there (measured: ~25 % of the encode time of the benchmark dataset).
        for field in schema.fields() {
            if matches!(
                field.data_type(),
                DataType::Float16 | DataType::Float32 | DataType::Float64
            ) {
                let column = ColumnPath::new(vec![field.name().clone()]);
                properties = properties.set_column_dictionary_enabled(column, false);
            }
        }
        match ParallelWriter::try_new(
            file,
            schema.clone(),
            properties.build(),
            self.row_group_rows,
            self.threads,
        ) {
            Ok(writer) => {
                self.writer = Some(writer);
                self.schema = Some(schema.clone());
                Ok(())
            }
            Err(e) => {
                self.discard();
                Err(parquet_error(
                    format!(
                        "{}: cannot write this schema as Parquet",
                        self.path.display()
                    ),
                    e,
                ))
            }
        }
    }

    fn consume(&mut self, batch: RecordBatch) -> Result<()> {
        if self.writer.is_none() {
            self.begin(&batch.schema())?;
        }
        let (Some(writer), Some(schema)) = (self.writer.as_mut(), self.schema.as_ref()) else {
            return Err(Error::internal(format!(
                "{}: no writer after begin",
                self.path.display()
            )));
        };
        // The writer does not check this itself: a batch missing a column would corrupt
        // the file.
        if batch.schema().fields() != schema.fields() {
            return Err(Error::bad_data(format!(
                "{}: a batch has the columns {} but the file was begun with {}; every batch must have the same schema",
                self.path.display(),
                describe(&batch.schema()),
                describe(schema)
            )));
        }
        writer
            .write(&batch)
            .map_err(|e| parquet_error(format!("{}: cannot write a batch", self.path.display()), e))
    }

    fn flush(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let (Some(writer), Some(temp)) = (self.writer.take(), self.temp.clone()) else {
            return Err(Error::internal(format!(
                "{}: flush before begin or any batch: no schema is known, so nothing was written",
                self.path.display()
            )));
        };
        match self.finish(writer, &temp) {
            Ok(()) => {
                self.temp = None;
                self.finished = true;
                Ok(())
            }
            Err(e) => {
                self.discard();
                Err(e)
            }
        }
    }

    fn memory_usage(&self) -> usize {
        self.writer.as_ref().map_or(0, ParallelWriter::memory_size)
    }
}

impl Drop for ParquetSink {
    fn drop(&mut self) {
        // Without a successful flush the run failed: leave nothing behind.
        self.discard();
    }
}

/// The codec named by the `compression` key.
fn parse_compression(name: &str) -> Result<Compression> {
    match name.to_ascii_lowercase().as_str() {
        "zstd" => Ok(Compression::ZSTD(ZstdLevel::default())),
        "snappy" => Ok(Compression::SNAPPY),
        "lz4" => Ok(Compression::LZ4_RAW),
        "gzip" => Ok(Compression::GZIP(GzipLevel::default())),
        "none" | "uncompressed" => Ok(Compression::UNCOMPRESSED),
        _ => Err(Error::config(format!(
            "key `compression` of sink `parquet` must be one of {COMPRESSIONS}, not {name:?}"
        ))),
    }
}

/// The columns of a schema as `name: type` for error messages.
fn describe(schema: &SchemaRef) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let null = if f.is_nullable() { "" } else { " not null" };
            format!("{}: {}{null}", f.name(), f.data_type())
        })
        .collect();
    format!("({})", columns.join(", "))
}
