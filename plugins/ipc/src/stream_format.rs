//! The IPC stream format: a schema message, then dictionaries and record batches, each a
//! length-prefixed flatbuffer and a body, until an end-of-stream marker or the end of the
//! input. Messages are framed here (so that each can be checked, see [`crate::message`]) and
//! decoded with arrow-rs' `read_record_batch` and `read_dictionary`. From a mapped file the
//! bodies are slices of the mapping (zero copy); from a reader, each is read into memory.

use std::collections::HashMap;
use std::sync::Arc;

use mlpipe_plugin_api::arrow::array::ArrayRef;
use mlpipe_plugin_api::arrow::buffer::Buffer;
use mlpipe_plugin_api::arrow::ipc::MessageHeader;
use mlpipe_plugin_api::arrow::ipc::convert::MessageBuffer;
use mlpipe_plugin_api::arrow::ipc::reader::{read_dictionary, read_record_batch};
use mlpipe_plugin_api::{Error, RecordBatch, Result, SchemaRef};

use crate::input::Bytes;
use crate::message::{
    CONTINUATION, check_message, check_version, decode_schema, guarded, le_i32, verify,
};

/// An IPC stream being read, batch by batch.
pub(crate) struct StreamFormat {
    bytes: Bytes,
    schema: SchemaRef,
    dictionaries: HashMap<i64, ArrayRef>,
    projection: Option<Vec<usize>>,
}

impl StreamFormat {
    /// Reads the schema message that starts the stream.
    pub(crate) fn open(mut bytes: Bytes) -> Result<StreamFormat> {
        let not_a_stream = |e: Error| e.context("not a valid Arrow IPC stream");
        let Some((message, _)) = next_message(&mut bytes).map_err(not_a_stream)? else {
            return Err(Error::bad_data(
                "empty: an Arrow IPC stream starts with a schema message",
            ));
        };
        let message = message.as_ref();
        let Some(schema) = message.header_as_schema() else {
            return Err(not_a_stream(Error::bad_data(format!(
                "its first message is a {:?}, not a schema",
                message.header_type()
            ))));
        };
        Ok(StreamFormat {
            bytes,
            schema: Arc::new(decode_schema(schema)?),
            dictionaries: HashMap::new(),
            projection: None,
        })
    }

    /// The schema the stream declares (all its columns).
    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Decodes only these columns (indices into [`schema`](StreamFormat::schema)).
    pub(crate) fn project(&mut self, columns: Vec<usize>) {
        self.projection = Some(columns);
    }

    /// The mapped bytes the stream is read from, if it is in memory.
    pub(crate) fn mapping(&self) -> Option<&Buffer> {
        self.bytes.mapping()
    }

    /// The next record batch, or `None` at the end of the stream.
    pub(crate) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let Some((message, body)) = next_message(&mut self.bytes)? else {
                return Ok(None);
            };
            let message = message.as_ref();
            let version = message.version();
            match message.header_type() {
                MessageHeader::RecordBatch => {
                    let batch = message.header_as_record_batch().ok_or_else(|| {
                        Error::bad_data("a record batch message without its batch")
                    })?;
                    check_message(message, &self.schema, &body)?;
                    let batch = guarded(|| {
                        read_record_batch(
                            &body,
                            batch,
                            self.schema.clone(),
                            &self.dictionaries,
                            self.projection.as_deref(),
                            &version,
                        )
                    })?;
                    return Ok(Some(batch));
                }
                MessageHeader::DictionaryBatch => {
                    let dictionary = message
                        .header_as_dictionary_batch()
                        .ok_or_else(|| Error::bad_data("a dictionary message without its batch"))?;
                    check_message(message, &self.schema, &body)?;
                    guarded(|| {
                        read_dictionary(
                            &body,
                            dictionary,
                            &self.schema,
                            &mut self.dictionaries,
                            &version,
                        )
                    })?;
                }
                MessageHeader::Schema => {
                    return Err(Error::bad_data(
                        "a second schema message in the stream; a stream has one schema",
                    ));
                }
                MessageHeader::NONE => {}
                other => {
                    return Err(Error::bad_data(format!(
                        "a {other:?} message, which is not part of a table"
                    )));
                }
            }
        }
    }
}

/// The next message and its body, or `None` at the end of the stream: an end-of-stream
/// marker, or the end of the input between two messages.
fn next_message(bytes: &mut Bytes) -> Result<Option<(MessageBuffer, Buffer)>> {
    let read = |e: std::io::Error| Error::io(format!("cannot read: {e}"));
    let mut length = bytes.take(4).map_err(read)?;
    if length.is_empty() {
        return Ok(None);
    }
    if length.as_slice() == CONTINUATION {
        length = bytes.take(4).map_err(read)?;
    }
    let truncated = |what: String, got: usize| {
        Error::bad_data(format!(
            "truncated: expected {what}, the input ends after {got} bytes of it"
        ))
    };
    let length =
        le_i32(&length).ok_or_else(|| truncated("a 4-byte message length".into(), length.len()))?;
    let length = match usize::try_from(length) {
        Ok(0) => return Ok(None),
        Ok(length) => length,
        Err(_) => {
            return Err(Error::bad_data(format!(
                "a message declares a negative metadata length ({length})"
            )));
        }
    };
    let metadata = bytes.take(length).map_err(read)?;
    if metadata.len() < length {
        return Err(truncated(
            format!("{length} bytes of message metadata"),
            metadata.len(),
        ));
    }
    let message = verify(metadata)?;
    let (version, body_length) = {
        let message = message.as_ref();
        (message.version(), message.bodyLength())
    };
    check_version(version)?;
    let body_length = usize::try_from(body_length).map_err(|_| {
        Error::bad_data(format!("a message declares a body of {body_length} bytes"))
    })?;
    let body = bytes.take(body_length).map_err(read)?;
    if body.len() < body_length {
        return Err(truncated(
            format!("a message body of {body_length} bytes"),
            body.len(),
        ));
    }
    Ok(Some((message, body)))
}
