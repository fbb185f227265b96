//! An output directory written atomically: the shards and the index go to a temporary
//! directory beside the output, renamed onto it by [`PendingDir::commit`]; dropped without
//! a commit (a failed or interrupted run), the temporary directory is deleted, so nothing
//! is left at the output path. `files::PendingOutput` does the same for single files.

use std::fs::{self, File};
use std::io::ErrorKind as IoErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use mlpipe_plugin_api::{Error, Result};

/// Distinguishes the temporary directories of several outputs of one process.
static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory being written; it appears at its path only when committed.
#[derive(Debug)]
pub(crate) struct PendingDir {
    path: PathBuf,
    temp: Option<PathBuf>,
    overwrite: bool,
}

impl PendingDir {
    /// Checks the output path (an existing one is refused unless `overwrite`; a file
    /// always is), creates its parent if missing, and creates the temporary directory.
    pub(crate) fn create(path: &Path, overwrite: bool) -> Result<PendingDir> {
        let shown = path.display();
        match fs::metadata(path) {
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::config(format!(
                    "{shown} is a file; the tensor sink writes a directory: set `path` to a \
                     directory name"
                )));
            }
            Ok(_) if !overwrite => {
                return Err(Error::config(format!(
                    "{shown} already exists; set `overwrite = true` on the sink to replace it, \
                     or choose another `path`"
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == IoErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("{shown}: cannot check the output: {e}"))),
        }
        let temp = sibling(path, "tmp")?;
        fs::create_dir_all(&temp).map_err(|e| {
            Error::io(format!(
                "{shown}: cannot create the temporary directory {}: {e}",
                temp.display()
            ))
        })?;
        Ok(PendingDir {
            path: path.to_path_buf(),
            temp: Some(temp),
            overwrite,
        })
    }

    /// The temporary directory the files go to.
    pub(crate) fn dir(&self) -> &Path {
        self.temp.as_deref().unwrap_or(&self.path)
    }

    /// Moves the finished directory onto the output path (replacing an existing one when
    /// `overwrite`: the old directory is renamed aside first and deleted after).
    pub(crate) fn commit(mut self) -> Result<()> {
        let shown = self.path.display().to_string();
        let Some(temp) = self.temp.clone() else {
            return Err(Error::internal(format!("{shown}: committed twice")));
        };
        let old = match fs::metadata(&self.path) {
            Ok(_) if !self.overwrite => {
                return Err(Error::config(format!(
                    "{shown} was created by someone else while the pipeline ran; nothing was \
                     replaced. Set `overwrite = true` on the sink to replace it"
                )));
            }
            Ok(_) => {
                let old = sibling(&self.path, "old")?;
                fs::rename(&self.path, &old).map_err(|e| {
                    Error::io(format!("{shown}: cannot move the old output aside: {e}"))
                })?;
                Some(old)
            }
            Err(_) => None,
        };
        fs::rename(&temp, &self.path).map_err(|e| {
            Error::io(format!(
                "{shown}: cannot move the finished directory {} into place: {e}",
                temp.display()
            ))
        })?;
        self.temp = None;
        if let Some(old) = old {
            fs::remove_dir_all(&old).map_err(|e| {
                Error::io(format!(
                    "{shown}: written, but the old output moved to {} cannot be deleted: {e}",
                    old.display()
                ))
            })?;
        }
        // Makes the rename durable; not every platform can open a directory.
        if let Some(parent) = self.path.parent()
            && let Ok(dir) = File::open(parent)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for PendingDir {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            // Nothing more can be done if this fails; the name marks the directory as ours.
            let _ = fs::remove_dir_all(temp);
        }
    }
}

/// A hidden name beside `path` for a temporary or an old directory.
fn sibling(path: &Path, what: &str) -> Result<PathBuf> {
    let Some(name) = path.file_name() else {
        return Err(Error::config(format!(
            "{} does not name a directory; give the sink's `path` a name",
            path.display()
        )));
    };
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(parent.join(format!(
        ".{}.mlpipe-{what}-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_directory_appears_only_when_committed() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("out");
        let pending = PendingDir::create(&path, false).unwrap();
        fs::write(pending.dir().join("a"), "1").unwrap();
        drop(pending);
        assert!(entries(root.path()).is_empty());

        let pending = PendingDir::create(&path, false).unwrap();
        fs::write(pending.dir().join("a"), "2").unwrap();
        pending.commit().unwrap();
        assert_eq!(entries(&path), ["a"]);

        let error = PendingDir::create(&path, false).unwrap_err();
        assert!(error.message().contains("overwrite = true"), "{error}");
        let pending = PendingDir::create(&path, true).unwrap();
        fs::write(pending.dir().join("b"), "3").unwrap();
        pending.commit().unwrap();
        assert_eq!(entries(&path), ["b"]);
        assert_eq!(entries(root.path()), ["out"]);
    }

    #[test]
    fn a_file_at_the_path_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("file");
        fs::write(&path, "x").unwrap();
        let error = PendingDir::create(&path, true).unwrap_err();
        assert!(error.message().contains("is a file"), "{error}");
    }
}
