//! Self-Instruct: grow a seed set into new tasks with instances, written by the
//! teacher model and filtered (Wang et al. 2022; the Alpaca variant for chat models).
//!
//! The run proceeds in waves. A wave's prompts are built from the pool as it stood
//! after the previous wave, with in-context examples drawn by Philox from (run seed,
//! wave, prompt index); generation runs batched in any order; the results are parsed,
//! filtered and committed in prompt order. So the output depends on the seed, model,
//! wave size and parameters — never on `--batch`, thread count or finishing order.
//!
//! Deliberate differences from the reference code (each documented in the README):
//! no `str.capitalize()` unless `--capitalize`; a task whose instances all fail is
//! removed from the pool (the reference keeps it, since its steps run separately);
//! at most 5 instances per task, the first 5 rather than a random 5.

use super::prompt::{self, PROMPT_VERSION};
use super::run_file::RunFile;
use super::seeds::{Instance, SeedTask};
use super::{generate_all, pick};
use crate::engine::{Engine, FinishReason, Output, Request};
use crate::error::Result;
use crate::filter::heuristics::{
    check_instance, check_instruction, collapse_ws, py_capitalize, Reason, ALPACA_BLACKLIST,
    PAPER_BLACKLIST,
};
use crate::filter::rouge_l::{DropRule, PruneStats, RougeIndex};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use teacher_kernels::SamplingParams;
use teacher_models::{Message, ModelFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Base models: numbered list continuation, then classification and instances.
    Paper,
    /// Chat models: one request asks for many tasks with input and output.
    Alpaca,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub style: Style,
    /// Machine-generated tasks to produce.
    pub num: usize,
    pub wave_size: usize,
    pub seed: u64,
    /// Alpaca style: tasks asked for per request.
    pub num_tasks: usize,
    pub threshold: f64,
    pub rule: DropRule,
    pub capitalize: bool,
    /// Overrides of the instruction-generation decoding.
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<usize>,
    /// Token limit of an answer requested for a task that came without an output.
    pub answer_max_tokens: usize,
    /// Stop after this many waves in a row accept nothing.
    pub stall_waves: usize,
    pub model_name: String,
    pub model_sha256: String,
    pub seeds_sha256: String,
    /// This run's pool of a sharded Self-Instruct (`--shard I/N`): its own seed and a
    /// share of `num`; `teacher merge` filters near-duplicates across the shards.
    pub shard: crate::shard::Shard,
    /// Constrain the task-generation and classification outputs to the shapes the
    /// parsers read (`--constrained`).
    pub constrained: bool,
}

const MAX_INSTANCES: usize = 5;
/// Decoding of those answers: moderately random, lightly discouraged from looping.
fn answer_params() -> SamplingParams {
    SamplingParams {
        temperature: 0.7,
        top_p: 0.9,
        repetition_penalty: 1.1,
        ..SamplingParams::default()
    }
}

impl Config {
    /// The seed of this run's draws: the run seed, or the shard's own.
    pub fn draw_seed(&self) -> u64 {
        self.shard.seed(self.seed)
    }

    /// Tasks this run grows: `num`, or the shard's share of it.
    pub fn target(&self) -> usize {
        self.shard.share(self.num)
    }

    /// Task-generation prompts per wave: `wave_size`, but no more than its share in a
    /// shard, so that N shards of a small `--num` do not each spend a whole wave
    /// (a shard also commits no task past its share: [`wave_records`]).
    pub fn wave_prompts(&self) -> usize {
        if self.shard.is_whole() {
            self.wave_size
        } else {
            self.wave_size.min(self.target())
        }
    }

    /// Waves in a row that accept nothing before the run stops: `stall_waves`, counted
    /// in whole-run waves of prompts, so a shard's smaller waves give up after as many
    /// fruitless prompts as a whole run.
    pub fn stall_limit(&self) -> usize {
        self.stall_waves * self.wave_size.div_ceil(self.wave_prompts())
    }

    /// The prompt version records carry: constrained runs add the constraint version.
    pub fn prompt_version(&self) -> String {
        if self.constrained {
            format!("{PROMPT_VERSION}+{}", prompt::CONSTRAINT_VERSION)
        } else {
            PROMPT_VERSION.to_string()
        }
    }

    /// Machine task ids: `si-7`, or `si-s2-7` in shard 2 (unique across shards).
    fn task_id(&self, n: usize) -> String {
        if self.shard.is_whole() {
            format!("si-{n}")
        } else {
            format!("si-s{}-{n}", self.shard.index)
        }
    }

    fn gen_params(&self) -> (SamplingParams, usize, Vec<String>) {
        let (t, p, presence, max, stop): (f32, f32, f32, usize, &[&str]) = match self.style {
            // Self-Instruct: davinci, T 0.7, top_p 0.5, presence 2, 1024 tokens.
            Style::Paper => (0.7, 0.5, 2.0, 1024, &["\n\n", "\n16", "16.", "16 ."]),
            // Alpaca: T 1, top_p 1, 3072 tokens in the reference; 600 here, since small
            // teachers ramble long before they finish 16 well-formed tasks.
            Style::Alpaca => (1.0, 1.0, 0.0, 600, &["\n20", "20."]),
        };
        let params = SamplingParams {
            temperature: self.temperature.unwrap_or(t),
            top_p: self.top_p.unwrap_or(p),
            presence_penalty: presence,
            ..SamplingParams::default()
        };
        (
            params,
            self.max_tokens.unwrap_or(max),
            stop.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// Everything that determines the output (the manifest's `params`).
    pub fn params_json(&self) -> Value {
        let (g, max, stop) = self.gen_params();
        let mut p = json!({
            "style": self.style,
            "wave_size": self.wave_size,
            "seed": self.seed,
            "num_tasks": self.num_tasks,
            "threshold": self.threshold,
            "drop_rule": format!("{:?}", self.rule),
            "capitalize": self.capitalize,
            "temperature": super::f32_json(g.temperature),
            "top_p": super::f32_json(g.top_p),
            "max_tokens": max,
            "answer_max_tokens": self.answer_max_tokens,
            "stop": stop,
            "stall_waves": self.stall_waves,
            "model": self.model_name,
            "model_sha256": self.model_sha256,
            "seeds_sha256": self.seeds_sha256,
            "prompt_version": self.prompt_version(),
        });
        if self.constrained {
            p["constrained"] = json!(prompt::CONSTRAINT_VERSION);
        }
        if !self.shard.is_whole() {
            // The shares depend on it, so every shard must have the same.
            p["num"] = json!(self.num);
        }
        self.shard.add_to_params(&mut p);
        p
    }
}

/// A kept machine task.
#[derive(Debug, Clone)]
struct Task {
    id: String,
    instruction: String,
    instances: Vec<Instance>,
    is_classification: bool,
    wave: u64,
    in_context: Vec<String>,
}

/// What the caller sees after each wave.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Progress {
    pub wave: u64,
    pub accepted: usize,
    pub target: usize,
    pub rejected: BTreeMap<String, u64>,
    pub generated_tokens: u64,
    pub generation_seconds: f64,
    pub filter_seconds: f64,
}

struct State {
    constraints: crate::constrain::Cache,
    seeds: Vec<SeedTask>,
    machine: Vec<Task>,
    index: RougeIndex,
}

pub fn run(
    engine: &mut Engine,
    file: &ModelFile,
    seeds: Vec<SeedTask>,
    cfg: &Config,
    out: &Path,
    rejected: Option<&Path>,
    mut report: impl FnMut(&Progress),
) -> Result<Progress> {
    let extra = super::run_info(engine);
    let (mut rf, committed) = RunFile::open(
        "self-instruct",
        out,
        rejected,
        super::with_engine_params(cfg.params_json(), engine, file),
        extra,
    )?;
    let mut state = State {
        constraints: crate::constrain::Cache::new(&file.tokenizer),
        index: RougeIndex::new(),
        machine: Vec::new(),
        seeds,
    };
    for s in &state.seeds {
        state.index.insert(0, &s.instruction);
    }
    if committed.is_empty() {
        let records: Vec<Value> = state.seeds.iter().map(|s| seed_record(s, cfg)).collect();
        rf.commit_wave(&records, &[], &BTreeMap::new(), &BTreeMap::new())?;
    } else {
        for r in committed.iter().filter(|r| r["source"] == "self-instruct") {
            let t = task_from_record(r);
            state.index.insert(0, &t.instruction);
            state.machine.push(t);
        }
    }
    let mut progress = Progress {
        target: cfg.target(),
        accepted: state.machine.len(),
        wave: rf.waves_done(),
        ..Progress::default()
    };
    // Waves in a row that accepted nothing, counted back from the last committed one,
    // so a resumed (or finished and re-run) stalled run stops where it stopped.
    let productive: std::collections::BTreeSet<u64> = committed
        .iter()
        .filter(|r| r["source"] == "self-instruct")
        .filter_map(|r| r["wave"].as_u64())
        .collect();
    let mut stalled = (1..rf.waves_done())
        .rev()
        .take_while(|w| !productive.contains(w))
        .count();
    let going = |state: &State, stalled: usize| {
        state.machine.len() < cfg.target() && stalled < cfg.stall_limit()
    };
    match cfg.style {
        Style::Paper => {
            while going(&state, stalled) {
                let wave = rf.waves_done();
                let done = run_wave(engine, file, &mut state, cfg, wave)?;
                rf.note_tokens(&engine.stats);
                progress.generated_tokens = engine.stats.generated_tokens;
                stalled = commit(&mut rf, &state, &mut progress, stalled, done, &mut report)?;
            }
        }
        Style::Alpaca if going(&state, stalled) => {
            let mut run = Run {
                rf: &mut rf,
                progress: &mut progress,
                stalled,
                report: &mut report,
            };
            run_streamed(engine, file, &mut state, cfg, &mut run)?;
            stalled = run.stalled;
            rf.note_tokens(&engine.stats);
        }
        Style::Alpaca => {}
    }
    rf.finish()?;
    let too_long = progress
        .rejected
        .get("prompt_too_long")
        .copied()
        .unwrap_or(0);
    if going(&state, 0) && too_long > 0 {
        eprintln!(
            "teacher: stopped after {stalled} waves in a row accepted nothing ({} of {} tasks); {too_long} prompts were longer than the context ({} tokens)\nhint: raise --context",
            state.machine.len(),
            cfg.target(),
            engine.context()
        );
    } else if going(&state, 0) {
        eprintln!(
            "teacher: stopped after {stalled} waves in a row accepted nothing ({} of {} tasks); the model may be too weak for this style\nhint: try --style, --temperature, or a larger model",
            state.machine.len(),
            cfg.target()
        );
    }
    Ok(progress)
}

/// A finished wave, ready to commit.
struct WaveDone {
    wave: u64,
    records: Vec<Value>,
    rejects: Rejects,
    /// Seconds of generation and of filtering.
    generation: f64,
    filter: f64,
}

/// A wave's rejected candidates and their counts by reason.
struct Rejects {
    wave: u64,
    counts: BTreeMap<String, u64>,
    list: Vec<Value>,
}

impl Rejects {
    fn new(wave: u64) -> Self {
        Rejects {
            wave,
            counts: BTreeMap::new(),
            list: Vec::new(),
        }
    }

    fn add(&mut self, reason: Reason, mut v: Value) {
        *self.counts.entry(reason.as_str().to_string()).or_default() += 1;
        v["reason"] = json!(reason.as_str());
        v["wave"] = json!(self.wave);
        self.list.push(v);
    }
}

/// A task kept by the filters: instruction, instances, in-context ids.
type Accepted = (String, Vec<Instance>, Vec<String>);

/// Commit a finished wave and report progress; returns how many waves in a row have
/// now accepted nothing.
fn commit(
    rf: &mut RunFile,
    state: &State,
    progress: &mut Progress,
    stalled: usize,
    done: WaveDone,
    report: &mut dyn FnMut(&Progress),
) -> Result<usize> {
    let mut secs = BTreeMap::new();
    secs.insert("generation".to_string(), done.generation);
    secs.insert("filter".to_string(), done.filter);
    let Rejects { counts, list, .. } = done.rejects;
    rf.commit_wave(&done.records, &list, &counts, &secs)?;
    progress.wave = done.wave;
    progress.accepted = state.machine.len();
    for (k, v) in counts {
        *progress.rejected.entry(k).or_default() += v;
    }
    progress.generation_seconds += done.generation;
    progress.filter_seconds += done.filter;
    report(progress);
    Ok(if done.records.is_empty() {
        stalled + 1
    } else {
        0
    })
}

/// What committing waves updates, for the streamed run.
struct Run<'a> {
    rf: &'a mut RunFile,
    progress: &'a mut Progress,
    /// Waves in a row that accepted nothing.
    stalled: usize,
    report: &'a mut dyn FnMut(&Progress),
}

/// A wave of the streamed Alpaca run, from its first request to its commit.
struct Streamed {
    prompts: Vec<Vec<String>>,
    outs: Vec<Option<Output>>,
    /// Set once every completion is in.
    filtered: Option<Filtered>,
    filter_s: f64,
}

/// A streamed wave after its filter: the kept tasks, the wave's rejects, which tasks
/// wait for an answer, and the answers in so far (by task index).
struct Filtered {
    accepted: Vec<Accepted>,
    rejects: Rejects,
    missing: Vec<usize>,
    answers: BTreeMap<usize, Output>,
}

/// The Alpaca style as one engine stream. Its prompts do not depend on the pool (the
/// in-context examples are human seeds drawn by (seed, wave, index)), so the next
/// waves' requests are admitted while a wave's last completions decode, and the batch
/// stays full across the barrier. Each wave is still filtered against the pool as the
/// waves before it left it, its answer requests run, and it is committed in order —
/// from the same outputs (every request's output is what it would be alone), so the
/// files are those a wave-at-a-time run writes. Requests of waves started past the end
/// are cancelled.
fn run_streamed(
    engine: &mut Engine,
    file: &ModelFile,
    state: &mut State,
    cfg: &Config,
    run: &mut Run,
) -> Result<()> {
    let ahead = engine.batch().div_ceil(cfg.wave_prompts()).max(1) as u64;
    let first_wave = run.rf.waves_done();
    let mut s = Stream {
        first_wave,
        committing: first_wave,
        next_wave: first_wave,
        start_len: state.machine.len(),
        waves: BTreeMap::new(),
    };
    let first = s.start_waves(file, state, cfg, ahead)?;
    let mut generated = run.progress.generated_tokens;
    let mut since = Instant::now();
    let mut stopped = false;
    super::run_chains(engine, first, |o| {
        let mut f = super::FollowUps::default();
        generated += o.completion_tokens as u64;
        let (stage, wave, index) = stage_of(o.id);
        let Some(w) = s.waves.get_mut(&wave) else {
            return Ok(f);
        };
        match (stage, &mut w.filtered) {
            (1, _) => w.outs[index] = Some(o),
            (_, Some(filtered)) => {
                filtered.answers.insert(index, o);
            }
            (_, None) => {}
        }
        // Filter, then commit, every wave that is ready, in order.
        while let Some(w) = s.waves.get_mut(&s.committing) {
            let wave = s.committing;
            if w.filtered.is_none() {
                if w.outs.iter().any(Option::is_none) {
                    break;
                }
                let t0 = Instant::now();
                let outs: Vec<Output> = w.outs.drain(..).flatten().collect();
                let mut rej = Rejects::new(wave);
                let accepted = filter_wave(state, cfg, &w.prompts, &outs, &mut rej);
                let (missing, reqs) = answer_requests(file, cfg, wave, &accepted)?;
                f.first.extend(reqs);
                w.filtered = Some(Filtered {
                    accepted,
                    rejects: rej,
                    missing,
                    answers: BTreeMap::new(),
                });
                w.filter_s = t0.elapsed().as_secs_f64();
            }
            if let Some(filtered) = &w.filtered {
                if filtered.answers.len() < filtered.missing.len() {
                    break;
                }
            }
            let Some(Streamed {
                filtered:
                    Some(Filtered {
                        mut accepted,
                        rejects: mut rej,
                        missing,
                        answers,
                    }),
                filter_s,
                ..
            }) = s.waves.remove(&wave)
            else {
                unreachable!("the wave was filtered above");
            };
            let t0 = Instant::now();
            // By task index, which is the order of `missing`.
            let answers: Vec<Output> = answers.into_values().collect();
            take_answers(&mut accepted, &missing, &answers, &mut rej);
            let clf = vec![false; accepted.len()];
            let records = wave_records(state, cfg, wave, accepted, &clf, &mut rej);
            let filter = filter_s + t0.elapsed().as_secs_f64();
            let done = WaveDone {
                wave,
                records,
                rejects: rej,
                generation: (since.elapsed().as_secs_f64() - filter).max(0.0),
                filter,
            };
            since = Instant::now();
            run.progress.generated_tokens = generated;
            run.stalled = commit(run.rf, state, run.progress, run.stalled, done, run.report)?;
            s.committing += 1;
            if state.machine.len() >= cfg.target() || run.stalled >= cfg.stall_limit() {
                stopped = true;
                f.stop = true;
                return Ok(f);
            }
            f.last.extend(s.start_waves(file, state, cfg, ahead)?);
        }
        Ok(f)
    })?;
    if !stopped {
        return Err(crate::Error::Usage(format!(
            "internal: self-instruct's stream ended with wave {} uncommitted",
            s.committing
        )));
    }
    Ok(())
}

/// The waves of a streamed run: which one commits next, which starts next, and those in
/// flight.
struct Stream {
    first_wave: u64,
    committing: u64,
    next_wave: u64,
    /// Tasks in the pool when this process started the stream.
    start_len: usize,
    waves: BTreeMap<u64, Streamed>,
}

impl Stream {
    /// The requests of the waves that may start now: the one being committed, and at
    /// most `ahead` past it once this process has committed a wave, while those in
    /// flight are not expected, at the tasks per wave committed so far, to reach the
    /// target (waves started past the end are cancelled, their work lost).
    fn start_waves(
        &mut self,
        file: &ModelFile,
        state: &mut State,
        cfg: &Config,
        ahead: u64,
    ) -> Result<Vec<Request>> {
        let mut reqs = Vec::new();
        while self.next_wave <= self.committing + ahead {
            let (done, in_flight) = (
                self.committing - self.first_wave,
                self.next_wave - self.committing,
            );
            if in_flight > 0 {
                // Past the wave being committed only once a wave has shown the yield.
                if done == 0 {
                    break;
                }
                let per_wave = (state.machine.len() - self.start_len) as f64 / done as f64;
                if state.machine.len() as f64 + per_wave * in_flight as f64 >= cfg.target() as f64 {
                    break;
                }
            }
            let (r, prompts) = wave_requests(file, state, cfg, self.next_wave)?;
            self.waves.insert(
                self.next_wave,
                Streamed {
                    outs: vec![None; r.len()],
                    prompts,
                    filtered: None,
                    filter_s: 0.0,
                },
            );
            reqs.extend(r);
            self.next_wave += 1;
        }
        Ok(reqs)
    }
}

/// One wave of the paper style: task generation, filtering, then classification and
/// instances for the kept tasks, each stage a batch of its own (the next wave's
/// prompts draw from the pool this one grows).
fn run_wave(
    engine: &mut Engine,
    file: &ModelFile,
    state: &mut State,
    cfg: &Config,
    wave: u64,
) -> Result<WaveDone> {
    let mut rej = Rejects::new(wave);
    let (requests, prompts) = wave_requests(file, state, cfg, wave)?;
    let t0 = Instant::now();
    let outs = generate_all(engine, requests)?;
    let mut gen_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut accepted = filter_wave(state, cfg, &prompts, &outs, &mut rej);
    let mut filter_s = t0.elapsed().as_secs_f64();

    // 3. Classification identification, then instances.
    let mut clf = vec![false; accepted.len()];
    if !accepted.is_empty() {
        let classify = if cfg.constrained {
            Some(state.constraints.get(prompt::CLASSIFY_CONSTRAINT)?)
        } else {
            None
        };
        let reqs = accepted
            .iter()
            .enumerate()
            .map(|(k, (inst, _, _))| -> Result<Request> {
                Ok(Request {
                    id: stream_id(2, wave, k as u64),
                    prompt: file.encode_prompt(&prompt::classify_prompt(inst))?,
                    params: SamplingParams::greedy(),
                    max_tokens: 3,
                    stop: vec!["\n".into(), "Task".into()],
                    constraint: classify.clone(),
                    draw: None,
                    top_logprobs: None,
                    stream: false,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let t0 = Instant::now();
        let outs = generate_all(engine, reqs)?;
        for (k, o) in outs.iter().enumerate() {
            clf[k] = prompt::parse_classify(&o.text);
        }
        let reqs = accepted
            .iter()
            .enumerate()
            .map(|(k, (inst, _, _))| -> Result<Request> {
                Ok(Request {
                    id: stream_id(3, wave, k as u64),
                    prompt: file.encode_prompt(&prompt::instances_prompt(inst, clf[k]))?,
                    params: SamplingParams {
                        presence_penalty: 1.5,
                        ..SamplingParams::greedy()
                    },
                    max_tokens: if clf[k] { 300 } else { 350 },
                    stop: vec!["Example 6".into(), "Task:".into()],
                    constraint: None,
                    draw: None,
                    top_logprobs: None,
                    stream: false,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let outs = generate_all(engine, reqs)?;
        gen_s += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let insts: Vec<String> = accepted.iter().map(|a| a.0.clone()).collect();
        for (k, o) in outs.iter().enumerate() {
            accepted[k].1 = instances_of(o, clf[k], &mut |r, inp: &str, out: &str| {
                rej.add(
                    r,
                    json!({"instruction": insts[k], "input": inp, "output": out}),
                );
            });
        }
        filter_s += t0.elapsed().as_secs_f64();
    }

    let records = wave_records(state, cfg, wave, accepted, &clf, &mut rej);
    Ok(WaveDone {
        wave,
        records,
        rejects: rej,
        generation: gen_s,
        filter: filter_s,
    })
}
/// Stage 1: a wave's task-generation requests, built from the pool as it stands, and each
/// prompt's in-context ids.
fn wave_requests(
    file: &ModelFile,
    state: &mut State,
    cfg: &Config,
    wave: u64,
) -> Result<(Vec<Request>, Vec<Vec<String>>)> {
    let (params, max_tokens, stop) = cfg.gen_params();
    let mut prompts = Vec::with_capacity(cfg.wave_prompts());
    let mut requests = Vec::with_capacity(cfg.wave_prompts());
    for j in 0..cfg.wave_prompts() {
        let stream = stream_id(1, wave, j as u64);
        let (text, ids) = build_prompt(file, state, cfg, wave, j)?;
        // The list continues from the number after its examples.
        let constraint = if cfg.constrained {
            let first = ids.len() + 1;
            let pattern = match cfg.style {
                Style::Paper => prompt::paper_constraint(first, 15),
                Style::Alpaca => prompt::alpaca_constraint(first, 19),
            };
            Some(state.constraints.get(&pattern)?)
        } else {
            None
        };
        requests.push(Request {
            id: stream,
            prompt: file.encode_prompt(&text)?,
            params: params.clone(),
            max_tokens,
            stop: stop.clone(),
            constraint,
            draw: None,
            top_logprobs: None,
            stream: false,
        });
        prompts.push(ids);
    }
    Ok((requests, prompts))
}

/// Stage 2: parse and filter a wave's completions in prompt order; the pool grows inside the
/// wave.
fn filter_wave(
    state: &State,
    cfg: &Config,
    prompts: &[Vec<String>],
    outs: &[Output],
    rej: &mut Rejects,
) -> Vec<Accepted> {
    let blacklist = match cfg.style {
        Style::Paper => PAPER_BLACKLIST,
        Style::Alpaca => ALPACA_BLACKLIST,
    };
    let mut in_wave = RougeIndex::new();
    let mut accepted: Vec<(String, Vec<Instance>, Vec<String>)> = Vec::new();
    let mut stats = PruneStats::default();
    for (j, o) in outs.iter().enumerate() {
        let in_context = &prompts[j];
        let base = json!({"prompt": j, "in_context_ids": in_context});
        if o.finish_reason == FinishReason::Error {
            let mut v = base.clone();
            v["error"] = json!(o.error);
            rej.add(Reason::PromptTooLong, v);
            continue;
        }
        let truncated = matches!(
            o.finish_reason,
            FinishReason::Length | FinishReason::Context
        );
        let candidates: Vec<Option<(String, Option<Instance>)>> = match cfg.style {
            Style::Paper => {
                if truncated || o.finish_reason == FinishReason::Error {
                    let mut v = base.clone();
                    v["completion"] = json!(o.text);
                    rej.add(Reason::Truncated, v);
                    continue;
                }
                prompt::parse_paper_completion(&o.text)
                    .into_iter()
                    .map(|i| Some((i, None)))
                    .collect()
            }
            Style::Alpaca => prompt::parse_alpaca_completion(&o.text, 4, truncated)
                .into_iter()
                .map(|p| {
                    p.map(|t| {
                        let inst = t.output.map(|output| Instance {
                            input: t.input.clone(),
                            output,
                        });
                        // Without an output the task keeps its input for the answer step.
                        (
                            t.instruction,
                            inst.or(Some(Instance {
                                input: t.input,
                                output: String::new(),
                            })),
                        )
                    })
                })
                .collect(),
        };
        for c in candidates {
            let Some((inst, instance)) = c else {
                rej.add(Reason::Unparsable, base.clone());
                continue;
            };
            let inst = if cfg.capitalize {
                py_capitalize(&collapse_ws(&inst))
            } else {
                collapse_ws(&inst)
            };
            let mut v = base.clone();
            v["instruction"] = json!(inst);
            if let Some(i) = &instance {
                v["input"] = json!(i.input);
                v["output"] = json!(i.output);
            }
            if let Some(r) = check_instruction(&inst, blacklist) {
                rej.add(r, v);
                continue;
            }
            if let Some(i) = instance.as_ref().filter(|i| !i.output.is_empty()) {
                if let Some(r) = check_instance(&i.input, &i.output) {
                    rej.add(r, v);
                    continue;
                }
            }
            let toks = state.index.tokens(&inst);
            let best = state
                .index
                .best_match(&toks, cfg.threshold, &mut stats)
                .into_iter()
                .chain(in_wave.best_match(&in_wave.tokens(&inst), cfg.threshold, &mut stats))
                .filter(|m| cfg.rule.drops(m.score, cfg.threshold))
                .map(|m| m.score)
                .fold(None, |a: Option<f64>, s| Some(a.map_or(s, |a| a.max(s))));
            if let Some(score) = best {
                v["rouge_l"] = json!(score);
                rej.add(Reason::NearDuplicate, v);
                continue;
            }
            in_wave.insert(0, &inst);
            accepted.push((inst, instance.into_iter().collect(), in_context.clone()));
        }
    }
    accepted
}

/// Stage 3 of the Alpaca style: one answer request for each kept task whose completion had no
/// output, with the tasks' indices.
fn answer_requests(
    file: &ModelFile,
    cfg: &Config,
    wave: u64,
    accepted: &[Accepted],
) -> Result<(Vec<usize>, Vec<Request>)> {
    let missing: Vec<usize> = (0..accepted.len())
        .filter(|&k| accepted[k].1.first().is_none_or(|i| i.output.is_empty()))
        .collect();
    let reqs = missing
        .iter()
        .map(|&k| -> Result<Request> {
            let input = accepted[k].1.first().map_or("", |i| i.input.as_str());
            Ok(Request {
                id: stream_id(4, wave, k as u64),
                prompt: file.encode_prompt(&prompt::respond_prompt(
                    file,
                    &accepted[k].0,
                    input,
                    None,
                )?)?,
                params: answer_params(),
                max_tokens: cfg.answer_max_tokens,
                stop: Vec::new(),
                constraint: None,
                draw: None,
                top_logprobs: None,
                stream: false,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((missing, reqs))
}

/// The outputs of `answer_requests`, in its order, become the tasks' instances.
fn take_answers(accepted: &mut [Accepted], missing: &[usize], outs: &[Output], rej: &mut Rejects) {
    for (&k, o) in missing.iter().zip(outs) {
        let input = accepted[k]
            .1
            .first()
            .map(|i| i.input.clone())
            .unwrap_or_default();
        let output = o.text.trim().to_string();
        accepted[k].1.clear();
        let v = json!({"instruction": accepted[k].0, "input": input, "output": output});
        if matches!(
            o.finish_reason,
            FinishReason::Length | FinishReason::Context | FinishReason::Error
        ) {
            rej.add(Reason::Truncated, v);
            continue;
        }
        match check_instance(&input, &output) {
            Some(r) => rej.add(r, v),
            None => accepted[k].1.push(Instance { input, output }),
        }
    }
}

/// Stage 4: a wave's records, in order; the kept tasks join the pool.
fn wave_records(
    state: &mut State,
    cfg: &Config,
    wave: u64,
    accepted: Vec<Accepted>,
    clf: &[bool],
    rej: &mut Rejects,
) -> Vec<Value> {
    // A whole run commits the whole wave even past the target, so a run stopped at N
    // and extended to M gives the same bytes as a run straight to M. A shard stops at
    // its share, so the shards of `--num N` add up to N.
    let mut records = Vec::new();
    for (k, (inst, instances, in_context)) in accepted.into_iter().enumerate() {
        if !cfg.shard.is_whole() && state.machine.len() >= cfg.target() {
            break;
        }
        if instances.is_empty() {
            rej.add(
                Reason::NoInstances,
                json!({"instruction": inst, "wave": wave}),
            );
            continue;
        }
        let task = Task {
            id: cfg.task_id(state.machine.len() + 1),
            instruction: inst,
            instances,
            is_classification: clf[k],
            wave,
            in_context,
        };
        records.push(task_record(&task, cfg));
        state.index.insert(0, &task.instruction);
        state.machine.push(task);
    }
    records
}
/// The instances of one instance-generation completion, filtered (§5.1–5.3).
fn instances_of(
    o: &Output,
    clf: bool,
    reject: &mut dyn FnMut(Reason, &str, &str),
) -> Vec<Instance> {
    let mut pairs = if clf {
        prompt::parse_output_first(&o.text)
    } else {
        prompt::parse_input_first(&o.text)
    };
    if matches!(
        o.finish_reason,
        FinishReason::Length | FinishReason::Context
    ) {
        pairs.pop();
    }
    let mut kept: Vec<Instance> = Vec::new();
    for (input, output) in pairs {
        if let Some(r) = check_instance(&input, &output) {
            reject(r, &input, &output);
            continue;
        }
        if kept.iter().any(|k| k.input == input && k.output == output) {
            continue;
        }
        kept.push(Instance { input, output });
    }
    // Same non-empty input with different outputs: the whole task's instances go.
    let conflict = kept.iter().enumerate().any(|(i, a)| {
        !a.input.is_empty()
            && kept[i + 1..]
                .iter()
                .any(|b| b.input == a.input && b.output != a.output)
    });
    if conflict {
        reject(Reason::ConflictingOutputs, "", "");
        return Vec::new();
    }
    kept.truncate(MAX_INSTANCES);
    kept
}

fn build_prompt(
    file: &ModelFile,
    state: &State,
    cfg: &Config,
    wave: u64,
    j: usize,
) -> Result<(String, Vec<String>)> {
    let stream = stream_id(0, wave, j as u64);
    match cfg.style {
        Style::Paper => {
            // Up to 2 machine tasks, the rest (to 8) human seeds, shuffled together.
            let n_machine = state.machine.len().min(2);
            let n_seed = (8 - n_machine).min(state.seeds.len());
            let mut chosen: Vec<(String, String)> = Vec::new();
            for i in pick(cfg.draw_seed(), stream, 0, state.machine.len(), n_machine) {
                let t = &state.machine[i];
                chosen.push((t.id.clone(), t.instruction.clone()));
            }
            for i in pick(cfg.draw_seed(), stream, 1, state.seeds.len(), n_seed) {
                let t = &state.seeds[i];
                chosen.push((t.id.clone(), t.instruction.clone()));
            }
            let order = pick(cfg.draw_seed(), stream, 2, chosen.len(), chosen.len());
            let chosen: Vec<(String, String)> =
                order.into_iter().map(|i| chosen[i].clone()).collect();
            let insts: Vec<&str> = chosen.iter().map(|c| c.1.as_str()).collect();
            Ok((
                prompt::paper_generate(&insts),
                chosen.into_iter().map(|c| c.0).collect(),
            ))
        }
        Style::Alpaca => {
            // Three human seeds with their first instance, as the reference does.
            let with_instances: Vec<&SeedTask> = state
                .seeds
                .iter()
                .filter(|s| !s.instances.is_empty())
                .collect();
            let picks = pick(
                cfg.draw_seed(),
                stream,
                0,
                with_instances.len(),
                3.min(with_instances.len()),
            );
            let ex: Vec<&SeedTask> = picks.into_iter().map(|i| with_instances[i]).collect();
            let triples: Vec<(&str, &str, &str)> = ex
                .iter()
                .map(|s| {
                    (
                        s.instruction.as_str(),
                        s.instances[0].input.as_str(),
                        s.instances[0].output.as_str(),
                    )
                })
                .collect();
            let user = prompt::alpaca_user_message(&triples, cfg.num_tasks);
            let text = file.render_chat(&[Message::new("user", user)])?
                + &prompt::alpaca_primer(ex.len() + 1);
            Ok((text, ex.iter().map(|s| s.id.clone()).collect()))
        }
    }
}

/// Distinct random streams per (stage, wave, index).
fn stream_id(stage: u64, wave: u64, index: u64) -> u64 {
    (stage << 56) | (wave << 24) | index
}

/// (stage, wave, index) of a `stream_id`.
fn stage_of(id: u64) -> (u64, u64, usize) {
    (
        id >> 56,
        (id >> 24) & 0xffff_ffff,
        (id & 0xff_ffff) as usize,
    )
}

fn seed_record(s: &SeedTask, cfg: &Config) -> Value {
    let first = s.instances.first();
    json!({
        "id": s.id,
        "instruction": s.instruction,
        "input": first.map_or("", |i| i.input.as_str()),
        "output": first.map_or("", |i| i.output.as_str()),
        "instances": s.instances,
        "is_classification": s.is_classification,
        "source": "seed",
        "wave": 0,
        "in_context_ids": [],
        "model": cfg.model_name,
        "prompt_version": cfg.prompt_version(),
    })
}

fn task_record(t: &Task, cfg: &Config) -> Value {
    json!({
        "id": t.id,
        "instruction": t.instruction,
        "input": t.instances[0].input,
        "output": t.instances[0].output,
        "instances": t.instances,
        "is_classification": t.is_classification,
        "source": "self-instruct",
        "wave": t.wave,
        "in_context_ids": t.in_context,
        "model": cfg.model_name,
        "prompt_version": cfg.prompt_version(),
    })
}

fn task_from_record(r: &Value) -> Task {
    Task {
        id: r["id"].as_str().unwrap_or_default().to_string(),
        instruction: r["instruction"].as_str().unwrap_or_default().to_string(),
        instances: serde_json::from_value(r["instances"].clone()).unwrap_or_default(),
        is_classification: r["is_classification"].as_bool().unwrap_or(false),
        wave: r["wave"].as_u64().unwrap_or(0),
        in_context: serde_json::from_value(r["in_context_ids"].clone()).unwrap_or_default(),
    }
}
