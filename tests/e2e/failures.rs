//! The first error anywhere stops the whole run promptly, with an error naming the stage,
//! component, plugin, method, batch and row; no stage deadlocks whatever fails where.

use std::time::{Duration, Instant};

use mlpipe_tests::{run_host, temp_dir, testkit, write_file};

/// What a failing run must finish within, from start to exit, on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(3);

/// Runs the testkit pipeline (`[pipeline]` settings and the source, transform and sink
/// tables' extra lines as given); returns the exit status, stderr (the error and the
/// summary) and the wall time.
fn run(
    settings: &str,
    source: &str,
    transform: &str,
    sink: &str,
) -> (Option<i32>, String, Duration) {
    let dir = temp_dir();
    let pipeline = write_file(
        dir.path(),
        "failing.toml",
        &format!(
            "[pipeline]\n{settings}\n\n[source]\ntype = \"testkit/numbers\"\n{source}\n\n\
             [[transform]]\ntype = \"testkit/passthrough\"\n{transform}\n\n\
             [sink]\ntype = \"testkit/discard\"\n{sink}\n"
        ),
    );
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
                let fault = |this: &str| {
                    if this == stage {
                        format!("fail_at_row = {row}")
                    } else {
                        String::new()
                    }
                };
                let (status, stderr, elapsed) = run(
                    &format!("batch_rows = 100\nworkers = {workers}"),
                    &format!("rows = 1000\n{}", fault("source")),
                    &fault("transform[0]"),
                    &fault("sink"),
                );
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
    for (stage, transform, sink) in [
        ("transform[0]", "fail_at_row = 5000", ""),
        ("sink", "", "fail_at_row = 5000"),
    ] {
        for workers in [1, 4] {
            let (status, stderr, elapsed) = run(
                &format!("batch_rows = 1000\nworkers = {workers}"),
                "endless = true",
                transform,
                sink,
            );
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
    let (status, stderr, _) = run("batch_rows = 100", "rows = 1000", "lie = true", "");
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
    let (status, stderr, elapsed) = run(
        "batch_rows = 1000\nmemory_budget = 4000",
        "rows = 10000",
        "",
        "",
    );
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
    let (status, stderr, _) = run("batch_rows = 100\nworkers = 4", "rows = 1000", "", "");
    assert_eq!(status, Some(0), "{stderr}");
    assert!(
        stderr.contains("done: read 1000 rows, wrote 1000 rows in 10 batches"),
        "{stderr}"
    );
}
