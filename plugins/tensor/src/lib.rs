//! # mlpipe-plugin-tensor
//!
//! The training-output plugin: sink `tensor` writes what a training loop loads directly.
//!
//! Rows are cut into fixed-size batches of `batch_size` rows and grouped into shards of
//! `rows_per_shard` rows (whole batches). Each shard is written as
//!
//! - NumPy: `shard-NNNNN.features.npy` (float32, shape `[rows, width]`, C order) and
//!   `shard-NNNNN.labels.npy` (the label column's dtype, shape `[rows]`), and/or
//! - safetensors: `shard-NNNNN.safetensors` with tensors `features` and `labels` and the
//!   feature names in its metadata;
//!
//! plus an `index.json` that lists the shards, their rows, batches, files and shapes, the
//! dtypes and the feature names. Features are numeric columns (cast to float32) and
//! fixed-size lists of numbers, such as `arrow.fixed_shape_tensor` columns (flattened, one
//! feature per element). The output directory appears only on a successful flush (it is
//! written as a hidden temporary directory beside it and renamed); an existing one is
//! replaced only with `overwrite = true`. A null feature is an error naming the column and
//! the row, unless `fill` is set; a null label is always an error.
//!
//! The sink runs on the host's sink thread and starts no threads of its own.

#[cfg(target_endian = "big")]
compile_error!("the tensor sink writes little-endian .npy and safetensors data");

mod layout;
mod npy;
mod output_dir;
mod sink;

use mlpipe_plugin_api::Plugin;

/// The plugin definition the host loads.
fn plugin() -> Plugin {
    Plugin::new("tensor", env!("CARGO_PKG_VERSION")).sink(
        "tensor",
        "writes fixed-size training batches as .npy and/or safetensors shards with a JSON index (atomic directory)",
        sink::keys(),
        sink::TensorSink::from_config,
    )
}

mlpipe_plugin_api::export_plugin!(plugin);

#[cfg(test)]
mod tests;
