//! `teacher dedup`: drop near-duplicates from a file.

use anyhow::bail;
use clap::Args;
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum DedupMethod {
    /// Exact ROUGE-L F1 (Self-Instruct's filter).
    RougeL,
    /// MinHash-LSH over word n-grams (approximate; millions of items).
    Minhash,
    /// Identical after normalising case, whitespace and punctuation.
    Exact,
}

#[derive(Args)]
pub(crate) struct DedupArgs {
    /// JSONL (one object per line) or a JSON array of objects.
    #[arg(long)]
    input: PathBuf,
    /// Where the kept records go (JSONL, records copied byte for byte).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "rouge-l")]
    method: DedupMethod,
    /// Similarity at which a record is a duplicate: ROUGE-L F1 (default 0.7) or
    /// Jaccard (default 0.8).
    #[arg(long)]
    threshold: Option<f64>,
    /// Drop only when the score is strictly above the threshold (the Self-Instruct and
    /// Alpaca code's `>`), instead of the paper's `>=`.
    #[arg(long)]
    strict: bool,
    /// The field compared; a dotted path reaches into objects and arrays, e.g.
    /// `conversations.0.value` for a ShareGPT record's first turn.
    #[arg(long, default_value = "instruction", conflicts_with = "fields")]
    field: String,
    /// Several fields, comma-separated, compared joined by a newline.
    #[arg(long, value_delimiter = ',')]
    fields: Option<Vec<String>>,
    /// Write each dropped record with the line, id and score of what it duplicated.
    #[arg(long)]
    dropped: Option<PathBuf>,
    /// Count and skip records that are not JSON objects with the field as a string.
    #[arg(long)]
    skip_invalid: bool,
    /// MinHash: number of permutations [default: 128].
    #[arg(long)]
    num_perm: Option<usize>,
    /// MinHash: words per shingle [default: 1].
    #[arg(long)]
    ngram: Option<usize>,
    /// MinHash: drop on any band collision instead of confirming each candidate by its
    /// true Jaccard similarity (less memory, some false drops; bands then balance
    /// misses and false drops equally).
    #[arg(long)]
    no_verify: bool,
    /// MinHash: seed of the hash functions [default: 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: DedupArgs) -> anyhow::Result<()> {
    use teacher::dedup::{DedupOptions, Method};
    use teacher::filter::DropRule;
    let (method, default_threshold) = match a.method {
        DedupMethod::RougeL => (Method::RougeL, 0.7),
        DedupMethod::Minhash => (Method::MinHash, 0.8),
        DedupMethod::Exact => (Method::Exact, 1.0),
    };
    let mut outputs = vec![("--out", a.out.as_path())];
    if let Some(d) = &a.dropped {
        outputs.push(("--dropped", d));
    }
    super::args::check_outputs(&outputs, &[("--input", &a.input)])?;
    let threshold = a.threshold.unwrap_or(default_threshold);
    if !(threshold > 0.0 && threshold <= 1.0) {
        bail!("--threshold must be in (0, 1], got {threshold}");
    }
    // MinHash's settings do nothing for the other methods: refused, not ignored.
    if !matches!(a.method, DedupMethod::Minhash) {
        let given = [
            ("--num-perm", a.num_perm.is_some()),
            ("--ngram", a.ngram.is_some()),
            ("--no-verify", a.no_verify),
            ("--seed", a.seed.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
            bail!("{flag} is a MinHash setting and does nothing here\nhint: add --method minhash, or leave {flag} out");
        }
    }
    let (num_perm, ngram, seed) = (
        a.num_perm.unwrap_or(128),
        a.ngram.unwrap_or(1),
        a.seed.unwrap_or(1),
    );
    if ngram == 0 {
        bail!("--ngram must be at least 1 (words per shingle), got 0");
    }
    if num_perm == 0 || num_perm > 1024 {
        bail!("--num-perm must be in 1..=1024, got {num_perm}");
    }
    let opts = DedupOptions {
        method,
        threshold,
        rule: if a.strict {
            DropRule::Above
        } else {
            DropRule::AtLeast
        },
        fields: a.fields.clone().unwrap_or_else(|| vec![a.field.clone()]),
        skip_invalid: a.skip_invalid,
        num_perm,
        ngram,
        verify: !a.no_verify,
        seed,
    };
    let bar = teacher::progress::counter("records");
    let report = teacher::dedup::run(&a.input, &a.out, a.dropped.as_deref(), &opts, |r| {
        if let Some(b) = &bar {
            b.set_position(r.read);
            b.set_message(format!("kept {} dropped {}", r.kept, r.dropped));
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if report.read == 0 {
        eprintln!(
            "teacher: `{}` is empty; wrote an empty `{}`",
            a.input.display(),
            a.out.display()
        );
    }
    eprintln!(
        "teacher: read {}, kept {}, dropped {}, invalid {} in {:.2} s",
        report.read, report.kept, report.dropped, report.invalid, report.seconds
    );
    if let Some(p) = &report.rouge_pruning {
        let pct = |x: u64| {
            if p.pairs == 0 {
                0.0
            } else {
                100.0 * x as f64 / p.pairs as f64
            }
        };
        eprintln!(
            "teacher: {} candidate pairs: {:.2}% never probed (prefix), {:.2}% pruned by length, {:.2}% by token multiset, {:.2}% scored by LCS",
            p.pairs,
            pct(p.skipped_by_prefix),
            pct(p.pruned_by_length),
            pct(p.pruned_by_multiset),
            pct(p.lcs_computed)
        );
    }
    if let Some(m) = &report.minhash {
        eprintln!(
            "teacher: minhash {} permutations as {} bands x {} rows, {}-word shingles",
            m.num_perm, m.bands, m.rows, m.ngram
        );
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
