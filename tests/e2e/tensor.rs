//! The `tensor` sink: a pipeline writes training shards, and NumPy and safetensors (the
//! PyPI packages a trainer uses) load them with the expected shapes, dtypes and values.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch,
};
use arrow::datatypes::{DataType, Field, Schema};
use mlpipe_tests::{describe, run_host, run_python, temp_dir};
use parquet::arrow::ArrowWriter;

const ROWS: usize = 1000;

/// A Parquet file of `ROWS` rows: `f0` (float64, null every 13th row), `f1` (float32),
/// `emb` (an `arrow.fixed_shape_tensor` of 3 float32), `id` (int64) and `label` (int64).
fn write_input(path: &Path) {
    let f0: Float64Array = (0..ROWS)
        .map(|i| (i % 13 != 0).then_some(i as f64 * 0.5 - 7.0))
        .collect();
    let f1 = Float32Array::from_iter_values((0..ROWS).map(|i| (i as f32).sqrt()));
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let values = Float32Array::from_iter_values((0..ROWS * 3).map(|i| i as f32 / 3.0));
    let emb = FixedSizeListArray::new(item.clone(), 3, Arc::new(values), None);
    let extension = HashMap::from([
        (
            "ARROW:extension:name".to_string(),
            "arrow.fixed_shape_tensor".to_string(),
        ),
        (
            "ARROW:extension:metadata".to_string(),
            r#"{"shape":[3]}"#.to_string(),
        ),
    ]);
    let emb_field =
        Field::new("emb", DataType::FixedSizeList(item, 3), false).with_metadata(extension);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("f0", DataType::Float64, true),
        Field::new("f1", DataType::Float32, false),
        emb_field,
        Field::new("label", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..ROWS as i64)),
        Arc::new(f0),
        Arc::new(f1),
        Arc::new(emb),
        Arc::new(Int64Array::from_iter_values(
            (0..ROWS as i64).map(|i| i % 5),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("a valid batch");
    let mut writer = ArrowWriter::try_new(File::create(path).expect("input file"), schema, None)
        .expect("a Parquet writer");
    writer.write(&batch).expect("written");
    writer.close().expect("closed");
}

fn pipeline(dir: &Path, sink: &str) -> std::path::PathBuf {
    let path = dir.join("pipeline.toml");
    let text = format!(
        "[pipeline]\nbatch_rows = 128\n\n[source]\ntype = \"parquet\"\npath = \"in.parquet\"\n\n\
         [sink]\ntype = \"tensor\"\npath = \"out\"\nfeatures = [\"f0\", \"f1\", \"emb\"]\n\
         label = \"label\"\n{sink}\n"
    );
    std::fs::write(&path, text).expect("pipeline file");
    path
}

/// Loads every shard with numpy and safetensors and compares them with the input as
/// pyarrow reads it; prints what it checked.
const CHECK: &str = r#"
import json, sys
import numpy as np, pyarrow.parquet as pq
from safetensors.numpy import load_file

out, source = sys.argv[1], sys.argv[2]
index = json.load(open(f"{out}/index.json"))
table = pq.read_table(source)
f0 = table["f0"].to_numpy(zero_copy_only=False)
f0 = np.where(np.isnan(f0), 0.0, f0).astype(np.float32)  # nulls read as NaN; fill = 0
f1 = table["f1"].to_numpy().astype(np.float32)
emb = table["emb"].combine_chunks()
emb = getattr(emb, "storage", emb)  # an arrow.fixed_shape_tensor array, or its list storage
emb = emb.flatten().to_numpy().reshape(-1, 3)
expected = np.column_stack([f0, f1, emb]).astype(np.float32)
labels = table["label"].to_numpy()

assert index["features"]["names"] == ["f0", "f1", "emb[0]", "emb[1]", "emb[2]"], index["features"]
assert index["label"] == {"name": "label", "dtype": "int64"}, index["label"]
rows = index["rows"]
start = 0
for shard in index["shards"]:
    n = shard["rows"]
    x = np.load(f"{out}/{shard['npy']['features']}")
    y = np.load(f"{out}/{shard['npy']['labels']}")
    assert x.dtype == np.float32 and x.shape == (n, 5) == tuple(shard["shapes"]["features"]), x.shape
    assert y.dtype == np.int64 and y.shape == (n,), (y.dtype, y.shape)
    assert shard["batches"] == -(-n // index["batch_size"])
    tensors = load_file(f"{out}/{shard['safetensors']}")
    assert np.array_equal(tensors["features"], x) and np.array_equal(tensors["labels"], y)
    assert np.array_equal(x, expected[start:start + n]), f"features of rows {start}..{start + n}"
    assert np.array_equal(y, labels[start:start + n]), f"labels of rows {start}..{start + n}"
    start += n
assert start == rows
print(rows, len(index["shards"]), [s["rows"] for s in index["shards"]][-1])
"#;

#[test]
fn npy_and_safetensors_shards_load_in_numpy_with_the_input_values() {
    let dir = temp_dir();
    write_input(&dir.path().join("in.parquet"));
    let toml = pipeline(
        dir.path(),
        "batch_size = 32\nrows_per_shard = 100\nfill = 0.0\nformats = [\"npy\", \"safetensors\"]",
    );
    let output = run_host(["run".as_ref(), toml.as_os_str(), "--quiet".as_ref()]);
    assert!(output.status.success(), "{}", describe(&output));
    let out = dir.path().join("out");
    let checked = run_python(
        CHECK,
        &[out.as_os_str(), dir.path().join("in.parquet").as_os_str()],
    );
    // 1000 rows in shards of 96 (whole batches of 32): ten full shards and one of 40.
    assert_eq!(checked.trim(), "1000 11 40");
}

#[test]
fn drop_last_drops_the_partial_batch() {
    let dir = temp_dir();
    write_input(&dir.path().join("in.parquet"));
    let toml = pipeline(
        dir.path(),
        "batch_size = 64\nrows_per_shard = 640\nfill = 0.0\ndrop_last = true",
    );
    let output = run_host(["run".as_ref(), toml.as_os_str(), "--quiet".as_ref()]);
    assert!(output.status.success(), "{}", describe(&output));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/index.json")).expect("index"))
            .expect("JSON");
    assert_eq!(
        index["rows"], 960,
        "15 batches of 64; the last 40 rows dropped"
    );
    let rows: Vec<&serde_json::Value> = index["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| &s["rows"])
        .collect();
    assert_eq!(rows, [640, 320]);
}

#[test]
fn a_null_feature_fails_the_run_naming_the_column_and_row_and_leaves_no_output() {
    let dir = temp_dir();
    write_input(&dir.path().join("in.parquet"));
    let toml = pipeline(dir.path(), "");
    let output = run_host(["run".as_ref(), toml.as_os_str(), "--quiet".as_ref()]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("feature column `f0` is null at row 0"),
        "{}",
        describe(&output)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the test directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        !left.iter().any(|name| name.contains("out")),
        "left behind: {left:?}"
    );
}
