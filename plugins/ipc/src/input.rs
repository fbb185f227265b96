//! Where the bytes of an input come from: a file memory-mapped as one Arrow [`Buffer`] (so
//! that decoded arrays point into the mapping, without copying), or a reader such as
//! standard input, read message by message. The module holds the plugin's `unsafe`: the
//! mappings, and giving their pages back.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use memmap2::{Mmap, UncheckedAdvice};

use mlpipe_plugin_api::arrow::buffer::Buffer;
use mlpipe_plugin_api::{Error, Result};

/// Maps `path` read-only and wraps the mapping in a [`Buffer`] without copying it; slices
/// of the buffer, and the arrays built on them, keep the mapping alive. Also returns a
/// handle through which pages of it can be given back (none for an empty file).
pub(crate) fn map_file(path: &Path) -> Result<(Buffer, Option<MappedRange>)> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| Error::io(format!("{shown}: cannot open: {e}")))?;
    let length = file
        .metadata()
        .map_err(|e| Error::io(format!("{shown}: cannot read: {e}")))?
        .len();
    if length == 0 {
        return Ok((Buffer::from_vec(Vec::<u8>::new()), None));
    }
    // SAFETY: the mapping is read-only and nothing here writes through it. What a memory map
    // cannot rule out is another process changing the file while it is mapped: the bytes
    // would change under the arrays (or reading past a truncation raises SIGBUS). This is
    // the contract of every memory-mapped reader (arrow-rs' zero-copy example, pyarrow's
    // `memory_map`, polars): inputs must not be modified while a pipeline reads them, as the
    // plugin's README says.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| Error::io(format!("{shown}: cannot memory-map: {e}")))?;
    let (buffer, mapping) = shared(map);
    Ok((buffer, Some(mapping)))
}

/// A buffer on `map`, and the handle that gives its pages back.
fn shared(map: Mmap) -> (Buffer, MappedRange) {
    let map = Arc::new(map);
    let buffer = Buffer::from(bytes::Bytes::from_owner(SharedMap(map.clone())));
    (buffer, MappedRange(map))
}

/// Maps `length` bytes of `file` from `offset` (any offset: the mapping starts at the
/// page boundary before it) read-only, as a buffer of their own, and a handle through
/// which pages of it can be given back. The mapping is released when the last array built
/// on it (and the handle) is dropped, and with it the pages it brought into the process.
pub(crate) fn map_range(
    file: &File,
    offset: u64,
    length: usize,
) -> io::Result<(Buffer, MappedRange)> {
    // SAFETY: as in `map_file`: read-only, nothing writes through it, and the input must
    // not be modified while a pipeline reads it.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(length)
            .map(file)
    }?;
    Ok(shared(map))
}

/// A mapping shared by the buffer built on it and its [`MappedRange`].
struct SharedMap(Arc<Mmap>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A read-only mapping of a file or part of one, whose resident pages can be given back.
#[derive(Clone)]
pub(crate) struct MappedRange(Arc<Mmap>);

/// Pages are given back whole; 4 KiB is the smallest page size of the platforms we build for
/// (where pages are larger, `madvise` widens the range to the page holding its start).
const PAGE: usize = 4096;

impl MappedRange {
    /// Takes the whole pages of `addresses` that lie in this mapping out of the process's
    /// resident memory. Their bytes stay readable: the next read of one maps it again from
    /// the page cache (or the file), so this is only a hint that the bytes will not be read
    /// soon — no array built on the mapping is affected but in speed.
    pub(crate) fn give_back(&self, addresses: Range<usize>) {
        let start = self.0.as_ptr() as usize;
        let from = addresses.start.max(start).next_multiple_of(PAGE);
        let to = addresses.end.min(start + self.0.len()) / PAGE * PAGE;
        if from < to {
            // SAFETY: `MADV_DONTNEED` on a read-only shared file mapping drops the page
            // table entries of the range, not the data: the next access faults the same
            // bytes in from the page cache. memmap2 marks the advice unchecked because on a
            // private writable mapping it would discard writes; this one is neither, and
            // nothing writes through it. The range lies within the mapping (clamped above).
            // A failure leaves the pages resident, which is only memory.
            let _ = unsafe {
                self.0
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, from - start, to - from)
            };
        }
    }
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
