//! `teacher respond`: a response from the teacher for every instruction of a file.
//!
//! Records keep their fields and gain `output`, `model` and `sampling`. The work is
//! committed in waves through the run file, so a killed run resumes to the same bytes.

use super::items::Item;
use super::prompt::respond_prompt;
use super::run_file::RunFile;
use super::stream_of_id;
use crate::engine::{Engine, FinishReason, Output, Request};
use crate::error::Result;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use teacher_kernels::SamplingParams;
use teacher_models::{Message, ModelFile};

#[derive(Debug, Clone)]
pub struct Config {
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub seed: u64,
    pub system: Option<String>,
    pub wave_size: usize,
    pub model_name: String,
    pub model_sha256: String,
    pub input_sha256: String,
    /// The part of the input this run answers (`--shard I/N`).
    pub shard: crate::shard::Shard,
}

impl Config {
    fn params_json(&self) -> Value {
        let mut p = super::params_with_sampling(
            &self.sampling,
            json!({
                "max_tokens": self.max_tokens,
                "seed": self.seed,
                "system": self.system,
                "wave_size": self.wave_size,
                "model": self.model_name,
                "model_sha256": self.model_sha256,
                "input_sha256": self.input_sha256,
            }),
        );
        self.shard.add_to_params(&mut p);
        p
    }
}

/// The prompt text that asks for a response to `item`.
pub fn item_prompt(file: &ModelFile, item: &Item, system: Option<&str>) -> Result<String> {
    match (&item.messages, file.chat_template.is_some()) {
        (Some(ms), true) => {
            let mut all: Vec<Message> = Vec::new();
            if let Some(s) = system {
                if ms.first().is_none_or(|m| m.role != "system") {
                    all.push(Message::new("system", s));
                }
            }
            all.extend(ms.iter().cloned());
            Ok(file.render_chat(&all)?)
        }
        _ => respond_prompt(file, &item.instruction, &item.input, system),
    }
}

/// Stop strings for base models answering in the plain layout (a chat model stops on
/// its end-of-turn token).
pub fn completion_stops(file: &ModelFile) -> Vec<String> {
    if file.chat_template.is_some() {
        Vec::new()
    } else {
        vec!["\nInstruction:".into(), "\n\n\n".into()]
    }
}

pub fn run(
    engine: &mut Engine,
    file: &ModelFile,
    items: &[Item],
    cfg: &Config,
    out: &Path,
    mut report: impl FnMut(usize, usize),
) -> Result<usize> {
    cfg.shard.check_not_empty(items.len(), "input items")?;
    let (mut rf, committed) = RunFile::open(
        "respond",
        out,
        None,
        super::with_engine_params(cfg.params_json(), engine, file),
        super::run_info(engine),
    )?;
    let items = &items[cfg.shard.range(items.len())];
    let mut done = committed.len();
    let stops = completion_stops(file);
    // One stream through the engine, committed in input order wave by wave: the batch
    // stays full across wave boundaries.
    let mut t0 = Instant::now();
    let total = items.len();
    let rf_ref = &mut rf;
    super::run_in_waves(
        engine,
        &items[done..],
        cfg.wave_size,
        |it| {
            // A record whose prompt cannot be built (a template error, a prompt over
            // the size bound) fails alone, with the reason in its output record.
            let prompt = item_prompt(file, it, cfg.system.as_deref())
                .and_then(|p| Ok(file.encode_prompt(&p)?));
            Ok(match prompt {
                Ok(prompt) => Ok(Request {
                    id: stream_of_id(&it.id),
                    prompt,
                    params: cfg.sampling.clone(),
                    max_tokens: cfg.max_tokens,
                    stop: stops.clone(),
                    constraint: None,
                    draw: None,
                    top_logprobs: None,
                    stream: false,
                }),
                Err(e) => Err(Output {
                    id: 0,
                    text: String::new(),
                    tokens: Vec::new(),
                    finish_reason: FinishReason::Error,
                    prompt_tokens: 0,
                    completion_tokens: 0,
                    error: Some(format!("input line {} (id `{}`): {e}", it.line, it.id)),
                    logprobs: Vec::new(),
                }),
            })
        },
        |wave, outs| {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let records: Vec<Value> = wave
                .iter()
                .zip(&outs)
                .map(|(it, o)| {
                    *counts
                        .entry(format!("finish_{:?}", o.finish_reason).to_lowercase())
                        .or_default() += 1;
                    let mut r = it.record.clone();
                    if r.get("id").is_none() {
                        r["id"] = json!(it.id);
                    }
                    r["output"] = json!(o.text.trim());
                    r["model"] = json!(cfg.model_name);
                    r["sampling"] = json!({
                        "temperature": super::f32_json(cfg.sampling.temperature),
                        "top_p": super::f32_json(cfg.sampling.top_p),
                        "max_tokens": cfg.max_tokens,
                        "seed": cfg.seed,
                    });
                    r["finish_reason"] = json!(o.finish_reason);
                    if o.finish_reason == FinishReason::Error {
                        r["error"] = json!(o.error);
                    }
                    r
                })
                .collect();
            let mut s = BTreeMap::new();
            s.insert("generation".to_string(), t0.elapsed().as_secs_f64());
            t0 = Instant::now();
            rf_ref.commit_wave(&records, &[], &counts, &s)?;
            done += wave.len();
            report(done, total);
            Ok(())
        },
    )?;
    // The engine is busy until the stream ends: tokens and profile are recorded once.
    rf.note_tokens(&engine.stats);
    rf.finish()?;
    Ok(done)
}
