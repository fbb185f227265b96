//! A panic inside any method of a plugin's component is caught at the boundary and ends
//! the run with an error naming the stage, the component, its plugin and the method:
//! exit status 1, never an abort or a signal.

use mlpipe_tests::{TestkitPipeline, describe, run_host, temp_dir, testkit, write_file};

/// Runs numbers → passthrough → discard with `panic_in = method` on `stage` and checks
/// the host reports it.
fn assert_panic_is_reported(stage: &str, method: &str) {
    let dir = temp_dir();
    let text = TestkitPipeline::default()
        .with("pipeline", "batch_rows = 100\nworkers = 2")
        .with("source", "rows = 1000")
        .with(stage, &format!("panic_in = \"{method}\""))
        .toml();
    let pipeline = write_file(dir.path(), "panic.toml", &text);
    let output = run_host([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        "run".as_ref(),
        pipeline.as_os_str(),
        "--quiet".as_ref(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let component = match stage {
        "source" => "numbers",
        "sink" => "discard",
        _ => "passthrough",
    };
    let expected = format!("error: {stage} `{component}` (plugin `testkit`) failed in {method}");
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in {}",
        describe(&output)
    );
    let cause = format!("panicked: testkit: panicking in `{method}` as configured");
    assert!(
        stderr.contains(&cause),
        "expected `{cause}` in {}",
        describe(&output)
    );
}

#[test]
fn a_panic_in_source_schema_is_an_error_naming_it() {
    assert_panic_is_reported("source", "schema");
}

#[test]
fn a_panic_in_source_next_batch_is_an_error_naming_it() {
    assert_panic_is_reported("source", "next_batch");
}

#[test]
fn a_panic_in_transform_output_schema_is_an_error_naming_it() {
    assert_panic_is_reported("transform[0]", "output_schema");
}

#[test]
fn a_panic_in_transform_transform_is_an_error_naming_it() {
    assert_panic_is_reported("transform[0]", "transform");
}

#[test]
fn a_panic_in_sink_begin_is_an_error_naming_it() {
    assert_panic_is_reported("sink", "begin");
}

#[test]
fn a_panic_in_sink_consume_is_an_error_naming_it() {
    assert_panic_is_reported("sink", "consume");
}

#[test]
fn a_panic_in_sink_flush_is_an_error_naming_it() {
    assert_panic_is_reported("sink", "flush");
}

#[test]
fn a_panic_in_source_size_hint_is_an_error_naming_it() {
    assert_panic_is_reported("source", "size_hint");
}

#[test]
fn a_panic_in_source_memory_usage_is_an_error_naming_it() {
    assert_panic_is_reported("source", "memory_usage");
}

#[test]
fn a_panic_in_transform_memory_usage_is_an_error_naming_it() {
    assert_panic_is_reported("transform[0]", "memory_usage");
}

#[test]
fn a_panic_in_sink_memory_usage_is_an_error_naming_it() {
    assert_panic_is_reported("sink", "memory_usage");
}
