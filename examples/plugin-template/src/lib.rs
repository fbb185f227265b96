//! An example third-party plugin: a transform that multiplies float64 columns by a factor.
use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{ArrayRef, AsArray};
use mlpipe_plugin_api::arrow::compute::kernels::arity::unary;
use mlpipe_plugin_api::arrow::datatypes::Float64Type;
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Plugin, RecordBatch, Result, SchemaRef, Transform,
};

struct Scale {
    factor: f64,
}

impl Transform for Scale {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(input.clone())
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let scale = |column: &ArrayRef| match column.as_primitive_opt::<Float64Type>() {
            Some(values) => {
                Arc::new(unary::<_, _, Float64Type>(values, |x| x * self.factor)) as ArrayRef
            }
            None => column.clone(),
        };
        let columns = batch.columns().iter().map(scale).collect();
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }
}

fn plugin() -> Plugin {
    let factor = ConfigKey::new("factor", ConfigType::Float, "what to multiply by").required();
    Plugin::new("scale", env!("CARGO_PKG_VERSION")).transform(
        "scale",
        "multiplies every float64 column by a factor",
        [factor],
        |config: &Config| {
            Ok(Scale {
                factor: config.require("factor")?,
            })
        },
    )
}

mlpipe_plugin_api::export_plugin!(plugin);
