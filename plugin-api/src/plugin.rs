//! The plugin definition an author builds: its name, version and components, each with
//! a manifest entry and a constructor from a validated [`Config`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};
use crate::manifest::{ComponentInfo, ComponentKind, Config, ConfigKey, Kernels, Manifest};
use crate::traits::{ColumnUsage, Kernel, Sink, Source, StatelessTransform, Transform};

type Make<T> = Box<dyn Fn(&Config) -> Result<Box<T>> + Send + Sync>;

enum Constructor {
    Source(Make<dyn Source>),
    Transform(Make<dyn Transform>),
    Sink(Make<dyn Sink>),
    Kernel(Make<dyn Kernel>),
}

struct Component {
    info: ComponentInfo,
    make: Constructor,
}

/// A worker's handle on the one instance of a stateless transform.
struct Shared<T>(Arc<T>);

impl<T: StatelessTransform> Transform for Shared<T> {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.0.output_schema(input)
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        self.0.transform(batch)
    }

    fn column_usage(&self, input: &SchemaRef) -> Result<Option<ColumnUsage>> {
        self.0.column_usage(input)
    }
}

/// A plugin: what [`export_plugin!`](crate::export_plugin) exports from a `cdylib`, and
/// what an embedding application can register in-process.
///
/// ```
/// use mlpipe_plugin_api::{ConfigKey, ConfigType, Plugin, Result, RecordBatch, SchemaRef, Transform};
///
/// struct Identity;
/// impl Transform for Identity {
///     fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> { Ok(input.clone()) }
///     fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> { Ok(batch) }
/// }
///
/// let plugin = Plugin::new("example", "1.0.0")
///     .transform("identity", "returns its input", [], |_config| Ok(Identity));
/// assert_eq!(plugin.manifest().components[0].name, "identity");
/// ```
pub struct Plugin {
    name: String,
    version: String,
    api_version: String,
    components: Vec<Component>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("manifest", &self.manifest())
            .finish()
    }
}

impl Plugin {
    /// A plugin with no components yet.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Plugin {
        Plugin {
            name: name.into(),
            version: version.into(),
            api_version: crate::API_VERSION.to_string(),
            components: Vec::new(),
        }
    }

    fn add(
        mut self,
        kind: ComponentKind,
        name: &str,
        description: &str,
        keys: impl IntoIterator<Item = ConfigKey>,
        make: Constructor,
    ) -> Plugin {
        let mut info = ComponentInfo::new(kind, name, description);
        info.config.extend(keys);
        self.components.push(Component { info, make });
        self
    }

    /// Adds a source built by `make` from its validated config.
    pub fn source<S: Source + 'static>(
        self,
        name: &str,
        description: &str,
        keys: impl IntoIterator<Item = ConfigKey>,
        make: impl Fn(&Config) -> Result<S> + Send + Sync + 'static,
    ) -> Plugin {
        let make = Constructor::Source(Box::new(move |c| Ok(Box::new(make(c)?))));
        self.add(ComponentKind::Source, name, description, keys, make)
    }

    /// Adds a transform built by `make` from its validated config.
    pub fn transform<T: Transform + 'static>(
        self,
        name: &str,
        description: &str,
        keys: impl IntoIterator<Item = ConfigKey>,
        make: impl Fn(&Config) -> Result<T> + Send + Sync + 'static,
    ) -> Plugin {
        let make = Constructor::Transform(Box::new(move |c| Ok(Box::new(make(c)?))));
        self.add(ComponentKind::Transform, name, description, keys, make)
    }

    /// Adds a stateless transform: the first instance built from a config serves every
    /// worker (and every later pass) of a pipeline with that config, called from several
    /// threads at once.
    pub fn stateless_transform<T: StatelessTransform + 'static>(
        self,
        name: &str,
        description: &str,
        keys: impl IntoIterator<Item = ConfigKey>,
        make: impl Fn(&Config) -> Result<T> + Send + Sync + 'static,
    ) -> Plugin {
        let shared: Mutex<HashMap<String, Arc<T>>> = Mutex::default();
        let make = Constructor::Transform(Box::new(move |config| {
            let key = serde_json::Value::Object(config.values().clone()).to_string();
            let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
            let instance = match shared.get(&key) {
                Some(instance) => instance.clone(),
                None => {
                    let instance = Arc::new(make(config)?);
                    shared.insert(key, instance.clone());
                    instance
                }
            };
            Ok(Box::new(Shared(instance)))
        }));
        let mut plugin = self.add(ComponentKind::Transform, name, description, keys, make);
        if let Some(component) = plugin.components.last_mut() {
            component.info.stateless = true;
        }
        plugin
    }

    /// Adds a sink built by `make` from its validated config.
    pub fn sink<S: Sink + 'static>(
        self,
        name: &str,
        description: &str,
        keys: impl IntoIterator<Item = ConfigKey>,
        make: impl Fn(&Config) -> Result<S> + Send + Sync + 'static,
    ) -> Plugin {
        let make = Constructor::Sink(Box::new(move |c| Ok(Box::new(make(c)?))));
        self.add(ComponentKind::Sink, name, description, keys, make)
    }

    /// Adds a kernel with a declared signature, e.g. `(float64) -> float64`.
    pub fn kernel<K: Kernel + 'static>(
        self,
        name: &str,
        description: &str,
        signature: &str,
        keys: impl IntoIterator<Item = ConfigKey>,
        make: impl Fn(&Config) -> Result<K> + Send + Sync + 'static,
    ) -> Plugin {
        let make = Constructor::Kernel(Box::new(move |c| Ok(Box::new(make(c)?))));
        let plugin = self.add(ComponentKind::Kernel, name, description, keys, make);
        plugin.with_last_signature(signature)
    }

    /// Declares the source added last costly to read again: it parses a text format whole
    /// on every pass (CSV, JSON). A pipeline that fits then reads it once, keeping its
    /// batches in a spill file (Arrow IPC) for the passes after the first.
    pub fn costly_reread(mut self) -> Plugin {
        if let Some(component) = self.components.last_mut()
            && component.info.kind == ComponentKind::Source
        {
            component.info.costly_reread = true;
        }
        self
    }

    fn with_last_signature(mut self, signature: &str) -> Plugin {
        if let Some(component) = self.components.last_mut() {
            component.info.signature = Some(signature.to_string());
        }
        self
    }

    /// Overrides the API version the plugin declares. Only for testing how hosts treat
    /// incompatible plugins.
    #[doc(hidden)]
    pub fn declare_api_version(mut self, version: &str) -> Plugin {
        self.api_version = version.to_string();
        self
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            name: self.name.clone(),
            version: self.version.clone(),
            api_version: self.api_version.clone(),
            components: self.components.iter().map(|c| c.info.clone()).collect(),
        }
    }

    fn create<T: ?Sized>(
        &self,
        kind: ComponentKind,
        name: &str,
        config: &serde_json::Value,
        kernels: Kernels,
        pick: fn(&Constructor) -> Option<&Make<T>>,
    ) -> Result<Box<T>> {
        let component = self
            .components
            .iter()
            .find(|c| c.info.kind == kind && c.info.name == name)
            .ok_or_else(|| {
                Error::config(format!(
                    "plugin `{}` has no {kind} named `{name}`",
                    self.name
                ))
            })?;
        let config = component.info.validate(config)?.with_kernels(kernels);
        let make = pick(&component.make).ok_or_else(|| {
            Error::internal(format!("{kind} `{name}` has a constructor of another kind"))
        })?;
        make(&config)
    }

    /// Creates a source from its config (validated against the manifest first).
    pub fn create_source(&self, name: &str, config: &serde_json::Value) -> Result<Box<dyn Source>> {
        self.create(
            ComponentKind::Source,
            name,
            config,
            Kernels::default(),
            |c| match c {
                Constructor::Source(make) => Some(make),
                _ => None,
            },
        )
    }

    /// Creates a transform from its config (validated against the manifest first).
    pub fn create_transform(
        &self,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<Box<dyn Transform>> {
        self.create_transform_with_kernels(name, config, Kernels::default())
    }

    /// Creates a transform that finds `kernels` through [`Config::kernel`].
    pub fn create_transform_with_kernels(
        &self,
        name: &str,
        config: &serde_json::Value,
        kernels: Kernels,
    ) -> Result<Box<dyn Transform>> {
        self.create(
            ComponentKind::Transform,
            name,
            config,
            kernels,
            |c| match c {
                Constructor::Transform(make) => Some(make),
                _ => None,
            },
        )
    }

    /// Creates a sink from its config (validated against the manifest first).
    pub fn create_sink(&self, name: &str, config: &serde_json::Value) -> Result<Box<dyn Sink>> {
        self.create(
            ComponentKind::Sink,
            name,
            config,
            Kernels::default(),
            |c| match c {
                Constructor::Sink(make) => Some(make),
                _ => None,
            },
        )
    }

    /// Creates a kernel from its config (validated against the manifest first).
    pub fn create_kernel(&self, name: &str, config: &serde_json::Value) -> Result<Box<dyn Kernel>> {
        self.create(
            ComponentKind::Kernel,
            name,
            config,
            Kernels::default(),
            |c| match c {
                Constructor::Kernel(make) => Some(make),
                _ => None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static MADE: AtomicUsize = AtomicUsize::new(0);

    struct Identity;

    impl StatelessTransform for Identity {
        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
            Ok(input.clone())
        }

        fn transform(&self, batch: RecordBatch) -> Result<RecordBatch> {
            Ok(batch)
        }
    }

    #[test]
    fn a_stateless_transform_is_made_once_per_config_and_shared() {
        let plugin = Plugin::new("p", "1.0.0").stateless_transform("id", "same", [], |_| {
            MADE.fetch_add(1, Ordering::SeqCst);
            Ok(Identity)
        });
        assert!(plugin.manifest().components[0].stateless);
        let config = serde_json::json!({});
        let workers: Vec<_> = (0..4)
            .map(|_| plugin.create_transform("id", &config).unwrap())
            .collect();
        assert_eq!(workers.len(), 4);
        assert_eq!(MADE.load(Ordering::SeqCst), 1);
    }
}
