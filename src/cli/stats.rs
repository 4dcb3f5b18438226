//! `teacher stats`: counts, acceptance by filter, length and similarity distributions.

use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct StatsArgs {
    /// A JSONL file made by self-instruct, evolve or respond (or any records with
    /// `instruction`).
    file: PathBuf,
    /// The run's rejected file, for per-round and per-operation elimination counts.
    #[arg(long)]
    rejected: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: StatsArgs) -> anyhow::Result<()> {
    let v = teacher::stats::compute(&a.file, a.rejected.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", teacher::stats::render(&v));
    }
    Ok(())
}
