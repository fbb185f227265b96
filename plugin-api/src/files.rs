//! Files for sources and sinks: expanding a dataset's paths, writing an output file
//! atomically, and syncing a large output in the background as it grows.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind as IoErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// Expands the value of a [`ConfigType::Paths`](crate::ConfigType::Paths) key into the
/// files of a dataset, in a stable order:
///
/// - a glob pattern (`data/*.parquet`, `logs/**/part-*.csv`) gives the files it matches,
///   sorted (`*` does not match a leading `.`);
/// - a directory gives the files under it (recursively, sorted), skipping hidden files and
///   names starting with `_` (`_SUCCESS`, `_metadata`), and keeping only names ending in
///   one of `extensions` when that is not empty;
/// - anything else must be an existing file.
///
/// `key` names the config key in errors. A pattern or directory that yields no file is an
/// error, as is a missing file.
pub fn expand(paths: &[String], key: &str, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in paths {
        let before = files.len();
        if entry.contains(['*', '?', '[']) {
            let options = glob::MatchOptions {
                require_literal_leading_dot: true,
                ..glob::MatchOptions::new()
            };
            let matches = glob::glob_with(entry, options).map_err(|e| {
                Error::config(format!(
                    "key `{key}`: {entry:?} is not a valid glob pattern: {e}"
                ))
            })?;
            for found in matches {
                let found = found.map_err(|e| Error::io(format!("key `{key}`: {entry}: {e}")))?;
                if found.is_file() {
                    files.push(found);
                }
            }
        } else {
            let path = Path::new(entry);
            match fs::metadata(path) {
                Ok(meta) if meta.is_dir() => walk(path, extensions, &mut files)?,
                Ok(_) => files.push(path.to_path_buf()),
                Err(e) if e.kind() == IoErrorKind::NotFound => {
                    return Err(Error::io(format!(
                        "{entry}: no such file or directory (key `{key}`); check the path, \
                         which is relative to the pipeline file's directory"
                    )));
                }
                Err(e) => return Err(Error::io(format!("{entry}: cannot read: {e}"))),
            }
        }
        if files.len() == before {
            let wanted = if extensions.is_empty() {
                String::new()
            } else {
                format!(" ending in {}", extensions.join(" or "))
            };
            return Err(Error::io(format!(
                "key `{key}`: {entry:?} matches no file{wanted}"
            )));
        }
    }
    Ok(files)
}

fn walk(dir: &Path, extensions: &[&str], files: &mut Vec<PathBuf>) -> Result<()> {
    let read =
        |e: std::io::Error| Error::io(format!("{}: cannot list the directory: {e}", dir.display()));
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(read)?;
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if path.is_dir() {
            walk(&path, extensions, files)?;
        } else if extensions.is_empty() || extensions.iter().any(|ext| name.ends_with(ext)) {
            files.push(path);
        }
    }
    Ok(())
}

/// Distinguishes the temporary files of several outputs of one process.
static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// An output file written atomically: the data goes to a temporary file beside `path`
/// (same directory, so the final rename stays on one file system), which
/// [`commit`](PendingOutput::commit) syncs and renames onto `path`. Dropped without a
/// commit — the run failed or was interrupted — it deletes the temporary file, so a
/// failed run never leaves a partial file at the output path.
#[derive(Debug)]
pub struct PendingOutput {
    path: PathBuf,
    temp: Option<PathBuf>,
    overwrite: bool,
}

impl PendingOutput {
    /// Checks the output path (an existing file is refused unless `overwrite`; a directory
    /// always is), creates its directory if missing, and opens the temporary file, which
    /// syncs itself in the background as it grows ([`SyncingFile`]).
    pub fn create(path: &Path, overwrite: bool) -> Result<(PendingOutput, SyncingFile)> {
        let shown = path.display();
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::config(format!(
                    "{shown} is a directory; set the sink's `path` to a file name inside it"
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
        let Some(name) = path.file_name() else {
            return Err(Error::config(format!(
                "{shown} does not name a file; give the sink's `path` a file name"
            )));
        };
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(|e| {
            Error::io(format!(
                "{shown}: cannot create the output directory {}: {e}",
                dir.display()
            ))
        })?;
        let temp = dir.join(format!(
            ".{}.mlpipe-tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| {
                Error::io(format!(
                    "{shown}: cannot create the temporary file {}: {e}",
                    temp.display()
                ))
            })?;
        let file = SyncingFile::new(file).map_err(|e| {
            Error::io(format!(
                "{shown}: cannot start syncing the temporary file {}: {e}",
                temp.display()
            ))
        })?;
        let pending = PendingOutput {
            path: path.to_path_buf(),
            temp: Some(temp),
            overwrite,
        };
        Ok((pending, file))
    }

    /// The final output path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the finished file and renames it onto the output path. `file` is the one
    /// [`create`](PendingOutput::create) returned (after the writer is done with it).
    pub fn commit(mut self, file: SyncingFile) -> Result<()> {
        let shown = self.path.display().to_string();
        let Some(temp) = self.temp.clone() else {
            return Err(Error::internal(format!("{shown}: committed twice")));
        };
        let file = file.finish().map_err(|e| {
            Error::io(format!(
                "{shown}: a background sync of the temporary file {} failed: {e}",
                temp.display()
            ))
        })?;
        file.sync_all().map_err(|e| {
            Error::io(format!(
                "{shown}: cannot sync the temporary file {}: {e}",
                temp.display()
            ))
        })?;
        drop(file);
        if !self.overwrite && self.path.exists() {
            return Err(Error::config(format!(
                "{shown} was created by someone else while the pipeline ran; nothing was \
                 replaced. Set `overwrite = true` on the sink to replace it"
            )));
        }
        fs::rename(&temp, &self.path).map_err(|e| {
            Error::io(format!(
                "{shown}: cannot move the finished temporary file {} into place: {e}",
                temp.display()
            ))
        })?;
        self.temp = None;
        // Makes the rename itself durable; not every platform can open a directory.
        if let Some(dir) = temp.parent()
            && let Ok(dir) = File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            // Nothing more can be done if this fails; the name marks the file as ours.
            let _ = fs::remove_file(temp);
        }
    }
}

/// A sink's output grows by this many bytes between two background syncs
/// ([`SyncingFile`]).
pub const WRITEBACK_BYTES: u64 = 64 << 20;

/// An output file that syncs itself on a thread of its own each time [`WRITEBACK_BYTES`]
/// more bytes have been written through it, so that the sync of [`PendingOutput::commit`]
/// finds little left to write: on a machine with much memory the kernel starts writing
/// dirty pages late, and a large output would otherwise reach the disk only while the run
/// waits for that last sync, both cores idle. Writing never waits for a sync: a request made
/// while one runs is merged into the next.
///
/// A sink writes through it (behind its own buffering) and commits the file
/// [`finish`](SyncingFile::finish) returns. A failed background sync is kept and returned
/// there: on Linux an error a sync reports is not reported again to the next one.
#[derive(Debug)]
pub struct SyncingFile {
    file: File,
    written: u64,
    requested_at: u64,
    requests: Option<SyncSender<()>>,
    syncer: Option<JoinHandle<std::io::Result<()>>>,
}

impl SyncingFile {
    /// Starts syncing `file` (a second handle to it is kept by the syncing thread).
    pub fn new(file: File) -> std::io::Result<SyncingFile> {
        let synced = file.try_clone()?;
        let (requests, received) = sync_channel::<()>(1);
        let syncer = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                for () in received {
                    synced.sync_data()?;
                }
                Ok(())
            })?;
        Ok(SyncingFile {
            file,
            written: 0,
            requested_at: 0,
            requests: Some(requests),
            syncer: Some(syncer),
        })
    }

    /// Bytes written through it so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Waits for the sync in progress, stops the syncing thread, and returns the file (to
    /// commit), or the first error a background sync met.
    pub fn finish(mut self) -> std::io::Result<File> {
        self.stop_syncing()?;
        // A handle of its own: `self` (which implements `Drop`) cannot give its field away.
        self.file.try_clone()
    }

    /// Waits for the sync in progress and stops the syncing thread (a finished file that
    /// waits for its commit needs none); returns the first error a background sync met.
    /// Writing on afterwards is allowed, without background syncs.
    pub fn stop_syncing(&mut self) -> std::io::Result<()> {
        self.requests = None;
        match self.syncer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the writeback thread panicked")),
            None => Ok(()),
        }
    }
}

impl std::io::Write for SyncingFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.written += written as u64;
        if self.written - self.requested_at >= WRITEBACK_BYTES
            && let Some(requests) = &self.requests
            && requests.try_send(()).is_ok()
        {
            self.requested_at = self.written;
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for SyncingFile {
    fn drop(&mut self) {
        // An unfinished output belongs to a failed run: its file is deleted anyway.
        let _ = self.stop_syncing();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(files: &[PathBuf], dir: &Path) -> Vec<String> {
        files
            .iter()
            .map(|f| f.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn globs_directories_and_files_expand_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in [
            "b.csv",
            "a.csv",
            "c.txt",
            "_SUCCESS",
            ".hidden.csv",
            "sub/d.csv",
        ] {
            let path = root.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "x").unwrap();
        }
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let listed = expand(&[s(root)], "path", &[".csv"]).unwrap();
        assert_eq!(names(&listed, root), ["a.csv", "b.csv", "sub/d.csv"]);
        let globbed = expand(&[s(&root.join("*.csv"))], "path", &[]).unwrap();
        assert_eq!(names(&globbed, root), ["a.csv", "b.csv"]);
        let files = expand(
            &[s(&root.join("c.txt")), s(&root.join("a.csv"))],
            "path",
            &[],
        )
        .unwrap();
        assert_eq!(names(&files, root), ["c.txt", "a.csv"]);
    }

    #[test]
    fn missing_and_empty_inputs_are_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.csv").to_string_lossy().into_owned();
        let error = expand(std::slice::from_ref(&missing), "path", &[]).unwrap_err();
        assert!(error.message().contains(&missing), "{error}");
        let pattern = dir.path().join("*.parquet").to_string_lossy().into_owned();
        let error = expand(&[pattern], "files", &[]).unwrap_err();
        assert!(error.message().contains("key `files`"), "{error}");
    }

    #[test]
    fn an_output_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/data.bin");
        let (pending, file) = PendingOutput::create(&path, false).unwrap();
        drop(file);
        drop(pending);
        assert!(!path.exists());
        assert_eq!(fs::read_dir(dir.path().join("out")).unwrap().count(), 0);
        let (pending, mut file) = PendingOutput::create(&path, false).unwrap();
        std::io::Write::write_all(&mut file, b"done").unwrap();
        pending.commit(file).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"done");
        let error = PendingOutput::create(&path, false).unwrap_err();
        assert!(error.message().contains("overwrite = true"), "{error}");
        assert!(PendingOutput::create(&path, true).is_ok());
    }

    #[test]
    fn a_syncing_file_syncs_as_it_grows_and_finishes_cleanly() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let (output, mut file) = PendingOutput::create(&dir.path().join("big.bin"), false).unwrap();
        let block = vec![7u8; 1 << 20];
        for _ in 0..WRITEBACK_BYTES / (1 << 20) + 1 {
            file.write_all(&block).unwrap();
        }
        assert_eq!(file.written(), WRITEBACK_BYTES + (1 << 20));
        assert!(file.requested_at >= WRITEBACK_BYTES, "a sync was asked for");
        output.commit(file).unwrap();
        assert_eq!(
            fs::metadata(dir.path().join("big.bin")).unwrap().len(),
            WRITEBACK_BYTES + (1 << 20)
        );
    }
}
