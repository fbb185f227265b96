//! The `parquet` source: reads a Parquet file in batches of the size the host asks for,
//! with an optional column projection pushed into the reader.

use std::fs::File;

use mlpipe_plugin_api::arrow::datatypes::Schema;
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Error, RecordBatch, Result, SchemaRef, Source,
};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::parquet_error;

/// The largest batch the reader is built for, whatever the host asks for: it bounds the
/// reader's buffers (a larger request is answered with batches of this size).
const MAX_READ_ROWS: usize = 1 << 20;

/// The config keys of the `parquet` source.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new("path", ConfigType::Path, "the Parquet file").required(),
        ConfigKey::new(
            "columns",
            ConfigType::StringList,
            "the columns to read, in this order (projection pushed into the reader); all when absent",
        ),
    ]
}

/// Reads a Parquet file.
pub(crate) struct ParquetSource {
    path: String,
    /// The schema of every returned batch (the projection, in the requested order).
    schema: SchemaRef,
    /// The reader's configuration until the first `next_batch` builds it.
    builder: Option<ParquetRecordBatchReaderBuilder<File>>,
    reader: Option<ParquetRecordBatchReader>,
    /// Where each output column is in the reader's batches (which keep the file's order),
    /// or `None` when the orders agree.
    order: Option<Vec<usize>>,
    /// Rows read but not yet returned.
    remainder: Option<RecordBatch>,
    total_rows: Option<usize>,
}

impl ParquetSource {
    /// Opens the file, reads its metadata and checks the projection.
    pub(crate) fn from_config(config: &Config) -> Result<ParquetSource> {
        let path: String = config.require("path")?;
        let columns: Option<Vec<String>> = config.get("columns")?;
        let file = File::open(&path).map_err(|e| {
            Error::io(format!(
                "{path}: cannot open the Parquet file: {e} (check the `path` key; a relative path is resolved against the pipeline file's directory)"
            ))
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| parquet_error(format!("{path}: not a readable Parquet file"), e))?;
        let total_rows = usize::try_from(builder.metadata().file_metadata().num_rows()).ok();
        let full = builder.schema().clone();

        let Some(columns) = columns else {
            return Ok(ParquetSource {
                path,
                schema: full,
                builder: Some(builder),
                reader: None,
                order: None,
                remainder: None,
                total_rows,
            });
        };
        let wanted = column_indices(&path, &full, &columns)?;
        let mut in_file_order = wanted.clone();
        in_file_order.sort_unstable();
        let order: Vec<usize> = wanted
            .iter()
            .map(|index| in_file_order.partition_point(|other| other < index))
            .collect();
        let identity = order.iter().enumerate().all(|(i, &at)| i == at);
        let mask = ProjectionMask::roots(builder.parquet_schema(), in_file_order.iter().copied());
        Ok(ParquetSource {
            schema: std::sync::Arc::new(full.project(&wanted)?),
            path,
            builder: Some(builder.with_projection(mask)),
            reader: None,
            order: (!identity).then_some(order),
            remainder: None,
            total_rows,
        })
    }

    /// The next batch from the reader, building it on first use with `max_rows`.
    fn read(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        if let Some(builder) = self.builder.take() {
            let reader = builder
                .with_batch_size(max_rows.clamp(1, MAX_READ_ROWS))
                .build()
                .map_err(|e| parquet_error(format!("{}: cannot start reading", self.path), e))?;
            self.reader = Some(reader);
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let batch = match reader.next() {
            None => {
                self.reader = None;
                return Ok(None);
            }
            Some(Ok(batch)) => batch,
            Some(Err(e)) => {
                self.reader = None;
                return Err(Error::from(e).context(&self.path));
            }
        };
        let batch = match &self.order {
            Some(order) => batch.project(order)?,
            None => batch,
        };
        // Re-labels the columns with the declared schema (same fields; the host checks).
        Ok(Some(RecordBatch::try_new(
            self.schema.clone(),
            batch.columns().to_vec(),
        )?))
    }
}

/// The top-level indices of `columns` in `schema`; unknown or repeated names are config
/// errors naming them and listing the file's columns.
fn column_indices(path: &str, schema: &Schema, columns: &[String]) -> Result<Vec<usize>> {
    if columns.is_empty() {
        return Err(Error::config(
            "key `columns` of source `parquet` is empty; list the columns to read, or omit the key to read them all",
        ));
    }
    let mut indices = Vec::with_capacity(columns.len());
    for name in columns {
        let index = schema.index_of(name).map_err(|_| {
            let available: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            Error::config(format!(
                "key `columns` of source `parquet`: {path} has no column `{name}`; its columns are: {}",
                available.join(", ")
            ))
        })?;
        if indices.contains(&index) {
            return Err(Error::config(format!(
                "key `columns` of source `parquet` lists `{name}` twice; list each column once"
            )));
        }
        indices.push(index);
    }
    Ok(indices)
}

impl Source for ParquetSource {
    fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let max_rows = max_rows.max(1);
        let batch = match self.remainder.take() {
            Some(batch) => batch,
            None => loop {
                match self.read(max_rows)? {
                    Some(batch) if batch.num_rows() == 0 => continue,
                    Some(batch) => break batch,
                    None => return Ok(None),
                }
            },
        };
        if batch.num_rows() > max_rows {
            self.remainder = Some(batch.slice(max_rows, batch.num_rows() - max_rows));
            return Ok(Some(batch.slice(0, max_rows)));
        }
        Ok(Some(batch))
    }

    fn size_hint(&self) -> Option<usize> {
        self.total_rows
    }

    fn memory_usage(&self) -> usize {
        self.remainder
            .as_ref()
            .map_or(0, RecordBatch::get_array_memory_size)
    }
}
