//! `teacher generate`: completions for a JSONL file of prompts through the engine,
//! written in input order.
//!
//! Each input line is `{"id", "prompt"}` or `{"id", "messages"}` with optional
//! per-line `temperature`, `top_p`, `top_k`, `min_p`, `max_tokens` and `stop`. Every
//! line is parsed and checked before the model is loaded.

use crate::engine::{Engine, Request};
use crate::error::{Error, Result};
use crate::pipeline::run_file::RunFile;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use teacher_kernels::SamplingParams;
use teacher_models::{Message, ModelFile};

/// One parsed input line.
#[derive(Debug, Clone)]
pub struct PromptRecord {
    pub line: usize,
    /// The id as the user wrote it (string or number), echoed in the output.
    pub id: Value,
    pub prompt: PromptText,
    pub params: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// What the completion must match (`regex`, `json_schema` or an OpenAI-style
    /// `response_format` on the line).
    pub constraint: Option<ConstraintSpec>,
    /// `"logprobs": K` on the line: each generated token's log-probability and the K
    /// most likely alternatives (soft labels for distillation).
    pub top_logprobs: Option<usize>,
}

/// Most alternatives per token a line may ask for.
pub const MAX_TOP_LOGPROBS: usize = 20;

/// A constraint as written in an input line or request, before compilation.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintSpec {
    Regex(String),
    Schema(crate::constrain::schema::Json),
}

impl ConstraintSpec {
    /// The regular expression the output must match.
    pub fn pattern(&self) -> Result<String> {
        match self {
            ConstraintSpec::Regex(r) => Ok(r.clone()),
            ConstraintSpec::Schema(s) => crate::constrain::schema::to_regex(s),
        }
    }

    /// Read `regex`, `json_schema` or `response_format` from a request object: `raw` is
    /// the object's JSON text (read again to keep a schema's property order).
    pub fn from_request(
        obj: &serde_json::Map<String, Value>,
        raw: &str,
    ) -> std::result::Result<Option<ConstraintSpec>, String> {
        use crate::constrain::schema::Json;
        let ordered = || Json::parse(raw).map_err(|e| format!("not valid JSON: {e}"));
        let given: Vec<&str> = ["regex", "json_schema", "response_format"]
            .into_iter()
            .filter(|k| obj.get(*k).is_some_and(|v| !v.is_null()))
            .collect();
        if given.len() > 1 {
            return Err(format!(
                "has both `{}` and `{}`; give one constraint",
                given[0], given[1]
            ));
        }
        match given.first().copied() {
            None => Ok(None),
            Some("regex") => match &obj["regex"] {
                Value::String(r) => Ok(Some(ConstraintSpec::Regex(r.clone()))),
                other => Err(format!("`regex` must be a string, found {other}")),
            },
            Some("json_schema") => {
                let o = ordered()?;
                let s = o.get("json_schema").cloned().unwrap_or(Json::Null);
                Ok(Some(ConstraintSpec::Schema(s)))
            }
            _ => {
                let rf = &obj["response_format"];
                match rf["type"].as_str() {
                    Some("text") => Ok(None),
                    Some("json_schema") => {
                        let o = ordered()?;
                        let s = o
                            .get("response_format")
                            .and_then(|r| r.get("json_schema"))
                            .and_then(|j| j.get("schema"))
                            .cloned()
                            .ok_or("`response_format.json_schema.schema` is missing")?;
                        Ok(Some(ConstraintSpec::Schema(s)))
                    }
                    Some("regex") => match rf["regex"].as_str() {
                        Some(r) => Ok(Some(ConstraintSpec::Regex(r.to_string()))),
                        None => Err("`response_format.regex` must be a string".into()),
                    },
                    Some("json_object") => Err("`response_format` `json_object` (any JSON) cannot be enforced by teacher's regular constraints; give a `json_schema`".into()),
                    _ => Err(format!("`response_format` must have `type` text, json_schema or regex, found {rf}")),
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum PromptText {
    Plain(String),
    Messages(Vec<Message>),
}

/// The stream number of an id: integers are themselves, strings are hashed (FNV-1a),
/// so an item's random draws do not depend on where it sits in the file.
pub fn stream_of(id: &Value) -> u64 {
    match id {
        Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap(),
        other => {
            let s = match other {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in s.bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h
        }
    }
}

/// Parse and check every line of `path` against the defaults.
pub fn read_prompts(
    path: &Path,
    defaults: &SamplingParams,
    max_tokens: usize,
) -> Result<Vec<PromptRecord>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut checked: Vec<ConstraintSpec> = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line_no = i + 1;
        let bad = |what: String| Error::Input {
            path: path.to_path_buf(),
            line: line_no,
            what,
        };
        let line = line.map_err(|e| bad(format!("cannot be read: {e}")))?;
        let line = if line_no == 1 {
            crate::input::strip_bom(&line).to_string()
        } else {
            line
        };
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(&line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("a line must be a JSON object".into()))?;
        let id = obj
            .get("id")
            .cloned()
            .unwrap_or(Value::from(line_no as u64));
        if !seen.insert(stream_of(&id)) {
            return Err(bad(format!("id {id} appears twice")));
        }
        let prompt = match (obj.get("prompt"), obj.get("messages")) {
            (Some(Value::String(p)), None) => PromptText::Plain(p.clone()),
            (None, Some(m)) => {
                PromptText::Messages(serde_json::from_value(m.clone()).map_err(|e| {
                    bad(format!(
                        "`messages` must be a list of {{role, content}}: {e}"
                    ))
                })?)
            }
            (Some(_), Some(_)) => return Err(bad("has both `prompt` and `messages`".into())),
            (Some(_), None) => return Err(bad("`prompt` must be a string".into())),
            (None, None) => return Err(bad("needs `prompt` or `messages`".into())),
        };
        let num = |k: &str| -> Result<Option<f64>> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(other) => Err(bad(format!("`{k}` must be a number, found {other}"))),
            }
        };
        let mut params = defaults.clone();
        if let Some(t) = num("temperature")? {
            params.temperature = t as f32;
        }
        if let Some(p) = num("top_p")? {
            params.top_p = p as f32;
        }
        if let Some(k) = num("top_k")? {
            params.top_k = k as usize;
        }
        if let Some(p) = num("min_p")? {
            params.min_p = p as f32;
        }
        if let Some(p) = num("presence_penalty")? {
            params.presence_penalty = p as f32;
        }
        if let Some(p) = num("frequency_penalty")? {
            params.frequency_penalty = p as f32;
        }
        params.validate().map_err(|e| bad(e.to_string()))?;
        let max = match num("max_tokens")? {
            Some(m) if m >= 1.0 => m as usize,
            Some(m) => return Err(bad(format!("`max_tokens` must be at least 1, got {m}"))),
            None => max_tokens,
        };
        let stop = match obj.get("stop") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("`stop` must be a string or a list of strings".into()))?,
            Some(other) => {
                return Err(bad(format!(
                    "`stop` must be a string or a list, found {other}"
                )))
            }
        };
        let constraint = ConstraintSpec::from_request(obj, &line).map_err(bad)?;
        if let Some(c) = constraint.as_ref().filter(|c| !checked.contains(*c)) {
            // A bad pattern or schema is named now, before the model loads.
            checked.push(c.clone());
            c.pattern()
                .and_then(|p| {
                    regex_automata::dfa::dense::DFA::new(&format!("(?s:{p})"))
                        .map(|_| ())
                        .map_err(|e| {
                            Error::Usage(format!("the constraint cannot be compiled: {e}"))
                        })
                })
                .map_err(|e| bad(e.to_string()))?;
        }
        let top_logprobs = match obj.get("logprobs") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n))
                if n.as_u64().is_some_and(|k| k as usize <= MAX_TOP_LOGPROBS) =>
            {
                n.as_u64().map(|k| k as usize)
            }
            Some(other) => {
                return Err(bad(format!(
                    "`logprobs` must be the number of alternatives per token, 0 to {MAX_TOP_LOGPROBS}, found {other}"
                )))
            }
        };
        out.push(PromptRecord {
            line: line_no,
            id,
            prompt,
            params,
            max_tokens: max,
            stop,
            constraint,
            top_logprobs,
        });
    }
    if out.is_empty() {
        return Err(Error::Input {
            path: path.to_path_buf(),
            line: 1,
            what: "holds no prompts (the file is empty)".into(),
        });
    }
    Ok(out)
}

/// Token ids of a record's prompt (chat records through the template).
pub fn encode(file: &ModelFile, p: &PromptText) -> Result<Vec<u32>> {
    let text = match p {
        PromptText::Plain(t) => t.clone(),
        PromptText::Messages(m) => file.render_chat(m)?,
    };
    Ok(file.encode_prompt(&text)?)
}

/// What determines a `generate` output besides the input records (the manifest's
/// parameters, so a resume with anything else changed is refused).
#[derive(Debug, Clone)]
pub struct Config {
    pub model_name: String,
    pub model_sha256: String,
    pub input_sha256: String,
    pub seed: u64,
    /// Records per committed wave (the output does not depend on it).
    pub wave_size: usize,
    /// The part of the input this run writes (`--shard I/N`).
    pub shard: crate::shard::Shard,
}

/// Generate for every record (of the shard) and write `{id, text, finish_reason, prompt_tokens,
/// completion_tokens}` lines to `out` in input order, committed wave by wave with a
/// manifest: a killed run resumes where it stopped and ends with the same bytes.
pub fn run(
    engine: &mut Engine,
    file: &ModelFile,
    records: &[PromptRecord],
    out: &Path,
    cfg: &Config,
    mut progress: impl FnMut(usize),
) -> Result<()> {
    // Every per-record setting is part of the input file (its sha256); the defaults
    // were applied to the records, so the records' hash stands for them too.
    let mut params = serde_json::json!({
        "model": cfg.model_name,
        "model_sha256": cfg.model_sha256,
        "input_sha256": cfg.input_sha256,
        "records_sha256": records_digest(records),
        "seed": cfg.seed,
    });
    cfg.shard.add_to_params(&mut params);
    cfg.shard.check_not_empty(records.len(), "prompts")?;
    let records = &records[cfg.shard.range(records.len())];
    let (mut rf, committed) = RunFile::open(
        "generate",
        out,
        None,
        crate::pipeline::with_engine_params(params, engine, file),
        crate::pipeline::run_info(engine),
    )?;
    let mut done = committed.len().min(records.len());
    progress(done);
    // Constraints compiled once each; identical ones share their per-state masks.
    let mut constraints = crate::constrain::Cache::new(&file.tokenizer);
    // One stream through the engine, committed in input order wave by wave: the batch
    // stays full across wave boundaries.
    let mut t0 = std::time::Instant::now();
    let rf_ref = &mut rf;
    crate::pipeline::run_in_waves(
        engine,
        &records[done..],
        cfg.wave_size,
        |r| {
            let constraint = match &r.constraint {
                None => None,
                Some(spec) => Some(constraints.get(&spec.pattern()?)?),
            };
            Ok(Ok(Request {
                id: stream_of(&r.id),
                prompt: encode(file, &r.prompt)?,
                params: r.params.clone(),
                max_tokens: r.max_tokens,
                stop: r.stop.clone(),
                constraint,
                draw: None,
                top_logprobs: r.top_logprobs,
                stream: false,
            }))
        },
        |wave, outs| {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let lines: Vec<Value> = wave
                .iter()
                .zip(outs)
                .map(|(r, o)| {
                    *counts
                        .entry(format!("finish_{:?}", o.finish_reason).to_lowercase())
                        .or_default() += 1;
                    let mut v = serde_json::to_value(&o).expect("outputs serialise");
                    v["id"] = r.id.clone();
                    if r.top_logprobs.is_some() {
                        v["logprobs"] = Value::Array(
                            o.logprobs
                                .iter()
                                .map(|l| {
                                    serde_json::json!({
                                        "token": l.token,
                                        "logprob": l.logprob,
                                        "top": l.top,
                                    })
                                })
                                .collect(),
                        );
                    }
                    v
                })
                .collect();
            let mut secs = BTreeMap::new();
            secs.insert("generation".to_string(), t0.elapsed().as_secs_f64());
            t0 = std::time::Instant::now();
            rf_ref.commit_wave(&lines, &[], &counts, &secs)?;
            done += wave.len();
            progress(done);
            Ok(())
        },
    )?;
    // The engine is busy until the stream ends: tokens and profile are recorded once.
    rf.note_tokens(&engine.stats);
    rf.finish()
}

/// A digest of the parsed records (ids, prompts, per-record settings).
fn records_digest(records: &[PromptRecord]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for r in records {
        h.update(format!(
            "{:?}",
            (r.line, &r.id, &r.prompt, &r.params, r.max_tokens, &r.stop)
        ));
        if let Some(k) = r.top_logprobs {
            h.update(format!("logprobs {k}"));
        }
        if let Some(c) = &r.constraint {
            h.update(format!("{c:?}"));
        }
    }
    format!("{:x}", h.finalize())
}
