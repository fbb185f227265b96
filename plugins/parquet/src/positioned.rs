//! The input file as the Parquet readers see it: positioned reads (`pread`) on one shared
//! descriptor. arrow-rs' `ChunkReader` for `File` duplicates the descriptor, seeks, and
//! reads through an 8 KiB buffer for every page header, then duplicates and seeks again
//! for the page: six system calls a page beyond the reads, and 8 KiB copied for a header of
//! a few dozen bytes (the benchmark table has ~11,000 pages a pass).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parquet::errors::Result;
use parquet::file::reader::{ChunkReader, Length};

/// Bytes read ahead for a page header: most headers are under 100 bytes (those with
/// statistics of long strings more; the buffer then reads again).
const HEADER_READ: usize = 512;

/// A file opened for positioned reads.
pub(crate) struct PositionedFile {
    file: Arc<File>,
    length: u64,
}

impl PositionedFile {
    /// Opens `path`.
    pub(crate) fn open(path: &Path) -> io::Result<PositionedFile> {
        let file = File::open(path)?;
        let length = file.metadata()?.len();
        Ok(PositionedFile {
            file: Arc::new(file),
            length,
        })
    }
}

impl Length for PositionedFile {
    fn len(&self) -> u64 {
        self.length
    }
}

impl ChunkReader for PositionedFile {
    type T = BufReader<ReadAt>;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        Ok(BufReader::with_capacity(
            HEADER_READ,
            ReadAt {
                file: self.file.clone(),
                offset: start,
            },
        ))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        let mut buffer = vec![0; length];
        self.file.read_exact_at(&mut buffer, start)?;
        Ok(buffer.into())
    }
}

/// Reads a file from an offset on, with positioned reads: readers of one file never move
/// each other.
pub(crate) struct ReadAt {
    file: Arc<File>,
    offset: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.file.read_at(buffer, self.offset)?;
        self.offset += read as u64;
        Ok(read)
    }
}
