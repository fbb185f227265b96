//! The host's errors and the exit status each maps to.

use std::path::PathBuf;

use mlpipe_plugin_api::Error as ComponentError;

/// Everything that can stop the host. `exit_code` says how the process ends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The pipeline file cannot be read or parsed, or a key in it is wrong.
    #[error("{file}: {message}")]
    Config {
        /// The pipeline file.
        file: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A plugin could not be loaded; the message names the file and what to do.
    #[error("{0}")]
    Plugin(String),
    /// A component named in the pipeline does not exist, or refused its config.
    #[error("{0}")]
    Component(String),
    /// The run started and failed.
    #[error("{0}")]
    Run(#[from] Box<RunError>),
}

impl HostError {
    /// The process exit status: 2 for problems the user fixes in the command or the
    /// pipeline file (usage, config — also when a component reports its config invalid
    /// once running — and plugins), 1 for a run that failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            HostError::Run(run)
                if run.error.kind() != mlpipe_plugin_api::ErrorKind::InvalidConfig =>
            {
                1
            }
            _ => 2,
        }
    }
}

/// A failure while the pipeline ran: which stage, component, method and batch, and why.
#[derive(Debug, thiserror::Error)]
#[error("{stage} `{component}`{plugin} failed in {method}{batch}: {error}", plugin = plugin_suffix(.plugin), batch = batch_suffix(.batch))]
pub struct RunError {
    /// `source`, `transform[i]` or `sink`.
    pub stage: String,
    /// The component's name.
    pub component: String,
    /// The plugin that provides it, when it came from one.
    pub plugin: Option<String>,
    /// The method that failed.
    pub method: &'static str,
    /// The index of the batch being processed, when there was one.
    pub batch: Option<u64>,
    /// The component's error.
    pub error: ComponentError,
}

fn plugin_suffix(plugin: &Option<String>) -> String {
    plugin
        .as_ref()
        .map(|p| format!(" (plugin `{p}`)"))
        .unwrap_or_default()
}

fn batch_suffix(batch: &Option<u64>) -> String {
    batch.map(|b| format!(" at batch {b}")).unwrap_or_default()
}
