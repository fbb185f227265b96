//! Reading a costly source once: the first pass of a pipeline that fits copies the
//! source's batches into a file in the Arrow IPC stream format (the *spill*), and every
//! later pass reads them back from there instead of parsing the input again. The stream
//! format, unlike the IPC file format, lets every batch bring its own dictionaries
//! (a source that reads text columns as dictionaries encodes each batch separately).
//!
//! A source declares itself costly to read again in its manifest (CSV and NDJSON: every
//! pass parses the whole text); `[pipeline] spill` chooses (`auto`: for such sources,
//! `always`, `never`). The spill file is created already unlinked in `spill_dir`, so no
//! run — failed, cancelled or killed — leaves it behind. Writing it can fail (a full
//! disk): the spill is then abandoned, said in the report, and later passes read the
//! source again.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use crossbeam_channel::{Sender, bounded};
use mlpipe_plugin_api::{Counters, Error, Result, Source};

/// Buffer of the spill writer and reader: large writes, few system calls.
const IO_BUFFER: usize = 4 << 20;

/// `[pipeline] spill`: when the first pass keeps the source's batches for later passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpillPolicy {
    /// For sources that declare reading again costly (text formats).
    #[default]
    Auto,
    /// Whatever the source.
    Always,
    /// Never: every pass reads the source.
    Never,
}

impl SpillPolicy {
    /// Parses `auto`, `always` or `never`.
    pub fn parse(text: &str) -> Option<SpillPolicy> {
        match text {
            "auto" => Some(SpillPolicy::Auto),
            "always" => Some(SpillPolicy::Always),
            "never" => Some(SpillPolicy::Never),
            _ => None,
        }
    }

    /// Whether a source that is (or is not) costly to read again is spilled.
    pub fn spills(self, costly_reread: bool) -> bool {
        match self {
            SpillPolicy::Auto => costly_reread,
            SpillPolicy::Always => true,
            SpillPolicy::Never => false,
        }
    }
}

/// What became of a pass's spill, for the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpillOutcome {
    /// Every batch was written: `bytes` in the file, `rows` rows.
    Kept { bytes: u64, rows: u64 },
    /// Writing failed; later passes read the source again.
    Abandoned(String),
}

/// Where a [`Spilling`] source leaves its outcome when the pass drops it.
pub type SpillSlot = Arc<Mutex<Option<(SpillOutcome, Option<Spilled>)>>>;

/// A finished spill file, from which later passes read.
#[derive(Debug)]
pub struct Spilled {
    file: File,
    dir: PathBuf,
    rows: u64,
    counters: Counters,
}

impl Spilled {
    /// A source that reads the spilled batches back, reporting the original source's
    /// counters (the rows it skipped, the files it read).
    pub fn replay(&self) -> Result<Box<dyn Source>> {
        let failed = |e: &dyn std::fmt::Display| {
            Error::io(format!(
                "reading back the spill file in {} (the batches the first pass kept): {e}; \
                 set pipeline.spill = \"never\" to read the source again instead",
                self.dir.display()
            ))
        };
        let mut file = self.file.try_clone().map_err(|e| failed(&e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| failed(&e))?;
        let reader = StreamReader::try_new(BufReader::with_capacity(IO_BUFFER, file), None)
            .map_err(|e| failed(&e))?;
        Ok(Box::new(Replay {
            reader,
            rows: self.rows,
            counters: self.counters.clone(),
            dir: self.dir.clone(),
        }))
    }
}

/// Reads a spill file's batches in order.
struct Replay {
    reader: StreamReader<BufReader<File>>,
    rows: u64,
    counters: Counters,
    dir: PathBuf,
}

impl Source for Replay {
    fn schema(&self) -> Result<SchemaRef> {
        Ok(self.reader.schema())
    }

    fn next_batch(&mut self, _max_rows: usize) -> Result<Option<RecordBatch>> {
        // Batches come back as the source returned them in the first pass; the engine
        // re-batches them to `batch_rows` as it did then.
        self.reader.next().transpose().map_err(|e| {
            Error::io(format!(
                "reading back the spill file in {}: {e}",
                self.dir.display()
            ))
        })
    }

    fn size_hint(&self) -> Option<usize> {
        usize::try_from(self.rows).ok()
    }

    fn memory_usage(&self) -> usize {
        IO_BUFFER
    }

    fn counters(&self) -> Counters {
        self.counters.clone()
    }
}

/// Batches queued for the writer thread at most; the source waits when it lags.
const QUEUED_BATCHES: usize = 4;

/// The thread that appends batches to the spill file, so that the copy into the file
/// (system time, on a core the source may not use) overlaps with reading the source.
struct Writer {
    batches: Option<Sender<RecordBatch>>,
    thread: JoinHandle<std::result::Result<(), String>>,
    /// Bytes of the batches queued and not yet written.
    queued: Arc<AtomicUsize>,
    file: File,
}

impl Writer {
    fn start(dir: &Path, schema: &SchemaRef) -> std::result::Result<Writer, String> {
        let file = tempfile::tempfile_in(dir).map_err(|e| e.to_string())?;
        let output =
            BufWriter::with_capacity(IO_BUFFER, file.try_clone().map_err(|e| e.to_string())?);
        let mut writer = StreamWriter::try_new(output, schema).map_err(|e| e.to_string())?;
        let (batches, received) = bounded::<RecordBatch>(QUEUED_BATCHES);
        let queued = Arc::new(AtomicUsize::new(0));
        let written = queued.clone();
        let thread = std::thread::Builder::new()
            .name("mlpipe-spill".to_string())
            .spawn(move || {
                for batch in received {
                    let bytes = batch.get_array_memory_size();
                    let result = writer.write(&batch);
                    written.fetch_sub(bytes, Ordering::Relaxed);
                    result.map_err(|e| e.to_string())?;
                }
                writer.finish().map_err(|e| e.to_string())?;
                writer.get_mut().flush().map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())?;
        Ok(Writer {
            batches: Some(batches),
            thread,
            queued,
            file,
        })
    }

    /// Queues a batch; false when the writer has stopped (after a failed write).
    fn append(&self, batch: &RecordBatch) -> bool {
        let bytes = batch.get_array_memory_size();
        self.queued.fetch_add(bytes, Ordering::Relaxed);
        let sent = self
            .batches
            .as_ref()
            .is_some_and(|b| b.send(batch.clone()).is_ok());
        if !sent {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
        }
        sent
    }

    /// Closes the queue, waits for the thread, returns the file when all was written.
    fn finish(mut self) -> std::result::Result<File, String> {
        self.batches = None;
        match self.thread.join() {
            Ok(Ok(())) => Ok(self.file),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the spill writer panicked".to_string()),
        }
    }
}

/// Wraps the source of the first pass: every batch it returns is also appended to the
/// spill file. A failed write abandons the spill, never the pass.
pub struct Spilling {
    inner: Box<dyn Source>,
    dir: PathBuf,
    writer: Option<Writer>,
    abandoned: Option<String>,
    finished: Option<Spilled>,
    rows: u64,
    slot: SpillSlot,
}

impl Spilling {
    /// Wraps `inner`, spilling into a new unlinked file in `dir`; the outcome is left in
    /// the returned slot when the wrapper is dropped (at the end of the pass).
    pub fn new(inner: Box<dyn Source>, dir: &Path) -> (Spilling, SpillSlot) {
        let slot = SpillSlot::default();
        let mut spilling = Spilling {
            inner,
            dir: dir.to_path_buf(),
            writer: None,
            abandoned: None,
            finished: None,
            rows: 0,
            slot: slot.clone(),
        };
        // A schema error is the pass's to report; the spill just does not start.
        let started = spilling
            .inner
            .schema()
            .map_err(|e| e.to_string())
            .and_then(|schema| Writer::start(dir, &schema));
        match started {
            Ok(writer) => spilling.writer = Some(writer),
            Err(e) => spilling.abandon(e),
        }
        (spilling, slot)
    }

    fn abandon(&mut self, error: String) {
        if let Some(writer) = self.writer.take() {
            // The thread's own error, when it stopped first, says more.
            let _ = writer.finish();
        }
        self.abandoned = Some(format!(
            "could not spill to {}: {error}; later passes read the source again",
            self.dir.display()
        ));
    }

    /// What became of the spill, and the spill file when every batch went into it.
    fn outcome(&mut self) -> (SpillOutcome, Option<Spilled>) {
        match (self.finished.take(), self.abandoned.take()) {
            (Some(spilled), _) => {
                let bytes = spilled.file.metadata().map_or(0, |m| m.len());
                let rows = spilled.rows;
                (SpillOutcome::Kept { bytes, rows }, Some(spilled))
            }
            (None, Some(reason)) => (SpillOutcome::Abandoned(reason), None),
            (None, None) => (
                SpillOutcome::Abandoned("the pass ended before the source did".to_string()),
                None,
            ),
        }
    }

    fn append(&mut self, batch: &RecordBatch) {
        if let Some(writer) = &self.writer
            && !writer.append(batch)
        {
            match self.writer.take().map(Writer::finish) {
                Some(Err(e)) => self.abandon(e),
                _ => self.abandon("the spill writer stopped".to_string()),
            }
        }
    }

    fn finish(&mut self) {
        match self.writer.take().map(Writer::finish) {
            None => {}
            Some(Ok(file)) => {
                self.finished = Some(Spilled {
                    file,
                    dir: self.dir.clone(),
                    rows: self.rows,
                    counters: self.inner.counters(),
                })
            }
            Some(Err(e)) => self.abandon(e),
        }
    }
}

impl Drop for Spilling {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = writer.finish();
        }
        let outcome = self.outcome();
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
    }
}

impl Source for Spilling {
    fn schema(&self) -> Result<SchemaRef> {
        self.inner.schema()
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let batch = self.inner.next_batch(max_rows)?;
        match &batch {
            Some(batch) => {
                self.rows += batch.num_rows() as u64;
                self.append(batch);
            }
            None => self.finish(),
        }
        Ok(batch)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }

    fn memory_usage(&self) -> usize {
        let writer = self
            .writer
            .as_ref()
            .map_or(0, |w| IO_BUFFER + w.queued.load(Ordering::Relaxed));
        self.inner.memory_usage() + writer
    }

    fn counters(&self) -> Counters {
        self.inner.counters()
    }

    fn take_failure(&mut self) -> Option<(&'static str, Error)> {
        self.inner.take_failure()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, DictionaryArray, Int32Array, StringArray};
    use arrow::datatypes::Int32Type;

    use super::*;

    /// A source that returns the given batches in order.
    struct Batches(Vec<RecordBatch>);

    impl Source for Batches {
        fn schema(&self) -> Result<SchemaRef> {
            Ok(self.0[0].schema())
        }

        fn next_batch(&mut self, _max_rows: usize) -> Result<Option<RecordBatch>> {
            Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
        }
    }

    #[test]
    fn batches_with_dictionaries_of_their_own_are_replayed_as_they_were() {
        let batch = |keys: Vec<i32>, values: Vec<&str>| {
            let column = DictionaryArray::<Int32Type>::try_new(
                Int32Array::from(keys),
                Arc::new(StringArray::from(values)),
            )
            .unwrap();
            RecordBatch::try_from_iter([("c", Arc::new(column) as ArrayRef)]).unwrap()
        };
        let batches = vec![
            batch(vec![0, 1, 0], vec!["red", "blue"]),
            batch(vec![1, 1, 0, 2], vec!["green", "red", "blue"]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let (mut spilling, slot) = Spilling::new(Box::new(Batches(batches.clone())), dir.path());
        while spilling.next_batch(10).unwrap().is_some() {}
        drop(spilling);
        let (outcome, spilled) = slot.lock().unwrap().take().unwrap();
        assert!(
            matches!(outcome, SpillOutcome::Kept { rows: 7, .. }),
            "{outcome:?}"
        );
        let mut replay = spilled.unwrap().replay().unwrap();
        for expected in &batches {
            assert_eq!(&replay.next_batch(10).unwrap().unwrap(), expected);
        }
        assert!(replay.next_batch(10).unwrap().is_none());
        // Nothing is left in the directory: the file was unlinked when created.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
