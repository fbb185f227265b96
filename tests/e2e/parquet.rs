//! The Parquet plugin against real files and a real client: every Parquet file of the
//! shared corpus meets the expectation its README records; pyarrow reads what the sink
//! writes, for every codec, equal to the input; every readable corpus file survives
//! Parquet → mlpipe → Parquet.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use mlpipe_plugin_api::ffi::PluginLibrary;
use mlpipe_tests::{describe, plugin_library, run_host, run_python, shared_dir, temp_dir};
use serde_json::json;

/// What the corpus README expects of a file.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Readable, with this many rows.
    Read(u64),
    /// Must be refused with an error.
    Reject,
    /// Refused or read: either is fine, a crash is not.
    Either,
    /// Only the metadata may be read (the data inflates to gigabytes).
    Heavy,
}

/// Readable files arrow-rs 60.1 cannot read; each must still fail cleanly, naming the
/// file. When arrow-rs learns to read one, this test says so: remove it from the list.
const ARROW_RS_CANNOT_READ: [(&str, &str); 2] = [
    (
        "parquet/arrow-testing/ARROW-17100.parquet",
        // Written by Arrow C++ 2.0, which compressed DATA_PAGE_V2 pages while marking them
        // uncompressed; Arrow C++ recognises the writer version, arrow-rs does not.
        "row group 0",
    ),
    (
        "parquet/dict-page-offset-zero.parquet",
        // Its footer stores a list in ColumnMetaData field 15 (bloom_filter_length, an
        // i32 in the format); arrow-rs's footer decoder rejects the mismatched type.
        "is not a readable Parquet file",
    ),
];

/// Files whose README row count is the footer's `num_rows` while the row groups hold more
/// rows, which pyarrow's `read_table` and mlpipe read: (file, rows read).
const FOOTER_UNDERSTATES_ROWS: [(&str, u64); 1] = [
    // Written by parquet-rs 0.3.0 with num_rows = 0 in the footer; its row group holds 6.
    ("parquet/repeated_no_annotation.parquet", 6),
];

/// Values pyarrow and mlpipe (arrow-rs) read differently from the original, so a copy
/// cannot read back equal to pyarrow's reading of it: (file, column).
const READ_DIFFERENTLY: [(&str, &str); 1] = [
    // INT96 timestamps beyond the int64-nanosecond range (past 2262): both readers
    // overflow, each its own way (pyarrow and arrow-rs agree on the values in range).
    ("parquet/int96_from_spark.parquet", "column a differs"),
];

/// The expectations the corpus README records for the Parquet folders, by path relative
/// to the corpus.
fn expectations(corpus: &Path) -> BTreeMap<String, Expect> {
    let readme = std::fs::read_to_string(corpus.join("README.md")).expect("the corpus README");
    let mut expected = BTreeMap::new();
    let mut folder: Option<String> = None;
    for line in readme.lines() {
        if let Some(heading) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### "))
        {
            let name = heading.split_whitespace().next().unwrap_or_default();
            folder = (name.starts_with("parquet") && name.ends_with('/'))
                .then(|| name.trim_end_matches('/').to_string());
            continue;
        }
        let Some(folder) = &folder else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(file) = cells
            .get(1)
            .and_then(|c| c.strip_prefix('`'))
            .and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        let path = format!("{folder}/{file}");
        let class = if folder == "parquet-bad/fuzz" {
            "REJECT"
        } else {
            cells.get(3).copied().unwrap_or_default()
        };
        let expect = match class {
            "READ" => Expect::Read(
                cells[4]
                    .parse()
                    .unwrap_or_else(|_| panic!("{path}: rows {:?}", cells[4])),
            ),
            "REJECT" | "REJECT-IF-CRC" => Expect::Reject,
            "EITHER" => Expect::Either,
            "HEAVY" => Expect::Heavy,
            // Tables of other kinds (schemas, golden values) under the same headings.
            _ => continue,
        };
        expected.insert(path, expect);
    }
    expected
}

/// Every data file under the corpus's Parquet folders (golden values aside).
fn parquet_files(corpus: &Path) -> Vec<String> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a corpus folder") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if path.file_name() != Some(OsStr::new("expected")) {
                    walk(&path, found);
                }
            } else {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for folder in [
        "parquet",
        "parquet-bad",
        "parquet-encrypted",
        "parquet-heavy",
    ] {
        walk(&corpus.join(folder), &mut found);
    }
    let mut names: Vec<String> = found
        .iter()
        .map(|p| {
            let relative = p.strip_prefix(corpus).expect("found under the corpus");
            relative.to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Runs a pipeline of these stages (TOML tables) and returns what the host did and the
/// rows its report counts as read.
fn run(dir: &Path, name: &str, stages: &str) -> (Output, Option<u64>) {
    let pipeline = dir.join(format!("{name}.toml"));
    let report = dir.join(format!("{name}.json"));
    std::fs::write(&pipeline, stages).expect("cannot write the pipeline file");
    let _ = std::fs::remove_file(&report);
    let output = run_host([
        OsStr::new("run"),
        pipeline.as_os_str(),
        OsStr::new("--quiet"),
        OsStr::new("--metrics-json"),
        report.as_os_str(),
    ]);
    let rows = std::fs::read(&report)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|report| report["rows_read"].as_u64());
    (output, rows)
}

/// A TOML string literal.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

#[test]
fn every_corpus_parquet_file_meets_its_recorded_expectation() {
    let corpus = shared_dir().join("corpus");
    let expected = expectations(&corpus);
    let dir = temp_dir();
    let mut failures = Vec::new();
    for (index, name) in parquet_files(&corpus).iter().enumerate() {
        let Some(expect) = expected.get(name) else {
            failures.push(format!("{name}: the corpus README records no expectation"));
            continue;
        };
        let path = corpus.join(name);
        if *expect == Expect::Heavy {
            check_metadata_only(&path);
            continue;
        }
        let stages = format!(
            "[source]\ntype = \"parquet\"\npath = {}\n\n[sink]\ntype = \"discard\"\n",
            toml_string(&path.to_string_lossy())
        );
        let (output, rows) = run(dir.path(), &format!("p{index}"), &stages);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        // 2: refused when the source was created (reading the footer); 1: while reading.
        let clean_error = matches!(code, Some(1 | 2)) && stderr.contains(&*path.to_string_lossy());
        let known_gap = ARROW_RS_CANNOT_READ.iter().find(|(file, _)| file == name);
        let verdict = match (expect, known_gap) {
            (Expect::Read(_), Some((_, why))) if clean_error && stderr.contains(why) => Ok(()),
            (Expect::Read(_), Some(_)) if code == Some(0) => {
                Err("arrow-rs reads it now: remove it from ARROW_RS_CANNOT_READ".to_string())
            }
            (Expect::Read(n), None) if code == Some(0) => {
                let read = FOOTER_UNDERSTATES_ROWS
                    .iter()
                    .find(|(file, _)| file == name)
                    .map_or(*n, |(_, rows)| *rows);
                if rows == Some(read) {
                    Ok(())
                } else {
                    Err(format!("read {rows:?} rows, not {read}"))
                }
            }
            (Expect::Reject, _) if clean_error => Ok(()),
            (Expect::Either, _) if code == Some(0) || clean_error => Ok(()),
            _ => Err(format!("expected {expect:?}; read {rows:?} rows")),
        };
        if let Err(why) = verdict {
            failures.push(format!("{name}: {why}\n{}", describe(&output)));
        }
        if name.starts_with("parquet-encrypted/") && !stderr.contains("is encrypted") {
            failures.push(format!(
                "{name}: the error does not say the file is encrypted\n{}",
                describe(&output)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A HEAVY file: the source opens it through the real plugin library — footer, schema and
/// row count — and is dropped before reading any data.
fn check_metadata_only(path: &Path) {
    let library = PluginLibrary::load(&plugin_library("mlpipe_plugin_parquet"))
        .expect("the parquet plugin loads");
    let source = library
        .create_source("parquet", &json!({ "path": path }))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(source.size_hint(), Some(2), "{}", path.display());
    let schema = source.schema().expect("a schema");
    assert_eq!(schema.fields().len(), 1, "{}", path.display());
}

/// Builds, in Python, a table with a column of every common type (with nulls, NaN, empty
/// and non-ASCII strings), writes it uncompressed to `input`.
const MAKE_INPUT: &str = r#"
import sys, datetime, decimal
import pyarrow as pa, pyarrow.parquet as pq
n = 1000
def nulls(values, every=7):
    return [None if i % every == 0 else v for i, v in enumerate(values)]
table = pa.table({
    "i8": pa.array(nulls([i % 100 - 50 for i in range(n)]), pa.int8()),
    "i16": pa.array(nulls([i * 31 - 15000 for i in range(n)]), pa.int16()),
    "i32": pa.array(range(n), pa.int32()),
    "i64": pa.array(nulls([i * 2**40 for i in range(n)], 5), pa.int64()),
    "u8": pa.array([i % 256 for i in range(n)], pa.uint8()),
    "u32": pa.array(nulls([i * 4_000_000 for i in range(n)]), pa.uint32()),
    "u64": pa.array([2**63 + i for i in range(n)], pa.uint64()),
    "f32": pa.array(nulls([i / 3 for i in range(n)]), pa.float32()),
    "f64": pa.array(nulls([float("nan") if i % 11 == 0 else (-0.0 if i % 13 == 0 else i * 1.5e-3) for i in range(n)], 9)),
    "flag": pa.array(nulls([i % 3 == 0 for i in range(n)], 4)),
    "text": pa.array(nulls(["" if i % 10 == 0 else f"wörd {i} ✓" for i in range(n)])),
    "blob": pa.array(nulls([bytes([i % 256, 0, 255]) for i in range(n)]), pa.binary()),
    "day": pa.array(nulls([datetime.date(2020, 1, 1) + datetime.timedelta(days=i) for i in range(n)]), pa.date32()),
    "at": pa.array(nulls([1_600_000_000_000_000 + i * 1_000_003 for i in range(n)]), pa.timestamp("us", tz="UTC")),
    "naive_ms": pa.array([1_600_000_000_000 + i for i in range(n)], pa.timestamp("ms")),
    "price": pa.array(nulls([decimal.Decimal(i * 137) / 100 for i in range(n)]), pa.decimal128(12, 2)),
    "tags": pa.array(nulls([[f"t{j}" for j in range(i % 4)] for i in range(n)], 6), pa.list_(pa.string())),
    "point": pa.array(nulls([{"x": i, "y": None if i % 2 else float(i)} for i in range(n)], 8),
                      pa.struct([("x", pa.int32()), ("y", pa.float64())])),
    "kind": pa.array(nulls([["red", "green", "blue"][i % 3] for i in range(n)])).dictionary_encode(),
})
pq.write_table(table, sys.argv[1], compression="none", row_group_size=300)
"#;

/// Python: `differences(expected, got)` lists how two tables differ — schema, then each
/// column's nulls and values. Floats are compared bit for bit (pyarrow's `equals` says
/// NaN differs from NaN, and -0.0 equals 0.0).
const DIFFERENCES: &str = r#"
import sys
import pyarrow as pa, pyarrow.parquet as pq

def canonical(column):
    column = column.combine_chunks()
    if pa.types.is_floating(column.type):
        bits = {16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[column.type.bit_width]
        return column.view(bits)
    return column

def differences(expected, got):
    if got.schema != expected.schema:
        return [f"schema {expected.schema} became {got.schema}"]
    return [f"column {name} differs" for name in expected.column_names
            if not canonical(got[name]).equals(canonical(expected[name]))]
"#;

/// Compares each output (a file or a directory of shards) with the input, as pyarrow
/// reads them; prints one line per difference.
const COMPARE: &str = r#"
expected = pq.read_table(sys.argv[1])
for out in sys.argv[2:]:
    for difference in differences(expected, pq.read_table(out)):
        print(f"{out}: {difference}")
"#;

#[test]
fn pyarrow_reads_what_the_sink_writes_equal_to_the_input_for_every_codec() {
    let dir = temp_dir();
    let input = dir.path().join("input.parquet");
    run_python(MAKE_INPUT, &[input.as_os_str()]);
    let mut outputs = Vec::new();
    let mut sinks: Vec<(String, String)> = ["zstd", "snappy", "lz4", "gzip", "none"]
        .iter()
        .map(|codec| (codec.to_string(), format!("compression = \"{codec}\"")))
        .collect();
    sinks.push((
        "shards".into(),
        "max_rows_per_file = 333\nrow_group_rows = 100\ndictionary = \"off\"\nstatistics = false"
            .into(),
    ));
    sinks.push((
        "levels".into(),
        "compression_level = 9\ndictionary = \"on\"".into(),
    ));
    for (name, settings) in &sinks {
        let out = dir.path().join(format!("{name}.parquet"));
        let stages = format!(
            "[source]\ntype = \"parquet\"\npath = {}\n\n[sink]\ntype = \"parquet\"\npath = {}\n{settings}\n",
            toml_string(&input.to_string_lossy()),
            toml_string(&out.to_string_lossy())
        );
        let (output, rows) = run(dir.path(), name, &stages);
        assert!(output.status.success(), "{name}: {}", describe(&output));
        assert_eq!(rows, Some(1000), "{name}");
        outputs.push(out);
    }
    let shards = std::fs::read_dir(dir.path().join("shards.parquet"))
        .unwrap()
        .count();
    assert_eq!(shards, 4, "1000 rows in shards of 333");
    let mut args = vec![input.as_os_str()];
    args.extend(outputs.iter().map(|p| p.as_os_str()));
    let differences = run_python(&format!("{DIFFERENCES}{COMPARE}"), &args);
    assert!(differences.is_empty(), "{differences}");
}

/// Reads each pair (original, copy) with pyarrow and prints how the copy differs.
const COMPARE_PAIRS: &str = r#"
pairs = sys.argv[1:]
for original, copy in zip(pairs[::2], pairs[1::2]):
    for difference in differences(pq.read_table(original), pq.read_table(copy)):
        print(f"{original}: {difference}")
"#;

#[test]
fn every_readable_corpus_file_round_trips_through_mlpipe() {
    let corpus = shared_dir().join("corpus");
    let dir = temp_dir();
    let mut pairs = Vec::new();
    let mut failures = Vec::new();
    for (index, (name, expect)) in expectations(&corpus).into_iter().enumerate() {
        let readable = matches!(expect, Expect::Read(_))
            && !ARROW_RS_CANNOT_READ.iter().any(|(file, _)| *file == name);
        if !readable {
            continue;
        }
        let original = corpus.join(&name);
        let copy = dir.path().join(format!("copy{index}.parquet"));
        let stages = format!(
            "[source]\ntype = \"parquet\"\npath = {}\n\n[sink]\ntype = \"parquet\"\npath = {}\n",
            toml_string(&original.to_string_lossy()),
            toml_string(&copy.to_string_lossy())
        );
        let (output, _) = run(dir.path(), &format!("c{index}"), &stages);
        if output.status.success() {
            pairs.push(original.into_os_string());
            pairs.push(copy.into_os_string());
        } else {
            failures.push(format!("{name}: {}", describe(&output)));
        }
    }
    let args: Vec<&OsStr> = pairs.iter().map(|p| p.as_os_str()).collect();
    let printed = run_python(&format!("{DIFFERENCES}{COMPARE_PAIRS}"), &args);
    let expected = |line: &str| {
        READ_DIFFERENTLY.iter().any(|(file, what)| {
            line.contains(&*corpus.join(file).to_string_lossy()) && line.ends_with(what)
        })
    };
    let differences: Vec<&str> = printed.lines().filter(|l| !expected(l)).collect();
    let differences = differences.join("\n");
    assert!(
        failures.is_empty() && differences.is_empty(),
        "{}\n{differences}",
        failures.join("\n")
    );
}
