//! Kernels through the registry: the `ml` transforms call the kernel the pipeline resolved
//! — the standard `simd` plugin's by default, even when another loaded plugin provides the
//! same name, and another plugin's when `[pipeline.kernels]` picks it.

use std::fs::File;

use arrow::array::AsArray;
use arrow::datatypes::Float64Type;
use arrow::ipc::reader::FileReader;
use mlpipe_tests::{describe, listing, run_host, temp_dir, testkit, write_file};

/// Runs `testkit/numbers` (x = 0, 1, …, 99) → `ml/log1p` → an Arrow IPC file, with the
/// testkit plugin loaded and `kernels` under `[pipeline.kernels]`; returns column `x` of the
/// output.
fn log1p_of_row_numbers(kernels: &str) -> Vec<f64> {
    let dir = temp_dir();
    let pipeline = write_file(
        dir.path(),
        "pipeline.toml",
        &format!(
            "[pipeline]\nbatch_rows = 32\n\n[pipeline.kernels]\n{kernels}\n\n\
             [source]\ntype = \"testkit/numbers\"\nrows = 100\n\n\
             [[transform]]\ntype = \"ml/log1p\"\ncolumns = [\"x\"]\n\n\
             [sink]\ntype = \"ipc/ipc\"\npath = \"out.arrow\"\n"
        ),
    );
    let output = run_host([
        "--plugin".as_ref(),
        testkit().as_os_str(),
        "run".as_ref(),
        "--quiet".as_ref(),
        pipeline.as_os_str(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let file = File::open(dir.path().join("out.arrow")).expect("the output file");
    let reader = FileReader::try_new(file, None).expect("an Arrow IPC file");
    let mut x = Vec::new();
    for batch in reader {
        let batch = batch.expect("a readable batch");
        x.extend(batch.column(0).as_primitive::<Float64Type>().values());
    }
    x
}

#[test]
fn the_standard_kernel_serves_by_default_though_another_plugin_has_the_name() {
    let x = log1p_of_row_numbers("");
    assert_eq!(x.len(), 100);
    for (row, value) in x.iter().enumerate() {
        let expected = (row as f64).ln_1p();
        assert!(
            (value - expected).abs() <= 1e-15 * expected.max(1.0),
            "row {row}: {value}"
        );
    }
}

#[test]
fn a_kernel_chosen_in_the_pipeline_replaces_the_standard_one() {
    let x = log1p_of_row_numbers("log1p = \"testkit/log1p\"");
    let expected: Vec<f64> = (0..100).map(|row| row as f64 + 1000.0).collect();
    assert_eq!(x, expected, "testkit's log1p adds 1000");

    let x = log1p_of_row_numbers("log1p = { type = \"testkit/log1p\", shift = 5.0 }");
    assert_eq!(x[99], 104.0, "the chosen kernel gets its config");
}

#[test]
fn a_choice_nobody_provides_is_refused_naming_the_key_by_run_and_validate() {
    let dir = temp_dir();
    let pipeline = write_file(
        dir.path(),
        "pipeline.toml",
        "[pipeline.kernels]\nlog2 = \"testkit/log2\"\n\n\
         [source]\ntype = \"testkit/numbers\"\n\n[sink]\ntype = \"testkit/discard\"\n",
    );
    for command in ["run", "validate"] {
        let output = run_host([
            "--plugin".as_ref(),
            testkit().as_os_str(),
            command.as_ref(),
            pipeline.as_os_str(),
        ]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{command}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("[pipeline.kernels.log2]: no plugin provides a kernel named `log2`"),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains("log1p"),
            "{command}: the message lists the loaded kernels: {stderr}"
        );
    }
}

#[test]
fn validate_lists_the_kernels_chosen_and_refuses_what_run_refuses() {
    let dir = temp_dir();
    let host = |command: &str, kernels: &str| {
        let pipeline = write_file(
            dir.path(),
            "pipeline.toml",
            &format!(
                "[pipeline.kernels]\n{kernels}\n\n\
                 [source]\ntype = \"testkit/numbers\"\n\n[sink]\ntype = \"testkit/discard\"\n"
            ),
        );
        let output = run_host([
            "--plugin".as_ref(),
            testkit().as_os_str(),
            command.as_ref(),
            pipeline.as_os_str(),
        ]);
        (pipeline, output)
    };
    let (pipeline, chosen) = host("validate", "log1p = \"testkit/log1p\"");
    assert!(chosen.status.success(), "{}", describe(&chosen));
    let stdout = String::from_utf8_lossy(&chosen.stdout);
    let lines = listing(&stdout);
    let header = format!("{}:", pipeline.display());
    // The kernels left to their defaults are checked, not listed.
    assert_eq!(
        lines,
        [
            vec![header.as_str(), "ok"],
            vec!["source", "testkit/numbers"],
            vec!["sink", "testkit/discard"],
            vec!["pipeline.kernels.log1p", "testkit/log1p"],
        ]
    );
    let refused = [
        (
            "log1p = \"nosuch/log1p\"",
            "[pipeline.kernels.log1p] type = \"nosuch/log1p\"",
        ),
        (
            "log1p = { type = \"testkit/log1p\", shfit = 5.0 }",
            "unknown key `shfit` for kernel `log1p`",
        ),
        // An implementation of another kernel: the transforms would call it wrongly.
        (
            "log1p = \"simd/clip\"",
            "kernel `log1p` is called as `(x: T) -> T",
        ),
        // A quoted key is not a way around the check of the name.
        (
            "\"pipeline.kernels.log1p\" = \"nosuch/log1p\"",
            "no plugin provides a kernel named `pipeline.kernels.log1p`",
        ),
    ];
    for (kernels, expected) in refused {
        for command in ["validate", "run"] {
            let (_, output) = host(command, kernels);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{command} {kernels}: {}",
                describe(&output)
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains(expected), "{command} {kernels}: {stderr}");
        }
    }
}
