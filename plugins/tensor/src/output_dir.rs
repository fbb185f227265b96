//! An output directory written atomically: the shards and the index go to a temporary
//! directory beside the output, renamed onto it by [`PendingDir::commit`]; dropped without
//! a commit (a failed or interrupted run), the temporary directory is deleted, so nothing
//! is left at the output path. `files::PendingOutput` does the same for single files.

use std::fs::{self, File};
use std::io::ErrorKind as IoErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use mlpipe_plugin_api::{Error, Result};

/// The index a tensor sink's output holds.
pub(crate) const INDEX_FILE: &str = "index.json";

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
            Ok(_) => check_replaceable(path)?,
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
                check_replaceable(&self.path)?;
                let old = sibling(&self.path, "old")?;
                fs::rename(&self.path, &old).map_err(|e| {
                    Error::io(format!("{shown}: cannot move the old output aside: {e}"))
                })?;
                Some(old)
            }
            Err(_) => None,
        };
        if let Err(e) = fs::rename(&temp, &self.path) {
            // The old output goes back where it was: a failed run leaves `path` as it found it.
            let mut message = format!(
                "{shown}: cannot move the finished directory {} into place: {e}",
                temp.display()
            );
            if let Some(old) = &old
                && let Err(restore) = fs::rename(old, &self.path)
            {
                message += &format!(
                    "; the old output could not be moved back ({restore}): it is at {}",
                    old.display()
                );
            }
            return Err(Error::io(message));
        }
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

/// Refuses to replace a directory that is neither empty nor a tensor sink's output (with
/// its `index.json`): `overwrite` must not delete a tree that a mistyped `path` names.
fn check_replaceable(path: &Path) -> Result<()> {
    let shown = path.display();
    let cannot_read = |e: std::io::Error| Error::io(format!("{shown}: cannot read: {e}"));
    let empty = fs::read_dir(path).map_err(cannot_read)?.next().is_none();
    let index = fs::read_to_string(path.join(INDEX_FILE)).ok();
    let ours = index
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|index| index.get("format_version").is_some());
    if empty || ours {
        return Ok(());
    }
    Err(Error::config(format!(
        "{shown} exists and is not a tensor sink's output (no {INDEX_FILE} with a \
         format_version); `overwrite` replaces only such a directory or an empty one: \
         choose another `path`, or move the directory away"
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
        fs::write(pending.dir().join(INDEX_FILE), r#"{"format_version": 1}"#).unwrap();
        pending.commit().unwrap();
        assert_eq!(entries(&path), ["a", INDEX_FILE]);

        let error = PendingDir::create(&path, false).unwrap_err();
        assert!(error.message().contains("overwrite = true"), "{error}");
        let pending = PendingDir::create(&path, true).unwrap();
        fs::write(pending.dir().join("b"), "3").unwrap();
        pending.commit().unwrap();
        assert_eq!(entries(&path), ["b"]);
        assert_eq!(entries(root.path()), ["out"]);
    }

    #[test]
    fn overwrite_replaces_only_an_empty_directory_or_a_tensor_output() {
        let root = tempfile::tempdir().unwrap();
        let mistyped = root.path().join("data");
        fs::create_dir_all(mistyped.join("sub")).unwrap();
        fs::write(mistyped.join("sub").join("thesis.txt"), "years").unwrap();
        let error = PendingDir::create(&mistyped, true).unwrap_err();
        assert!(
            error.message().contains("is not a tensor sink's output"),
            "{error}"
        );
        assert_eq!(entries(&mistyped.join("sub")), ["thesis.txt"]);
        // Not even when it turns foreign while the run writes.
        let empty = root.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let pending = PendingDir::create(&empty, true).unwrap();
        fs::write(empty.join("notes"), "kept").unwrap();
        assert!(pending.commit().is_err());
        assert_eq!(entries(&empty), ["notes"]);
        let pending = PendingDir::create(&empty, true);
        assert!(pending.is_err());
        fs::remove_file(empty.join("notes")).unwrap();
        let pending = PendingDir::create(&empty, true).unwrap();
        fs::write(pending.dir().join("c"), "4").unwrap();
        pending.commit().unwrap();
        assert_eq!(entries(&empty), ["c"]);
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
