//! The `mlpipe-host` command line: parses arguments, calls the library, maps errors to
//! exit codes (0 ok, 1 run failed, 2 usage, config or plugin error).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mlpipe_host::config::PipelineConfig;
use mlpipe_host::error::HostError;
use mlpipe_host::loader::PluginSearch;
use mlpipe_host::pipeline::fit::FitStats;
use mlpipe_host::pipeline::metrics::{PassReport, Report};
use mlpipe_host::pipeline::spill::SpillOutcome;
use mlpipe_host::pipeline::{Pipeline, Progress, RunControl};
use mlpipe_host::registry::{PluginEntry, Registry};
use mlpipe_host::serve::MetricsServer;
use mlpipe_plugin_api::ComponentInfo;

const EXIT_CODES: &str = "Exit status: 0 success; 1 the run failed (the output path is left \
untouched); 2 usage, pipeline-file or plugin error (nothing was run).";

/// Moves machine-learning data through pipelines of plugins:
/// source → transforms → sink, with Arrow batches crossing a stable plugin ABI.
#[derive(Debug, Parser)]
#[command(name = "mlpipe-host", version, after_help = format!(
    "Examples:\n  mlpipe-host run examples/quickstart.toml\n  mlpipe-host --plugin ./libmy_plugin.so plugins inspect my_plugin\n\n{EXIT_CODES}"
))]
struct Cli {
    /// Load the plugin library at PATH (repeatable).
    #[arg(long = "plugin", value_name = "PATH", global = true)]
    plugins: Vec<PathBuf>,
    /// Load every plugin library in DIR (repeatable). MLPIPE_PLUGIN_PATH adds more.
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    plugin_dirs: Vec<PathBuf>,
    /// Print no progress and no summary.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline.
    #[command(after_help = format!(
        "Examples:\n  mlpipe-host run examples/quickstart.toml\n  mlpipe-host run job.toml --set source.path=big.csv --set pipeline.batch_rows=8192\n  mlpipe-host run job.toml --set transform.0.columns='[\"a\", \"b*\"]'\n  mlpipe-host run job.toml --metrics-json report.json --metrics-addr 127.0.0.1:9898\n\nSIGINT or SIGTERM stops the run cleanly (exit status 1, no output published); a second SIGINT exits at once.\n\n{EXIT_CODES}"
    ))]
    Run {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Write the full run report (per-stage metrics, memory, bottleneck) as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        metrics_json: Option<PathBuf>,
        /// Serve live metrics in the Prometheus text format at ADDR (e.g. 127.0.0.1:9898) while the run lasts.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<SocketAddr>,
        /// Apply the fitted parameters in FILE (written by `mlpipe-host fit`) instead of fitting.
        #[arg(long, value_name = "FILE")]
        stats: Option<PathBuf>,
    },
    /// Fit the transforms that learn from the data (means, vocabularies, quantiles) and save
    /// what they learned, without writing any output.
    #[command(after_help = format!(
        "Examples:\n  mlpipe-host fit examples/tabular-prep.toml -o stats.json\n  mlpipe-host run examples/tabular-prep.toml --stats stats.json\n\nA plain `run` fits first when a transform needs it; `fit` + `run --stats` applies the same parameters to other data (training and serving alike).\n\n{EXIT_CODES}"
    ))]
    Fit {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Where to write the fitted parameters (JSON).
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
    /// Check a pipeline file, its components and kernels without reading any data.
    #[command(after_help = format!("Example:\n  mlpipe-host validate examples/quickstart.toml\n\n{EXIT_CODES}"))]
    Validate(PipelineArgs),
    /// List or describe the loaded plugins.
    #[command(
        subcommand,
        after_help = "Examples:\n  mlpipe-host plugins list\n  mlpipe-host --plugin ./libmy_plugin.so plugins inspect my_plugin"
    )]
    Plugins(PluginsCommand),
}

#[derive(Debug, clap::Args)]
struct PipelineArgs {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// Override a key of the pipeline file, e.g. source.path=in.csv or transform.0.columns=["a"].
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// A table of the loaded plugins and their components.
    #[command(after_help = "Example:\n  mlpipe-host --plugin ./libmy_plugin.so plugins list")]
    List,
    /// A plugin's manifest: its components with their config keys.
    #[command(
        after_help = "Examples:\n  mlpipe-host plugins inspect csv\n  mlpipe-host plugins inspect ./target/release/libmy_plugin.so"
    )]
    Inspect {
        /// A plugin name, or the path of a plugin library.
        plugin: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code() as u8)
        }
    }
}

fn run(cli: &Cli) -> Result<(), HostError> {
    let mut registry = Registry::load(&PluginSearch::from_environment(
        cli.plugins.clone(),
        cli.plugin_dirs.clone(),
    ))?;
    match &cli.command {
        Command::Run {
            pipeline: args,
            metrics_json,
            metrics_addr,
            stats,
        } => {
            let config = PipelineConfig::load(&args.pipeline, &args.set)?;
            let mut pipeline = Pipeline::from_config(&config, &registry)?;
            if let Some(path) = stats {
                let stats = FitStats::load(path).map_err(HostError::Plugin)?;
                pipeline.load_stats(&stats)?;
            }
            run_pipeline(pipeline, cli.quiet, metrics_json.as_deref(), *metrics_addr)
        }
        Command::Fit {
            pipeline: args,
            output,
        } => {
            let config = PipelineConfig::load(&args.pipeline, &args.set)?;
            let pipeline = Pipeline::from_config(&config, &registry)?;
            fit_pipeline(pipeline, cli.quiet, output)
        }
        Command::Validate(args) => {
            let config = PipelineConfig::load(&args.pipeline, &args.set)?;
            let labels = Pipeline::validate(&config, &registry)?;
            println!("{}: ok", config.file.display());
            let width = labels.iter().map(|l| l.stage.len()).max().unwrap_or(0);
            for label in labels {
                println!(
                    "  {:<width$}  {}/{}",
                    label.stage,
                    label.plugin.as_deref().unwrap_or("-"),
                    label.component
                );
            }
            Ok(())
        }
        Command::Plugins(PluginsCommand::List) => {
            print!("{}", plugin_table(&registry.plugins()));
            Ok(())
        }
        Command::Plugins(PluginsCommand::Inspect { plugin }) => {
            let entry = match registry.find_plugin(plugin) {
                Some(entry) => entry,
                None if std::path::Path::new(plugin).is_file() => {
                    registry.add_library(std::path::Path::new(plugin))?;
                    registry.find_plugin(plugin).ok_or_else(|| {
                        HostError::Plugin(format!("{plugin}: loaded, but not found again"))
                    })?
                }
                None => {
                    return Err(HostError::Plugin(format!(
                        "no plugin named `{plugin}` is loaded and no file has that path.\nSee \
                         `mlpipe-host plugins list`, or pass the library's path."
                    )));
                }
            };
            print!("{}", inspect(&entry));
            Ok(())
        }
    }
}

fn run_pipeline(
    pipeline: Pipeline,
    quiet: bool,
    metrics_json: Option<&Path>,
    metrics_addr: Option<SocketAddr>,
) -> Result<(), HostError> {
    let control = RunControl::default();
    install_signal_handlers(&control)?;
    let server = metrics_addr
        .map(|address| {
            MetricsServer::start(
                address,
                control.metrics.clone(),
                pipeline.workers(),
                pipeline.settings.memory_budget,
            )
            .map_err(|e| HostError::Plugin(format!("--metrics-addr {address}: cannot listen: {e}")))
        })
        .transpose()?;
    let sink = pipeline.sink.label.clone();
    let bar = progress_bar(!quiet && std::io::stderr().is_terminal());
    let (report, result) = pipeline.run(&control, |p| update(&bar, p));
    bar.finish_and_clear();
    if let Some(server) = server {
        server.stop();
    }
    if let Some(path) = metrics_json {
        write_report(path, &report)?;
    }
    if !quiet {
        let outcome = if result.is_ok() { "done" } else { "failed" };
        eprintln!(
            "{}",
            summary(&report, outcome, &sink.stage, &sink.component)
        );
    }
    Ok(result?)
}

fn install_signal_handlers(control: &RunControl) -> Result<(), HostError> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being handled ends the process at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, control.cancel.clone())
            .and_then(|_| signal_hook::flag::register(signal, control.cancel.clone()))
            .map_err(|e| HostError::Plugin(format!("cannot install the signal handler: {e}")))?;
    }
    Ok(())
}

fn fit_pipeline(mut pipeline: Pipeline, quiet: bool, output: &Path) -> Result<(), HostError> {
    let control = RunControl::default();
    install_signal_handlers(&control)?;
    let bar = progress_bar(!quiet && std::io::stderr().is_terminal());
    let (passes, result) = pipeline.fit(&control, |p| update(&bar, p));
    bar.finish_and_clear();
    result?;
    let stats = pipeline.stats(&passes);
    stats.save(output).map_err(HostError::Plugin)?;
    if !quiet {
        eprintln!(
            "fitted {} stage(s) in {} pass(es); parameters written to {}",
            stats.stages.len(),
            passes.len(),
            output.display()
        );
        eprint!("{}", fit_summary(&passes));
    }
    Ok(())
}

fn fit_summary(passes: &[PassReport]) -> String {
    passes
        .iter()
        .map(|p| {
            let spill = match &p.spill {
                None => String::new(),
                Some(SpillOutcome::Kept { bytes, .. }) => format!(
                    "; kept its batches ({}) in a spill file for the next pass",
                    human_bytes(*bytes)
                ),
                Some(SpillOutcome::Abandoned(reason)) => format!("; {reason}"),
            };
            format!(
                "  {:<7} read {} rows in {:.2} s, fitted {}{spill}\n",
                p.pass,
                p.rows_read,
                p.elapsed_seconds,
                p.fitted.join(", ")
            )
        })
        .collect()
}

fn write_report(path: &Path, report: &Report) -> Result<(), HostError> {
    let fail = |e: String| HostError::Plugin(format!("--metrics-json {}: {e}", path.display()));
    let json = serde_json::to_string_pretty(report).map_err(|e| fail(e.to_string()))?;
    let temporary = path.with_extension("json.mlpipe-tmp");
    std::fs::write(&temporary, json + "\n")
        .and_then(|_| std::fs::rename(&temporary, path))
        .map_err(|e| fail(e.to_string()))
}

fn progress_bar(visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::no_length();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {human_pos} rows {per_sec} {msg} [{elapsed_precise}] {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn update(bar: &ProgressBar, progress: &Progress) {
    if let Some(total) = progress.total_rows {
        bar.set_length(total);
    }
    bar.set_position(progress.rows);
    bar.set_message(format!("{} {}", progress.pass, human_bytes(progress.bytes)));
}

fn plugin_table(plugins: &[PluginEntry]) -> String {
    let mut out = format!(
        "{:<16} {:<10} {:<8} {:<40} {}\n",
        "PLUGIN", "VERSION", "API", "COMPONENTS", "PATH"
    );
    for entry in plugins {
        let m = &entry.manifest;
        let components: Vec<String> = m
            .components
            .iter()
            .map(|c| format!("{} {}", c.kind, c.name))
            .collect();
        out += &format!(
            "{:<16} {:<10} {:<8} {:<40} {}\n",
            m.name,
            m.version,
            m.api_version,
            components.join(", "),
            entry
                .path
                .as_ref()
                .map_or("(in-process)".to_string(), |p| p.display().to_string())
        );
    }
    out
}

fn inspect(entry: &PluginEntry) -> String {
    let m = &entry.manifest;
    let mut out = format!(
        "plugin {} {} (built against mlpipe-plugin-api {})\n",
        m.name, m.version, m.api_version
    );
    if let Some(path) = &entry.path {
        out += &format!("library {}\n", path.display());
    }
    for component in &m.components {
        out += &describe_component(component);
    }
    out
}

fn describe_component(c: &ComponentInfo) -> String {
    let mut out = format!("\n{} {}: {}\n", c.kind, c.name, c.description);
    if let Some(signature) = &c.signature {
        out += &format!("  signature: {signature}\n");
    }
    if c.stateless {
        out += "  stateless: one instance serves every worker\n";
    }
    if c.costly_reread {
        out += "  costly to read again: a pipeline that fits reads it once (see pipeline.spill)\n";
    }
    if c.config.is_empty() {
        out += "  (no config keys)\n";
    }
    for key in &c.config {
        let requirement = match (&key.default, key.required) {
            (_, true) => "required".to_string(),
            (Some(default), false) => format!("default {default}"),
            (None, false) => "optional".to_string(),
        };
        out += &format!(
            "  {:<18} {:<16} {:<18} {}\n",
            key.name,
            key.ty.as_str(),
            requirement,
            key.doc
        );
    }
    out
}

fn summary(report: &Report, outcome: &str, stage: &str, component: &str) -> String {
    let rate = report.rows_written as f64 / report.elapsed_seconds.max(1e-9);
    let mut out = format!(
        "{outcome}: read {} rows, wrote {} rows in {} batches ({}) to {stage} `{component}` in {:.2} s ({rate:.0} rows/s)\n",
        report.rows_read,
        report.rows_written,
        report.batches_written,
        human_bytes(report.bytes_written),
        report.elapsed_seconds,
    );
    out += &format!(
        "  {:<11} {:>7} {:>12} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
        "stage", "threads", "rows", "busy %", "wait in", "wait out", "p50 ms", "p99 ms"
    );
    for s in &report.stages {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        out += &format!(
            "  {:<11} {:>7} {:>12} {:>7.0}% {:>8.2}s {:>8.2}s {:>9} {:>9}\n",
            s.stage,
            s.threads,
            s.rows,
            100.0 * s.utilization,
            s.wait_input_seconds,
            s.wait_output_seconds,
            ms(s.latency_p50_ms),
            ms(s.latency_p99_ms)
        );
    }
    out += &format!(
        "  memory: peak {} in flight of a {} budget{}; pooled buffers reused {} times, allocated {}\n",
        human_bytes(report.memory_peak_bytes),
        human_bytes(report.memory_budget_bytes),
        report
            .process_peak_rss_bytes
            .map_or(String::new(), |rss| format!(
                " (process peak RSS {})",
                human_bytes(rss)
            )),
        report.pool_reused,
        report.pool_allocated
    );
    out += &format!("  bottleneck: {}", report.bottleneck);
    if !report.fit_passes.is_empty() {
        out += &format!(
            "\n  fitted first, in {} pass(es):\n",
            report.fit_passes.len()
        );
        out += fit_summary(&report.fit_passes).trim_end();
    }
    for c in &report.counters {
        out += &format!("\n  {} `{}`: {} {}", c.stage, c.component, c.name, c.value);
    }
    out
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
