//! Unit tests: inference of nested types, values spanning lines, errors naming file:line,
//! skipping malformed records, explicit schemas, and the sink's round trip; and a property
//! test: no damaged file makes the source panic or fail without naming the file and line.

use std::path::Path;
use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{Array, AsArray};
use mlpipe_plugin_api::arrow::compute::concat_batches;
use mlpipe_plugin_api::arrow::datatypes::{DataType, Field, Int64Type};
use mlpipe_plugin_api::{Error, ErrorKind, RecordBatch, Source};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::plugin;

fn file(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn open(config: Value) -> Box<dyn Source> {
    match plugin().create_source("ndjson", &config) {
        Ok(source) => source,
        Err(e) => panic!("{e}"),
    }
}

fn read_all(source: &mut dyn Source, max_rows: usize) -> mlpipe_plugin_api::Result<RecordBatch> {
    let schema = source.schema()?;
    let mut batches = Vec::new();
    while let Some(batch) = source.next_batch(max_rows)? {
        assert!(batch.num_rows() <= max_rows);
        assert_eq!(batch.schema(), schema);
        batches.push(batch);
    }
    Ok(concat_batches(&schema, &batches)?)
}

fn error_of(config: Value, max_rows: usize) -> mlpipe_plugin_api::Error {
    match plugin().create_source("ndjson", &config) {
        Err(e) => e,
        Ok(mut source) => read_all(source.as_mut(), max_rows).unwrap_err(),
    }
}

#[test]
fn nested_objects_become_structs_and_arrays_lists() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "a.ndjson",
        "{\"id\": 1, \"name\": \"a\", \"tags\": [1, 2], \"pos\": {\"x\": 0.5, \"y\": null}}\n\
         \n\
         {\"id\": 2, \"tags\": [], \"pos\": {\"x\": 1.5, \"y\": \"up\"}}\n\
         {\"id\": 3, \"name\": null}\n",
    );
    let mut source = open(json!({ "path": path }));
    let schema = source.schema().unwrap();
    let described: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    assert_eq!(described[0], "id: Int64");
    assert_eq!(described[1], "name: Utf8");
    assert!(
        matches!(schema.field(2).data_type(), DataType::List(item) if item.data_type() == &DataType::Int64),
        "{described:?}"
    );
    assert!(matches!(schema.field(3).data_type(), DataType::Struct(fields) if fields.len() == 2));
    let batch = read_all(source.as_mut(), 2).unwrap();
    assert_eq!(batch.num_rows(), 3);
    assert_eq!(
        batch.column(0).as_primitive::<Int64Type>().values(),
        &[1, 2, 3]
    );
    assert_eq!(batch.column(1).null_count(), 2);
    let tags = batch.column(2).as_list::<i32>();
    assert_eq!(tags.value_offsets(), &[0, 2, 2, 2]);
    assert!(tags.is_null(2));
    let pos = batch.column(3).as_struct();
    assert_eq!(pos.column(1).as_string::<i32>().value(1), "up");
    assert!(pos.is_null(2));
}

#[test]
fn a_value_may_span_lines_but_two_may_not_share_one() {
    let dir = tempfile::tempdir().unwrap();
    let spread = file(
        dir.path(),
        "spread.json",
        "\u{feff}{\"a\":\n 1,\n \"b\": [2,\n 3]}\n{\"a\": 4, \"b\": []}",
    );
    let batch = read_all(open(json!({ "path": spread })).as_mut(), 10).unwrap();
    assert_eq!(batch.num_rows(), 2);

    let double = file(
        dir.path(),
        "double.json",
        "{\"a\": 1}\n{\"a\": 2} {\"a\": 3}\n",
    );
    let error = error_of(json!({ "path": double }), 10);
    assert_eq!(error.kind(), ErrorKind::BadData);
    assert!(
        error
            .message()
            .starts_with(&format!("{double}:2: a second JSON value")),
        "{error}"
    );
    // Past the inference sample, the decoder finds it too.
    let error = error_of(json!({ "path": double, "infer_rows": 1 }), 10);
    assert!(
        error
            .message()
            .starts_with(&format!("{double}:2: a second JSON value")),
        "{error}"
    );
    let error = error_of(json!({ "path": double, "schema": ["a: Int64"] }), 1);
    assert!(
        error
            .message()
            .starts_with(&format!("{double}:2: a second JSON value")),
        "{error}"
    );

    let unfinished = file(dir.path(), "open.json", "{\"a\": 1}\n{\"a\": [2,\n");
    let error = error_of(json!({ "path": unfinished, "schema": ["a: Int64"] }), 10);
    assert!(
        error
            .message()
            .contains("ends inside the JSON value that starts on line 2"),
        "{error}"
    );
}

#[test]
fn files_of_other_values_are_one_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "lists.json", "[1, 2]\n[]\nnull\n[3]\n");
    let mut source = open(json!({ "path": path }));
    let schema = source.schema().unwrap();
    assert_eq!(schema.fields().len(), 1);
    assert_eq!(schema.field(0).name(), "value");
    let batch = read_all(source.as_mut(), 3).unwrap();
    let lists = batch.column(0).as_list::<i32>();
    assert_eq!(lists.value_offsets(), &[0, 2, 2, 2, 3]);
    assert!(lists.is_null(2));

    // A number at the very end of a file, with no newline after it, is complete.
    let numbers = file(dir.path(), "numbers.json", "1\n-2.5");
    let batch = read_all(open(json!({ "path": numbers })).as_mut(), 10).unwrap();
    assert_eq!(batch.num_rows(), 2);

    let mixed = file(dir.path(), "mixed.json", "1\n{\"a\": 1}\n");
    let error = error_of(json!({ "path": mixed }), 10);
    assert!(
        error
            .message()
            .starts_with(&format!("{mixed}:2: this value is an object")),
        "{error}"
    );
}

#[test]
fn malformed_records_are_errors_naming_the_line_or_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2, \"b\": }\n{\"a\": \"three\", \"b\": \"y\"}\n{\"a\": 4}\n{\"a\": 5, \"b\": \"z\"}\n";
    let path = file(dir.path(), "bad.ndjson", text);
    let schema = json!(["a: Int64", "b: Utf8"]);
    let error = error_of(json!({ "path": path, "schema": schema }), 100);
    assert!(
        error.message().starts_with(&format!("{path}:2: ")),
        "{error}"
    );
    // Inference reads the sample strictly, with the same line.
    let error = error_of(json!({ "path": path }), 100);
    assert!(
        error
            .message()
            .starts_with(&format!("{path}:2: not valid JSON")),
        "{error}"
    );
    // A value that does not fit its column is found when the batch is built.
    let typed = file(
        dir.path(),
        "typed.ndjson",
        text.replace("\"b\": }", "\"b\": \"w\"}"),
    );
    let error = error_of(json!({ "path": typed, "schema": schema }), 100);
    assert!(
        error.message().starts_with(&format!("{typed}:3: ")),
        "{error}"
    );

    for max_rows in [1, 2, 100] {
        let mut source = open(json!({ "path": path, "schema": schema, "on_error": "skip" }));
        let batch = read_all(source.as_mut(), max_rows).unwrap();
        assert_eq!(
            batch.column(0).as_primitive::<Int64Type>().values(),
            &[1, 4, 5],
            "{max_rows}"
        );
        assert!(batch.column(1).is_null(1));
        assert_eq!(
            source.counters(),
            vec![
                ("records skipped".to_string(), 2),
                ("files read".to_string(), 1)
            ]
        );
    }
}

#[test]
fn a_value_inference_cannot_type_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let first = file(dir.path(), "1.ndjson", "{\"pos\": {\"x\": 1}}\n");
    let second = file(dir.path(), "2.ndjson", "{\"pos\": null}\n\n{\"pos\": 3}\n");
    let error = error_of(json!({ "path": [first, second] }), 10);
    assert!(
        error
            .message()
            .starts_with(&format!("{second}:3: cannot infer the columns")),
        "{error}"
    );
    assert!(error.message().contains("`schema` key"), "{error}");
}

#[test]
fn a_column_inferred_as_strings_from_mixed_values_reads_them_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "mixed.ndjson",
        "{\"a\": 1, \"b\": 2}\n{\"a\": \"x\", \"b\": 3.5}\n{\"a\": true, \"b\": null}\n",
    );
    let mut source = open(json!({ "path": path }));
    let batch = read_all(source.as_mut(), 10).unwrap();
    let a = batch.column(0).as_string::<i32>();
    assert_eq!(
        a.iter().collect::<Vec<_>>(),
        [Some("1"), Some("x"), Some("true")]
    );
    assert_eq!(batch.column(1).data_type(), &DataType::Float64);
    // Past the values inference read too.
    let later = file(dir.path(), "later.ndjson", "{\"a\": \"x\"}\n{\"a\": 5}\n");
    let mut source = open(json!({ "path": later, "infer_rows": 1 }));
    let batch = read_all(source.as_mut(), 10).unwrap();
    let a = batch.column(0).as_string::<i32>();
    assert_eq!(a.iter().collect::<Vec<_>>(), [Some("x"), Some("5")]);
    // A schema given is held to: a number in a string column is an error at its line.
    let error = error_of(
        json!({ "path": path, "schema": ["a: Utf8", "b: Float64"] }),
        10,
    );
    assert!(
        error.message().starts_with(&format!("{path}:1: ")),
        "{error}"
    );
}

#[test]
fn a_key_holding_nul_is_named_by_file_and_line_or_refused_in_a_schema() {
    let dir = tempfile::tempdir().unwrap();
    let first = file(dir.path(), "1.ndjson", "{\"a\": 1}\n");
    let second = file(
        dir.path(),
        "2.ndjson",
        "{\"a\": 2}\n{\"a\": 3, \"b\": [{\"c\\u0000\": 1}]}\n",
    );
    let error = error_of(json!({ "path": [first, second] }), 10);
    assert_eq!(error.kind(), ErrorKind::BadData, "{error}");
    assert!(
        error
            .message()
            .starts_with(&format!("{second}:2: the key \"c\\0\" contains a NUL")),
        "{error}"
    );
    // A schema given is checked as it will cross the plugin boundary, inside any type.
    for column in [
        "b: List(Struct(\"c\u{0}\": Int64))",
        "b: ListView(Struct(\"c\u{0}\": Int64))",
    ] {
        let error = error_of(json!({ "path": first, "schema": [column] }), 10);
        assert_eq!(error.kind(), ErrorKind::InvalidConfig, "{column}: {error}");
        assert!(
            error.message().contains("cannot cross the plugin boundary")
                && error
                    .message()
                    .contains("Null byte at position 1 not allowed in name"),
            "{column}: {error}"
        );
    }
}

#[test]
fn a_string_broken_by_a_line_end_is_named_by_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "open.ndjson", "{\"a\": \"x\"}\n{\"a\": \"y\n");
    for config in [
        json!({ "path": path }),
        json!({ "path": path, "schema": ["a: Utf8"] }),
    ] {
        let error = error_of(config, 10);
        assert!(
            error.message().starts_with(&format!("{path}:2: ")),
            "{error}"
        );
    }
}

#[test]
fn explicit_schemas_parse_arrow_type_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "t.ndjson",
        "{\"id\": 7, \"when\": \"2024-05-01T10:00:00\", \"xs\": [1.5]}\n",
    );
    let mut source = open(json!({
        "path": path,
        "schema": ["id: Int32 not null", "when: Timestamp(ms)", "xs: List(Float32)", "missing: Utf8"],
    }));
    let schema = source.schema().unwrap();
    assert_eq!(schema.field(0), &Field::new("id", DataType::Int32, false));
    assert!(matches!(
        schema.field(1).data_type(),
        DataType::Timestamp(_, None)
    ));
    let batch = read_all(source.as_mut(), 10).unwrap();
    assert_eq!(batch.num_rows(), 1);
    assert!(batch.column(3).is_null(0));

    let error = plugin()
        .create_source("ndjson", &json!({ "path": path, "schema": ["id Int64"] }))
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidConfig);
    assert!(error.message().contains("\"name: Type\""), "{error}");
    let error = plugin()
        .create_source(
            "ndjson",
            &json!({ "path": path, "schema": ["id: Integer"] }),
        )
        .err()
        .unwrap();
    assert!(error.message().contains("unknown type"), "{error}");
}

#[test]
fn empty_inputs_need_a_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "empty.ndjson", "\n  \n");
    let error = error_of(json!({ "path": path }), 10);
    assert!(
        error.message().contains("give them with the `schema` key"),
        "{error}"
    );
    let batch = read_all(
        open(json!({ "path": path, "schema": ["a: Int64"] })).as_mut(),
        10,
    )
    .unwrap();
    assert_eq!(batch.num_rows(), 0);
}

#[test]
fn the_sink_refuses_a_timestamp_it_cannot_show_naming_the_column_and_row() {
    use mlpipe_plugin_api::arrow::array::{ArrayRef, TimestampSecondArray};
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("times.ndjson");
    let times = TimestampSecondArray::from(vec![Some(0), None, Some(100_000_000_000_000_000)]);
    let batch = RecordBatch::try_from_iter([("ts", Arc::new(times) as ArrayRef)]).unwrap();
    let mut sink = plugin()
        .create_sink("ndjson", &json!({ "path": output }))
        .unwrap();
    sink.begin(&batch.schema()).unwrap();
    let error = sink.consume(batch).unwrap_err();
    assert!(
        error
            .message()
            .contains("times.ndjson: column `ts`, row 2: cannot write the value"),
        "{error}"
    );
    drop(sink);
    assert!(!output.exists(), "a failed run leaves no output");
}

#[test]
fn the_sink_writes_lines_the_source_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(
        dir.path(),
        "in.ndjson",
        "{\"a\": 1, \"b\": [\"x\"], \"c\": {\"d\": true}}\n{\"a\": null, \"b\": null, \"c\": null}\n",
    );
    let mut source = open(json!({ "path": input }));
    let original = read_all(source.as_mut(), 10).unwrap();
    let output = dir.path().join("out/out.ndjson");
    for explicit_nulls in [false, true] {
        let mut sink = plugin()
            .create_sink(
                "ndjson",
                &json!({ "path": output, "overwrite": true, "explicit_nulls": explicit_nulls }),
            )
            .unwrap();
        sink.begin(&original.schema()).unwrap();
        sink.consume(original.clone()).unwrap();
        sink.flush().unwrap();
        let text = std::fs::read_to_string(&output).unwrap();
        assert_eq!(
            text.lines().next(),
            Some("{\"a\":1,\"b\":[\"x\"],\"c\":{\"d\":true}}")
        );
        assert_eq!(
            text.lines().nth(1),
            Some(if explicit_nulls {
                "{\"a\":null,\"b\":null,\"c\":null}"
            } else {
                "{}"
            })
        );
        let schema: Vec<String> = original
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect();
        let again = read_all(
            open(json!({ "path": output, "schema": schema })).as_mut(),
            10,
        )
        .unwrap();
        assert_eq!(again.columns(), original.columns());
    }
    let mut refusing = plugin()
        .create_sink("ndjson", &json!({ "path": output }))
        .unwrap();
    let error = refusing.begin(&original.schema()).unwrap_err();
    assert!(error.message().contains("overwrite = true"), "{error}");

    let failed = dir.path().join("failed.ndjson");
    let mut sink = plugin()
        .create_sink("ndjson", &json!({ "path": failed }))
        .unwrap();
    sink.consume(original).unwrap();
    drop(sink);
    assert!(!failed.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "in.ndjson and out/"
    );
}

/// Valid NDJSON files, as their lines and the line end that joins them: nested objects,
/// lists, nulls, integers, floats and exponents, escapes and a surrogate pair, a BOM, CRLF
/// line ends, blank lines, a value over several lines, and a file of non-object values.
/// Keys `post`, `pos1` and `pos2` are one byte away from `pos`, whose values are objects:
/// a deletion makes a value inference cannot type.
const ORIGINALS: [(&[&str], &str); 4] = [
    (
        &[
            concat!(
                "\u{feff}",
                r#"{"id": 1, "name": "a\"b\\c\n\t\u00e9 é \ud83d\ude00", "score": 0.5, "tags": ["x", "y"], "pos": {"x": 1, "y": null}, "ok": true, "at": "2024-05-01T10:00:00"}"#
            ),
            r#"{"id": -2, "name": null, "score": 1e3, "tags": [], "pos": {"x": -0, "y": "up"}, "post": 0, "ok": false}"#,
            "",
            r#"{"id": 9007199254740993, "score": -1.25E-7, "tags": null, "pos": null, "post": 7, "at": "2024-05-01"}"#,
        ],
        "\n",
    ),
    (
        &[
            r#"{"id": 4, "post": 1.5,"#,
            r#" "name": "spread\r\n\/","#,
            r#" "tags": ["z", null]}"#,
            "",
            r#"{"id": 5, "score": 1.5e300, "pos": {"x": 2, "y": ""}, "ok": null}"#,
            r#"{"id": 6, "post": 3}"#,
        ],
        "\r\n",
    ),
    (&["[1, 2]", "[]", "null", "[3, -4]"], "\r\n"),
    (
        &[
            r#"{"id": 1, "pos": {"x": 1}}"#,
            r#"{"id": 2, "pos1": 2}"#,
            r#"{"id": 3, "pos2": [3]}"#,
        ],
        "\n",
    ),
];

/// The columns of [`ORIGINALS`]' objects, for reading them with a given schema.
const SCHEMA: [&str; 7] = [
    "id: Int64 not null",
    "name: Utf8",
    "score: Float64",
    "tags: List(Utf8)",
    r#"pos: Struct("x": Int64, "y": Utf8)"#,
    "ok: Boolean",
    "at: Timestamp(ms)",
];

#[test]
fn the_files_to_damage_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    for (index, (lines, end)) in ORIGINALS.into_iter().enumerate() {
        let path = file(
            dir.path(),
            &format!("{index}.ndjson"),
            lines.join(end) + end,
        );
        // A line that starts with a space continues a value.
        let rows = lines
            .iter()
            .filter(|line| !line.is_empty() && !line.starts_with(' '))
            .count();
        let inferred = read_all(open(json!({ "path": path })).as_mut(), 2).unwrap();
        assert_eq!(inferred.num_rows(), rows, "{index}");
        // The schema is of objects.
        if lines[0].contains('{') {
            let given =
                read_all(open(json!({ "path": path, "schema": SCHEMA })).as_mut(), 2).unwrap();
            assert_eq!(given.num_rows(), rows, "{index}");
        }
    }
}

/// A byte to write into a file: any, or one that matters to JSON and to lines.
fn json_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(b"{}[]\":,\\\n\r\t 0.e-+tnu\xEF\xBB\xBF".to_vec()),
    ]
}

/// Asserts that `error`, from reading the file at `path` of `lines` lines, names the file
/// and, unless the file holds no record, the line.
fn assert_names_file_and_line(error: &Error, path: &str, lines: usize) {
    assert_eq!(error.kind(), ErrorKind::BadData, "{error}");
    let Some(rest) = error.message().strip_prefix(&format!("{path}:")) else {
        panic!("the error does not start with the file: {error}");
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    match rest[..digits].parse::<usize>() {
        Ok(line) => assert!(
            (1..=lines).contains(&line),
            "line {line} of {lines}: {error}"
        ),
        // No record is to blame: there is none.
        Err(_) => assert!(
            rest.contains("no JSON value"),
            "the error names no line: {error}"
        ),
    }
}

proptest! {
    // About 2 s in a release build.
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// Damaged files (bytes overwritten, removed or inserted, the end cut off) read with an
    /// inferred and a given schema, failing and skipping, never make the source panic;
    /// every error names the file and, when it is about a record, its line; skipping with
    /// a given schema reads every file to its end.
    #[test]
    fn mutated_files_never_panic(
        original in 0..ORIGINALS.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), json_byte(), 0u8..4), 1..4),
        max_rows in 1usize..5,
        infer_rows in 0i64..4,
    ) {
        let (lines, end) = ORIGINALS[original];
        let mut bytes = (lines.join(end) + end).into_bytes();
        for (at, byte, kind) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                2 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "damaged.ndjson", &bytes);
        let lines = bytes.split(|&b| b == b'\n').count() - usize::from(bytes.ends_with(b"\n"));
        for skip in [false, true] {
            for given in [false, true] {
                let on_error = if skip { "skip" } else { "fail" };
                let mut config = json!({ "path": path, "on_error": on_error, "infer_rows": infer_rows });
                if given {
                    config["schema"] = json!(SCHEMA);
                }
                let read = plugin()
                    .create_source("ndjson", &config)
                    .and_then(|mut source| read_all(source.as_mut(), max_rows));
                if let Err(error) = read {
                    assert_names_file_and_line(&error, &path, lines);
                    prop_assert!(!(skip && given), "skipping with a given schema failed: {error}");
                }
            }
        }
    }
}
