//! OpenAI-compatible request bodies → engine requests, and engine outputs → response
//! bodies and stream chunks (`/v1/completions`, `/v1/chat/completions`).

use crate::engine::{FinishReason, Output};
use crate::generate::ConstraintSpec;
use serde_json::{json, Map, Value};
use teacher_kernels::SamplingParams;
use teacher_models::Message;

/// Choices one request may ask for (`n` × prompts).
pub const MAX_CHOICES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Completion,
    Chat,
}

/// A parsed request: what to generate, before tokenization.
#[derive(Debug)]
pub struct Call {
    pub kind: Kind,
    /// Prompt texts (chat: the rendered conversation); each gets `n` choices.
    pub prompts: Vec<PromptIn>,
    pub n: usize,
    pub params: SamplingParams,
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
    pub seed: Option<u64>,
    pub stream: bool,
    pub constraint: Option<ConstraintSpec>,
    /// Return each token's log-probability and this many alternatives.
    pub logprobs: Option<usize>,
}

/// Most alternatives per token a request may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

#[derive(Debug)]
pub enum PromptIn {
    Text(String),
    Messages(Vec<Message>),
}

/// A client error: message and the parameter it is about.
pub struct BadRequest(pub String, pub Option<&'static str>);

fn bad(msg: impl Into<String>, param: &'static str) -> BadRequest {
    BadRequest(msg.into(), Some(param))
}

fn number(o: &Map<String, Value>, key: &'static str) -> Result<Option<f64>, BadRequest> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(bad(format!("`{key}` must be a number, got {other}"), key)),
    }
}

fn content_text(v: &Value) -> Result<String, BadRequest> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut s = String::new();
            for p in parts {
                match (p["type"].as_str(), p["text"].as_str()) {
                    (Some("text"), Some(t)) => s.push_str(t),
                    _ => {
                        return Err(bad(
                            "message content parts must be {\"type\": \"text\", \"text\": …}; teacher serves text models",
                            "messages",
                        ))
                    }
                }
            }
            Ok(s)
        }
        other => Err(bad(
            format!("message content must be text, got {other}"),
            "messages",
        )),
    }
}

/// Read a request body. `raw` is the body text (read again for schema key order).
pub fn parse(kind: Kind, body: &Value, raw: &str, served: &str) -> Result<Call, BadRequest> {
    let o = body
        .as_object()
        .ok_or_else(|| BadRequest("the body must be a JSON object".into(), None))?;
    if let Some(m) = o.get("model").and_then(|m| m.as_str()) {
        if m != served {
            return Err(BadRequest(
                format!("model `{m}` is not served here; this server serves `{served}`"),
                Some("model"),
            ));
        }
    }
    for unsupported in ["echo", "best_of", "tools", "functions", "suffix"] {
        let used = match o.get(unsupported) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Number(n)) => n.as_u64() != Some(1) || unsupported != "best_of",
            Some(Value::Array(a)) => !a.is_empty(),
            _ => true,
        };
        if used {
            return Err(BadRequest(
                format!("`{unsupported}` is not supported by teacher serve"),
                Some(unsupported),
            ));
        }
    }
    let prompts = match kind {
        Kind::Completion => match o.get("prompt") {
            Some(Value::String(s)) => vec![PromptIn::Text(s.clone())],
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(|x| x.is_string()) => a
                .iter()
                .map(|x| PromptIn::Text(x.as_str().unwrap_or_default().to_string()))
                .collect(),
            _ => {
                return Err(bad(
                    "`prompt` must be a string or a list of strings",
                    "prompt",
                ))
            }
        },
        Kind::Chat => {
            let ms = o
                .get("messages")
                .and_then(|m| m.as_array())
                .filter(|m| !m.is_empty())
                .ok_or_else(|| bad("`messages` must be a non-empty list", "messages"))?;
            let mut out = Vec::with_capacity(ms.len());
            for m in ms {
                let role = m["role"]
                    .as_str()
                    .ok_or_else(|| bad("every message needs a `role`", "messages"))?;
                let role = if role == "developer" { "system" } else { role };
                out.push(Message::new(role, content_text(&m["content"])?));
            }
            vec![PromptIn::Messages(out)]
        }
    };
    let n = match number(o, "n")? {
        None => 1,
        Some(x) if x >= 1.0 && x.fract() == 0.0 => x as usize,
        Some(x) => return Err(bad(format!("`n` must be a positive integer, got {x}"), "n")),
    };
    if n * prompts.len() > MAX_CHOICES {
        return Err(bad(
            format!("at most {MAX_CHOICES} choices per request (n × prompts)"),
            "n",
        ));
    }
    let mut params = SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        ..SamplingParams::default()
    };
    if let Some(t) = number(o, "temperature")? {
        if !(0.0..=2.0).contains(&t) {
            return Err(bad(
                format!("`temperature` must be in [0, 2], got {t}"),
                "temperature",
            ));
        }
        params.temperature = t as f32;
    }
    if let Some(p) = number(o, "top_p")? {
        params.top_p = p as f32;
    }
    for (key, field) in [
        ("presence_penalty", &mut params.presence_penalty),
        ("frequency_penalty", &mut params.frequency_penalty),
    ] {
        if let Some(x) = number(o, key)? {
            if !(-2.0..=2.0).contains(&x) {
                return Err(bad(format!("`{key}` must be in [-2, 2], got {x}"), key));
            }
            *field = x as f32;
        }
    }
    params
        .validate()
        .map_err(|e| BadRequest(e.to_string(), None))?;
    let max_key = if kind == Kind::Chat && o.contains_key("max_completion_tokens") {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let max_tokens = match number(o, max_key)? {
        None => None,
        Some(x) if x >= 1.0 && x.fract() == 0.0 => Some(x as usize),
        Some(x) => {
            return Err(bad(
                format!("`{max_key}` must be a positive integer, got {x}"),
                "max_tokens",
            ))
        }
    };
    let stop = match o.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.len() <= 4 && a.iter().all(|s| s.is_string()) => a
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect(),
        _ => return Err(bad("`stop` must be a string or up to 4 strings", "stop")),
    };
    let seed = match o.get("seed") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
            Some(n.as_u64().unwrap_or_else(|| n.as_i64().unwrap_or(0) as u64))
        }
        Some(other) => {
            return Err(bad(
                format!("`seed` must be an integer, got {other}"),
                "seed",
            ))
        }
    };
    let stream = match o.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(bad(
                format!("`stream` must be true or false, got {other}"),
                "stream",
            ))
        }
    };
    let constraint = ConstraintSpec::from_request(o, raw).map_err(|e| bad(e, "response_format"))?;
    let count = |key: &'static str| -> Result<Option<usize>, BadRequest> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n))
                if n.as_u64().is_some_and(|x| x as usize <= MAX_TOP_LOGPROBS) =>
            {
                Ok(n.as_u64().map(|x| x as usize))
            }
            Some(other) => Err(bad(
                format!("`{key}` must be an integer from 0 to {MAX_TOP_LOGPROBS}, got {other}"),
                key,
            )),
        }
    };
    let logprobs = match kind {
        // Completions: `logprobs` is the number of alternatives.
        Kind::Completion => count("logprobs")?,
        // Chat: `logprobs: true`, and `top_logprobs` alternatives.
        Kind::Chat => {
            let on = match o.get("logprobs") {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::Bool(true)) => true,
                Some(other) => {
                    return Err(bad(
                        format!("`logprobs` must be true or false, got {other}"),
                        "logprobs",
                    ))
                }
            };
            let top = count("top_logprobs")?;
            if top.is_some() && !on {
                return Err(bad("`top_logprobs` needs `logprobs: true`", "top_logprobs"));
            }
            on.then_some(top.unwrap_or(0))
        }
    };
    if logprobs.is_some() && stream {
        return Err(bad(
            "`logprobs` with `stream: true` is not supported; ask without streaming",
            "logprobs",
        ));
    }
    Ok(Call {
        kind,
        prompts,
        n,
        params,
        max_tokens,
        stop,
        seed,
        stream,
        constraint,
        logprobs,
    })
}

pub fn finish_reason(r: FinishReason) -> Value {
    match r {
        FinishReason::Stop => json!("stop"),
        FinishReason::Length | FinishReason::Context => json!("length"),
        FinishReason::Error | FinishReason::Cancelled => Value::Null,
    }
}

fn object(kind: Kind, chunk: bool) -> &'static str {
    match (kind, chunk) {
        (Kind::Completion, _) => "text_completion",
        (Kind::Chat, false) => "chat.completion",
        (Kind::Chat, true) => "chat.completion.chunk",
    }
}

/// The `logprobs` object of one choice in OpenAI's shape for `kind`, or null when
/// none were asked for. `token_bytes[t]` is token t's text (None: not text).
fn logprobs_json(kind: Kind, o: &Output, token_bytes: &[Option<Vec<u8>>]) -> Value {
    if o.logprobs.is_empty() {
        return Value::Null;
    }
    let bytes = |t: u32| -> &[u8] {
        token_bytes
            .get(t as usize)
            .and_then(|b| b.as_deref())
            .unwrap_or(&[])
    };
    let text = |t: u32| String::from_utf8_lossy(bytes(t)).into_owned();
    let lp = |x: f32| {
        if x.is_finite() {
            json!(x)
        } else {
            json!(-9999.0)
        }
    };
    match kind {
        Kind::Completion => {
            let mut offset = 0usize;
            let mut offsets = Vec::new();
            for l in &o.logprobs {
                offsets.push(offset);
                offset += bytes(l.token).len();
            }
            json!({
                "tokens": o.logprobs.iter().map(|l| text(l.token)).collect::<Vec<_>>(),
                "token_logprobs": o.logprobs.iter().map(|l| lp(l.logprob)).collect::<Vec<_>>(),
                "top_logprobs": o.logprobs.iter().map(|l| {
                    let mut m = Map::new();
                    for &(t, x) in &l.top {
                        m.entry(text(t)).or_insert(lp(x));
                    }
                    Value::Object(m)
                }).collect::<Vec<_>>(),
                "text_offset": offsets,
            })
        }
        Kind::Chat => json!({
            "content": o.logprobs.iter().map(|l| json!({
                "token": text(l.token),
                "logprob": lp(l.logprob),
                "bytes": bytes(l.token),
                "top_logprobs": l.top.iter().map(|&(t, x)| json!({
                    "token": text(t), "logprob": lp(x), "bytes": bytes(t),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "refusal": null,
        }),
    }
}

/// The whole response to a non-streaming call; `outs` in choice order.
pub fn response(
    kind: Kind,
    id: &str,
    created: u64,
    model: &str,
    outs: &[Output],
    prompt_tokens: usize,
    token_bytes: &[Option<Vec<u8>>],
) -> Value {
    let choices: Vec<Value> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| match kind {
            Kind::Completion => json!({"index": i, "text": o.text,
                "logprobs": logprobs_json(kind, o, token_bytes),
                "finish_reason": finish_reason(o.finish_reason)}),
            Kind::Chat => json!({"index": i, "message": {"role": "assistant", "content": o.text},
                "logprobs": logprobs_json(kind, o, token_bytes),
                "finish_reason": finish_reason(o.finish_reason)}),
        })
        .collect();
    let completion: usize = outs.iter().map(|o| o.completion_tokens).sum();
    json!({
        "id": id, "object": object(kind, false), "created": created, "model": model,
        "system_fingerprint": concat!("teacher-", env!("CARGO_PKG_VERSION")),
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                  "total_tokens": prompt_tokens + completion},
    })
}

/// What every chunk of one streamed response repeats.
pub struct StreamHead<'a> {
    pub kind: Kind,
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
}

/// One stream chunk: a piece of choice `index`'s text, or (with `finish`) its end;
/// `first` adds the chat role.
pub fn chunk(
    h: &StreamHead,
    index: usize,
    piece: Option<&str>,
    finish: Option<FinishReason>,
    first: bool,
) -> Value {
    let (kind, id, created, model) = (h.kind, h.id, h.created, h.model);
    let fr = finish.map_or(Value::Null, finish_reason);
    let choice = match kind {
        Kind::Completion => json!({"index": index, "text": piece.unwrap_or(""),
            "logprobs": null, "finish_reason": fr}),
        Kind::Chat => {
            let mut delta = json!({});
            if first {
                delta["role"] = json!("assistant");
            }
            if let Some(p) = piece {
                delta["content"] = json!(p);
            }
            json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": fr})
        }
    };
    json!({
        "id": id, "object": object(kind, true), "created": created, "model": model,
        "system_fingerprint": concat!("teacher-", env!("CARGO_PKG_VERSION")),
        "choices": [choice],
    })
}
