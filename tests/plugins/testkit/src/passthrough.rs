//! Transform `passthrough`: returns its input unchanged, or lies about its schema.

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
use mlpipe_plugin_api::{Config, ConfigKey, ConfigType, Counters, Result, SchemaRef, Transform};

use crate::faults::Faults;
use crate::{DATA_ADDRESS, data_address};

const METHODS: &[&str] = &["output_schema", "transform", "memory_usage"];

/// The config keys of `passthrough`.
pub(crate) fn keys() -> Vec<ConfigKey> {
    let lie = ConfigKey::new(
        "lie",
        ConfigType::Boolean,
        "declare the input schema, but return batches with an extra column `undeclared`",
    )
    .default(false);
    let mut keys = vec![lie];
    keys.extend(Faults::keys(METHODS));
    keys
}

/// The identity, with faults.
pub(crate) struct Passthrough {
    faults: Faults,
    lie: bool,
    rows: u64,
    address: u64,
}

impl Passthrough {
    pub(crate) fn from_config(config: &Config) -> Result<Passthrough> {
        Ok(Passthrough {
            faults: Faults::from_config(config, METHODS)?,
            lie: config.require("lie")?,
            rows: 0,
            address: 0,
        })
    }
}

impl Transform for Passthrough {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.faults.enter("output_schema");
        Ok(input.clone())
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        self.faults.enter("transform");
        self.faults.check_batch(&batch)?;
        self.rows += batch.num_rows() as u64;
        self.address = data_address(&batch);
        if !self.lie {
            return Ok(batch);
        }
        let mut fields = batch.schema().fields().to_vec();
        fields.push(Arc::new(Field::new("undeclared", DataType::Boolean, false)));
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(BooleanArray::from(vec![true; batch.num_rows()])) as ArrayRef);
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }

    fn memory_usage(&self) -> usize {
        self.faults.enter("memory_usage");
        0
    }

    fn counters(&self) -> Counters {
        vec![
            ("rows".to_string(), self.rows),
            (DATA_ADDRESS.to_string(), self.address),
        ]
    }
}
