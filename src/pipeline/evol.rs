//! Evol-Instruct (WizardLM, arXiv 2304.12244): rewrite instructions into harder ones
//! (in depth) or new rarer ones (in breadth) over rounds, answer each, and eliminate
//! failed evolutions by the paper's four rules.
//!
//! Every root instruction has one current form in the pool. In each round every pool
//! item is evolved once, with an operation drawn by Philox from (seed, item, round); the
//! evolution is answered in the same round; an evolution the paper's rules eliminate
//! leaves the item unevolved for the next round. The near-duplicate filter is a filter
//! of the dataset, not of the chain: an evolution too close to one already kept is
//! left out of the output (and written to the rejected file) but stays its root's
//! current form. So each root's chain depends on nothing but its own item, and a run
//! split into shards (`--shard`, each shard a slice of the roots) merges back to the
//! same bytes: `teacher merge` applies the near-duplicate filter in the same order
//! (round by round, roots in input order) that a single run applies it in. Rounds are
//! processed in waves committed in item order, so the output never depends on
//! `--batch`, thread count or finishing order, and a killed run resumes to the same
//! bytes (the rejected file, always kept, holds the chains' near-duplicate steps).

use super::items::Item;
use super::respond::{completion_stops, item_prompt};
use super::run_file::RunFile;
use super::stream_of_id;
use crate::engine::{Engine, FinishReason, Output, Request};
use crate::error::Result;
use crate::filter::exact::normalize;
use crate::filter::rouge_l::RougeIndex;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;
use teacher_kernels::{philox, SamplingParams};
use teacher_models::{Message, ModelFile};

pub const EVOL_PROMPT_VERSION: &str = "teacher-evol-1";

/// `--constrained`: an evolution is one paragraph with no `#` (the evolving prompts'
/// markers, whose copies rule 4 eliminates); the equality verdict is one of its two
/// answers.
const EVOLVED_CONSTRAINT: &str = r"[ \n]?[^\s#][^\n#]{9,}\n?";
const EQUAL_CONSTRAINT: &str = r"(?i) ?(?:equal|not equal)";

const DEPTH: &str = include_str!("prompts/evol_depth.txt");
const BREADTH: &str = include_str!("prompts/evol_breadth.txt");
const EQUAL: &str = include_str!("prompts/evol_equal.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvolOp {
    AddConstraints,
    Deepening,
    Concretizing,
    IncreasedReasoning,
    ComplicateInput,
    Breadth,
}

pub const ALL_OPS: [EvolOp; 6] = [
    EvolOp::AddConstraints,
    EvolOp::Deepening,
    EvolOp::Concretizing,
    EvolOp::IncreasedReasoning,
    EvolOp::ComplicateInput,
    EvolOp::Breadth,
];

/// Formats for complicate-input, chosen per item with the same draw.
const INPUT_FORMATS: [&str; 4] = [
    "a small table in Markdown",
    "a short Python code snippet",
    "a JSON object",
    "a CSV excerpt",
];

impl EvolOp {
    pub fn name(self) -> &'static str {
        match self {
            EvolOp::AddConstraints => "add_constraints",
            EvolOp::Deepening => "deepening",
            EvolOp::Concretizing => "concretizing",
            EvolOp::IncreasedReasoning => "increased_reasoning",
            EvolOp::ComplicateInput => "complicate_input",
            EvolOp::Breadth => "breadth",
        }
    }

    fn method(self, format_pick: u64) -> String {
        match self {
            EvolOp::AddConstraints => "add one more constraint or requirement to it.".into(),
            EvolOp::Deepening => "if it asks about an issue, ask about that issue in more depth and breadth.".into(),
            EvolOp::Concretizing => "replace general concepts with more specific ones.".into(),
            EvolOp::IncreasedReasoning => {
                "if a few simple steps of thinking solve it, rewrite it so that it explicitly asks for reasoning in several steps.".into()
            }
            EvolOp::ComplicateInput => format!(
                "add concrete input data as {} that the task must use.",
                INPUT_FORMATS[(format_pick % INPUT_FORMATS.len() as u64) as usize]
            ),
            EvolOp::Breadth => String::new(),
        }
    }
}

/// Why an evolution failed (the paper's four rules, plus the near-duplicate filter and
/// generation limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Elimination {
    /// Rule 1, caught by the pre-check: same text as the parent after normalisation.
    NoGainIdentical,
    /// Rule 1, the teacher's equality verdict.
    NoGainEqual,
    /// Rule 2: the response says sorry and is short.
    Struggled,
    /// Rule 3: the response is only punctuation and stop words.
    EmptyResponse,
    /// Rule 4: the instruction copies words of the evolving prompt.
    PromptLeak,
    /// Near-duplicate of another kept instruction.
    NearDuplicate,
    /// The evolution or its response hit the token limit, or the evolution was empty.
    Truncated,
    /// The evolving prompt or the response prompt did not fit the context.
    PromptTooLong,
}

impl Elimination {
    pub fn as_str(self) -> &'static str {
        match self {
            Elimination::NoGainIdentical => "no_gain_identical",
            Elimination::NoGainEqual => "no_gain_equal",
            Elimination::Struggled => "struggled",
            Elimination::EmptyResponse => "empty_response",
            Elimination::PromptLeak => "prompt_leak",
            Elimination::NearDuplicate => "near_duplicate",
            Elimination::Truncated => "truncated",
            Elimination::PromptTooLong => "prompt_too_long",
        }
    }
}

/// Phrases of the evolving prompts whose appearance in an instruction is leakage.
const LEAK_PHRASES: &[&str] = &[
    "given prompt",
    "rewritten prompt",
    "created prompt",
    "#given prompt#",
    "#the given prompt#",
    "#rewritten prompt#",
    "#created prompt#",
    "prompt rewriter",
    "prompt creator",
];

/// English stop words (function words) for rule 3.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "s",
    "t",
    "d",
    "ll",
    "m",
    "o",
    "re",
    "ve",
    "y",
    "ok",
    "okay",
    "yes",
    "oh",
];

/// Rule 4.
pub fn leaks_prompt(instruction: &str) -> bool {
    let l = instruction.to_lowercase();
    LEAK_PHRASES.iter().any(|p| l.contains(p))
}

/// Rule 2: "sorry" and fewer than 80 words.
pub fn struggles(response: &str) -> bool {
    response.to_lowercase().contains("sorry") && response.split_whitespace().count() < 80
}

/// Rule 3: nothing but punctuation and stop words.
pub fn only_stop_words(response: &str) -> bool {
    response
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .all(|w| STOP_WORDS.contains(&w.as_str()))
}

/// The equality verdict, read strictly: `Some(true)` for "Equal", `Some(false)` for
/// "Not Equal", None when the reply says neither.
pub fn parse_equal(reply: &str) -> Option<bool> {
    let r = reply
        .trim()
        .trim_matches(|c: char| c == '"' || c == '.' || c == '*')
        .to_lowercase();
    if r.starts_with("not equal") {
        Some(false)
    } else if r.starts_with("equal") {
        Some(true)
    } else {
        None
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub rounds: usize,
    pub ops: Vec<EvolOp>,
    pub seed: u64,
    pub wave_size: usize,
    pub keep_originals: bool,
    pub threshold: f64,
    pub evolve_sampling: SamplingParams,
    pub evolve_max_tokens: usize,
    pub response_sampling: SamplingParams,
    pub response_max_tokens: usize,
    pub model_name: String,
    pub model_sha256: String,
    pub input_sha256: String,
    /// The roots this run evolves (`--shard I/N`); a shard leaves the near-duplicate
    /// filter to `teacher merge`.
    pub shard: crate::shard::Shard,
    /// Constrain evolutions and equality verdicts (`--constrained`).
    pub constrained: bool,
}

/// How near-duplicates act on the chains (see the module text); recorded in the
/// parameters so a run of an older rule is not resumed by this one.
const NEAR_DUPLICATE_RULE: &str = "dataset-filter";

impl Config {
    /// The prompt version records carry: constrained runs add the constraint version.
    pub fn prompt_version(&self) -> String {
        if self.constrained {
            format!(
                "{EVOL_PROMPT_VERSION}+{}",
                super::prompt::CONSTRAINT_VERSION
            )
        } else {
            EVOL_PROMPT_VERSION.to_string()
        }
    }

    fn params_json(&self) -> Value {
        let mut p = json!({
            "rounds": self.rounds,
            "ops": self.ops,
            "seed": self.seed,
            "wave_size": self.wave_size,
            "keep_originals": self.keep_originals,
            "threshold": self.threshold,
            "evolve_temperature": super::f32_json(self.evolve_sampling.temperature),
            "evolve_top_p": super::f32_json(self.evolve_sampling.top_p),
            "evolve_max_tokens": self.evolve_max_tokens,
            "response_temperature": super::f32_json(self.response_sampling.temperature),
            "response_top_p": super::f32_json(self.response_sampling.top_p),
            "response_max_tokens": self.response_max_tokens,
            "model": self.model_name,
            "model_sha256": self.model_sha256,
            "input_sha256": self.input_sha256,
            "prompt_version": self.prompt_version(),
            "near_duplicates": NEAR_DUPLICATE_RULE,
        });
        if self.constrained {
            p["constrained"] = json!(super::prompt::CONSTRAINT_VERSION);
        }
        self.shard.add_to_params(&mut p);
        p
    }
}

/// The near-duplicate filter over kept evolutions, in output order: one evolution is
/// dropped when its ROUGE-L F1 with any kept evolution other than its own parent
/// reaches the threshold. Used by the run itself and by `teacher merge` on shards.
pub struct NearDuplicates {
    index: RougeIndex,
    ids: Vec<String>,
    threshold: f64,
}

impl NearDuplicates {
    pub fn new(threshold: f64) -> NearDuplicates {
        NearDuplicates {
            index: RougeIndex::new(),
            ids: Vec::new(),
            threshold,
        }
    }

    /// Add a kept evolution without checking it (a resumed run's committed records).
    pub fn keep(&mut self, record: &Value) {
        let text = record["instruction"].as_str().unwrap_or_default();
        self.index.insert(self.ids.len() as u64, text);
        self.ids
            .push(record["id"].as_str().unwrap_or_default().to_string());
    }

    /// Check an evolution record (`source: evol`) against the kept ones: None, and it
    /// is kept, or the rejected record that says why it is not.
    pub fn check(&mut self, record: &Value) -> Option<Value> {
        let text = record["instruction"].as_str().unwrap_or_default();
        let parent = record["parent_id"].as_str().unwrap_or_default();
        let toks = self.index.tokens(text);
        let dup = self
            .index
            .matches_above(&toks, self.threshold)
            .into_iter()
            .any(|m| self.ids[m.id as usize] != parent);
        if dup {
            return Some(json!({
                "parent_id": record["parent_id"], "round": record["round"],
                "op": record["op"], "reason": Elimination::NearDuplicate.as_str(),
                "instruction": record["instruction"], "output": record["output"],
                "id": record["id"], "root_id": record["root_id"],
            }));
        }
        self.keep(record);
        None
    }
}

/// The ids of evolved records: `{root_id}.r{round}`, or `{root_id}.r{round}.{n}` (the
/// smallest n ≥ 1 that is free) where an input item already has that id. Unique whatever
/// the input ids: read from the end, an evolved id gives back its root and round (its
/// last part is `r` and digits, or digits after such a part), and no evolved id is an
/// input id. The set is the whole input's, so every shard names alike.
struct EvolvedIds(std::collections::HashSet<String>);

impl EvolvedIds {
    fn new(items: &[Item]) -> Self {
        EvolvedIds(items.iter().map(|it| it.id.clone()).collect())
    }

    fn id(&self, root_id: &str, round: usize) -> String {
        let plain = format!("{root_id}.r{round}");
        if !self.0.contains(&plain) {
            return plain;
        }
        (1..)
            .map(|n| format!("{plain}.{n}"))
            .find(|id| !self.0.contains(id))
            .expect("a finite input leaves a free number")
    }
}

/// One root's current form.
#[derive(Debug, Clone)]
struct Current {
    root: usize,
    /// The input item's id: evolved ids are `{root_id}.r{round}`.
    root_id: String,
    id: String,
    text: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Progress {
    pub round: usize,
    pub waves: u64,
    pub evolved: u64,
    pub failed: BTreeMap<String, u64>,
    pub generation_seconds: f64,
    pub filter_seconds: f64,
}

pub fn run(
    engine: &mut Engine,
    file: &ModelFile,
    items: &[Item],
    cfg: &Config,
    out: &Path,
    rejected: Option<&Path>,
    mut report: impl FnMut(&Progress),
) -> Result<Progress> {
    cfg.shard.check_not_empty(items.len(), "input items")?;
    let (mut rf, committed) = RunFile::open(
        "evolve",
        out,
        rejected,
        super::with_engine_params(cfg.params_json(), engine, file),
        super::run_info(engine),
    )?;
    let ids = EvolvedIds::new(items);
    let items = &items[cfg.shard.range(items.len())];
    let waves_per_round = items.len().div_ceil(cfg.wave_size).max(1) as u64;
    let mut pool: Vec<Current> = items
        .iter()
        .enumerate()
        .map(|(i, it)| Current {
            root: i,
            root_id: it.id.clone(),
            id: it.id.clone(),
            text: it.prompt_text(),
        })
        .collect();
    let root_of: BTreeMap<String, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.id.clone(), i))
        .collect();
    // A whole run filters near-duplicates as it goes; a shard leaves that to `merge`.
    let mut dedup = cfg
        .shard
        .is_whole()
        .then(|| NearDuplicates::new(cfg.threshold));
    // Rebuild the pool and the filter from what an earlier run committed: each root's
    // current form is its latest evolution, kept or dropped as a near-duplicate.
    let chain_steps = rf.committed_rejected()?;
    let steps = committed.iter().filter(|r| r["source"] == "evol").chain(
        chain_steps
            .iter()
            .filter(|r| r["reason"] == Elimination::NearDuplicate.as_str() && r["id"].is_string()),
    );
    let mut latest_round = vec![0u64; pool.len()];
    for r in steps {
        let root_id = r["root_id"].as_str().unwrap_or_default();
        let Some(&root) = root_of.get(root_id) else {
            return Err(crate::Error::Usage(format!(
                "`{}` holds an evolution of `{root_id}`, which is not an item of the input{}; it belongs to another run\nhint: run the original command again, or choose another --out",
                out.display(),
                if cfg.shard.is_whole() { String::new() } else { format!(" shard {}", cfg.shard) }
            )));
        };
        let round = r["round"].as_u64().unwrap_or(0);
        if round > latest_round[root] {
            latest_round[root] = round;
            pool[root] = Current {
                root,
                root_id: root_id.to_string(),
                id: r["id"].as_str().unwrap_or_default().to_string(),
                text: r["instruction"].as_str().unwrap_or_default().to_string(),
            };
        }
    }
    if let Some(d) = dedup.as_mut() {
        for r in committed.iter().filter(|r| r["source"] == "evol") {
            d.keep(r);
        }
    }
    let mut progress = Progress::default();
    let mut wave = rf.waves_done();
    if wave == 0 {
        // Wave 0: the originals (written only with --keep-originals).
        let recs: Vec<Value> = if cfg.keep_originals {
            items
                .iter()
                .map(|it| {
                    let mut r = it.record.clone();
                    r["id"] = json!(it.id);
                    r["instruction"] = json!(it.prompt_text());
                    r["source"] = json!("original");
                    r["round"] = json!(0);
                    r["root_id"] = json!(it.id);
                    r
                })
                .collect()
        } else {
            Vec::new()
        };
        rf.commit_wave(&recs, &[], &BTreeMap::new(), &BTreeMap::new())?;
        wave = 1;
    }
    let constraints: Constraints = if cfg.constrained {
        let mut cache = crate::constrain::Cache::new(&file.tokenizer);
        (
            Some(cache.get(EVOLVED_CONSTRAINT)?),
            Some(cache.get(EQUAL_CONSTRAINT)?),
        )
    } else {
        (None, None)
    };
    let total_waves = 1 + cfg.rounds as u64 * waves_per_round;
    let reqs = RoundRequests::new(file, cfg, &constraints);
    // Every root's chain (evolve → verdict → response, round after round) depends only
    // on its own item, so all of them run in one engine stream: an item starts its next
    // round as soon as it finished the last one and its wave is at most one ahead of the
    // wave being completed, so the batch stays full across wave ends. Waves are still
    // finished and committed in order (the near-duplicate filter and the rejected file
    // see the same order as a pass per wave), so the bytes do not change.
    let wave_of = |round: usize, i: usize| -> u64 {
        1 + (round as u64 - 1) * waves_per_round + (i / cfg.wave_size) as u64
    };
    let span_of = |wave: u64| -> std::ops::Range<usize> {
        let w = ((wave - 1) % waves_per_round) as usize;
        w * cfg.wave_size..((w + 1) * cfg.wave_size).min(items.len())
    };
    let round_of = |wave: u64| ((wave - 1) / waves_per_round) as usize + 1;
    // The round each item does next (the first uncommitted wave holding it).
    let mut next_round: Vec<usize> = (0..pool.len())
        .map(|i| {
            if wave >= total_waves {
                cfg.rounds + 1
            } else if wave_of(round_of(wave), i) >= wave {
                round_of(wave)
            } else {
                round_of(wave) + 1
            }
        })
        .collect();
    // An item's round in flight: its form at the round's start and its evolution.
    let mut chains: Vec<Chain> = pool
        .iter()
        .map(|c| Chain {
            form: c.clone(),
            evolved: String::new(),
            running: false,
        })
        .collect();
    let mut stage_of: HashMap<u64, (usize, usize, u8)> = HashMap::new();
    let mut outs: HashMap<u64, Output> = HashMap::new();
    let mut done_round: Vec<usize> = next_round.iter().map(|r| r - 1).collect();
    let mut committing = wave;
    let mut since = Instant::now();
    // Start item i's next round if its wave is released (at most one past the wave
    // being completed) and it is not running.
    let start = |i: usize,
                 committing: u64,
                 chains: &mut [Chain],
                 next_round: &[usize],
                 stage_of: &mut HashMap<u64, (usize, usize, u8)>|
     -> Result<Option<Request>> {
        let round = next_round[i];
        if chains[i].running || round > cfg.rounds || wave_of(round, i) > committing + 1 {
            return Ok(None);
        }
        chains[i].running = true;
        let r = reqs.evolve(&chains[i].form, round)?;
        stage_of.insert(r.id, (i, round, 1));
        Ok(Some(r))
    };
    let mut first = Vec::new();
    for i in 0..chains.len() {
        first.extend(start(
            i,
            committing,
            &mut chains,
            &next_round,
            &mut stage_of,
        )?);
    }
    super::run_chains(engine, first, |o| {
        let mut f = super::FollowUps::default();
        let Some((i, round, stage)) = stage_of.remove(&o.id) else {
            return Ok(f);
        };
        let chain = &mut chains[i];
        let mut round_done = false;
        match stage {
            1 if instruction_rule(&chain.form, &o).is_none() => {
                chain.evolved = o.text.trim().to_string();
                let r = reqs.verdict(&chain.form, round, &chain.evolved)?;
                stage_of.insert(r.id, (i, round, 2));
                f.first.push(r);
            }
            2 if parse_equal(&o.text) != Some(true) => {
                let r = reqs.response(&chain.form, round, &chain.evolved)?;
                stage_of.insert(r.id, (i, round, 3));
                f.first.push(r);
            }
            3 if response_rule(&o).is_none() => {
                // The chain goes on from this evolution whatever the dataset filter says.
                chain.form = Current {
                    root: chain.form.root,
                    root_id: chain.form.root_id.clone(),
                    id: ids.id(&chain.form.root_id, round),
                    text: std::mem::take(&mut chain.evolved),
                };
                round_done = true;
            }
            _ => round_done = true,
        }
        outs.insert(o.id, o);
        if round_done {
            chains[i].running = false;
            done_round[i] = round;
            next_round[i] = round + 1;
            f.last.extend(start(
                i,
                committing,
                &mut chains,
                &next_round,
                &mut stage_of,
            )?);
        }
        // Finish and commit every wave whose items are all done, in order.
        while committing < total_waves
            && span_of(committing).all(|j| done_round[j] >= round_of(committing))
        {
            let round = round_of(committing);
            let span = span_of(committing);
            let gen_s = since.elapsed().as_secs_f64();
            let (records, rejects, counts, mut secs) = finish_wave(
                &reqs,
                &mut pool[span],
                &mut outs,
                dedup.as_mut(),
                cfg,
                &ids,
                round,
            )?;
            secs.insert("generation".to_string(), gen_s);
            since = Instant::now();
            progress.evolved += records.len() as u64;
            for (k, v) in &counts {
                *progress.failed.entry(k.clone()).or_default() += v;
            }
            progress.generation_seconds += secs["generation"];
            progress.filter_seconds += secs["filter"];
            rf.commit_wave(&records, &rejects, &counts, &secs)?;
            progress.round = round;
            progress.waves = committing;
            report(&progress);
            committing += 1;
            // The wave after the next may start now.
            if committing + 1 < total_waves {
                for j in span_of(committing + 1) {
                    f.last.extend(start(
                        j,
                        committing,
                        &mut chains,
                        &next_round,
                        &mut stage_of,
                    )?);
                }
            }
        }
        Ok(f)
    })?;
    if committing < total_waves {
        return Err(crate::Error::Usage(format!(
            "internal: evolve stopped with wave {committing} of {total_waves} uncommitted"
        )));
    }
    rf.note_tokens(&engine.stats);
    rf.finish()?;
    Ok(progress)
}

/// `--constrained`: the evolution's and the verdict's constraints, compiled once a run.
type Constraints = (
    Option<std::sync::Arc<crate::constrain::Constraint>>,
    Option<std::sync::Arc<crate::constrain::Constraint>>,
);

type WaveResult = (
    Vec<Value>,
    Vec<Value>,
    BTreeMap<String, u64>,
    BTreeMap<String, f64>,
);

fn evolve_prompt(file: &ModelFile, op: EvolOp, text: &str, pick: u64) -> Result<String> {
    let body = match op {
        EvolOp::Breadth => BREADTH.replace("{prompt}", text.trim()),
        _ => DEPTH
            .replace("{method}", &op.method(pick))
            .replace("{prompt}", text.trim()),
    };
    if file.chat_template.is_some() {
        // WizardLM sends the evolving prompt as the user turn of a chat.
        let body = body.trim_end().to_string();
        Ok(file.render_chat(&[Message::new("user", body)])?)
    } else {
        Ok(body.trim_end().to_string() + " ")
    }
}

/// An item's round in flight.
struct Chain {
    /// Its form at the start of the round (the last evolution that passed every rule).
    form: Current,
    /// The round's evolution, between the evolve and the response stage.
    evolved: String,
    running: bool,
}

/// The request of stage `stage` (1 evolve, 2 verdict, 3 response) of an item's round.
fn stage_id(c: &Current, round: usize, stage: u64) -> u64 {
    stream_of_id(&c.id) ^ ((round as u64) << 48) ^ stage
}

/// Builds an item's requests for a round: pure functions of its form at the round's
/// start (and of the round's evolution).
struct RoundRequests<'a> {
    file: &'a ModelFile,
    cfg: &'a Config,
    chat: bool,
    stops: Vec<String>,
    constraints: Constraints,
}

impl<'a> RoundRequests<'a> {
    fn new(file: &'a ModelFile, cfg: &'a Config, constraints: &Constraints) -> Self {
        let chat = file.chat_template.is_some();
        RoundRequests {
            file,
            cfg,
            chat,
            stops: if chat {
                Vec::new()
            } else {
                vec!["\n\n".into(), "#".into()]
            },
            constraints: constraints.clone(),
        }
    }

    /// The operation drawn for an item's round, and the draw (its high half picks the
    /// depth method's wording).
    fn op(&self, c: &Current, round: usize) -> (EvolOp, u64) {
        let cfg = self.cfg;
        let d = philox::random_u64(cfg.seed, stream_of_id(&c.id) ^ 0x45564f4c, round as u64);
        (cfg.ops[(d % cfg.ops.len() as u64) as usize], d)
    }

    fn evolve(&self, c: &Current, round: usize) -> Result<Request> {
        let (op, d) = self.op(c, round);
        Ok(Request {
            id: stage_id(c, round, 1),
            prompt: self
                .file
                .encode_prompt(&evolve_prompt(self.file, op, &c.text, d >> 32)?)?,
            params: self.cfg.evolve_sampling.clone(),
            max_tokens: self.cfg.evolve_max_tokens,
            stop: self.stops.clone(),
            constraint: self.constraints.0.clone(),
            draw: None,
            top_logprobs: None,
            stream: false,
        })
    }

    /// The equality verdict (rule 1, greedy) between the form and its evolution.
    fn verdict(&self, c: &Current, round: usize, evolved: &str) -> Result<Request> {
        let q = EQUAL
            .replace("{first}", &c.text)
            .replace("{second}", evolved);
        let text = if self.chat {
            self.file
                .render_chat(&[Message::new("user", q.trim_end())])?
        } else {
            q.trim_end().to_string() + "\nAnswer:"
        };
        Ok(Request {
            id: stage_id(c, round, 2),
            prompt: self.file.encode_prompt(&text)?,
            params: SamplingParams::greedy(),
            max_tokens: if self.cfg.constrained { 8 } else { 4 },
            stop: vec!["\n".into()],
            constraint: self.constraints.1.clone(),
            draw: None,
            top_logprobs: None,
            stream: false,
        })
    }

    /// The response to an evolution.
    fn response(&self, c: &Current, round: usize, evolved: &str) -> Result<Request> {
        let item = Item {
            line: 0,
            id: c.id.clone(),
            instruction: evolved.to_string(),
            input: String::new(),
            messages: None,
            record: Value::Null,
        };
        Ok(Request {
            id: stage_id(c, round, 3),
            prompt: self
                .file
                .encode_prompt(&item_prompt(self.file, &item, None)?)?,
            params: self.cfg.response_sampling.clone(),
            max_tokens: self.cfg.response_max_tokens,
            stop: completion_stops(self.file),
            constraint: None,
            draw: None,
            top_logprobs: None,
            stream: false,
        })
    }
}

/// Rule 4 and the rule-1 pre-check on an evolution.
fn instruction_rule(c: &Current, o: &Output) -> Option<Elimination> {
    let text = o.text.trim();
    if o.finish_reason == FinishReason::Error {
        Some(Elimination::PromptTooLong)
    } else if text.is_empty() || o.finish_reason != FinishReason::Stop {
        Some(Elimination::Truncated)
    } else if leaks_prompt(text) {
        Some(Elimination::PromptLeak)
    } else if normalize(text) == normalize(&c.text) {
        Some(Elimination::NoGainIdentical)
    } else {
        None
    }
}

/// Rules 2 and 3 on a response.
fn response_rule(r: &Output) -> Option<Elimination> {
    let resp = r.text.trim();
    if r.finish_reason == FinishReason::Error {
        Some(Elimination::PromptTooLong)
    } else if matches!(
        r.finish_reason,
        FinishReason::Length | FinishReason::Context
    ) {
        Some(Elimination::Truncated)
    } else if struggles(resp) {
        Some(Elimination::Struggled)
    } else if only_stop_words(resp) {
        Some(Elimination::EmptyResponse)
    } else {
        None
    }
}

/// One wave's records and rejects from its items' finished rounds (`outs`, taken out):
/// the instruction rules over every item, then the verdicts of the survivors, then their
/// responses and the near-duplicate filter — each in item order, as a pass per stage
/// gives them. `pool` (the wave's items at the round's start) moves to each item's form
/// after the round.
fn finish_wave(
    reqs: &RoundRequests,
    pool: &mut [Current],
    outs: &mut HashMap<u64, Output>,
    mut dedup: Option<&mut NearDuplicates>,
    cfg: &Config,
    ids: &EvolvedIds,
    round: usize,
) -> Result<WaveResult> {
    let t0 = Instant::now();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut rejects = Vec::new();
    let mut take = |c: &Current, stage: u64| -> Result<Output> {
        outs.remove(&stage_id(c, round, stage)).ok_or_else(|| {
            crate::Error::Usage(format!(
                "internal: evolve lost stage {stage} of `{}` in round {round}",
                c.id
            ))
        })
    };
    let ops: Vec<EvolOp> = pool.iter().map(|c| reqs.op(c, round).0).collect();
    let fail = |counts: &mut BTreeMap<String, u64>,
                rejects: &mut Vec<Value>,
                c: &Current,
                op: EvolOp,
                why: Elimination,
                text: &str,
                resp: Option<&str>| {
        *counts.entry(why.as_str().to_string()).or_default() += 1;
        rejects.push(json!({
            "parent_id": c.id, "round": round, "op": op.name(), "reason": why.as_str(),
            "instruction": text, "output": resp,
        }));
    };
    // 1. Instruction rules (4, then the rule-1 pre-check); survivors go on.
    let mut alive: Vec<Option<String>> = Vec::with_capacity(pool.len());
    for (c, &op) in pool.iter().zip(&ops) {
        let o = take(c, 1)?;
        let text = o.text.trim().to_string();
        match instruction_rule(c, &o) {
            Some(w) => {
                fail(&mut counts, &mut rejects, c, op, w, &text, None);
                alive.push(None);
            }
            None => alive.push(Some(text)),
        }
    }
    // 2. Equality verdicts (rule 1) of the survivors.
    for i in 0..pool.len() {
        if alive[i].is_none() {
            continue;
        }
        match parse_equal(&take(&pool[i], 2)?.text) {
            Some(true) => {
                let text = alive[i].take().unwrap_or_default();
                fail(
                    &mut counts,
                    &mut rejects,
                    &pool[i],
                    ops[i],
                    Elimination::NoGainEqual,
                    &text,
                    None,
                );
            }
            Some(false) => {}
            None => *counts.entry("equality_unclear".into()).or_default() += 1,
        }
    }
    // 3. Responses of the survivors: rules 2 and 3, then the near-duplicate filter.
    let mut records = Vec::new();
    for i in 0..pool.len() {
        let Some(text) = alive[i].clone() else {
            continue;
        };
        let r = take(&pool[i], 3)?;
        let resp = r.text.trim().to_string();
        let op = ops[i];
        if let Some(w) = response_rule(&r) {
            fail(
                &mut counts,
                &mut rejects,
                &pool[i],
                op,
                w,
                &text,
                Some(&resp),
            );
            continue;
        }
        let root_id = pool[i].root_id.clone();
        let id = ids.id(&root_id, round);
        let record = json!({
            "id": id,
            "instruction": text,
            "input": "",
            "output": resp,
            "parent_id": pool[i].id,
            "root_id": root_id,
            "round": round,
            "op": op.name(),
            "source": "evol",
            "model": cfg.model_name,
            "prompt_version": cfg.prompt_version(),
        });
        // The chain goes on from this evolution whatever the dataset filter says.
        pool[i] = Current {
            root: pool[i].root,
            root_id: pool[i].root_id.clone(),
            id,
            text,
        };
        if let Some(reject) = dedup.as_deref_mut().and_then(|d| d.check(&record)) {
            *counts
                .entry(Elimination::NearDuplicate.as_str().to_string())
                .or_default() += 1;
            rejects.push(reject);
            continue;
        }
        records.push(record);
    }
    let mut secs = BTreeMap::new();
    secs.insert("filter".to_string(), t0.elapsed().as_secs_f64());
    Ok((records, rejects, counts, secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evolved_ids_are_unique_whatever_the_input_ids() {
        let item = |id: &str| Item {
            line: 1,
            id: id.into(),
            instruction: String::new(),
            input: String::new(),
            messages: None,
            record: Value::Null,
        };
        let inputs: Vec<Item> = ["p0", "p0.r1", "p0.r1.1", "p0.r2.r1", "q"]
            .iter()
            .map(|i| item(i))
            .collect();
        let ids = EvolvedIds::new(&inputs);
        assert_eq!(ids.id("q", 1), "q.r1");
        assert_eq!(ids.id("p0", 1), "p0.r1.2");
        let mut all: Vec<String> = inputs.iter().map(|i| i.id.clone()).collect();
        for root in &inputs {
            for round in 1..4 {
                all.push(ids.id(&root.id, round));
            }
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "{all:?}");
    }

    #[test]
    fn elimination_rules() {
        assert!(leaks_prompt(
            "#Rewritten Prompt#: Write a poem about the sea."
        ));
        assert!(leaks_prompt(
            "Rewrite the given prompt so that it is harder."
        ));
        assert!(!leaks_prompt(
            "Write a poem about the sea in exactly four lines."
        ));
        assert!(struggles("Sorry, I cannot help with that."));
        assert!(!struggles(&format!(
            "I'm sorry to hear that. {}",
            "Here is a detailed plan. ".repeat(20)
        )));
        assert!(!struggles("Here is the answer."));
        assert!(only_stop_words("... and the, of it!"));
        assert!(only_stop_words(""));
        assert!(!only_stop_words("The capital is Paris."));
        assert_eq!(parse_equal("Equal"), Some(true));
        assert_eq!(parse_equal(" Not Equal."), Some(false));
        assert_eq!(parse_equal("I think so"), None);
    }
}
