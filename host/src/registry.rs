//! The components the host can build: plugins loaded from libraries and plugins
//! registered in-process, looked up by `name` or `plugin/name`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlpipe_plugin_api::ffi::{BorrowedKernel, FfiKernel, FfiKernelRef, PluginLibrary};
use mlpipe_plugin_api::{
    ComponentInfo, ComponentKind, ConfigType, Kernels, MEMORY_BUDGET_KEY, Manifest, Plugin, Sink,
    Source, Transform,
};

use mlpipe_plugin_api::Result as ApiResult;

use crate::config::{ComponentSpec, KERNELS_KEY};
use crate::error::HostError;
use crate::loader::{self, PluginSearch};
use crate::pipeline::{SourceFactory, SourceStage, TransformFactory, TransformStage};

/// Where a plugin's components come from.
#[derive(Debug)]
enum Provider {
    Library {
        path: PathBuf,
        library: PluginLibrary,
    },
    InProcess(Plugin),
}

impl Provider {
    fn manifest(&self) -> Manifest {
        match self {
            Provider::Library { library, .. } => library.manifest().clone(),
            Provider::InProcess(plugin) => plugin.manifest(),
        }
    }

    fn create_source(&self, name: &str, config: &serde_json::Value) -> ApiResult<Box<dyn Source>> {
        match self {
            Provider::Library { library, .. } => library.create_source(name, config),
            Provider::InProcess(plugin) => plugin.create_source(name, config),
        }
    }

    fn create_transform(
        &self,
        name: &str,
        config: &serde_json::Value,
        kernels: &[(String, FfiKernelRef)],
    ) -> ApiResult<Box<dyn Transform>> {
        match self {
            Provider::Library { library, .. } => library.create_transform(name, config, kernels),
            Provider::InProcess(plugin) => {
                let mut lent = Kernels::default();
                for (name, kernel) in kernels {
                    lent.insert(name.as_str(), Arc::new(BorrowedKernel::new(*kernel)));
                }
                plugin.create_transform_with_kernels(name, config, lent)
            }
        }
    }

    fn create_sink(&self, name: &str, config: &serde_json::Value) -> ApiResult<Box<dyn Sink>> {
        match self {
            Provider::Library { library, .. } => library.create_sink(name, config),
            Provider::InProcess(plugin) => plugin.create_sink(name, config),
        }
    }

    fn create_kernel(&self, name: &str, config: &serde_json::Value) -> ApiResult<FfiKernel> {
        match self {
            Provider::Library { library, .. } => library.create_kernel(name, config),
            Provider::InProcess(plugin) => {
                plugin.create_kernel(name, config).map(FfiKernel::export)
            }
        }
    }

    /// Whether this is one of the standard plugins (whose library names start with
    /// `libmlpipe_plugin_`): they win ties between kernels of the same name.
    fn is_standard(&self) -> bool {
        match self {
            Provider::Library { path, .. } => path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(std::env::consts::DLL_PREFIX))
                .is_some_and(|n| n.starts_with(loader::STANDARD_STEM)),
            Provider::InProcess(_) => false,
        }
    }
}

/// A registered plugin, as listed by `plugins list`.
#[derive(Debug, Clone)]
pub struct PluginEntry {
    /// Its manifest.
    pub manifest: Manifest,
    /// The library it was loaded from; `None` for in-process plugins.
    pub path: Option<PathBuf>,
}

/// Which component a pipeline stage uses, for messages and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentLabel {
    /// `source`, `transform[i]` or `sink`.
    pub stage: String,
    /// The component's name.
    pub component: String,
    /// The plugin providing it.
    pub plugin: Option<String>,
}

impl ComponentLabel {
    /// A part of the host itself (the worker pool, a fit pass), for messages.
    pub fn host(component: &str) -> ComponentLabel {
        ComponentLabel {
            stage: "pipeline".to_string(),
            component: component.to_string(),
            plugin: None,
        }
    }
}

/// A kernel name and the implementation that serves it.
struct KernelSpec {
    name: String,
    spec: ComponentSpec,
    /// Whether `[pipeline.kernels]` chose it (else it is the default).
    chosen: bool,
}

/// The kernels a pipeline resolved: each name with the implementation chosen for it.
#[derive(Debug, Clone, Default)]
pub struct KernelChoice(pub Arc<Vec<(String, FfiKernelRef)>>);

/// The plugins the host knows.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    providers: Vec<(Manifest, Arc<Provider>)>,
}

impl Registry {
    /// An empty registry, for embedding with in-process plugins.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Loads every library the search finds.
    pub fn load(search: &PluginSearch) -> Result<Registry, HostError> {
        let mut registry = Registry::new();
        for path in search.library_files()? {
            registry.add_library(&path)?;
        }
        Ok(registry)
    }

    /// Loads one plugin library.
    pub fn add_library(&mut self, path: &Path) -> Result<(), HostError> {
        let library = loader::open(path)?;
        self.add(Provider::Library {
            path: path.to_path_buf(),
            library,
        })
    }

    /// Registers a plugin that lives in this process (no library, no ABI crossing).
    pub fn add_in_process(&mut self, plugin: Plugin) -> Result<(), HostError> {
        self.add(Provider::InProcess(plugin))
    }

    fn add(&mut self, provider: Provider) -> Result<(), HostError> {
        let manifest = provider.manifest();
        if let Some((_, existing)) = self.providers.iter().find(|(m, _)| m.name == manifest.name) {
            return Err(HostError::Plugin(format!(
                "two plugins are named `{}`: {} and {}\nLoad only one of them (plugin names must \
                 be unique so that `plugin/component` is unambiguous).",
                manifest.name,
                describe(existing),
                describe(&provider)
            )));
        }
        self.providers.push((manifest, Arc::new(provider)));
        Ok(())
    }

    /// Every registered plugin.
    pub fn plugins(&self) -> Vec<PluginEntry> {
        self.providers
            .iter()
            .map(|(manifest, provider)| PluginEntry {
                manifest: manifest.clone(),
                path: match provider.as_ref() {
                    Provider::Library { path, .. } => Some(path.clone()),
                    Provider::InProcess(_) => None,
                },
            })
            .collect()
    }

    /// Finds the component a `type` value names: `name` or `plugin/name`.
    fn resolve(
        &self,
        kind: ComponentKind,
        type_name: &str,
    ) -> Result<(&Manifest, &Arc<Provider>, &ComponentInfo), String> {
        let (plugin_name, name) = match type_name.split_once('/') {
            Some((plugin, name)) => (Some(plugin), name),
            None => (None, type_name),
        };
        let matches: Vec<_> = self
            .providers
            .iter()
            .filter(|(manifest, _)| plugin_name.is_none_or(|p| p == manifest.name))
            .filter_map(|(manifest, provider)| {
                manifest
                    .component(kind, name)
                    .map(|info| (manifest, provider, info))
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => {
                let available: Vec<String> = self
                    .providers
                    .iter()
                    .flat_map(|(m, _)| {
                        m.components
                            .iter()
                            .filter(|c| c.kind == kind)
                            .map(move |c| format!("{}/{}", m.name, c.name))
                    })
                    .collect();
                Err(format!(
                    "no {kind} named `{type_name}`; available {kind}s: {}.\nLoad the plugin that \
                     provides it with --plugin PATH, or see `mlpipe-host plugins list`.",
                    if available.is_empty() {
                        "none".to_string()
                    } else {
                        available.join(", ")
                    }
                ))
            }
            several => Err(format!(
                "{kind} `{type_name}` is ambiguous: {} all provide it; write type = \"plugin/{name}\" to choose.",
                several
                    .iter()
                    .map(|(m, _, _)| format!("`{}/{name}`", m.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// `spec` with `share` bytes under [`MEMORY_BUDGET_KEY`] when its component declares
    /// that key and the pipeline file does not set it; otherwise `spec` as it is.
    pub fn with_memory_share(
        &self,
        kind: ComponentKind,
        spec: &ComponentSpec,
        share: u64,
    ) -> ComponentSpec {
        let mut spec = spec.clone();
        let declared = self
            .resolve(kind, &spec.type_name)
            .is_ok_and(|(_, _, info)| info.config.iter().any(|k| k.name == MEMORY_BUDGET_KEY));
        if let Some(values) = spec.config.as_object_mut()
            && declared
        {
            values
                .entry(MEMORY_BUDGET_KEY)
                .or_insert_with(|| share.into());
        }
        spec
    }

    /// Checks a stage's component exists and accepts its config, without creating it.
    pub fn check(
        &self,
        kind: ComponentKind,
        spec: &ComponentSpec,
        file: &Path,
    ) -> Result<ComponentLabel, HostError> {
        self.prepare(kind, spec, file, Path::new("."))
            .map(|(label, _, _)| label)
    }

    /// Resolves, validates (before any plugin code runs) and resolves relative paths.
    fn prepare(
        &self,
        kind: ComponentKind,
        spec: &ComponentSpec,
        file: &Path,
        base_dir: &Path,
    ) -> Result<(ComponentLabel, &Arc<Provider>, serde_json::Value), HostError> {
        let fail = |message: String| {
            HostError::Component(format!(
                "{}: [{}] type = \"{}\": {message}",
                file.display(),
                spec.key,
                spec.type_name
            ))
        };
        let (manifest, provider, info) = self.resolve(kind, &spec.type_name).map_err(fail)?;
        info.validate(&spec.config)
            .map_err(|e| fail(e.message().to_string()))?;
        let mut config = spec.config.clone();
        if let Some(values) = config.as_object_mut() {
            let resolve = |value: &mut serde_json::Value| {
                if let serde_json::Value::String(path) = value
                    && Path::new(path).is_relative()
                    && path != "-"
                {
                    *path = base_dir.join(&*path).to_string_lossy().into_owned();
                }
            };
            for key in info.config.iter() {
                if !matches!(key.ty, ConfigType::Path | ConfigType::Paths)
                    || spec.overridden.contains(&key.name)
                {
                    continue;
                }
                match values.get_mut(&key.name) {
                    Some(serde_json::Value::Array(items)) => items.iter_mut().for_each(resolve),
                    Some(value) => resolve(value),
                    None => {}
                }
            }
        }
        let label = ComponentLabel {
            stage: spec.key.clone(),
            component: info.name.clone(),
            plugin: Some(manifest.name.clone()),
        };
        Ok((label, provider, config))
    }

    fn create<T: ?Sized>(
        &self,
        kind: ComponentKind,
        spec: &ComponentSpec,
        file: &Path,
        base_dir: &Path,
        make: impl FnOnce(&Provider, &str, &serde_json::Value) -> ApiResult<Box<T>>,
    ) -> Result<(ComponentLabel, Box<T>), HostError> {
        let (label, provider, config) = self.prepare(kind, spec, file, base_dir)?;
        let component = make(provider, &label.component, &config).map_err(|e| {
            HostError::Component(format!(
                "{}: [{}] cannot create {kind} `{}`{}: {e}",
                file.display(),
                spec.key,
                label.component,
                label
                    .plugin
                    .as_ref()
                    .map(|p| format!(" (plugin `{p}`)"))
                    .unwrap_or_default()
            ))
        })?;
        Ok((label, component))
    }

    /// Creates the source a stage names.
    pub fn create_source(
        &self,
        spec: &ComponentSpec,
        file: &Path,
        base_dir: &Path,
    ) -> Result<(ComponentLabel, Box<dyn Source>), HostError> {
        self.create(
            ComponentKind::Source,
            spec,
            file,
            base_dir,
            Provider::create_source,
        )
    }

    /// The source stage a pipeline's `[source]` names: an instance made now (so that a
    /// config the plugin itself rejects is reported before the run starts, and used by the
    /// first pass) and a factory for the passes after it.
    pub fn source_stage(
        &self,
        spec: &ComponentSpec,
        file: &Path,
        base_dir: &Path,
    ) -> Result<SourceStage, HostError> {
        let (label, first) = self.create_source(spec, file, base_dir)?;
        let (_, provider, config) = self.prepare(ComponentKind::Source, spec, file, base_dir)?;
        let (provider, name, made_with) =
            (provider.clone(), label.component.clone(), config.clone());
        let factory: SourceFactory = Arc::new(move || provider.create_source(&name, &made_with));
        let mut stage = SourceStage::new(label, factory);
        stage.config = config;
        stage.ready = Some(first);
        stage.costly_reread = self
            .resolve(ComponentKind::Source, &spec.type_name)
            .is_ok_and(|(_, _, info)| info.costly_reread);
        Ok(stage)
    }

    /// The transform stage a `[[transform]]` names, with a factory: the engine makes one
    /// instance per worker. One instance is made here, so that a config the plugin itself
    /// rejects is reported before the run starts.
    pub fn transform_stage(
        &self,
        spec: &ComponentSpec,
        file: &Path,
        base_dir: &Path,
        kernels: &KernelChoice,
    ) -> Result<TransformStage, HostError> {
        let kernels = kernels.clone();
        let (label, _) = self.create(
            ComponentKind::Transform,
            spec,
            file,
            base_dir,
            |provider, name, config| provider.create_transform(name, config, &kernels.0),
        )?;
        let (_, provider, config) = self.prepare(ComponentKind::Transform, spec, file, base_dir)?;
        let (provider, name, made_with) =
            (provider.clone(), label.component.clone(), config.clone());
        let factory: TransformFactory =
            Arc::new(move || provider.create_transform(&name, &made_with, &kernels.0));
        let mut stage = TransformStage::new(label, factory);
        stage.config = config;
        Ok(stage)
    }

    /// Creates the sink a stage names.
    pub fn create_sink(
        &self,
        spec: &ComponentSpec,
        file: &Path,
        base_dir: &Path,
    ) -> Result<(ComponentLabel, Box<dyn Sink>), HostError> {
        self.create(
            ComponentKind::Sink,
            spec,
            file,
            base_dir,
            Provider::create_sink,
        )
    }

    /// The kernels a pipeline uses, by name: every kernel any plugin provides, each served
    /// by the implementation `choices` (`[pipeline.kernels]`) names, or else by its only
    /// provider, or else by the standard plugin among its providers. Kernels are created
    /// once and live until the process exits (plugins hold references to them).
    pub fn kernels(
        &self,
        choices: &[ComponentSpec],
        file: &Path,
    ) -> Result<KernelChoice, HostError> {
        let mut chosen = Vec::new();
        for kernel in self.kernel_specs(choices, file)? {
            let (_, made) = self.create(
                ComponentKind::Kernel,
                &kernel.spec,
                file,
                Path::new("."),
                |provider, name, config| provider.create_kernel(name, config).map(Box::new),
            )?;
            chosen.push((kernel.name, made.leak()));
        }
        Ok(KernelChoice(Arc::new(chosen)))
    }

    /// Checks the kernels as [`kernels`](Registry::kernels) chooses them, creating none:
    /// returns a label for each kernel `[pipeline.kernels]` names (the defaults are
    /// checked, not listed).
    pub fn check_kernels(
        &self,
        choices: &[ComponentSpec],
        file: &Path,
    ) -> Result<Vec<ComponentLabel>, HostError> {
        let mut labels = Vec::new();
        for kernel in self.kernel_specs(choices, file)? {
            let label = self.check(ComponentKind::Kernel, &kernel.spec, file)?;
            if kernel.chosen {
                labels.push(label);
            }
        }
        Ok(labels)
    }

    /// Each kernel name any plugin provides, with the implementation that serves it (see
    /// [`kernels`](Registry::kernels)); a choice naming no provided kernel, or one whose
    /// implementation declares another signature, is an error.
    fn kernel_specs(
        &self,
        choices: &[ComponentSpec],
        file: &Path,
    ) -> Result<Vec<KernelSpec>, HostError> {
        let mut names: Vec<&str> = self
            .providers
            .iter()
            .flat_map(|(m, _)| m.components.iter())
            .filter(|c| c.kind == ComponentKind::Kernel)
            .map(|c| c.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        for choice in choices {
            let name = choice.key.strip_prefix(KERNELS_KEY).unwrap_or(&choice.key);
            if !names.contains(&name) {
                return Err(HostError::Component(format!(
                    "{}: [{}]: no plugin provides a kernel named `{name}`; loaded kernels: {}",
                    file.display(),
                    choice.key,
                    names.join(", ")
                )));
            }
            self.check_signature(name, choice, file)?;
        }
        names
            .into_iter()
            .map(|name| {
                let key = format!("{KERNELS_KEY}{name}");
                let (spec, chosen) = match choices.iter().find(|c| c.key == key) {
                    Some(choice) => (choice.clone(), true),
                    None => {
                        let spec = ComponentSpec {
                            type_name: self.default_kernel(name, &key, file)?,
                            key,
                            config: serde_json::Value::Object(serde_json::Map::new()),
                            overridden: Default::default(),
                        };
                        (spec, false)
                    }
                };
                Ok(KernelSpec {
                    name: name.to_string(),
                    spec,
                    chosen,
                })
            })
            .collect()
    }

    /// Refuses a choice for kernel `name` whose implementation declares another signature
    /// than the kernels of that name: the transforms would call it with the wrong
    /// arguments. An implementation that does not resolve is left to `prepare` to report.
    fn check_signature(
        &self,
        name: &str,
        choice: &ComponentSpec,
        file: &Path,
    ) -> Result<(), HostError> {
        let Ok((_, _, chosen)) = self.resolve(ComponentKind::Kernel, &choice.type_name) else {
            return Ok(());
        };
        let mut expected: Vec<&Option<String>> = self
            .providers
            .iter()
            .filter_map(|(m, _)| m.component(ComponentKind::Kernel, name))
            .map(|info| &info.signature)
            .collect();
        expected.sort();
        expected.dedup();
        if expected.contains(&&chosen.signature) {
            return Ok(());
        }
        let shown = |signature: &Option<String>| {
            signature
                .as_deref()
                .map_or("none declared".to_string(), |s| format!("`{s}`"))
        };
        Err(HostError::Component(format!(
            "{}: [{}] type = \"{}\": kernel `{name}` is called as {}, but `{}` has the \
             signature {}; choose an implementation of `{name}`",
            file.display(),
            choice.key,
            choice.type_name,
            expected
                .iter()
                .map(|s| shown(s))
                .collect::<Vec<_>>()
                .join(" or "),
            choice.type_name,
            shown(&chosen.signature)
        )))
    }

    /// `plugin/name` of the default implementation of kernel `name` (config key `key`).
    fn default_kernel(&self, name: &str, key: &str, file: &Path) -> Result<String, HostError> {
        let providers: Vec<&(Manifest, Arc<Provider>)> = self
            .providers
            .iter()
            .filter(|(m, _)| m.component(ComponentKind::Kernel, name).is_some())
            .collect();
        let standard: Vec<_> = providers.iter().filter(|(_, p)| p.is_standard()).collect();
        match (providers.as_slice(), standard.as_slice()) {
            ([(m, _)], _) | (_, [(m, _)]) => Ok(format!("{}/{name}", m.name)),
            _ => Err(HostError::Component(format!(
                "{}: [{key}]: kernel `{name}` is provided by {}; choose one in the pipeline \
                 file: [pipeline.kernels] {name} = \"plugin/{name}\"",
                file.display(),
                providers
                    .iter()
                    .map(|(m, _)| format!("`{}/{name}`", m.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The plugin whose name, or library path, is `name_or_path`.
    pub fn find_plugin(&self, name_or_path: &str) -> Option<PluginEntry> {
        let as_path = Path::new(name_or_path).canonicalize().ok();
        self.plugins().into_iter().find(|entry| {
            entry.manifest.name == name_or_path
                || (as_path.is_some()
                    && entry.path.as_ref().and_then(|p| p.canonicalize().ok()) == as_path)
        })
    }
}

fn describe(provider: &Provider) -> String {
    match provider {
        Provider::Library { path, .. } => path.display().to_string(),
        Provider::InProcess(_) => "an in-process plugin".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, AsArray, Float64Array, RecordBatch};
    use arrow::datatypes::{Float64Type, SchemaRef};
    use mlpipe_plugin_api::{Config, ConfigKey, Kernel, Result};

    use super::*;
    use crate::config::PipelineConfig;

    /// Multiplies float64 values by a factor.
    struct Times(f64);

    impl Kernel for Times {
        fn call(&self, args: &[ArrayRef]) -> Result<ArrayRef> {
            let factor = self.0;
            let values = args[0].as_primitive::<Float64Type>();
            Ok(Arc::new(values.unary::<_, Float64Type>(|v| v * factor)))
        }
    }

    /// Applies the kernel `scale` to its one column.
    struct UsesKernel(Arc<dyn Kernel>);

    impl Transform for UsesKernel {
        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
            Ok(input.clone())
        }

        fn transform(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
            let scaled = self.0.call(&[batch.column(0).clone()])?;
            Ok(RecordBatch::try_new(batch.schema(), vec![scaled])?)
        }
    }

    fn registry() -> Registry {
        let signature = "(float64) -> float64";
        let mut registry = Registry::new();
        let standard = Plugin::new("std", "1.0.0")
            .kernel("scale", "doubles", signature, [], |_| Ok(Times(2.0)))
            .transform("apply", "applies `scale`", [], |config: &Config| {
                Ok(UsesKernel(config.kernel("scale")?))
            });
        let faster =
            Plugin::new("faster", "1.0.0")
                .kernel("scale", "triples", signature, [], |_| Ok(Times(3.0)));
        registry.add_in_process(standard).unwrap();
        registry.add_in_process(faster).unwrap();
        registry
    }

    fn scaled_by(pipeline: &str) -> std::result::Result<f64, String> {
        let config =
            PipelineConfig::parse(Path::new("p.toml"), pipeline, &[]).map_err(|e| e.to_string())?;
        let registry = registry();
        let kernels = registry
            .kernels(&config.kernels, &config.file)
            .map_err(|e| e.to_string())?;
        let stage = registry
            .transform_stage(
                &config.transforms[0],
                &config.file,
                Path::new("."),
                &kernels,
            )
            .map_err(|e| e.to_string())?;
        let mut transform = (stage.factory)().map_err(|e| e.to_string())?;
        let batch = RecordBatch::try_from_iter([(
            "x",
            Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
        )])
        .unwrap();
        let out = transform.transform(batch).map_err(|e| e.to_string())?;
        Ok(out.column(0).as_primitive::<Float64Type>().value(0))
    }

    const STAGES: &str =
        "[source]\ntype = \"s\"\n[sink]\ntype = \"k\"\n[[transform]]\ntype = \"apply\"\n";

    #[test]
    fn a_kernel_chosen_in_the_pipeline_replaces_the_default() {
        let chosen = format!("[pipeline.kernels]\nscale = \"faster/scale\"\n{STAGES}");
        assert_eq!(scaled_by(&chosen), Ok(3.0));
        let table = format!("[pipeline.kernels]\nscale = {{ type = \"std/scale\" }}\n{STAGES}");
        assert_eq!(scaled_by(&table), Ok(2.0));
    }

    #[test]
    fn a_component_that_declares_memory_budget_is_given_its_share() {
        let mut registry = Registry::new();
        let key = || ConfigKey::memory_budget("what it may hold");
        let make = |config: &Config| Ok(UsesKernel(config.kernel("scale")?));
        let plugin = Plugin::new("p", "1.0.0")
            .transform("sized", "sizes by its budget", [key()], make)
            .transform("unsized", "does not", [], make);
        registry.add_in_process(plugin).unwrap();
        let pipeline = "[source]\ntype = \"s\"\n[sink]\ntype = \"k\"\n\
                        [[transform]]\ntype = \"sized\"\n\
                        [[transform]]\ntype = \"sized\"\nmemory_budget = \"1KiB\"\n\
                        [[transform]]\ntype = \"unsized\"\n";
        let config = PipelineConfig::parse(Path::new("p.toml"), pipeline, &[]).unwrap();
        let given: Vec<Option<serde_json::Value>> = config
            .transforms
            .iter()
            .map(|spec| {
                registry
                    .with_memory_share(ComponentKind::Transform, spec, 4096)
                    .config
                    .get(MEMORY_BUDGET_KEY)
                    .cloned()
            })
            .collect();
        assert_eq!(
            given,
            [Some(4096.into()), Some("1KiB".into()), None],
            "the share, the pipeline file's own value, nothing for a component without the key"
        );
    }

    #[test]
    fn two_providers_and_no_choice_is_an_error_that_says_how_to_choose() {
        let error = scaled_by(STAGES).unwrap_err();
        assert!(
            error.contains("[pipeline.kernels] scale = \"plugin/scale\""),
            "{error}"
        );
        let unknown = format!("[pipeline.kernels]\nnope = \"std/nope\"\n{STAGES}");
        let error = scaled_by(&unknown).unwrap_err();
        assert!(
            error.contains("no plugin provides a kernel named `nope`"),
            "{error}"
        );
    }
}
