//! The IPC file format over bytes in memory (a memory-mapped file): the footer gives the
//! place of every dictionary and record batch; each is checked (see [`crate::message`]) and
//! decoded by arrow-rs' `FileDecoder` straight from the mapped bytes, so that the arrays
//! point into the mapping.

use std::fs::File;
use std::sync::Arc;

use mlpipe_plugin_api::arrow::buffer::Buffer;
use mlpipe_plugin_api::arrow::datatypes::Schema;
use mlpipe_plugin_api::arrow::ipc::reader::{FileDecoder, read_footer_length};
use mlpipe_plugin_api::arrow::ipc::{Block, MessageHeader, MetadataVersion, root_as_footer};
use mlpipe_plugin_api::{Error, RecordBatch, Result, SchemaRef};

use crate::input::{MappedRange, map_range};
use crate::message::{check_message, check_version, decode_schema, guarded, message_in};

/// The magic bytes that start and end an IPC file.
pub(crate) const MAGIC: &[u8; 6] = b"ARROW1";

/// Bytes at the end of a file: the footer's length and the magic.
const TRAILER: usize = 10;

/// An IPC file being read, batch by batch.
pub(crate) struct FileFormat {
    bytes: Buffer,
    /// When set, each record batch is decoded from a mapping of its own block of this file
    /// (released with the batch) instead of from `bytes`, whose pages would stay in the
    /// process until the whole file is done.
    blocks_from: Option<File>,
    decoder: FileDecoder,
    schema: SchemaRef,
    batches: Vec<Block>,
    next: usize,
    rows: u64,
}

impl FileFormat {
    /// Reads the footer, checks every block it lists, and decodes the dictionaries.
    pub(crate) fn open(bytes: Buffer) -> Result<FileFormat> {
        if !bytes.starts_with(MAGIC) {
            return Err(Error::bad_data(
                "not an Arrow IPC file: it does not start with ARROW1",
            ));
        }
        let length = bytes.len();
        let trailer = bytes
            .get(length.saturating_sub(TRAILER)..)
            .and_then(|t| <[u8; TRAILER]>::try_from(t).ok())
            .filter(|_| length >= MAGIC.len() + 2 + TRAILER)
            .ok_or_else(|| {
                Error::bad_data(format!(
                    "truncated: {length} bytes is too short for an Arrow IPC file"
                ))
            })?;
        let footer_length = read_footer_length(trailer).map_err(|_| {
            Error::bad_data(
                "truncated, or not an Arrow IPC file: it does not end with ARROW1 (an IPC file \
                 written to the end ends with its footer and ARROW1)",
            )
        })?;
        let footer_end = length - TRAILER;
        let footer_start = footer_end
            .checked_sub(footer_length)
            .filter(|&start| start >= MAGIC.len() + 2)
            .ok_or_else(|| {
                Error::bad_data(format!(
                    "the footer is said to be {footer_length} bytes, more than the file holds"
                ))
            })?;
        let footer = root_as_footer(&bytes[footer_start..footer_end])
            .map_err(|e| Error::bad_data(format!("invalid footer: {e}")))?;
        // Old writers left the footer's version unset (V1); the messages carry their own.
        if footer.version() > MetadataVersion::V1 {
            check_version(footer.version())?;
        }
        let schema = footer
            .schema()
            .ok_or_else(|| Error::bad_data("the footer has no schema"))?;
        let schema = Arc::new(decode_schema(schema)?);
        let dictionaries: Vec<Block> = footer
            .dictionaries()
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let batches: Vec<Block> = footer
            .recordBatches()
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let mut decoder = FileDecoder::new(schema.clone(), footer.version());
        for (index, block) in dictionaries.iter().enumerate() {
            let data = checked_block(
                &bytes,
                block,
                footer_start,
                &schema,
                MessageHeader::DictionaryBatch,
            )
            .map_err(|e| e.context(format!("dictionary {index}")))?
            .0;
            guarded(|| decoder.read_dictionary(block, &data))
                .map_err(|e| e.context(format!("dictionary {index}")))?;
        }
        let mut rows = 0u64;
        for (index, block) in batches.iter().enumerate() {
            let (_, batch_rows) = checked_block(
                &bytes,
                block,
                footer_start,
                &schema,
                MessageHeader::RecordBatch,
            )
            .map_err(|e| e.context(format!("record batch {index}")))?;
            rows += batch_rows;
        }
        Ok(FileFormat {
            bytes,
            blocks_from: None,
            decoder,
            schema,
            batches,
            next: 0,
            rows,
        })
    }

    /// Decodes each record batch from a mapping of its block in `file` (the file `bytes`
    /// maps), so that the memory of a batch is returned when the batch is dropped.
    pub(crate) fn map_blocks_from(mut self, file: File) -> FileFormat {
        self.blocks_from = Some(file);
        self
    }

    /// The schema the file declares (all its columns).
    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The rows of all the file's record batches, as their messages declare.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Decodes only these columns (indices into [`schema`](FileFormat::schema)).
    pub(crate) fn project(&mut self, columns: Vec<usize>) {
        let decoder = std::mem::replace(
            &mut self.decoder,
            FileDecoder::new(self.schema.clone(), MetadataVersion::V5),
        );
        self.decoder = decoder.with_projection(columns);
    }

    /// The next record batch, with the mapping of its own block where it has one; `None`
    /// after the last.
    pub(crate) fn next_batch(&mut self) -> Result<Option<(RecordBatch, Option<MappedRange>)>> {
        let Some(block) = self.batches.get(self.next) else {
            return Ok(None);
        };
        let index = self.next;
        self.next += 1;
        let (data, mapping) = match &self.blocks_from {
            None => (block_bytes(&self.bytes, block), None),
            Some(file) => {
                let length = block.metaDataLength() as usize + block.bodyLength() as usize;
                let (data, mapping) =
                    map_range(file, block.offset() as u64, length).map_err(|e| {
                        Error::io(format!("record batch {index}: cannot memory-map: {e}"))
                    })?;
                (data, Some(mapping))
            }
        };
        let batch = guarded(|| self.decoder.read_record_batch(block, &data))
            .map_err(|e| e.context(format!("record batch {index}")))?;
        Ok(batch.map(|batch| (batch, mapping)))
    }
}

/// The bytes of a block (its message and body). Only for blocks `checked_block` accepted.
fn block_bytes(bytes: &Buffer, block: &Block) -> Buffer {
    bytes.slice_with_length(
        block.offset() as usize,
        block.metaDataLength() as usize + block.bodyLength() as usize,
    )
}

/// Checks that a block lies before the footer and holds a message of the expected kind whose
/// numbers fit its body and the file's schema; returns the block's bytes and the rows its
/// message declares.
fn checked_block(
    bytes: &Buffer,
    block: &Block,
    footer_start: usize,
    schema: &Schema,
    expected: MessageHeader,
) -> Result<(Buffer, u64)> {
    let (offset, metadata, body) = (block.offset(), block.metaDataLength(), block.bodyLength());
    let place = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(metadata).ok())
        .zip(usize::try_from(body).ok())
        .filter(|((offset, metadata), body)| {
            offset
                .checked_add(*metadata)
                .and_then(|end| end.checked_add(*body))
                .is_some_and(|end| end <= footer_start)
        });
    if place.is_none() {
        return Err(Error::bad_data(format!(
            "the footer places it at offset {offset} with {metadata} bytes of metadata and \
             {body} bytes of body, outside the {footer_start} bytes before the footer"
        )));
    }
    let data = block_bytes(bytes, block);
    let message = message_in(&data.slice_with_length(0, metadata as usize))?;
    let message = message.as_ref();
    check_version(message.version())?;
    if message.header_type() != expected {
        return Err(Error::bad_data(format!(
            "the footer lists a {:?} message where a {:?} belongs",
            message.header_type(),
            expected
        )));
    }
    if message.bodyLength() != body {
        return Err(Error::bad_data(format!(
            "its message declares a body of {} bytes, the footer {body}",
            message.bodyLength()
        )));
    }
    let rows = check_message(message, schema, &data[metadata as usize..])?;
    Ok((data, rows))
}
