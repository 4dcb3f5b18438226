//! Magpie (Xu et al. 2024, "Magpie: Alignment Data Synthesis from Scratch by Prompting
//! Aligned LLMs with Nothing"): an aligned chat model is given only the opening of a
//! user turn (the *pre-query template*) and writes a user instruction itself; the
//! instruction is then answered as a normal chat. Turns 2..K repeat this after the
//! conversation so far, under the multi-turn system prompt of the reference code.
//!
//! The pre-query template is cut from the model's own chat template (rendered with a
//! placeholder user message), so it is right for every model that has a template;
//! base models, which have none, are refused. Defaults follow the reference scripts:
//! instructions at temperature 1, top-p 1, stopped at the first newline; responses
//! greedy. Conversations pass the paper's filters (empty, truncated, too short,
//! repetitive, refusal) and the near-duplicate filter on the first instruction
//! (ROUGE-L ≥ 0.7 with a kept one, in attempt order).
//!
//! Attempts run in waves committed in attempt order; every draw is keyed by (seed,
//! attempt, turn, stage), so the output never depends on `--batch`, thread count or
//! finishing order, and a killed run resumes to the same bytes.

use super::generate_all;
use super::run_file::RunFile;
use crate::engine::{Engine, FinishReason, Output, Request};
use crate::error::Result;
use crate::filter::rouge_l::{DropRule, RougeIndex};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use teacher_kernels::SamplingParams;
use teacher_models::{Message, ModelFile};

pub const MAGPIE_PROMPT_VERSION: &str = "teacher-magpie-1";

/// The reference code's system prompt for generating follow-up instructions.
pub const MULTI_TURN_SYSTEM: &str = "You are a helpful AI assistant. The user will engage in a multi-round conversation with you, asking initial questions and following up with additional related questions. Your goal is to provide thorough, relevant and insightful responses to help the user with their queries.";

/// The most turns a conversation may have.
pub const MAX_TURNS: usize = 16;

#[derive(Debug, Clone)]
pub struct Config {
    /// Conversations to keep.
    pub num: usize,
    pub turns: usize,
    pub wave_size: usize,
    pub seed: u64,
    /// A system prompt for every conversation (also given when instructions are drawn).
    pub system: Option<String>,
    pub instruction_sampling: SamplingParams,
    pub instruction_max_tokens: usize,
    /// Let instructions run over several lines (the reference stops at the first).
    pub multiline: bool,
    pub response_sampling: SamplingParams,
    pub response_max_tokens: usize,
    pub threshold: f64,
    pub stall_waves: usize,
    pub model_name: String,
    pub model_sha256: String,
    pub shard: crate::shard::Shard,
}

impl Config {
    fn params_json(&self, pre_query: &str) -> Value {
        let mut p = json!({
            "turns": self.turns,
            "wave_size": self.wave_size,
            "seed": self.seed,
            "system": self.system,
            "instruction_temperature": super::f32_json(self.instruction_sampling.temperature),
            "instruction_top_p": super::f32_json(self.instruction_sampling.top_p),
            "instruction_max_tokens": self.instruction_max_tokens,
            "multiline": self.multiline,
            "response_temperature": super::f32_json(self.response_sampling.temperature),
            "response_top_p": super::f32_json(self.response_sampling.top_p),
            "response_max_tokens": self.response_max_tokens,
            "threshold": self.threshold,
            "drop_rule": format!("{:?}", DropRule::AtLeast),
            "stall_waves": self.stall_waves,
            "model": self.model_name,
            "model_sha256": self.model_sha256,
            "pre_query_template": pre_query,
            "prompt_version": MAGPIE_PROMPT_VERSION,
        });
        if !self.shard.is_whole() {
            p["num"] = json!(self.num);
        }
        self.shard.add_to_params(&mut p);
        p
    }

    fn target(&self) -> usize {
        self.shard.share(self.num)
    }

    /// Attempts per wave: `wave_size`, but no more than its share in a shard, so that
    /// N shards of a small `--num` do not each spend a whole wave (a shard also keeps no
    /// conversation past its share).
    fn wave_attempts(&self) -> usize {
        if self.shard.is_whole() {
            self.wave_size
        } else {
            self.wave_size.min(self.target())
        }
    }

    /// Waves in a row that keep nothing before the run stops: `stall_waves`, counted in
    /// whole-run waves of attempts, so a shard's smaller waves give up after as many
    /// fruitless attempts as a whole run.
    fn stall_limit(&self) -> usize {
        self.stall_waves * self.wave_size.div_ceil(self.wave_attempts())
    }

    fn id(&self, attempt: u64) -> String {
        if self.shard.is_whole() {
            format!("mp-{attempt}")
        } else {
            format!("mp-s{}-{attempt}", self.shard.index)
        }
    }
}

/// Why a conversation was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    EmptyInstruction,
    TruncatedInstruction,
    TooShort,
    EmptyResponse,
    TruncatedResponse,
    Refusal,
    Repetitive,
    NearDuplicate,
    PromptTooLong,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::EmptyInstruction => "empty_instruction",
            Reason::TruncatedInstruction => "truncated_instruction",
            Reason::TooShort => "too_short",
            Reason::EmptyResponse => "empty_response",
            Reason::TruncatedResponse => "truncated_response",
            Reason::Refusal => "refusal",
            Reason::Repetitive => "repetitive",
            Reason::NearDuplicate => "near_duplicate",
            Reason::PromptTooLong => "prompt_too_long",
        }
    }
}

/// Text with no letter or digit (empty, whitespace, punctuation).
fn is_empty(text: &str) -> bool {
    !text.chars().any(char::is_alphanumeric)
}

/// A loop: over at least 12 word 4-grams, fewer than half are distinct.
pub fn is_repetitive(text: &str) -> bool {
    let words: Vec<String> = text.split_whitespace().map(|w| w.to_lowercase()).collect();
    if words.len() < 15 {
        return false;
    }
    let grams: Vec<&[String]> = words.windows(4).collect();
    let distinct: std::collections::HashSet<&[String]> = grams.iter().copied().collect();
    distinct.len() * 2 < grams.len()
}

/// Phrases that open a refusal.
const REFUSALS: &[&str] = &[
    "i'm sorry",
    "i am sorry",
    "sorry, ",
    "i cannot",
    "i can't",
    "i can not",
    "i apologize",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "as an ai",
];

/// A response that opens by refusing (or by "As an AI …").
pub fn is_refusal(response: &str) -> bool {
    let start: String = response
        .trim_start()
        .chars()
        .take(40)
        .collect::<String>()
        .to_lowercase()
        .replace('\u{2019}', "'");
    REFUSALS.iter().any(|p| start.starts_with(p))
}

/// What the caller sees after each wave.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Progress {
    pub wave: u64,
    pub attempts: u64,
    pub accepted: usize,
    pub target: usize,
    pub rejected: BTreeMap<String, u64>,
    pub generation_seconds: f64,
}

/// Random stream of (attempt, turn, stage): stage 0 draws the instruction, 1 the response.
fn stream(attempt: u64, turn: usize, stage: u64) -> u64 {
    (0x4d47 << 48) | (attempt << 8) | ((turn as u64) << 1) | stage
}

pub fn run(
    engine: &mut Engine,
    file: &ModelFile,
    cfg: &Config,
    out: &Path,
    rejected: Option<&Path>,
    mut report: impl FnMut(&Progress),
) -> Result<Progress> {
    // Refuses base models (no template) before any file is touched.
    let first_history: Vec<Message> = cfg
        .system
        .iter()
        .map(|s| Message::new("system", s.clone()))
        .collect();
    let pre_query = file.pre_query(&first_history)?;
    cfg.shard
        .check_not_empty(cfg.num, "conversations of --num")?;
    let (mut rf, committed) = RunFile::open(
        "magpie",
        out,
        rejected,
        super::with_engine_params(cfg.params_json(&pre_query), engine, file),
        super::run_info(engine),
    )?;
    let mut index = RougeIndex::new();
    for r in &committed {
        index.insert(0, r["instruction"].as_str().unwrap_or_default());
    }
    let mut progress = Progress {
        target: cfg.target(),
        accepted: committed.len(),
        wave: rf.waves_done(),
        attempts: rf.waves_done() * cfg.wave_attempts() as u64,
        ..Progress::default()
    };
    let productive: std::collections::BTreeSet<u64> = committed
        .iter()
        .filter_map(|r| r["wave"].as_u64())
        .collect();
    let mut stalled = (0..rf.waves_done())
        .rev()
        .take_while(|w| !productive.contains(w))
        .count();
    while progress.accepted < cfg.target() && stalled < cfg.stall_limit() {
        let wave = rf.waves_done();
        let t0 = Instant::now();
        let (mut records, rejects, counts) = run_wave(engine, file, cfg, wave, &mut index)?;
        if !cfg.shard.is_whole() {
            records.truncate(cfg.target() - progress.accepted);
        }
        let secs = t0.elapsed().as_secs_f64();
        stalled = if records.is_empty() { stalled + 1 } else { 0 };
        let mut s = BTreeMap::new();
        s.insert("generation".to_string(), secs);
        rf.note_tokens(&engine.stats);
        rf.commit_wave(&records, &rejects, &counts, &s)?;
        progress.wave = wave;
        progress.attempts += cfg.wave_attempts() as u64;
        progress.accepted += records.len();
        progress.generation_seconds += secs;
        for (k, v) in counts {
            *progress.rejected.entry(k).or_default() += v;
        }
        report(&progress);
    }
    if progress.accepted < cfg.target() {
        eprintln!(
            "teacher: stopped after {} waves in a row kept nothing ({} of {} conversations); rejected {:?}\nhint: try another --temperature, a larger model, or --multiline",
            cfg.stall_limit(),
            progress.accepted,
            cfg.target(),
            progress.rejected
        );
    }
    rf.finish()?;
    Ok(progress)
}

/// One attempt's conversation so far.
struct Attempt {
    n: u64,
    messages: Vec<Message>,
    failed: Option<(Reason, usize, String)>,
}

type WaveResult = (Vec<Value>, Vec<Value>, BTreeMap<String, u64>);

fn run_wave(
    engine: &mut Engine,
    file: &ModelFile,
    cfg: &Config,
    wave: u64,
    index: &mut RougeIndex,
) -> Result<WaveResult> {
    let first = wave * cfg.wave_attempts() as u64;
    let mut attempts: Vec<Attempt> = (first..first + cfg.wave_attempts() as u64)
        .map(|n| Attempt {
            n,
            messages: Vec::new(),
            failed: None,
        })
        .collect();
    let system: Vec<Message> = cfg
        .system
        .iter()
        .map(|s| Message::new("system", s.clone()))
        .collect();
    let instruction_stops: Vec<String> = if cfg.multiline {
        Vec::new()
    } else {
        vec!["\n".into()]
    };
    for turn in 1..=cfg.turns {
        // 1. The user's turn, written by the model after the pre-query template.
        stage(
            engine,
            &mut attempts,
            turn,
            "user",
            check_instruction,
            |a| {
                let mut history = if turn == 1 {
                    system.clone()
                } else {
                    vec![Message::new(
                        "system",
                        cfg.system.as_deref().unwrap_or(MULTI_TURN_SYSTEM),
                    )]
                };
                history.extend(a.messages.iter().cloned());
                Ok(Request {
                    id: stream(a.n, turn, 0),
                    prompt: file.encode_prompt(&file.pre_query(&history)?)?,
                    params: cfg.instruction_sampling.clone(),
                    max_tokens: cfg.instruction_max_tokens,
                    stop: instruction_stops.clone(),
                    constraint: None,
                    draw: None,
                    top_logprobs: None,
                    stream: false,
                })
            },
        )?;
        // 2. The assistant's answer to it.
        stage(
            engine,
            &mut attempts,
            turn,
            "assistant",
            check_response,
            |a| {
                let mut conv = system.clone();
                conv.extend(a.messages.iter().cloned());
                Ok(Request {
                    id: stream(a.n, turn, 1),
                    prompt: file.encode_prompt(&file.render_chat(&conv)?)?,
                    params: cfg.response_sampling.clone(),
                    max_tokens: cfg.response_max_tokens,
                    stop: Vec::new(),
                    constraint: None,
                    draw: None,
                    top_logprobs: None,
                    stream: false,
                })
            },
        )?;
    }

    // 3. The near-duplicate filter in attempt order, then the records.
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let (mut records, mut rejects) = (Vec::new(), Vec::new());
    let conversation = |a: &Attempt| -> Value {
        let mut all = system.clone();
        all.extend(a.messages.iter().cloned());
        serde_json::to_value(&all).expect("messages serialise")
    };
    for a in &attempts {
        let id = cfg.id(a.n);
        if let Some((why, turn, text)) = &a.failed {
            *counts.entry(why.as_str().into()).or_default() += 1;
            rejects.push(json!({
                "id": id, "reason": why.as_str(), "turn": turn, "text": text,
                "messages": conversation(a), "wave": wave,
            }));
            continue;
        }
        let instruction = a.messages[0].content.clone();
        if let Some(m) = index.is_near_duplicate(&instruction, cfg.threshold, DropRule::AtLeast) {
            *counts
                .entry(Reason::NearDuplicate.as_str().into())
                .or_default() += 1;
            rejects.push(json!({
                "id": id, "reason": Reason::NearDuplicate.as_str(), "turn": 1,
                "rouge_l": m.score, "messages": conversation(a), "wave": wave,
            }));
            continue;
        }
        index.insert(0, &instruction);
        records.push(json!({
            "id": id,
            "instruction": instruction,
            "input": "",
            "output": a.messages[1].content,
            "messages": conversation(a),
            "turns": cfg.turns,
            "source": "magpie",
            "wave": wave,
            "model": cfg.model_name,
            "prompt_version": MAGPIE_PROMPT_VERSION,
        }));
    }
    Ok((records, rejects, counts))
}

/// One generation for every attempt still alive: its output (checked by `check`)
/// becomes the conversation's next `role` message, or the attempt's failure.
fn stage(
    engine: &mut Engine,
    attempts: &mut [Attempt],
    turn: usize,
    role: &str,
    check: fn(&Output, &str) -> Option<Reason>,
    request: impl Fn(&Attempt) -> Result<Request>,
) -> Result<()> {
    let live: Vec<usize> = (0..attempts.len())
        .filter(|&i| attempts[i].failed.is_none())
        .collect();
    let reqs = live
        .iter()
        .map(|&i| request(&attempts[i]))
        .collect::<Result<Vec<_>>>()?;
    let outs = generate_all(engine, reqs)?;
    for (&i, o) in live.iter().zip(&outs) {
        let text = o.text.trim().to_string();
        let a = &mut attempts[i];
        match check(o, &text) {
            Some(r) => a.failed = Some((r, turn, text)),
            None => a.messages.push(Message::new(role, text)),
        }
    }
    Ok(())
}

fn check_instruction(o: &Output, text: &str) -> Option<Reason> {
    match o.finish_reason {
        FinishReason::Error => Some(Reason::PromptTooLong),
        FinishReason::Length | FinishReason::Context => Some(Reason::TruncatedInstruction),
        _ if is_empty(text) => Some(Reason::EmptyInstruction),
        _ if text.split_whitespace().count() < 3 => Some(Reason::TooShort),
        _ if is_repetitive(text) => Some(Reason::Repetitive),
        _ => None,
    }
}

fn check_response(o: &Output, text: &str) -> Option<Reason> {
    match o.finish_reason {
        FinishReason::Error => Some(Reason::PromptTooLong),
        FinishReason::Length | FinishReason::Context => Some(Reason::TruncatedResponse),
        _ if is_empty(text) => Some(Reason::EmptyResponse),
        _ if is_refusal(text) => Some(Reason::Refusal),
        _ if is_repetitive(text) => Some(Reason::Repetitive),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(is_refusal("I'm sorry, but I can't help with that."));
        assert!(is_refusal(
            "  As an AI language model, I do not have opinions."
        ));
        assert!(is_refusal("I\u{2019}m sorry"));
        assert!(!is_refusal(
            "Sorry to hear that! Here are three ideas: rest, water, sleep."[7..].trim()
        ));
        assert!(!is_refusal("The capital of France is Paris."));
        assert!(is_repetitive(&"the cat sat on the mat ".repeat(6)));
        assert!(!is_repetitive(
            "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in the chloroplasts of plant cells, powering nearly all life."
        ));
        assert!(!is_repetitive("short short short short"));
        assert!(is_empty(" ... !? "));
        assert!(!is_empty("Hi"));
        assert_ne!(stream(1, 1, 0), stream(1, 1, 1));
        assert_ne!(stream(1, 2, 0), stream(2, 1, 0));
    }
}
