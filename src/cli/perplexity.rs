//! `teacher perplexity`: how well a model predicts a text, computed as llama.cpp's
//! `llama-perplexity` computes it (the number that says a forward pass is right, and
//! the one users compare quantizations with).

use super::args::{KvArg, ModelArgs};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text to score (UTF-8).
    #[arg(long, short)]
    file: PathBuf,
    /// Tokens per chunk (llama-perplexity's -c).
    #[arg(long, short, default_value_t = 512)]
    context: usize,
    /// Most tokens per forward step (llama-perplexity's -b); whole chunks run together.
    #[arg(long, default_value_t = 2048)]
    batch_tokens: usize,
    /// Score only the first N chunks.
    #[arg(long)]
    chunks: Option<usize>,
    /// What the KV cache stores (llama.cpp's default is f16).
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    kv_type: KvArg,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: PerplexityArgs, offline: bool) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&a.file).with_context(|| format!("reading `{}`", a.file.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "`{}` is not UTF-8 text (invalid byte at offset {})",
            a.file.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    if a.chunks == Some(0) {
        anyhow::bail!("--chunks must be at least 1");
    }
    let file = a.model.open(offline)?;
    let model = a.model.load(&file)?;
    let opts = teacher::perplexity::Options {
        context: a.context,
        batch_tokens: a.batch_tokens.max(a.context),
        max_chunks: a.chunks,
        kv_type: a.kv_type.into(),
    };
    let json = a.json;
    let r =
        teacher::perplexity::compute(&model, &file.tokenizer, &text, &opts, |done, all, ppl| {
            if !json {
                eprintln!("teacher: [{done}/{all}] running perplexity {ppl:.4}");
            }
        })?;
    if a.json {
        let v = serde_json::json!({
            "model": a.model.model,
            "file": a.file,
            "report": r,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: {} tokens, {} chunks of {}, {} scored{} · {:.1} tok/s",
            a.file.display(),
            r.text_tokens,
            r.chunks,
            r.context,
            r.scored_tokens,
            if r.add_bos { ", BOS first" } else { "" },
            r.tokens_per_second
        );
        println!(
            "Final estimate: PPL = {:.4} +/- {:.5}",
            r.perplexity, r.perplexity_error
        );
    }
    Ok(())
}
