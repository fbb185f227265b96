//! SIGINT and SIGTERM stop a run midway cleanly: exit status 1, a summary of what was
//! processed, and nothing at the output path (the Parquet sink's temporary file is gone
//! too).

use std::process::Stdio;
use std::time::Duration;

use mlpipe_tests::{
    finish, free_local_address, host_command, metric, scrape, send_signal, temp_dir, testkit,
    wait_for, write_file,
};

fn interrupt_a_parquet_run(signal: &str) {
    let dir = temp_dir();
    let output_dir = dir.path().join("out");
    let output_file = output_dir.join("numbers.parquet");
    // Endless and slow: the run lasts until the signal.
    let pipeline = write_file(
        dir.path(),
        "endless.toml",
        &format!(
            "[pipeline]\nbatch_rows = 1000\n\n\
             [source]\ntype = \"testkit/numbers\"\nendless = true\ndelay_ms = 2\n\n\
             [sink]\ntype = \"parquet\"\npath = {output_file:?}\n"
        ),
    );
    let address = free_local_address();
    let child = host_command([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        "run".as_ref(),
        pipeline.as_os_str(),
        "--metrics-addr".as_ref(),
        address.to_string().as_ref(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("cannot start mlpipe-host");
    let sink_rows = "mlpipe_rows_total{stage=\"sink\"}";
    let written_before = wait_for("the sink to write rows", Duration::from_secs(30), || {
        metric(&scrape(address)?, sink_rows).filter(|rows| *rows > 0.0)
    });
    let leftovers = std::fs::read_dir(&output_dir).map_or(0, |entries| entries.count());
    assert_eq!(
        leftovers, 1,
        "the sink writes one temporary file while it runs"
    );

    send_signal(&child, signal);
    let output = finish(child, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "SIG{signal}: {stderr}");
    assert!(
        stderr.contains(
            "failed in run: cancelled: interrupted (SIGINT or SIGTERM); no output was published"
        ),
        "SIG{signal}: {stderr}"
    );
    let written: f64 = stderr
        .split_once("failed: read ")
        .and_then(|(_, rest)| rest.split_once(" rows, wrote "))
        .and_then(|(_, rest)| rest.split_once(" rows"))
        .and_then(|(rows, _)| rows.parse().ok())
        .unwrap_or_else(|| panic!("SIG{signal}: no summary of the rows written in {stderr}"));
    assert!(
        written >= written_before,
        "SIG{signal}: the summary says {written} rows were written, the metrics said {written_before}"
    );
    let left: Vec<_> = std::fs::read_dir(&output_dir)
        .expect("the output directory")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    assert!(left.is_empty(), "SIG{signal} left files behind: {left:?}");
}

#[test]
fn sigint_stops_a_run_midway_and_publishes_nothing() {
    interrupt_a_parquet_run("INT");
}

#[test]
fn sigterm_stops_a_run_midway_and_publishes_nothing() {
    interrupt_a_parquet_run("TERM");
}
