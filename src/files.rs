//! Which files a command touches: paths compared by the file they name on disk, not by
//! their spelling, and an exclusive lock on each output for the life of a run.
//!
//! `sub/../data.jsonl`, `./data.jsonl`, a symlink to it and a hard link to it are all
//! one file. An existing file is known by its device and inode; a file still to be made
//! by its directory's canonical path and its name. Every command that takes more than
//! one path asks [`check_distinct`] before it opens anything for writing.

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What a path names on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileId {
    /// A file that exists (symlinks followed): its device and inode.
    Existing { dev: u64, ino: u64 },
    /// A file not made yet: its directory, canonical, and its name in it.
    New { dir: PathBuf, name: OsString },
}

/// How many symlinks deep a dangling link is followed before giving up (Linux's own
/// limit is 40).
const MAX_LINKS: usize = 40;

impl FileId {
    pub fn of(path: &Path) -> FileId {
        Self::of_depth(path, 0)
    }

    fn of_depth(path: &Path, depth: usize) -> FileId {
        if let Ok(m) = std::fs::metadata(path) {
            #[cfg(unix)]
            return FileId::Existing {
                dev: dev_of(&m),
                ino: ino_of(&m),
            };
            // Without inodes, an existing file is its canonical path.
            #[cfg(not(unix))]
            if let Ok(c) = std::fs::canonicalize(path) {
                let _ = m;
                return FileId::New {
                    dir: c.parent().map(Path::to_path_buf).unwrap_or_default(),
                    name: c.file_name().map(OsString::from).unwrap_or_default(),
                };
            }
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // A dangling symlink: writing through it makes its target.
        if depth < MAX_LINKS {
            if let Ok(target) = std::fs::read_link(path) {
                return Self::of_depth(&parent.join(target), depth + 1);
            }
        }
        let name = path.file_name().map(OsString::from).unwrap_or_default();
        let dir = std::fs::canonicalize(&parent)
            .or_else(|_| std::path::absolute(&parent))
            .unwrap_or(parent);
        FileId::New { dir, name }
    }
}

#[cfg(unix)]
fn dev_of(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::dev(m)
}
#[cfg(unix)]
fn ino_of(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

/// Whether `a` and `b` name the same file (or would, once made).
pub fn same_file(a: &Path, b: &Path) -> bool {
    FileId::of(a) == FileId::of(b)
}

/// Refuse a command whose paths name one file twice; each pair is a flag and its path.
/// The message names both flags, so `--dropped sub/../in.jsonl` against `--input
/// in.jsonl` says which two collide.
pub fn check_distinct(paths: &[(&str, &Path)]) -> Result<()> {
    let ids: Vec<FileId> = paths.iter().map(|(_, p)| FileId::of(p)).collect();
    for i in 0..paths.len() {
        for j in i + 1..paths.len() {
            if ids[i] == ids[j] {
                let ((fa, a), (fb, b)) = (paths[i], paths[j]);
                return Err(Error::Usage(format!(
                    "{fa} `{}` and {fb} `{}` are the same file; give each its own",
                    a.display(),
                    b.display()
                )));
            }
        }
    }
    Ok(())
}

/// An exclusive advisory lock (`flock`) on an output file, held until dropped. The
/// kernel releases it when the process ends, however it ends, so a killed run leaves no
/// stale lock and resumes as before.
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
}

impl OutputLock {
    /// Lock `path`, making it (empty) if it does not exist; says whether it made it. A
    /// file another process holds is refused with that process's id where the system
    /// tells it.
    pub fn acquire(path: &Path) -> Result<(OutputLock, bool)> {
        let open = |create_new: bool| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(create_new)
                .open(path)
        };
        let (file, created) = match open(true) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                (open(false).map_err(|e| Error::io(path, e))?, false)
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        match file.try_lock() {
            Ok(()) => Ok((OutputLock { _file: file }, created)),
            Err(std::fs::TryLockError::WouldBlock) => {
                let who = holder_of(&file).map_or_else(
                    || "another process".to_string(),
                    |pid| format!("another process (pid {pid})"),
                );
                Err(Error::Usage(format!(
                    "`{}` is being written by {who}; two runs must not write one file\nhint: wait for that run to finish, or choose another output",
                    path.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }
}

#[cfg(unix)]
fn holder_of(file: &File) -> Option<u32> {
    let m = file.metadata().ok()?;
    lock_holder(dev_of(&m), ino_of(&m))
}
#[cfg(not(unix))]
fn holder_of(_: &File) -> Option<u32> {
    None
}

/// The process holding a `flock` on the file (device, inode), from Linux's
/// `/proc/locks`: lines like `1: FLOCK  ADVISORY  WRITE 4242 08:01:131090 0 EOF`, the
/// device as hexadecimal major:minor.
#[cfg(unix)]
fn lock_holder(dev: u64, ino: u64) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, id) = (f.get(1)?, f.get(4)?, f.get(5)?);
        (*kind == "FLOCK" && *id == want)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_symlinks_and_hard_links_name_one_file() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data.jsonl");
        std::fs::write(&data, "{}\n").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let dotted = d.path().join("sub/../data.jsonl");
        let link = d.path().join("link.jsonl");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        let hard = d.path().join("hard.jsonl");
        std::fs::hard_link(&data, &hard).unwrap();
        for other in [&dotted, &link, &hard] {
            assert!(same_file(&data, other), "{}", other.display());
        }
        // Files not made yet: by canonical directory and name.
        let new = d.path().join("new.jsonl");
        assert!(same_file(&new, &d.path().join("sub/../new.jsonl")));
        assert!(!same_file(&new, &d.path().join("sub/new.jsonl")));
        // A dangling symlink names the file it would make.
        let dangling = d.path().join("dangling.jsonl");
        std::os::unix::fs::symlink("new.jsonl", &dangling).unwrap();
        assert!(same_file(&new, &dangling));
        let err = check_distinct(&[("--input", &data), ("--dropped", &dotted)]).unwrap_err();
        assert!(err.to_string().contains("--input"), "{err}");
        assert!(err.to_string().contains("--dropped"), "{err}");
        assert!(check_distinct(&[("--input", &data), ("--out", &new)]).is_ok());
    }

    #[test]
    fn a_second_lock_is_refused_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out.jsonl");
        let (held, created) = OutputLock::acquire(&out).unwrap();
        assert!(created);
        // A second open file description conflicts like a second process would.
        let err = OutputLock::acquire(&out).unwrap_err().to_string();
        assert!(err.contains("being written by"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        let (_, created) = OutputLock::acquire(&out).unwrap();
        assert!(!created);
    }
}
