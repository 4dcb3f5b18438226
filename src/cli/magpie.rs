//! `teacher magpie`: instructions and conversations drawn from an aligned chat model
//! with nothing but its pre-query template (Magpie).

use super::args::{check_outputs, open_for_pipeline, EngineArgs, ModelArgs};
use anyhow::bail;
use clap::Args;
use std::path::PathBuf;
use teacher::engine::Engine;
use teacher::pipeline::magpie;
use teacher_kernels::SamplingParams;

#[derive(Args)]
pub(crate) struct MagpieArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Conversations to keep.
    #[arg(long, default_value_t = 100)]
    num: usize,
    /// User/assistant turns per conversation (the paper's multi-turn sets use 2).
    #[arg(long, default_value_t = 1)]
    turns: usize,
    #[arg(long)]
    out: PathBuf,
    /// Every conversation that was not kept, with the reason.
    #[arg(long)]
    rejected: Option<PathBuf>,
    /// A system prompt for every conversation (it also steers the instructions drawn;
    /// the reference recommends none).
    #[arg(long)]
    system: Option<String>,
    /// Instruction decoding (the reference: temperature 1, top-p 1).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Token limit of an instruction.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Let instructions run over several lines (the reference stops at the first newline).
    #[arg(long)]
    multiline: bool,
    /// Response decoding (the reference: greedy).
    #[arg(long, default_value_t = 0.0)]
    response_temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    response_top_p: f32,
    /// Token limit of a response.
    #[arg(long, default_value_t = 512)]
    response_max_tokens: usize,
    /// ROUGE-L F1 with a kept instruction at which a conversation is a near-duplicate.
    #[arg(long, default_value_t = 0.7)]
    threshold: f64,
    /// Attempts per committed wave.
    #[arg(long, default_value_t = 64)]
    wave_size: usize,
    /// Stop after this many waves in a row keep nothing.
    #[arg(long, default_value_t = 5)]
    stall_waves: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Draw only shard I of N (0-based): its own stream of the run seed and share of
    /// --num; `teacher merge` joins the shards and drops near-duplicates across them.
    #[arg(long, default_value = "0/1")]
    shard: teacher::shard::Shard,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    judging: super::judge::PipelineJudgeArgs,
}

pub(crate) fn run(a: MagpieArgs, offline: bool) -> anyhow::Result<()> {
    if a.num == 0 || a.wave_size == 0 || a.max_tokens == 0 || a.response_max_tokens == 0 {
        bail!("--num, --wave-size, --max-tokens and --response-max-tokens must be at least 1");
    }
    if a.turns == 0 || a.turns > magpie::MAX_TURNS {
        bail!(
            "--turns must be 1 to {}, got {}",
            magpie::MAX_TURNS,
            a.turns
        );
    }
    if !(a.threshold > 0.0 && a.threshold <= 1.0) {
        bail!("--threshold must be in (0, 1], got {}", a.threshold);
    }
    let instruction_sampling = SamplingParams {
        temperature: a.temperature,
        top_p: a.top_p,
        ..SamplingParams::default()
    };
    let response_sampling = SamplingParams {
        temperature: a.response_temperature,
        top_p: a.response_top_p,
        ..SamplingParams::default()
    };
    instruction_sampling
        .validate()
        .map_err(teacher::Error::from)?;
    response_sampling.validate().map_err(teacher::Error::from)?;
    let mut outputs = vec![("--out", a.out.as_path())];
    if let Some(r) = &a.rejected {
        outputs.push(("--rejected", r));
    }
    check_outputs(&outputs, &a.model.input_files())?;
    a.judging.check(&outputs)?;
    let (file, model_sha256) = open_for_pipeline(&a.model, offline)?;
    if file.chat_template.is_none() {
        bail!(
            "`{}` is a base model (its GGUF has no chat template): Magpie needs an instruction-tuned chat model, whose template opens the user turn it then writes\nhint: use a chat model (e.g. --model smollm2-135m-instruct), or give the chat model's template with --chat-template FILE",
            a.model.model
        );
    }
    let cfg = magpie::Config {
        num: a.num,
        turns: a.turns,
        wave_size: a.wave_size,
        seed: a.seed,
        system: a.system.clone(),
        instruction_sampling,
        instruction_max_tokens: a.max_tokens,
        multiline: a.multiline,
        response_sampling,
        response_max_tokens: a.response_max_tokens,
        threshold: a.threshold,
        stall_waves: a.stall_waves.max(1),
        model_name: a.model.model.clone(),
        model_sha256: model_sha256.clone(),
        shard: a.shard,
    };
    let model = a.model.load(&file)?;
    let ecfg = a.engine.config(a.shard.seed(a.seed));
    let mut engine = Engine::new(&model, &file.tokenizer, ecfg)?;
    let started = std::time::Instant::now();
    let bar = teacher::progress::bar(a.shard.share(a.num) as u64, "conversations");
    let p = magpie::run(
        &mut engine,
        &file,
        &cfg,
        &a.out,
        a.rejected.as_deref(),
        |p| match &bar {
            Some(b) => {
                b.set_position(p.accepted as u64);
                b.set_message(format!("{} attempts", p.attempts));
            }
            None => eprintln!(
                "teacher: wave {}: {} of {} kept after {} attempts; rejected {:?}",
                p.wave, p.accepted, p.target, p.attempts, p.rejected
            ),
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "teacher: {} conversations in `{}` from {} attempts in {:.1} s ({} tokens generated); rejected {:?}",
        p.accepted,
        a.out.display(),
        p.attempts,
        started.elapsed().as_secs_f64(),
        engine.stats.generated_tokens,
        p.rejected
    );
    let ran = super::judge::Ran {
        out: &a.out,
        model: &a.model,
        model_sha256: &model_sha256,
        engine_args: &a.engine,
        seed: a.shard.seed(a.seed),
        offline,
    };
    a.judging.after_run(ran, &mut engine, &file)?;
    Ok(())
}
