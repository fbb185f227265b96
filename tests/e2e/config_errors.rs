//! A wrong pipeline file is an error that names the file, the table, the component and the
//! key, says what is accepted, and exits with status 2 before anything runs.

use mlpipe_tests::{describe, run_host, temp_dir, testkit, write_file};

/// Runs `command` (`run` or `validate`) on a pipeline file with this text; expects exit
/// status 2 and returns stderr, with the file's path replaced by `FILE`.
fn refused(command: &str, text: &str) -> String {
    let dir = temp_dir();
    let pipeline = write_file(dir.path(), "pipeline.toml", text);
    let output = run_host([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        command.as_ref(),
        pipeline.as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    String::from_utf8_lossy(&output.stderr).replace(&pipeline.display().to_string(), "FILE")
}

const SINK: &str = "[sink]\ntype = \"testkit/discard\"\n";

#[test]
fn a_file_that_is_not_toml_is_refused_with_its_line() {
    let stderr = refused("run", "[source\ntype = \"testkit/numbers\"\n");
    assert!(
        stderr.starts_with("error: FILE: not valid TOML"),
        "{stderr}"
    );
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn an_unknown_component_key_names_the_key_the_component_and_the_file() {
    let text = format!("[source]\ntype = \"testkit/numbers\"\nrowz = 5\n\n{SINK}");
    for command in ["run", "validate"] {
        let stderr = refused(command, &text);
        for expected in [
            "error: FILE: [source] type = \"testkit/numbers\": unknown key `rowz` for source `numbers`",
            "it accepts: rows, endless, chunk_rows, delay_ms, repeat, panic_in, fail_at_row",
        ] {
            assert!(
                stderr.contains(expected),
                "{command}: expected `{expected}` in {stderr}"
            );
        }
    }
}

#[test]
fn an_unknown_transform_key_names_which_transform() {
    let text = format!(
        "[source]\ntype = \"testkit/numbers\"\n\n[[transform]]\ntype = \"testkit/passthrough\"\n\n\
         [[transform]]\ntype = \"testkit/passthrough\"\nlies = true\n\n{SINK}"
    );
    let stderr = refused("run", &text);
    let expected = "error: FILE: [transform[1]] type = \"testkit/passthrough\": unknown key `lies` for transform `passthrough`";
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in {stderr}"
    );
}

#[test]
fn an_unknown_pipeline_key_is_named() {
    let text =
        format!("[pipeline]\nbatch_size = 10\n\n[source]\ntype = \"testkit/numbers\"\n\n{SINK}");
    let stderr = refused("run", &text);
    let expected = "error: FILE: unknown key `pipeline.batch_size`; [pipeline] accepts batch_rows, memory_budget, workers";
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in {stderr}"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_named() {
    let text = format!("[source]\ntype = \"testkit/numbers\"\nrows = \"many\"\n\n{SINK}");
    let stderr = refused("run", &text);
    let expected = "[source] type = \"testkit/numbers\": key `rows` of source `numbers` must be";
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in {stderr}"
    );
    assert!(stderr.contains("integer"), "{stderr}");
}

#[test]
fn a_missing_required_key_is_named_with_its_meaning() {
    let text = format!("[source]\ntype = \"csv\"\n\n{SINK}");
    let stderr = refused("validate", &text);
    let expected = "[source] type = \"csv\": missing required key `path`";
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in {stderr}"
    );
}

#[test]
fn an_unknown_component_lists_the_available_ones() {
    let text = format!("[source]\ntype = \"numbrs\"\n\n{SINK}");
    let stderr = refused("validate", &text);
    for expected in [
        "[source] type = \"numbrs\": no source named `numbrs`",
        "testkit/numbers",
        "--plugin PATH",
    ] {
        assert!(
            stderr.contains(expected),
            "expected `{expected}` in {stderr}"
        );
    }
}

#[test]
fn a_value_the_component_itself_rejects_is_a_config_error() {
    let text = format!("[source]\ntype = \"testkit/numbers\"\npanic_in = \"nowhere\"\n\n{SINK}");
    let stderr = refused("run", &text);
    let expected = "key `panic_in`: `nowhere` is not a method of this component";
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in {stderr}"
    );
    assert!(
        stderr.contains("cannot create source `numbers` (plugin `testkit`)"),
        "{stderr}"
    );
}

#[test]
fn a_set_override_of_an_unknown_key_is_named() {
    let dir = temp_dir();
    let pipeline = write_file(
        dir.path(),
        "pipeline.toml",
        &format!("[source]\ntype = \"testkit/numbers\"\n\n{SINK}"),
    );
    let output = run_host([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        "run".as_ref(),
        pipeline.as_os_str(),
        "--set".as_ref(),
        "source.rowz=3".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown key `rowz` for source `numbers`"),
        "{stderr}"
    );
}
