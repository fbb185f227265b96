//! IPC messages: finding a message's flatbuffer, and the checks that run before arrow-rs
//! decodes a message.
//!
//! arrow-rs trusts some numbers it reads: it slices buffers at the offsets a message gives
//! (a slice out of range panics), reserves the decompressed size a compressed buffer
//! declares (an absurd size aborts the process), reads big-endian data as little-endian
//! when it comes as a stream, and accepts metadata versions from the future. The checks here
//! close these gaps before any decoding; whatever arrow-rs still panics on is caught by
//! [`guarded`] and reported as an error.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mlpipe_plugin_api::arrow::array::{BufferSpec, layout};
use mlpipe_plugin_api::arrow::buffer::Buffer;
use mlpipe_plugin_api::arrow::datatypes::{
    DECIMAL32_MAX_PRECISION, DECIMAL64_MAX_PRECISION, DECIMAL128_MAX_PRECISION,
    DECIMAL256_MAX_PRECISION, DataType, Field, Fields, Schema, UnionMode,
};
use mlpipe_plugin_api::arrow::error::ArrowError;
use mlpipe_plugin_api::arrow::ipc::convert::{MessageBuffer, try_fb_to_schema};
use mlpipe_plugin_api::arrow::ipc::{
    self, BodyCompressionMethod, CompressionType, MessageHeader, MetadataVersion,
};
use mlpipe_plugin_api::{Error, Result};

/// The marker before each message's length (since Arrow 0.15; older writers omit it).
pub(crate) const CONTINUATION: [u8; 4] = [0xff; 4];

/// How many times its compressed size a buffer can grow when decompressed: an LZ4 frame at
/// most about 255 times, a Zstandard frame at most 32768 times (a 4-byte run-length block
/// per 128 KiB). A buffer declaring more is corrupt.
const MAX_EXPANSION: u64 = 1 << 15;

/// The little-endian `i32` in the first four bytes, if there are four.
pub(crate) fn le_i32(bytes: &[u8]) -> Option<i32> {
    bytes.first_chunk::<4>().map(|b| i32::from_le_bytes(*b))
}

/// Verifies the flatbuffer of a message (its structure only; the checks below look at the
/// numbers in it).
pub(crate) fn verify(flatbuffer: Buffer) -> Result<MessageBuffer> {
    MessageBuffer::try_new(flatbuffer)
        .map_err(|e| Error::bad_data(format!("invalid message metadata: {e}")))
}

/// The message of an encapsulated message's metadata bytes (as an IPC file's footer
/// delimits them): an optional continuation marker, the flatbuffer's length, the
/// flatbuffer, padding.
pub(crate) fn message_in(metadata: &Buffer) -> Result<MessageBuffer> {
    let prefix = if metadata.starts_with(&CONTINUATION) {
        8
    } else {
        4
    };
    let length = metadata.get(prefix - 4..).and_then(le_i32).ok_or_else(|| {
        Error::bad_data(format!(
            "a message's metadata is {} bytes, too short to hold its length",
            metadata.len()
        ))
    })?;
    let available = metadata.len() - prefix;
    match usize::try_from(length) {
        Ok(length) if length <= available => verify(metadata.slice_with_length(prefix, length)),
        _ => Err(Error::bad_data(format!(
            "a message declares {length} bytes of metadata but its block holds {available}"
        ))),
    }
}

/// Refuses metadata versions this reader cannot decode: V4 (Arrow 0.8 to 0.17) and V5
/// (Arrow 1.0 on) are read.
pub(crate) fn check_version(version: MetadataVersion) -> Result<()> {
    let number = i32::from(version.0) + 1;
    if version > MetadataVersion::V5 {
        return Err(Error::bad_data(format!(
            "the data uses IPC metadata version V{number}, newer than V5, the latest this reader \
             knows: it comes from a future Arrow release, or is corrupt"
        )));
    }
    if version < MetadataVersion::V4 {
        return Err(Error::bad_data(format!(
            "the data uses IPC metadata version V{number}, from before Arrow 0.8, which this \
             reader does not read; rewrite it with a current Arrow library"
        )));
    }
    Ok(())
}

/// The Arrow schema of a schema flatbuffer, refusing data of the other byte order (arrow-rs
/// would read it as if it were native).
pub(crate) fn decode_schema(schema: ipc::Schema<'_>) -> Result<Schema> {
    if !schema.endianness().equals_to_target_endianness() {
        return Err(Error::bad_data(
            "the data is in the other byte order (big-endian, written on a big-endian machine); \
             this reader reads little-endian Arrow IPC only. Convert it once, e.g. with pyarrow, \
             which swaps the bytes on reading: \
             `t = pa.ipc.open_file(src).read_all(); pa.ipc.new_file(dst, t.schema).write_table(t)`",
        ));
    }
    let schema = guarded(|| try_fb_to_schema(schema))?;
    for field in schema.fields() {
        check_type(field.name(), field.data_type())?;
    }
    Ok(schema)
}

/// Refuses types arrow-rs takes from a schema without checking them: decimals whose
/// precision is outside what their width holds.
fn check_type(column: &str, data_type: &DataType) -> Result<()> {
    let most = match data_type {
        DataType::Decimal32(precision, _) => Some((*precision, DECIMAL32_MAX_PRECISION)),
        DataType::Decimal64(precision, _) => Some((*precision, DECIMAL64_MAX_PRECISION)),
        DataType::Decimal128(precision, _) => Some((*precision, DECIMAL128_MAX_PRECISION)),
        DataType::Decimal256(precision, _) => Some((*precision, DECIMAL256_MAX_PRECISION)),
        _ => None,
    };
    if let Some((precision, most)) = most
        && !(1..=most).contains(&precision)
    {
        return Err(Error::bad_data(format!(
            "column `{column}`: {data_type} has a precision outside 1..={most}"
        )));
    }
    let children: Vec<&DataType> = match data_type {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => vec![f.data_type()],
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type()).collect(),
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| f.data_type()).collect(),
        DataType::Dictionary(_, values) => vec![values.as_ref()],
        DataType::RunEndEncoded(ends, values) => vec![ends.data_type(), values.data_type()],
        _ => vec![],
    };
    children
        .into_iter()
        .try_for_each(|child| check_type(column, child))
}

/// Checks a record batch or dictionary message against its body and the schema of its
/// stream or file (see [`check_batch`] and [`check_layout`]); returns the rows it declares.
pub(crate) fn check_message(
    message: ipc::Message<'_>,
    schema: &Schema,
    body: &[u8],
) -> Result<u64> {
    let (batch, columns) = match message.header_type() {
        MessageHeader::RecordBatch => (
            message.header_as_record_batch(),
            Some(schema.fields().clone()),
        ),
        MessageHeader::DictionaryBatch => {
            let dictionary = message.header_as_dictionary_batch();
            let columns = dictionary.and_then(|d| dictionary_values(schema, d.id()));
            (dictionary.and_then(|d| d.data()), columns)
        }
        other => {
            return Err(Error::bad_data(format!(
                "a {other:?} message where a record batch or a dictionary belongs"
            )));
        }
    };
    let batch = batch.ok_or_else(|| Error::bad_data("a message without its record batch"))?;
    check_batch(batch, body)?;
    if let Some(columns) = columns {
        check_layout(&columns, batch, body, message.version())?;
    }
    Ok(batch.length() as u64)
}

/// The one column of a dictionary's values (what its dictionary batches hold).
fn dictionary_values(schema: &Schema, id: i64) -> Option<Fields> {
    #[expect(
        deprecated,
        reason = "arrow-rs' IPC reader finds a dictionary's column by id alike"
    )]
    let fields = schema.fields_with_dict_id(id);
    match fields.first()?.data_type() {
        DataType::Dictionary(_, values) => Some(Fields::from(vec![Field::new(
            "",
            values.as_ref().clone(),
            true,
        )])),
        _ => None,
    }
}

/// Checks the numbers of a record batch (or of a dictionary's data) against its body: no
/// negative lengths, every buffer inside the body, and compressed buffers that declare a
/// size they can decompress to.
fn check_batch(batch: ipc::RecordBatch<'_>, body: &[u8]) -> Result<()> {
    let bad = |message: String| Err(Error::bad_data(message));
    if batch.length() < 0 {
        return bad(format!("a record batch declares {} rows", batch.length()));
    }
    let Some(nodes) = batch.nodes() else {
        return bad("a record batch has no field nodes".to_string());
    };
    for (index, node) in nodes.iter().enumerate() {
        let (length, nulls) = (node.length(), node.null_count());
        if length < 0 || nulls < 0 || nulls > length {
            return bad(format!(
                "field node {index} declares {length} values of which {nulls} are null"
            ));
        }
    }
    let Some(buffers) = batch.buffers() else {
        return bad("a record batch has no buffer list".to_string());
    };
    let compressed = match batch.compression() {
        None => false,
        Some(compression) => {
            let codec = compression.codec();
            if codec != CompressionType::LZ4_FRAME && codec != CompressionType::ZSTD {
                return bad(format!("unknown compression codec {}", codec.0));
            }
            if compression.method() != BodyCompressionMethod::BUFFER {
                return bad(format!(
                    "unknown body compression method {}",
                    compression.method().0
                ));
            }
            true
        }
    };
    for (index, buffer) in buffers.iter().enumerate() {
        let (offset, length) = (buffer.offset(), buffer.length());
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(length).ok())
            .and_then(|(start, length)| Some(start..start.checked_add(length)?))
            .filter(|range| range.end <= body.len());
        let Some(range) = range else {
            return bad(format!(
                "buffer {index} ({length} bytes at offset {offset}) lies outside the message \
                 body of {} bytes",
                body.len()
            ));
        };
        if compressed && !range.is_empty() {
            let bytes = &body[range];
            let Some(declared) = bytes.first_chunk::<8>().map(|b| i64::from_le_bytes(*b)) else {
                return bad(format!(
                    "compressed buffer {index} is {} bytes, shorter than its 8-byte length",
                    bytes.len()
                ));
            };
            let most = (bytes.len() as u64 - 8).saturating_mul(MAX_EXPANSION);
            if declared < -1 || (declared > 0 && declared as u64 > most) {
                return bad(format!(
                    "compressed buffer {index} declares {declared} bytes decompressed, more \
                     than its {} compressed bytes can hold",
                    bytes.len() - 8
                ));
            }
        }
    }
    Ok(())
}

/// Checks the buffers of a record batch against the layout of its columns, in the order
/// arrow-rs reads them, for what arrow-rs asserts instead of checking: a buffer of
/// fixed-width values (offsets, dictionary keys, numbers) whose length is not a whole
/// number of values, a union whose type ids (or dense offsets) do not cover its rows, and
/// negative fixed sizes. When the nodes or buffers run out, arrow-rs reports the mismatch
/// itself.
fn check_layout(
    fields: &Fields,
    batch: ipc::RecordBatch<'_>,
    body: &[u8],
    version: MetadataVersion,
) -> Result<()> {
    let (Some(nodes), Some(buffers)) = (batch.nodes(), batch.buffers()) else {
        return Ok(());
    };
    let mut walk = Walk {
        nodes: nodes.iter().map(|n| n.length()).collect(),
        buffers: buffers.iter().map(|b| (b.offset(), b.length())).collect(),
        variadic: batch.variadicBufferCounts().into_iter().flatten().collect(),
        compressed: batch.compression().is_some(),
        body,
        version,
    };
    for field in fields {
        if walk.column(field.data_type())?.is_none() {
            break;
        }
    }
    Ok(())
}

/// The nodes, buffers and variadic counts of a record batch not yet walked past.
struct Walk<'a> {
    nodes: VecDeque<i64>,
    buffers: VecDeque<(i64, i64)>,
    variadic: VecDeque<i64>,
    compressed: bool,
    body: &'a [u8],
    version: MetadataVersion,
}

/// What a column's buffer holds, for the checks.
#[derive(Clone, Copy)]
enum Holds {
    /// Bits or bytes: any length.
    Bytes,
    /// Values of this many bytes each.
    Values(usize),
}

impl Walk<'_> {
    /// The decoded size of the next buffer (`check_batch` has checked its place), checked
    /// to hold whole values; `None` when the buffers ran out.
    fn buffer(&mut self, holds: Holds) -> Result<Option<u64>> {
        let Some((offset, length)) = self.buffers.pop_front() else {
            return Ok(None);
        };
        let size = if !self.compressed || length == 0 {
            length as u64
        } else {
            let prefix = self
                .body
                .get(offset as usize..)
                .and_then(|b| b.first_chunk::<8>());
            match prefix.map(|p| i64::from_le_bytes(*p)) {
                Some(-1) => length as u64 - 8,
                Some(declared) => declared as u64,
                None => return Ok(None),
            }
        };
        if let Holds::Values(width) = holds
            && width.is_power_of_two()
            && size % width as u64 != 0
        {
            return Err(Error::bad_data(format!(
                "a buffer of {width}-byte values is {size} bytes long, not a whole number of values"
            )));
        }
        Ok(Some(size))
    }

    /// Walks past the next buffers; `None` when they ran out.
    fn buffers(&mut self, holds: &[Holds]) -> Result<Option<()>> {
        for &holds in holds {
            if self.buffer(holds)?.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(()))
    }

    /// Walks past one column and its children; `None` when the nodes or buffers ran out.
    fn column(&mut self, data_type: &DataType) -> Result<Option<()>> {
        let Some(rows) = self.nodes.pop_front() else {
            return Ok(None);
        };
        let rows = rows.max(0) as u64;
        let negative = |what: &str, size: i32| {
            Err(Error::bad_data(format!(
                "a column of {what} of negative size {size}"
            )))
        };
        let (own, children): (Vec<Holds>, Vec<&DataType>) = match data_type {
            DataType::Null => (vec![], vec![]),
            DataType::RunEndEncoded(ends, values) => {
                (vec![], vec![ends.data_type(), values.data_type()])
            }
            DataType::FixedSizeBinary(size) if *size < 0 => {
                return negative("binary values", *size);
            }
            DataType::FixedSizeBinary(_) => (vec![Holds::Bytes, Holds::Bytes], vec![]),
            DataType::FixedSizeList(_, size) if *size < 0 => return negative("lists", *size),
            DataType::FixedSizeList(item, _) => (vec![Holds::Bytes], vec![item.data_type()]),
            DataType::Struct(fields) => (
                vec![Holds::Bytes],
                fields.iter().map(|f| f.data_type()).collect(),
            ),
            DataType::Union(fields, mode) => {
                if self.version < MetadataVersion::V5 && self.buffer(Holds::Bytes)?.is_none() {
                    return Ok(None);
                }
                let Some(type_ids) = self.buffer(Holds::Values(1))? else {
                    return Ok(None);
                };
                if type_ids < rows {
                    return Err(Error::bad_data(format!(
                        "a union column of {rows} rows has {type_ids} type ids"
                    )));
                }
                if *mode == UnionMode::Dense {
                    let Some(offsets) = self.buffer(Holds::Values(4))? else {
                        return Ok(None);
                    };
                    if offsets / 4 < rows {
                        return Err(Error::bad_data(format!(
                            "a dense union column of {rows} rows has {} offsets",
                            offsets / 4
                        )));
                    }
                }
                (vec![], fields.iter().map(|(_, f)| f.data_type()).collect())
            }
            _ => {
                let layout = layout(data_type);
                let mut own = vec![Holds::Bytes];
                own.extend(layout.buffers.iter().map(|spec| match spec {
                    BufferSpec::FixedWidth { byte_width, .. } => Holds::Values(*byte_width),
                    _ => Holds::Bytes,
                }));
                if layout.variadic {
                    let Some(count) = self.variadic.pop_front() else {
                        return Ok(None);
                    };
                    let Ok(count) = usize::try_from(count) else {
                        return Ok(None);
                    };
                    own.extend(std::iter::repeat_n(
                        Holds::Bytes,
                        count.min(self.buffers.len()),
                    ));
                }
                let children = match data_type {
                    DataType::List(item)
                    | DataType::LargeList(item)
                    | DataType::ListView(item)
                    | DataType::LargeListView(item)
                    | DataType::Map(item, _) => vec![item.data_type()],
                    _ => vec![],
                };
                (own, children)
            }
        };
        if self.buffers(&own)?.is_none() {
            return Ok(None);
        }
        for child in children {
            if self.column(child)?.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(()))
    }
}

/// Runs an arrow-rs decoding step; its errors, and a panic if it panics on malformed data,
/// become bad-data errors.
pub(crate) fn guarded<T>(decode: impl FnOnce() -> Result<T, ArrowError>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(decode)) {
        Ok(result) => result.map_err(Error::from),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::bad_data(format!(
                "malformed data made the Arrow IPC decoder fail: {reason}"
            )))
        }
    }
}
