//! Support for the end-to-end tests: builds the workspace once, finds the `mlpipe-host`
//! binary, the plugin libraries, the shared corpus and the Python used to check outputs
//! with real clients (pyarrow, scikit-learn, numpy).
//!
//! Everything missing is a loud failure that says how to fix it, never a skipped test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

/// The folder of the release artifacts the tests run: `target/release`, or wherever this
/// test binary was built (`<target>/release/deps/..`).
pub fn artifact_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binaries live in <target>/<profile>/deps")
        .to_path_buf()
}

/// Builds every workspace member (host binary, standard and test plugins) once per test
/// process, in the profile of the tests, so that no test runs a stale library.
pub fn build_workspace() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut command = Command::new(env!("CARGO"));
        command
            .args(["build", "--workspace", "--quiet"])
            .current_dir(workspace_root());
        if artifact_dir().file_name().is_some_and(|n| n == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("cannot run cargo build");
        assert!(status.success(), "cargo build --workspace failed");
    });
}

/// The `mlpipe-host` binary, built.
pub fn host() -> PathBuf {
    build_workspace();
    artifact_dir().join(format!("mlpipe-host{}", std::env::consts::EXE_SUFFIX))
}

/// The library of the workspace's `cdylib` crate named `crate_name` (e.g.
/// `mlpipe_testkit`), built.
pub fn plugin_library(crate_name: &str) -> PathBuf {
    build_workspace();
    let file = format!(
        "{}{crate_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let path = artifact_dir().join(file);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// A `mlpipe-host` command with the given arguments (standard plugins are found beside
/// the binary).
pub fn host_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(host());
    command.args(args).env_remove("MLPIPE_PLUGIN_PATH");
    command
}

/// Runs `mlpipe-host` with the given arguments and returns what it did.
pub fn run_host<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    host_command(args)
        .output()
        .expect("cannot start mlpipe-host")
}

/// Standard output and standard error of a finished command, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The shared material beside the project (`../shared`, or `MLPIPE_SHARED`): the corpus
/// and the benchmark scripts. Missing, it fails the test.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("MLPIPE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"));
    assert!(
        dir.join("corpus/README.md").is_file(),
        "the shared test material is not at {}: put it beside the project root as ../shared, \
         or set MLPIPE_SHARED to its path",
        dir.display()
    );
    dir
}

/// The Python interpreter whose packages (`tests/requirements.txt`) check outputs with
/// real clients: `MLPIPE_PYTHON`, or else the virtual environment `target/py-venv`, which
/// is created on first use (`python3 -m venv`, then `pip install -r tests/requirements.txt`,
/// from PyPI). Anything missing fails the test with the command that fixes it.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(python) = std::env::var_os("MLPIPE_PYTHON") {
                return PathBuf::from(python);
            }
            let venv = workspace_root().join("target/py-venv");
            let python = venv.join("bin/python");
            let requirements = workspace_root().join("tests/requirements.txt");
            let ready = venv.join(".requirements-installed");
            let installed = std::fs::read(&ready).ok();
            if installed != std::fs::read(&requirements).ok() {
                let fix = "python3 -m venv target/py-venv && target/py-venv/bin/pip install \
                           -r tests/requirements.txt";
                let created = python.is_file()
                    || Command::new("python3")
                        .arg("-m")
                        .arg("venv")
                        .arg(&venv)
                        .status()
                        .is_ok_and(|s| s.success());
                assert!(created, "cannot create {}: run\n  {fix}", venv.display());
                let pip = Command::new(&python)
                    .args(["-m", "pip", "install", "--quiet", "-r"])
                    .arg(&requirements)
                    .status();
                assert!(
                    pip.is_ok_and(|s| s.success()),
                    "cannot install the test requirements: run\n  {fix}"
                );
                std::fs::copy(&requirements, &ready).expect("cannot record the installation");
            }
            python
        })
        .clone()
}

/// Runs a Python script (given as text) with arguments; fails the test when it fails.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("cannot start python");
    assert!(
        output.status.success(),
        "python failed: {}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A fresh temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mlpipe-e2e-")
        .tempdir()
        .expect("cannot create a temporary directory")
}
