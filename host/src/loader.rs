//! Finds plugin libraries and opens them: the only module of the host that touches
//! dynamic loading.
//!
//! Each library is opened once with `RTLD_NOW` (a library with unresolved symbols fails
//! here, with a message, instead of crashing later) and is never unloaded: release
//! callbacks of batches it produced, and its vtables, live in it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use mlpipe_plugin_api::ffi::{LoadError, PluginLibrary};

use crate::error::HostError;

/// The file-name stem prefix of the standard plugins, which the host finds next to its
/// binary: `libmlpipe_plugin_csv.so` on Linux, `mlpipe_plugin_csv.dll` on Windows.
pub const STANDARD_STEM: &str = "mlpipe_plugin_";

/// Where to look for plugins, in the order they are loaded.
#[derive(Debug, Clone, Default)]
pub struct PluginSearch {
    /// `--plugin PATH`: library files.
    pub files: Vec<PathBuf>,
    /// `--plugin-dir DIR` and the directories of `MLPIPE_PLUGIN_PATH`: every library in them.
    pub dirs: Vec<PathBuf>,
    /// The directory whose standard plugins (`libmlpipe_plugin_*`) are loaded, normally the
    /// directory of the host binary.
    pub standard_dir: Option<PathBuf>,
}

impl PluginSearch {
    /// The usual search: explicit files and dirs, `MLPIPE_PLUGIN_PATH`, then the standard
    /// plugins beside the running binary.
    pub fn from_environment(files: Vec<PathBuf>, mut dirs: Vec<PathBuf>) -> PluginSearch {
        let mut files = files;
        if let Some(paths) = std::env::var_os("MLPIPE_PLUGIN_PATH") {
            for path in std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()) {
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        let standard_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        PluginSearch {
            files,
            dirs,
            standard_dir,
        }
    }

    /// Every library file to load, each once, in order.
    pub fn library_files(&self) -> Result<Vec<PathBuf>, HostError> {
        let mut found = self.files.clone();
        for dir in &self.dirs {
            found.extend(libraries_in(dir, |_| true)?);
        }
        if let Some(dir) = &self.standard_dir {
            let standard = libraries_in(dir, |name| {
                name.strip_prefix(std::env::consts::DLL_PREFIX)
                    .is_some_and(|stem| stem.starts_with(STANDARD_STEM))
            });
            // A missing standard directory is not an error: the host may be embedded.
            found.extend(standard.unwrap_or_default());
        }
        let mut seen = std::collections::HashSet::new();
        Ok(found
            .into_iter()
            .filter(|path| seen.insert(path.canonicalize().unwrap_or_else(|_| path.clone())))
            .collect())
    }
}

fn libraries_in(dir: &Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, HostError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        HostError::Plugin(format!(
            "cannot read the plugin directory {}: {e}\nCheck the path given to --plugin-dir or in MLPIPE_PLUGIN_PATH.",
            dir.display()
        ))
    })?;
    let mut libraries: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let name = path.file_name().and_then(OsStr::to_str).unwrap_or("");
            path.is_file() && name.ends_with(std::env::consts::DLL_SUFFIX) && wanted(name)
        })
        .collect();
    libraries.sort();
    Ok(libraries)
}

/// Opens one plugin library and reads its manifest.
pub fn open(path: &Path) -> Result<PluginLibrary, HostError> {
    if !path.is_file() {
        return Err(HostError::Plugin(format!(
            "plugin file not found: {}\nCheck the path given to --plugin (a plugin is a shared \
             library such as target/release/libmy_plugin.so, built with crate-type = [\"cdylib\"]).",
            path.display()
        )));
    }
    open_now(path)?;
    PluginLibrary::load(path).map_err(|e| {
        HostError::Plugin(match e {
            LoadError::NotAPlugin(message) => format!(
                "{message}\nOnly libraries built with mlpipe_plugin_api::export_plugin! can be \
                 loaded with --plugin."
            ),
            other => other.to_string(),
        })
    })
}

/// Opens the library with every symbol resolved now, and keeps it open for the life of
/// the process; `abi_stable`'s later open of the same path reuses this mapping.
#[cfg(unix)]
fn open_now(path: &Path) -> Result<(), HostError> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: opening a library runs its initializers. mlpipe plugins are Rust cdylibs
    // whose initializers only set up the Rust runtime; loading arbitrary code is what
    // `--plugin` asks for, and the user chose the file.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
        HostError::Plugin(format!(
            "{}: cannot load the library: {e}\nIt may have been built for another platform or \
             against libraries this machine lacks.",
            path.display()
        ))
    })?;
    std::mem::forget(library);
    Ok(())
}

#[cfg(not(unix))]
fn open_now(_path: &Path) -> Result<(), HostError> {
    Ok(())
}
