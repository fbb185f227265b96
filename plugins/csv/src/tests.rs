//! Tests of the plugin's components through their config, as the host creates them, and
//! property tests of the reader: parallel parsing equals sequential parsing wherever the
//! chunks and windows are cut, and no input makes it panic.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{Array, AsArray, RecordBatch};
use mlpipe_plugin_api::arrow::compute::{cast, concat_batches};
use mlpipe_plugin_api::arrow::datatypes::{
    DataType, Date32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampSecondType,
};
use mlpipe_plugin_api::{ErrorKind, Result, Sink, Source};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::dialect::{Dialect, NullMarkers};
use crate::input::Origin;
use crate::plugin;
use crate::reader::Options;
use crate::source::{CsvSource, SchemaRequest};

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn source(config: Value) -> Result<Box<dyn Source>> {
    plugin().create_source("csv", &config)
}

/// Every batch of a source (checking sizes and schemas), or the first error.
fn read_all(source: &mut dyn Source, max_rows: usize) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    while let Some(batch) = source.next_batch(max_rows)? {
        assert!(batch.num_rows() <= max_rows);
        assert!(batch.num_rows() > 0);
        assert_eq!(batch.schema(), source.schema().unwrap());
        batches.push(batch);
    }
    Ok(batches)
}

/// All rows of a source as one batch.
fn table(config: Value) -> RecordBatch {
    let mut source = source(config).unwrap();
    let schema = source.schema().unwrap();
    let batches = read_all(source.as_mut(), 1000).unwrap();
    concat_batches(&schema, &batches).unwrap()
}

fn texts(batch: &RecordBatch, column: usize) -> Vec<Option<String>> {
    let array = batch.column(column).as_string::<i32>();
    array.iter().map(|v| v.map(str::to_string)).collect()
}

fn error_of(config: Value) -> mlpipe_plugin_api::Error {
    match source(config) {
        Err(error) => error,
        Ok(mut source) => read_all(source.as_mut(), 1000).unwrap_err(),
    }
}

#[test]
fn reads_a_file_with_header_inferring_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a.csv",
        "id,score,name,ok,day,at\n1,0.5,ann,true,2020-01-02,2020-01-02 03:04:05\n2,1.5,bob,False,1969-12-31,1969-12-31T23:59:59\n",
    );
    let batch = table(json!({ "path": path }));
    let types: Vec<DataType> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        [
            DataType::Int64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Boolean,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Second, None)
        ]
    );
    assert_eq!(
        batch.column(0).as_primitive::<Int64Type>().values(),
        &[1, 2]
    );
    assert_eq!(batch.column(1).as_primitive::<Float64Type>().value(1), 1.5);
    assert_eq!(texts(&batch, 2), [Some("ann".into()), Some("bob".into())]);
    assert!(!batch.column(3).as_boolean().value(1));
    assert_eq!(batch.column(4).as_primitive::<Date32Type>().value(1), -1);
    assert_eq!(
        batch
            .column(5)
            .as_primitive::<TimestampSecondType>()
            .value(0),
        1_577_934_245
    );
}

#[test]
fn batches_have_exactly_the_rows_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = std::iter::once("n\n".to_string())
        .chain((0..10).map(|i| format!("{i}\n")))
        .collect();
    let path = write(dir.path(), "n.csv", &text);
    let mut source = source(json!({ "path": path })).unwrap();
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    for max_rows in [4, 3, 1, 100, 100] {
        if let Some(batch) = source.next_batch(max_rows).unwrap() {
            sizes.push(batch.num_rows());
            seen.extend(
                batch
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
    }
    assert_eq!(sizes, [4, 3, 1, 2]);
    assert_eq!(seen, (0..10).collect::<Vec<i64>>());
    assert!(source.next_batch(5).unwrap().is_none());
}

#[test]
fn null_markers_quoted_empty_text_and_literal_matching() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "n.csv",
        "a,b,c\n1,x,N.A\nNA,,NxA\n3,NA,\"\"\n\"\",\"\",\"NA\"\n",
    );
    let batch = table(json!({ "path": path, "null_values": ["NA", "", "N.A"] }));
    assert_eq!(batch.schema().field(0).data_type(), &DataType::Int64);
    let a = batch.column(0);
    assert_eq!(
        (a.is_null(1), a.is_null(3)),
        (true, true),
        "\"\" is null in a number column"
    );
    assert_eq!(
        texts(&batch, 1),
        [Some("x".into()), None, None, Some(String::new())]
    );
    assert_eq!(
        texts(&batch, 2),
        [
            None,
            Some("NxA".into()),
            Some(String::new()),
            Some("NA".into())
        ]
    );
    // Without null markers, an empty field is an empty string.
    let batch = table(json!({ "path": path, "null_values": [] , "infer_rows": 0}));
    assert_eq!(batch.column(1).null_count(), 0);
    assert_eq!(texts(&batch, 1)[1], Some(String::new()));
}

#[test]
fn delimiter_quote_escape_and_comment_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "q.csv", "name;note\nann;'a;b'\nbob;'it''s'\n");
    let batch = table(json!({ "path": path, "delimiter": ";", "quote": "'" }));
    assert_eq!(texts(&batch, 1), [Some("a;b".into()), Some("it's".into())]);

    let path = write(dir.path(), "t.tsv", "a\tb\n\"x\ty\"\t2\n");
    let batch = table(json!({ "path": path, "delimiter": "\t" }));
    assert_eq!(texts(&batch, 0), [Some("x\ty".into())]);

    let path = write(
        dir.path(),
        "e.csv",
        "# exported by a tool, with a \"quote\n a,b\n\"say \\\"hi\\\"\",1\n# note\n\"c:\\\\dir\",2\n",
    );
    let batch = table(json!({ "path": path, "escape": "\\", "comment": "#" }));
    assert_eq!(batch.schema().field(0).name(), " a");
    assert_eq!(
        texts(&batch, 0),
        [Some("say \"hi\"".into()), Some("c:\\dir".into())]
    );

    let path = write(dir.path(), "u.csv", "a,b\n\"x,y\n");
    let batch = table(json!({ "path": path, "quote": "" }));
    assert_eq!(texts(&batch, 0), [Some("\"x".into())]);
}

#[test]
fn headerless_files_get_numbered_or_configured_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "h.csv", "1,2\n3,4\n");
    let batch = table(json!({ "path": path, "has_header": false }));
    assert_eq!(batch.schema().field(1).name(), "column_2");
    assert_eq!(batch.num_rows(), 2);
    let batch = table(json!({ "path": path, "has_header": false, "column_names": ["x", "y"] }));
    assert_eq!(batch.schema().field(0).name(), "x");
    let batch = table(json!({ "path": path, "column_names": ["x", "y"] }));
    assert_eq!(
        batch.num_rows(),
        1,
        "the header line is skipped, its names replaced"
    );
    let error = error_of(json!({ "path": path, "column_names": ["x"] }));
    assert!(
        error
            .message()
            .contains("`column_names` of source `csv` has 1 names"),
        "{error}"
    );
    let twice = write(dir.path(), "twice.csv", "a,a\n1,2\n");
    let error = error_of(json!({ "path": twice }));
    assert!(error.message().contains("`a` appears twice"), "{error}");
}

#[test]
fn a_declared_schema_sets_types_and_nullability() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "s.csv",
        "id,price,code,when\n1,2.50,007,2020-01-01T00:00:01.5\n2,,010,\n",
    );
    let batch = table(json!({
        "path": path,
        "schema": { "id": "int32 not null", "price": "decimal128(6, 2)", "code": "utf8", "when": "timestamp[ms, UTC]" }
    }));
    let schema = batch.schema();
    assert_eq!(schema.field(0).data_type(), &DataType::Int32);
    assert!(!schema.field(0).is_nullable());
    assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(6, 2));
    assert_eq!(texts(&batch, 2), [Some("007".into()), Some("010".into())]);
    assert_eq!(
        schema.field(3).data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    assert_eq!(
        batch
            .column(3)
            .as_primitive::<mlpipe_plugin_api::arrow::datatypes::TimestampMillisecondType>()
            .value(0),
        1_577_836_801_500
    );
    assert!(batch.column(1).is_null(1) && batch.column(3).is_null(1));

    let error = error_of(json!({ "path": path, "schema": { "nope": "int64" } }));
    assert!(
        error.message().contains("declares column `nope`"),
        "{error}"
    );
    assert!(error.message().contains("id, price, code, when"), "{error}");
    let error = error_of(json!({ "path": path, "schema": { "id": "integer" } }));
    assert_eq!(error.kind(), ErrorKind::InvalidConfig);
    assert!(
        error.message().contains("unknown type \"integer\""),
        "{error}"
    );
    let error = error_of(json!({ "path": path, "schema": { "price": "float64 not null" } }));
    assert!(
        error
            .message()
            .contains("s.csv:3: column `price` is declared `not null`"),
        "{error}"
    );
    let error = error_of(json!({ "path": path, "schema": { "code": "bool" } }));
    assert!(
        error
            .message()
            .contains("s.csv:2: column `code`: cannot read \"007\" as bool (the type declared"),
        "{error}"
    );
}

#[test]
fn a_value_after_the_sample_that_does_not_fit_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "late.csv", "n,m\n1,a\n2,b\nthree,c\n");
    let error = error_of(json!({ "path": path, "infer_rows": 2 }));
    assert_eq!(error.kind(), ErrorKind::BadData);
    let message = error.message();
    assert!(
        message.contains("late.csv:4: column `n`: cannot read \"three\" as int64"),
        "{message}"
    );
    assert!(message.contains("infer_rows"), "{message}");
    // Columns empty in the sample are text, so later values are kept.
    let path = write(dir.path(), "s.csv", "a,b\n1,\n2,\n3,late\n");
    let batch = table(json!({ "path": path, "infer_rows": 2 }));
    assert_eq!(texts(&batch, 1)[2], Some("late".into()));
    // `infer_rows = 0` reads everything as text.
    let batch = table(json!({ "path": path, "infer_rows": 0 }));
    assert_eq!(batch.schema().field(0).data_type(), &DataType::Utf8);
}

#[test]
fn ragged_records_fail_naming_the_place_or_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.csv",
        "a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n",
    );
    let error = error_of(json!({ "path": path }));
    assert_eq!(error.kind(), ErrorKind::BadData);
    assert!(
        error
            .message()
            .contains("bad.csv:3: the record has 2 fields, but the file has 3 columns: column `c`"),
        "{error}"
    );
    let mut source = source(json!({ "path": path, "on_error": "skip" })).unwrap();
    let batches = read_all(source.as_mut(), 100).unwrap();
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, [1, 10]);
    assert!(
        source
            .counters()
            .contains(&("records skipped".to_string(), 2))
    );

    // The rows before a bad record come out first.
    let mut source = source_of(json!({ "path": path }));
    let first = source.next_batch(1).unwrap().unwrap();
    assert_eq!(first.num_rows(), 1);
    assert!(source.next_batch(1).is_err());
}

fn source_of(config: Value) -> Box<dyn Source> {
    source(config).unwrap()
}

#[test]
fn bad_values_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "v.csv", b"n,t\n1,a\nx,b\n3,\xff\n4,d\n");
    let error = error_of(json!({ "path": path, "schema": { "n": "int64" } }));
    assert!(
        error
            .message()
            .contains("v.csv:3: column `n`: cannot read \"x\""),
        "{error}"
    );
    let error = error_of(json!({ "path": path, "schema": { "n": "utf8" } }));
    assert!(
        error
            .message()
            .contains("v.csv:4: column `t`: the value is not valid UTF-8"),
        "{error}"
    );
    let mut source =
        source_of(json!({ "path": path, "schema": { "n": "int64 not null" }, "on_error": "skip" }));
    let batches = read_all(source.as_mut(), 100).unwrap();
    let batch = concat_batches(&source.schema().unwrap(), &batches).unwrap();
    assert_eq!(
        batch.column(0).as_primitive::<Int64Type>().values(),
        &[1, 4]
    );
    assert_eq!(texts(&batch, 1), [Some("a".into()), Some("d".into())]);
    assert!(
        source
            .counters()
            .contains(&("records skipped".to_string(), 2))
    );
}

#[test]
fn text_columns_read_as_dictionaries_hold_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.csv",
        b"n,color,size\n1,red,S\n2,,M\n3,blue,S\nx,red,L\n5,red,\xff\n6,blue,S\n",
    );
    let config = |dictionary: Value| {
        json!({
            "path": path, "schema": { "n": "int64" }, "on_error": "skip",
            "read_dictionary": dictionary
        })
    };
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    for (threads, rows) in [(1, 1), (1, 100), (2, 2), (2, 100)] {
        let mut plain = config(Value::Null);
        plain.as_object_mut().unwrap().remove("read_dictionary");
        plain["threads"] = json!(threads);
        let mut encoded = config(json!(["c*", "size"]));
        encoded["threads"] = json!(threads);
        let (mut plain, mut encoded) = (source_of(plain), source_of(encoded));
        let schema = encoded.schema().unwrap();
        assert_eq!(schema.field(1).data_type(), &dictionary);
        assert_eq!(schema.field(2).data_type(), &dictionary);
        let expected = read_all(plain.as_mut(), rows).unwrap();
        let read = read_all(encoded.as_mut(), rows).unwrap();
        assert_eq!(expected.len(), read.len());
        for (expected, read) in expected.iter().zip(&read) {
            assert_eq!(expected.column(0), read.column(0));
            for column in 1..3 {
                // Each distinct value is stored once.
                let keys = read.column(column).as_dictionary::<Int32Type>();
                let values: Vec<_> = keys.values().as_string::<i32>().iter().collect();
                let distinct: HashSet<_> = values.iter().collect();
                assert_eq!(values.len(), distinct.len(), "{values:?}");
                let decoded = cast(read.column(column), &DataType::Utf8).unwrap();
                assert_eq!(
                    &decoded,
                    expected.column(column),
                    "{threads} threads, {rows} rows"
                );
            }
        }
        // The skipped records (a bad number, bad UTF-8) are counted either way.
        assert!(
            encoded
                .counters()
                .contains(&("records skipped".to_string(), 2))
        );
    }
    let not_text = error_of(config(json!(["n"])));
    assert!(
        not_text.message().contains(
            "key `read_dictionary` of source `csv`: column `n` has type Int64; only text (utf8) columns can be selected here"
        ),
        "{not_text}"
    );
    let unmatched = error_of(config(json!(["z*"])));
    assert!(
        unmatched.message().contains(
            "`z*` matches no text (utf8) input column; the input columns are: n, color, size"
        ),
        "{unmatched}"
    );
}

#[test]
fn an_unterminated_quote_names_its_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "q.csv", "a,b\n1,2\n3,\"open\n4,5\n");
    let error = error_of(json!({ "path": path }));
    assert!(
        error
            .message()
            .contains("q.csv:3: the quoted value of column `b` is never closed"),
        "{error}"
    );
}

#[test]
fn missing_empty_and_header_only_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let error = error_of(json!({ "path": missing }));
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(
        error.message().contains(&*missing.to_string_lossy()),
        "{error}"
    );

    let empty = write(dir.path(), "empty.csv", "");
    let error = error_of(json!({ "path": empty }));
    assert!(
        error.message().contains("empty.csv: the file is empty"),
        "{error}"
    );
    let blank = write(dir.path(), "blank.csv", "\n\r\n\n");
    assert!(
        error_of(json!({ "path": blank }))
            .message()
            .contains("is empty")
    );

    let header_only = write(dir.path(), "h.csv", "a,b\n");
    let mut source = source_of(json!({ "path": header_only }));
    assert_eq!(source.schema().unwrap().fields().len(), 2);
    assert_eq!(
        source.schema().unwrap().field(0).data_type(),
        &DataType::Utf8
    );
    assert!(read_all(source.as_mut(), 10).unwrap().is_empty());
}

#[test]
fn crlf_bom_and_no_final_line_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "w.csv",
        "\u{feff}id,name\r\n1,\"a\r\nb\"\r\n2,c",
    );
    let batch = table(json!({ "path": path }));
    assert_eq!(batch.schema().field(0).name(), "id");
    assert_eq!(texts(&batch, 1), [Some("a\r\nb".into()), Some("c".into())]);
}

#[test]
fn gzip_files_are_decompressed() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(b"a,b\n1,x\n2,y\n").unwrap();
    let path = write(dir.path(), "z.csv.gz", encoder.finish().unwrap());
    let mut source = source_of(json!({ "path": path }));
    assert_eq!(source.size_hint(), None);
    let batch = concat_batches(
        &source.schema().unwrap(),
        &read_all(source.as_mut(), 10).unwrap(),
    )
    .unwrap();
    assert_eq!(texts(&batch, 1), [Some("x".into()), Some("y".into())]);
}

#[test]
fn datasets_of_several_files_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write(&data, "part-1.csv", "id,v\n1,a\n2,b\n");
    write(&data, "part-2.csv", "id,v\n3,c\n");
    write(&data, "_SUCCESS", "");
    write(&data, "notes.md", "not data");
    for path in [
        json!(data),
        json!(data.join("part-*.csv")),
        json!([data.join("part-1.csv"), data.join("part-2.csv")]),
    ] {
        let mut source = source_of(json!({ "path": path }));
        let batches = read_all(source.as_mut(), 2).unwrap();
        let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, [2, 1], "a batch may span files");
        let batch = concat_batches(&source.schema().unwrap(), &batches).unwrap();
        assert_eq!(
            batch.column(0).as_primitive::<Int64Type>().values(),
            &[1, 2, 3]
        );
        assert!(source.counters().contains(&("files read".to_string(), 2)));
    }
    write(&data, "part-3.csv", "id,w\n4,d\n");
    let error = error_of(json!({ "path": data }));
    assert!(
        error.message().contains("part-3.csv:1: the header differs"),
        "{error}"
    );
    write(&data, "part-3.csv", "id,v\n4,d\nfive,e\n");
    let error = error_of(json!({ "path": data }));
    assert!(
        error.message().contains("part-3.csv:3: column `id`"),
        "{error}"
    );
}

#[test]
fn size_hint_estimates_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = std::iter::once("a,b\n".to_string())
        .chain((0..1000).map(|i| format!("{i},{}\n", i * 7 % 13)))
        .collect();
    let path = write(dir.path(), "n.csv", &text);
    let hint = source_of(json!({ "path": path })).size_hint().unwrap();
    assert!((900..1100).contains(&hint), "{hint}");
}

#[test]
fn config_mistakes_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.csv", "a\n1\n");
    for (key, value) in [
        ("delimiter", ";;"),
        ("delimiter", ""),
        ("quote", "«"),
        ("escape", "ab"),
    ] {
        let error = error_of(json!({ "path": path, key: value }));
        assert_eq!(error.kind(), ErrorKind::InvalidConfig);
        assert!(error.message().contains(&format!("key `{key}`")), "{error}");
    }
    let error = error_of(json!({ "path": path, "delimiter": "\"" }));
    assert!(
        error.message().contains("`delimiter` and `quote`"),
        "{error}"
    );
    let error = error_of(json!({ "path": path, "on_error": "ignore" }));
    assert!(error.message().contains("`on_error`"), "{error}");
    let error = error_of(json!({ "path": path, "infer_rows": -1 }));
    assert!(error.message().contains("infer_rows"), "{error}");
}

// ---- the sink ----

fn sink(config: Value) -> Box<dyn Sink> {
    plugin().create_sink("csv", &config).unwrap()
}

fn sample_batch() -> RecordBatch {
    use mlpipe_plugin_api::arrow::array::{
        BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    };
    RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(-3)])) as _,
        ),
        (
            "x",
            Arc::new(Float64Array::from(vec![Some(0.1), Some(1e300), None])) as _,
        ),
        (
            "text",
            Arc::new(StringArray::from(vec![Some("a,b"), Some(""), None])) as _,
        ),
        (
            "more",
            Arc::new(StringArray::from(vec![
                Some("say \"hi\"\nbye"),
                Some("plain"),
                Some("NA"),
            ])) as _,
        ),
        (
            "ok",
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])) as _,
        ),
        (
            "day",
            Arc::new(Date32Array::from(vec![Some(0), Some(18_000), None])) as _,
        ),
    ])
    .unwrap()
}

#[test]
fn the_sink_quotes_only_where_needed_and_reads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let batch = sample_batch();
    let mut out = sink(json!({ "path": path }));
    out.begin(&batch.schema()).unwrap();
    out.consume(batch.slice(0, 2)).unwrap();
    out.consume(batch.slice(2, 1)).unwrap();
    out.flush().unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        written,
        "id,x,text,more,ok,day\n1,0.1,\"a,b\",\"say \"\"hi\"\"\nbye\",true,1970-01-01\n,1.0e300,\"\",plain,,2019-04-14\n-3,,,NA,false,\n"
    );
    let schema = json!({ "id": "int64", "x": "float64", "text": "utf8", "more": "utf8", "ok": "bool", "day": "date32" });
    let back = table(json!({ "path": path, "schema": schema }));
    assert_eq!(back.columns(), batch.columns());

    // Text in dictionaries is written as plain text is, and reads back as dictionaries.
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut columns = batch.columns().to_vec();
    for column in [2, 3] {
        columns[column] = cast(&columns[column], &dictionary).unwrap();
    }
    let encoded = RecordBatch::try_from_iter(
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .zip(columns),
    )
    .unwrap();
    let path = dir.path().join("dictionaries.csv");
    let mut out = sink(json!({ "path": path }));
    out.begin(&encoded.schema()).unwrap();
    out.consume(encoded.clone()).unwrap();
    out.flush().unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    let back =
        table(json!({ "path": path, "schema": schema, "read_dictionary": ["text", "more"] }));
    assert_eq!(back.columns(), encoded.columns());

    let path = dir.path().join("na.csv");
    let mut out = sink(json!({ "path": path, "null_value": "NA", "delimiter": ";" }));
    out.begin(&batch.schema()).unwrap();
    out.consume(batch.clone()).unwrap();
    out.flush().unwrap();
    let back =
        table(json!({ "path": path, "schema": schema, "delimiter": ";", "null_values": ["NA"] }));
    assert_eq!(back.columns(), batch.columns());
}

#[test]
fn the_sink_refuses_to_overwrite_and_leaves_nothing_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let batch = sample_batch();
    let mut out = sink(json!({ "path": path }));
    out.begin(&batch.schema()).unwrap();
    out.consume(batch.clone()).unwrap();
    drop(out);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    std::fs::write(&path, "old").unwrap();
    let mut out = sink(json!({ "path": path }));
    let error = out.begin(&batch.schema()).unwrap_err();
    assert!(error.message().contains("overwrite = true"), "{error}");
    let mut out = sink(json!({ "path": path, "overwrite": true }));
    out.begin(&batch.schema()).unwrap();
    out.flush().unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("id,x"));
}

#[test]
fn the_sink_rejects_what_csv_cannot_hold() {
    use mlpipe_plugin_api::arrow::array::ListArray;
    use mlpipe_plugin_api::arrow::datatypes::Int32Type;
    let dir = tempfile::tempdir().unwrap();
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>([Some(vec![Some(1)])]);
    let batch = RecordBatch::try_from_iter([("l", Arc::new(list) as _)]).unwrap();
    let mut out = sink(json!({ "path": dir.path().join("l.csv") }));
    let error = out.begin(&batch.schema()).unwrap_err();
    assert!(error.message().contains("column `l`"), "{error}");
    let error = plugin()
        .create_sink("csv", &json!({ "path": "x.csv", "null_value": "a,b" }))
        .err()
        .unwrap();
    assert!(error.message().contains("`null_value`"), "{error}");
}

#[test]
fn the_sink_writes_logical_nulls_quotes_what_reads_as_null_and_refuses_what_it_cannot_show() {
    use mlpipe_plugin_api::arrow::array::{
        ArrayRef, DictionaryArray, Float64Array, Int32Array, NullArray, StringArray,
        TimestampSecondArray,
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, batch: &RecordBatch, null_value: &str| {
        let path = dir.path().join(name);
        let mut out = sink(json!({ "path": path, "null_value": null_value }));
        out.begin(&batch.schema()).unwrap();
        let result = out.consume(batch.clone()).and_then(|()| out.flush());
        result.map(|()| std::fs::read_to_string(&path).unwrap())
    };
    // A dictionary whose value is null, and a column of the null type, are nulls; a float
    // NaN under `null_value = "NaN"` is quoted so that it does not read as one.
    let keys = Int32Array::from(vec![0, 1, 0]);
    let values = Arc::new(StringArray::from(vec![Some("a"), None]));
    let batch = RecordBatch::try_from_iter([
        (
            "d",
            Arc::new(DictionaryArray::new(keys, values)) as ArrayRef,
        ),
        ("n", Arc::new(NullArray::new(3)) as _),
        (
            "f",
            Arc::new(Float64Array::from(vec![f64::NAN, 1.0, 2.0])) as _,
        ),
    ])
    .unwrap();
    assert_eq!(
        write("nulls.csv", &batch, "NaN").unwrap(),
        "d,n,f\na,NaN,\"NaN\"\nNaN,NaN,1.0\na,NaN,2.0\n"
    );
    // A timestamp arrow cannot show is an error naming the column and row, not text.
    let times = TimestampSecondArray::from(vec![0, 100_000_000_000_000_000]);
    let batch = RecordBatch::try_from_iter([("ts", Arc::new(times) as ArrayRef)]).unwrap();
    let error = write("times.csv", &batch, "").unwrap_err();
    assert!(
        error
            .message()
            .contains("column `ts`, row 1: cannot write the value"),
        "{error}"
    );
}

// ---- properties of the reader ----

/// Reads `files` with the given options; all rows as one batch, or the error message.
fn read_dataset(
    files: &[Vec<u8>],
    options: Options,
    infer_rows: usize,
) -> std::result::Result<RecordBatch, String> {
    let origins = files
        .iter()
        .enumerate()
        .map(|(i, bytes)| Origin::Bytes(format!("f{i}.csv"), bytes.clone().into()))
        .collect();
    let request = SchemaRequest {
        column_names: None,
        declared: Default::default(),
        dictionary: None,
        infer_rows,
        nulls: NullMarkers::new(&[String::new()]),
    };
    let mut source = CsvSource::open(origins, options, request).map_err(|e| e.to_string())?;
    let schema = source.schema().map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    loop {
        match source.next_batch(7) {
            Ok(Some(batch)) => batches.push(batch),
            Ok(None) => break,
            Err(error) => return Err(error.to_string()),
        }
    }
    concat_batches(&schema, &batches).map_err(|e| e.to_string())
}

fn options(dialect: Dialect, threads: usize, window: usize, chunks: usize, skip: bool) -> Options {
    Options {
        dialect,
        has_header: true,
        threads,
        skip_bad: skip,
        min_window: window,
        max_window: window,
        max_batches_text: usize::MAX,
        chunks_per_thread: chunks,
    }
}

/// CSV-like text from bytes that matter to the tokenizers.
fn csv_text() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop::sample::select(b"aa1,,\"\"\n\n\r ;\\#x9.-".to_vec());
    prop::collection::vec(byte, 0..400)
}

/// Well-formed CSV: a header and records with quoted fields that hold delimiters, quotes
/// and line ends.
fn well_formed() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        "[a-z0-9]{0,6}",
        "-?[0-9]{1,5}(\\.[0-9]{1,3})?",
        "[a-z ,\"\n]{0,8}".prop_map(|s| format!("\"{}\"", s.replace('"', "\"\""))),
    ];
    let record = prop::collection::vec(field, 3);
    (prop::collection::vec(record, 0..60), any::<bool>()).prop_map(|(records, crlf)| {
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("a,b,c{end}");
        for record in records {
            text.push_str(&record.join(","));
            text.push_str(end);
        }
        text.into_bytes()
    })
}

fn dialects() -> impl Strategy<Value = Dialect> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(escape, comment, semicolon)| Dialect {
        delimiter: if semicolon { b';' } else { b',' },
        quote: Some(b'"'),
        escape: escape.then_some(b'\\'),
        comment: comment.then_some(b'#'),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any bytes: parsing in small windows cut into many chunks, on several threads, gives
    /// what parsing in one piece on one thread gives (rows, or the same error).
    #[test]
    fn parallel_parsing_equals_sequential(
        files in prop::collection::vec(csv_text(), 1..3),
        dialect in dialects(),
        threads in 1usize..4,
        window in 1usize..200,
        chunks in 1usize..5,
        skip in any::<bool>(),
    ) {
        let sequential = read_dataset(&files, options(dialect, 1, 1 << 20, 1, skip), 50);
        let parallel = read_dataset(&files, options(dialect, threads, window, chunks, skip), 50);
        prop_assert_eq!(parallel, sequential);
    }

    /// Well-formed files: the same, and every record is read.
    #[test]
    fn well_formed_files_read_the_same_however_they_are_cut(
        file in well_formed(),
        threads in 1usize..4,
        window in 1usize..300,
        chunks in 1usize..6,
    ) {
        let sequential = read_dataset(std::slice::from_ref(&file), options(Dialect::default(), 1, 1 << 20, 1, false), 0);
        let parallel = read_dataset(std::slice::from_ref(&file), options(Dialect::default(), threads, window, chunks, false), 0);
        prop_assert!(sequential.is_ok(), "{:?}", sequential);
        prop_assert_eq!(parallel, sequential);
    }

    /// Mutated well-formed files (bytes flipped, cut, duplicated) never make the source
    /// panic, whatever the dialect and the cuts.
    #[test]
    fn mutated_files_never_panic(
        file in well_formed(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        dialect in dialects(),
        window in 1usize..300,
    ) {
        let mut bytes = file;
        for (at, byte, kind) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        let _ = read_dataset(std::slice::from_ref(&bytes), options(dialect, 2, window, 3, false), 10);
        let _ = read_dataset(&[bytes], options(dialect, 1, 1 << 20, 1, true), 10);
    }
}

#[test]
fn a_quote_the_parity_misreads_still_parses_like_one_piece() {
    // `5'11"` opens no field, so the quote parity is wrong after it: the cuts that follow
    // are guessed wrong, found out, and the rest of the window is redone in one piece.
    let mut text = String::from("h,w\n");
    for i in 0..200 {
        text.push_str(&format!("{i},5'11\"\n{i},\"a\nb\"\n"));
    }
    let file = text.into_bytes();
    let sequential = read_dataset(
        std::slice::from_ref(&file),
        options(Dialect::default(), 1, 1 << 20, 1, false),
        10,
    );
    let parallel = read_dataset(&[file], options(Dialect::default(), 3, 500, 4, false), 10);
    assert_eq!(sequential.as_ref().map(RecordBatch::num_rows), Ok(400));
    assert_eq!(parallel, sequential);
}

#[test]
fn quoted_line_ends_across_every_cut_read_the_same() {
    let mut text = String::from("id,note,n\r\n");
    for i in 0..40 {
        text.push_str(&format!(
            "{i},\"line one\r\nline \"\"two\"\",\nthree\",{}\r\n",
            i * 3
        ));
    }
    let file = text.into_bytes();
    let one_piece = options(Dialect::default(), 1, 1 << 20, 1, false);
    let sequential = read_dataset(std::slice::from_ref(&file), one_piece, 10).unwrap();
    assert_eq!(sequential.num_rows(), 40);
    let notes = sequential.column(1).as_string::<i32>();
    assert_eq!(notes.value(7), "line one\r\nline \"two\",\nthree");
    for window in 1..=80 {
        for threads in [2, 3] {
            let cut = options(Dialect::default(), threads, window, 3, false);
            let parallel = read_dataset(std::slice::from_ref(&file), cut, 10).unwrap();
            assert_eq!(parallel, sequential, "window {window}, {threads} threads");
        }
    }
}
