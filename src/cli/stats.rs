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
    /// Measure novelty against these seed instructions (any instruction file) instead
    /// of the dataset's own `seed`/`original` records.
    #[arg(long)]
    seeds: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    /// Print each record's verb–noun parse as JSON lines (`id`, `instruction`, `verb`,
    /// `noun`) instead of the statistics, to audit the Figure 2 analysis.
    #[arg(long)]
    parses: bool,
}

pub(crate) fn run(a: StatsArgs) -> anyhow::Result<()> {
    if a.parses {
        for it in teacher::pipeline::items::load(&a.file)? {
            let p = teacher::diversity::verb_noun::verb_noun(&it.instruction);
            let (verb, noun) = match p {
                Some((v, n)) => (Some(v), n),
                None => (None, None),
            };
            println!(
                "{}",
                serde_json::json!({"id": it.id, "instruction": it.instruction, "verb": verb, "noun": noun})
            );
        }
        return Ok(());
    }
    let v = teacher::stats::compute_with_seeds(&a.file, a.rejected.as_deref(), a.seeds.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", teacher::stats::render(&v));
    }
    Ok(())
}
