//! Parquet encoding on threads of its own: the columns are split among encoder threads
//! (Parquet encodes and compresses every column chunk independently), each of which keeps
//! encoding while the sink's thread hands it the next batch and appends finished row groups
//! to the file. The output is the file `ArrowWriter` would write; only the encoding is
//! parallel and overlapped. Encoding — above all zstd compression — is the largest single
//! cost of a Parquet-to-Parquet pipeline, so the sink brings its own threads for it (its
//! description says so) instead of leaving cores idle while it writes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use mlpipe_plugin_api::RecordBatch;
use mlpipe_plugin_api::arrow::datatypes::SchemaRef;
use mlpipe_plugin_api::files::SyncingFile;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
    compute_leaves,
};
use parquet::arrow::{ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// Batches queued for each encoder thread, at most.
const QUEUE: usize = 2;

enum Job {
    /// Encode these leaves (one per column the thread owns), which hold this many bytes.
    Encode(Vec<ArrowLeafColumn>, usize),
    /// Close the row group: send back its chunks, continue with these writers.
    Close(Vec<ArrowColumnWriter>),
}

/// One encoder thread: the columns it owns, its queue, and where its chunks come back.
struct Encoder {
    columns: Vec<usize>,
    jobs: Option<SyncSender<Job>>,
    /// Closed row groups' chunks, with the bytes they hold.
    chunks: Receiver<Result<(Vec<ArrowColumnChunk>, usize)>>,
    thread: Option<JoinHandle<()>>,
}

/// The encoder threads; dropping them closes their queues and joins them.
struct Encoders(Vec<Encoder>);

impl Drop for Encoders {
    fn drop(&mut self) {
        for encoder in &mut self.0 {
            encoder.jobs = None;
            if let Some(thread) = encoder.thread.take() {
                // An encoder that panicked has already reported nothing more to do.
                let _ = thread.join();
            }
        }
    }
}

/// Writes batches to a Parquet file, encoding columns on `threads` threads.
pub(crate) struct ParallelWriter {
    /// The output, synced in the background as it grows.
    file: SerializedFileWriter<SyncingFile>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    encoders: Encoders,
    leaf_count: usize,
    rows_in_group: usize,
    /// Arrow bytes of the rows in the open row group.
    bytes_in_group: usize,
    /// Row groups started so far (the one being filled included).
    row_groups: usize,
    /// Row groups closed but not yet appended to the file, oldest first.
    pending: VecDeque<usize>,
    rows_per_group: usize,
    /// A row group is closed once its rows hold this many Arrow bytes.
    bytes_per_group: usize,
    /// Bytes of encoded pages held by the encoders (updated by them).
    buffered: Arc<AtomicUsize>,
}

fn encode_loop(
    mut writers: Vec<ArrowColumnWriter>,
    jobs: Receiver<Job>,
    chunks: Sender<Result<(Vec<ArrowColumnChunk>, usize)>>,
    buffered: Arc<AtomicUsize>,
) {
    // `buffered` follows the writers' memory from what they hold when created (a fresh
    // writer is not empty: encoders and buffers), so that subtracting a closed row group's
    // whole `memory_size` takes back exactly what was added for it.
    let memory = |writers: &[ArrowColumnWriter]| -> usize {
        writers.iter().map(ArrowColumnWriter::memory_size).sum()
    };
    buffered.fetch_add(memory(&writers), Ordering::Relaxed);
    let mut failed = false;
    for job in jobs {
        match job {
            Job::Encode(_, queued) if failed => {
                buffered.fetch_sub(queued, Ordering::Relaxed);
            }
            Job::Encode(leaves, queued) => {
                let before = memory(&writers);
                let result = writers
                    .iter_mut()
                    .zip(&leaves)
                    .try_for_each(|(w, leaf)| w.write(leaf));
                let after = memory(&writers);
                buffered.fetch_add(after, Ordering::Relaxed);
                buffered.fetch_sub(before + queued, Ordering::Relaxed);
                if let Err(error) = result {
                    failed = true;
                    let _ = chunks.send(Err(error));
                }
            }
            Job::Close(next) => {
                // The closed chunks hold these bytes until the file writer has appended
                // them, which releases them from `buffered`.
                let held = memory(&writers);
                buffered.fetch_add(memory(&next), Ordering::Relaxed);
                let closed = std::mem::replace(&mut writers, next);
                let result = closed
                    .into_iter()
                    .map(ArrowColumnWriter::close)
                    .collect::<Result<Vec<_>>>()
                    .map(|closed| (closed, held));
                if !failed && chunks.send(result).is_err() {
                    return;
                }
            }
        }
    }
}

/// When a row group is closed: at `rows` rows, or once its rows hold `bytes` of Arrow data
/// (the encoders hold about a row group's encoded pages, so the bytes bound the sink's
/// memory), whichever comes first. Both depend on the data only, never on timing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupLimits {
    pub rows: usize,
    pub bytes: usize,
}

/// The Arrow bytes a batch's rows hold (a slice counts its share of its buffers, not the
/// whole buffers).
fn slice_bytes(batch: &RecordBatch) -> Result<usize> {
    let mut bytes = 0;
    for column in batch.columns() {
        bytes += column
            .to_data()
            .get_slice_memory_size()
            .map_err(|e| ParquetError::General(e.to_string()))?;
    }
    Ok(bytes)
}

impl ParallelWriter {
    pub(crate) fn try_new(
        file: SyncingFile,
        schema: SchemaRef,
        mut properties: WriterProperties,
        group_limits: GroupLimits,
        threads: usize,
    ) -> Result<ParallelWriter> {
        let parquet_schema = ArrowSchemaConverter::new()
            .with_coerce_types(properties.coerce_types())
            .convert(&schema)?;
        // Readers restore the Arrow types (time zones, dictionaries, …) from this, as they
        // do for files `ArrowWriter` writes.
        add_encoded_arrow_schema_to_metadata(&schema, &mut properties);
        let file = SerializedFileWriter::new(
            file,
            parquet_schema.root_schema_ptr(),
            Arc::new(properties),
        )?;
        let factory = ArrowRowGroupWriterFactory::new(&file, schema.clone());
        let writers = factory.create_column_writers(0)?;
        let leaf_count = writers.len();
        let buffered = Arc::new(AtomicUsize::new(0));
        let threads = threads.clamp(1, leaf_count.max(1));
        let mut encoders = Vec::with_capacity(threads);
        let mut writers = writers.into_iter().enumerate().collect::<Vec<_>>();
        for index in 0..threads {
            // Columns are dealt round-robin, so neighbouring (often similar) columns spread out.
            let (mine, rest): (Vec<_>, Vec<_>) =
                writers.into_iter().partition(|(c, _)| c % threads == index);
            writers = rest;
            let columns = mine.iter().map(|(c, _)| *c).collect();
            let own_writers = mine.into_iter().map(|(_, w)| w).collect();
            let (jobs, job_queue) = sync_channel(QUEUE);
            let (chunk_sender, chunks) = channel();
            let buffered = buffered.clone();
            let thread = std::thread::Builder::new()
                .name(format!("parquet-encode-{index}"))
                .spawn(move || encode_loop(own_writers, job_queue, chunk_sender, buffered))
                .map_err(|e| {
                    ParquetError::General(format!("cannot start an encoder thread: {e}"))
                })?;
            encoders.push(Encoder {
                columns,
                jobs: Some(jobs),
                chunks,
                thread: Some(thread),
            });
        }
        Ok(ParallelWriter {
            file,
            factory,
            schema,
            encoders: Encoders(encoders),
            leaf_count,
            rows_in_group: 0,
            bytes_in_group: 0,
            row_groups: 1,
            pending: VecDeque::new(),
            rows_per_group: group_limits.rows.max(1),
            bytes_per_group: group_limits.bytes.max(1),
            buffered,
        })
    }

    /// Queues a batch for encoding, closing row groups as they fill up.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let bytes_per_row = (slice_bytes(batch)? / rows.max(1)).max(1);
        let mut offset = 0;
        while offset < rows {
            let room = self.bytes_per_group.saturating_sub(self.bytes_in_group);
            let take = (self.rows_per_group - self.rows_in_group)
                .min(room.div_ceil(bytes_per_row).max(1))
                .min(rows - offset);
            self.encode(&batch.slice(offset, take), take * bytes_per_row)?;
            offset += take;
            self.rows_in_group += take;
            self.bytes_in_group += take * bytes_per_row;
            if self.rows_in_group == self.rows_per_group
                || self.bytes_in_group >= self.bytes_per_group
            {
                self.close_row_group()?;
            }
        }
        self.append_ready(false)
    }

    fn send(encoder: &Encoder, job: Job) -> Result<()> {
        let sent = encoder.jobs.as_ref().map(|jobs| jobs.send(job));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(ParquetError::General("an encoder thread stopped".into())),
        }
    }

    /// Queues `batch`, which holds `bytes` of Arrow data, to the encoders.
    fn encode(&mut self, batch: &RecordBatch, bytes: usize) -> Result<()> {
        let mut leaves: Vec<Option<ArrowLeafColumn>> = Vec::with_capacity(self.leaf_count);
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column)?.into_iter().map(Some));
        }
        if leaves.len() != self.leaf_count {
            return Err(ParquetError::General(format!(
                "the batch has {} leaf columns, the file {}",
                leaves.len(),
                self.leaf_count
            )));
        }
        // The batch stays alive until every encoder is done with it: charge it to the
        // sink's memory, shared among the encoders.
        let share = bytes / self.encoders.0.len();
        for encoder in &self.encoders.0 {
            let mine = encoder
                .columns
                .iter()
                .filter_map(|&c| leaves[c].take())
                .collect();
            self.buffered.fetch_add(share, Ordering::Relaxed);
            Self::send(encoder, Job::Encode(mine, share))?;
        }
        Ok(())
    }

    fn close_row_group(&mut self) -> Result<()> {
        let mut next: Vec<Option<ArrowColumnWriter>> = self
            .factory
            .create_column_writers(self.row_groups)?
            .into_iter()
            .map(Some)
            .collect();
        for encoder in &self.encoders.0 {
            let writers = encoder
                .columns
                .iter()
                .filter_map(|&c| next[c].take())
                .collect();
            Self::send(encoder, Job::Close(writers))?;
        }
        self.pending.push_back(self.row_groups - 1);
        self.row_groups += 1;
        self.rows_in_group = 0;
        self.bytes_in_group = 0;
        Ok(())
    }

    /// Appends the closed row groups whose chunks are ready (all of them when `wait`).
    fn append_ready(&mut self, wait: bool) -> Result<()> {
        while !self.pending.is_empty() {
            let mut chunks: Vec<Option<ArrowColumnChunk>> =
                (0..self.leaf_count).map(|_| None).collect();
            let mut held = 0;
            for (position, encoder) in self.encoders.0.iter().enumerate() {
                // Only the first encoder's readiness is probed without blocking: once it
                // has closed the group the others are about to, and waiting is brief.
                let received = if wait || position > 0 {
                    encoder.chunks.recv().map_err(|_| ())
                } else {
                    match encoder.chunks.try_recv() {
                        Ok(result) => Ok(result),
                        Err(std::sync::mpsc::TryRecvError::Empty) => return Ok(()),
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(()),
                    }
                };
                let (closed, bytes) = received
                    .map_err(|()| ParquetError::General("an encoder thread stopped".into()))??;
                held += bytes;
                for (&column, chunk) in encoder.columns.iter().zip(closed) {
                    chunks[column] = Some(chunk);
                }
            }
            let mut row_group = self.file.next_row_group()?;
            for chunk in chunks {
                chunk
                    .ok_or_else(|| ParquetError::General("a column chunk is missing".into()))?
                    .append_to_row_group(&mut row_group)?;
            }
            row_group.close()?;
            self.buffered.fetch_sub(held, Ordering::Relaxed);
            self.pending.pop_front();
        }
        Ok(())
    }

    /// Encodes what is left, writes every row group and the footer; returns the file.
    pub(crate) fn finish(mut self) -> Result<SyncingFile> {
        if self.rows_in_group > 0 {
            self.close_row_group()?;
        }
        self.append_ready(true)?;
        drop(self.encoders);
        // Writes the footer, then hands the file back.
        self.file.into_inner()
    }

    /// Bytes the encoders hold: queued batches, and encoded pages of row groups not yet
    /// written (closed or not).
    pub(crate) fn memory_size(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }
}
