//! Running a list of independent tasks on a few scoped threads.
//!
//! The host owns the cores, so the reader starts no thread pool: each call borrows
//! `threads - 1` scoped threads for as long as the tasks take, and the calling thread works
//! too. Threads take the tasks in list order, so long tasks belong at the front.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `work` on every task, on up to `threads` threads (the calling one included), and
/// returns the results in task order.
pub(crate) fn run<T, R, F>(threads: usize, tasks: Vec<T>, work: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let threads = threads.min(tasks.len());
    if threads <= 1 {
        return tasks.into_iter().map(work).collect();
    }
    let slots: Vec<Mutex<Option<T>>> = tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = slots.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let drain = || {
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(index) else {
                break;
            };
            let task = lock(slot).take();
            if let Some(task) = task {
                let result = work(task);
                *lock(&results[index]) = Some(result);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(drain);
        }
        drain();
    });
    results
        .into_iter()
        .filter_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// Locks a mutex; a poisoned one (a task panicked, which `thread::scope` re-raises anyway)
/// is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The number of threads a `threads` config value asks for: 0 means one per core.
pub(crate) fn resolve_threads(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_task_order() {
        for threads in [1, 2, 5] {
            let squares = run(threads, (0..100u64).collect(), |x| x * x);
            assert_eq!(squares, (0..100u64).map(|x| x * x).collect::<Vec<_>>());
        }
        assert!(run(4, Vec::<u8>::new(), |x| x).is_empty());
    }
}
