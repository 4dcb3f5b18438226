//! `teacher merge`: join the shards of a run into one output and manifest.

use anyhow::bail;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct MergeArgs {
    /// The shards' outputs (the --out of each `--shard I/N` run), in any order; a
    /// quoted pattern such as 'out/shard-*.jsonl' is expanded here.
    #[arg(required = true, value_name = "SHARD")]
    shards: Vec<String>,
    /// The merged output; its manifest goes beside it.
    #[arg(long)]
    out: PathBuf,
    /// Also join the shards' rejected files here (evolve, self-instruct), with the
    /// records dropped as near-duplicates across shards.
    #[arg(long)]
    rejected: Option<PathBuf>,
}

pub(crate) fn run(a: MergeArgs) -> anyhow::Result<()> {
    let paths = expand(&a.shards)?;
    let s = teacher::merge::run(&paths, &a.out, a.rejected.as_deref())?;
    for w in &s.warnings {
        eprintln!("teacher: warning: {w}");
    }
    eprintln!(
        "teacher: merged {} shards of `{}` into `{}`: {} records{}",
        s.shards,
        s.command,
        a.out.display(),
        s.records,
        if s.near_duplicates > 0 {
            format!(
                ", {} dropped as near-duplicates across shards",
                s.near_duplicates
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Paths as given, patterns (with `*`, `?` or `[`) expanded to the run outputs they
/// match (files with a manifest beside them).
fn expand(args: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        let p = PathBuf::from(a);
        if p.exists() || !a.contains(['*', '?', '[']) {
            if !p.exists() {
                bail!("shard output `{a}` does not exist");
            }
            out.push(p);
            continue;
        }
        let mut found: Vec<PathBuf> = glob::glob(a)
            .map_err(|e| anyhow::anyhow!("`{a}` is not a valid pattern: {e}"))?
            .filter_map(|r| r.ok())
            // Outputs have manifests; their manifests and rejected files do not.
            .filter(|p| teacher::pipeline::run_file::manifest_path(p).is_file())
            .collect();
        if found.is_empty() {
            bail!("no shard output matches `{a}`");
        }
        found.sort();
        out.append(&mut found);
    }
    out.sort();
    out.dedup();
    Ok(out)
}
