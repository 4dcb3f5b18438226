//! `teacher complete`: continue one prompt, streaming to stdout.

use super::args::{ModelArgs, SamplingArgs};
use anyhow::{bail, Context};
use clap::Args;
use std::io::Write;
use teacher::engine::{Engine, EngineConfig, Request};
use teacher_models::Message;

#[derive(Args)]
pub(crate) struct CompleteArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Plain text for the model to continue.
    #[arg(
        long,
        conflicts_with = "messages",
        required_unless_present = "messages"
    )]
    prompt: Option<String>,
    /// With --prompt: send it as one user message through the chat template.
    #[arg(long, requires = "prompt")]
    chat: bool,
    /// A JSON array of `{"role", "content"}` messages (chat models).
    #[arg(long)]
    messages: Option<String>,
    /// A system message put before the others (chat only).
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

pub(crate) fn run(a: CompleteArgs, offline: bool) -> anyhow::Result<()> {
    // Check everything the user typed before the model is loaded.
    let sampling = a.sampling.params()?;
    let messages: Option<Vec<Message>> = match (&a.messages, &a.prompt, a.chat) {
        (Some(json), _, _) => {
            let m: Vec<Message> = serde_json::from_str(json).context(
                "--messages must be a JSON array of {\"role\": ..., \"content\": ...} objects",
            )?;
            if m.is_empty() {
                bail!("--messages is an empty list");
            }
            Some(m)
        }
        (None, Some(p), true) => Some(vec![Message::new("user", p.clone())]),
        _ => None,
    };
    let messages = messages.map(|mut m| {
        if let Some(s) = &a.system {
            m.insert(0, Message::new("system", s.clone()));
        }
        m
    });
    let file = a.model.open(offline)?;
    let text = match &messages {
        Some(m) => file.render_chat(m)?,
        None => a.prompt.clone().unwrap_or_default(),
    };
    let ids = file.encode_prompt(&text)?;
    let model = a.model.load(&file)?;
    let cfg = EngineConfig::new(1, model.hp.context_length.min(8192), a.sampling.seed);
    let mut engine = Engine::new(&model, &file.tokenizer, cfg)?;
    let mut result = None;
    engine.stream_to(Box::new(|_, piece| {
        let mut out = std::io::stdout().lock();
        out.write_all(piece.as_bytes())
            .and_then(|_| out.flush())
            .map_err(teacher::Error::Output)
    }));
    let req = Request {
        id: 0,
        prompt: ids,
        params: sampling,
        max_tokens: a.sampling.max_tokens,
        stop: Vec::new(),
        constraint: None,
        draw: None,
        top_logprobs: None,
        stream: true,
    };
    engine.run([req], |o| {
        result = Some(o);
        Ok(())
    })?;
    drop(engine);
    writeln!(std::io::stdout())?;
    let done = result.expect("one request gives one result");
    if let Some(e) = &done.error {
        bail!("{e}");
    }
    eprintln!(
        "teacher: {} prompt tokens, {} generated, finish: {:?}",
        done.prompt_tokens, done.completion_tokens, done.finish_reason
    );
    Ok(())
}
