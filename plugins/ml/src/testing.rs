//! Test helpers: building batches, and fitting a transform the way the host does (several
//! instances each see a share of the batches, their partials are merged into one, which
//! finishes the fit; the parameters then travel as JSON text to a fresh instance).

use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::ArrayRef;
use mlpipe_plugin_api::arrow::datatypes::{Field, Schema};
use mlpipe_plugin_api::{Kernels, RecordBatch, Result, Transform};
use serde_json::Value;

/// A batch of nullable columns.
pub(crate) fn batch_of(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("a valid test batch")
}

/// The standard `simd` plugin's kernels, created in process (the host would load them from
/// its library).
pub(crate) fn simd_kernels() -> Kernels {
    let simd = mlpipe_plugin_simd::plugin();
    let mut kernels = Kernels::default();
    for component in simd.manifest().components {
        let kernel = simd
            .create_kernel(&component.name, &serde_json::json!({}))
            .unwrap_or_else(|e| panic!("cannot create kernel `{}`: {e}", component.name));
        kernels.insert(component.name, Arc::from(kernel));
    }
    kernels
}

/// A transform of the plugin, built from `config`, with the standard kernels.
pub(crate) fn try_make(name: &str, config: &Value) -> Result<Box<dyn Transform>> {
    crate::plugin().create_transform_with_kernels(name, config, simd_kernels())
}

/// [`try_make`], which must succeed.
pub(crate) fn make(name: &str, config: &Value) -> Box<dyn Transform> {
    try_make(name, config).unwrap_or_else(|e| panic!("cannot create `{name}`: {e}"))
}

/// Fits `name` on `batch` cut into slices shared by `instances` instances, and returns the
/// fitted parameters and a fresh instance that loaded them.
pub(crate) fn fit_in_parts(
    name: &str,
    config: &Value,
    batch: &RecordBatch,
    instances: usize,
) -> (Value, Box<dyn Transform>) {
    let mut fitters: Vec<Box<dyn Transform>> = (0..instances).map(|_| make(name, config)).collect();
    let pieces = (instances * 2).max(1);
    let step = batch.num_rows().div_ceil(pieces).max(1);
    let mut offset = 0;
    let mut turn = 0;
    while offset < batch.num_rows() {
        let len = step.min(batch.num_rows() - offset);
        let fitter = &mut fitters[turn % instances];
        assert!(fitter.needs_fit(), "`{name}` says it needs no fit");
        fitter
            .fit(&batch.slice(offset, len))
            .unwrap_or_else(|e| panic!("fit failed: {e}"));
        offset += len;
        turn += 1;
    }
    let mut fitters = fitters.into_iter();
    let mut first = fitters.next().expect("at least one instance");
    for mut other in fitters {
        let partial = other.fit_partial().expect("a partial");
        first.merge_fit(&partial).expect("partials merge");
    }
    let params = first
        .finish_fit()
        .unwrap_or_else(|e| panic!("finish_fit failed: {e}"));
    let text = params.to_string();
    let reparsed: Value = serde_json::from_str(&text).expect("parameters are JSON");
    let mut fresh = make(name, config);
    fresh
        .load_fit(&reparsed)
        .unwrap_or_else(|e| panic!("load_fit failed: {e}"));
    (params, fresh)
}

/// Transforms `batch` and checks the output against the declared output schema.
pub(crate) fn transform(t: &mut dyn Transform, batch: RecordBatch) -> RecordBatch {
    let declared = t
        .output_schema(&batch.schema())
        .unwrap_or_else(|e| panic!("output_schema failed: {e}"));
    let out = t
        .transform(batch)
        .unwrap_or_else(|e| panic!("transform failed: {e}"));
    assert_eq!(out.schema(), declared, "the output has the declared schema");
    out
}
