//! Row order and sampling:
//!
//! - `shuffle`: a seeded shuffle buffer of `buffer_rows` rows (tf.data's `shuffle`):
//!   incoming rows join the buffer; once it is full, each incoming batch makes as many
//!   rows leave, drawn at random from the buffer (the newcomers included); at the end of
//!   the input (`finish`) the rest leave in random order. A row can move up to about
//!   `buffer_rows` rows from where it was. Memory: the buffer's rows (the batches they came
//!   in are held until they are compacted, at twice the buffer). The order depends on the
//!   seed and on how batches reach this instance: it is reproducible with `workers = 1`
//!   (each worker shuffles its own share).
//! - `sample`: keeps each row with probability `fraction`. With `key` (a row id column) the
//!   decision is a function of the seed and the row's key (see `random`): the same rows are
//!   kept in every run, whatever the workers; without it, of the seed and the row's position
//!   in this instance's input (reproducible with `workers = 1`).

use mlpipe_plugin_api::arrow::array::BooleanArray;
use mlpipe_plugin_api::arrow::compute::interleave_record_batch;
use mlpipe_plugin_api::{
    ColumnUsage, Config, ConfigKey, ConfigType, Counters, Error, RecordBatch, Result, SchemaRef,
    Transform,
};

use crate::filter::Tally;
use crate::hashing::KEYS;
use crate::random::Stream;
use crate::split::row_hashes;

/// The config keys of `shuffle`.
pub(crate) fn shuffle_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "buffer_rows",
            ConfigType::Integer,
            "rows held in the shuffle buffer (more: better mixed, more memory)",
        )
        .default(65_536),
        ConfigKey::new("seed", ConfigType::Integer, "the random seed").default(0),
    ]
}

/// The config keys of `sample`.
pub(crate) fn sample_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::new(
            "fraction",
            ConfigType::Float,
            "the probability that a row is kept",
        )
        .required(),
        ConfigKey::new(
            "key",
            ConfigType::String,
            "a row id column (string or integer): the same rows are kept whatever the workers",
        ),
        ConfigKey::new("seed", ConfigType::Integer, "the random seed").default(0),
    ]
}

/// Every column of `input`: reordering or dropping rows changes them all.
fn all_columns(input: &SchemaRef) -> Vec<String> {
    input.fields().iter().map(|f| f.name().clone()).collect()
}

/// A seeded shuffle buffer.
pub(crate) struct Shuffle {
    capacity: usize,
    stream: Stream,
    draws: u64,
    /// The batches rows of the buffer are in.
    batches: Vec<RecordBatch>,
    /// The buffer: (batch, row) of each row.
    slots: Vec<(usize, usize)>,
}

impl Shuffle {
    /// Builds the transform from its validated config.
    pub(crate) fn from_config(config: &Config) -> Result<Shuffle> {
        let capacity: u64 = config.require("buffer_rows")?;
        if capacity == 0 {
            return Err(Error::config(
                "key `buffer_rows` of transform `shuffle` must be at least 1",
            ));
        }
        Ok(Shuffle {
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
            stream: Stream::new(config.require("seed")?, 0),
            draws: 0,
            batches: Vec::new(),
            slots: Vec::new(),
        })
    }

    /// A uniform index below `n`.
    fn index_below(&mut self, n: usize) -> usize {
        self.draws += 1;
        (self.stream.word(self.draws, 0, 0) % n as u64) as usize
    }

    /// Takes `n` rows drawn at random out of the buffer.
    fn draw(&mut self, n: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n.min(self.slots.len()) {
            let i = self.index_below(self.slots.len());
            out.push(self.slots.swap_remove(i));
        }
        out
    }

    /// The batch of the given rows, in that order.
    fn gather(&self, schema: &SchemaRef, rows: &[(usize, usize)]) -> Result<RecordBatch> {
        if rows.is_empty() {
            return Ok(RecordBatch::new_empty(schema.clone()));
        }
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        Ok(interleave_record_batch(&batches, rows)?)
    }

    /// Copies the buffer's rows into one batch when the held batches hold more than twice
    /// the buffer, so that memory stays bounded.
    fn compact(&mut self, schema: &SchemaRef) -> Result<()> {
        let held: usize = self.batches.iter().map(RecordBatch::num_rows).sum();
        if held <= 2 * self.capacity.max(self.slots.len()) {
            return Ok(());
        }
        let compacted = self.gather(schema, &self.slots)?;
        self.slots = (0..compacted.num_rows()).map(|row| (0, row)).collect();
        self.batches = vec![compacted];
        Ok(())
    }
}

impl Transform for Shuffle {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(input.clone())
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        if batch.num_rows() > 0 {
            let index = self.batches.len();
            self.slots
                .extend((0..batch.num_rows()).map(|row| (index, row)));
            self.batches.push(batch);
        }
        let leaving = self.slots.len().saturating_sub(self.capacity);
        let rows = self.draw(leaving);
        let out = self.gather(&schema, &rows)?;
        self.compact(&schema)?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        let Some(schema) = self.batches.first().map(RecordBatch::schema) else {
            return Ok(None);
        };
        let rows = self.draw(self.slots.len());
        let out = self.gather(&schema, &rows)?;
        self.batches.clear();
        Ok((out.num_rows() > 0).then_some(out))
    }

    fn memory_usage(&self) -> usize {
        self.batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum()
    }

    fn reset(&mut self) -> Result<()> {
        self.batches.clear();
        self.slots.clear();
        Ok(())
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        Ok(Some(ColumnUsage {
            reads: Vec::new(),
            writes: all_columns(input),
        }))
    }
}

/// Keeps a seeded fraction of the rows.
pub(crate) struct Sample {
    fraction: f64,
    key: Option<String>,
    stream: Stream,
    /// Rows seen by this instance (the draw index without a key).
    seen: u64,
    tally: Tally,
}

impl Sample {
    /// Builds the transform from its validated config.
    pub(crate) fn from_config(config: &Config) -> Result<Sample> {
        let fraction: f64 = config.require("fraction")?;
        if !(0.0..=1.0).contains(&fraction) {
            return Err(Error::config(format!(
                "key `fraction` of transform `sample` must be between 0 and 1, not {fraction}"
            )));
        }
        Ok(Sample {
            fraction,
            key: config.get("key")?,
            stream: Stream::new(config.require("seed")?, 0),
            seen: 0,
            tally: Tally::default(),
        })
    }

    fn key_index(&self, input: &SchemaRef) -> Result<Option<usize>> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let index = input.index_of(key).map_err(|_| {
            Error::config(format!(
                "key `key` of transform `sample`: there is no column `{key}`"
            ))
        })?;
        let ty = input.field(index).data_type();
        if !(KEYS.test)(ty) {
            return Err(Error::config(format!(
                "key `key` of transform `sample`: column `{key}` has type {ty}; a key must be \
                 a string or integer column"
            )));
        }
        Ok(Some(index))
    }
}

impl Transform for Sample {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.key_index(input)?;
        Ok(input.clone())
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows: Vec<u64> = match self.key_index(&batch.schema())? {
            Some(index) => row_hashes(batch.column(index).as_ref(), 0, "sample")?,
            None => (self.seen..self.seen + batch.num_rows() as u64).collect(),
        };
        self.seen += batch.num_rows() as u64;
        let keep = BooleanArray::from(
            rows.iter()
                .map(|&row| self.stream.uniform(row, 0, 0) < self.fraction)
                .collect::<Vec<_>>(),
        );
        self.tally.apply(&batch, &keep)
    }

    fn counters(&self) -> Counters {
        self.tally.counters()
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        Ok(Some(ColumnUsage {
            reads: self.key.iter().cloned().collect(),
            writes: all_columns(input),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mlpipe_plugin_api::arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array};
    use mlpipe_plugin_api::arrow::datatypes::Int64Type;
    use serde_json::json;

    use super::*;
    use crate::testing::{batch_of, make};

    fn ids(range: std::ops::Range<i64>) -> RecordBatch {
        batch_of(vec![(
            "id",
            Arc::new(Int64Array::from(range.collect::<Vec<_>>())) as ArrayRef,
        )])
    }

    fn values(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    /// Runs `t` over ids 0..n in batches of `step`, then `finish`.
    fn run(t: &mut dyn Transform, n: i64, step: i64) -> Vec<i64> {
        let mut out = Vec::new();
        for start in (0..n).step_by(step as usize) {
            out.extend(values(
                &t.transform(ids(start..(start + step).min(n))).unwrap(),
            ));
        }
        if let Some(rest) = t.finish().unwrap() {
            out.extend(values(&rest));
        }
        out
    }

    #[test]
    fn shuffle_emits_every_row_once_mixed_and_seeded() {
        let config = json!({"buffer_rows": 1000, "seed": 1});
        let mut t = make("shuffle", &config);
        let out = run(&mut *t, 10_000, 300);
        let mut sorted = out.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10_000).collect::<Vec<_>>());
        assert_ne!(out, sorted);
        // Rows move up to about the buffer's size.
        let displaced = out
            .iter()
            .enumerate()
            .filter(|(i, v)| (**v - *i as i64).abs() > 100)
            .count();
        assert!(displaced > 5_000, "{displaced}");
        assert!(t.memory_usage() == 0);
        assert_eq!(run(&mut *make("shuffle", &config), 10_000, 300), out);
        assert_ne!(
            run(
                &mut *make("shuffle", &json!({"buffer_rows": 1000, "seed": 2})),
                10_000,
                300
            ),
            out
        );
    }

    #[test]
    fn shuffle_memory_stays_bounded() {
        let mut t = make("shuffle", &json!({"buffer_rows": 100}));
        for start in (0..100_000).step_by(1000) {
            t.transform(ids(start..start + 1000)).unwrap();
            // The buffer (100 rows) plus at most twice that, plus the batch in flight.
            assert!(
                t.memory_usage() < 8 * 3_200 + 8 * 1_000 + 4_096,
                "{}",
                t.memory_usage()
            );
        }
    }

    #[test]
    fn sample_by_key_keeps_the_same_rows_whatever_the_batching() {
        let config = json!({"fraction": 0.3, "key": "id", "seed": 4});
        let mut a = make("sample", &config);
        let whole = run(&mut *a, 20_000, 20_000);
        assert!((whole.len() as f64 / 20_000.0 - 0.3).abs() < 0.02);
        let mut b = make("sample", &config);
        assert_eq!(run(&mut *b, 20_000, 777), whole);
        assert_eq!(a.counters()[0].1, whole.len() as u64);
        let mut unkeyed = make("sample", &json!({"fraction": 0.3}));
        let kept = run(&mut *unkeyed, 20_000, 1000);
        assert!((kept.len() as f64 / 20_000.0 - 0.3).abs() < 0.02);
        assert!(crate::testing::try_make("sample", &json!({"fraction": 1.5})).is_err());
        let floats = batch_of(vec![(
            "x",
            Arc::new(Float64Array::from(vec![0.5])) as ArrayRef,
        )]);
        let by_float = make("sample", &json!({"fraction": 0.5, "key": "x"}));
        let error = by_float.output_schema(&floats.schema()).unwrap_err();
        assert!(
            error.message().contains("column `x` has type Float64"),
            "{error}"
        );
    }
}
