//! The root module every plugin library exports, how the export macro builds it, and how
//! the host loads it.
//!
//! Versioning has two layers:
//! - `abi_stable` checks the layout of [`PluginMod`] and of every type reachable from it
//!   (the prefix-type rules let a newer host load a plugin built earlier). Its own
//!   interface-version check is pinned to [`ABI_EPOCH`], which never changes while the
//!   `abi_stable` ABI stays.
//! - mlpipe checks the `mlpipe-plugin-api` version the plugin was built against
//!   (`api_version`, a field read without running plugin code) with semver: the same
//!   major version, or for `0.x` the same minor version.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use abi_stable::StableAbi;
use abi_stable::library::{LibHeader, LibraryError, RootModule, RootModuleResult};
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RSlice, RStr, RString};

use super::error::{FfiError, guard, into_result, panic_message};
use super::kernel::{BorrowedKernel, FfiKernel, FfiKernelBinding, FfiKernelRef};
use super::sink::{FfiSink, ForeignSink};
use super::source::{FfiSource, ForeignSource};
use super::transform::{FfiTransform, ForeignTransform};
use crate::error::{Error, Result};
use crate::manifest::{Kernels, Manifest};
use crate::plugin::Plugin;
use crate::traits::{Sink, Source, Transform};

/// The `abi_stable` interface version of [`PluginMod`]. It stays `1.0.0` for as long as
/// mlpipe uses `abi_stable`; mlpipe's own compatibility is `api_version`.
pub const ABI_EPOCH: &str = "1.0.0";

/// The root module of a plugin library. A prefix type: entries are only ever appended
/// after `create_kernel`, and a newer host sees them as absent in plugins built earlier.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
pub struct PluginMod {
    /// The `mlpipe-plugin-api` version the plugin was built against.
    api_version: RStr<'static>,
    /// The manifest as JSON.
    manifest: extern "C" fn() -> RResult<RString, FfiError>,
    create_source: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<FfiSource, FfiError>,
    create_transform: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<FfiTransform, FfiError>,
    create_sink: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<FfiSink, FfiError>,
    #[sabi(last_prefix_field)]
    create_kernel: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<FfiKernel, FfiError>,
    /// Like `create_transform`, with the kernels the pipeline resolved. Absent in plugins
    /// built before kernels could be handed over; the host then calls `create_transform`.
    create_transform_with_kernels: extern "C" fn(
        RStr<'_>,
        RStr<'_>,
        RSlice<'_, FfiKernelBinding<'_>>,
    ) -> RResult<FfiTransform, FfiError>,
}

impl RootModule for PluginModRef {
    abi_stable::declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "mlpipe_plugin";
    const NAME: &'static str = "mlpipe plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(ABI_EPOCH);
}

/// The name of the symbol through which `abi_stable` finds the root module. The export
/// macro needs it as a literal; a test checks it against `abi_stable`'s own.
pub const ROOT_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

struct Definition {
    define: fn() -> Plugin,
    api_version: &'static str,
}

static DEFINITION: OnceLock<Definition> = OnceLock::new();
static PLUGIN: OnceLock<std::result::Result<Plugin, String>> = OnceLock::new();

/// The plugin this library exports, built on first use; a panic while building it is an
/// error on every call.
fn plugin() -> Result<&'static Plugin> {
    let built = PLUGIN.get_or_init(|| {
        let definition = DEFINITION
            .get()
            .ok_or_else(|| "the plugin was used before its root module was loaded".to_string())?;
        std::panic::catch_unwind(definition.define).map_err(|payload| {
            format!(
                "panicked while defining the plugin: {}",
                panic_message(payload.as_ref())
            )
        })
    });
    built
        .as_ref()
        .map_err(|message| Error::internal(message.clone()))
}

extern "C" fn manifest() -> RResult<RString, FfiError> {
    guard(|| {
        let mut manifest = plugin()?.manifest();
        if let Some(definition) = DEFINITION.get() {
            manifest.api_version = definition.api_version.to_string();
        }
        serde_json::to_string(&manifest)
            .map(RString::from)
            .map_err(|e| Error::internal(format!("cannot serialize the manifest: {e}")))
    })
}

fn parse_config(config: RStr<'_>) -> Result<serde_json::Value> {
    serde_json::from_str(config.as_str())
        .map_err(|e| Error::config(format!("the config is not valid JSON: {e}")))
}

extern "C" fn create_source(name: RStr<'_>, config: RStr<'_>) -> RResult<FfiSource, FfiError> {
    guard(|| {
        let source = plugin()?.create_source(name.as_str(), &parse_config(config)?)?;
        Ok(super::source::export(source))
    })
}

extern "C" fn create_transform(
    name: RStr<'_>,
    config: RStr<'_>,
) -> RResult<FfiTransform, FfiError> {
    create_transform_with_kernels(name, config, RSlice::default())
}

extern "C" fn create_transform_with_kernels(
    name: RStr<'_>,
    config: RStr<'_>,
    kernels: RSlice<'_, FfiKernelBinding<'_>>,
) -> RResult<FfiTransform, FfiError> {
    guard(|| {
        let mut lent = Kernels::default();
        for binding in kernels.iter() {
            lent.insert(
                binding.name.as_str(),
                Arc::new(BorrowedKernel::new(binding.kernel)),
            );
        }
        let transform =
            plugin()?.create_transform_with_kernels(name.as_str(), &parse_config(config)?, lent)?;
        Ok(super::transform::export(transform))
    })
}

extern "C" fn create_sink(name: RStr<'_>, config: RStr<'_>) -> RResult<FfiSink, FfiError> {
    guard(|| {
        let sink = plugin()?.create_sink(name.as_str(), &parse_config(config)?)?;
        Ok(super::sink::export(sink))
    })
}

extern "C" fn create_kernel(name: RStr<'_>, config: RStr<'_>) -> RResult<FfiKernel, FfiError> {
    guard(|| {
        let kernel = plugin()?.create_kernel(name.as_str(), &parse_config(config)?)?;
        Ok(super::kernel::export(kernel))
    })
}

fn build_root_module() -> PluginModRef {
    let api_version = DEFINITION
        .get()
        .map_or(crate::API_VERSION, |d| d.api_version);
    PluginMod {
        api_version: RStr::from_str(api_version),
        manifest,
        create_source,
        create_transform,
        create_sink,
        create_kernel,
        create_transform_with_kernels,
    }
    .leak_into_prefix()
}

/// Called by the code [`export_plugin!`](crate::export_plugin) generates when the host
/// loads the library: records the plugin definition and returns the root module.
#[doc(hidden)]
pub fn root_module(define: fn() -> Plugin, api_version: &'static str) -> RootModuleResult {
    let _ = DEFINITION.set(Definition {
        define,
        api_version,
    });
    abi_stable::library::__call_root_module_loader(build_root_module)
}

/// The static the export macro places in the library under [`ROOT_SYMBOL`].
#[doc(hidden)]
pub const fn lib_header(constructor: extern "C" fn() -> RootModuleResult) -> LibHeader {
    // SAFETY: `constructor` is generated by `export_plugin!` and returns what
    // `root_module` returns: a `PluginModRef` erased by `__call_root_module_loader`,
    // exactly the module type this header declares.
    unsafe {
        LibHeader::from_constructor::<PluginModRef>(
            constructor,
            abi_stable::library::CheckTypeLayout::Yes,
        )
    }
}

/// Why a library could not be loaded as a plugin.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be opened as a shared library.
    Open(String),
    /// The library exports no mlpipe root module: it is not a plugin.
    NotAPlugin(String),
    /// The library is a plugin, but built against an incompatible ABI or API version.
    Incompatible(String),
    /// The plugin failed while describing itself.
    Broken(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Open(m)
            | LoadError::NotAPlugin(m)
            | LoadError::Incompatible(m)
            | LoadError::Broken(m) => f.write_str(m),
        }
    }
}

/// Whether a plugin built against API `plugin` can be loaded by a host built against API
/// `host`: the same major version, and for `0.x` the same minor version (semver's caret
/// rule, in both directions, since prefix types make older and newer tables readable).
pub fn api_compatible(host: &semver::Version, plugin: &semver::Version) -> bool {
    host.major == plugin.major && (host.major != 0 || host.minor == plugin.minor)
}

/// A plugin library the host has loaded: its manifest, and constructors that return the
/// host-side wrappers of its components. Libraries are never unloaded.
#[derive(Debug)]
pub struct PluginLibrary {
    module: PluginModRef,
    manifest: Manifest,
}

impl std::fmt::Debug for PluginModRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginModRef")
    }
}

impl PluginLibrary {
    /// Loads the plugin at `path` (already opened by the caller, which keeps it loaded):
    /// checks the `abi_stable` layout, then the API version, and only then runs plugin
    /// code, to read the manifest.
    ///
    /// Uses `lib_header_from_path` + `init_root_module` rather than
    /// `RootModule::load_from_file`, which caches one module per type and would return the
    /// first plugin for every later path.
    pub fn load(path: &Path) -> std::result::Result<PluginLibrary, LoadError> {
        let shown = path.display();
        let header = abi_stable::library::lib_header_from_path(path).map_err(|e| match e {
            LibraryError::OpenError { .. } => {
                LoadError::Open(format!("{shown}: cannot open the library: {e}"))
            }
            LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin(format!(
                "{shown} is not an mlpipe plugin: it is a shared library, but it does not export \
                 the mlpipe root module (symbol `{ROOT_SYMBOL}`)."
            )),
            _ => {
                LoadError::Incompatible(format!("{shown} is not a plugin this host can load: {e}"))
            }
        })?;
        let module = header.init_root_module::<PluginModRef>().map_err(|e| {
            LoadError::Incompatible(format!(
                "{shown} was built against an incompatible plugin ABI: {e}\nRebuild the plugin \
                 against mlpipe-plugin-api {} (the version this host uses).",
                crate::API_VERSION
            ))
        })?;
        let declared = module.api_version().as_str();
        let host_version = semver::Version::parse(crate::API_VERSION).ok();
        let compatible = match (host_version, semver::Version::parse(declared).ok()) {
            (Some(host), Some(plugin)) => api_compatible(&host, &plugin),
            _ => false,
        };
        if !compatible {
            return Err(LoadError::Incompatible(format!(
                "{shown} was built against mlpipe-plugin-api {declared}, which this host \
                 (mlpipe-plugin-api {host}) cannot load: the major versions (for 0.x, the minor \
                 versions) must match.\nRebuild the plugin against mlpipe-plugin-api {host}, or \
                 use a host built for API {declared}.",
                host = crate::API_VERSION
            )));
        }
        let json = into_result((module.manifest())()).map_err(|e| {
            LoadError::Broken(format!(
                "{shown}: the plugin failed to describe itself: {e}"
            ))
        })?;
        let manifest: Manifest = serde_json::from_str(json.as_str()).map_err(|e| {
            LoadError::Broken(format!("{shown}: the plugin's manifest is malformed: {e}"))
        })?;
        Ok(PluginLibrary { module, manifest })
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn config_json(config: &serde_json::Value) -> String {
        config.to_string()
    }

    /// Creates a source; the config is the JSON the manifest's keys describe.
    pub fn create_source(&self, name: &str, config: &serde_json::Value) -> Result<Box<dyn Source>> {
        let json = Self::config_json(config);
        let handle = into_result((self.module.create_source())(
            name.into(),
            json.as_str().into(),
        ))?;
        Ok(Box::new(ForeignSource::new(handle)))
    }

    /// Creates a transform, handing it `kernels` (which the caller keeps alive for the
    /// life of the process, see [`FfiKernel::leak`]). A plugin built before kernels could
    /// be handed over gets none.
    pub fn create_transform(
        &self,
        name: &str,
        config: &serde_json::Value,
        kernels: &[(String, FfiKernelRef)],
    ) -> Result<Box<dyn Transform>> {
        let json = Self::config_json(config);
        let (name, config) = (RStr::from_str(name), RStr::from_str(json.as_str()));
        let handle = match self.module.create_transform_with_kernels() {
            Some(create) => {
                let bindings: Vec<FfiKernelBinding<'_>> = kernels
                    .iter()
                    .map(|(name, kernel)| FfiKernelBinding {
                        name: RStr::from_str(name),
                        kernel: *kernel,
                    })
                    .collect();
                into_result(create(name, config, bindings.as_slice().into()))?
            }
            None => into_result((self.module.create_transform())(name, config))?,
        };
        Ok(Box::new(ForeignTransform::new(handle)))
    }

    /// Creates a sink.
    pub fn create_sink(&self, name: &str, config: &serde_json::Value) -> Result<Box<dyn Sink>> {
        let json = Self::config_json(config);
        let handle = into_result((self.module.create_sink())(
            name.into(),
            json.as_str().into(),
        ))?;
        Ok(Box::new(ForeignSink::new(handle)))
    }

    /// Creates a kernel, as a raw handle that can be leaked and lent to other plugins.
    pub fn create_kernel(&self, name: &str, config: &serde_json::Value) -> Result<FfiKernel> {
        let json = Self::config_json(config);
        into_result((self.module.create_kernel())(
            name.into(),
            json.as_str().into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_symbol_is_abi_stables() {
        assert_eq!(ROOT_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME);
    }

    #[test]
    fn api_compatibility_follows_semver() {
        let v = |s| semver::Version::parse(s).unwrap();
        assert!(api_compatible(&v("0.1.0"), &v("0.1.7")));
        assert!(api_compatible(&v("0.1.9"), &v("0.1.0")));
        assert!(!api_compatible(&v("0.1.0"), &v("0.2.0")));
        assert!(api_compatible(&v("1.4.0"), &v("1.0.2")));
        assert!(!api_compatible(&v("1.0.0"), &v("2.0.0")));
    }
}
