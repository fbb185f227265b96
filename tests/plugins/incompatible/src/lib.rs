//! A plugin that says it was built against `mlpipe-plugin-api 1.0.0`, a major version the
//! host (API 0.1) must refuse before running any of its code beyond the version field.

use mlpipe_plugin_api::{Plugin, RecordBatch, Result, SchemaRef, Transform};

/// Never created: the host refuses the library before asking for a component.
struct Identity;

impl Transform for Identity {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(input.clone())
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        Ok(batch)
    }
}

fn plugin() -> Plugin {
    Plugin::new("incompatible", env!("CARGO_PKG_VERSION")).transform(
        "identity",
        "returns its input",
        [],
        |_config| Ok(Identity),
    )
}

mlpipe_plugin_api::export_plugin!(plugin, api_version = "1.0.0");
