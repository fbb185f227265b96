//! The run report: `--metrics-json` writes it at the end, `--metrics-addr` serves it live
//! in the Prometheus text format while the run lasts.

use std::process::Stdio;
use std::time::Duration;

use mlpipe_tests::{
    TestkitPipeline, describe, finish, free_local_address, host_command, metric, run_host, scrape,
    send_signal, temp_dir, testkit, wait_for, write_file,
};
use serde_json::Value;

#[test]
fn metrics_json_reports_rows_bytes_stages_memory_and_the_bottleneck() {
    let dir = temp_dir();
    let pipeline = write_file(
        dir.path(),
        "report.toml",
        &TestkitPipeline::default()
            .with(
                "pipeline",
                "batch_rows = 10000\nworkers = 2\nmemory_budget = \"64MiB\"",
            )
            .with("source", "rows = 100000")
            .toml(),
    );
    let report_file = dir.path().join("report.json");
    let output = run_host([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        "run".as_ref(),
        pipeline.as_os_str(),
        "--quiet".as_ref(),
        "--metrics-json".as_ref(),
        report_file.as_os_str(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report_file).expect("the report was written"))
            .expect("the report is JSON");
    assert_eq!(report["rows_read"], 100_000);
    assert_eq!(report["rows_written"], 100_000);
    assert_eq!(report["batches_written"], 10);
    let bytes = report["bytes_written"].as_u64().expect("bytes_written");
    assert!(
        (800_000..=1_000_000).contains(&bytes),
        "{bytes} bytes for 100000 float64"
    );
    assert_eq!(report["memory_budget_bytes"], 64 << 20);
    let peak = report["memory_peak_bytes"]
        .as_u64()
        .expect("memory_peak_bytes");
    assert!((80_000..=64 << 20).contains(&peak), "peak in flight {peak}");
    // The whole process holds more than the batches in flight: libraries, threads.
    let rss = report["process_peak_rss_bytes"]
        .as_u64()
        .expect("process_peak_rss_bytes");
    assert!(rss > peak && rss < 4 << 30, "process peak RSS {rss}");
    let stages = report["stages"].as_array().expect("stages");
    let names: Vec<&str> = stages.iter().filter_map(|s| s["stage"].as_str()).collect();
    assert_eq!(names, ["source", "transforms", "sink"]);
    for stage in stages {
        assert_eq!(stage["rows"], 100_000, "{stage}");
        assert_eq!(stage["batches"], 10, "{stage}");
        assert!(stage["latency_p50_ms"].as_f64().is_some(), "{stage}");
        assert!(
            stage["latency_p99_ms"].as_f64() >= stage["latency_p50_ms"].as_f64(),
            "{stage}"
        );
        assert!(
            stage["busy_seconds"].as_f64().is_some_and(|s| s > 0.0),
            "{stage}"
        );
    }
    assert_eq!(stages[1]["threads"], 2);
    let bottleneck = report["bottleneck"].as_str().expect("bottleneck");
    assert!(
        ["source: busy", "transforms: busy", "sink: busy"]
            .iter()
            .any(|start| bottleneck.starts_with(start)),
        "{bottleneck}"
    );
}

#[test]
fn metrics_json_is_written_for_a_failed_run_too() {
    let dir = temp_dir();
    let pipeline = write_file(
        dir.path(),
        "failing.toml",
        &TestkitPipeline::default()
            .with("pipeline", "batch_rows = 100\nworkers = 1")
            .with("source", "rows = 1000")
            .with("sink", "fail_at_row = 500")
            .toml(),
    );
    let report_file = dir.path().join("report.json");
    let output = run_host([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        "run".as_ref(),
        pipeline.as_os_str(),
        "--quiet".as_ref(),
        "--metrics-json".as_ref(),
        report_file.as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report_file).expect("the report was written"))
            .expect("the report is JSON");
    assert_eq!(
        report["rows_written"], 500,
        "the sink consumed batches 0..5"
    );
}

/// Checks that a scraped response is a Prometheus text exposition and returns its body.
fn prometheus_body(response: &str) -> &str {
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    for line in body.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let words: Vec<&str> = comment.splitn(3, ' ').collect();
            assert!(matches!(words[0], "HELP" | "TYPE"), "{line}");
            assert!(words[1].starts_with("mlpipe_"), "{line}");
            if words[0] == "TYPE" {
                assert!(matches!(words[2], "counter" | "gauge"), "{line}");
            }
            continue;
        }
        let (sample, value) = line.rsplit_once(' ').expect("`name value`");
        assert!(value.parse::<f64>().is_ok(), "not a number: {line}");
        let name = sample.split('{').next().unwrap_or(sample);
        assert!(
            name.starts_with("mlpipe_")
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
            "not a metric name: {line}"
        );
        assert!(
            !sample.contains('{') || sample.ends_with("\"}"),
            "malformed labels: {line}"
        );
    }
    body
}

#[test]
fn metrics_addr_serves_live_metrics_while_the_run_lasts() {
    let dir = temp_dir();
    let pipeline = write_file(
        dir.path(),
        "endless.toml",
        &TestkitPipeline::default()
            .with("pipeline", "batch_rows = 100\nmemory_budget = \"32MiB\"")
            .with("source", "endless = true\ndelay_ms = 2")
            .toml(),
    );
    let address = free_local_address();
    let child = host_command([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        "run".as_ref(),
        pipeline.as_os_str(),
        "--quiet".as_ref(),
        "--metrics-addr".as_ref(),
        address.to_string().as_ref(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("cannot start mlpipe-host");
    let sink_rows = "mlpipe_rows_total{stage=\"sink\"}";
    let first = wait_for("rows at the sink", Duration::from_secs(30), || {
        metric(&scrape(address)?, sink_rows).filter(|rows| *rows > 0.0)
    });
    // The numbers move while the run goes on.
    let response = wait_for("more rows at the sink", Duration::from_secs(30), || {
        scrape(address).filter(|r| metric(r, sink_rows).is_some_and(|rows| rows > first))
    });
    let body = prometheus_body(&response);
    for expected in [
        "# TYPE mlpipe_rows_total counter",
        "mlpipe_rows_total{stage=\"source\"}",
        "mlpipe_bytes_total{stage=\"transforms\"}",
        "mlpipe_wait_input_seconds_total{stage=\"sink\"}",
        "mlpipe_batch_latency_p99_seconds{stage=\"source\"}",
    ] {
        assert!(body.contains(expected), "expected `{expected}` in {body}");
    }
    assert_eq!(
        metric(body, "mlpipe_memory_budget_bytes"),
        Some(f64::from(32 << 20))
    );
    assert!(
        metric(body, "mlpipe_process_peak_rss_bytes").is_some_and(|rss| rss > f64::from(1 << 20)),
        "{body}"
    );

    send_signal(&child, "INT");
    let output = finish(child, Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(scrape(address).is_none(), "the endpoint outlived the run");
}
