//! `teacher generate`: completions for a JSONL file of prompts through the engine,
//! written in input order.
//!
//! Each input line is `{"id", "prompt"}` or `{"id", "messages"}` with optional
//! per-line `temperature`, `top_p`, `top_k`, `min_p`, `max_tokens` and `stop`. Every
//! line is parsed and checked before the model is loaded.

use crate::dedup::AtomicFile;
use crate::engine::{Engine, Output, Request};
use crate::error::{Error, Result};
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
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line_no = i + 1;
        let bad = |what: String| Error::Input {
            path: path.to_path_buf(),
            line: line_no,
            what,
        };
        let line = line.map_err(|e| bad(format!("cannot be read: {e}")))?;
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
        out.push(PromptRecord {
            line: line_no,
            id,
            prompt,
            params,
            max_tokens: max,
            stop,
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

/// Generate for every record and write `{id, text, finish_reason, prompt_tokens,
/// completion_tokens}` lines to `out` in input order.
pub fn run(
    engine: &mut Engine,
    file: &ModelFile,
    records: &[PromptRecord],
    out: &Path,
    mut progress: impl FnMut(usize),
) -> Result<()> {
    let mut requests = Vec::with_capacity(records.len());
    let mut index_of: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let stream = stream_of(&r.id);
        index_of.insert(stream, i);
        requests.push(Request {
            id: stream,
            prompt: encode(file, &r.prompt)?,
            params: r.params.clone(),
            max_tokens: r.max_tokens,
            stop: r.stop.clone(),
        });
    }
    let mut writer = AtomicFile::create(out)?;
    let mut pending: BTreeMap<usize, Output> = BTreeMap::new();
    let mut next = 0usize;
    let mut done = 0usize;
    engine.run(requests, |o| {
        let i = index_of[&o.id];
        pending.insert(i, o);
        done += 1;
        progress(done);
        while let Some(o) = pending.remove(&next) {
            let mut v = serde_json::to_value(&o).expect("outputs serialise");
            v["id"] = records[next].id.clone();
            writer.write_line(&v.to_string())?;
            next += 1;
        }
        Ok(())
    })?;
    writer.commit()
}
