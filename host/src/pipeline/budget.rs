//! The memory budget: every Arrow allocation held by a batch in flight is charged once
//! (a buffer shared by several arrays or batches counts once), plus what components report
//! through `memory_usage()`. The source thread waits before admitting a batch that would
//! exceed the budget; everything else charges without waiting, so no stage can deadlock on
//! memory.
//!
//! What components hold without reporting it (decoder and encoder state, compression
//! contexts, the allocator's free lists) is not in that account, so the source also waits
//! while the process's resident memory (all of it, as `ps` and `time` report it: its code
//! and the pages of files it maps too) and the room the batch needs would exceed the
//! budget, keeping one batch per worker in flight so that the workers stay busy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayData, RecordBatch};

/// The allocations a batch holds, to hand back with [`MemoryBudget::release`].
#[derive(Debug, Default)]
#[must_use = "a charge must be released, or the budget leaks"]
pub struct Charge {
    allocations: Vec<usize>,
}

/// Why a batch was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitError {
    /// The batch alone is larger than the whole budget.
    TooLarge {
        /// The batch's bytes.
        bytes: u64,
        /// The budget.
        budget: u64,
    },
    /// The run was cancelled while waiting.
    Cancelled,
}

#[derive(Debug, Default)]
struct State {
    /// Allocation address → (capacity, batches holding it).
    allocations: HashMap<usize, (u64, u32)>,
    batch_bytes: u64,
    component_bytes: HashMap<usize, u64>,
    peak: u64,
    under_pressure: bool,
    pressure_events: u64,
    /// The last reading of the process's resident memory, and when it was taken.
    resident: Option<(Instant, Option<u64>)>,
}

impl State {
    fn used(&self) -> u64 {
        self.batch_bytes + self.component_bytes.values().sum::<u64>()
    }
}

/// How long a reading of the process's resident memory serves admissions.
const RESIDENT_REFRESH: Duration = Duration::from_millis(5);

/// Accounts the bytes in flight against a limit.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    state: Mutex<State>,
    changed: Condvar,
    /// The process's resident memory now, where the platform tells it.
    resident: fn() -> Option<u64>,
}

/// The allocations (address, capacity) a batch references, each once.
pub fn allocations(batch: &RecordBatch) -> Vec<(usize, u64)> {
    fn walk(data: &ArrayData, out: &mut Vec<(usize, u64)>) {
        for buffer in data.buffers() {
            out.push((
                buffer.data_ptr().as_ptr() as usize,
                buffer.capacity() as u64,
            ));
        }
        if let Some(nulls) = data.nulls() {
            let buffer = nulls.buffer();
            out.push((
                buffer.data_ptr().as_ptr() as usize,
                buffer.capacity() as u64,
            ));
        }
        for child in data.child_data() {
            walk(child, out);
        }
    }
    let mut out = Vec::new();
    for column in batch.columns() {
        walk(&column.to_data(), &mut out);
    }
    out.sort_unstable();
    out.dedup_by_key(|(address, _)| *address);
    out
}

/// The bytes a batch's allocations take, each counted once.
pub fn batch_bytes(batch: &RecordBatch) -> u64 {
    allocations(batch)
        .iter()
        .map(|(_, capacity)| capacity)
        .sum()
}

impl MemoryBudget {
    /// A budget of `limit` bytes, for this process.
    pub fn new(limit: u64) -> MemoryBudget {
        MemoryBudget::with_resident(limit, process_rss)
    }

    /// A budget of `limit` bytes that reads the process's resident memory with `resident`.
    pub fn with_resident(limit: u64, resident: fn() -> Option<u64>) -> MemoryBudget {
        MemoryBudget {
            limit,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            resident,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The configured limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The limit in force now: halved while the machine is short of memory.
    fn effective_limit(&self, state: &State) -> u64 {
        if state.under_pressure {
            self.limit / 2
        } else {
            self.limit
        }
    }

    fn new_bytes(state: &State, allocations: &[(usize, u64)]) -> u64 {
        allocations
            .iter()
            .filter(|(address, _)| !state.allocations.contains_key(address))
            .map(|(_, capacity)| capacity)
            .sum()
    }

    fn add(state: &mut State, allocations: Vec<(usize, u64)>) -> Charge {
        let mut charge = Charge::default();
        for (address, capacity) in allocations {
            let entry = state.allocations.entry(address).or_insert((capacity, 0));
            if entry.1 == 0 {
                state.batch_bytes += capacity;
            }
            entry.1 += 1;
            charge.allocations.push(address);
        }
        state.peak = state.peak.max(state.used());
        charge
    }

    /// Charges a batch, waiting while admitting it would exceed the budget, keeping room for
    /// `reserve` more batches of its size (the outputs the workers will charge without
    /// waiting), or while the process's resident memory, that room and the next batch the
    /// source decodes would exceed it and `reserve` batches of its size are in flight
    /// already. A batch is always admitted when nothing else is in flight, unless it alone
    /// exceeds the budget.
    pub fn admit(
        &self,
        batch: &RecordBatch,
        reserve: u64,
        cancelled: &AtomicBool,
    ) -> Result<Charge, AdmitError> {
        let allocations = allocations(batch);
        let mut state = self.lock();
        loop {
            let new = Self::new_bytes(&state, &allocations);
            if new > self.limit {
                return Err(AdmitError::TooLarge {
                    bytes: new,
                    budget: self.limit,
                });
            }
            let needed = new.saturating_mul(1 + reserve);
            // Resident memory grows after an admission by more than what is charged: the
            // next batch the source decodes meanwhile is memory too.
            let resident_needed = needed.saturating_add(new);
            let limit = self.effective_limit(&state);
            if state.batch_bytes == 0
                || (state.used() + needed <= limit
                    && (state.batch_bytes < new.saturating_mul(reserve)
                        || self
                            .resident(&mut state)
                            .is_none_or(|resident| resident + resident_needed <= limit)))
            {
                return Ok(Self::add(&mut state, allocations));
            }
            if cancelled.load(Ordering::Acquire) {
                return Err(AdmitError::Cancelled);
            }
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// The process's resident memory, read again when the last reading is older than
    /// [`RESIDENT_REFRESH`] (reading it costs a read of `/proc`, too much for every one of
    /// many small batches).
    fn resident(&self, state: &mut State) -> Option<u64> {
        match state.resident {
            Some((at, resident)) if at.elapsed() < RESIDENT_REFRESH => resident,
            _ => {
                let resident = (self.resident)();
                state.resident = Some((Instant::now(), resident));
                resident
            }
        }
    }

    /// Charges a batch without waiting (batches made from admitted ones).
    pub fn charge(&self, batch: &RecordBatch) -> Charge {
        let allocations = allocations(batch);
        Self::add(&mut self.lock(), allocations)
    }

    /// Hands back what a batch held.
    pub fn release(&self, charge: Charge) {
        let mut state = self.lock();
        for address in charge.allocations {
            if let Some(entry) = state.allocations.get_mut(&address) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    let capacity = entry.0;
                    state.allocations.remove(&address);
                    state.batch_bytes -= capacity;
                }
            }
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Records what the components of one stage slot report holding.
    pub fn set_component_usage(&self, slot: usize, bytes: u64) {
        let mut state = self.lock();
        state.component_bytes.insert(slot, bytes);
        state.peak = state.peak.max(state.used());
        drop(state);
        self.changed.notify_all();
    }

    /// Switches the pressure mode: while the machine is short of memory the in-flight
    /// window is halved.
    pub fn set_pressure(&self, under_pressure: bool) {
        let mut state = self.lock();
        if under_pressure && !state.under_pressure {
            state.pressure_events += 1;
        }
        state.under_pressure = under_pressure;
        drop(state);
        self.changed.notify_all();
    }

    /// Bytes in flight now, and the most there were.
    pub fn usage(&self) -> (u64, u64) {
        let state = self.lock();
        (state.used(), state.peak)
    }

    /// How many times memory pressure shrank the window.
    pub fn pressure_events(&self) -> u64 {
        self.lock().pressure_events
    }
}

/// The most resident memory the process has had (`VmHWM` of `/proc/self/status`): what
/// `/usr/bin/time` reports as maximum resident set size. `None` where there is no procfs.
pub fn process_peak_rss() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// The process's resident memory now (`VmRSS` of `/proc/self/status`): its anonymous
/// pages, its code, and the pages of files it maps (a source that maps its input gives back
/// the pages it is done with). `None` where there is no procfs.
pub fn process_rss() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

/// A `kB` figure of `/proc/self/status`, by its label.
fn status_kib(label: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(label))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()
}

/// Reads how much memory the machine (or the cgroup the process runs in) has available.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)?;
    let cgroup = || -> Option<u64> {
        let read = |name: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{name}")).ok();
        let max = read("memory.max")?.trim().parse::<u64>().ok()?;
        let current = read("memory.current")?.trim().parse::<u64>().ok()?;
        Some(max.saturating_sub(current))
    };
    Some(cgroup().map_or(available, |left| left.min(available)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use arrow::array::{ArrayRef, Float64Array};

    use super::*;

    /// A budget that only counts what it is charged (the test process's own memory is
    /// over these small budgets).
    fn accounting_only(limit: u64) -> MemoryBudget {
        MemoryBudget::with_resident(limit, || None)
    }

    fn batch(rows: usize) -> RecordBatch {
        let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0; rows]));
        RecordBatch::try_from_iter([("a", values.clone()), ("b", values)]).unwrap()
    }

    #[test]
    fn a_buffer_shared_by_two_columns_and_two_batches_counts_once() {
        let budget = accounting_only(1 << 20);
        let first = batch(1000);
        let bytes = batch_bytes(&first);
        assert!((8000..9000).contains(&bytes), "{bytes}");
        let slice = first.slice(10, 20);
        let not_cancelled = AtomicBool::new(false);
        let a = budget.admit(&first, 0, &not_cancelled).unwrap();
        let b = budget.admit(&slice, 0, &not_cancelled).unwrap();
        assert_eq!(budget.usage().0, bytes);
        budget.release(a);
        assert_eq!(budget.usage().0, bytes);
        budget.release(b);
        assert_eq!(budget.usage(), (0, bytes));
    }

    #[test]
    fn a_batch_larger_than_the_budget_is_refused() {
        let budget = accounting_only(1000);
        let error = budget
            .admit(&batch(1000), 0, &AtomicBool::new(false))
            .unwrap_err();
        assert!(
            matches!(error, AdmitError::TooLarge { budget: 1000, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn admission_waits_for_room_and_stops_when_cancelled() {
        let budget = Arc::new(accounting_only(10_000));
        let cancelled = Arc::new(AtomicBool::new(false));
        let first = batch(1000);
        let held = budget.admit(&first, 0, &cancelled).unwrap();
        let waiter = {
            let (budget, cancelled) = (budget.clone(), cancelled.clone());
            std::thread::spawn(move || {
                let second = batch(1000);
                budget
                    .admit(&second, 0, &cancelled)
                    .map(|c| budget.release(c))
            })
        };
        budget.release(held);
        assert!(waiter.join().unwrap().is_ok());
        let held = budget.admit(&first, 0, &cancelled).unwrap();
        let waiter = {
            let (budget, cancelled) = (budget.clone(), cancelled.clone());
            std::thread::spawn(move || {
                let second = batch(1000);
                budget.admit(&second, 0, &cancelled).map(|_| ())
            })
        };
        cancelled.store(true, Ordering::Release);
        assert_eq!(waiter.join().unwrap(), Err(AdmitError::Cancelled));
        budget.release(held);
    }

    #[test]
    fn pressure_halves_the_window() {
        let budget = accounting_only(38_000);
        let not_cancelled = AtomicBool::new(false);
        budget.set_pressure(true);
        // Charges are by address: the batches must stay alive while charged.
        let (small, large) = (batch(1000), batch(1500));
        let held = budget.admit(&small, 0, &not_cancelled).unwrap();
        let cancelled = AtomicBool::new(true);
        assert_eq!(
            budget.admit(&large, 0, &cancelled).unwrap_err(),
            AdmitError::Cancelled
        );
        budget.set_pressure(false);
        let second = budget.admit(&large, 0, &not_cancelled).unwrap();
        assert_eq!(budget.pressure_events(), 1);
        budget.release(held);
        budget.release(second);
    }

    #[test]
    fn a_process_over_its_budget_keeps_only_reserve_batches_in_flight() {
        // The accounting has room for all three batches; the process, by its own count,
        // is far over the budget.
        let budget = MemoryBudget::with_resident(1 << 30, || Some(1 << 40));
        let not_cancelled = AtomicBool::new(false);
        let (first, second, third) = (batch(1000), batch(1000), batch(1000));
        // Nothing in flight: admitted whatever the process holds.
        let a = budget.admit(&first, 2, &not_cancelled).unwrap();
        // One batch in flight, fewer than the reserve of 2: admitted.
        let b = budget.admit(&second, 2, &not_cancelled).unwrap();
        // Two in flight: the third waits (here: until cancelled).
        let cancelled = AtomicBool::new(true);
        assert_eq!(
            budget.admit(&third, 2, &cancelled).unwrap_err(),
            AdmitError::Cancelled
        );
        budget.release(b);
        let c = budget.admit(&third, 2, &not_cancelled).unwrap();
        budget.release(a);
        budget.release(c);

        // A process within its budget, or one whose memory is unknown: only the
        // accounting counts.
        for resident in [(|| Some(0)) as fn() -> Option<u64>, || None] {
            let budget = MemoryBudget::with_resident(1 << 30, resident);
            let held: Vec<Charge> = [&first, &second, &third]
                .into_iter()
                .map(|batch| budget.admit(batch, 1, &cancelled).unwrap())
                .collect();
            held.into_iter().for_each(|charge| budget.release(charge));
        }
    }

    #[test]
    fn the_process_keeps_room_for_the_outputs_and_the_next_batch() {
        // The process's resident memory leaves room for three or for two batches; the
        // accounting has room for many. With one batch in flight and a reserve of one, a
        // second batch needs room for itself, its worker's output and the next batch the
        // source decodes.
        static RESIDENT: AtomicU64 = AtomicU64::new(0);
        let limit = 1 << 30;
        let (first, second) = (batch(1000), batch(1000));
        let bytes = batch_bytes(&second);
        let not_cancelled = AtomicBool::new(false);
        let cancelled = AtomicBool::new(true);
        for (room, admitted) in [(3, true), (2, false)] {
            RESIDENT.store(limit - room * bytes, Ordering::Relaxed);
            let budget =
                MemoryBudget::with_resident(limit, || Some(RESIDENT.load(Ordering::Relaxed)));
            let held = budget.admit(&first, 1, &not_cancelled).unwrap();
            match budget.admit(&second, 1, &cancelled) {
                Ok(charge) => {
                    assert!(admitted, "admitted with room for {room} batches");
                    budget.release(charge);
                }
                Err(error) => {
                    assert!(!admitted, "refused with room for {room} batches");
                    assert_eq!(error, AdmitError::Cancelled);
                }
            }
            budget.release(held);
        }
    }

    #[test]
    fn the_process_resident_memory_is_read_from_proc() {
        let resident = process_rss().expect("/proc/self/status has VmRSS on Linux");
        let peak = process_peak_rss().expect("/proc/self/status has VmHWM on Linux");
        assert!(resident > 0 && resident <= peak, "{resident} {peak}");
    }

    #[test]
    fn available_memory_is_read_from_proc() {
        let available = available_memory().expect("/proc/meminfo is readable on Linux");
        assert!(available > 0);
    }
}
