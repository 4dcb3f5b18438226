//! `teacher judge`: a model scores every record of a dataset, with a rationale, for
//! (a) the quality and correctness of its response and (b) the complexity of its
//! instruction, both 1–10.
//!
//! The quality prompt follows the single-answer grading of MT-Bench (Zheng et al. 2023,
//! "Judging LLM-as-a-Judge", arXiv 2306.05685): an impartial judge, a short explanation
//! first, then the rating as `Rating: [[N]]`. The complexity prompt asks what WizardLM
//! (Xu et al. 2023, arXiv 2304.12244, §4) asked its judge when comparing the difficulty
//! of evolved instructions: an overall difficulty-and-complexity score from 1 to 10. Both
//! texts are teacher's own wording, versioned by [`PROMPT_VERSION`].
//!
//! Parsing is strict: a judgement counts only when the text holds exactly one
//! `Rating: [[N]]` (or `Score: [[N]]`) with N in 1..=10; anything else is *unparsable*,
//! kept as `null` with the reason, and counted in the manifest. By default the answer is
//! constrained to `Explanation: …` + newline + the rating line, so only a judgement cut
//! off by `--max-tokens` can fail to parse.
//!
//! Like `respond`, the work is one engine stream committed in input order wave by wave:
//! deterministic and resumable to the same bytes.

use super::items::Item;
use super::prompt::respond_prompt;
use super::run_file::RunFile;
use crate::engine::{Engine, FinishReason, Output, Request};
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use teacher_kernels::SamplingParams;
use teacher_models::ModelFile;

/// The version of the judge prompts and parsing rules, recorded in every score.
pub const PROMPT_VERSION: &str = "judge-1";

const QUALITY: &str = include_str!("prompts/judge_quality.txt");
const COMPLEXITY: &str = include_str!("prompts/judge_complexity.txt");

/// The answer shape the constrained judge must write: a one-line explanation of at most
/// 400 bytes, then the score line.
const QUALITY_CONSTRAINT: &str = r"Explanation: [^\n\[\]]{1,400}\nRating: \[\[(?:[1-9]|10)\]\]";
const COMPLEXITY_CONSTRAINT: &str = r"Explanation: [^\n\[\]]{1,400}\nScore: \[\[(?:[1-9]|10)\]\]";

/// Which of the two judgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Quality,
    Complexity,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Quality => "quality",
            Kind::Complexity => "complexity",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Kind::Quality => "Rating:",
            Kind::Complexity => "Score:",
        }
    }
}

/// What is judged in one record: the request (instruction, its input, or the
/// conversation up to the last user turn) and the response, if the record has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub request: String,
    pub response: Option<String>,
}

/// The subject of every item. Records of `teacher generate` hold only the completion
/// (`text`); their prompts come from the generate input (`prompts`), matched by id.
pub fn subjects(items: &[Item], prompts: Option<(&Path, &[Item])>) -> Result<Vec<Subject>> {
    let by_id: HashMap<&str, &Item> = prompts
        .map(|(_, ps)| ps.iter().map(|p| (p.id.as_str(), p)).collect())
        .unwrap_or_default();
    items
        .iter()
        .map(|it| {
            let r = &it.record;
            if super::items::is_generate_output(r) {
                let Some((path, _)) = prompts else {
                    return Err(Error::Usage(format!(
                        "input line {} (id `{}`) is an output of `teacher generate`, which holds no prompt\nhint: give the generate input file with --prompts",
                        it.line, it.id
                    )));
                };
                let p = by_id.get(it.id.as_str()).ok_or_else(|| {
                    Error::Usage(format!(
                        "--prompts `{}` has no prompt with id `{}` (input line {})",
                        path.display(),
                        it.id,
                        it.line
                    ))
                })?;
                return Ok(Subject {
                    request: request_text(p),
                    response: r["text"].as_str().map(str::to_string),
                });
            }
            Ok(Subject {
                request: request_text(it),
                response: response_of(r),
            })
        })
        .collect()
}

/// The request as the judge reads it.
fn request_text(it: &Item) -> String {
    match &it.messages {
        Some(ms) if ms.iter().filter(|m| m.role != "system").count() > 1 => ms
            .iter()
            .filter(|m| m.role != "system")
            .map(|m| {
                let who = if m.role == "user" {
                    "User"
                } else {
                    "Assistant"
                };
                format!("{who}: {}", m.content.trim())
            })
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => instruction_and_input(it),
    }
}

/// The response a record holds: the assistant turn that ends a conversation (a
/// multi-turn Magpie record's `output` is its first answer), else `output` (Alpaca,
/// teacher's pipelines).
fn response_of(r: &Value) -> Option<String> {
    let Some(turns) = r["messages"]
        .as_array()
        .or_else(|| r["conversations"].as_array())
    else {
        return r["output"].as_str().map(str::to_string);
    };
    let last = turns.last()?;
    let role = last["role"].as_str().or_else(|| last["from"].as_str())?;
    if matches!(role, "assistant" | "gpt" | "model") {
        last["content"]
            .as_str()
            .or_else(|| last["value"].as_str())
            .map(str::to_string)
    } else {
        None
    }
}

/// The instruction and its input, separated by a blank line.
fn instruction_and_input(it: &Item) -> String {
    if it.input.trim().is_empty() {
        it.instruction.trim().to_string()
    } else {
        format!("{}\n\n{}", it.instruction.trim(), it.input.trim())
    }
}

/// The judge's user message for one judgement.
pub fn judge_message(kind: Kind, s: &Subject) -> String {
    match kind {
        Kind::Quality => QUALITY
            .replace("{request}", s.request.trim())
            .replace("{response}", s.response.as_deref().unwrap_or("").trim()),
        Kind::Complexity => COMPLEXITY.replace("{request}", s.request.trim()),
    }
}

/// A score and its rationale from the judge's text, or why there is none: exactly one
/// `LABEL [[N]]` with N in 1..=10 (`LABEL` is `Rating:` or `Score:`), the rationale is
/// what precedes it without the `Explanation:` lead.
pub fn parse_judgement(kind: Kind, text: &str) -> std::result::Result<(u8, String), String> {
    let label = kind.label();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(label) {
        let at = from + i;
        let rest = text[at + label.len()..].trim_start_matches([' ', '\t']);
        if let Some(body) = rest.strip_prefix("[[") {
            if let Some(end) = body.find("]]") {
                found.push((at, body[..end].trim().to_string()));
            }
        }
        from = at + label.len();
    }
    match found.as_slice() {
        [] => Err(format!("no `{label} [[N]]` in the judge's answer")),
        [(at, n)] => {
            let score: u8 = n
                .parse()
                .ok()
                .filter(|s| (1..=10).contains(s))
                .ok_or_else(|| format!("`{label} [[{n}]]` is not a whole number from 1 to 10"))?;
            let before = text[..*at].trim();
            let rationale = before
                .strip_prefix("Explanation:")
                .unwrap_or(before)
                .trim()
                .to_string();
            Ok((score, rationale))
        }
        _ => Err(format!(
            "{} `{label} [[N]]` lines in the judge's answer",
            found.len()
        )),
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub seed: u64,
    pub wave_size: usize,
    pub model_name: String,
    pub model_sha256: String,
    pub input_sha256: String,
    /// Where the input was read (recorded in the manifest's `run`, not a parameter:
    /// `stats` and `report` follow it to the run that made the records).
    pub input_path: std::path::PathBuf,
    /// The generate input the prompts came from, when judging `generate` output.
    pub prompts_sha256: Option<String>,
    pub min_quality: Option<u8>,
    pub min_complexity: Option<u8>,
    /// Constrain the judge's answer to the explanation + score shape.
    pub constrained: bool,
    pub shard: crate::shard::Shard,
}

impl Config {
    fn params_json(&self) -> Value {
        let mut p = super::params_with_sampling(
            &self.sampling,
            json!({
                "max_tokens": self.max_tokens,
                "seed": self.seed,
                "wave_size": self.wave_size,
                "judge_model": self.model_name,
                "model_sha256": self.model_sha256,
                "input_sha256": self.input_sha256,
                "prompts_sha256": self.prompts_sha256,
                "judge_prompt_version": PROMPT_VERSION,
                "min_quality": self.min_quality,
                "min_complexity": self.min_complexity,
                "constrained": self.constrained,
            }),
        );
        self.shard.add_to_params(&mut p);
        p
    }
}

/// One judgement's result.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Scored(u8, String),
    /// Not scored, and why: `unparsable`, `no_response` or `error`, with the detail.
    Unscored(&'static str, String),
}

fn verdict(kind: Kind, s: &Subject, o: &Output) -> Verdict {
    if kind == Kind::Quality && s.response.is_none() {
        return Verdict::Unscored("no_response", "the record has no response".into());
    }
    if o.finish_reason == FinishReason::Error {
        return Verdict::Unscored("error", o.error.clone().unwrap_or_default());
    }
    match parse_judgement(kind, &o.text) {
        Ok((n, why)) => Verdict::Scored(n, why),
        Err(e) => Verdict::Unscored("unparsable", e),
    }
}

/// Alternatives kept per generated token of a judgement, for the expected score.
const TOP_LOGPROBS: usize = 20;

/// The probability-weighted score (G-Eval: Liu et al. 2023, arXiv 2303.16634): at the
/// token that writes the score's first digit, Σ p(token)·score over the alternatives
/// that write a score, renormalised over them. A `1` that could go on to `10` is split
/// by the next token's probabilities when `1` was the token chosen, and counts as 1
/// otherwise. `None` when the answer has no readable score.
pub fn expected_score(kind: Kind, o: &Output, tok: &teacher_models::TextTokenizer) -> Option<f64> {
    let marker = format!("{} [[", kind.label());
    let digits_after = |text: &str| -> Option<(String, bool)> {
        let at = text.find(&marker)? + marker.len();
        let rest = &text[at..];
        let d: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let open = d.len() == rest.len();
        (!d.is_empty()).then_some((d, open))
    };
    // The step that writes the first digit: once a prefix of the answer shows a digit
    // after the marker, every longer prefix does, so a binary search finds it.
    let shows_digit = |n: usize| {
        tok.decode(&o.tokens[..n])
            .ok()
            .and_then(|t| digits_after(&t))
            .is_some()
    };
    if !shows_digit(o.tokens.len()) {
        return None;
    }
    let (mut lo, mut hi) = (0, o.tokens.len());
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if shows_digit(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let i = hi - 1;
    let step = o.logprobs.get(i)?;
    let before = &o.tokens[..i];
    let mut weighted = 0.0;
    let mut mass = 0.0;
    for &(t, lp) in &step.top {
        let mut ids = before.to_vec();
        ids.push(t);
        let Some((d, open)) = tok.decode(&ids).ok().and_then(|x| digits_after(&x)) else {
            continue;
        };
        let p = (lp as f64).exp();
        match d.as_str() {
            "1" if open && t == o.tokens[i] => {
                // Split "1" into 1 and 10 by what followed.
                let next = o.logprobs.get(i + 1)?;
                let (mut ten, mut all) = (0.0, 0.0);
                for &(u, lq) in &next.top {
                    let mut ids2 = ids.clone();
                    ids2.push(u);
                    let q = (lq as f64).exp();
                    all += q;
                    if tok
                        .decode(&ids2)
                        .ok()
                        .and_then(|x| digits_after(&x))
                        .is_some_and(|(d2, _)| d2 == "10")
                    {
                        ten += q;
                    }
                }
                let share = if all > 0.0 { ten / all } else { 0.0 };
                weighted += p * (1.0 + 9.0 * share);
                mass += p;
            }
            d => {
                if let Some(v) = d.parse::<u32>().ok().filter(|v| (1..=10).contains(v)) {
                    weighted += p * v as f64;
                    mass += p;
                }
            }
        }
    }
    (mass > 0.0).then(|| weighted / mass)
}

/// Counts of a finished run: scored and unscored judgements, and kept records.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub kept: usize,
    pub rejected: usize,
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    engine: &mut Engine,
    file: &ModelFile,
    items: &[Item],
    subjects: &[Subject],
    cfg: &Config,
    out: &Path,
    rejected: Option<&Path>,
    mut report: impl FnMut(usize, usize),
) -> Result<Summary> {
    assert_eq!(items.len(), subjects.len());
    cfg.shard.check_not_empty(items.len(), "input records")?;
    let (mut rf, _) = RunFile::open(
        "judge",
        out,
        rejected,
        super::with_engine_params(cfg.params_json(), engine, file),
        {
            let mut info = super::run_info(engine);
            info["input"] = json!(
                std::path::absolute(&cfg.input_path).unwrap_or_else(|_| cfg.input_path.clone())
            );
            info
        },
    )?;
    let range = cfg.shard.range(items.len());
    let (items, subjects) = (&items[range.clone()], &subjects[range]);
    // Records are committed whole waves at a time; the manifest knows how many.
    let mut done = (rf.waves_done() as usize * cfg.wave_size).min(items.len());
    let total = items.len();
    let (qc, cc): (Option<Arc<_>>, Option<Arc<_>>) = if cfg.constrained {
        let mut cache = crate::constrain::Cache::new(&file.tokenizer);
        (
            Some(cache.get(QUALITY_CONSTRAINT)?),
            Some(cache.get(COMPLEXITY_CONSTRAINT)?),
        )
    } else {
        (None, None)
    };
    // Two judgements per record, in record order.
    let tasks: Vec<(usize, Kind)> = (done..total)
        .flat_map(|i| [(i, Kind::Quality), (i, Kind::Complexity)])
        .collect();
    let mut summary = Summary::default();
    let mut t0 = Instant::now();
    let rf_ref = &mut rf;
    super::run_in_waves(
        engine,
        &tasks,
        2 * cfg.wave_size,
        |&(i, kind)| {
            let s = &subjects[i];
            let it = &items[i];
            let failed = |error: String| Output {
                id: 0,
                text: String::new(),
                tokens: Vec::new(),
                finish_reason: FinishReason::Error,
                prompt_tokens: 0,
                completion_tokens: 0,
                error: Some(error),
                logprobs: Vec::new(),
            };
            if kind == Kind::Quality && s.response.is_none() {
                return Ok(Err(failed("no response".into())));
            }
            let prompt = respond_prompt(file, &judge_message(kind, s), "", None)
                .and_then(|p| Ok(file.encode_prompt(&p)?));
            Ok(match prompt {
                Ok(prompt) => Ok(Request {
                    id: super::stream_of_id(&format!("{}\u{0}{}", it.id, kind.name())),
                    prompt,
                    params: cfg.sampling.clone(),
                    max_tokens: cfg.max_tokens,
                    stop: Vec::new(),
                    constraint: match kind {
                        Kind::Quality => qc.clone(),
                        Kind::Complexity => cc.clone(),
                    },
                    draw: None,
                    top_logprobs: Some(TOP_LOGPROBS),
                    stream: false,
                }),
                Err(e) => Err(failed(format!(
                    "input line {} (id `{}`): {e}",
                    it.line, it.id
                ))),
            })
        },
        |wave, outs| {
            let mut kept = Vec::new();
            let mut dropped = Vec::new();
            let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
            let mut tallies: BTreeMap<String, u64> = BTreeMap::new();
            for (pair, o) in wave.chunks(2).zip(outs.chunks(2)) {
                let i = pair[0].0;
                let s = &subjects[i];
                let q = verdict(Kind::Quality, s, &o[0]);
                let c = verdict(Kind::Complexity, s, &o[1]);
                let mut scores = json!({});
                for (kind, v, o) in [(Kind::Quality, &q, &o[0]), (Kind::Complexity, &c, &o[1])] {
                    let k = kind.name();
                    match v {
                        Verdict::Scored(n, why) => {
                            scores[k] = json!(n);
                            if let Some(e) = expected_score(kind, o, &file.tokenizer) {
                                scores[format!("{k}_expected")] =
                                    json!((e * 1000.0).round() / 1000.0);
                            }
                            scores[format!("{k}_rationale")] = json!(why);
                            *tallies.entry(format!("{k}_scored")).or_default() += 1;
                        }
                        Verdict::Unscored(what, detail) => {
                            scores[k] = Value::Null;
                            scores[format!("{k}_unscored")] = json!(what);
                            scores[format!("{k}_detail")] = json!(detail);
                            *tallies.entry(format!("{k}_{what}")).or_default() += 1;
                        }
                    }
                }
                scores["judge_model"] = json!(cfg.model_name);
                scores["judge_prompt_version"] = json!(PROMPT_VERSION);
                let mut r = items[i].record.clone();
                r["scores"] = scores;
                let fails = |v: &Verdict, min: Option<u8>, kind: Kind| match (v, min) {
                    (_, None) => None,
                    (Verdict::Scored(n, _), Some(m)) if *n >= m => None,
                    (Verdict::Scored(..), Some(_)) => Some(format!("low_{}", kind.name())),
                    (Verdict::Unscored(..), Some(_)) => Some(format!("unscored_{}", kind.name())),
                };
                match fails(&q, cfg.min_quality, Kind::Quality)
                    .or_else(|| fails(&c, cfg.min_complexity, Kind::Complexity))
                {
                    None => kept.push(r),
                    Some(reason) => {
                        *reasons.entry(reason.clone()).or_default() += 1;
                        r["reason"] = json!(reason);
                        dropped.push(r);
                    }
                }
            }
            summary.kept += kept.len();
            summary.rejected += dropped.len();
            let mut secs = BTreeMap::new();
            secs.insert("judging".to_string(), t0.elapsed().as_secs_f64());
            t0 = Instant::now();
            rf_ref.tally("judge", &tallies);
            rf_ref.commit_wave(&kept, &dropped, &reasons, &secs)?;
            done += wave.len() / 2;
            report(done, total);
            Ok(())
        },
    )?;
    rf.note_tokens(&engine.stats);
    rf.finish()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judgements_parse_strictly() {
        let q = Kind::Quality;
        assert_eq!(
            parse_judgement(q, "Explanation: Correct and clear.\nRating: [[8]]"),
            Ok((8, "Correct and clear.".into()))
        );
        assert_eq!(
            parse_judgement(q, "Rating: [[10]]"),
            Ok((10, String::new()))
        );
        assert!(parse_judgement(q, "Rating: [[0]]").is_err());
        assert!(parse_judgement(q, "Rating: [[11]]").is_err());
        assert!(parse_judgement(q, "Rating: [[7.5]]").is_err());
        assert!(parse_judgement(q, "Rating: 7").is_err());
        assert!(parse_judgement(q, "Explanation: good").is_err());
        let two = parse_judgement(q, "Rating: [[3]] no, Rating: [[4]]").unwrap_err();
        assert!(two.starts_with("2 "), "{two}");
        // The other judgement's label does not count.
        assert!(parse_judgement(q, "Score: [[5]]").is_err());
        assert_eq!(
            parse_judgement(Kind::Complexity, "Explanation: one fact.\nScore: [[2]]"),
            Ok((2, "one fact.".into()))
        );
    }

    #[test]
    fn the_constraints_accept_exactly_the_parsable_shape() {
        for (kind, pattern) in [
            (Kind::Quality, QUALITY_CONSTRAINT),
            (Kind::Complexity, COMPLEXITY_CONSTRAINT),
        ] {
            let re = regex_automata::meta::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            for n in 1..=10 {
                let text = format!("Explanation: fine.\n{} [[{n}]]", kind.label());
                assert!(re.is_match(&text), "{text}");
                assert_eq!(parse_judgement(kind, &text), Ok((n, "fine.".into())));
            }
            for bad in ["Explanation: x\nRating: [[0]]", "Explanation: \n", "[[5]]"] {
                assert!(!re.is_match(bad), "{bad}");
            }
        }
    }

    #[test]
    fn subjects_come_from_every_record_shape() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        std::fs::write(
            &p,
            concat!(
                r#"{"id":"a","instruction":"Add.","input":"1 2","output":"3"}"#,
                "\n",
                r#"{"id":"b","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},{"role":"user","content":"Name a fruit"},{"role":"assistant","content":"Apple"}]}"#,
                "\n",
                r#"{"id":"c","instruction":"Name a color."}"#,
                "\n",
                r#"{"id":"d","instruction":"Hi","output":"Hello","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},{"role":"user","content":"More?"},{"role":"assistant","content":"Yes"}]}"#,
                "\n"
            ),
        )
        .unwrap();
        let items = super::super::items::load(&p).unwrap();
        let s = subjects(&items, None).unwrap();
        assert_eq!(s[0].request, "Add.\n\n1 2");
        assert_eq!(s[0].response.as_deref(), Some("3"));
        assert_eq!(
            s[1].request,
            "User: Hi\n\nAssistant: Hello\n\nUser: Name a fruit"
        );
        assert_eq!(s[1].response.as_deref(), Some("Apple"));
        assert_eq!(s[2].response, None);
        // A multi-turn record is judged on its last answer, in its conversation.
        assert_eq!(s[3].request, "User: Hi\n\nAssistant: Hello\n\nUser: More?");
        assert_eq!(s[3].response.as_deref(), Some("Yes"));
        // generate output needs its prompts.
        let g = d.path().join("g.jsonl");
        std::fs::write(
            &g,
            "{\"id\":7,\"text\":\"Paris\",\"finish_reason\":\"stop\"}\n",
        )
        .unwrap();
        let gi = super::super::items::load(&g).unwrap();
        let e = subjects(&gi, None).unwrap_err().to_string();
        assert!(e.contains("--prompts"), "{e}");
        let pp = d.path().join("p.jsonl");
        std::fs::write(&pp, "{\"id\":7,\"prompt\":\"Capital of France?\"}\n").unwrap();
        let pi = super::super::items::load(&pp).unwrap();
        let s = subjects(&gi, Some((&pp, &pi))).unwrap();
        assert_eq!(s[0].request, "Capital of France?");
        assert_eq!(s[0].response.as_deref(), Some("Paris"));
        std::fs::write(&pp, "{\"id\":8,\"prompt\":\"Other\"}\n").unwrap();
        let pi = super::super::items::load(&pp).unwrap();
        let e = subjects(&gi, Some((&pp, &pi))).unwrap_err().to_string();
        assert!(e.contains("no prompt with id `7`"), "{e}");
    }
}
