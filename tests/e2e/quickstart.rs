//! The README's quickstart pipeline runs and writes what it says.

use mlpipe_tests::{describe, run_host, workspace_root};

#[test]
fn the_quickstart_writes_the_penguins_measurements() {
    let root = workspace_root();
    let output_file = root.join("examples/out/penguins.parquet");
    let output = run_host([
        "run".as_ref(),
        root.join("examples/quickstart.toml").as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let file = std::fs::File::open(&output_file).expect("the quickstart wrote its output");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("the output is Parquet");
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "species",
            "island",
            "bill_length_mm",
            "bill_depth_mm",
            "flipper_length_mm",
            "body_mass_g",
            "sex"
        ]
    );
    assert_eq!(reader.metadata().file_metadata().num_rows(), 344);
}
