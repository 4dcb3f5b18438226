//! `teacher judge`: scores for every record (response quality, instruction complexity),
//! and `--judge` on the pipelines, which judges their output when they finish.

use super::args::{check_outputs, open_for_pipeline, EngineArgs, ModelArgs, SamplingArgs};
use anyhow::bail;
use clap::Args;
use std::path::{Path, PathBuf};
use teacher::engine::Engine;
use teacher::pipeline::{items, judge as jd};
use teacher_models::{fetch, ModelFile};

#[derive(Args)]
pub(crate) struct JudgeArgs {
    /// The judge model (catalog name, `.gguf` path or `hf:`).
    #[command(flatten)]
    model: ModelArgs,
    /// Records to judge: the output of any teacher pipeline, Alpaca records,
    /// `messages`/ShareGPT conversations, or instructions alone (complexity only).
    #[arg(long)]
    input: PathBuf,
    /// The judged records: each gains `scores`.
    #[arg(long)]
    out: PathBuf,
    /// The prompts of a `teacher generate` output (its input file), matched by id.
    #[arg(long)]
    prompts: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Where records below `--min-quality`/`--min-complexity` go, with the reason
    /// [default with a minimum: OUT's name with `.rejected.jsonl`].
    #[arg(long)]
    rejected: Option<PathBuf>,
    /// Let the judge write freely (its answer is still parsed strictly); by default
    /// it must write `Explanation: …` and then the score line.
    #[arg(long)]
    unconstrained: bool,
    /// Records per committed wave.
    #[arg(long, default_value_t = 64)]
    wave_size: usize,
    /// Judge only shard I of N (0-based), for array jobs.
    #[arg(long, default_value = "0/1")]
    shard: teacher::shard::Shard,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

/// The score minimums (shared by `judge` and the pipelines' `--judge`).
#[derive(Args, Clone, Default)]
pub(crate) struct FilterArgs {
    /// Keep only records whose response quality is at least this (1–10); the others,
    /// and records whose quality could not be scored, go to the rejected file.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=10))]
    min_quality: Option<u8>,
    /// Keep only records whose instruction complexity is at least this (1–10).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=10))]
    min_complexity: Option<u8>,
}

/// `--judge` and its settings on a pipeline.
#[derive(Args, Clone, Default)]
pub(crate) struct PipelineJudgeArgs {
    /// When the run is complete, score every record (quality, complexity) into
    /// `--judge-out`; the run's own output stays as it is (it is the resume state).
    #[arg(long)]
    judge: bool,
    /// The judge model [default: the pipeline's model, whose loaded engine is reused].
    #[arg(long, requires = "judge")]
    judge_model: Option<String>,
    /// The judged records [default: OUT's name with `.judged.jsonl`].
    #[arg(long, requires = "judge")]
    judge_out: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
}

impl PipelineJudgeArgs {
    /// Where `--judge` writes: the judged records and, with a minimum, their rejects.
    fn outputs(&self, out: &Path) -> (PathBuf, Option<PathBuf>) {
        let judged = self
            .judge_out
            .clone()
            .unwrap_or_else(|| teacher::pipeline::run_file::sibling_path(out, "judged"));
        let rejected = rejected_path(&judged, None, &self.filter);
        (judged, rejected)
    }

    /// Refuse, before the pipeline runs, judge outputs that are one of the pipeline's
    /// own files (`pipeline_files`: its output, rejected file, inputs).
    pub(crate) fn check(&self, pipeline_files: &[(&str, &Path)]) -> anyhow::Result<()> {
        if !self.judge {
            return Ok(());
        }
        let (judged, rejected) = self.outputs(pipeline_files[0].1);
        let mut outputs = vec![("--judge-out", judged.as_path())];
        if let Some(r) = &rejected {
            outputs.push(("the judge's rejected file", r.as_path()));
        }
        check_outputs(&outputs, pipeline_files)
    }
}

pub(crate) fn run(a: JudgeArgs, offline: bool) -> anyhow::Result<()> {
    let sampling = a.sampling.params()?;
    if a.wave_size == 0 {
        bail!("--wave-size must be at least 1");
    }
    let rejected = rejected_path(&a.out, a.rejected.clone(), &a.filter);
    let mut outputs = vec![("--out", a.out.as_path())];
    if let Some(r) = &rejected {
        outputs.push(("--rejected", r));
    }
    let mut inputs = a.model.input_files();
    inputs.push(("--input", &a.input));
    if let Some(p) = &a.prompts {
        inputs.push(("--prompts", p));
    }
    check_outputs(&outputs, &inputs)?;
    let list = items::load_outputs(&a.input)?;
    let prompts = a.prompts.as_ref().map(|p| items::load(p)).transpose()?;
    let subjects = jd::subjects(&list, a.prompts.as_deref().zip(prompts.as_deref()))?;
    let (file, model_sha256) = open_for_pipeline(&a.model, offline)?;
    let cfg = jd::Config {
        sampling,
        max_tokens: a.sampling.max_tokens,
        seed: a.sampling.seed,
        wave_size: a.wave_size,
        model_name: a.model.model.clone(),
        model_sha256,
        input_sha256: fetch::sha256_file(&a.input)?,
        input_path: a.input.clone(),
        prompts_sha256: a.prompts.as_deref().map(fetch::sha256_file).transpose()?,
        min_quality: a.filter.min_quality,
        min_complexity: a.filter.min_complexity,
        constrained: !a.unconstrained,
        shard: a.shard,
    };
    let model = a.model.load(&file)?;
    let mut engine = Engine::new(&model, &file.tokenizer, a.engine.config(a.sampling.seed))?;
    judge_with(
        &mut engine,
        &file,
        &list,
        &subjects,
        &cfg,
        &a.out,
        rejected.as_deref(),
    )
}

/// The rejected file of a judged output: the one given, or the default when a minimum
/// can reject records.
fn rejected_path(out: &Path, given: Option<PathBuf>, f: &FilterArgs) -> Option<PathBuf> {
    given.or_else(|| {
        (f.min_quality.is_some() || f.min_complexity.is_some())
            .then(|| teacher::pipeline::run_file::default_rejected_path(out))
    })
}

fn judge_with(
    engine: &mut Engine,
    file: &ModelFile,
    list: &[items::Item],
    subjects: &[jd::Subject],
    cfg: &jd::Config,
    out: &Path,
    rejected: Option<&Path>,
) -> anyhow::Result<()> {
    let bar = teacher::progress::bar(cfg.shard.range(list.len()).len() as u64, "judged");
    let started = std::time::Instant::now();
    let s = jd::run(
        engine,
        file,
        list,
        subjects,
        cfg,
        out,
        rejected,
        |done, total| match &bar {
            Some(b) => b.set_position(done as u64),
            None => eprintln!("teacher: {done}/{total} records judged"),
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let m = teacher::pipeline::run_file::read_manifest(out)?;
    eprintln!(
        "teacher: judged into `{}` in {:.1} s: {} kept, {} rejected; judgements {}",
        out.display(),
        started.elapsed().as_secs_f64(),
        s.kept,
        s.rejected,
        m["judge"]
    );
    Ok(())
}

/// What a pipeline ran with, for `--judge` after it.
pub(crate) struct Ran<'a> {
    pub(crate) out: &'a Path,
    pub(crate) model: &'a ModelArgs,
    /// The pipeline model's sha256, already known (not hashed again).
    pub(crate) model_sha256: &'a str,
    pub(crate) engine_args: &'a EngineArgs,
    pub(crate) seed: u64,
    pub(crate) offline: bool,
}

impl PipelineJudgeArgs {
    /// Judge a finished pipeline's output when `--judge` is on. The pipeline's engine
    /// and opened model are reused when the judge is the pipeline's own model.
    ///
    /// (The judge's outputs were checked against the pipeline's files before the run:
    /// [`PipelineJudgeArgs::check`].)
    pub(crate) fn after_run(
        &self,
        ran: Ran<'_>,
        engine: &mut Engine,
        file: &ModelFile,
    ) -> anyhow::Result<()> {
        if !self.judge {
            return Ok(());
        }
        let out = ran.out;
        let (judged, rejected) = self.outputs(out);
        let list = items::load(out)?;
        let subjects = jd::subjects(&list, None)?;
        let judge_model = ModelArgs {
            model: self
                .judge_model
                .clone()
                .unwrap_or_else(|| ran.model.model.clone()),
            ..ran.model.clone()
        };
        let mut cfg = jd::Config {
            sampling: teacher_kernels::SamplingParams::greedy(),
            max_tokens: 256,
            seed: ran.seed,
            wave_size: 64,
            model_name: judge_model.model.clone(),
            model_sha256: ran.model_sha256.to_string(),
            input_sha256: fetch::sha256_file(out)?,
            input_path: out.to_path_buf(),
            prompts_sha256: None,
            min_quality: self.filter.min_quality,
            min_complexity: self.filter.min_complexity,
            constrained: true,
            shard: teacher::shard::Shard::default(),
        };
        eprintln!(
            "teacher: judging `{}` with {} into `{}`",
            out.display(),
            cfg.model_name,
            judged.display()
        );
        if self.judge_model.is_none() {
            return judge_with(
                engine,
                file,
                &list,
                &subjects,
                &cfg,
                &judged,
                rejected.as_deref(),
            );
        }
        let (jfile, jsha) = open_for_pipeline(&judge_model, ran.offline)?;
        cfg.model_sha256 = jsha;
        let jmodel = judge_model.load(&jfile)?;
        let mut jengine = Engine::new(&jmodel, &jfile.tokenizer, ran.engine_args.config(ran.seed))?;
        judge_with(
            &mut jengine,
            &jfile,
            &list,
            &subjects,
            &cfg,
            &judged,
            rejected.as_deref(),
        )
    }
}
