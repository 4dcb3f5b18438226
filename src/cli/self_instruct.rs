//! `teacher self-instruct`: grow a seed set into new tasks (Self-Instruct / Alpaca).

use super::args::{EngineArgs, ModelArgs};
use anyhow::bail;
use clap::Args;
use std::path::PathBuf;
use teacher::engine::Engine;
use teacher_kernels::SamplingParams;
use teacher_models::fetch;
use teacher_models::{LoadOptions, ModelFile};

#[derive(Args)]
pub(crate) struct SelfInstructArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Machine-generated tasks to produce (at least; the last wave is kept whole).
    #[arg(long, default_value_t = 100)]
    num: usize,
    /// The output JSONL; running the same command again resumes it.
    #[arg(long, default_value = "self_instruct.jsonl")]
    out: PathBuf,
    /// Write every rejected candidate with its reason here.
    #[arg(long)]
    rejected: Option<PathBuf>,
    /// Seed tasks (Self-Instruct JSONL, Alpaca JSON/JSONL, or one instruction per line);
    /// default: the 126 seeds shipped with teacher.
    #[arg(long)]
    seeds: Option<PathBuf>,
    #[arg(long, value_enum)]
    seed_format: Option<teacher::pipeline::seeds::SeedFormat>,
    /// `paper` for base models, `alpaca` for chat models; default from the model.
    #[arg(long, value_enum)]
    style: Option<teacher::pipeline::self_instruct::Style>,
    /// Prompts per wave; the output depends on it (never on --batch).
    #[arg(long, default_value_t = 64)]
    wave_size: usize,
    /// Alpaca style: tasks asked for per request.
    #[arg(long, default_value_t = 20)]
    num_tasks: usize,
    /// ROUGE-L F1 at which a new instruction is a near-duplicate.
    #[arg(long, default_value_t = 0.7)]
    threshold: f64,
    /// Drop only above the threshold (the reference code's `>`), not at it.
    #[arg(long)]
    strict: bool,
    /// Apply Python's str.capitalize() to instructions as the Self-Instruct code does
    /// (lower-cases everything after the first letter).
    #[arg(long)]
    capitalize: bool,
    /// Override the instruction-generation temperature (paper 0.7, alpaca 1.0).
    #[arg(long)]
    temperature: Option<f32>,
    /// Override top-p (paper 0.5, alpaca 1.0).
    #[arg(long)]
    top_p: Option<f32>,
    /// Override the instruction-generation token limit (paper 1024, alpaca 600).
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Alpaca style: token limit of the answer asked for a task that came without one.
    #[arg(long, default_value_t = 400)]
    answer_max_tokens: usize,
    /// The run seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Grow only shard I of N (0-based): its own pool from the seeds, with its own
    /// stream of the run seed and its share of --num; `teacher merge` joins the shards
    /// and drops near-duplicates across them.
    #[arg(long, default_value = "0/1")]
    shard: teacher::shard::Shard,
    /// Constrain the model's task lists (and paper style's classification answers) to
    /// the shape the parser reads, so fewer generated tokens are thrown away.
    #[arg(long)]
    constrained: bool,
    /// Stop after this many waves in a row produce nothing.
    #[arg(long, default_value_t = 5)]
    stall_waves: usize,
    /// Also export the data as `alpaca`, `sharegpt` or `messages` JSON next to --out.
    #[arg(long, value_enum)]
    format: Option<teacher::export::Format>,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    judging: super::judge::PipelineJudgeArgs,
}

pub(crate) fn run(a: SelfInstructArgs, offline: bool) -> anyhow::Result<()> {
    use teacher::pipeline::{seeds, self_instruct as si};
    if a.num == 0 || a.wave_size == 0 || a.num_tasks == 0 {
        bail!("--num, --wave-size and --num-tasks must be at least 1");
    }
    a.shard
        .check_not_empty(a.num, "tasks of --num")
        .map_err(anyhow::Error::from)?;
    if !(a.threshold > 0.0 && a.threshold <= 1.0) {
        bail!("--threshold must be in (0, 1], got {}", a.threshold);
    }
    let mut outputs = vec![("--out", a.out.as_path())];
    if let Some(r) = &a.rejected {
        outputs.push(("--rejected", r));
    }
    let mut inputs = a.model.input_files();
    if let Some(s) = &a.seeds {
        inputs.push(("--seeds", s));
    }
    super::args::check_outputs(&outputs, &inputs)?;
    a.judging
        .check(&[outputs.as_slice(), inputs.as_slice()].concat())?;
    let check = SamplingParams {
        temperature: a.temperature.unwrap_or(0.7),
        top_p: a.top_p.unwrap_or(0.5),
        ..SamplingParams::default()
    };
    check.validate().map_err(teacher::Error::from)?;
    let seed_tasks = match &a.seeds {
        Some(p) => seeds::load(p, a.seed_format)?,
        None => seeds::default_seeds(),
    };
    let seeds_sha = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for s in &seed_tasks {
            h.update(serde_json::to_vec(s)?);
        }
        format!("{:x}", h.finalize())
    };
    let resolved = fetch::resolve(&a.model.model, offline)?;
    let file = ModelFile::open(
        &resolved.path,
        &LoadOptions {
            tokenizer: a.model.tokenizer.clone(),
            chat_template: a.model.chat_template.clone(),
        },
    )?;
    let style = a.style.unwrap_or(match file.prompt_style() {
        teacher_models::PromptStyle::Chat => si::Style::Alpaca,
        teacher_models::PromptStyle::Completion => si::Style::Paper,
    });
    if style == si::Style::Alpaca && file.chat_template.is_none() {
        bail!("--style alpaca needs a chat model; `{}` has no chat template\nhint: use --style paper, or give a template with --chat-template FILE", a.model.model);
    }
    let model_sha256 = match &resolved.entry {
        Some(e) => e.sha256.clone(),
        None => fetch::sha256_file(&resolved.path)?,
    };
    let cfg = si::Config {
        style,
        num: a.num,
        wave_size: a.wave_size,
        seed: a.seed,
        num_tasks: a.num_tasks,
        threshold: a.threshold,
        rule: if a.strict {
            teacher::filter::DropRule::Above
        } else {
            teacher::filter::DropRule::AtLeast
        },
        capitalize: a.capitalize,
        temperature: a.temperature,
        top_p: a.top_p,
        max_tokens: a.max_tokens,
        answer_max_tokens: a.answer_max_tokens.max(1),
        stall_waves: a.stall_waves.max(1),
        model_name: a.model.model.clone(),
        model_sha256: model_sha256.clone(),
        seeds_sha256: seeds_sha,
        shard: a.shard,
        constrained: a.constrained,
    };
    let model = a.model.load(&file)?;
    let ecfg = a.engine.config(a.shard.seed(a.seed));
    let mut engine = Engine::new(&model, &file.tokenizer, ecfg)?;
    let bar = teacher::progress::bar(a.shard.share(a.num) as u64, "tasks");
    let started = std::time::Instant::now();
    let p = si::run(
        &mut engine,
        &file,
        seed_tasks,
        &cfg,
        &a.out,
        a.rejected.as_deref(),
        |p| {
            let rejected: u64 = p.rejected.values().sum();
            let tps = p.generated_tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
            match &bar {
                Some(b) => {
                    b.set_position(p.accepted as u64);
                    b.set_message(format!(
                        "wave {} · {tps:.0} tok/s · {rejected} rejected",
                        p.wave
                    ));
                }
                None => eprintln!(
                    "teacher: wave {}: {}/{} tasks, {} rejected {:?}, {:.0} tok/s",
                    p.wave, p.accepted, p.target, rejected, p.rejected, tps
                ),
            }
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let total = started.elapsed().as_secs_f64();
    eprintln!(
        "teacher: {} tasks in `{}` ({} rejected) in {:.1} s; generation {:.1} s, filtering {:.2} s",
        p.accepted,
        a.out.display(),
        p.rejected.values().sum::<u64>(),
        total,
        p.generation_seconds,
        p.filter_seconds
    );
    if let Some(f) = a.format {
        let path = teacher::export::export_file(&a.out, f)?;
        eprintln!("teacher: exported {}", path.display());
    }
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
