//! The sink through its plugin entry point: shards, index, batches, nulls, atomicity.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int8Array, Int64Array, StringArray,
};
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Schema};
use mlpipe_plugin_api::{ErrorKind, RecordBatch, Sink};
use serde_json::{Value, json};

use crate::plugin;

/// `rows` rows from `start`: `a` (float64, null at multiples of 7 when `nulls`), `b`
/// (int64), `emb` (fixed-size list of 2 float32), `name` (string), `y` (int8).
fn batch(start: usize, rows: usize, nulls: bool) -> RecordBatch {
    let ids: Vec<usize> = (start..start + rows).collect();
    let a: Float64Array = ids
        .iter()
        .map(|&i| (!nulls || i % 7 != 0).then_some(i as f64 + 0.5))
        .collect();
    let b = Int64Array::from_iter_values(ids.iter().map(|&i| -(i as i64)));
    let values = Float32Array::from_iter_values(ids.iter().flat_map(|&i| [i as f32, 0.25]));
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let emb = FixedSizeListArray::new(item, 2, Arc::new(values), None);
    let name = StringArray::from_iter_values(ids.iter().map(|i| format!("n{i}")));
    let y = Int8Array::from_iter_values(ids.iter().map(|&i| (i % 3) as i8));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(a),
        Arc::new(b),
        Arc::new(emb),
        Arc::new(name),
        Arc::new(y),
    ];
    let fields: Vec<Field> = ["a", "b", "emb", "name", "y"]
        .iter()
        .zip(&columns)
        .map(|(name, c)| Field::new(*name, c.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn sink(config: Value) -> Box<dyn Sink> {
    plugin().create_sink("tensor", &config).unwrap()
}

fn run(config: Value, batches: &[RecordBatch]) -> mlpipe_plugin_api::Result<()> {
    let mut sink = plugin().create_sink("tensor", &config)?;
    sink.begin(&batches[0].schema())?;
    for batch in batches {
        sink.consume(batch.clone())?;
    }
    sink.flush()
}

/// The data of an `.npy` file written by this crate, after its header.
fn npy_data(path: &Path) -> Vec<u8> {
    let bytes = fs::read(path).unwrap();
    let header = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    bytes[10 + header..].to_vec()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn index(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap()
}

#[test]
fn shards_hold_whole_batches_and_the_index_describes_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("train");
    let config = json!({
        "path": out, "features": ["b", "emb", "a"], "label": "y",
        "batch_size": 4, "rows_per_shard": 10, "formats": ["npy", "safetensors"],
    });
    run(config, &[batch(0, 7, false), batch(7, 11, false)]).unwrap();
    let index = index(&out);
    assert_eq!(index["rows"], 18);
    assert_eq!(index["rows_per_shard"], 8, "rounded down to whole batches");
    assert_eq!(
        index["features"]["names"],
        json!(["b", "emb[0]", "emb[1]", "a"])
    );
    assert_eq!(index["features"]["width"], 4);
    assert_eq!(index["label"], json!({ "name": "y", "dtype": "int8" }));
    let shards = index["shards"].as_array().unwrap();
    let rows: Vec<&Value> = shards.iter().map(|s| &s["rows"]).collect();
    assert_eq!(rows, [8, 8, 2]);
    assert_eq!(shards[2]["batches"], 1);
    assert_eq!(shards[2]["shapes"]["features"], json!([2, 4]));
    assert_eq!(shards[1]["npy"]["labels"], "shard-00001.labels.npy");
    assert_eq!(shards[1]["safetensors"], "shard-00001.safetensors");

    let features = f32s(&npy_data(&out.join("shard-00001.features.npy")));
    let expected: Vec<f32> = (8..16)
        .flat_map(|i| [-(i as f32), i as f32, 0.25, i as f32 + 0.5])
        .collect();
    assert_eq!(features, expected);
    let labels = npy_data(&out.join("shard-00001.labels.npy"));
    assert_eq!(labels, (8..16).map(|i| (i % 3) as u8).collect::<Vec<_>>());
    let tensors = fs::read(out.join("shard-00001.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&tensors).unwrap();
    assert_eq!(f32s(tensors.tensor("features").unwrap().data()), expected);
    assert_eq!(tensors.tensor("labels").unwrap().shape(), [8]);
}

#[test]
fn drop_last_drops_only_the_final_partial_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    let config = json!({ "path": out, "features": ["a"], "batch_size": 4, "drop_last": true });
    run(config, &[batch(0, 10, false)]).unwrap();
    let index = index(&out);
    assert_eq!(index["rows"], 8);
    assert_eq!(index["label"], Value::Null);
    assert_eq!(index["shards"][0]["batches"], 2);
    assert!(!out.join("shard-00000.labels.npy").exists());
    assert!(
        !out.join("shard-00000.safetensors").exists(),
        "npy is the default format"
    );
}

#[test]
fn a_null_feature_is_an_error_naming_the_column_and_row_unless_filled() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    let config = json!({ "path": out, "features": ["a", "b"], "label": "y" });
    let error = run(config, &[batch(1, 5, true), batch(6, 5, true)]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BadData);
    assert!(
        error
            .message()
            .contains("feature column `a` is null at row 6"),
        "{error}"
    );
    assert!(error.message().contains("`fill`"), "{error}");
    assert_eq!(error.rows(), Some(6..7));
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing left behind"
    );

    let config = json!({ "path": out, "features": ["a", "b"], "fill": -1.0 });
    run(config, &[batch(0, 8, true)]).unwrap();
    let features = f32s(&npy_data(&out.join("shard-00000.features.npy")));
    assert_eq!(
        features[..4],
        [-1.0, 0.0, 1.5, -1.0],
        "rows 0 (null a) and 1"
    );
    assert_eq!(features[14..], [-1.0, -7.0], "row 7 (null a)");
}

#[test]
fn an_existing_output_is_kept_unless_overwrite_and_a_failed_run_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    run(
        json!({ "path": out, "features": ["a"] }),
        &[batch(0, 3, false)],
    )
    .unwrap();
    let error = run(
        json!({ "path": out, "features": ["a"] }),
        &[batch(0, 5, false)],
    )
    .unwrap_err();
    assert!(error.message().contains("overwrite = true"), "{error}");
    assert_eq!(index(&out)["rows"], 3);

    let mut failing = sink(json!({ "path": out, "features": ["a"], "overwrite": true }));
    failing.begin(&batch(0, 1, false).schema()).unwrap();
    failing.consume(batch(0, 5, false)).unwrap();
    drop(failing);
    assert_eq!(index(&out)["rows"], 3, "the old output is intact");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["t"], "no temporary directory left");

    run(
        json!({ "path": out, "features": ["a"], "overwrite": true }),
        &[batch(0, 5, false)],
    )
    .unwrap();
    assert_eq!(index(&out)["rows"], 5);
}

#[test]
fn bad_configs_and_columns_are_errors_that_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    let cases = [
        (
            json!({ "path": out, "features": ["zz"] }),
            "no column `zz`; its columns are a, b, emb, name, y",
        ),
        (
            json!({ "path": out, "features": ["name"] }),
            "column `name` has type Utf8",
        ),
        (
            json!({ "path": out, "features": ["a"], "label": "name" }),
            "a label must be a boolean",
        ),
        (
            json!({ "path": out, "features": ["a", "a"] }),
            "names `a` twice",
        ),
        (
            json!({ "path": out, "features": ["a"], "formats": ["csv"] }),
            "unknown format `csv`",
        ),
        (
            json!({ "path": out, "features": ["a"], "batch_size": 0 }),
            "`batch_size` must be at least 1",
        ),
        (
            json!({ "path": out, "features": [] }),
            "`features` is empty",
        ),
    ];
    for (config, message) in cases {
        let error = run(config.clone(), &[batch(0, 2, false)]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidConfig, "{config}");
        assert!(error.message().contains(message), "{config}: {error}");
    }
    // A list of no values is no feature (it once panicked splitting rows into chunks of 0).
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let values = Arc::new(Float32Array::from(Vec::<f32>::new()));
    let empty = FixedSizeListArray::try_new_with_length(item, 0, values, None, 2).unwrap();
    let with_empty = RecordBatch::try_from_iter([("e", Arc::new(empty) as ArrayRef)]).unwrap();
    let error = run(json!({ "path": out, "features": ["e"] }), &[with_empty]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidConfig, "{error}");
    assert!(error.message().contains("a list of 0 values"), "{error}");
}
