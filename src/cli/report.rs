//! `teacher report`: one self-contained HTML page of charts for a dataset.

use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// A JSONL file made by a teacher pipeline or `teacher judge` (its manifest beside
    /// it adds acceptance, time and token figures).
    dataset: PathBuf,
    /// The run's rejected file (elimination reasons; scores of rejected records).
    #[arg(long)]
    rejected: Option<PathBuf>,
    /// Seed instructions to measure novelty against [default: the dataset's own `seed`
    /// or `original` records].
    #[arg(long)]
    seeds: Option<PathBuf>,
    /// The HTML file to write.
    #[arg(long)]
    out: PathBuf,
    /// Random records shown in the samples table.
    #[arg(long, default_value_t = 12)]
    samples: usize,
    /// Which records the samples are.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(crate) fn run(a: ReportArgs) -> anyhow::Result<()> {
    let o = teacher::report::Options {
        dataset: &a.dataset,
        rejected: a.rejected.as_deref(),
        seeds: a.seeds.as_deref(),
        samples: a.samples,
        seed: a.seed,
    };
    super::args::check_outputs(&[("--out", &a.out)], &[])?;
    teacher::report::check_paths(&o, &a.out)?;
    let page = teacher::report::build(&o)?;
    teacher::report::write(&a.out, &page)?;
    eprintln!(
        "teacher: report of `{}` in `{}` ({} KB)",
        a.dataset.display(),
        a.out.display(),
        page.len() / 1024
    );
    Ok(())
}
