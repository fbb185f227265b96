//! The first error anywhere stops the whole run promptly, with an error naming the stage,
//! component, plugin, method, batch and row; no stage deadlocks whatever fails where.

use std::time::{Duration, Instant};

use mlpipe_tests::{TestkitPipeline, run_host, temp_dir, testkit, write_file};

/// What a failing run must finish within, from start to exit, on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(3);

/// Runs a testkit pipeline; returns the exit status, stderr (the error and the summary)
/// and the wall time.
fn run(pipeline: &TestkitPipeline) -> (Option<i32>, String, Duration) {
    let dir = temp_dir();
    let pipeline = write_file(dir.path(), "failing.toml", &pipeline.toml());
    let testkit = testkit();
    let started = Instant::now();
    let output = run_host([
        "--plugin".as_ref(),
        testkit.as_os_str(),
        "run".as_ref(),
        pipeline.as_os_str(),
    ]);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr, elapsed)
}

#[test]
fn a_failure_in_any_stage_at_the_first_a_middle_or_the_last_batch_stops_the_run() {
    // 1000 rows in batches of 100: row 0 is in batch 0, row 500 in batch 5, row 950 in 9.
    let mut failures = Vec::new();
    for workers in [1, 4] {
        for (stage, component, method) in [
            ("source", "numbers", "next_batch"),
            ("transform[0]", "passthrough", "transform"),
            ("sink", "discard", "consume"),
        ] {
            for row in [0, 500, 950] {
                let (status, stderr, elapsed) = run(&TestkitPipeline::default()
                    .with(
                        "pipeline",
                        &format!("batch_rows = 100\nworkers = {workers}"),
                    )
                    .with("source", "rows = 1000")
                    .with(stage, &format!("fail_at_row = {row}")));
                let expected = format!(
                    "error: {stage} `{component}` (plugin `testkit`) failed in {method} at batch {}: \
                     bad data: testkit: failing at row {row} as configured (rows {row}..{})",
                    row / 100,
                    row + 1
                );
                println!("{stage} failing at row {row}, {workers} workers: exit after {elapsed:?}");
                if status != Some(1) || !stderr.contains(&expected) || elapsed > PROMPTLY {
                    failures.push(format!(
                        "{stage} at row {row} with {workers} workers: status {status:?} after \
                         {elapsed:?}, expected `{expected}` in:\n{stderr}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_failing_transform_or_sink_stops_an_endless_source() {
    for stage in ["transform[0]", "sink"] {
        for workers in [1, 4] {
            let (status, stderr, elapsed) = run(&TestkitPipeline::default()
                .with(
                    "pipeline",
                    &format!("batch_rows = 1000\nworkers = {workers}"),
                )
                .with("source", "endless = true")
                .with(stage, "fail_at_row = 5000"));
            assert_eq!(status, Some(1), "{stage}, {workers} workers: {stderr}");
            assert!(
                stderr.contains(&format!("error: {stage} `")) && stderr.contains("at batch 5:"),
                "{stage}, {workers} workers: {stderr}"
            );
            assert!(
                elapsed < PROMPTLY,
                "{stage}, {workers} workers: took {elapsed:?}"
            );
        }
    }
}

#[test]
fn a_transform_returning_another_schema_than_it_declared_is_an_error() {
    let (status, stderr, _) = run(&TestkitPipeline::default()
        .with("pipeline", "batch_rows = 100")
        .with("source", "rows = 1000")
        .with("transform[0]", "lie = true"));
    assert_eq!(status, Some(1), "{stderr}");
    for expected in [
        "error: transform[0] `passthrough` (plugin `testkit`) failed in transform at batch",
        "bad data: transform returned a batch of schema",
        "\"undeclared\"",
        "but declared",
    ] {
        assert!(
            stderr.contains(expected),
            "expected `{expected}` in {stderr}"
        );
    }
}

#[test]
fn a_batch_larger_than_the_memory_budget_is_an_error_suggesting_a_smaller_batch() {
    // 1000 float64 rows take 8000 bytes; the budget is 4000.
    let (status, stderr, elapsed) = run(&TestkitPipeline::default()
        .with("pipeline", "batch_rows = 1000\nmemory_budget = 4000")
        .with("source", "rows = 10000"));
    assert_eq!(status, Some(1), "{stderr}");
    for expected in [
        "error: source `numbers` (plugin `testkit`) failed in next_batch at batch 0",
        "more than the whole memory_budget of 4000 bytes",
        "lower pipeline.batch_rows (now 1000) or raise pipeline.memory_budget",
    ] {
        assert!(
            stderr.contains(expected),
            "expected `{expected}` in {stderr}"
        );
    }
    assert!(elapsed < PROMPTLY, "took {elapsed:?}");
}

#[test]
fn a_successful_run_still_passes_every_row() {
    // The control for the failures above: the same pipeline without a fault succeeds.
    let (status, stderr, _) = run(&TestkitPipeline::default()
        .with("pipeline", "batch_rows = 100\nworkers = 4")
        .with("source", "rows = 1000"));
    assert_eq!(status, Some(0), "{stderr}");
    assert!(
        stderr.contains("done: read 1000 rows, wrote 1000 rows in 10 batches"),
        "{stderr}"
    );
}
