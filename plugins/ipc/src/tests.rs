//! Unit tests: the sinks and the source round-trip every column type, the source reads
//! without copying, datasets and projections, errors name what is wrong, and mutated IPC
//! bytes never make the reader panic.

use std::path::Path;
use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Float64Array, Int32Array, Int64Array, ListArray,
    StringArray, StructArray, UnionArray,
};
use mlpipe_plugin_api::arrow::buffer::{Buffer, ScalarBuffer};
use mlpipe_plugin_api::arrow::compute::concat_batches;
use mlpipe_plugin_api::arrow::datatypes::{
    DataType, Field, Float64Type, Int32Type, Schema, UnionFields,
};
use mlpipe_plugin_api::arrow::ipc::CompressionType;
use mlpipe_plugin_api::arrow::ipc::writer::{FileWriter, IpcWriteOptions, StreamWriter};
use mlpipe_plugin_api::{ErrorKind, RecordBatch, SchemaRef, Source};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::file_format::FileFormat;
use crate::input::{Bytes, map_file};
use crate::plugin;
use crate::stream_format::StreamFormat;

fn schema() -> SchemaRef {
    let item = Arc::new(Field::new("item", DataType::Int64, true));
    let point = vec![
        Field::new("x", DataType::Float64, true),
        Field::new("label", DataType::Utf8, true),
    ];
    let kinds = UnionFields::try_new(
        [0, 1],
        [
            Field::new("n", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ],
    )
    .unwrap();
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("tags", DataType::List(item), true),
        Field::new("point", DataType::Struct(point.into()), true),
        Field::new_dictionary("city", DataType::Int32, DataType::Utf8, true),
        Field::new(
            "either",
            DataType::Union(
                kinds,
                mlpipe_plugin_api::arrow::datatypes::UnionMode::Sparse,
            ),
            false,
        ),
    ]))
}

/// Rows `start..start + rows` of a table with nulls in every nullable column.
fn batch(start: i64, rows: i64) -> RecordBatch {
    let ids: Vec<i64> = (start..start + rows).collect();
    let scores: Float64Array = ids
        .iter()
        .map(|&i| (i % 3 != 0).then_some(i as f64 / 4.0))
        .collect();
    let names: StringArray = ids
        .iter()
        .map(|&i| (i % 4 != 0).then(|| format!("n{i}")))
        .collect();
    let tags = ListArray::from_iter_primitive::<mlpipe_plugin_api::arrow::datatypes::Int64Type, _, _>(
        ids.iter().map(|&i| {
            (i % 5 != 0).then(|| (0..i % 3).map(|k| Some(i * 10 + k)).collect::<Vec<_>>())
        }),
    );
    let xs: Float64Array = ids.iter().map(|&i| Some(i as f64)).collect();
    let labels: StringArray = ids.iter().map(|&i| Some(format!("p{i}"))).collect();
    let point = StructArray::new(
        match schema().field(4).data_type() {
            DataType::Struct(fields) => fields.clone(),
            _ => unreachable!(),
        },
        vec![Arc::new(xs) as ArrayRef, Arc::new(labels)],
        Some(ids.iter().map(|&i| i % 6 != 0).collect()),
    );
    // One dictionary for every batch: the IPC file format cannot replace a dictionary.
    let cities = DictionaryArray::<Int32Type>::try_new(
        ids.iter()
            .map(|&i| (i % 7 != 0).then_some((i % 3) as i32))
            .collect(),
        Arc::new(StringArray::from(vec!["Oslo", "Lima", "Pune"])),
    )
    .unwrap();
    let kinds = match schema().field(6).data_type() {
        DataType::Union(fields, _) => fields.clone(),
        _ => unreachable!(),
    };
    let either = UnionArray::try_new(
        kinds,
        ids.iter()
            .map(|&i| (i % 2) as i8)
            .collect::<ScalarBuffer<i8>>(),
        None,
        vec![
            Arc::new(ids.iter().map(|&i| Some(i as i32)).collect::<Int32Array>()) as ArrayRef,
            Arc::new(
                ids.iter()
                    .map(|&i| Some(format!("u{i}")))
                    .collect::<StringArray>(),
            ),
        ],
    )
    .unwrap();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(scores),
        Arc::new(names),
        Arc::new(tags),
        Arc::new(point),
        Arc::new(cities),
        Arc::new(either),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

fn with(mut config: Value, extra: Value) -> Value {
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    config
}

fn write(component: &str, path: &Path, extra: Value, batches: &[RecordBatch]) {
    let mut sink = plugin()
        .create_sink(component, &with(json!({ "path": path }), extra))
        .unwrap();
    sink.begin(&schema()).unwrap();
    for batch in batches {
        sink.consume(batch.clone()).unwrap();
    }
    sink.flush().unwrap();
}

fn open(config: Value) -> Box<dyn Source> {
    match plugin().create_source("ipc", &config) {
        Ok(source) => source,
        Err(e) => panic!("{e}"),
    }
}

fn open_error(config: Value) -> mlpipe_plugin_api::Error {
    match plugin().create_source("ipc", &config) {
        Ok(_) => panic!("{config} opened"),
        Err(e) => e,
    }
}

fn read_all(source: &mut dyn Source, max_rows: usize) -> RecordBatch {
    let schema = source.schema().unwrap();
    let mut batches = Vec::new();
    while let Some(batch) = source.next_batch(max_rows).unwrap() {
        assert!(batch.num_rows() <= max_rows);
        assert_eq!(batch.schema(), schema);
        batches.push(batch);
    }
    concat_batches(&schema, &batches).unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_format_and_compression_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let input = [batch(0, 10), batch(10, 25), batch(35, 1)];
    let expected = concat_batches(&schema(), &input).unwrap();
    for component in ["ipc", "ipc_stream"] {
        for compression in ["none", "lz4", "zstd"] {
            let path = dir.path().join(format!("{component}-{compression}.arrow"));
            write(
                component,
                &path,
                json!({ "compression": compression }),
                &input,
            );
            let mut source = open(json!({ "path": path }));
            assert_eq!(source.schema().unwrap(), schema());
            let hint = if component == "ipc" { Some(36) } else { None };
            assert_eq!(source.size_hint(), hint, "{component}");
            assert_eq!(
                read_all(source.as_mut(), 7),
                expected,
                "{component} {compression}"
            );
        }
    }
    // Only the outputs are left: no temporary file.
    assert_eq!(entries(dir.path()).len(), 6);
}

/// The address ranges at which `path` is mapped into this process (`/proc/self/maps`).
fn mappings_of(path: &Path) -> Vec<std::ops::Range<usize>> {
    let path = path.canonicalize().unwrap();
    let path = path.to_str().unwrap();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| line.ends_with(&format!(" {path}")))
        .map(|line| {
            let (start, rest) = line.split_once('-').unwrap();
            let end = rest.split_whitespace().next().unwrap();
            let address = |hex: &str| usize::from_str_radix(hex, 16).unwrap();
            address(start)..address(end)
        })
        .collect()
}

/// Checks that every buffer of `batch` (nested and dictionary values included) lies in one
/// of `ranges`; returns how many buffers it checked.
fn buffers_inside(batch: &RecordBatch, ranges: &[std::ops::Range<usize>]) -> usize {
    fn walk(
        data: &mlpipe_plugin_api::arrow::array::ArrayData,
        ranges: &[std::ops::Range<usize>],
    ) -> usize {
        let nulls = data.nulls().map(|n| n.buffer());
        let mut count = 0;
        for buffer in data.buffers().iter().chain(nulls).filter(|b| !b.is_empty()) {
            let address = buffer.as_ptr() as usize;
            assert!(
                ranges.iter().any(|r| r.contains(&address)),
                "a buffer at {address:#x} outside the mappings {ranges:x?}"
            );
            count += 1;
        }
        count
            + data
                .child_data()
                .iter()
                .map(|c| walk(c, ranges))
                .sum::<usize>()
    }
    batch
        .columns()
        .iter()
        .map(|c| walk(&c.to_data(), ranges))
        .sum()
}

#[test]
fn record_batches_are_handed_out_in_equal_slices() {
    // Blocks of 100 and 55 rows, at most 30 at a time: 4 x 25, then 28 and 27.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.arrow");
    write("ipc", &file, json!({}), &[batch(0, 100), batch(100, 55)]);
    let mut source = open(json!({ "path": file }));
    let mut rows = Vec::new();
    while let Some(batch) = source.next_batch(30).unwrap() {
        rows.push(batch.num_rows());
    }
    assert_eq!(rows, [25, 25, 25, 25, 28, 27]);
}

#[test]
fn column_buffers_point_into_mappings_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.arrow");
    let stream = dir.path().join("data.arrows");
    write("ipc", &file, json!({}), &[batch(0, 100), batch(100, 50)]);
    write("ipc_stream", &stream, json!({}), &[batch(0, 100)]);

    let mut source = open(json!({ "path": file }));
    let mut batches = Vec::new();
    while let Some(batch) = source.next_batch(1000).unwrap() {
        batches.push(batch);
    }
    let ranges = mappings_of(&file);
    let buffers: usize = batches.iter().map(|b| buffers_inside(b, &ranges)).sum();
    // Every column of both batches, nested and dictionary values included.
    assert!(buffers >= 2 * 14, "{buffers} buffers checked");

    let (mapping, _) = map_file(&stream).unwrap();
    let mut reader = StreamFormat::open(Bytes::Mapped {
        buffer: mapping.clone(),
        position: 0,
    })
    .unwrap();
    let batch = reader.next_batch().unwrap().unwrap();
    let start = mapping.as_ptr() as usize;
    let whole = std::iter::once(start..start + mapping.len()).collect::<Vec<_>>();
    assert!(buffers_inside(&batch, &whole) >= 14);
}

#[test]
fn a_block_is_unmapped_when_its_batches_are_dropped_and_its_pages_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.arrow");
    write("ipc", &file, json!({}), &[batch(0, 100), batch(100, 50)]);
    let mut source = open(json!({ "path": file }));
    // The whole file stays mapped (footer, dictionaries); each block is mapped on its own.
    let whole = mappings_of(&file).len();
    let mut first = Vec::new();
    for _ in 0..10 {
        first.push(source.next_batch(10).unwrap().unwrap());
    }
    assert_eq!(mappings_of(&file).len(), whole + 1);
    // Handed out and dropped, the first block's rows are still within the last four
    // batches' worth of rows: the source still holds it.
    first.drain(..5);
    let second = source.next_batch(10).unwrap().unwrap();
    assert_eq!(mappings_of(&file).len(), whole + 2);
    drop(first);
    assert_eq!(mappings_of(&file).len(), whole + 2);
    // Four batches later its pages are all given back, and nothing else holds it.
    let mut rest = Vec::new();
    while let Some(batch) = source.next_batch(10).unwrap() {
        rest.push(batch);
    }
    assert_eq!(rest.len(), 4);
    assert_eq!(mappings_of(&file).len(), whole + 1);
    // At the end of the input the source lets go of the file and of every block: the
    // batches hold the last.
    drop((second, rest));
    assert!(mappings_of(&file).is_empty());
}

/// The pages of files this process maps that are resident (`RssFile`), in bytes.
fn resident_file_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("RssFile:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<usize>()
        .unwrap();
    kib * 1024
}

#[test]
fn the_pages_of_rows_read_long_ago_leave_the_process_and_read_back_the_same() {
    // One block of 8 Mi float64 (67 MB) and as many short strings (50 MB with their
    // offsets), read 65,536 rows at a time and kept: the pages of all but the last few
    // batches are given back as the source goes, and read again (from the page cache)
    // when the kept batches are read again.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.arrow");
    let rows = 8 << 20;
    let values: ArrayRef = Arc::new(Float64Array::from_iter_values((0..rows).map(f64::from)));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| ["ab", "cde", "f"][i as usize % 3]),
    ));
    let big = RecordBatch::try_from_iter([("x", values), ("name", names)]).unwrap();
    let mut writer =
        FileWriter::try_new(std::fs::File::create(&path).unwrap(), &big.schema()).unwrap();
    writer.write(&big).unwrap();
    writer.finish().unwrap();
    let total = |batches: &[RecordBatch]| -> (f64, usize) {
        batches.iter().fold((0.0, 0), |(sum, bytes), batch| {
            let x = batch.column(0).as_primitive::<Float64Type>();
            let names = batch.column(1).as_string::<i32>();
            let length: usize = names.iter().map(|n| n.map_or(0, str::len)).sum();
            (sum + x.values().iter().sum::<f64>(), bytes + length)
        })
    };

    let before = resident_file_bytes();
    let mut source = open(json!({ "path": path }));
    let mut kept = Vec::new();
    let mut grew = 0;
    while let Some(batch) = source.next_batch(1 << 16).unwrap() {
        // Touch every page of the batch, as a transform would.
        total(std::slice::from_ref(&batch));
        grew = grew.max(resident_file_bytes().saturating_sub(before));
        kept.push(batch);
    }
    assert!(
        grew < 16 << 20,
        "{grew} bytes of the 117 MB file resident at once"
    );
    let length: usize = (0..rows as usize).map(|i| [2, 3, 1][i % 3]).sum();
    let expected = ((rows as f64) * (rows as f64 - 1.0) / 2.0, length);
    assert_eq!(total(&kept), expected);
}

#[test]
fn the_source_projects_columns_in_the_requested_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.arrow");
    write("ipc", &path, json!({}), &[batch(0, 6)]);
    for format in ["file", "auto"] {
        let mut source = open(json!({ "path": path, "columns": ["city", "id"], "format": format }));
        let read = read_all(source.as_mut(), 4);
        assert_eq!(read, batch(0, 6).project(&[5, 0]).unwrap());
    }
    let stream = dir.path().join("p.arrows");
    write("ipc_stream", &stream, json!({}), &[batch(0, 6)]);
    let mut source =
        open(json!({ "path": stream, "columns": ["either", "name"], "format": "stream" }));
    assert_eq!(
        read_all(source.as_mut(), 100),
        batch(0, 6).project(&[6, 2]).unwrap()
    );

    let error = open_error(json!({ "path": path, "columns": ["id", "nmae"] }));
    assert_eq!(error.kind(), ErrorKind::InvalidConfig);
    assert!(error.message().contains("no column `nmae`"), "{error}");
    assert!(error.message().contains("id: Int64 not null"), "{error}");
    let error = open_error(json!({ "path": path, "columns": ["id", "id"] }));
    assert!(error.message().contains("`id` twice"), "{error}");
}

#[test]
fn a_dataset_reads_its_files_in_order_and_needs_one_schema() {
    let dir = tempfile::tempdir().unwrap();
    write(
        "ipc",
        &dir.path().join("b.arrow"),
        json!({}),
        &[batch(5, 5)],
    );
    write(
        "ipc",
        &dir.path().join("a.arrow"),
        json!({}),
        &[batch(0, 5)],
    );
    write(
        "ipc_stream",
        &dir.path().join("c.arrows"),
        json!({}),
        &[batch(10, 3)],
    );
    let mut source = open(json!({ "path": dir.path() }));
    // A stream among the inputs: the total is unknown.
    assert_eq!(source.size_hint(), None);
    assert_eq!(read_all(source.as_mut(), 4), batch(0, 13));
    assert_eq!(source.counters(), vec![("files read".to_string(), 3)]);

    let glob = dir.path().join("*.arrow").to_string_lossy().into_owned();
    let source = open(json!({ "path": [glob] }));
    assert_eq!(source.size_hint(), Some(10));

    let other = dir.path().join("d.arrow");
    let narrow = batch(0, 2).project(&[0, 1]).unwrap();
    let mut sink = plugin()
        .create_sink("ipc", &json!({ "path": other }))
        .unwrap();
    sink.consume(narrow).unwrap();
    sink.flush().unwrap();
    let error = open_error(json!({ "path": dir.path() }));
    assert_eq!(error.kind(), ErrorKind::BadData);
    assert!(error.message().contains("d.arrow: its columns"), "{error}");
    assert!(error.message().contains("a.arrow"), "{error}");
}

#[test]
fn errors_name_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.arrow");
    let error = open_error(json!({ "path": missing }));
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(error.message().contains("missing.arrow"), "{error}");

    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, "a,b\n1,2\n").unwrap();
    let error = open_error(json!({ "path": csv }));
    assert_eq!(error.kind(), ErrorKind::BadData);
    assert!(
        error
            .message()
            .starts_with(&format!("{}: not a valid Arrow IPC stream", csv.display())),
        "{error}"
    );
    let error = open_error(json!({ "path": csv, "format": "file" }));
    assert!(
        error.message().contains("does not start with ARROW1"),
        "{error}"
    );

    let file = dir.path().join("whole.arrow");
    write("ipc", &file, json!({}), &[batch(0, 20)]);
    let error = open_error(json!({ "path": file, "format": "stream" }));
    assert!(
        error.message().contains("set `format = \"file\"`"),
        "{error}"
    );
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.arrow");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let error = open_error(json!({ "path": cut }));
    assert!(error.message().contains("cut.arrow: truncated"), "{error}");

    let stream = dir.path().join("whole.arrows");
    write(
        "ipc_stream",
        &stream,
        json!({}),
        &[batch(0, 20), batch(20, 20)],
    );
    let bytes = std::fs::read(&stream).unwrap();
    let cut = dir.path().join("cut.arrows");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let mut source = open(json!({ "path": cut }));
    assert_eq!(source.next_batch(100).unwrap().unwrap().num_rows(), 20);
    let error = source.next_batch(100).unwrap_err();
    assert!(
        error
            .message()
            .starts_with(&format!("{}: truncated", cut.display())),
        "{error}"
    );

    let error = open_error(json!({ "path": file, "format": "feather" }));
    assert!(error.message().contains("auto, file or stream"), "{error}");
    let error = open_error(json!({ "path": ["-", file] }));
    assert!(error.message().contains("cannot be combined"), "{error}");
}

#[test]
fn sinks_refuse_to_overwrite_and_leave_nothing_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.arrow");
    write("ipc", &path, json!({}), &[batch(0, 3)]);
    let mut refusing = plugin()
        .create_sink("ipc", &json!({ "path": path }))
        .unwrap();
    let error = refusing.begin(&schema()).unwrap_err();
    assert!(error.message().contains("overwrite = true"), "{error}");
    drop(refusing);
    assert_eq!(entries(dir.path()), ["out.arrow"]);

    for component in ["ipc", "ipc_stream"] {
        let mut sink = plugin()
            .create_sink(component, &json!({ "path": path, "overwrite": true }))
            .unwrap();
        sink.begin(&schema()).unwrap();
        sink.consume(batch(10, 4)).unwrap();
        assert_eq!(entries(dir.path()).len(), 2, "the temporary file");
        drop(sink);
        assert_eq!(entries(dir.path()), ["out.arrow"]);
        assert_eq!(
            read_all(open(json!({ "path": path })).as_mut(), 100),
            batch(0, 3)
        );
    }
    write(
        "ipc_stream",
        &path,
        json!({ "overwrite": true }),
        &[batch(7, 2)],
    );
    assert_eq!(
        read_all(open(json!({ "path": path })).as_mut(), 100),
        batch(7, 2)
    );
}

#[test]
fn bad_sink_configs_name_the_key() {
    let plugin = plugin();
    let error = plugin
        .create_sink("ipc", &json!({ "path": "-" }))
        .err()
        .unwrap();
    assert!(error.message().contains("use sink `ipc_stream`"), "{error}");
    let error = plugin
        .create_sink(
            "ipc_stream",
            &json!({ "path": "x.arrows", "compression": "gzip" }),
        )
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidConfig);
    assert!(error.message().contains("none, lz4 or zstd"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.arrow");
    let mut sink = plugin.create_sink("ipc", &json!({ "path": path })).unwrap();
    sink.begin(&schema()).unwrap();
    let error = sink
        .consume(batch(0, 2).project(&[0]).unwrap())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BadData);
    assert!(error.message().contains("x.arrow"), "{error}");
}

/// An IPC file and stream of every column type, plain and compressed, for mutation.
fn samples() -> Vec<Vec<u8>> {
    let batches = [batch(0, 9), batch(9, 4)];
    let mut out = Vec::new();
    for compression in [
        None,
        Some(CompressionType::LZ4_FRAME),
        Some(CompressionType::ZSTD),
    ] {
        let options = IpcWriteOptions::default()
            .try_with_compression(compression)
            .unwrap();
        let mut file =
            FileWriter::try_new_with_options(Vec::new(), &schema(), options.clone()).unwrap();
        let mut stream =
            StreamWriter::try_new_with_options(Vec::new(), &schema(), options).unwrap();
        for batch in &batches {
            file.write(batch).unwrap();
            stream.write(batch).unwrap();
        }
        out.push(file.into_inner().unwrap());
        out.push(stream.into_inner().unwrap());
    }
    out
}

/// Reads everything in `bytes` as the source would; `Err` holds the message.
fn read_bytes(bytes: Vec<u8>) -> Result<usize, String> {
    let buffer = Buffer::from_vec(bytes);
    let rows = |mut next: Box<dyn FnMut() -> mlpipe_plugin_api::Result<Option<RecordBatch>>>| {
        let mut rows = 0;
        while let Some(batch) = next().map_err(|e| e.to_string())? {
            rows += batch.num_rows();
        }
        Ok(rows)
    };
    if buffer.starts_with(crate::file_format::MAGIC) {
        let mut file = FileFormat::open(buffer).map_err(|e| e.to_string())?;
        rows(Box::new(move || {
            Ok(file.next_batch()?.map(|(batch, _)| batch))
        }))
    } else {
        let mut stream = StreamFormat::open(Bytes::Mapped {
            buffer,
            position: 0,
        })
        .map_err(|e| e.to_string())?;
        rows(Box::new(move || stream.next_batch()))
    }
}

#[test]
fn the_samples_read_back_whole() {
    for bytes in samples() {
        assert_eq!(read_bytes(bytes), Ok(13));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Flipped bytes, overwritten lengths and truncations give data or an error, never a
    /// panic (a panic inside arrow-rs that the reader had to catch is reported separately
    /// and fails the test too: the checks before decoding should leave none).
    #[test]
    fn mutated_ipc_bytes_never_panic(
        sample in 0usize..6,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut bytes = samples().swap_remove(sample);
        for (position, value) in edits {
            let position = position % bytes.len();
            bytes[position] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        let outcome = read_bytes(bytes);
        if let Err(message) = &outcome {
            prop_assert!(!message.contains("decoder fail"), "arrow-rs panicked: {message}");
        }
    }
}
