//! A tokenized chunk of a file, and the slices of chunks that make up one batch.

use std::ops::Range;
use std::sync::Arc;

use crate::tokenize::{Tokens, count_line_feeds};

/// Bytes of one file that were tokenized together, with their tokens and their place in
/// the file (for `file:line` in messages).
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The file, as named in messages.
    pub file: Arc<str>,
    /// The window buffer the chunk lies in, shared with the window's other chunks.
    pub buffer: Arc<Vec<u8>>,
    /// Where the chunk lies in `buffer`.
    pub range: Range<usize>,
    pub tokens: Tokens,
    /// The line number (from 1) of the chunk's first byte.
    pub first_line: u64,
}

impl Chunk {
    /// The chunk's bytes; the tokens' offsets are relative to them.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buffer[self.range.clone()]
    }

    /// The line number of the byte at `offset` in the chunk.
    pub(crate) fn line_at(&self, offset: usize) -> u64 {
        self.first_line + count_line_feeds(&self.data()[..offset])
    }

    /// `file:line` of the record that starts at `offset`.
    pub(crate) fn place(&self, offset: usize) -> String {
        format!("{}:{}", self.file, self.line_at(offset))
    }
}

/// Consecutive well-formed records of one chunk.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub chunk: Arc<Chunk>,
    pub records: Range<usize>,
}

/// The segments whose records, in order, make up one batch.
pub(crate) type Plan = Vec<Segment>;

/// The chunk and record of row `row` of a batch planned as `plan`.
pub(crate) fn locate(plan: &[Segment], mut row: usize) -> Option<(&Chunk, usize)> {
    for segment in plan {
        if row < segment.records.len() {
            return Some((&segment.chunk, segment.records.start + row));
        }
        row -= segment.records.len();
    }
    None
}
