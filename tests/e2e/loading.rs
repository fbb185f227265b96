//! Loading plugins: every way a library can be wrong is an error naming the file and what
//! to do (exit status 2, never a crash); components can be named `plugin/component`; the
//! out-of-tree example plugin loads like any other.

use std::path::Path;

use mlpipe_plugin_api::API_VERSION;
use mlpipe_tests::{
    describe, host_command, plugin_library, run_host, temp_dir, testkit, workspace_root, write_file,
};

/// `mlpipe-host --plugin PATH plugins list`: fails with exit status 2, and stderr.
fn refused(plugin: &Path) -> String {
    let output = run_host([
        "--plugin".as_ref(),
        plugin.as_os_str(),
        "plugins".as_ref(),
        "list".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(output.stdout.is_empty(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_plugin_built_against_an_incompatible_api_is_refused_with_both_versions_and_the_fix() {
    let library = plugin_library("mlpipe_test_incompatible");
    let stderr = refused(&library);
    for expected in [
        library.display().to_string(),
        "built against mlpipe-plugin-api 1.0.0".to_string(),
        format!("this host (mlpipe-plugin-api {API_VERSION}) cannot load"),
        format!("Rebuild the plugin against mlpipe-plugin-api {API_VERSION}"),
    ] {
        assert!(
            stderr.contains(&expected),
            "expected `{expected}` in {stderr}"
        );
    }
}

#[test]
fn a_shared_library_that_is_not_a_plugin_is_refused() {
    let library = plugin_library("mlpipe_test_not_a_plugin");
    let stderr = refused(&library);
    let expected = format!("{} is not an mlpipe plugin", library.display());
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in {stderr}"
    );
    assert!(stderr.contains("export_plugin!"), "{stderr}");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let dir = temp_dir();
    let fake = write_file(dir.path(), "libfake.so", "not a shared library\n");
    let stderr = refused(&fake);
    let expected = format!("{}: cannot load the library", fake.display());
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in {stderr}"
    );
}

#[test]
fn a_missing_plugin_file_is_refused() {
    let dir = temp_dir();
    let missing = dir.path().join("libmissing.so");
    let stderr = refused(&missing);
    let expected = format!("plugin file not found: {}", missing.display());
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in {stderr}"
    );
}

#[test]
fn two_libraries_of_the_same_plugin_are_refused() {
    let dir = temp_dir();
    let copy = dir.path().join("libtestkit_copy.so");
    std::fs::copy(testkit(), &copy).expect("cannot copy the testkit");
    let output = run_host([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        "--plugin".as_ref(),
        copy.as_os_str(),
        "plugins".as_ref(),
        "list".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("two plugins are named `testkit`") && stderr.contains("libtestkit_copy.so"),
        "{stderr}"
    );
}

#[test]
fn plugins_are_found_through_plugin_dir_and_mlpipe_plugin_path() {
    let dir = temp_dir();
    std::fs::copy(testkit(), dir.path().join("libmlpipe_testkit.so")).expect("copy");
    let listed = |output: std::process::Output| {
        assert!(output.status.success(), "{}", describe(&output));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            stdout.lines().any(|l| l.starts_with("testkit ")),
            "{stdout}"
        );
    };
    listed(run_host([
        "--plugin-dir".as_ref(),
        dir.path().as_os_str(),
        "plugins".as_ref(),
        "list".as_ref(),
    ]));
    listed(
        host_command(["plugins", "list"])
            .env("MLPIPE_PLUGIN_PATH", dir.path())
            .output()
            .expect("cannot run mlpipe-host"),
    );
}

/// A pipeline whose sink is `sink_type`: testkit numbers into it.
fn pipeline_with_sink(dir: &Path, sink_type: &str) -> std::process::Output {
    let pipeline = write_file(
        dir,
        "sink.toml",
        &format!(
            "[source]\ntype = \"testkit/numbers\"\nrows = 10\n\n[sink]\ntype = \"{sink_type}\"\n"
        ),
    );
    run_host([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        "run".as_ref(),
        pipeline.as_os_str(),
        "--quiet".as_ref(),
    ])
}

#[test]
fn a_component_name_two_plugins_share_must_be_qualified() {
    let dir = temp_dir();
    // The testkit and the standard util plugin both have a sink named `discard`.
    let ambiguous = pipeline_with_sink(dir.path(), "discard");
    assert_eq!(ambiguous.status.code(), Some(2), "{}", describe(&ambiguous));
    let stderr = String::from_utf8_lossy(&ambiguous.stderr);
    for expected in [
        "sink.toml: [sink] type = \"discard\"",
        "sink `discard` is ambiguous",
        "`util/discard`",
        "`testkit/discard`",
        "write type = \"plugin/discard\" to choose",
    ] {
        assert!(
            stderr.contains(expected),
            "expected `{expected}` in {stderr}"
        );
    }
    for qualified in ["testkit/discard", "util/discard"] {
        let output = pipeline_with_sink(dir.path(), qualified);
        assert!(
            output.status.success(),
            "{qualified}: {}",
            describe(&output)
        );
    }
}

#[test]
fn the_out_of_tree_example_plugin_loads_and_transforms() {
    let template = workspace_root().join("examples/plugin-template");
    let manifest: toml::Table = std::fs::read_to_string(template.join("Cargo.toml"))
        .expect("the template has a Cargo.toml")
        .parse()
        .expect("valid TOML");
    let dependencies: Vec<&String> = manifest["dependencies"]
        .as_table()
        .expect("[dependencies]")
        .keys()
        .collect();
    assert_eq!(
        dependencies,
        ["mlpipe-plugin-api"],
        "a plugin needs the API only"
    );

    let dir = temp_dir();
    let output_file = dir.path().join("scaled.parquet");
    let pipeline = write_file(
        dir.path(),
        "scale.toml",
        &format!(
            "[source]\ntype = \"testkit/numbers\"\nrows = 1000\n\n\
             [[transform]]\ntype = \"scale\"\nfactor = 2.5\n\n\
             [sink]\ntype = \"parquet\"\npath = {:?}\n",
            output_file
        ),
    );
    let output = run_host([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        "--plugin".as_ref(),
        plugin_library("scale_plugin").as_os_str(),
        "run".as_ref(),
        pipeline.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let file = std::fs::File::open(&output_file).expect("the output was written");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 4096)
        .expect("the output is Parquet");
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch.expect("a readable batch");
        let x =
            arrow::array::AsArray::as_primitive::<arrow::datatypes::Float64Type>(batch.column(0));
        values.extend(x.values().iter().copied());
    }
    let expected: Vec<f64> = (0..1000).map(|row| f64::from(row) * 2.5).collect();
    assert_eq!(values, expected);
}
