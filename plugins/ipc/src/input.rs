//! Where the bytes of an input come from: a file memory-mapped as one Arrow [`Buffer`] (so
//! that decoded arrays point into the mapping, without copying), or a reader such as
//! standard input, read message by message.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use mlpipe_plugin_api::arrow::buffer::Buffer;
use mlpipe_plugin_api::{Error, Result};

/// Maps `path` read-only and wraps the mapping in a [`Buffer`] without copying it; slices
/// of the buffer, and the arrays built on them, keep the mapping alive.
pub(crate) fn map_file(path: &Path) -> Result<Buffer> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| Error::io(format!("{shown}: cannot open: {e}")))?;
    let length = file
        .metadata()
        .map_err(|e| Error::io(format!("{shown}: cannot read: {e}")))?
        .len();
    if length == 0 {
        return Ok(Buffer::from_vec(Vec::<u8>::new()));
    }
    // SAFETY: the mapping is read-only and nothing here writes through it. What a memory map
    // cannot rule out is another process changing the file while it is mapped: the bytes
    // would change under the arrays (or reading past a truncation raises SIGBUS). This is
    // the contract of every memory-mapped reader (arrow-rs' zero-copy example, pyarrow's
    // `memory_map`, polars): inputs must not be modified while a pipeline reads them, as the
    // plugin's README says.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| Error::io(format!("{shown}: cannot memory-map: {e}")))?;
    Ok(Buffer::from(bytes::Bytes::from_owner(map)))
}

/// Maps `length` bytes of `file` from `offset` (any offset: the mapping starts at the
/// page boundary before it) read-only, as a buffer of their own. The mapping is released
/// when the last array built on it is dropped, and with it the pages it brought into the
/// process: a batch decoded from it holds memory only as long as the batch lives.
pub(crate) fn map_range(file: &File, offset: u64, length: usize) -> io::Result<Buffer> {
    // SAFETY: as in `map_file`: read-only, nothing writes through it, and the input must
    // not be modified while a pipeline reads it.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(length)
            .map(file)
    }?;
    Ok(Buffer::from(bytes::Bytes::from_owner(map)))
}

/// Bytes read in order, in pieces of a requested size.
pub(crate) enum Bytes {
    /// A mapped file (or any buffer in memory): pieces are zero-copy slices.
    Mapped {
        /// All the bytes.
        buffer: Buffer,
        /// Where the next piece starts.
        position: usize,
    },
    /// A reader: pieces are read into new buffers.
    Reader(Box<dyn Read + Send>),
}

/// The most a piece read from a reader reserves before its bytes arrive: a length read
/// from a malformed stream must not turn into a huge allocation.
const MAX_RESERVE: usize = 64 << 20;

impl Bytes {
    /// The next `length` bytes, or fewer when the input ends before.
    pub(crate) fn take(&mut self, length: usize) -> io::Result<Buffer> {
        match self {
            Bytes::Mapped { buffer, position } => {
                let length = length.min(buffer.len() - *position);
                let piece = buffer.slice_with_length(*position, length);
                *position += length;
                Ok(piece)
            }
            Bytes::Reader(reader) => {
                let mut piece = Vec::with_capacity(length.min(MAX_RESERVE));
                reader.take(length as u64).read_to_end(&mut piece)?;
                Ok(Buffer::from_vec(piece))
            }
        }
    }

    /// The mapped buffer, when the bytes are in memory.
    pub(crate) fn mapping(&self) -> Option<&Buffer> {
        match self {
            Bytes::Mapped { buffer, .. } => Some(buffer),
            Bytes::Reader(_) => None,
        }
    }
}
