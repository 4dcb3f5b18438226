//! `teacher evolve`: Evol-Instruct over rounds, with responses and eliminations.

use super::args::{open_for_pipeline, EngineArgs, ModelArgs};
use anyhow::bail;
use clap::Args;
use std::path::PathBuf;
use teacher::engine::Engine;
use teacher_kernels::SamplingParams;
use teacher_models::fetch;

#[derive(Args)]
pub(crate) struct EvolveArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Instructions to evolve (any format `respond` reads).
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Every failed evolution with its elimination reason (default: OUT with
    /// `.rejected.jsonl`; a resumed run reads its near-duplicate steps back from it).
    #[arg(long)]
    rejected: Option<PathBuf>,
    /// Evolve only shard I of N (0-based): a contiguous slice of the roots, for array
    /// jobs; `teacher merge` joins the shards (and filters near-duplicates across them)
    /// into the single run's bytes.
    #[arg(long, default_value = "0/1")]
    shard: teacher::shard::Shard,
    /// Evolution rounds (the paper uses 4).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Operations to draw from (default: all six).
    #[arg(long, value_enum, value_delimiter = ',')]
    ops: Option<Vec<teacher::pipeline::evol::EvolOp>>,
    /// Also write the original instructions (round 0).
    #[arg(long)]
    keep_originals: bool,
    /// ROUGE-L F1 at which an evolution duplicates another kept one.
    #[arg(long, default_value_t = 0.7)]
    threshold: f64,
    /// Items per committed wave.
    #[arg(long, default_value_t = 64)]
    wave_size: usize,
    /// Evolution decoding (WizardLM: temperature 1, top-p 0.95).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Token limit of an evolved instruction.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Response decoding (the paper: temperature 1, top-p 0.9).
    #[arg(long, default_value_t = 1.0)]
    response_temperature: f32,
    #[arg(long, default_value_t = 0.9)]
    response_top_p: f32,
    /// Token limit of a response (the paper allows 2048).
    #[arg(long, default_value_t = 512)]
    response_max_tokens: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Constrain evolutions to one paragraph without `#` markers and equality verdicts
    /// to their two answers, so fewer generated tokens are thrown away.
    #[arg(long)]
    constrained: bool,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    judging: super::judge::PipelineJudgeArgs,
}

pub(crate) fn run(a: EvolveArgs, offline: bool) -> anyhow::Result<()> {
    use teacher::pipeline::{evol, items};
    if a.rounds == 0 || a.wave_size == 0 || a.max_tokens == 0 || a.response_max_tokens == 0 {
        bail!("--rounds, --wave-size, --max-tokens and --response-max-tokens must be at least 1");
    }
    if !(a.threshold > 0.0 && a.threshold <= 1.0) {
        bail!("--threshold must be in (0, 1], got {}", a.threshold);
    }
    let evolve_sampling = SamplingParams {
        temperature: a.temperature,
        top_p: a.top_p,
        ..SamplingParams::default()
    };
    let response_sampling = SamplingParams {
        temperature: a.response_temperature,
        top_p: a.response_top_p,
        ..SamplingParams::default()
    };
    evolve_sampling.validate().map_err(teacher::Error::from)?;
    response_sampling.validate().map_err(teacher::Error::from)?;
    let mut ops = a.ops.clone().unwrap_or_else(|| evol::ALL_OPS.to_vec());
    ops.sort();
    ops.dedup();
    let rejected = a
        .rejected
        .clone()
        .unwrap_or_else(|| teacher::pipeline::run_file::default_rejected_path(&a.out));
    let mut inputs = a.model.input_files();
    inputs.push(("--input", &a.input));
    super::args::check_outputs(&[("--out", &a.out), ("--rejected", &rejected)], &inputs)?;
    a.judging.check(&[
        ("--out", &a.out),
        ("--rejected", &rejected),
        ("--input", &a.input),
    ])?;
    let list = items::load(&a.input)?;
    let (file, model_sha256) = open_for_pipeline(&a.model, offline)?;
    let cfg = evol::Config {
        rounds: a.rounds,
        ops,
        seed: a.seed,
        wave_size: a.wave_size,
        keep_originals: a.keep_originals,
        threshold: a.threshold,
        evolve_sampling,
        evolve_max_tokens: a.max_tokens,
        response_sampling,
        response_max_tokens: a.response_max_tokens,
        model_name: a.model.model.clone(),
        model_sha256: model_sha256.clone(),
        input_sha256: fetch::sha256_file(&a.input)?,
        shard: a.shard,
        constrained: a.constrained,
    };
    let model = a.model.load(&file)?;
    let ecfg = a.engine.config(a.seed);
    let mut engine = Engine::new(&model, &file.tokenizer, ecfg)?;
    let started = std::time::Instant::now();
    let roots = a.shard.range(list.len()).len();
    let bar = teacher::progress::bar((a.rounds * roots) as u64, "evolutions tried");
    let p = evol::run(
        &mut engine,
        &file,
        &list,
        &cfg,
        &a.out,
        Some(&rejected),
        |p| {
            let failed: u64 = p
                .failed
                .iter()
                .filter(|(k, _)| *k != "equality_unclear")
                .map(|(_, v)| v)
                .sum();
            match &bar {
                Some(b) => {
                    b.set_position(p.evolved + failed);
                    b.set_message(format!(
                        "round {} · {} evolved · {failed} eliminated",
                        p.round, p.evolved
                    ));
                }
                None => eprintln!(
                    "teacher: round {} wave {}: {} evolved, eliminated {:?}",
                    p.round, p.waves, p.evolved, p.failed
                ),
            }
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "teacher: {} evolved instructions in `{}` in {:.1} s; generation {:.1} s, filtering {:.2} s; eliminated {:?}",
        p.evolved,
        a.out.display(),
        started.elapsed().as_secs_f64(),
        p.generation_seconds,
        p.filter_seconds,
        p.failed
    );
    let ran = super::judge::Ran {
        out: &a.out,
        model: &a.model,
        model_sha256: &model_sha256,
        engine_args: &a.engine,
        seed: a.seed,
        offline,
    };
    a.judging.after_run(ran, &mut engine, &file)?;
    Ok(())
}
