//! One request in flight: its slot, what is in its KV cache, what it generated, and
//! when it stops.

use serde::Serialize;
use teacher_kernels::SamplingParams;

/// What the caller asks the engine to generate.
#[derive(Debug, Clone)]
pub struct Request {
    /// Names the sequence's random stream and its result; unique within a run.
    pub id: u64,
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    pub max_tokens: usize,
    /// Stop when the text contains one of these (the text ends before it).
    pub stop: Vec<String>,
    /// The output must match this (regular expression or JSON schema).
    pub constraint: Option<std::sync::Arc<crate::constrain::Constraint>>,
    /// (seed, stream) of this request's draws instead of (run seed, id): the server
    /// keys draws by the client's seed, so equal requests give equal text.
    pub draw: Option<(u64, u64)>,
    /// Return each generated token's log-probability and this many most likely
    /// alternatives (`Output::logprobs`); `None` computes nothing.
    pub top_logprobs: Option<usize>,
    /// Pass the text to the engine's sink (`Engine::stream_to`) as it grows. Only then,
    /// or with a stop string, is the text decoded at every token.
    pub stream: bool,
}

/// One generated token's log-probability under the distribution it was drawn from
/// (after penalties, bias and the constraint's mask; before temperature), and the most
/// likely alternatives with theirs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence / end-of-turn token or a stop string.
    Stop,
    /// `max_tokens` generated.
    Length,
    /// The sequence filled its context.
    Context,
    /// The request could not run (see `error`).
    Error,
    /// The caller went away before it finished.
    Cancelled,
}

/// A finished request.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub id: u64,
    pub text: String,
    #[serde(skip)]
    pub tokens: Vec<u32>,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Per generated token, when the request asked for `top_logprobs`.
    #[serde(skip)]
    pub logprobs: Vec<TokenLogprob>,
}

impl Output {
    pub fn failed(req: &Request, why: String) -> Output {
        Output {
            id: req.id,
            text: String::new(),
            tokens: Vec::new(),
            finish_reason: FinishReason::Error,
            prompt_tokens: req.prompt.len(),
            completion_tokens: 0,
            error: Some(why),
            logprobs: Vec::new(),
        }
    }
}

pub(crate) struct Sequence {
    pub req: Request,
    pub slot: usize,
    /// Positions already in the KV cache.
    pub cached: usize,
    pub generated: Vec<u32>,
    /// The text of the first `decoded` generated tokens (all of them once finished).
    pub text: String,
    /// Generated tokens `text` was decoded from: a request without stop strings is
    /// decoded only when it finishes (or streams), not at every token.
    decoded: usize,
    /// A token-at-a-time decoder of the text, for requests that read their text at
    /// every token (`text_of_all`), where the tokenizer has one.
    decoder: Option<teacher_models::TextDecoder>,
    /// Bytes of `text` already checked against stop strings.
    checked: usize,
    /// Bytes of `text` already streamed to the caller.
    pub streamed: usize,
    /// Where the output stands in the request's constraint.
    pub constraint_state: Option<crate::constrain::State>,
    /// One entry per generated token when the request asked for them.
    pub logprobs: Vec<TokenLogprob>,
    /// Waiting for an earlier sequence to compute a prompt prefix they share.
    pub held: bool,
}

impl Sequence {
    pub fn new(req: Request, slot: usize) -> Self {
        Sequence {
            slot,
            cached: 0,
            generated: Vec::new(),
            text: String::new(),
            decoded: 0,
            decoder: None,
            checked: 0,
            streamed: 0,
            logprobs: Vec::new(),
            held: false,
            constraint_state: req.constraint.as_ref().map(|c| c.start()),
            req,
        }
    }

    /// Prompt tokens not yet in the cache.
    pub fn prefill_left(&self) -> usize {
        self.req.prompt.len().saturating_sub(self.cached)
    }

    /// Whether each new token's text must be known at once: a stop string may end it,
    /// or the request streams it (to a sink the engine has).
    pub fn reads_text(&self, sink: bool) -> bool {
        (self.req.stream && sink) || self.req.stop.iter().any(|s| !s.is_empty())
    }

    /// The text of all tokens generated so far — the tokenizer's `decode` of them all:
    /// kept up to date a token at a time where the tokenizer has a `TextDecoder`, else
    /// decoded whole again.
    pub fn text_of_all(
        &mut self,
        tokenizer: &teacher_models::TextTokenizer,
    ) -> crate::Result<String> {
        if self.decoder.is_none() {
            self.decoder = tokenizer.text_decoder();
        }
        Ok(match &mut self.decoder {
            Some(d) => {
                for &id in &self.generated[d.pushed()..] {
                    d.push(tokenizer, id);
                }
                d.text()
            }
            None => tokenizer.decode(&self.generated)?,
        })
    }

    /// Record the text of all tokens generated so far; true when a stop string appeared
    /// (the text is cut before it).
    pub fn set_text(&mut self, text: String) -> bool {
        self.text = text;
        self.decoded = self.generated.len();
        let longest = self.req.stop.iter().map(|s| s.len()).max().unwrap_or(0);
        if longest == 0 {
            return false;
        }
        // Only text near the new end can complete a stop string.
        let mut from = self.checked.saturating_sub(longest);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let hit = self
            .req
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i))
            .min();
        self.checked = self.text.len();
        if let Some(at) = hit {
            self.text.truncate(at);
            return true;
        }
        false
    }

    /// The result, its text decoded from every generated token if the last ones were
    /// not yet (the same text a decode at every token would have left).
    pub fn finish(
        mut self,
        reason: FinishReason,
        tokenizer: &teacher_models::TextTokenizer,
    ) -> crate::Result<Output> {
        if self.decoded < self.generated.len() {
            self.text = tokenizer.decode(&self.generated)?;
        }
        Ok(Output {
            id: self.req.id,
            completion_tokens: self.generated.len(),
            prompt_tokens: self.req.prompt.len(),
            text: self.text,
            tokens: self.generated,
            finish_reason: reason,
            error: None,
            logprobs: self.logprobs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_match_across_pieces_and_cut_the_text() {
        let req = Request {
            id: 1,
            prompt: vec![1],
            params: SamplingParams::default(),
            max_tokens: 10,
            stop: vec!["\n\n".into(), "16.".into()],
            constraint: None,
            draw: None,
            top_logprobs: None,
            stream: false,
        };
        let mut s = Sequence::new(req, 0);
        assert!(!s.set_text("1. one\n".into()));
        assert!(s.set_text("1. one\n\n2. two".into()));
        assert_eq!(s.text, "1. one");
    }
}
