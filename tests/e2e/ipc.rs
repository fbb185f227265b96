//! The `ipc` plugin through the real host: every file of the Arrow IPC corpus reads as
//! pyarrow reads it (and as its golden JSON says), every malformed file is a clear error,
//! pyarrow reads each sink's output back equal to its input, and a pyarrow reader gets the
//! batches of a stream on standard output while the pipeline runs.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::StreamWriter;
use mlpipe_tests::{describe, host_command, python, run_host, run_python, shared_dir, temp_dir};

/// Writes a pipeline file and runs it; returns the host's output.
fn run(dir: &Path, name: &str, source: &str, sink: &str) -> std::process::Output {
    let pipeline = dir.join(format!("{name}.toml"));
    std::fs::write(&pipeline, format!("[source]\n{source}\n\n[sink]\n{sink}\n"))
        .expect("cannot write the pipeline file");
    run_host([
        OsStr::new("run"),
        pipeline.as_os_str(),
        OsStr::new("--quiet"),
    ])
}

/// A TOML string literal of a path.
fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("cannot list the corpus folder")
        .map(|e| e.expect("cannot list the corpus folder").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Compares each (original, mlpipe output) pair: pyarrow reads both equal, and the output
/// agrees with the case's golden JSON (row count, names, validity, and the values of
/// primitive, temporal, decimal, string and binary columns). Prints one line per pair.
const COMPARE: &str = r#"
import gzip, json, sys
import numpy as np
import pyarrow as pa

def read(path):
    with open(path, "rb") as f:
        magic = f.read(6)
    return (pa.ipc.open_file if magic == b"ARROW1" else pa.ipc.open_stream)(path).read_all()

def golden_check(table, golden):
    doc = json.load(gzip.open(golden))
    names = [f["name"] for f in doc["schema"]["fields"]]
    assert table.column_names == names, (table.column_names, names)
    rows = sum(b["count"] for b in doc["batches"])
    assert table.num_rows == rows, (table.num_rows, rows)
    checked = 0
    for i, field in enumerate(doc["schema"]["fields"]):
        columns = [b["columns"][i] for b in doc["batches"]]
        if not table.num_rows:
            continue
        try:
            array = table.column(i).combine_chunks()
        except KeyError:
            continue  # pyarrow has no Python array class for this type (month_interval)
        if isinstance(array.type, pa.BaseExtensionType):
            array = array.storage
        if "dictionary" in field:
            continue  # indices may be re-encoded when batches are merged
        kind = field["type"]["name"]
        if kind in ("runendencoded", "union"):
            continue  # no validity of their own: pyarrow derives it from the children
        present = 0 if kind == "null" else 1  # a null column has no validity: all null
        validity = [v for c in columns for v in c.get("VALIDITY", [present] * c["count"])]
        assert array.is_valid().to_pylist() == [bool(v) for v in validity], field["name"]
        data = [v for c in columns for v in c.get("DATA", [])]
        valid = [j for j, v in enumerate(validity) if v]
        if kind in ("utf8", "largeutf8"):
            values = array.to_pylist()
            assert [values[j] for j in valid] == [data[j] for j in valid], field["name"]
        elif kind in ("binary", "largebinary", "fixedsizebinary"):
            values = array.to_pylist()
            assert [values[j].hex().upper() for j in valid] == [data[j].upper() for j in valid], field["name"]
        elif kind in ("int", "date", "time", "timestamp", "duration", "floatingpoint", "decimal"):
            width = array.type.byte_width
            raw = array.buffers()[1]
            chunk = bytes(raw)[array.offset * width:(array.offset + len(array)) * width]
            if kind == "floatingpoint":
                got = np.frombuffer(chunk, dtype={2: np.float16, 4: np.float32, 8: np.float64}[width])
                want = np.array([float(data[j]) for j in valid], dtype=got.dtype)
                assert np.allclose(got[valid], want, equal_nan=True), field["name"]
            else:
                signed = kind != "int" or field["type"].get("isSigned", True)
                got = [int.from_bytes(chunk[j * width:(j + 1) * width], "little", signed=signed) for j in valid]
                assert got == [int(data[j]) for j in valid], field["name"]
        else:
            continue
        checked += 1
    return checked

for line in sys.stdin:
    original, ours, golden = line.rstrip("\n").split("\t")
    expected, got = read(original), read(ours)
    assert got.schema.equals(expected.schema), (original, got.schema, expected.schema)
    assert got.equals(expected), original
    print(original, got.num_rows, golden_check(got, golden), flush=True)
"#;

#[test]
fn every_corpus_ipc_file_reads_as_pyarrow_reads_it() {
    let corpus = shared_dir().join("corpus/arrow-ipc/integration");
    let dir = temp_dir();
    let mut pairs = String::new();
    let mut read = 0;
    let mut refused = Vec::new();
    for producer in files_in_dirs(&corpus) {
        for input in files_in(&producer) {
            let name = input.file_name().unwrap().to_string_lossy().into_owned();
            let (stem, sink) = match name.rsplit_once('.') {
                Some((stem, "arrow_file")) => (stem.to_string(), "ipc"),
                Some((stem, "stream")) => (stem.to_string(), "ipc_stream"),
                _ => continue,
            };
            let label = format!("{}-{name}", producer.file_name().unwrap().to_string_lossy());
            let output = dir.path().join(format!("{label}.out"));
            let outcome = run(
                dir.path(),
                &label,
                &format!("type = \"ipc\"\npath = {}", quoted(&input)),
                &format!("type = \"{sink}\"\npath = {}", quoted(&output)),
            );
            let stderr = String::from_utf8_lossy(&outcome.stderr);
            assert!(
                !stderr.contains("panicked"),
                "{}: {}",
                input.display(),
                describe(&outcome)
            );
            if producer.ends_with("1.0.0-bigendian") {
                // EITHER in the corpus README: refused cleanly, naming the file and the fix.
                assert_eq!(outcome.status.code(), Some(2), "{}", describe(&outcome));
                assert!(stderr.contains(&input.display().to_string()), "{stderr}");
                assert!(stderr.contains("big-endian"), "{stderr}");
                refused.push(name);
                continue;
            }
            assert!(
                outcome.status.success(),
                "{}: {}",
                input.display(),
                describe(&outcome)
            );
            let golden = producer.join(format!("{stem}.json.gz"));
            pairs += &format!(
                "{}\t{}\t{}\n",
                input.display(),
                output.display(),
                golden.display()
            );
            read += 1;
        }
    }
    assert_eq!(read, 76, "the corpus README lists 76 READ files");
    assert_eq!(refused.len(), 6, "{refused:?}");

    let mut child = Command::new(python())
        .args(["-c", COMPARE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pairs.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(report.lines().count(), 76, "{report}");
    let golden_columns: usize = report
        .lines()
        .map(|line| line.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    // Hundreds of columns checked value by value against the golden JSON.
    assert!(
        golden_columns > 300,
        "{golden_columns} columns checked against the golden JSON\n{report}"
    );
}

fn files_in_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("cannot list the corpus folder")
        .map(|e| e.expect("cannot list the corpus folder").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_malformed_ipc_file_is_a_clear_error() {
    let bad = shared_dir().join("corpus/arrow-ipc-bad");
    let dir = temp_dir();
    let mut inputs: Vec<(PathBuf, &str)> = vec![(bad.join("schema_v6.arrow"), "stream")];
    inputs.extend(files_in(&bad.join("file")).into_iter().map(|p| (p, "file")));
    inputs.extend(
        files_in(&bad.join("stream"))
            .into_iter()
            .map(|p| (p, "stream")),
    );
    assert_eq!(inputs.len(), 38);
    let mut either_read = 0;
    for (index, (input, format)) in inputs.iter().enumerate() {
        let outcome = run(
            dir.path(),
            &format!("bad{index}"),
            &format!(
                "type = \"ipc\"\nformat = \"{format}\"\npath = {}",
                quoted(input)
            ),
            "type = \"discard\"",
        );
        let stderr = String::from_utf8_lossy(&outcome.stderr);
        assert!(!stderr.contains("panicked"), "{}", describe(&outcome));
        assert!(
            !stderr.contains("decoder fail"),
            "arrow-rs panicked: {}",
            describe(&outcome)
        );
        let name = input.file_name().unwrap().to_string_lossy();
        if name == "clusterfuzz-testcase-minimized-arrow-ipc-file-fuzz-6295340960776192"
            && outcome.status.success()
        {
            // EITHER in the corpus README (a valid list-view file by now).
            either_read += 1;
            continue;
        }
        assert!(
            matches!(outcome.status.code(), Some(1 | 2)),
            "{}: {}",
            input.display(),
            describe(&outcome)
        );
        assert!(
            stderr.contains(&input.display().to_string()),
            "{}",
            describe(&outcome)
        );
        if name == "schema_v6.arrow" {
            assert!(stderr.contains("metadata version V6"), "{stderr}");
        }
    }
    eprintln!("EITHER file read: {either_read}");
}

/// A table of many types with nulls everywhere, written by pyarrow as an IPC file.
const MAKE_TABLE: &str = r#"
import datetime, decimal, sys
import pyarrow as pa
n = 1000
def nulls(values, every):
    return [None if i % every == 0 else v for i, v in enumerate(values)]
table = pa.table({
    "i8": pa.array(nulls([i % 100 - 50 for i in range(n)], 7), pa.int8()),
    "i64": pa.array(nulls([i * 10**12 for i in range(n)], 5), pa.int64()),
    "u32": pa.array(nulls(list(range(n)), 11), pa.uint32()),
    "f32": pa.array(nulls([i / 8 for i in range(n)], 3), pa.float32()),
    "f64": pa.array(nulls([i / 3 for i in range(n)], 4), pa.float64()),
    "flag": pa.array(nulls([i % 2 == 0 for i in range(n)], 6), pa.bool_()),
    "name": pa.array(nulls([f"name {i} é" for i in range(n)], 9), pa.string()),
    "big": pa.array(nulls([f"l{i}" for i in range(n)], 8), pa.large_string()),
    "blob": pa.array(nulls([bytes([i % 256, 0]) for i in range(n)], 10), pa.binary()),
    "day": pa.array(nulls([datetime.date(2020, 1, 1) + datetime.timedelta(days=i) for i in range(n)], 12), pa.date32()),
    "ts": pa.array(nulls([i * 1_000_003 for i in range(n)], 13), pa.timestamp("us", tz="UTC")),
    "price": pa.array(nulls([decimal.Decimal(i) / 100 for i in range(n)], 14), pa.decimal128(12, 2)),
    "tags": pa.array(nulls([[j for j in range(i % 4)] for i in range(n)], 15), pa.list_(pa.int32())),
    "pos": pa.array(nulls([{"x": float(i), "label": str(i)} for i in range(n)], 16),
                    pa.struct([("x", pa.float64()), ("label", pa.string())])),
    "city": pa.array(nulls([["Oslo", "Lima", "Pune"][i % 3] for i in range(n)], 17)).dictionary_encode(),
})
with pa.ipc.new_file(sys.argv[1], table.schema) as writer:
    for batch in table.to_batches(max_chunksize=300):
        writer.write_batch(batch)
"#;

const CHECK_EQUAL: &str = r#"
import sys
import pyarrow as pa
def read(path):
    with open(path, "rb") as f:
        magic = f.read(6)
    return (pa.ipc.open_file if magic == b"ARROW1" else pa.ipc.open_stream)(path).read_all()
expected, got = read(sys.argv[1]), read(sys.argv[2])
assert got.schema.equals(expected.schema), (got.schema, expected.schema)
assert got.equals(expected)
compression = sys.argv[3]
with pa.memory_map(sys.argv[2]) as source:
    reader = (pa.ipc.open_file if compression.startswith("file") else pa.ipc.open_stream)(source)
print(got.num_rows)
"#;

#[test]
fn pyarrow_reads_every_ipc_sink_output_back_equal_to_the_input() {
    let dir = temp_dir();
    let input = dir.path().join("input.arrow");
    run_python(MAKE_TABLE, &[input.as_os_str()]);
    for (sink, compression) in [
        ("ipc", "none"),
        ("ipc", "lz4"),
        ("ipc", "zstd"),
        ("ipc_stream", "none"),
        ("ipc_stream", "zstd"),
    ] {
        let label = format!("{sink}-{compression}");
        let output = dir.path().join(format!("{label}.arrow"));
        let outcome = run(
            dir.path(),
            &label,
            &format!("type = \"ipc\"\npath = {}", quoted(&input)),
            &format!(
                "type = \"{sink}\"\npath = {}\ncompression = \"{compression}\"",
                quoted(&output)
            ),
        );
        assert!(outcome.status.success(), "{label}: {}", describe(&outcome));
        let kind = if sink == "ipc" { "file" } else { "stream" };
        let rows = run_python(
            CHECK_EQUAL,
            &[input.as_os_str(), output.as_os_str(), OsStr::new(kind)],
        );
        assert_eq!(rows.trim(), "1000", "{label}");
    }
}

/// Reads an IPC stream from standard input as it arrives: prints each batch's first id as
/// soon as it is read, then the total; checks the values.
const STREAM_READER: &str = r#"
import sys
import pyarrow as pa
reader = pa.ipc.open_stream(sys.stdin.buffer)
total = 0
for batch in reader:
    ids = batch.column("id").to_pylist()
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids
    assert batch.column("name").to_pylist() == [f"row {i}" for i in ids]
    total += batch.num_rows
    print("batch", ids[0], flush=True)
print("total", total, flush=True)
"#;

fn numbered(start: i64, rows: i64) -> RecordBatch {
    let ids: Vec<i64> = (start..start + rows).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("row {i}")).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(names)),
    ];
    RecordBatch::try_new(schema, columns).expect("a valid batch")
}

/// The host reads a stream from its standard input and writes one to its standard output,
/// piped into a pyarrow reader. The test sends a batch, waits until the reader has it, and
/// only then sends the next: every batch crosses the pipeline while the run goes on.
#[test]
fn a_pyarrow_reader_gets_each_batch_while_the_pipeline_runs() {
    let dir = temp_dir();
    let pipeline = dir.path().join("pipe.toml");
    let rows = 100;
    std::fs::write(
        &pipeline,
        format!(
            "[pipeline]\nbatch_rows = {rows}\n\n[source]\ntype = \"ipc\"\npath = \"-\"\n\n\
             [sink]\ntype = \"ipc_stream\"\npath = \"-\"\n"
        ),
    )
    .unwrap();
    let mut host = host_command([
        OsStr::new("run"),
        pipeline.as_os_str(),
        OsStr::new("--quiet"),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut reader = Command::new(python())
        .args(["-c", STREAM_READER])
        .stdin(Stdio::from(host.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(reader.stdout.take().unwrap()).lines();
    let batches = 5;
    let mut writer =
        StreamWriter::try_new(host.stdin.take().unwrap(), &numbered(0, 1).schema()).unwrap();
    for index in 0..batches {
        writer.write(&numbered(index * rows, rows)).unwrap();
        writer.flush().unwrap();
        let line = said.next().expect("the reader ended early").unwrap();
        assert_eq!(line, format!("batch {}", index * rows));
        assert!(
            host.try_wait().unwrap().is_none(),
            "the host exited before its input ended"
        );
    }
    writer.finish().unwrap();
    drop(writer);
    assert_eq!(
        said.next().unwrap().unwrap(),
        format!("total {}", batches * rows)
    );
    let host = host.wait_with_output().unwrap();
    assert!(host.status.success(), "{}", describe(&host));
    let reader = reader.wait_with_output().unwrap();
    assert!(reader.status.success(), "{}", describe(&reader));
}

/// A run that fails after it began writing to standard output leaves a stream its reader
/// refuses, not one that looks complete.
#[test]
fn a_failed_run_leaves_a_broken_stream_on_standard_output() {
    let dir = temp_dir();
    let input = dir.path().join("in.arrows");
    let mut bytes = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut bytes, &numbered(0, 1).schema()).unwrap();
        writer.write(&numbered(0, 50)).unwrap();
        writer.write(&numbered(50, 50)).unwrap();
    }
    // The second batch is cut off: the source fails on it.
    bytes.truncate(bytes.len() - 20);
    std::fs::write(&input, &bytes).unwrap();
    let pipeline = dir.path().join("fail.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[pipeline]\nbatch_rows = 50\n\n[source]\ntype = \"ipc\"\npath = {}\n\n[sink]\ntype = \"ipc_stream\"\npath = \"-\"\n",
            quoted(&input)
        ),
    )
    .unwrap();
    let output = host_command([
        OsStr::new("run"),
        pipeline.as_os_str(),
        OsStr::new("--quiet"),
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("truncated"),
        "{}",
        describe(&output)
    );
    let stream = dir.path().join("out.arrows");
    std::fs::write(&stream, &output.stdout).unwrap();
    let check = Command::new(python())
        .args([
            "-c",
            "import sys, pyarrow as pa; pa.ipc.open_stream(sys.argv[1]).read_all()",
        ])
        .arg(&stream)
        .output()
        .unwrap();
    assert!(
        !check.status.success(),
        "pyarrow read a cut stream as complete"
    );
}
