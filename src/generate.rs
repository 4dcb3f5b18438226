//! Single-sequence generation on the reference forward pass (`teacher complete`).
//! The batched engine replaces this for dataset work; this path stays as batch size 1
//! and as the reference it is tested against.

use crate::error::{Error, Result};
use teacher_kernels::{sample, SamplingParams};
use teacher_models::{Model, TokenStream};

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub sampling: SamplingParams,
    pub seed: u64,
    /// The request id that names this sequence's random stream.
    pub stream: u64,
    pub max_tokens: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence or end-of-turn token.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The model's context window is full.
    Context,
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub finish: FinishReason,
}

/// Generate from `prompt` (token ids), calling `on_text` with each piece of text as
/// soon as it is whole UTF-8.
pub fn generate(
    model: &mut Model,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_text: impl FnMut(&str) -> Result<()>,
) -> Result<Completion> {
    let ctx = model.file.hparams.context_length;
    if prompt.is_empty() {
        return Err(Error::Usage(
            "the prompt is empty after tokenization".into(),
        ));
    }
    if prompt.len() >= ctx {
        return Err(Error::Usage(format!(
            "the prompt has {} tokens, the model's context is {ctx}",
            prompt.len()
        )));
    }
    let mut history: Vec<u32> = prompt.to_vec();
    let mut generated = Vec::new();
    let mut stream = TokenStream::default();
    let mut logits = model.forward(prompt, 0)?;
    let mut finish = FinishReason::Length;
    for step in 0..opts.max_tokens {
        let tok = sample(
            &mut logits,
            &opts.sampling,
            &history,
            opts.seed,
            opts.stream,
            step as u64,
        );
        if model.file.tokenizer.is_stop(tok) {
            finish = FinishReason::Stop;
            break;
        }
        generated.push(tok);
        history.push(tok);
        if let Some(piece) = stream.push(&model.file.tokenizer, tok)? {
            on_text(&piece)?;
        }
        if history.len() >= ctx {
            finish = FinishReason::Context;
            break;
        }
        if step + 1 < opts.max_tokens {
            logits = model.forward(&[tok], history.len() - 1)?;
        }
    }
    Ok(Completion {
        text: stream.text(&model.file.tokenizer)?,
        tokens: generated,
        prompt_tokens: prompt.len(),
        finish,
    })
}
