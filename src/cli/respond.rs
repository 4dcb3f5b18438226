//! `teacher respond`: a response from the teacher for every instruction of a file.

use super::args::{open_for_pipeline, EngineArgs, ModelArgs, SamplingArgs};
use anyhow::bail;
use clap::Args;
use std::path::PathBuf;
use teacher::engine::Engine;
use teacher_models::fetch;

#[derive(Args)]
pub(crate) struct RespondArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Alpaca or teacher records, `messages`/ShareGPT records, or one instruction per line.
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// A system prompt for chat models (base models get it as a preamble).
    #[arg(long)]
    system: Option<String>,
    /// Records per committed wave.
    #[arg(long, default_value_t = 64)]
    wave_size: usize,
    /// Answer only shard I of N (0-based): a contiguous slice of the input, for array
    /// jobs; `teacher merge` joins the shards into the single run's bytes.
    #[arg(long, default_value = "0/1")]
    shard: teacher::shard::Shard,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    judging: super::judge::PipelineJudgeArgs,
}

pub(crate) fn run(a: RespondArgs, offline: bool) -> anyhow::Result<()> {
    use teacher::pipeline::{items, respond as rs};
    let sampling = a.sampling.params()?;
    if a.wave_size == 0 || a.sampling.max_tokens == 0 {
        bail!("--wave-size and --max-tokens must be at least 1");
    }
    let mut inputs = a.model.input_files();
    inputs.push(("--input", &a.input));
    super::args::check_outputs(&[("--out", &a.out)], &inputs)?;
    a.judging
        .check(&[("--out", &a.out), ("--input", &a.input)])?;
    let list = items::load(&a.input)?;
    let (file, model_sha256) = open_for_pipeline(&a.model, offline)?;
    let cfg = rs::Config {
        sampling,
        max_tokens: a.sampling.max_tokens,
        seed: a.sampling.seed,
        system: a.system.clone(),
        wave_size: a.wave_size,
        model_name: a.model.model.clone(),
        model_sha256: model_sha256.clone(),
        input_sha256: fetch::sha256_file(&a.input)?,
        shard: a.shard,
    };
    let model = a.model.load(&file)?;
    let ecfg = a.engine.config(a.sampling.seed);
    let mut engine = Engine::new(&model, &file.tokenizer, ecfg)?;
    let bar = teacher::progress::bar(a.shard.range(list.len()).len() as u64, "responses");
    let started = std::time::Instant::now();
    let n = rs::run(
        &mut engine,
        &file,
        &list,
        &cfg,
        &a.out,
        |done, total| match &bar {
            Some(b) => b.set_position(done as u64),
            None => eprintln!("teacher: {done}/{total} responses"),
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "teacher: {n} responses in `{}` in {:.1} s ({} tokens generated)",
        a.out.display(),
        started.elapsed().as_secs_f64(),
        engine.stats.generated_tokens
    );
    let ran = super::judge::Ran {
        out: &a.out,
        model: &a.model,
        model_sha256: &model_sha256,
        engine_args: &a.engine,
        seed: a.sampling.seed,
        offline,
    };
    a.judging.after_run(ran, &mut engine, &file)?;
    Ok(())
}
