//! The streaming, parallel reader behind the `csv` source.
//!
//! The files are read in windows of bytes. Each window is cut into chunks at record
//! boundaries (`split`), the chunks are tokenized in parallel (`tokenize`), and the
//! tokenized records are decoded in parallel (`decode`) into batches of exactly the number
//! of rows asked for, a batch taking its records from as many chunks, windows and files as
//! it needs. The work goes in rounds: one round reads the next window, tokenizes the chunks
//! of the window read before it, and decodes every batch whose records are all tokenized,
//! all at once on `threads` scoped threads (`parallel`), the calling thread included.
//! Batches come out in file order, whatever the number of threads.
//!
//! Errors keep their place: a malformed record, an unreadable file or a header that differs
//! from the first file's is reported after every batch before it. With `skip_bad`,
//! malformed records and records with unreadable values are dropped and counted instead.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use mlpipe_plugin_api::{Error, RecordBatch, Result};

use crate::chunk::{Chunk, Plan, Segment};
use crate::decode::{Decoded, Decoding, decode};
use crate::dialect::{BOM, Dialect};
use crate::input::{Files, RESERVE, RawWindow};
use crate::parallel;
use crate::split::{count_quotes, next_record_start};
use crate::tokenize::{Malformed, Problem, Tokens, count_line_feeds, first_record, tokenize};

/// The longest run of bytes tokenized at once: token offsets are 32-bit.
const MAX_CHUNK: usize = u32::MAX as usize;

/// How the reader reads, as opposed to what it produces (`Decoding`).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub dialect: Dialect,
    pub has_header: bool,
    /// Threads that tokenize and decode (the calling one included).
    pub threads: usize,
    /// Drop malformed records and records with unreadable values instead of failing.
    pub skip_bad: bool,
    /// The size of the first window, and of every window at least.
    pub min_window: usize,
    /// The size of a window at most (unless one record is longer).
    pub max_window: usize,
    /// The text of one batch per thread at most: batches get fewer rows than asked for
    /// when theirs would be longer (the reader holds up to four windows of such batches).
    pub max_batches_text: usize,
    /// Chunks per thread in a window.
    pub chunks_per_thread: usize,
}

impl Options {
    /// Rows per batch: `max_rows`, or fewer when one batch per thread would hold more than
    /// `max_batches_text` bytes of text.
    fn batch_rows(&self, max_rows: usize, record_bytes: usize) -> usize {
        let fitting = self.max_batches_text / (self.threads.max(1) * record_bytes.max(1));
        max_rows.min(fitting).max(1)
    }

    /// Bytes per window: about one batch per thread.
    fn window_bytes(&self, batch_rows: usize, record_bytes: usize) -> usize {
        (self.threads.max(1) * batch_rows)
            .saturating_mul(record_bytes)
            .clamp(self.min_window, self.max_window.max(self.min_window))
    }

    /// Bytes per stretch of a window, by which quotes are counted and chunks cut.
    fn stretch(&self, window: usize) -> usize {
        (window / (self.threads.max(1) * self.chunks_per_thread.max(1))).max(1)
    }
}

/// A window joined with the unfinished record before it, cut into chunks.
struct Window {
    file: Arc<str>,
    buffer: Arc<Vec<u8>>,
    /// Where each chunk starts, then the end of the data.
    cuts: Vec<usize>,
    /// The line number at the first cut.
    first_line: u64,
    at_eof: bool,
}

/// The unfinished record at the end of a tokenized window.
struct Tail {
    buffer: Arc<Vec<u8>>,
    start: usize,
    line: u64,
}

/// Reads a dataset's records into batches; see the module documentation.
pub(crate) struct Reader {
    options: Options,
    decoding: Arc<Decoding>,
    /// The header every file must start with (when the files have one).
    header: Option<Vec<String>>,
    files: Files,
    /// The next window to tokenize.
    window: Option<Window>,
    tail: Option<Tail>,
    /// Tokenized records not yet planned into a batch, and how many.
    pending: VecDeque<Segment>,
    pending_rows: usize,
    /// Buffers of tokenized windows, recycled once no chunk refers to them.
    retired: Vec<Arc<Vec<u8>>>,
    /// An error to report once every record before it is out.
    failure: Option<Error>,
    /// No more bytes are read (an error stopped the reading).
    stopped: bool,
    ready: VecDeque<Result<RecordBatch>>,
    finished: bool,
    /// Bytes per record in the sample, for window sizes.
    record_bytes: usize,
    /// The dataset's size over `record_bytes` (`None` for compressed files).
    estimated_rows: Option<usize>,
    batch_rows: usize,
    skipped: u64,
}

/// The first record of a file (its header, or the first row of a file without one).
pub(crate) struct FirstRecord {
    /// Where the file's text starts in its first window (after a byte order mark).
    pub start: usize,
    /// The record's fields, relative to `start`.
    pub fields: Vec<(usize, usize)>,
    /// Where the bytes after the record start, relative to `start`.
    pub end: usize,
}

/// The first bytes of a dataset: its first window and its first record.
pub(crate) struct Opening {
    pub raw: RawWindow,
    pub first: FirstRecord,
}

/// Reads the first window of the dataset and finds its first record.
pub(crate) fn open_first(files: &mut Files, options: &Options) -> Result<Opening> {
    let window = options.min_window;
    let raw = files.read(window, options.stretch(window), &options.dialect)?;
    let Some(mut raw) = raw else {
        return Err(Error::config("the source's `path` names no file"));
    };
    match first_record_of(files, &mut raw, &options.dialect)? {
        Some(first) => Ok(Opening { raw, first }),
        None => Err(Error::bad_data(format!(
            "{}: the file is empty; a CSV source needs a header line or at least one record in its first file",
            raw.file
        ))),
    }
}

/// Skips a byte order mark and finds the first record of a file's first window, reading
/// more of the file while that record is unfinished. `None` when the file holds no record.
fn first_record_of(
    files: &mut Files,
    raw: &mut RawWindow,
    dialect: &Dialect,
) -> Result<Option<FirstRecord>> {
    let start = RESERVE
        + if raw.bytes().starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
    loop {
        // Token offsets are 32-bit: never tokenize more than `MAX_CHUNK` bytes.
        if raw.buffer.len() - start > MAX_CHUNK {
            return Err(Error::bad_data(format!(
                "{}:1: the first record is longer than 4 GiB; is this a CSV file, and are its quotes balanced?",
                raw.file
            )));
        }
        if let Some((fields, end)) = first_record(&raw.buffer[start..], dialect, raw.at_eof) {
            return Ok(Some(FirstRecord { start, fields, end }));
        }
        if raw.at_eof {
            return Ok(None);
        }
        let more = raw.buffer.len();
        files.extend(raw, more, dialect)?;
    }
}

/// The texts of a header's fields; an error naming the file when one is not UTF-8.
pub(crate) fn header_texts(
    data: &[u8],
    fields: &[(usize, usize)],
    dialect: &Dialect,
    file: &str,
) -> Result<Vec<String>> {
    let mut scratch = Vec::new();
    fields
        .iter()
        .enumerate()
        .map(|(i, &(start, end))| {
            let text = dialect.unquote(&data[start..end], &mut scratch);
            String::from_utf8(text.to_vec()).map_err(|_| {
                Error::bad_data(format!(
                    "{file}:1: the header is not UTF-8 text (its field {}); is this a CSV file? \
                     (set `has_header = false` if its first line is data)",
                    i + 1
                ))
            })
        })
        .collect()
}

/// What a round's tasks are.
enum Task<'a> {
    Decode(Plan),
    Read(&'a mut Files, usize, usize),
    Tokenize(&'a [u8], bool),
}

/// What a round's tasks return.
enum Outcome {
    Decoded(Result<Decoded>),
    Read(Result<Option<RawWindow>>),
    Tokens(Tokens),
}

impl Reader {
    /// A reader of `files` whose first window and first record `open_first` found;
    /// `header` is the first file's header (when the files have one).
    pub(crate) fn new(
        options: Options,
        decoding: Decoding,
        header: Option<Vec<String>>,
        files: Files,
        opening: Opening,
        record_bytes: usize,
    ) -> Reader {
        let record_bytes = record_bytes.max(1);
        let estimated_rows = files
            .plain_size()
            .map(|bytes| (bytes / record_bytes as u64) as usize);
        let mut reader = Reader {
            options,
            decoding: Arc::new(decoding),
            header,
            files,
            window: None,
            tail: None,
            pending: VecDeque::new(),
            pending_rows: 0,
            retired: Vec::new(),
            failure: None,
            stopped: false,
            ready: VecDeque::new(),
            finished: false,
            record_bytes,
            estimated_rows,
            batch_rows: 1 << 16,
            skipped: 0,
        };
        reader.adopt(opening.raw);
        reader
    }

    /// The next batch of at most `max_rows` rows.
    pub(crate) fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let max_rows = max_rows.max(1);
        self.batch_rows = self.options.batch_rows(max_rows, self.record_bytes);
        while self.ready.is_empty() && !self.finished {
            self.round();
        }
        match self.ready.pop_front() {
            None => Ok(None),
            Some(Ok(batch)) if batch.num_rows() > max_rows => {
                let rest = batch.slice(max_rows, batch.num_rows() - max_rows);
                self.ready.push_front(Ok(rest));
                Ok(Some(batch.slice(0, max_rows)))
            }
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(error)) => {
                self.ready.clear();
                self.finished = true;
                Err(error)
            }
        }
    }

    /// Records dropped because they were malformed or held unreadable values.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Files opened so far.
    pub(crate) fn files_opened(&self) -> u64 {
        self.files.opened
    }

    /// Bytes of window buffers and finished batches the reader holds.
    pub(crate) fn memory_usage(&self) -> usize {
        let mut buffers: Vec<&Arc<Vec<u8>>> = self.retired.iter().collect();
        buffers.extend(self.window.as_ref().map(|w| &w.buffer));
        buffers.extend(self.tail.as_ref().map(|t| &t.buffer));
        buffers.extend(self.pending.iter().map(|s| &s.chunk.buffer));
        let mut seen = HashSet::new();
        let windows: usize = buffers
            .into_iter()
            .filter(|b| seen.insert(Arc::as_ptr(b)))
            .map(|b| b.capacity())
            .sum();
        let batches: usize = self
            .ready
            .iter()
            .flatten()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        windows + batches + self.files.spare_bytes()
    }

    /// One round: decode the batches ready to decode, read the next window and tokenize
    /// the current one, in parallel; then put the results in order.
    fn round(&mut self) {
        let all_in = self.window.is_none() && (self.stopped || self.files.exhausted());
        let plans = self.plan(all_in);
        let window = self.window.take();
        let read = !self.stopped && !self.files.exhausted();
        let window_bytes = self
            .options
            .window_bytes(self.batch_rows, self.record_bytes);
        let stretch = self.options.stretch(window_bytes);

        let mut tasks: Vec<Task<'_>> = plans.into_iter().map(Task::Decode).collect();
        if read {
            tasks.push(Task::Read(&mut self.files, window_bytes, stretch));
        }
        if let Some(window) = &window {
            let chunks = window.cuts.len() - 1;
            for (i, pair) in window.cuts.windows(2).enumerate() {
                let last = i + 1 == chunks;
                tasks.push(Task::Tokenize(
                    &window.buffer[pair[0]..pair[1]],
                    last && window.at_eof,
                ));
            }
        }
        let decoding = &*self.decoding;
        let dialect = self.options.dialect;
        let columns = decoding.columns.len();
        let outcomes = parallel::run(self.options.threads, tasks, |task| match task {
            Task::Decode(plan) => Outcome::Decoded(decode(&plan, decoding)),
            Task::Read(files, size, stretch) => Outcome::Read(files.read(size, stretch, &dialect)),
            Task::Tokenize(data, at_eof) => {
                Outcome::Tokens(tokenize(data, &dialect, columns, at_eof))
            }
        });

        let mut raw = None;
        let mut tokens = Vec::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Decoded(_) if self.finished => {}
                Outcome::Decoded(Ok(decoded)) => {
                    self.skipped += decoded.skipped;
                    if decoded.batch.num_rows() > 0 {
                        self.ready.push_back(Ok(decoded.batch));
                    }
                }
                Outcome::Decoded(Err(error)) => {
                    self.ready.push_back(Err(error));
                    self.finished = true;
                    self.stopped = true;
                }
                Outcome::Read(Ok(window)) => raw = window,
                Outcome::Read(Err(error)) => self.fail(error),
                Outcome::Tokens(found) => tokens.push(found),
            }
        }
        if self.finished {
            return;
        }
        if let Some(window) = window {
            let buffer = window.buffer.clone();
            self.absorb(window, tokens);
            self.retired.push(buffer);
        }
        self.recycle();
        if let Some(raw) = raw
            && !self.stopped
        {
            self.adopt(raw);
        }
        if all_in {
            if let Some(failure) = self.failure.take() {
                self.ready.push_back(Err(failure));
            }
            self.finished = true;
        }
    }

    /// Hands the buffers no chunk refers to any more back for reading.
    fn recycle(&mut self) {
        for buffer in std::mem::take(&mut self.retired) {
            match Arc::try_unwrap(buffer) {
                Ok(buffer) => self.files.recycle(buffer),
                Err(shared) => self.retired.push(shared),
            }
        }
    }

    /// Stops reading: `error` is reported after the records read so far.
    fn fail(&mut self, error: Error) {
        if self.failure.is_none() {
            self.failure = Some(error);
        }
        self.stopped = true;
        self.window = None;
        self.tail = None;
    }

    /// Cuts the pending records into batches of `batch_rows` (and, when `all_in`, the
    /// remainder into a last smaller one).
    fn plan(&mut self, all_in: bool) -> Vec<Plan> {
        let mut plans = Vec::new();
        while self.pending_rows >= self.batch_rows || (all_in && self.pending_rows > 0) {
            let mut want = self.batch_rows.min(self.pending_rows);
            let mut plan = Vec::new();
            while want > 0 {
                let Some(front) = self.pending.front_mut() else {
                    break;
                };
                let take = want.min(front.records.len());
                let start = front.records.start;
                plan.push(Segment {
                    chunk: front.chunk.clone(),
                    records: start..start + take,
                });
                front.records.start += take;
                if front.records.is_empty() {
                    self.pending.pop_front();
                }
                want -= take;
                self.pending_rows -= take;
            }
            plans.push(plan);
        }
        plans
    }

    /// Takes in the tokens of a window's chunks: checks that every chunk ended where the
    /// next one starts (else tokenizes the rest of the window in one piece), queues the
    /// records, handles malformed ones, and keeps the unfinished last record.
    fn absorb(&mut self, window: Window, tokens: Vec<Tokens>) {
        let dialect = self.options.dialect;
        let columns = self.decoding.columns.len();
        let end = window.buffer.len();
        let mut line = window.first_line;
        let chunks = window.cuts.len() - 1;
        let mut tokens = tokens.into_iter();
        for cut in 0..chunks {
            let mut range = window.cuts[cut]..window.cuts[cut + 1];
            let mut last = cut + 1 == chunks;
            let Some(mut found) = tokens.next() else {
                break;
            };
            if !last && found.consumed != range.len() {
                // The parity guess misplaced the next cut: redo the rest in one piece.
                range = range.start..end;
                found = tokenize(
                    &window.buffer[range.clone()],
                    &dialect,
                    columns,
                    window.at_eof,
                );
                last = true;
            }
            let (consumed_end, records) = (range.start + found.consumed, found.records());
            let line_feeds = found.line_feeds;
            let malformed = found.malformed.first().copied();
            let skipped = found.malformed.len() as u64;
            let chunk = Arc::new(Chunk {
                file: window.file.clone(),
                buffer: window.buffer.clone(),
                range,
                tokens: found,
                first_line: line,
            });
            line += line_feeds;
            match malformed {
                Some(first) if !self.options.skip_bad => {
                    let kept = chunk
                        .tokens
                        .starts
                        .partition_point(|&s| (s as usize) < first.offset);
                    self.queue(&chunk, kept);
                    let error = self.malformed_error(&chunk, first);
                    self.fail(error);
                    return;
                }
                _ => {
                    self.skipped += skipped;
                    self.queue(&chunk, records);
                }
            }
            if last {
                self.tail = (!window.at_eof).then(|| Tail {
                    buffer: window.buffer.clone(),
                    start: consumed_end,
                    line,
                });
                return;
            }
        }
    }

    /// Queues the first `records` records of a chunk.
    fn queue(&mut self, chunk: &Arc<Chunk>, records: usize) {
        if records > 0 {
            self.pending.push_back(Segment {
                chunk: chunk.clone(),
                records: 0..records,
            });
            self.pending_rows += records;
        }
    }

    /// The error for a malformed record.
    fn malformed_error(&self, chunk: &Chunk, malformed: Malformed) -> Error {
        let place = chunk.place(malformed.offset);
        let names = &self.decoding.columns;
        let column = |i: usize| match names.get(i) {
            Some(spec) => format!("column `{}`", spec.name),
            None => format!("field {}", i + 1),
        };
        let skip = "or set `on_error = \"skip\"` to skip such records";
        let message = match malformed.problem {
            Problem::FieldCount { found } if found < names.len() => format!(
                "the record has {found} fields, but the file has {} columns: {} and the ones after it are missing; fix the record, {skip}",
                names.len(),
                column(found)
            ),
            Problem::FieldCount { found } => format!(
                "the record has {found} fields, but the file has {} columns: {} is extra; fix the record (quote values that hold the delimiter), {skip}",
                names.len(),
                column(names.len())
            ),
            Problem::Unterminated { field } => format!(
                "the quoted value of {} is never closed: its quote runs to the end of the file; close the quote, {skip}",
                column(field)
            ),
        };
        Error::bad_data(format!("{place}: {message}"))
    }

    /// Takes in a window just read: checks a new file's header, joins the unfinished
    /// record of the previous window, and cuts the window into chunks.
    fn adopt(&mut self, raw: RawWindow) {
        match self.join(raw) {
            Ok(window) => self.window = window,
            Err(error) => self.fail(error),
        }
    }

    fn join(&mut self, mut raw: RawWindow) -> Result<Option<Window>> {
        let dialect = self.options.dialect;
        let (buffer, data_start, new_start, first_line, tail_quotes) = if raw.first_of_file {
            self.tail = None;
            let (data_start, first_line) = match self.check_header(&mut raw)? {
                Some(found) => found,
                None => return Ok(None),
            };
            (raw.buffer, data_start, RESERVE, first_line, 0)
        } else {
            let tail = self.tail.take();
            let (tail_bytes, line) = match &tail {
                Some(tail) => (&tail.buffer[tail.start..], tail.line),
                None => (&[][..], 1),
            };
            let quotes = count_quotes(tail_bytes, &dialect);
            if tail_bytes.len() <= RESERVE {
                let start = RESERVE - tail_bytes.len();
                raw.buffer[start..RESERVE].copy_from_slice(tail_bytes);
                (raw.buffer, start, RESERVE, line, quotes)
            } else {
                let mut joined = Vec::with_capacity(tail_bytes.len() + raw.bytes().len());
                joined.extend_from_slice(tail_bytes);
                joined.extend_from_slice(raw.bytes());
                (joined, 0, tail_bytes.len(), line, quotes)
            }
        };
        let end = buffer.len();
        let mut cuts = vec![data_start];
        let mut quotes = tail_quotes;
        for (k, count) in raw.quote_counts.iter().enumerate() {
            quotes += count;
            let cut = new_start + (k + 1) * raw.stretch;
            if cut >= end {
                break;
            }
            let last = cuts[cuts.len() - 1];
            if cut <= last {
                continue;
            }
            let start = next_record_start(&buffer, cut, quotes % 2 == 1, &dialect);
            if start < end && start > last {
                cuts.push(start);
            }
        }
        cuts.push(end);
        if let Some(pair) = cuts.windows(2).find(|pair| pair[1] - pair[0] > MAX_CHUNK) {
            let line = first_line + count_line_feeds(&buffer[data_start..pair[0]]);
            return Err(Error::bad_data(format!(
                "{}:{line}: a record longer than 4 GiB starts here or soon after; are the file's quotes balanced?",
                raw.file
            )));
        }
        Ok(Some(Window {
            file: raw.file,
            buffer: Arc::new(buffer),
            cuts,
            first_line,
            at_eof: raw.at_eof,
        }))
    }

    /// For a file's first window: skips a byte order mark and the header (which must equal
    /// the first file's). Returns where the records start and their first line, or `None`
    /// for a file without records.
    fn check_header(&mut self, raw: &mut RawWindow) -> Result<Option<(usize, u64)>> {
        let dialect = self.options.dialect;
        let Some(FirstRecord { start, fields, end }) =
            first_record_of(&mut self.files, raw, &dialect)?
        else {
            return Ok(None);
        };
        let Some(expected) = &self.header else {
            return Ok(Some((start, 1)));
        };
        let texts = header_texts(&raw.buffer[start..], &fields, &dialect, &raw.file)?;
        if &texts != expected {
            return Err(Error::bad_data(format!(
                "{}:1: the header differs from the first file's ({}): it has columns {texts:?}, the first file {expected:?}; every file of a dataset needs the same columns",
                raw.file,
                self.files.first_name()
            )));
        }
        let line = 1 + count_line_feeds(&raw.buffer[start..start + end]);
        Ok(Some((start + end, line)))
    }

    /// An estimate of the rows in the dataset: its size over the sample's bytes per record
    /// (`None` for compressed files).
    pub(crate) fn estimated_rows(&self) -> Option<usize> {
        self.estimated_rows
    }
}
