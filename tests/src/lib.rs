//! Support for the end-to-end tests: builds the workspace once, finds the `mlpipe-host`
//! binary, the plugin libraries, the shared corpus and the Python used to check outputs
//! with real clients (pyarrow, scikit-learn, numpy).
//!
//! Everything missing is a loud failure that says how to fix it, never a skipped test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// The test plugin `tests/plugins/testkit` (components that panic, fail, lie and report
/// buffer addresses on request), built.
pub fn testkit() -> PathBuf {
    plugin_library("mlpipe_testkit")
}

/// The text of a pipeline file `testkit/numbers → testkit/passthrough → testkit/discard`,
/// with extra lines in each table:
///
/// ```
/// let text = mlpipe_tests::TestkitPipeline::default()
///     .with("pipeline", "workers = 4")
///     .with("sink", "fail_at_row = 10")
///     .toml();
/// assert!(text.contains("[sink]\ntype = \"testkit/discard\"\nfail_at_row = 10\n"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct TestkitPipeline {
    settings: String,
    source: String,
    transform: String,
    sink: String,
}

impl TestkitPipeline {
    /// Adds a TOML line to the table of `stage`: `pipeline`, `source`, `transform[0]` or
    /// `sink` (the names the host's messages use).
    pub fn with(mut self, stage: &str, line: &str) -> TestkitPipeline {
        let table = match stage {
            "pipeline" => &mut self.settings,
            "source" => &mut self.source,
            "transform[0]" => &mut self.transform,
            "sink" => &mut self.sink,
            other => panic!("the testkit pipeline has no stage `{other}`"),
        };
        table.push_str(line);
        table.push('\n');
        self
    }

    /// The pipeline file's text.
    pub fn toml(&self) -> String {
        format!(
            "[pipeline]\n{}\n[source]\ntype = \"testkit/numbers\"\n{}\n\
             [[transform]]\ntype = \"testkit/passthrough\"\n{}\n\
             [sink]\ntype = \"testkit/discard\"\n{}",
            self.settings, self.source, self.transform, self.sink
        )
    }
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

/// What `mlpipe-host validate` printed, as the words of each line (the listing's columns are
/// padded to the widest stage name).
pub fn listing(stdout: &str) -> Vec<Vec<&str>> {
    stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect()
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

/// Writes `text` to the file `name` in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("cannot write a test file");
    path
}

/// Polls `condition` every 20 ms until it returns a value, for at most `timeout`; then
/// fails the test, saying what it waited for.
pub fn wait_for<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An address on 127.0.0.1 whose port was free a moment ago.
pub fn free_local_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("cannot find a free port")
}

/// Fetches `http://{address}/metrics`: the whole HTTP response, or `None` when nothing
/// answers there.
pub fn scrape(address: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// The value of one sample (`name{labels}`, exactly as exposed) in a Prometheus text body.
pub fn metric(body: &str, sample: &str) -> Option<f64> {
    body.lines()
        .filter_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

/// Sends a signal (`INT`, `TERM`, ...) to a child process, with kill(1).
pub fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -{signal} {} failed", child.id());
}

/// Waits for a child process to exit (for at most `timeout`, else kills it and fails the
/// test) and returns what it did.
pub fn finish(mut child: Child, timeout: Duration) -> Output {
    let exited = {
        let child = &mut child;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait().expect("cannot wait for mlpipe-host") {
                Some(_) => break true,
                None if Instant::now() >= deadline => break false,
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    };
    if !exited {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("cannot collect the output");
    assert!(
        exited,
        "mlpipe-host did not exit within {timeout:?}: {}",
        describe(&output)
    );
    output
}
