//! `teacher generate`: completions for a JSONL file of prompts.

use super::args::{check_outputs, open_for_pipeline, EngineArgs, ModelArgs, SamplingArgs};
use clap::Args;
use std::path::PathBuf;
use teacher::engine::Engine;

#[derive(Args)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL: `{"id", "prompt"}` or `{"id", "messages"}` per line, with optional
    /// `temperature`, `top_p`, `top_k`, `min_p`, `max_tokens`, `stop`.
    #[arg(long)]
    input: PathBuf,
    /// Where `{id, text, finish_reason, prompt_tokens, completion_tokens}` lines go.
    #[arg(long)]
    out: PathBuf,
    /// Records per committed wave: a killed run resumes from the last one (running
    /// the same command again); the output does not depend on it.
    #[arg(long, default_value_t = 256)]
    wave_size: usize,
    /// Write only shard I of N (0-based): a contiguous slice of the input, for array
    /// jobs; `teacher merge` joins the shards into the single run's bytes.
    #[arg(long, default_value = "0/1")]
    shard: teacher::shard::Shard,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
}

pub(crate) fn run(a: GenerateArgs, offline: bool) -> anyhow::Result<()> {
    let defaults = a.sampling.params()?;
    let mut inputs = a.model.input_files();
    inputs.push(("--input", &a.input));
    check_outputs(&[("--out", &a.out)], &inputs)?;
    let records = teacher::generate::read_prompts(&a.input, &defaults, a.sampling.max_tokens)?;
    if a.wave_size == 0 {
        anyhow::bail!("--wave-size must be at least 1");
    }
    let (file, model_sha256) = open_for_pipeline(&a.model, offline)?;
    let gcfg = teacher::generate::Config {
        model_name: a.model.model.clone(),
        model_sha256,
        input_sha256: teacher_models::fetch::sha256_file(&a.input)?,
        seed: a.sampling.seed,
        wave_size: a.wave_size,
        shard: a.shard,
    };
    let model = a.model.load(&file)?;
    let cfg = a.engine.config(a.sampling.seed);
    let mut engine = Engine::new(&model, &file.tokenizer, cfg)?;
    let bar = teacher::progress::counter("completions");
    let started = std::time::Instant::now();
    teacher::generate::run(&mut engine, &file, &records, &a.out, &gcfg, |n| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let s = &engine.stats;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "teacher: {} completions, {} prompt + {} generated tokens in {:.1} s ({:.1} generated tok/s)",
        a.shard.range(records.len()).len(),
        s.prompt_tokens,
        s.generated_tokens,
        secs,
        s.generated_tokens as f64 / secs.max(1e-9)
    );
    Ok(())
}
