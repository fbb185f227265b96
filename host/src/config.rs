//! The pipeline file (TOML): parsing, `--set` overrides, and the checks that name the
//! offending key.
//!
//! ```toml
//! [pipeline]              # all optional
//! batch_rows = 65536
//! memory_budget = "512MiB"
//! workers = 0             # 0 = one per core
//! adaptive_workers = false # true: park workers while the source is the bottleneck
//! ordered = true          # false: batches reach the sink as they finish
//! spill = "auto"          # keep a costly source's batches for later passes: auto, always, never
//! spill_dir = "/tmp"      # where (default: the system's temporary directory)
//!
//! [source]
//! type = "csv"            # a component name, or "plugin/component"
//! path = "data/in.csv"    # every other key is the component's config
//!
//! [[transform]]           # zero or more, applied in order
//! type = "select"
//! columns = ["a", "b*"]
//!
//! [sink]
//! type = "parquet"
//! path = "out/data.parquet"
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mlpipe_plugin_api::parse_byte_size;
use toml::{Table, Value};

use crate::error::HostError;
use crate::pipeline::spill::SpillPolicy;

/// The `[pipeline]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Rows per batch the source is asked for.
    pub batch_rows: usize,
    /// Bytes of batches allowed in flight.
    pub memory_budget: u64,
    /// Worker threads for transforms; 0 means one per core.
    pub workers: usize,
    /// Whether the sink receives batches in source order (the default) or as they finish.
    pub ordered: bool,
    /// Whether the watcher parks transform workers while the source is the bottleneck
    /// (off by default: `benches/scripts/adaptive_pool.sh` measured no gain here).
    pub adaptive_workers: bool,
    /// When a pipeline that fits keeps the first pass's batches for the later passes.
    pub spill: SpillPolicy,
    /// Where it keeps them; `None`: the system's temporary directory.
    pub spill_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            batch_rows: 65536,
            memory_budget: 512 << 20,
            workers: 0,
            ordered: true,
            adaptive_workers: false,
            spill: SpillPolicy::Auto,
            spill_dir: None,
        }
    }
}

/// One `[source]`, `[[transform]]` or `[sink]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    /// Where it sits in the file: `source`, `transform[0]`, `sink`.
    pub key: String,
    /// The `type` value: a component name or `plugin/component`.
    pub type_name: String,
    /// Every other key, as JSON for the component.
    pub config: serde_json::Value,
    /// Keys given with `--set`, whose relative paths resolve against the working directory.
    pub overridden: BTreeSet<String>,
}

/// A parsed pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// The file it came from.
    pub file: PathBuf,
    /// `[pipeline]`.
    pub settings: Settings,
    /// `[source]`.
    pub source: ComponentSpec,
    /// `[[transform]]`, in order.
    pub transforms: Vec<ComponentSpec>,
    /// `[sink]`.
    pub sink: ComponentSpec,
    /// `[quarantine]`: the sink that receives rows transforms set aside (e.g. rows that
    /// failed `validate`), when the pipeline has one.
    pub quarantine: Option<ComponentSpec>,
    /// `[pipeline.kernels]`: the implementation chosen for a kernel name, as a spec whose
    /// key is `pipeline.kernels.<name>`; names not listed get the default.
    pub kernels: Vec<ComponentSpec>,
}

impl PipelineConfig {
    /// Reads and parses a pipeline file, applying `--set key=value` overrides.
    pub fn load(file: &Path, overrides: &[String]) -> Result<PipelineConfig, HostError> {
        let text = std::fs::read_to_string(file).map_err(|e| HostError::Config {
            file: file.to_path_buf(),
            message: format!("cannot read the pipeline file: {e}"),
        })?;
        PipelineConfig::parse(file, &text, overrides)
    }

    /// Parses pipeline text; `file` is used in messages and to resolve relative paths.
    pub fn parse(
        file: &Path,
        text: &str,
        overrides: &[String],
    ) -> Result<PipelineConfig, HostError> {
        let error = |message: String| HostError::Config {
            file: file.to_path_buf(),
            message,
        };
        let mut table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| error(format!("not valid TOML: {e}")))?;
        let mut overridden = BTreeSet::new();
        for assignment in overrides {
            overridden.insert(apply_override(&mut table, assignment).map_err(&error)?);
        }
        for key in table.keys() {
            if !["pipeline", "source", "transform", "sink", "quarantine"].contains(&key.as_str()) {
                return Err(error(format!(
                    "unknown top-level key `{key}`; a pipeline has [pipeline], [source], [[transform]], [sink] and [quarantine]"
                )));
            }
        }
        let (settings, kernels) = match table.get("pipeline") {
            None => (Settings::default(), Vec::new()),
            Some(Value::Table(pipeline)) => {
                let mut pipeline = pipeline.clone();
                let kernels = match pipeline.remove("kernels") {
                    None => Vec::new(),
                    Some(Value::Table(kernels)) => {
                        parse_kernels(&kernels, &overridden).map_err(&error)?
                    }
                    Some(other) => {
                        return Err(error(format!(
                            "`pipeline.kernels` must be a table of kernel choices, e.g. \
                             kernels = {{ fill_standardize = \"myplugin/fill_standardize\" }}, not {other}"
                        )));
                    }
                };
                (parse_settings(&pipeline).map_err(&error)?, kernels)
            }
            Some(_) => return Err(error("`pipeline` must be a table: [pipeline]".into())),
        };
        let component = |key: &str, value: Option<&Value>| -> Result<ComponentSpec, HostError> {
            match value {
                Some(Value::Table(t)) => component_spec(key, t, &overridden).map_err(&error),
                Some(_) => Err(error(format!("`{key}` must be a table"))),
                None => Err(error(format!(
                    "missing [{key}] table; every pipeline needs a source and a sink"
                ))),
            }
        };
        let source = component("source", table.get("source"))?;
        let sink = component("sink", table.get("sink"))?;
        let quarantine = table
            .get("quarantine")
            .map(|value| component("quarantine", Some(value)))
            .transpose()?;
        let transforms = match table.get("transform") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| component(&format!("transform[{i}]"), Some(item)))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(error(
                    "`transform` must be an array of tables: write [[transform]], not [transform]"
                        .into(),
                ));
            }
        };
        let mut config = PipelineConfig {
            file: file.to_path_buf(),
            settings,
            source,
            transforms,
            sink,
            quarantine,
            kernels,
        };
        // Like every path in the file, a relative spill_dir is relative to the file's
        // folder; given with --set, to the working directory.
        if let Some(dir) = &config.settings.spill_dir
            && dir.is_relative()
            && !overridden.contains("pipeline.spill_dir")
        {
            config.settings.spill_dir = Some(config.base_dir().join(dir));
        }
        Ok(config)
    }

    /// The directory relative paths in the file resolve against.
    pub fn base_dir(&self) -> PathBuf {
        match self.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

fn parse_settings(pipeline: &Table) -> Result<Settings, String> {
    let mut settings = Settings::default();
    for (key, value) in pipeline {
        let positive = |value: &Value| -> Result<usize, String> {
            value
                .as_integer()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("`pipeline.{key}` must be a whole number ≥ 0, not {value}"))
        };
        match key.as_str() {
            "batch_rows" => {
                settings.batch_rows = positive(value)?;
                if settings.batch_rows == 0 {
                    return Err("`pipeline.batch_rows` must be at least 1".into());
                }
            }
            "workers" => settings.workers = positive(value)?,
            "ordered" => {
                settings.ordered = value.as_bool().ok_or_else(|| {
                    format!("`pipeline.ordered` must be true or false, not {value}")
                })?
            }
            "memory_budget" => {
                settings.memory_budget = match value {
                    Value::Integer(n) => u64::try_from(*n).map_err(|_| {
                        format!("`pipeline.memory_budget` must be positive, not {n}")
                    })?,
                    Value::String(text) => parse_byte_size(text)
                        .map_err(|e| format!("`pipeline.memory_budget`: {e}"))?,
                    other => {
                        return Err(format!(
                            "`pipeline.memory_budget` must be a byte size such as \"512MiB\", not {other}"
                        ));
                    }
                }
            }
            "adaptive_workers" => {
                settings.adaptive_workers = value.as_bool().ok_or_else(|| {
                    format!("`pipeline.adaptive_workers` must be true or false, not {value}")
                })?
            }
            "spill" => {
                settings.spill = value.as_str().and_then(SpillPolicy::parse).ok_or_else(|| {
                    format!(
                        "`pipeline.spill` must be \"auto\", \"always\" or \"never\", not {value}"
                    )
                })?
            }
            "spill_dir" => {
                let dir = value.as_str().ok_or_else(|| {
                    format!("`pipeline.spill_dir` must be a directory path, not {value}")
                })?;
                settings.spill_dir = Some(PathBuf::from(dir));
            }
            other => {
                return Err(format!(
                    "unknown key `pipeline.{other}`; [pipeline] accepts batch_rows, memory_budget, workers, adaptive_workers, ordered, spill, spill_dir and kernels"
                ));
            }
        }
    }
    Ok(settings)
}

/// The config key of a kernel choice is this followed by the kernel's name.
pub const KERNELS_KEY: &str = "pipeline.kernels.";

/// `[pipeline.kernels]`: each entry is `name = "plugin/kernel"` or
/// `name = { type = "plugin/kernel", key = value, ... }`.
fn parse_kernels(
    kernels: &Table,
    overridden: &BTreeSet<String>,
) -> Result<Vec<ComponentSpec>, String> {
    kernels
        .iter()
        .map(|(name, choice)| {
            let key = format!("{KERNELS_KEY}{name}");
            match choice {
                Value::String(type_name) => Ok(ComponentSpec {
                    key,
                    type_name: type_name.clone(),
                    config: serde_json::Value::Object(serde_json::Map::new()),
                    overridden: BTreeSet::new(),
                }),
                Value::Table(table) => component_spec(&key, table, overridden),
                other => Err(format!(
                    "`{key}` must name a kernel (\"plugin/kernel\") or be a table with a `type`, not {other}"
                )),
            }
        })
        .collect()
}

fn component_spec(
    key: &str,
    table: &Table,
    overridden: &BTreeSet<String>,
) -> Result<ComponentSpec, String> {
    let type_name = match table.get("type") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(other) => {
            return Err(format!(
                "`{key}.type` must be a component name, not {other}"
            ));
        }
        None => {
            return Err(format!(
                "missing key `{key}.type`: name the component, e.g. type = \"csv\" \
                 (`mlpipe-host plugins list` shows them all)"
            ));
        }
    };
    let mut config = serde_json::Map::new();
    for (name, value) in table.iter().filter(|(name, _)| name.as_str() != "type") {
        config.insert(name.clone(), to_json(value));
    }
    let prefix = format!("{key}.");
    let overridden = overridden
        .iter()
        .filter_map(|path| path.strip_prefix(&prefix).map(str::to_string))
        .collect();
    Ok(ComponentSpec {
        key: key.to_string(),
        type_name,
        config: serde_json::Value::Object(config),
        overridden,
    })
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Integer(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Value::from(*f),
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Table(t) => {
            serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// Applies `a.b.c=value` to the table. The value is read as TOML when it parses as a TOML
/// value (`100`, `true`, `["a", "b"]`), otherwise as a plain string. `transform.N.key`
/// addresses the N-th `[[transform]]`. Returns the key path, normalized as
/// `transform[N].key`.
fn apply_override(table: &mut Table, assignment: &str) -> Result<String, String> {
    let (path, raw) = assignment.split_once('=').ok_or_else(|| {
        format!("--set `{assignment}`: expected key=value, e.g. --set source.path=in.csv")
    })?;
    let value = format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()));
    let parts: Vec<&str> = path.trim().split('.').collect();
    let (last, parents) = parts
        .split_last()
        .filter(|(last, _)| !last.is_empty())
        .ok_or_else(|| format!("--set `{assignment}`: the key is empty"))?;
    let mut current = table;
    let mut normalized = Vec::new();
    let mut index = 0;
    while index < parents.len() {
        let part = parents[index];
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        current = match entry {
            Value::Table(t) => {
                normalized.push(part.to_string());
                t
            }
            Value::Array(items) => {
                let position = parents
                    .get(index + 1)
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n < items.len())
                    .ok_or_else(|| {
                        format!(
                            "--set `{assignment}`: `{part}` has {} entries; address one as {part}.N.key with N from 0",
                            items.len()
                        )
                    })?;
                index += 1;
                normalized.push(format!("{part}[{position}]"));
                match &mut items[position] {
                    Value::Table(t) => t,
                    _ => {
                        return Err(format!(
                            "--set `{assignment}`: `{part}.{position}` is not a table"
                        ));
                    }
                }
            }
            _ => return Err(format!("--set `{assignment}`: `{part}` is not a table")),
        };
        index += 1;
    }
    current.insert(last.to_string(), value);
    normalized.push(last.to_string());
    Ok(normalized.join("."))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PIPELINE: &str = r#"
        [pipeline]
        batch_rows = 1000
        memory_budget = "64MiB"

        [source]
        type = "csv"
        path = "in.csv"

        [[transform]]
        type = "select"
        columns = ["a", "b*"]

        [sink]
        type = "parquet/parquet"
        path = "out.parquet"
    "#;

    fn parse(text: &str, overrides: &[&str]) -> Result<PipelineConfig, String> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        PipelineConfig::parse(Path::new("dir/p.toml"), text, &overrides).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_section() {
        let config = parse(PIPELINE, &[]).unwrap();
        assert_eq!(config.settings.batch_rows, 1000);
        assert_eq!(config.settings.memory_budget, 64 << 20);
        assert_eq!(config.source.type_name, "csv");
        assert_eq!(config.source.config, json!({"path": "in.csv"}));
        assert_eq!(config.transforms[0].key, "transform[0]");
        assert_eq!(config.transforms[0].config, json!({"columns": ["a", "b*"]}));
        assert_eq!(config.sink.type_name, "parquet/parquet");
        assert_eq!(config.base_dir(), PathBuf::from("dir"));
    }

    #[test]
    fn spill_settings_are_checked_and_a_relative_spill_dir_follows_its_origin() {
        let spill = |settings: &str, overrides: &[&str]| {
            let text = PIPELINE.replace("[pipeline]", &format!("[pipeline]\n{settings}"));
            parse(&text, overrides).map(|c| (c.settings.spill, c.settings.spill_dir))
        };
        assert_eq!(spill("", &[]).unwrap(), (SpillPolicy::Auto, None));
        assert_eq!(
            spill("spill = \"never\"\nspill_dir = \"tmp\"", &[]).unwrap(),
            (SpillPolicy::Never, Some(PathBuf::from("dir/tmp")))
        );
        assert_eq!(
            spill("", &["pipeline.spill=always", "pipeline.spill_dir=tmp"]).unwrap(),
            (SpillPolicy::Always, Some(PathBuf::from("tmp")))
        );
        let bad = spill("spill = \"sometimes\"", &[]).unwrap_err();
        assert!(
            bad.contains("`pipeline.spill` must be \"auto\", \"always\" or \"never\""),
            "{bad}"
        );
        let bad = spill("spill_dir = 3", &[]).unwrap_err();
        assert!(
            bad.contains("`pipeline.spill_dir` must be a directory path"),
            "{bad}"
        );
    }

    #[test]
    fn overrides_set_typed_values_and_are_remembered() {
        let config = parse(
            PIPELINE,
            &[
                "source.path=other.csv",
                "pipeline.batch_rows=5",
                "transform.0.columns=[\"x\"]",
            ],
        )
        .unwrap();
        assert_eq!(config.source.config, json!({"path": "other.csv"}));
        assert!(config.source.overridden.contains("path"));
        assert_eq!(config.settings.batch_rows, 5);
        assert_eq!(config.transforms[0].config, json!({"columns": ["x"]}));
        assert!(config.transforms[0].overridden.contains("columns"));
        let bad = parse(PIPELINE, &["transform.3.columns=[]"]).unwrap_err();
        assert!(bad.contains("`transform` has 1 entries"), "{bad}");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let unknown = parse(
            "[source]\ntype='csv'\n[sink]\ntype='x'\n[pipeline]\nbatch_size=3\n",
            &[],
        )
        .unwrap_err();
        assert!(
            unknown.starts_with("dir/p.toml: unknown key `pipeline.batch_size`"),
            "{unknown}"
        );
        let missing = parse("[sink]\ntype='x'\n", &[]).unwrap_err();
        assert!(missing.contains("missing [source] table"), "{missing}");
        let no_type = parse("[source]\npath='a'\n[sink]\ntype='x'\n", &[]).unwrap_err();
        assert!(no_type.contains("missing key `source.type`"), "{no_type}");
        let not_toml = parse("[source\n", &[]).unwrap_err();
        assert!(not_toml.contains("not valid TOML"), "{not_toml}");
        let budget = parse(
            "[pipeline]\nmemory_budget='lots'\n[source]\ntype='a'\n[sink]\ntype='b'",
            &[],
        )
        .unwrap_err();
        assert!(budget.contains("`pipeline.memory_budget`"), "{budget}");
        let single = parse(
            "[source]\ntype='a'\n[transform]\ntype='t'\n[sink]\ntype='b'",
            &[],
        )
        .unwrap_err();
        assert!(single.contains("write [[transform]]"), "{single}");
    }
}
