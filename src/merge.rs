//! `teacher merge`: the shards of a run (`--shard I/N`) joined into one output, with
//! one manifest.
//!
//! The shards must come from the same command, input, model (sha256) and parameters,
//! all N must be there and complete, and each output must still be the length its
//! manifest committed. Records are then written in the order a single run writes them:
//!
//! - `generate`, `respond`: the shards one after another (each is a contiguous slice of
//!   the input), byte-identical to the single run.
//! - `evolve`: round by round, and within a round the shards in order, so roots are in
//!   input order; the near-duplicate filter, which shards leave undone, runs over that
//!   order exactly as a single run runs it. Byte-identical to the single run; the
//!   rejected file holds the same lines in another order (a single run writes them wave
//!   by wave).
//! - `self-instruct`, `magpie`: the seeds once (Self-Instruct), then each shard's records
//!   in shard order, dropping one whose ROUGE-L with an instruction kept before it (from
//!   an earlier shard) reaches the threshold under the run's drop rule. A deterministic
//!   function of (seed, N, parameters); not the single run's bytes, since each shard
//!   drew its own pool.
//!
//! Outputs are written to temporary files and renamed into place.

use crate::dedup::AtomicFile;
use crate::error::{Error, Result};
use crate::files::same_file;
use crate::filter::rouge_l::{DropRule, PruneStats, RougeIndex};
use crate::pipeline::evol::NearDuplicates;
use crate::pipeline::run_file::{manifest_path, read_manifest, read_records};
use crate::shard::Shard;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The commands whose runs can be sharded and merged.
pub const MERGEABLE: [&str; 6] = [
    "generate",
    "respond",
    "judge",
    "evolve",
    "self-instruct",
    "magpie",
];

/// One shard as found on disk.
struct Part {
    path: PathBuf,
    shard: Shard,
    manifest: Value,
    records: Vec<Value>,
    rejected: Vec<Value>,
}

/// What a merge wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub command: String,
    pub shards: usize,
    pub records: usize,
    /// Records dropped as near-duplicates across shards (evolve, self-instruct).
    pub near_duplicates: usize,
    pub rejected_records: usize,
    /// Shards that stalled or came out short of their share, in words.
    pub warnings: Vec<String>,
}

/// Merge the shard outputs `paths` (any order) into `out`, and their rejected files into
/// `rejected` when given.
pub fn run(paths: &[PathBuf], out: &Path, rejected: Option<&Path>) -> Result<Summary> {
    if paths.is_empty() {
        return Err(Error::Usage("no shard outputs given".into()));
    }
    check_destination(paths, out, rejected)?;
    let parts = load_parts(paths, rejected.is_some())?;
    let command = parts[0].manifest["command"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let params = &parts[0].manifest["params"];
    let (records, rejects, near_duplicates) = match command.as_str() {
        "generate" | "respond" | "judge" => {
            let records = parts.iter().flat_map(|p| p.records.clone()).collect();
            let rejects = parts.iter().flat_map(|p| p.rejected.clone()).collect();
            (records, rejects, Vec::new())
        }
        "evolve" => merge_evolve(&parts, params)?,
        "self-instruct" | "magpie" => merge_pools(&parts, params)?,
        _ => unreachable!("load_parts admits only mergeable commands"),
    };

    let (yields, warnings) = shard_yields(&parts);
    let out_bytes = write_lines(out, &records)?;
    let rejected_bytes = match rejected {
        Some(r) => {
            let all: Vec<Value> = rejects.iter().chain(&near_duplicates).cloned().collect();
            Some(write_lines(r, &all)?)
        }
        None => None,
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut seconds: BTreeMap<String, f64> = BTreeMap::new();
    for p in &parts {
        if let Some(c) = p.manifest["counts"].as_object() {
            for (k, v) in c {
                *counts.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
            }
        }
        if let Some(s) = p.manifest["seconds"].as_object() {
            for (k, v) in s {
                *seconds.entry(k.clone()).or_default() += v.as_f64().unwrap_or(0.0);
            }
        }
    }
    let tokens = |k: &str| -> u64 {
        parts
            .iter()
            .map(|p| p.manifest["tokens"][k].as_u64().unwrap_or(0))
            .sum()
    };
    let tokens = json!({"prompt": tokens("prompt"), "generated": tokens("generated")});
    // The judge's parse counts add up like the rejection counts.
    let mut judge: BTreeMap<String, u64> = BTreeMap::new();
    for p in &parts {
        for (k, v) in p.manifest["judge"].as_object().into_iter().flatten() {
            *judge.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
        }
    }
    if !near_duplicates.is_empty() {
        *counts
            .entry("near_duplicate_across_shards".into())
            .or_default() += near_duplicates.len() as u64;
    }
    let mut merged_params = params.clone();
    if let Some(o) = merged_params.as_object_mut() {
        o.remove("shard");
    }
    let abs = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let manifest = json!({
        "tool": "teacher",
        "version": env!("CARGO_PKG_VERSION"),
        "command": "merge",
        "of": command,
        "params": merged_params,
        "shards": parts.iter().map(|p| json!({
            "index": p.shard.index,
            "output": abs(&p.path),
            "records": p.records.len(),
            "run": p.manifest["run"],
            "counts": p.manifest["counts"],
            "seconds": p.manifest["seconds"],
        })).collect::<Vec<_>>(),
        "records": records.len(),
        "shard_yields": yields,
        "warnings": warnings,
        "output_bytes": out_bytes,
        "rejected_file": rejected.map(abs),
        "rejected_bytes": rejected_bytes,
        "counts": counts,
        "seconds": seconds,
        "tokens": tokens,
        "judge": (!judge.is_empty()).then_some(judge),
        "complete": true,
    });
    let mut m = AtomicFile::create(&manifest_path(out))?;
    m.write_line(&serde_json::to_string_pretty(&manifest).expect("manifest serialises"))?;
    m.commit()?;
    Ok(Summary {
        command,
        shards: parts.len(),
        records: records.len(),
        near_duplicates: near_duplicates.len(),
        rejected_records: rejects.len() + near_duplicates.len(),
        warnings,
    })
}

/// Refuse to write over a shard (or its manifest or rejected file), or over a file that
/// is not an earlier merge's output or rejected file. Paths are compared by the file they
/// name (`sub/../shard.jsonl`, links), not by spelling.
fn check_destination(paths: &[PathBuf], out: &Path, rejected: Option<&Path>) -> Result<()> {
    let mut dests = vec![("--out", out)];
    if let Some(r) = rejected {
        dests.push(("--rejected", r));
    }
    let out_manifest = manifest_path(out);
    dests.push(("--out's manifest", &out_manifest));
    crate::files::check_distinct(&dests)?;
    for (flag, dest) in &dests {
        if dest.is_dir() {
            return Err(Error::Usage(format!(
                "{flag} `{}` is a directory; give a file name",
                dest.display()
            )));
        }
        for p in paths {
            let shard_rejected = read_manifest(p)
                .ok()
                .and_then(|m| m["rejected_file"].as_str().map(PathBuf::from));
            let shard_files = [Some(p.clone()), Some(manifest_path(p)), shard_rejected];
            if shard_files.iter().flatten().any(|f| same_file(f, dest)) {
                return Err(Error::Usage(format!(
                    "{flag} `{}` is one of the shards or their files; write the merge to a new file",
                    dest.display()
                )));
            }
        }
    }
    let earlier = read_manifest(out).ok().filter(|m| m["command"] == "merge");
    if out.exists() && earlier.is_none() {
        return Err(Error::Usage(format!(
            "`{}` already exists and is not the output of an earlier merge; refusing to overwrite it\nhint: choose another --out, or delete the file",
            out.display()
        )));
    }
    if let Some(r) = rejected.filter(|r| r.exists()) {
        let ours = earlier
            .as_ref()
            .and_then(|m| m["rejected_file"].as_str())
            .is_some_and(|o| same_file(Path::new(o), r));
        if !ours {
            return Err(Error::Usage(format!(
                "--rejected `{}` already exists and is not the rejected file of an earlier merge into `{}`; refusing to overwrite it\nhint: choose another --rejected, or delete the file",
                r.display(),
                out.display()
            )));
        }
    }
    Ok(())
}

fn load_parts(paths: &[PathBuf], want_rejected: bool) -> Result<Vec<Part>> {
    let mut parts: Vec<Part> = Vec::with_capacity(paths.len());
    for path in paths {
        let manifest = read_manifest(path)?;
        let command = manifest["command"].as_str().unwrap_or_default();
        if !MERGEABLE.contains(&command) {
            return Err(Error::Usage(format!(
                "`{}` is the output of `{command}`, which has no shards; merge takes the outputs of {}",
                path.display(),
                MERGEABLE.join(", ")
            )));
        }
        let shard = Shard::from_params(&manifest["params"])
            .map_err(|e| Error::Usage(format!("`{}`: {e}", manifest_path(path).display())))?;
        parts.push(Part {
            path: path.clone(),
            shard,
            manifest,
            records: Vec::new(),
            rejected: Vec::new(),
        });
    }
    parts.sort_by_key(|p| p.shard.index);

    // Same run: command and every parameter but the shard index.
    let first = &parts[0];
    let without_shard = |m: &Value| {
        let mut p = m["params"].clone();
        if let Some(o) = p.as_object_mut() {
            o.remove("shard");
        }
        p
    };
    let base = without_shard(&first.manifest);
    for p in &parts[1..] {
        if p.manifest["command"] != first.manifest["command"] {
            return Err(Error::Usage(format!(
                "`{}` is a `{}` run but `{}` is a `{}` run; shards of one run have one command",
                first.path.display(),
                first.manifest["command"].as_str().unwrap_or_default(),
                p.path.display(),
                p.manifest["command"].as_str().unwrap_or_default()
            )));
        }
        if p.manifest["version"] != first.manifest["version"] {
            let v = |m: &Value| {
                m["version"]
                    .as_str()
                    .unwrap_or("an unknown version")
                    .to_string()
            };
            return Err(Error::Usage(format!(
                "`{}` was made by teacher {} but `{}` by teacher {}; versions may differ in the arithmetic's last bits, so shards of one run come from one version\nhint: run every shard with the same teacher build",
                first.path.display(),
                v(&first.manifest),
                p.path.display(),
                v(&p.manifest)
            )));
        }
        let params = without_shard(&p.manifest);
        if params != base {
            return Err(Error::Usage(format!(
                "`{}` and `{}` are not shards of the same run:\n{}hint: every shard must be run with the same input, model and flags but --shard",
                first.path.display(),
                p.path.display(),
                differences(&base, &params)
            )));
        }
    }

    // All N shards, each once.
    let n = first.shard.count;
    if let Some(p) = parts.iter().find(|p| p.shard.count != n) {
        return Err(Error::Usage(format!(
            "`{}` is shard {} but `{}` is shard {}; shards of one run have one N",
            first.path.display(),
            first.shard,
            p.path.display(),
            p.shard
        )));
    }
    for w in parts.windows(2) {
        if w[0].shard.index == w[1].shard.index {
            return Err(Error::Usage(format!(
                "`{}` and `{}` are both shard {}",
                w[0].path.display(),
                w[1].path.display(),
                w[0].shard
            )));
        }
    }
    if parts.len() != n {
        let have: Vec<usize> = parts.iter().map(|p| p.shard.index).collect();
        let missing: Vec<String> = (0..n)
            .filter(|i| !have.contains(i))
            .map(|i| format!("{i}/{n}"))
            .collect();
        return Err(Error::Usage(format!(
            "missing shard{} {} of {n}; run {} with the same flags, then merge all {n}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" }
        )));
    }

    // Complete and untouched.
    for p in &mut parts {
        if p.manifest["complete"] != true {
            return Err(Error::Usage(format!(
                "shard {} (`{}`) is not complete ({} waves committed); run its command again to finish it, then merge",
                p.shard,
                p.path.display(),
                p.manifest["waves_done"].as_u64().unwrap_or(0)
            )));
        }
        let committed = p.manifest["output_bytes"].as_u64().unwrap_or(0);
        check_committed(&p.path, &p.manifest, "output", committed, p.shard)?;
        p.records = read_records(&p.path)?;
        if want_rejected {
            p.rejected = match p.manifest["rejected_file"].as_str() {
                Some(r) => {
                    let r = PathBuf::from(r);
                    let r = if r.exists() {
                        r
                    } else {
                        // Shards written elsewhere: look beside the shard's output.
                        p.path.with_file_name(r.file_name().unwrap_or_default())
                    };
                    let want = p.manifest["rejected_bytes"].as_u64().unwrap_or(0);
                    check_committed(&r, &p.manifest, "rejected", want, p.shard)?;
                    read_records(&r)?
                }
                None => Vec::new(),
            };
        }
    }
    Ok(parts)
}

/// Refuse a shard file (`which`: "output" or "rejected") that is not the bytes its
/// manifest committed: another length, or the same length with other content (the
/// manifest's `{which}_sha256`, updated at every commit).
fn check_committed(
    path: &Path,
    manifest: &Value,
    which: &str,
    want: u64,
    shard: Shard,
) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let len = bytes.len() as u64;
    if len != want {
        return Err(Error::Usage(format!(
            "shard {shard}'s {which} `{}` is {len} bytes but its manifest committed {want}; it was changed after the run\nhint: run the shard again into a new file",
            path.display()
        )));
    }
    let key = format!("{which}_sha256");
    let Some(recorded) = manifest[&key].as_str() else {
        return Err(Error::Usage(format!(
            "shard {shard}'s manifest `{}` has no `{key}`, so its {which} `{}` cannot be checked (made by an older teacher)\nhint: run the shard again with this teacher",
            manifest_path(path).display(),
            path.display()
        )));
    };
    let actual: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if actual != recorded {
        return Err(Error::Usage(format!(
            "shard {shard}'s {which} `{}` is not the bytes its run committed (sha256 {actual}, the manifest says {recorded}); it was changed after the run\nhint: run the shard again into a new file",
            path.display()
        )));
    }
    Ok(())
}

/// What each shard contributed, and a warning for a shard that stalled (no records) or
/// came out short of its share of `--num` (self-instruct, magpie).
fn shard_yields(parts: &[Part]) -> (Vec<Value>, Vec<String>) {
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for p in parts {
        let made = p.records.iter().filter(|r| r["source"] != "seed").count();
        let share = p.manifest["params"]["num"]
            .as_u64()
            .map(|n| p.shard.share(n as usize));
        let short = share.is_some_and(|s| made < s);
        if made == 0 {
            warnings.push(format!(
                "shard {} (`{}`) made no records; it stalled or its slice was all rejected",
                p.shard,
                p.path.display()
            ));
        } else if let (true, Some(s)) = (short, share) {
            warnings.push(format!(
                "shard {} (`{}`) made {made} of its {s} records (it stopped after waves that accepted nothing)",
                p.shard,
                p.path.display()
            ));
        }
        rows.push(json!({"index": p.shard.index, "records": made, "share": share, "short": short || made == 0}));
    }
    (rows, warnings)
}

type Merged = (Vec<Value>, Vec<Value>, Vec<Value>);

/// Round by round, shards in order; then the near-duplicate filter in that order.
fn merge_evolve(parts: &[Part], params: &Value) -> Result<Merged> {
    let round = |r: &Value| r["round"].as_u64().unwrap_or(0);
    let max_round = parts
        .iter()
        .flat_map(|p| p.records.iter().chain(&p.rejected))
        .map(round)
        .max()
        .unwrap_or(0);
    let sharded = parts.len() > 1;
    let threshold = params["threshold"].as_f64().ok_or_else(|| {
        Error::Usage("the shards' manifests have no evolve `threshold` parameter".into())
    })?;
    let mut dedup = NearDuplicates::new(threshold);
    let (mut records, mut rejects, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..=max_round {
        for p in parts {
            for rec in p.records.iter().filter(|x| round(x) == r) {
                if rec["source"] != "evol" || !sharded {
                    records.push(rec.clone());
                } else if let Some(reject) = dedup.check(rec) {
                    dropped.push(reject);
                } else {
                    records.push(rec.clone());
                }
            }
            rejects.extend(p.rejected.iter().filter(|x| round(x) == r).cloned());
        }
    }
    Ok((records, rejects, dropped))
}

/// Self-Instruct and Magpie shards grow their own pools: the seeds once (Self-Instruct),
/// then each shard's records in shard order, near-duplicates across shards dropped.
fn merge_pools(parts: &[Part], params: &Value) -> Result<Merged> {
    let threshold = params["threshold"].as_f64().ok_or_else(|| {
        Error::Usage("the shards' manifests have no `threshold` parameter".into())
    })?;
    let rule = match params["drop_rule"].as_str() {
        Some("AtLeast") => DropRule::AtLeast,
        Some("Above") => DropRule::Above,
        other => {
            return Err(Error::Usage(format!(
                "the shards' manifests have an unknown `drop_rule` {other:?}"
            )))
        }
    };
    let mut records: Vec<Value> = parts[0]
        .records
        .iter()
        .filter(|r| r["source"] == "seed")
        .cloned()
        .collect();
    let mut index = RougeIndex::new();
    let mut stats = PruneStats::default();
    let (mut rejects, mut dropped) = (Vec::new(), Vec::new());
    for p in parts {
        for rec in p.records.iter().filter(|r| r["source"] != "seed") {
            let text = rec["instruction"].as_str().unwrap_or_default();
            let toks = index.tokens(text);
            let best = index
                .best_match(&toks, threshold, &mut stats)
                .filter(|m| rule.drops(m.score, threshold));
            if let Some(m) = best {
                let mut v = rec.clone();
                v["reason"] = json!("near_duplicate_across_shards");
                v["rouge_l"] = json!(m.score);
                v["shard"] = json!(p.shard.index);
                dropped.push(v);
                continue;
            }
            index.insert(0, text);
            records.push(rec.clone());
        }
        rejects.extend(p.rejected.iter().cloned());
    }
    Ok((records, rejects, dropped))
}

fn differences(a: &Value, b: &Value) -> String {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return String::new();
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut s = String::new();
    for k in keys {
        if a.get(k) != b.get(k) {
            let show = |v: Option<&Value>| v.map_or("absent".to_string(), |v| v.to_string());
            s.push_str(&format!(
                "  `{k}`: {} vs {}\n",
                show(a.get(k)),
                show(b.get(k))
            ));
        }
    }
    s
}

/// Write `lines` through a temporary file renamed into place; returns the bytes written.
fn write_lines(path: &Path, lines: &[Value]) -> Result<u64> {
    let mut f = AtomicFile::create(path)?;
    let mut bytes = 0u64;
    for l in lines {
        let text = l.to_string();
        bytes += text.len() as u64 + 1;
        f.write_line(&text)?;
    }
    f.commit()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(index: usize, count: usize, records: Vec<Value>, rejected: Vec<Value>) -> Part {
        Part {
            path: PathBuf::from(format!("s{index}.jsonl")),
            shard: Shard { index, count },
            manifest: Value::Null,
            records,
            rejected,
        }
    }

    fn task(id: &str, text: &str) -> Value {
        json!({"id": id, "instruction": text, "source": "self-instruct"})
    }

    #[test]
    fn stalled_and_short_shards_are_warned_about() {
        let task = |id: &str| json!({"id": id, "instruction": id, "source": "magpie"});
        let mut parts = vec![
            part(0, 3, vec![task("a"), task("b")], vec![]),
            part(1, 3, vec![], vec![]),
            part(2, 3, vec![task("c")], vec![]),
        ];
        for p in &mut parts {
            p.manifest = json!({"params": {"num": 6}});
        }
        let (rows, warnings) = shard_yields(&parts);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("shard 1/3") && warnings[0].contains("made no records"));
        assert!(warnings[1].contains("shard 2/3") && warnings[1].contains("made 1 of its 2"));
        assert_eq!(rows[0]["short"], false);
        assert_eq!(rows[1]["short"], true);
        assert_eq!(rows[2]["records"], 1);
        // Per-item commands have no share: only a shard with nothing is warned about.
        for p in &mut parts {
            p.manifest = json!({"params": {}});
        }
        let (_, warnings) = shard_yields(&parts);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn self_instruct_drops_near_duplicates_of_earlier_shards_only() {
        let seed = json!({"id": "seed_1", "instruction": "Name a fruit.", "source": "seed"});
        let a = part(
            0,
            2,
            vec![
                seed.clone(),
                task("si-s0-1", "Write a poem about the sea at night."),
            ],
            vec![json!({"reason": "unparsable"})],
        );
        let b = part(
            1,
            2,
            vec![
                seed,
                task("si-s1-1", "Write a poem about the sea at night time."),
                task("si-s1-2", "List three prime numbers."),
            ],
            vec![],
        );
        let params = json!({"threshold": 0.7, "drop_rule": "Above"});
        let (records, rejects, dropped) = merge_pools(&[a, b], &params).unwrap();
        let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["seed_1", "si-s0-1", "si-s1-2"]);
        assert_eq!(rejects.len(), 1);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0]["id"], "si-s1-1");
        assert_eq!(dropped[0]["shard"], 1);
        assert!(dropped[0]["rouge_l"].as_f64().unwrap() > 0.7);
        let bad = merge_pools(&[], &json!({"threshold": 0.7, "drop_rule": "Maybe"}));
        assert!(bad.is_err());
    }

    #[test]
    fn evolve_interleaves_rounds_and_filters_in_that_order() {
        let evo = |id: &str, round: u64, text: &str| {
            json!({"id": id, "parent_id": id.split('.').next().unwrap(),
                   "root_id": id.split('.').next().unwrap(), "round": round,
                   "instruction": text, "output": "x", "op": "breadth", "source": "evol"})
        };
        let orig = |id: &str| json!({"id": id, "round": 0, "source": "original"});
        let a = part(
            0,
            2,
            vec![
                orig("a"),
                evo("a.r1", 1, "Explain how tides work on Earth."),
                evo("a.r2", 2, "Compare tides on Earth and Mars."),
            ],
            vec![json!({"round": 2, "reason": "truncated"})],
        );
        let b = part(
            1,
            2,
            vec![
                orig("b"),
                evo("b.r1", 1, "Explain how tides work on the Earth."),
                evo("b.r2", 2, "Write a haiku about autumn leaves."),
            ],
            vec![json!({"round": 1, "reason": "prompt_leak"})],
        );
        let (records, rejects, dropped) =
            merge_evolve(&[a, b], &json!({"threshold": 0.7})).unwrap();
        let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["a", "b", "a.r1", "a.r2", "b.r2"]);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0]["id"], "b.r1");
        assert_eq!(dropped[0]["reason"], "near_duplicate");
        let reasons: Vec<&str> = rejects
            .iter()
            .map(|r| r["reason"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, ["prompt_leak", "truncated"]);
    }
}
