//! The files of a dataset, opened one after the other and read in windows of bytes.
//!
//! A file that starts with the gzip magic bytes (`1f 8b`) is decompressed on the fly,
//! whatever its name. Windows are read with plain `read` calls into a buffer that keeps
//! `RESERVE` bytes free at its front, where the reader later puts the unfinished record
//! that ended the previous window (so joining them rarely copies the window).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;
use mlpipe_plugin_api::{Error, Result};

use crate::dialect::Dialect;
use crate::split::count_quotes;

/// Free bytes at the front of every window buffer.
pub(crate) const RESERVE: usize = 64 << 10;

/// Where a dataset file comes from.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    Path(PathBuf),
    /// Bytes in memory, named as given (tests).
    #[cfg(test)]
    Bytes(String, Arc<[u8]>),
}

impl Origin {
    /// The name used in messages.
    pub(crate) fn name(&self) -> String {
        match self {
            Origin::Path(path) => path.display().to_string(),
            #[cfg(test)]
            Origin::Bytes(name, _) => name.clone(),
        }
    }

    /// The size in bytes when known without reading (plain files).
    pub(crate) fn plain_size(&self) -> Option<u64> {
        match self {
            Origin::Path(path) => {
                let mut magic = [0u8; 2];
                let mut file = File::open(path).ok()?;
                let read = file.read(&mut magic).ok()?;
                let compressed = read == 2 && magic == GZIP_MAGIC;
                (!compressed)
                    .then(|| file.metadata().ok().map(|m| m.len()))
                    .flatten()
            }
            #[cfg(test)]
            Origin::Bytes(_, bytes) => Some(bytes.len() as u64),
        }
    }
}

/// The first two bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A file being read.
pub(crate) struct Input {
    pub name: Arc<str>,
    reader: Box<dyn Read + Send>,
}

impl Input {
    /// Opens a file, recognizing gzip by its first bytes.
    pub(crate) fn open(origin: &Origin) -> Result<Input> {
        let name: Arc<str> = origin.name().into();
        let mut buffered: BufReader<Box<dyn Read + Send>> = match origin {
            Origin::Path(path) => {
                let file = File::open(path).map_err(|e| {
                    Error::io(format!(
                        "{name}: cannot open the CSV file: {e} (check the source's `path`)"
                    ))
                })?;
                BufReader::with_capacity(1 << 16, Box::new(file))
            }
            #[cfg(test)]
            Origin::Bytes(_, bytes) => {
                BufReader::new(Box::new(std::io::Cursor::new(bytes.clone())))
            }
        };
        let head = buffered
            .fill_buf()
            .map_err(|e| Error::io(format!("{name}: cannot read: {e}")))?;
        let reader: Box<dyn Read + Send> = if head.starts_with(&GZIP_MAGIC) {
            Box::new(MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        Ok(Input { name, reader })
    }

    /// Appends up to `want` bytes to `buffer`; returns whether the file ended.
    pub(crate) fn fill(&mut self, buffer: &mut Vec<u8>, want: usize) -> Result<bool> {
        buffer.reserve_exact(want);
        let read = (&mut self.reader)
            .take(want as u64)
            .read_to_end(buffer)
            .map_err(|e| Error::io(format!("{}: cannot read: {e}", self.name)))?;
        Ok(read < want)
    }
}

/// Bytes just read from a file, not yet joined with the end of the previous window.
pub(crate) struct RawWindow {
    pub file: Arc<str>,
    /// Whether these are the file's first bytes.
    pub first_of_file: bool,
    /// `RESERVE` free bytes, then the bytes read.
    pub buffer: Vec<u8>,
    pub at_eof: bool,
    /// The quotes in each stretch of `stretch` bytes read (for the chunk cuts).
    pub stretch: usize,
    pub quote_counts: Vec<u64>,
}

impl RawWindow {
    /// The bytes read.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buffer[RESERVE..]
    }

    /// Counts the quotes of every stretch.
    fn count(&mut self, dialect: &Dialect) {
        self.quote_counts = self
            .bytes()
            .chunks(self.stretch.max(1))
            .map(|stretch| count_quotes(stretch, dialect))
            .collect();
    }
}

/// The dataset's files, opened one at a time.
pub(crate) struct Files {
    origins: Vec<Origin>,
    next: usize,
    current: Option<Input>,
    /// Buffers of finished windows, to read the next windows into (reusing them spares
    /// the kernel the zeroing of fresh pages).
    spare: Vec<Vec<u8>>,
    /// Files opened so far.
    pub opened: u64,
}

impl Files {
    pub(crate) fn new(origins: Vec<Origin>) -> Files {
        Files {
            origins,
            next: 0,
            current: None,
            spare: Vec::new(),
            opened: 0,
        }
    }

    /// Keeps a finished window's buffer for a later window (at most two are kept).
    pub(crate) fn recycle(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < 2 {
            self.spare.push(buffer);
        }
    }

    /// Bytes of the buffers kept for later windows.
    pub(crate) fn spare_bytes(&self) -> usize {
        self.spare.iter().map(Vec::capacity).sum()
    }

    /// Whether every file has been read to its end.
    pub(crate) fn exhausted(&self) -> bool {
        self.current.is_none() && self.next >= self.origins.len()
    }

    /// The first file, as named in messages.
    pub(crate) fn first_name(&self) -> String {
        self.origins.first().map(Origin::name).unwrap_or_default()
    }

    /// The files' sizes when all are plain files.
    pub(crate) fn plain_size(&self) -> Option<u64> {
        self.origins.iter().map(Origin::plain_size).sum()
    }

    /// Reads the next window of about `size` bytes (opening the next file when the last
    /// one ended); `None` when every file has been read.
    pub(crate) fn read(
        &mut self,
        size: usize,
        stretch: usize,
        dialect: &Dialect,
    ) -> Result<Option<RawWindow>> {
        let first_of_file = self.current.is_none();
        if first_of_file {
            let Some(origin) = self.origins.get(self.next) else {
                return Ok(None);
            };
            self.next += 1;
            self.opened += 1;
            self.current = Some(Input::open(origin)?);
        }
        let Some(input) = self.current.as_mut() else {
            return Ok(None);
        };
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.resize(RESERVE, 0);
        let at_eof = input.fill(&mut buffer, size)?;
        let mut window = RawWindow {
            file: input.name.clone(),
            first_of_file,
            buffer,
            at_eof,
            stretch,
            quote_counts: Vec::new(),
        };
        window.count(dialect);
        if at_eof {
            self.current = None;
        }
        Ok(Some(window))
    }

    /// Reads `more` bytes onto the end of `window`, which must be the last one read.
    pub(crate) fn extend(
        &mut self,
        window: &mut RawWindow,
        more: usize,
        dialect: &Dialect,
    ) -> Result<()> {
        let Some(input) = self.current.as_mut().filter(|_| !window.at_eof) else {
            return Ok(());
        };
        window.at_eof = input.fill(&mut window.buffer, more)?;
        window.count(dialect);
        if window.at_eof {
            self.current = None;
        }
        Ok(())
    }
}
