//! The `mlpipe-host` command line: parses arguments, calls the library, maps errors to
//! exit codes (0 ok, 1 run failed, 2 usage, config or plugin error).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use mlpipe_host::config::PipelineConfig;
use mlpipe_host::error::HostError;
use mlpipe_host::loader::PluginSearch;
use mlpipe_host::pipeline::{Pipeline, Progress, RunReport};
use mlpipe_host::registry::{PluginEntry, Registry};
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
        "Examples:\n  mlpipe-host run examples/quickstart.toml\n  mlpipe-host run job.toml --set source.path=big.csv --set pipeline.batch_rows=8192\n  mlpipe-host run job.toml --set transform.0.columns='[\"a\", \"b*\"]'\n\n{EXIT_CODES}"
    ))]
    Run(PipelineArgs),
    /// Check a pipeline file and its components without reading any data.
    #[command(after_help = format!("Example:\n  mlpipe-host validate examples/quickstart.toml\n\n{EXIT_CODES}"))]
    Validate(PipelineArgs),
    /// List or describe the loaded plugins.
    #[command(subcommand)]
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
        Command::Run(args) => {
            let config = PipelineConfig::load(&args.pipeline, &args.set)?;
            let pipeline = Pipeline::from_config(&config, &registry)?;
            let sink = pipeline.sink.label.clone();
            let mut progress = ProgressLine::new(!cli.quiet && std::io::stderr().is_terminal());
            let report = pipeline.run(|p| progress.update(p))?;
            progress.clear();
            if !cli.quiet {
                eprintln!("{}", summary(&report, &sink.stage, &sink.component));
            }
            Ok(())
        }
        Command::Validate(args) => {
            let config = PipelineConfig::load(&args.pipeline, &args.set)?;
            let labels = Pipeline::validate(&config, &registry)?;
            println!("{}: ok", config.file.display());
            for label in labels {
                println!(
                    "  {:<14} {}/{}",
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

fn summary(report: &RunReport, stage: &str, component: &str) -> String {
    let seconds = report.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        report.rows_written as f64 / seconds
    } else {
        0.0
    };
    let [source, transforms, sink] = report.busy.map(|d| d.as_secs_f64());
    format!(
        "done: read {} rows, wrote {} rows in {} batches ({}) to {stage} `{component}` in {seconds:.2} s ({rate:.0} rows/s)\n\
         busy: source {source:.2} s, transforms {transforms:.2} s, sink {sink:.2} s",
        report.rows_read,
        report.rows_written,
        report.batches,
        human_bytes(report.bytes_written),
    )
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

/// A one-line progress display on standard error, redrawn at most ten times a second.
struct ProgressLine {
    enabled: bool,
    last: Option<Instant>,
}

impl ProgressLine {
    fn new(enabled: bool) -> ProgressLine {
        ProgressLine {
            enabled,
            last: None,
        }
    }

    fn update(&mut self, p: &Progress) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        let seconds = p.elapsed.as_secs_f64().max(1e-9);
        let rate = p.rows as f64 / seconds;
        let eta = match p.total_rows {
            Some(total) if rate > 0.0 && total > p.rows => {
                format!(", ETA {:.0} s", (total - p.rows) as f64 / rate)
            }
            _ => String::new(),
        };
        let total = p.total_rows.map(|t| format!("/{t}")).unwrap_or_default();
        eprint!(
            "\r\x1b[K{}{total} rows, {rate:.0} rows/s, {}{eta}",
            p.rows,
            human_bytes(p.bytes)
        );
        let _ = std::io::stderr().flush();
    }

    fn clear(&self) {
        if self.enabled && self.last.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}
