//! The commands besides `run`: `validate`, `plugins list`, `plugins inspect`, and the help
//! and version output.

use mlpipe_plugin_api::API_VERSION;
use mlpipe_tests::{describe, listing, run_host, temp_dir, testkit, write_file};

/// Runs the host with the testkit loaded; expects success and returns stdout.
fn succeeds(args: &[&std::ffi::OsStr]) -> String {
    let testkit = testkit();
    let mut all = vec!["--plugin".as_ref(), testkit.as_os_str()];
    all.extend_from_slice(args);
    let output = run_host(all);
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn validate_lists_each_stage_without_running_any_component() {
    let dir = temp_dir();
    // The source would panic as soon as the pipeline asked it for anything.
    let pipeline = write_file(
        dir.path(),
        "valid.toml",
        "[source]\ntype = \"numbers\"\npanic_in = \"schema\"\n\n\
         [[transform]]\ntype = \"testkit/passthrough\"\n\n\
         [sink]\ntype = \"testkit/discard\"\n",
    );
    let stdout = succeeds(&["validate".as_ref(), pipeline.as_os_str()]);
    let lines = listing(&stdout);
    let header = format!("{}:", pipeline.display());
    assert_eq!(
        lines,
        [
            vec![header.as_str(), "ok"],
            vec!["source", "testkit/numbers"],
            vec!["transform[0]", "testkit/passthrough"],
            vec!["sink", "testkit/discard"],
        ]
    );
}

#[test]
fn plugins_list_shows_every_plugin_with_versions_components_and_path() {
    let stdout = succeeds(&["plugins".as_ref(), "list".as_ref()]);
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(header, ["PLUGIN", "VERSION", "API", "COMPONENTS", "PATH"]);
    let rows: Vec<&str> = lines.collect();
    let testkit_row = rows
        .iter()
        .find(|row| row.starts_with("testkit "))
        .unwrap_or_else(|| panic!("no testkit row in {stdout}"));
    for expected in [
        format!(" {API_VERSION} "),
        "source numbers, transform passthrough, sink discard".to_string(),
        testkit().display().to_string(),
    ] {
        assert!(
            testkit_row.contains(&expected),
            "expected `{expected}` in {testkit_row}"
        );
    }
    for standard in ["csv", "parquet", "ml", "util"] {
        assert!(
            rows.iter()
                .any(|row| row.starts_with(&format!("{standard} "))),
            "the standard plugin {standard} is missing from {stdout}"
        );
    }
}

#[test]
fn plugins_inspect_shows_each_component_and_its_keys_by_name_or_path() {
    let by_name = succeeds(&["plugins".as_ref(), "inspect".as_ref(), "testkit".as_ref()]);
    for expected in [
        format!("plugin testkit 0.1.0 (built against mlpipe-plugin-api {API_VERSION})"),
        format!("library {}", testkit().display()),
        "source numbers: float64 column `x` = row number".to_string(),
        "transform passthrough: returns its input unchanged".to_string(),
        "sink discard: drops every batch".to_string(),
    ] {
        assert!(
            by_name.contains(&expected),
            "expected `{expected}` in {by_name}"
        );
    }
    let rows_key = by_name
        .lines()
        .find(|line| line.trim_start().starts_with("rows "))
        .expect("the key `rows` is described");
    let words: Vec<&str> = rows_key.split_whitespace().collect();
    assert_eq!(
        words,
        [
            "rows", "integer", "default", "1000", "rows", "to", "produce", "in", "all"
        ]
    );

    // A path to a library that is not loaded yet gives the same description.
    let output = run_host([
        "plugins".as_ref(),
        "inspect".as_ref(),
        testkit().as_os_str(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), by_name);
}

#[test]
fn plugins_inspect_of_an_unknown_plugin_says_where_to_look() {
    let output = run_host(["plugins", "inspect", "no-such-plugin"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no plugin named `no-such-plugin`") && stderr.contains("plugins list"),
        "{stderr}"
    );
}

#[test]
fn help_on_every_command_shows_an_example_and_the_exit_codes() {
    for command in [
        &[][..],
        &["run"],
        &["validate"],
        &["plugins"],
        &["plugins", "list"],
        &["plugins", "inspect"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let output = run_host(&args);
        assert!(output.status.success(), "{args:?}: {}", describe(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("Example"),
            "no example in `{args:?}`: {stdout}"
        );
        assert!(
            stdout.contains("mlpipe-host "),
            "the example of `{args:?}` shows no command line: {stdout}"
        );
    }
    let top = run_host(["--help"]);
    let stdout = String::from_utf8_lossy(&top.stdout);
    assert!(
        stdout.contains("Exit status: 0 success; 1 the run failed"),
        "{stdout}"
    );
}

#[test]
fn version_prints_the_host_version() {
    let output = run_host(["--version"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("mlpipe-host {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn set_overrides_a_component_key() {
    let dir = temp_dir();
    let pipeline = write_file(
        dir.path(),
        "set.toml",
        "[source]\ntype = \"testkit/numbers\"\nrows = 10\n\n[sink]\ntype = \"testkit/discard\"\n",
    );
    let report = dir.path().join("report.json");
    succeeds(&[
        "run".as_ref(),
        pipeline.as_os_str(),
        "--quiet".as_ref(),
        "--set".as_ref(),
        "source.rows=2500".as_ref(),
        "--set".as_ref(),
        "pipeline.batch_rows=1000".as_ref(),
        "--metrics-json".as_ref(),
        report.as_os_str(),
    ]);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("a report")).expect("JSON");
    assert_eq!(report["rows_written"], 2500);
    assert_eq!(report["batches_written"], 3);
}
