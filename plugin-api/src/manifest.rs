//! What a plugin declares about itself: its components and each component's config keys.
//!
//! The manifest crosses the boundary as JSON, so that later API versions can add fields
//! (`#[serde(default)]`) without breaking plugins built earlier. The host validates a
//! component's config against the declared keys before any plugin code runs, and the
//! plugin side validates again, so a component never sees a config it did not declare.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::traits::Kernel;

/// The kinds of component a plugin can export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// Produces batches: a file reader, a database cursor, a generator.
    Source,
    /// Maps one batch to another.
    Transform,
    /// Consumes batches: a file writer, a socket.
    Sink,
    /// A compute function over Arrow arrays, called by transforms through the host.
    Kernel,
}

impl ComponentKind {
    /// The kind's name as written in configs and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Source => "source",
            ComponentKind::Transform => "transform",
            ComponentKind::Sink => "sink",
            ComponentKind::Kernel => "kernel",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of a config value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConfigType {
    /// A string.
    String,
    /// A file or directory path; the host resolves a relative path against the directory
    /// of the pipeline file that gave it.
    Path,
    /// Input files: a path, a glob pattern, a directory, or a list of them (see
    /// [`files::expand`](crate::files::expand)); the host resolves relative entries like
    /// [`ConfigType::Path`].
    Paths,
    /// A whole number.
    Integer,
    /// A number (whole numbers are accepted too).
    Float,
    /// `true` or `false`.
    Boolean,
    /// A byte size: a whole number or a string such as `"512MiB"`.
    ByteSize,
    /// A list of strings.
    StringList,
    /// A list of numbers.
    FloatList,
    /// A table (JSON object) whose contents the component checks itself.
    Table,
    /// Any value; the component checks it itself.
    Any,
}

impl ConfigType {
    fn accepts(self, value: &Value) -> bool {
        match self {
            ConfigType::String | ConfigType::Path => value.is_string(),
            ConfigType::Paths => {
                value.is_string()
                    || value.as_array().is_some_and(|items| {
                        !items.is_empty() && items.iter().all(Value::is_string)
                    })
            }
            ConfigType::Integer => value.is_i64() || value.is_u64(),
            ConfigType::Float => value.is_number(),
            ConfigType::Boolean => value.is_boolean(),
            ConfigType::ByteSize => {
                value.is_u64() || value.as_str().is_some_and(|s| parse_byte_size(s).is_ok())
            }
            ConfigType::StringList => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            ConfigType::FloatList => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_number)),
            ConfigType::Table => value.is_object(),
            ConfigType::Any => true,
        }
    }

    /// The type's name with its indefinite article, for messages ("an integer").
    pub fn with_article(self) -> String {
        let name = self.as_str();
        let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {name}")
    }

    /// How the type is written in help output and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigType::String => "string",
            ConfigType::Path => "path",
            ConfigType::Paths => "paths",
            ConfigType::Integer => "integer",
            ConfigType::Float => "float",
            ConfigType::Boolean => "boolean",
            ConfigType::ByteSize => "byte size",
            ConfigType::StringList => "list of strings",
            ConfigType::FloatList => "list of numbers",
            ConfigType::Table => "table",
            ConfigType::Any => "any",
        }
    }
}

impl fmt::Display for ConfigType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a byte size: a plain number of bytes, or a number with a unit
/// (`B`, `KB`, `MB`, `GB`, `TB` in powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` in powers of 1024).
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1000_u64.pow(2),
        "GB" => 1000_u64.pow(3),
        "TB" => 1000_u64.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit `{other}` in byte size `{text}` (use B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a byte size (e.g. 512MiB, 2GiB, 1048576)"))?;
    Ok((value * multiplier as f64).round() as u64)
}

/// The config key through which the host hands a component its share of the pipeline's
/// `memory_budget`: a component that declares it (see [`ConfigKey::memory_budget`]) is
/// given a byte size by the host when the pipeline file does not set the key, and keeps
/// the buffers of its own (decoded chunks, open row groups) within it.
pub const MEMORY_BUDGET_KEY: &str = "memory_budget";

/// One key a component accepts in its config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigKey {
    /// The key, as written in the pipeline file.
    pub name: String,
    /// The type of its value.
    #[serde(rename = "type")]
    pub ty: ConfigType,
    /// Whether the key must be given.
    #[serde(default)]
    pub required: bool,
    /// The value used when the key is not given.
    #[serde(default)]
    pub default: Option<Value>,
    /// One line saying what the key does.
    pub doc: String,
}

impl ConfigKey {
    /// An optional key with no default.
    pub fn new(name: impl Into<String>, ty: ConfigType, doc: impl Into<String>) -> ConfigKey {
        ConfigKey {
            name: name.into(),
            ty,
            required: false,
            default: None,
            doc: doc.into(),
        }
    }

    /// The [`MEMORY_BUDGET_KEY`] key (a byte size), saying in `doc` what the component
    /// sizes by it. Absent when the component is made outside a pipeline.
    pub fn memory_budget(doc: impl Into<String>) -> ConfigKey {
        ConfigKey::new(MEMORY_BUDGET_KEY, ConfigType::ByteSize, doc)
    }

    /// Marks the key as required.
    pub fn required(mut self) -> ConfigKey {
        self.required = true;
        self
    }

    /// Sets the value used when the key is not given.
    pub fn default(mut self, value: impl Into<Value>) -> ConfigKey {
        self.default = Some(value.into());
        self
    }
}

/// A component's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// What the component is.
    pub kind: ComponentKind,
    /// Its name, unique within the plugin; `type = "name"` in a pipeline file.
    pub name: String,
    /// One line saying what it does.
    pub description: String,
    /// The keys its config accepts.
    #[serde(default)]
    pub config: Vec<ConfigKey>,
    /// For kernels: the signature, e.g. `(float64, float64) -> float64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// For transforms: stateless and `Sync`, so one instance serves every worker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stateless: bool,
    /// For sources: reading the input again costs as much as the first time (a text
    /// format parsed whole). A pipeline that fits then keeps the first pass's batches in a
    /// spill file for the later passes (`[pipeline] spill = "auto"`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub costly_reread: bool,
}

impl ComponentInfo {
    /// A component of the given kind.
    pub fn new(
        kind: ComponentKind,
        name: impl Into<String>,
        description: impl Into<String>,
    ) -> ComponentInfo {
        ComponentInfo {
            kind,
            name: name.into(),
            description: description.into(),
            config: Vec::new(),
            signature: None,
            stateless: false,
            costly_reread: false,
        }
    }

    /// Adds a config key.
    pub fn key(mut self, key: ConfigKey) -> ComponentInfo {
        self.config.push(key);
        self
    }

    /// Sets a kernel's signature.
    pub fn signature(mut self, signature: impl Into<String>) -> ComponentInfo {
        self.signature = Some(signature.into());
        self
    }

    /// Checks a config against the declared keys and fills in defaults.
    ///
    /// Unknown keys, missing required keys and values of the wrong type are errors that
    /// name the key and say what is accepted.
    pub fn validate(&self, config: &Value) -> Result<Config> {
        let Some(given) = config.as_object() else {
            return Err(Error::config(format!(
                "the config of {} `{}` must be a table of keys, not {config}",
                self.kind, self.name
            )));
        };
        for (key, value) in given {
            let Some(declared) = self.config.iter().find(|k| &k.name == key) else {
                let accepted: Vec<&str> = self.config.iter().map(|k| k.name.as_str()).collect();
                return Err(Error::config(format!(
                    "unknown key `{key}` for {} `{}`; it accepts: {}",
                    self.kind,
                    self.name,
                    if accepted.is_empty() {
                        "no keys".to_string()
                    } else {
                        accepted.join(", ")
                    }
                )));
            };
            if !declared.ty.accepts(value) {
                return Err(Error::config(format!(
                    "key `{key}` of {} `{}` must be {}, not {value}",
                    self.kind,
                    self.name,
                    declared.ty.with_article()
                )));
            }
        }
        let mut filled = given.clone();
        for key in &self.config {
            if filled.contains_key(&key.name) {
                continue;
            }
            if key.required {
                return Err(Error::config(format!(
                    "missing required key `{}` ({}) for {} `{}`: {}",
                    key.name, key.ty, self.kind, self.name, key.doc
                )));
            }
            if let Some(default) = &key.default {
                filled.insert(key.name.clone(), default.clone());
            }
        }
        Ok(Config {
            values: filled,
            kernels: Kernels::default(),
        })
    }
}

/// A component's config after validation, with defaults filled in, and the kernels the
/// host chose for the pipeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    values: Map<String, Value>,
    kernels: Kernels,
}

impl Config {
    /// Deserializes the whole config into the author's type.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(Value::Object(self.values.clone()))
            .map_err(|e| Error::config(format!("config: {e}")))
    }

    /// Deserializes one key, or `None` when it is absent and has no default.
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.values
            .get(key)
            .map(|value| {
                serde_json::from_value(value.clone())
                    .map_err(|e| Error::config(format!("key `{key}`: {e}")))
            })
            .transpose()
    }

    /// Deserializes one key that is required or has a default.
    pub fn require<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        self.get(key)?
            .ok_or_else(|| Error::config(format!("missing key `{key}`")))
    }

    /// Reads a byte-size key (a number or a string such as `"64MiB"`).
    pub fn byte_size(&self, key: &str) -> Result<Option<u64>> {
        match self.values.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => parse_byte_size(text)
                .map(Some)
                .map_err(|e| Error::config(format!("key `{key}`: {e}"))),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| Error::config(format!("key `{key}` must be a byte size"))),
        }
    }

    /// The raw values.
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    /// The kernel registered under `name`: the implementation the pipeline chose (by
    /// default the standard `simd` plugin's; `[pipeline.kernels]` picks another). Look
    /// kernels up when the component is created and keep them.
    pub fn kernel(&self, name: &str) -> Result<Arc<dyn Kernel>> {
        self.kernels.get(name).ok_or_else(|| {
            let loaded: Vec<&str> = self.kernels.names().collect();
            Error::config(format!(
                "no kernel named `{name}` is loaded (loaded: {}); the standard `simd` plugin \
                 provides the standard kernels: check that it sits beside mlpipe-host or is \
                 given with --plugin",
                if loaded.is_empty() {
                    "none".to_string()
                } else {
                    loaded.join(", ")
                }
            ))
        })
    }

    /// The same config with the given kernels (the plugin glue sets them).
    pub(crate) fn with_kernels(mut self, kernels: Kernels) -> Config {
        self.kernels = kernels;
        self
    }
}

/// The kernels a pipeline resolved, by name: what [`Config::kernel`] looks up.
#[derive(Clone, Default)]
pub struct Kernels {
    by_name: BTreeMap<String, Arc<dyn Kernel>>,
}

impl Kernels {
    /// Registers `kernel` under `name` (replacing an earlier one of that name).
    pub fn insert(&mut self, name: impl Into<String>, kernel: Arc<dyn Kernel>) {
        self.by_name.insert(name.into(), kernel);
    }

    /// The kernel registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Kernel>> {
        self.by_name.get(name).cloned()
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Two sets are equal when they register the same names (kernels have no equality).
impl PartialEq for Kernels {
    fn eq(&self, other: &Kernels) -> bool {
        self.names().eq(other.names())
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The plugin's name; components can be named `plugin/component`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The `mlpipe-plugin-api` version the plugin was built against (semver).
    pub api_version: String,
    /// Its components.
    pub components: Vec<ComponentInfo>,
}

impl Manifest {
    /// The component with this kind and name.
    pub fn component(&self, kind: ComponentKind, name: &str) -> Option<&ComponentInfo> {
        self.components
            .iter()
            .find(|c| c.kind == kind && c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn csv_info() -> ComponentInfo {
        ComponentInfo::new(ComponentKind::Source, "csv", "reads CSV")
            .key(ConfigKey::new("path", ConfigType::String, "the file").required())
            .key(ConfigKey::new("delimiter", ConfigType::String, "field separator").default(","))
            .key(ConfigKey::new("batch", ConfigType::ByteSize, "size"))
    }

    #[test]
    fn validate_fills_defaults() {
        let config = csv_info().validate(&json!({"path": "a.csv"})).unwrap();
        assert_eq!(config.require::<String>("delimiter").unwrap(), ",");
        assert_eq!(config.get::<String>("batch").unwrap(), None);
    }

    #[test]
    fn validate_names_the_offending_key() {
        let unknown = csv_info()
            .validate(&json!({"path": "a", "delimter": ";"}))
            .unwrap_err();
        assert!(
            unknown.message().contains("unknown key `delimter`"),
            "{unknown}"
        );
        assert!(
            unknown.message().contains("path, delimiter, batch"),
            "{unknown}"
        );
        let missing = csv_info().validate(&json!({})).unwrap_err();
        assert!(missing.message().contains("missing required key `path`"));
        let wrong = csv_info().validate(&json!({"path": 3})).unwrap_err();
        assert!(
            wrong
                .message()
                .contains("key `path` of source `csv` must be a string")
        );
        assert_eq!(wrong.kind(), crate::ErrorKind::InvalidConfig);
    }

    #[test]
    fn byte_sizes_parse_with_units() {
        assert_eq!(parse_byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("1.5KB"), Ok(1500));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert!(parse_byte_size("12 parsecs").is_err());
        assert!(parse_byte_size("MiB").is_err());
        let config = csv_info()
            .validate(&json!({"path": "a", "batch": "64MiB"}))
            .unwrap();
        assert_eq!(config.byte_size("batch").unwrap(), Some(64 << 20));
        assert!(
            csv_info()
                .validate(&json!({"path": "a", "batch": "lots"}))
                .is_err()
        );
    }
}
