//! What the engine measures while it runs: per stage, rows, bytes, batches, time busy in
//! the component, time blocked waiting for input and for room downstream, a latency
//! histogram; queue depths; memory in flight. Read live by the progress display and the
//! Prometheus endpoint, and summarized in the final report with the bottleneck named.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Histogram buckets: 8 per power of two of nanoseconds (≈ 9 % wide), up to ~2^48 ns.
const SUB_BUCKETS: u32 = 8;
const BUCKETS: usize = 48 * SUB_BUCKETS as usize;

/// A lock-free latency histogram.
#[derive(Debug)]
pub struct Histogram {
    counts: Vec<AtomicU64>,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn bucket_of(nanos: u64) -> usize {
    let nanos = nanos.max(1) as f64;
    ((nanos.log2() * SUB_BUCKETS as f64) as usize).min(BUCKETS - 1)
}

fn upper_bound(bucket: usize) -> Duration {
    Duration::from_nanos(2f64.powf((bucket + 1) as f64 / SUB_BUCKETS as f64) as u64)
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
    }

    /// The `q`-quantile (0..=1), as the upper bound of its bucket (≤ 9 % over).
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        counts.iter().enumerate().find_map(|(bucket, count)| {
            seen += count;
            (seen >= rank).then(|| upper_bound(bucket))
        })
    }
}

/// The counters of one stage.
#[derive(Debug, Default)]
pub struct StageMetrics {
    /// Rows out of the stage.
    pub rows: AtomicU64,
    /// Arrow bytes out of the stage.
    pub bytes: AtomicU64,
    /// Batches out of the stage.
    pub batches: AtomicU64,
    /// Nanoseconds inside component calls.
    pub busy_nanos: AtomicU64,
    /// Nanoseconds blocked waiting for input.
    pub wait_input_nanos: AtomicU64,
    /// Nanoseconds blocked waiting for room downstream (backpressure, memory budget).
    pub wait_output_nanos: AtomicU64,
    /// Per-batch latency of the component call.
    pub latency: Histogram,
}

fn add(counter: &AtomicU64, duration: Duration) {
    counter.fetch_add(
        u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

impl StageMetrics {
    /// Records one batch through the stage.
    pub fn record_batch(&self, rows: usize, bytes: u64, busy: Duration) {
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        add(&self.busy_nanos, busy);
        self.latency.record(busy);
    }

    /// Records time inside the component outside a batch (schema, flush).
    pub fn record_busy(&self, busy: Duration) {
        add(&self.busy_nanos, busy);
    }

    /// Records time blocked waiting for input.
    pub fn record_wait_input(&self, waited: Duration) {
        add(&self.wait_input_nanos, waited);
    }

    /// Records time blocked waiting for room downstream.
    pub fn record_wait_output(&self, waited: Duration) {
        add(&self.wait_output_nanos, waited);
    }

    fn snapshot(&self, name: &str, threads: usize, wall: Duration) -> StageReport {
        let seconds = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64 / 1e9;
        let wall = wall.as_secs_f64().max(1e-9);
        let rows = self.rows.load(Ordering::Relaxed);
        let busy = seconds(&self.busy_nanos);
        StageReport {
            stage: name.to_string(),
            threads,
            rows,
            bytes: self.bytes.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            rows_per_second: rows as f64 / wall,
            busy_seconds: busy,
            wait_input_seconds: seconds(&self.wait_input_nanos),
            wait_output_seconds: seconds(&self.wait_output_nanos),
            utilization: busy / (wall * threads as f64),
            latency_p50_ms: self.latency.quantile(0.5).map(|d| d.as_secs_f64() * 1e3),
            latency_p99_ms: self.latency.quantile(0.99).map(|d| d.as_secs_f64() * 1e3),
        }
    }
}

/// A gauge with its maximum.
#[derive(Debug, Default)]
pub struct Gauge {
    current: AtomicU64,
    max: AtomicU64,
}

impl Gauge {
    /// Sets the current value.
    pub fn set(&self, value: u64) {
        self.current.store(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// Raises the recorded maximum to at least `value`.
    pub fn raise_max(&self, value: u64) {
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// The current value and the largest seen.
    pub fn get(&self) -> (u64, u64) {
        (
            self.current.load(Ordering::Relaxed),
            self.max.load(Ordering::Relaxed),
        )
    }
}

/// Every live metric of a run.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The source thread.
    pub source: StageMetrics,
    /// The transform workers, together.
    pub transforms: StageMetrics,
    /// The sink thread.
    pub sink: StageMetrics,
    /// Batches waiting for a transform worker.
    pub transform_queue: Gauge,
    /// Batches waiting for the sink (output queue and reorder buffer).
    pub sink_queue: Gauge,
    /// Transform workers allowed to run now (the pool adapts).
    pub active_workers: Gauge,
    /// Nanoseconds of worker time the adaptive pool kept parked (summed over workers).
    pub parked_worker_nanos: AtomicU64,
    /// Concatenations served from pooled buffers, and those that had to allocate.
    pub pool_reused: AtomicU64,
    /// See `pool_reused`.
    pub pool_allocated: AtomicU64,
    /// Bytes in flight now and at most (from the memory budget).
    pub memory: Gauge,
    /// Times memory pressure shrank the in-flight window.
    pub pressure_events: AtomicU64,
}

/// One stage in the final report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageReport {
    /// `source`, `transforms` or `sink`.
    pub stage: String,
    /// Threads that ran it.
    pub threads: usize,
    /// Rows out.
    pub rows: u64,
    /// Arrow bytes out.
    pub bytes: u64,
    /// Batches out.
    pub batches: u64,
    /// Rows out per second of wall time.
    pub rows_per_second: f64,
    /// Seconds inside component calls (summed over threads).
    pub busy_seconds: f64,
    /// Seconds blocked waiting for input.
    pub wait_input_seconds: f64,
    /// Seconds blocked waiting for room downstream.
    pub wait_output_seconds: f64,
    /// Busy time over wall time × threads.
    pub utilization: f64,
    /// Median per-batch latency.
    pub latency_p50_ms: Option<f64>,
    /// 99th-percentile per-batch latency.
    pub latency_p99_ms: Option<f64>,
}

/// The final report of a run (`--metrics-json` writes it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Wall time of the run.
    pub elapsed_seconds: f64,
    /// Rows the source produced.
    pub rows_read: u64,
    /// Rows the sink consumed.
    pub rows_written: u64,
    /// Arrow bytes the sink consumed.
    pub bytes_written: u64,
    /// Batches the sink consumed.
    pub batches_written: u64,
    /// Per stage.
    pub stages: Vec<StageReport>,
    /// The memory budget.
    pub memory_budget_bytes: u64,
    /// The most bytes in flight at once.
    pub memory_peak_bytes: u64,
    /// The process's peak resident memory so far (all it holds: batches, components'
    /// buffers, libraries, allocator slack), where the system tells it.
    pub process_peak_rss_bytes: Option<u64>,
    /// The deepest the transform input queue got.
    pub transform_queue_max: u64,
    /// The deepest the sink's input got.
    pub sink_queue_max: u64,
    /// Concatenations that reused a pooled buffer.
    pub pool_reused: u64,
    /// Concatenations that allocated a new pooled buffer.
    pub pool_allocated: u64,
    /// Times memory pressure shrank the in-flight window.
    pub memory_pressure_events: u64,
    /// Worker-seconds the adaptive pool kept parked so the source could use their cores.
    pub parked_worker_seconds: f64,
    /// Under-aligned plugin buffers that were copied on import.
    pub realigned_buffers: u64,
    /// The stage that limited throughput, and why.
    pub bottleneck: String,
    /// The fit passes that ran before this one (empty when nothing needed fitting).
    pub fit_passes: Vec<PassReport>,
    /// The named counts components reported (rows skipped, rule violations, ...).
    pub counters: Vec<CounterReport>,
}

/// One fit pass over the data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassReport {
    /// `fit 1`, `fit 2`, ...
    pub pass: String,
    /// The stages fitted in this pass.
    pub fitted: Vec<String>,
    /// Rows the source produced.
    pub rows_read: u64,
    /// Wall time of the pass.
    pub elapsed_seconds: f64,
    /// Whether the pass kept the source's batches for the later passes, and how much.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spill: Option<super::spill::SpillOutcome>,
}

/// A named count from a component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterReport {
    /// `source`, `transform[i]`, `sink`.
    pub stage: String,
    /// The component's name.
    pub component: String,
    /// What is counted.
    pub name: String,
    /// The count (for transforms, summed over the workers' instances).
    pub value: u64,
}

impl Metrics {
    /// A report of the run so far (live, or final when the run is over).
    pub fn report(&self, wall: Duration, workers: usize, memory_budget: u64) -> Report {
        let stages = self.stages(workers, wall);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Report {
            elapsed_seconds: wall.as_secs_f64(),
            rows_read: load(&self.source.rows),
            rows_written: load(&self.sink.rows),
            bytes_written: load(&self.sink.bytes),
            batches_written: load(&self.sink.batches),
            bottleneck: bottleneck(&stages, wall),
            stages,
            memory_budget_bytes: memory_budget,
            memory_peak_bytes: self.memory.get().1,
            process_peak_rss_bytes: super::budget::process_peak_rss(),
            transform_queue_max: self.transform_queue.get().1,
            sink_queue_max: self.sink_queue.get().1,
            pool_reused: load(&self.pool_reused),
            pool_allocated: load(&self.pool_allocated),
            memory_pressure_events: load(&self.pressure_events),
            parked_worker_seconds: load(&self.parked_worker_nanos) as f64 / 1e9,
            realigned_buffers: mlpipe_plugin_api::ffi::realigned_buffers() as u64,
            fit_passes: Vec::new(),
            counters: Vec::new(),
        }
    }

    /// Snapshots the stages (transform workers counted as `workers` threads).
    pub fn stages(&self, workers: usize, wall: Duration) -> Vec<StageReport> {
        vec![
            self.source.snapshot("source", 1, wall),
            self.transforms.snapshot("transforms", workers.max(1), wall),
            self.sink.snapshot("sink", 1, wall),
        ]
    }
}

/// Names the stage that limited throughput: the busiest one, with how long the stage
/// before it waited on it (or, for the source, how long the others waited for input).
pub fn bottleneck(stages: &[StageReport], wall: Duration) -> String {
    let Some((index, busiest)) = stages
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.utilization.total_cmp(&b.1.utilization))
    else {
        return "no stage ran".to_string();
    };
    let wall = wall.as_secs_f64().max(1e-9);
    let share = |seconds: f64, threads: usize| 100.0 * seconds / (wall * threads as f64);
    let threads = if busiest.threads > 1 {
        format!(" across {} workers", busiest.threads)
    } else {
        String::new()
    };
    let mut text = format!(
        "{}: busy {:.0}% of the time{threads}",
        busiest.stage,
        100.0 * busiest.utilization
    );
    if let Some(upstream) = index.checked_sub(1).map(|i| &stages[i]) {
        text += &format!(
            ", {} waited on it {:.0}%",
            upstream.stage,
            share(upstream.wait_output_seconds, upstream.threads)
        );
    }
    if let Some(downstream) = stages.get(index + 1) {
        text += &format!(
            ", {} waited for input {:.0}%",
            downstream.stage,
            share(downstream.wait_input_seconds, downstream.threads)
        );
    }
    text
}

impl Report {
    /// The report in the Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
            out += &format!("# HELP mlpipe_{name} {help}\n# TYPE mlpipe_{name} {kind}\n");
            for (labels, value) in samples {
                out += &format!("mlpipe_{name}{labels} {value}\n");
            }
        };
        let per_stage = |f: &dyn Fn(&StageReport) -> f64| -> Vec<(String, f64)> {
            self.stages
                .iter()
                .map(|s| (format!("{{stage=\"{}\"}}", s.stage), f(s)))
                .collect()
        };
        metric(
            "rows_total",
            "counter",
            "Rows out of each stage.",
            per_stage(&|s| s.rows as f64),
        );
        metric(
            "bytes_total",
            "counter",
            "Arrow bytes out of each stage.",
            per_stage(&|s| s.bytes as f64),
        );
        metric(
            "batches_total",
            "counter",
            "Batches out of each stage.",
            per_stage(&|s| s.batches as f64),
        );
        metric(
            "busy_seconds_total",
            "counter",
            "Seconds inside component calls.",
            per_stage(&|s| s.busy_seconds),
        );
        metric(
            "wait_input_seconds_total",
            "counter",
            "Seconds blocked waiting for input.",
            per_stage(&|s| s.wait_input_seconds),
        );
        metric(
            "wait_output_seconds_total",
            "counter",
            "Seconds blocked waiting for room downstream.",
            per_stage(&|s| s.wait_output_seconds),
        );
        metric(
            "batch_latency_p50_seconds",
            "gauge",
            "Median per-batch latency.",
            per_stage(&|s| s.latency_p50_ms.unwrap_or(0.0) / 1e3),
        );
        metric(
            "batch_latency_p99_seconds",
            "gauge",
            "99th-percentile per-batch latency.",
            per_stage(&|s| s.latency_p99_ms.unwrap_or(0.0) / 1e3),
        );
        metric(
            "memory_budget_bytes",
            "gauge",
            "The memory budget.",
            vec![(String::new(), self.memory_budget_bytes as f64)],
        );
        metric(
            "memory_peak_bytes",
            "gauge",
            "Most bytes in flight at once.",
            vec![(String::new(), self.memory_peak_bytes as f64)],
        );
        if let Some(rss) = self.process_peak_rss_bytes {
            metric(
                "process_peak_rss_bytes",
                "gauge",
                "The process's peak resident memory so far.",
                vec![(String::new(), rss as f64)],
            );
        }
        metric(
            "pool_reused_total",
            "counter",
            "Concatenations that reused a pooled buffer.",
            vec![(String::new(), self.pool_reused as f64)],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let histogram = Histogram::default();
        for micros in 1..=1000 {
            histogram.record(Duration::from_micros(micros));
        }
        let p50 = histogram.quantile(0.5).unwrap().as_secs_f64() * 1e6;
        let p99 = histogram.quantile(0.99).unwrap().as_secs_f64() * 1e6;
        assert!((500.0..=500.0 * 1.1).contains(&p50), "{p50}");
        assert!((990.0..=990.0 * 1.1).contains(&p99), "{p99}");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn the_bottleneck_is_the_busiest_stage() {
        let metrics = Metrics::default();
        let wall = Duration::from_secs(10);
        metrics.source.record_batch(10, 80, Duration::from_secs(2));
        metrics
            .transforms
            .record_batch(10, 80, Duration::from_secs(4));
        metrics
            .transforms
            .record_wait_output(Duration::from_secs(12));
        metrics
            .sink
            .record_batch(10, 80, Duration::from_millis(9700));
        let stages = metrics.stages(2, wall);
        assert_eq!(
            bottleneck(&stages, wall),
            "sink: busy 97% of the time, transforms waited on it 60%"
        );
    }
}
