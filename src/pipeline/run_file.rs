//! A pipeline's output: append-only JSONL committed one wave at a time, a rejected
//! file beside it, and a run manifest that makes a killed run resumable.
//!
//! After each wave the records are appended and synced, then the manifest (written to a
//! temporary file and renamed) records how many waves and bytes are committed. On a
//! restart with the same parameters, both files are cut back to the committed length
//! (dropping a wave that was half-written when the run died) and the pipeline rebuilds
//! its state from the records. The result is byte-identical to a run never killed.

use crate::error::{Error, Result};
use crate::files::{check_distinct, same_file, OutputLock};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

pub struct RunFile {
    /// Tokens earlier runs of this output processed (prompt, generated).
    tokens_before: (u64, u64),
    out: PathBuf,
    rejected: Option<PathBuf>,
    manifest_path: PathBuf,
    pub manifest: Value,
    /// The sha256 of the committed bytes so far, of the output and the rejected file,
    /// written to the manifest at every commit so `merge` can tell a changed shard.
    out_hash: Sha256,
    rejected_hash: Sha256,
    /// Exclusive locks on the output and the rejected file, held for the run's life.
    _locks: Vec<OutputLock>,
}

/// The manifest's file name for an output file: `out.jsonl` → `out.jsonl.manifest.json`.
pub fn manifest_path(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".manifest.json");
    out.with_file_name(name)
}

/// Where a pipeline that must keep its rejections puts them when the user names no
/// file: `out.jsonl` → `out.rejected.jsonl`.
pub fn default_rejected_path(out: &Path) -> PathBuf {
    sibling_path(out, "rejected")
}

/// A file beside `out` named for what it holds: (`out.jsonl`, `judged`) →
/// `out.judged.jsonl`.
pub fn sibling_path(out: &Path, what: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    out.with_file_name(format!("{stem}.{what}.jsonl"))
}

impl RunFile {
    /// Open for a run with `params` (everything that determines the output). Returns
    /// the file and the records already committed by an earlier run of the same
    /// command. The output (and rejected file) stay locked until the `RunFile` drops: a
    /// second run on the same output is refused.
    pub fn open(
        command: &str,
        out: &Path,
        rejected: Option<&Path>,
        params: Value,
        extra: Value,
    ) -> Result<(RunFile, Vec<Value>)> {
        let manifest_path = manifest_path(out);
        let mut paths = vec![
            ("--out", out),
            ("--out's manifest", manifest_path.as_path()),
        ];
        if let Some(r) = rejected {
            paths.push(("--rejected", r));
        }
        check_distinct(&paths)?;
        for p in [out, &manifest_path] {
            if p.is_dir() {
                return Err(Error::Usage(format!(
                    "`{}` is a directory; --out needs a file name",
                    p.display()
                )));
            }
        }
        let rejected_name = rejected.map(|r| {
            std::path::absolute(r)
                .unwrap_or_else(|_| r.to_path_buf())
                .display()
                .to_string()
        });
        // Lock before looking: whether the output is new or a run to resume is decided
        // while no other run can change it.
        let (out_lock, created) = OutputLock::acquire(out)?;
        let mut created_files = Vec::new();
        if created {
            created_files.push(out.to_path_buf());
        }
        let opened = Self::open_locked(
            command,
            out,
            rejected,
            rejected_name,
            manifest_path,
            params,
            extra,
            out_lock,
            &mut created_files,
        );
        if opened.is_err() {
            // A refused run leaves nothing behind it did not find.
            for f in created_files {
                let _ = std::fs::remove_file(f);
            }
        }
        opened
    }

    #[allow(clippy::too_many_arguments)]
    fn open_locked(
        command: &str,
        out: &Path,
        rejected: Option<&Path>,
        rejected_name: Option<String>,
        manifest_path: PathBuf,
        params: Value,
        extra: Value,
        out_lock: OutputLock,
        created_files: &mut Vec<PathBuf>,
    ) -> Result<(RunFile, Vec<Value>)> {
        let mut locks = vec![out_lock];
        let mut committed = Vec::new();
        let resuming = created_files.is_empty();
        let manifest = if resuming {
            let text = std::fs::read_to_string(&manifest_path).map_err(|_| {
                Error::Usage(format!(
                    "`{}` exists but has no manifest `{}`, so it cannot be resumed\nhint: choose another --out, or delete the file to start over",
                    out.display(),
                    manifest_path.display()
                ))
            })?;
            let m: Value = serde_json::from_str(&text).map_err(|e| {
                Error::Usage(format!(
                    "`{}` is not a valid manifest: {e}",
                    manifest_path.display()
                ))
            })?;
            if m["command"] != command || m["params"] != params {
                return Err(Error::Usage(format!(
                    "`{}` was made by a different command or different parameters; refusing to mix runs\n{}hint: run the original command again to resume, or choose another --out",
                    out.display(),
                    describe_difference(&m["params"], &params)
                )));
            }
            check_same_version(&m, out)?;
            if let Some(r) = rejected {
                // Only the run's own rejected file may be cut back.
                let ours = m["rejected_file"].as_str();
                if r.exists() && !ours.is_some_and(|o| same_file(Path::new(o), r)) {
                    return Err(Error::Usage(format!(
                        "`{}` exists and is not the rejected file of the run in `{}`{}; refusing to touch it\nhint: give the run's own --rejected file, or a new name",
                        r.display(),
                        out.display(),
                        match ours {
                            Some(o) => format!(" (that is `{o}`)"),
                            None => " (it had none)".to_string(),
                        }
                    )));
                }
            }
            let out_bytes = m["output_bytes"].as_u64().unwrap_or(0);
            truncate_to(out, out_bytes)?;
            if let Some(r) = rejected {
                let (lock, created) = OutputLock::acquire(r)?;
                locks.push(lock);
                if !created {
                    truncate_to(r, m["rejected_bytes"].as_u64().unwrap_or(0))?;
                }
            }
            committed = read_records(out)?;
            let mut m = m;
            if rejected_name.is_some() {
                m["rejected_file"] = json!(rejected_name);
            }
            m
        } else {
            if let Some(r) = rejected {
                let (lock, created) = OutputLock::acquire(r)?;
                if !created {
                    return Err(Error::Usage(format!(
                        "`{}` already exists and is not part of this run; refusing to overwrite it\nhint: choose another --rejected, or delete the file",
                        r.display()
                    )));
                }
                created_files.push(r.to_path_buf());
                locks.push(lock);
            }
            json!({
                "tool": "teacher",
                "version": env!("CARGO_PKG_VERSION"),
                "command": command,
                "params": params,
                "run": extra,
                "waves_done": 0,
                "output_bytes": 0,
                "output_sha256": hex(&Sha256::new()),
                "rejected_bytes": 0,
                "rejected_file": rejected_name,
                "counts": {},
                "seconds": {},
                "complete": false,
            })
        };
        let tokens_before = (
            manifest["tokens"]["prompt"].as_u64().unwrap_or(0),
            manifest["tokens"]["generated"].as_u64().unwrap_or(0),
        );
        let hash_of = |p: &Path| -> Result<Sha256> {
            let mut h = Sha256::new();
            let mut f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
            std::io::copy(&mut f, &mut h).map_err(|e| Error::io(p, e))?;
            Ok(h)
        };
        let mut rf = RunFile {
            tokens_before,
            out_hash: hash_of(out)?,
            rejected_hash: match rejected {
                Some(r) => hash_of(r)?,
                None => Sha256::new(),
            },
            out: out.to_path_buf(),
            rejected: rejected.map(Path::to_path_buf),
            manifest_path,
            manifest,
            _locks: locks,
        };
        if rf.rejected.is_some() {
            rf.manifest["rejected_sha256"] = json!(hex(&rf.rejected_hash));
        }
        if committed.is_empty() {
            rf.write_manifest()?;
        }
        Ok((rf, committed))
    }

    pub fn waves_done(&self) -> u64 {
        self.manifest["waves_done"].as_u64().unwrap_or(0)
    }

    /// Append one wave's records and rejections, add its counts and timings, and move
    /// the manifest's commit point past them.
    pub fn commit_wave(
        &mut self,
        records: &[Value],
        rejected: &[Value],
        counts: &BTreeMap<String, u64>,
        seconds: &BTreeMap<String, f64>,
    ) -> Result<()> {
        let out_bytes = append_lines(&self.out, records, &mut self.out_hash)?;
        // Fault injection for the kill tests: die (as SIGKILL would) after the wave's
        // records are appended but before the manifest commits them.
        if std::env::var("TEACHER_TEST_ABORT_IN_COMMIT")
            .ok()
            .as_deref()
            == Some(&self.waves_done().to_string())
        {
            std::process::abort();
        }
        let rej_bytes = match &self.rejected {
            Some(r) => append_lines(r, rejected, &mut self.rejected_hash)?,
            None => 0,
        };
        let m = &mut self.manifest;
        m["waves_done"] = json!(m["waves_done"].as_u64().unwrap_or(0) + 1);
        m["output_bytes"] = json!(out_bytes);
        m["rejected_bytes"] = json!(rej_bytes);
        m["output_sha256"] = json!(hex(&self.out_hash));
        if self.rejected.is_some() {
            m["rejected_sha256"] = json!(hex(&self.rejected_hash));
        }
        for (k, v) in counts {
            let cur = m["counts"][k].as_u64().unwrap_or(0);
            m["counts"][k] = json!(cur + v);
        }
        for (k, v) in seconds {
            let cur = m["seconds"][k].as_f64().unwrap_or(0.0);
            m["seconds"][k] = json!(cur + v);
        }
        self.write_manifest()
    }

    /// Add `counts` to the manifest's `section` (counts that are not rejections, such
    /// as how many judgements parsed); the next commit writes them with its wave.
    pub fn tally(&mut self, section: &str, counts: &BTreeMap<String, u64>) {
        for (k, v) in counts {
            let cur = self.manifest[section][k].as_u64().unwrap_or(0);
            self.manifest[section][k] = json!(cur + v);
        }
    }

    /// Record the engine's token counts of this process (added to earlier runs') and its
    /// time profile; the next commit writes them (`tokens`, `profile`).
    pub fn note_tokens(&mut self, stats: &crate::engine::EngineStats) {
        self.manifest["tokens"] = json!({
            "prompt": self.tokens_before.0 + stats.prompt_tokens,
            "generated": self.tokens_before.1 + stats.generated_tokens,
        });
        // Where this process's engine time went (a resumed run shows its own part).
        self.manifest["profile"] = stats.profile();
    }

    /// Mark the run finished (`"complete": true`): `teacher merge` takes only complete
    /// shards.
    pub fn finish(&mut self) -> Result<()> {
        self.manifest["complete"] = json!(true);
        self.write_manifest()
    }

    /// The rejected records an earlier run committed (read after `open` cut the file
    /// back to its commit point; empty without a rejected file).
    pub fn committed_rejected(&self) -> Result<Vec<Value>> {
        match &self.rejected {
            Some(r) => read_records(r),
            None => Ok(Vec::new()),
        }
    }

    fn write_manifest(&self) -> Result<()> {
        let tmp = self.manifest_path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.manifest).expect("manifest serialises");
        std::fs::write(&tmp, text + "\n").map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.manifest_path).map_err(|e| Error::io(&self.manifest_path, e))
    }
}

/// The manifest of the run whose output is `out`, with the errors `merge` and resume
/// share.
pub fn read_manifest(out: &Path) -> Result<Value> {
    let path = manifest_path(out);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Usage(format!(
            "`{}` has no readable manifest `{}` ({e}); it is not the output of a teacher run",
            out.display(),
            path.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("`{}` is not a valid manifest: {e}", path.display())))
}

/// Every line of a JSONL file as a record, errors naming the file and line.
pub fn read_records(path: &Path) -> Result<Vec<Value>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        out.push(serde_json::from_str(&line).map_err(|e| Error::Input {
            path: path.to_path_buf(),
            line: i + 1,
            what: format!("is not a valid record: {e}"),
        })?);
    }
    Ok(out)
}

fn truncate_to(path: &Path, len: u64) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let actual = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if actual < len {
        return Err(Error::Usage(format!(
            "`{}` is shorter ({actual} bytes) than its manifest says ({len}); it was changed by hand\nhint: choose another --out",
            path.display()
        )));
    }
    f.set_len(len).map_err(|e| Error::io(path, e))
}

/// The hex sha256 of the bytes a hasher has seen so far.
fn hex(h: &Sha256) -> String {
    h.clone()
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Append whole lines and sync, adding them to the file's running hash; returns the
/// file's new length.
fn append_lines(path: &Path, lines: &[Value], hash: &mut Sha256) -> Result<u64> {
    let mut buf = String::new();
    for l in lines {
        buf.push_str(&l.to_string());
        buf.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(buf.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    hash.update(buf.as_bytes());
    f.sync_data().map_err(|e| Error::io(path, e))?;
    Ok(f.metadata().map_err(|e| Error::io(path, e))?.len())
}

/// A run is resumed only by the version of teacher that started it: versions may differ
/// in the arithmetic's last bits (0.2.0 changed the matmul's summation order), and a run
/// continued by another would not be the bytes of any one run.
fn check_same_version(m: &Value, out: &Path) -> Result<()> {
    let theirs = m["version"].as_str().unwrap_or("an unknown version");
    let ours = env!("CARGO_PKG_VERSION");
    if theirs == ours {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "`{}` was started by teacher {theirs}; this is teacher {ours}, whose arithmetic may differ in the last bits, so resuming would not give the bytes of one run\nhint: finish the run with teacher {theirs}, or choose another --out",
        out.display()
    )))
}

fn describe_difference(old: &Value, new: &Value) -> String {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return String::new();
    };
    let mut lines = String::new();
    for (k, v) in n {
        match o.get(k) {
            Some(ov) if ov == v => {}
            Some(ov) => lines.push_str(&format!("  `{k}`: was {ov}, now {v}\n")),
            None => lines.push_str(&format!("  `{k}`: new, {v}\n")),
        }
    }
    lines
}
