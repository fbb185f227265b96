//! The `ipc` source: reads a dataset of Arrow IPC files and streams, or a stream from
//! standard input, in batches of at most the size the host asks for.
//!
//! Every input is opened when the source is created, so that a missing file, a file of
//! another format or a schema that differs between files is reported before the run
//! starts. A file is memory-mapped; its batches are decoded from the mapping without
//! copying, and a batch larger than the host asks for is handed out in zero-copy slices,
//! whose pages the source gives back a few batches after handing them out ([`Pages`]).

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::ops::Range;
use std::path::Path;

use mlpipe_plugin_api::arrow::array::{ArrayData, RecordBatchOptions};
use mlpipe_plugin_api::arrow::buffer::Buffer;
use mlpipe_plugin_api::arrow::datatypes::Schema;
use mlpipe_plugin_api::files;
use mlpipe_plugin_api::{
    Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef, Source,
    describe_schema, equal_batch_rows,
};

use crate::file_format::{FileFormat, MAGIC};
use crate::input::{Bytes, MappedRange, map_file};
use crate::pages::Pages;
use crate::stream_format::StreamFormat;

/// The pages of a mapped file's rows are given back this many of the host's batches after
/// the rows were handed out (when the workers and the sink have most likely read them).
const GIVE_BACK_LAG: usize = 4;

/// The file names a directory given as `path` contributes.
const EXTENSIONS: [&str; 4] = [".arrow", ".arrows", ".ipc", ".feather"];

/// The config keys of the `ipc` source.
pub(crate) fn keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "path",
            ConfigType::Paths,
            "the input: a file, a glob pattern, a directory (its .arrow, .arrows, .ipc and \
             .feather files) or a list of them; \"-\" reads a stream from standard input",
        )
        .required(),
        ConfigKey::new(
            "format",
            ConfigType::String,
            "auto (a file starts with ARROW1, anything else is read as a stream), file or stream",
        )
        .default("auto"),
        ConfigKey::new(
            "columns",
            ConfigType::StringList,
            "the columns to read, in this order (the others are not decoded); all when absent",
        ),
    ]
}

/// Which IPC format the inputs are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Auto,
    File,
    Stream,
}

/// One opened input.
enum Reader {
    File(FileFormat),
    /// A stream, and the mapping of the file it is read from, if it is one.
    Stream(StreamFormat, Option<MappedRange>),
}

impl Reader {
    fn schema(&self) -> SchemaRef {
        match self {
            Reader::File(file) => file.schema(),
            Reader::Stream(stream, _) => stream.schema(),
        }
    }

    fn project(&mut self, columns: Vec<usize>) {
        match self {
            Reader::File(file) => file.project(columns),
            Reader::Stream(stream, _) => stream.project(columns),
        }
    }

    /// The next batch, with the mapping of its own where it has one.
    fn next_batch(&mut self) -> Result<Option<(RecordBatch, Option<MappedRange>)>> {
        match self {
            Reader::File(file) => file.next_batch(),
            Reader::Stream(stream, mapping) => {
                Ok(stream.next_batch()?.map(|batch| (batch, mapping.clone())))
            }
        }
    }

    /// The mapping batches are decoded from and that outlives them (a mapped stream),
    /// when there is one: bytes in it are not counted as the source's memory.
    fn mapping(&self) -> Option<&Buffer> {
        match self {
            // Each batch of a file maps its own block, released with the batch: its pages
            // are the batch's memory while it lives.
            Reader::File(_) => None,
            Reader::Stream(stream, _) => stream.mapping(),
        }
    }
}

/// An opened input and the name errors give it.
struct Input {
    name: String,
    reader: Reader,
}

/// Reads Arrow IPC inputs one after the other.
pub(crate) struct IpcSource {
    /// The inputs not yet exhausted, the one being read first.
    inputs: VecDeque<Input>,
    /// The schema of every returned batch (the projection, in the requested order).
    schema: SchemaRef,
    /// Rows read but not yet returned, and the bytes of it not in a mapping.
    remainder: Option<(RecordBatch, usize)>,
    /// The rows of the batches the last record batch read is handed out in.
    batch_rows: usize,
    /// The rows of all inputs, when every input is a file (its footer tells).
    total_rows: Option<usize>,
    /// Rows returned so far.
    rows_returned: u64,
    /// The mapped blocks whose pages are given back as their rows are handed out.
    pages: Pages,
    files_read: u64,
}

impl IpcSource {
    /// Opens every input and checks that their schemas agree and the projection exists.
    pub(crate) fn from_config(config: &Config) -> Result<IpcSource> {
        let paths: Vec<String> = match config.get::<Vec<String>>("path") {
            Ok(Some(paths)) => paths,
            _ => vec![config.require::<String>("path")?],
        };
        let format = match config.require::<String>("format")?.as_str() {
            "auto" => Format::Auto,
            "file" => Format::File,
            "stream" => Format::Stream,
            other => {
                return Err(Error::config(format!(
                    "key `format` of source `ipc` must be auto, file or stream, not {other:?}"
                )));
            }
        };
        let mut inputs = if paths.iter().any(|p| p == "-") {
            if paths.len() > 1 {
                return Err(Error::config(
                    "key `path` of source `ipc`: \"-\" (standard input) cannot be combined with other inputs",
                ));
            }
            let reader = open_stdin(format).map_err(|e| e.context("standard input"))?;
            VecDeque::from([Input {
                name: "standard input".to_string(),
                reader,
            }])
        } else {
            files::expand(&paths, "path", &EXTENSIONS)?
                .iter()
                .map(|path| {
                    let name = path.display().to_string();
                    let reader = open_file(path, format).map_err(|e| e.context(&name))?;
                    Ok(Input { name, reader })
                })
                .collect::<Result<VecDeque<_>>>()?
        };
        let Some(first) = inputs.front() else {
            return Err(Error::internal("no input after expanding `path`"));
        };
        let full = first.reader.schema();
        for input in inputs.iter().skip(1) {
            let schema = input.reader.schema();
            if schema.fields() != full.fields() {
                return Err(Error::bad_data(format!(
                    "{}: its columns {} differ from those of {}, {}; every file of a dataset \
                     must have the same columns, types and nullability",
                    input.name,
                    describe_schema(&schema),
                    first.name,
                    describe_schema(&full)
                )));
            }
        }
        let schema = match config.get::<Vec<String>>("columns")? {
            None => full,
            Some(columns) => {
                let indices = column_indices(&first.name, &full, &columns)?;
                for input in &mut inputs {
                    input.reader.project(indices.clone());
                }
                std::sync::Arc::new(full.project(&indices)?)
            }
        };
        let total_rows = inputs
            .iter()
            .map(|input| match &input.reader {
                Reader::File(file) => usize::try_from(file.rows()).ok(),
                Reader::Stream(..) => None,
            })
            .sum::<Option<usize>>();
        Ok(IpcSource {
            inputs,
            schema,
            remainder: None,
            batch_rows: 1,
            total_rows,
            rows_returned: 0,
            pages: Pages::default(),
            files_read: 0,
        })
    }

    /// The next non-empty batch of the inputs, labelled with the source's schema.
    fn read(&mut self) -> Result<Option<(RecordBatch, usize)>> {
        loop {
            let Some(input) = self.inputs.front_mut() else {
                return Ok(None);
            };
            match input
                .reader
                .next_batch()
                .map_err(|e| e.context(&input.name))?
            {
                Some((batch, _)) if batch.num_rows() == 0 => {}
                Some((batch, mapping)) => {
                    let heap = heap_bytes(&batch, input.reader.mapping());
                    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                    let batch = RecordBatch::try_new_with_options(
                        self.schema.clone(),
                        batch.columns().to_vec(),
                        &options,
                    )?;
                    if let Some(mapping) = mapping {
                        self.pages
                            .follow(batch.clone(), mapping, self.rows_returned);
                    }
                    return Ok(Some((batch, heap)));
                }
                None => {
                    self.inputs.pop_front();
                    self.files_read += 1;
                }
            }
        }
    }
}

impl Source for IpcSource {
    fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let max_rows = max_rows.max(1);
        let (batch, heap) = match self.remainder.take() {
            Some(remainder) => remainder,
            None => match self.read()? {
                Some(read) => {
                    self.batch_rows = equal_batch_rows(read.0.num_rows(), max_rows);
                    read
                }
                None => {
                    // Every row has been handed out: none is waited for any more.
                    self.pages.give_back_before(u64::MAX);
                    return Ok(None);
                }
            },
        };
        // A record batch in equal slices, which the host passes on without copying them.
        let room = self.batch_rows.min(max_rows);
        let batch = if batch.num_rows() > room {
            let rest = batch.slice(room, batch.num_rows() - room);
            self.remainder = Some((rest, heap));
            batch.slice(0, room)
        } else {
            batch
        };
        self.rows_returned += batch.num_rows() as u64;
        let lag = GIVE_BACK_LAG.saturating_mul(max_rows) as u64;
        self.pages
            .give_back_before(self.rows_returned.saturating_sub(lag));
        Ok(Some(batch))
    }

    fn size_hint(&self) -> Option<usize> {
        self.total_rows
    }

    fn memory_usage(&self) -> usize {
        self.remainder.as_ref().map_or(0, |(_, heap)| *heap)
    }

    fn counters(&self) -> Counters {
        vec![("files read".to_string(), self.files_read)]
    }
}

/// Opens a file in the given format (or the one its first bytes tell).
fn open_file(path: &Path, format: Format) -> Result<Reader> {
    let (bytes, mapping) = map_file(path)?;
    match (format, bytes.starts_with(MAGIC)) {
        (Format::Auto | Format::File, true) => {
            let file = File::open(path).map_err(|e| Error::io(format!("cannot open: {e}")))?;
            Ok(Reader::File(FileFormat::open(bytes)?.map_blocks_from(file)))
        }
        (Format::File, false) => Err(Error::bad_data(
            "not an Arrow IPC file: it does not start with ARROW1. If it is an IPC stream, set \
             `format = \"stream\"` (or \"auto\") on the source",
        )),
        (Format::Stream, true) => Err(Error::bad_data(
            "an Arrow IPC file, not a stream (it starts with ARROW1); set `format = \"file\"` \
             (or \"auto\") on the source",
        )),
        (Format::Auto | Format::Stream, false) => {
            let stream = StreamFormat::open(Bytes::Mapped {
                buffer: bytes,
                position: 0,
            })?;
            Ok(Reader::Stream(stream, mapping))
        }
    }
}

/// Opens standard input as a stream. An IPC file there (its first bytes tell) is read as the
/// stream it holds after its magic bytes, up to its end-of-stream marker.
fn open_stdin(format: Format) -> Result<Reader> {
    let mut stdin = BufReader::with_capacity(1 << 20, std::io::stdin());
    let mut head = Vec::new();
    (&mut stdin)
        .take(MAGIC.len() as u64 + 2)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(format!("cannot read: {e}")))?;
    let rest: Box<dyn Read + Send> = match (format, head.starts_with(MAGIC)) {
        (Format::Auto | Format::File, true) => Box::new(stdin),
        (Format::File, false) => {
            return Err(Error::bad_data(
                "not an Arrow IPC file: it does not start with ARROW1",
            ));
        }
        (Format::Stream, true) => {
            return Err(Error::bad_data(
                "an Arrow IPC file, not a stream (it starts with ARROW1)",
            ));
        }
        (Format::Auto | Format::Stream, false) => Box::new(Cursor::new(head).chain(stdin)),
    };
    Ok(Reader::Stream(
        StreamFormat::open(Bytes::Reader(rest))?,
        None,
    ))
}

/// The top-level indices of `columns` in `schema`; unknown, repeated or ambiguous names are
/// config errors naming them and listing the input's columns.
fn column_indices(input: &str, schema: &Schema, columns: &[String]) -> Result<Vec<usize>> {
    if columns.is_empty() {
        return Err(Error::config(
            "key `columns` of source `ipc` is empty; list the columns to read, or omit the key to read them all",
        ));
    }
    let mut indices: Vec<usize> = Vec::with_capacity(columns.len());
    for name in columns {
        let found: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| field.name() == name)
            .map(|(index, _)| index)
            .collect();
        let index = match found.as_slice() {
            [index] => *index,
            [] => {
                return Err(Error::config(format!(
                    "key `columns` of source `ipc`: {input} has no column `{name}`; its columns are {}",
                    describe_schema(schema)
                )));
            }
            _ => {
                return Err(Error::config(format!(
                    "key `columns` of source `ipc`: {input} has {} columns named `{name}`, so it \
                     cannot be selected by name; omit `columns` to read them all",
                    found.len()
                )));
            }
        };
        if indices.contains(&index) {
            return Err(Error::config(format!(
                "key `columns` of source `ipc` lists `{name}` twice; list each column once"
            )));
        }
        indices.push(index);
    }
    Ok(indices)
}

/// The bytes of a batch's buffers that are not in `mapping` (decompressed or realigned
/// data, or everything read from a stream), each buffer counted once.
fn heap_bytes(batch: &RecordBatch, mapping: Option<&Buffer>) -> usize {
    fn walk(data: &ArrayData, mapped: &Option<Range<usize>>, seen: &mut HashSet<usize>) -> usize {
        let nulls = data.nulls().map(|nulls| nulls.buffer());
        let mut total = 0;
        for buffer in data.buffers().iter().chain(nulls) {
            let address = buffer.as_ptr() as usize;
            let in_mapping = mapped.as_ref().is_some_and(|m| m.contains(&address));
            if !in_mapping && seen.insert(address) {
                total += buffer.len();
            }
        }
        total
            + data
                .child_data()
                .iter()
                .map(|child| walk(child, mapped, seen))
                .sum::<usize>()
    }
    let mapped = mapping.map(|m| {
        let start = m.as_ptr() as usize;
        start..start + m.len()
    });
    let mut seen = HashSet::new();
    batch
        .columns()
        .iter()
        .map(|column| walk(&column.to_data(), &mapped, &mut seen))
        .sum()
}
