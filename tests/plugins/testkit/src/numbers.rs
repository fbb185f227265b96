//! Source `numbers`: one float64 column `x` holding the row number.

use std::sync::Arc;
use std::time::Duration;

use mlpipe_plugin_api::arrow::array::{Float64Array, RecordBatch};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
use mlpipe_plugin_api::{Config, ConfigKey, ConfigType, Counters, Result, SchemaRef, Source};

use crate::faults::Faults;
use crate::{DATA_ADDRESS, data_address};

const METHODS: &[&str] = &["schema", "next_batch", "size_hint", "memory_usage"];

/// The config keys of `numbers`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    let mut keys = vec![
        ConfigKey::new("rows", ConfigType::Integer, "rows to produce in all").default(1000),
        ConfigKey::new("endless", ConfigType::Boolean, "never end (ignores `rows`)").default(false),
        ConfigKey::new(
            "chunk_rows",
            ConfigType::Integer,
            "rows per batch returned (default: as many as the host asks for)",
        ),
        ConfigKey::new("delay_ms", ConfigType::Integer, "sleep before each batch").default(0),
        ConfigKey::new(
            "repeat",
            ConfigType::Boolean,
            "return the first batch again and again (shared buffers, no generation cost)",
        )
        .default(false),
    ];
    keys.extend(Faults::keys(METHODS));
    keys
}

/// Counts rows into float64 batches.
pub(crate) struct Numbers {
    faults: Faults,
    /// Rows in all; `None` when endless.
    rows: Option<u64>,
    chunk_rows: Option<usize>,
    delay: Duration,
    repeat: bool,
    next: u64,
    /// The batch `repeat` returns.
    cached: Option<RecordBatch>,
    address: u64,
}

impl Numbers {
    pub(crate) fn from_config(config: &Config) -> Result<Numbers> {
        let endless: bool = config.require("endless")?;
        Ok(Numbers {
            faults: Faults::from_config(config, METHODS)?,
            rows: if endless {
                None
            } else {
                Some(config.require("rows")?)
            },
            chunk_rows: config.get("chunk_rows")?,
            delay: Duration::from_millis(config.require("delay_ms")?),
            repeat: config.require("repeat")?,
            next: 0,
            cached: None,
            address: 0,
        })
    }

    fn make(&mut self, rows: usize) -> Result<RecordBatch> {
        if self.repeat
            && let Some(cached) = &self.cached
            && cached.num_rows() >= rows
        {
            return Ok(cached.slice(0, rows));
        }
        let values = (self.next..self.next + rows as u64).map(|row| row as f64);
        let batch = RecordBatch::try_new(
            schema(),
            vec![Arc::new(Float64Array::from_iter_values(values))],
        )?;
        if self.repeat {
            self.cached = Some(batch.clone());
        }
        Ok(batch)
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]))
}

impl Source for Numbers {
    fn schema(&self) -> Result<SchemaRef> {
        self.faults.enter("schema");
        Ok(schema())
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        self.faults.enter("next_batch");
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let mut rows = self.chunk_rows.unwrap_or(max_rows).min(max_rows) as u64;
        if let Some(total) = self.rows {
            rows = rows.min(total.saturating_sub(self.next));
        }
        if rows == 0 {
            return Ok(None);
        }
        self.faults.check_range(self.next..self.next + rows)?;
        let batch = self.make(rows as usize)?;
        self.next += rows;
        self.address = data_address(&batch);
        Ok(Some(batch))
    }

    fn size_hint(&self) -> Option<usize> {
        self.faults.enter("size_hint");
        self.rows.map(|rows| rows as usize)
    }

    fn memory_usage(&self) -> usize {
        self.faults.enter("memory_usage");
        self.cached
            .as_ref()
            .map_or(0, RecordBatch::get_array_memory_size)
    }

    fn counters(&self) -> Counters {
        vec![
            ("rows".to_string(), self.next),
            (DATA_ADDRESS.to_string(), self.address),
        ]
    }
}
