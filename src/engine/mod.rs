//! The batched generation engine: a request queue, continuous batching over KV-cache
//! slots, chunked prefill mixed into decode steps, and per-request sampling.
//!
//! The scheduler decides which rows go into a step (`scheduler.rs`), the model
//! computes the step (`teacher_models::forward`), the kernels turn each row's logits
//! into a token. Every sequence's tokens are a function of its own prompt, parameters
//! and (run seed, request id, step) alone: the forward is batch-invariant and the
//! draws are counter-based, so output never depends on `batch`, thread count or on
//! which sequence finished first.

mod scheduler;
mod sequence;

pub use sequence::{FinishReason, Output, Request, TokenLogprob};

use crate::error::{Error, Result};
use scheduler::Scheduler;
pub use scheduler::{Fixed, Next, Source};
use sequence::Sequence;
use teacher_kernels::ops::KvType;
use teacher_kernels::{pool, sample};
use teacher_models::forward::{Draw, KvCache, Pick, Segment, Transformer};
use teacher_models::TextTokenizer;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most sequences in flight.
    pub batch: usize,
    /// Positions per sequence slot (prompt + generation).
    pub context: usize,
    /// Refuse a `context` longer than the model's (the user asked for it); otherwise
    /// it is cut to the model's (a default that suits most models).
    pub strict_context: bool,
    /// Most tokens in one step (decode rows first, then prompt chunks).
    pub step_tokens: usize,
    /// The run seed.
    pub seed: u64,
    /// Bytes the KV cache may take.
    pub kv_memory: usize,
    /// What the KV cache stores (f16 by default, as llama.cpp).
    pub kv_type: KvType,
    /// Start a new sequence from the longest prefix of its prompt that a KV slot already
    /// holds (copied, not computed again). Output bytes are the same either way.
    pub prefix_reuse: bool,
}

impl EngineConfig {
    pub fn new(batch: usize, context: usize, seed: u64) -> Self {
        EngineConfig {
            batch,
            context,
            strict_context: false,
            step_tokens: 512,
            seed,
            kv_memory: 8 << 30,
            kv_type: KvType::F16,
            prefix_reuse: true,
        }
    }
}

/// Counters of a run, for benchmarks and progress.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineStats {
    pub steps: u64,
    pub prompt_tokens: u64,
    pub generated_tokens: u64,
    /// Forward passes of steps that carried prompt rows (prefill, mixed with decode).
    pub prefill_seconds: f64,
    /// Forward passes of decode-only steps.
    pub decode_seconds: f64,
    /// Inside those forward passes: attention over the KV cache, and the output layer.
    pub attention_seconds: f64,
    pub output_layer_seconds: f64,
    /// Constraint masks and draws.
    pub sampling_seconds: f64,
    /// Decoding text, stop-string checks and streaming.
    pub text_seconds: f64,
    /// Σ over steps of the sequences in flight, and of the batch size: their ratio is
    /// the mean batch occupancy (1 − it: idle slots, e.g. the tail of a wave).
    pub slot_steps_used: u64,
    pub slot_steps: u64,
    /// Prompt tokens whose keys and values were copied from a slot holding the same
    /// prefix instead of computed (not in `prompt_tokens`).
    pub reused_prompt_tokens: u64,
}

impl EngineStats {
    /// Mean share of the batch's slots in use over all steps.
    pub fn occupancy(&self) -> f64 {
        self.slot_steps_used as f64 / self.slot_steps.max(1) as f64
    }

    /// The breakdown a manifest records (`profile`).
    pub fn profile(&self) -> serde_json::Value {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        let decode_tps =
            self.generated_tokens as f64 / (self.decode_seconds + self.prefill_seconds).max(1e-9);
        serde_json::json!({
            "steps": self.steps,
            "prefill_seconds": r(self.prefill_seconds),
            "decode_seconds": r(self.decode_seconds),
            "attention_seconds": r(self.attention_seconds),
            "output_layer_seconds": r(self.output_layer_seconds),
            "sampling_seconds": r(self.sampling_seconds),
            "text_and_stop_seconds": r(self.text_seconds),
            "mean_batch_occupancy": r(self.occupancy()),
            "prefix_reused_tokens": self.reused_prompt_tokens,
            "generated_tokens_per_forward_second": r(decode_tps),
        })
    }
}

/// A new sequence waits for an earlier one to compute a prefix they share when that
/// saves at least this many positions.
const HOLD_FOR_PREFIX: usize = 16;

/// Called with (request id, new text) as generated text grows.
pub type TextSink<'m> = Box<dyn FnMut(u64, &str) -> Result<()> + 'm>;

pub struct Engine<'m> {
    model: &'m Transformer,
    tokenizer: &'m TextTokenizer,
    cache: KvCache,
    cfg: EngineConfig,
    pub stats: EngineStats,
    stream: Option<TextSink<'m>>,
    /// The tokens whose keys and values each slot holds at positions 0.. (kept across
    /// runs: a finished sequence's slot still serves as a prefix).
    slot_tokens: Vec<Vec<u32>>,
}

impl<'m> Engine<'m> {
    pub fn new(
        model: &'m Transformer,
        tokenizer: &'m TextTokenizer,
        cfg: EngineConfig,
    ) -> Result<Self> {
        if cfg.batch == 0 || cfg.context == 0 {
            return Err(Error::Usage(format!(
                "--batch and --context must be at least 1 (got --batch {} --context {})",
                cfg.batch, cfg.context
            )));
        }
        if cfg.strict_context && cfg.context > model.hp.context_length {
            return Err(Error::Usage(format!(
                "--context {} is longer than the model's context of {} positions\nhint: give --context {} or less",
                cfg.context, model.hp.context_length, model.hp.context_length
            )));
        }
        let context = cfg.context.min(model.hp.context_length);
        let need = cfg
            .batch
            .checked_mul(context)
            .and_then(|n| n.checked_mul(model.kv_bytes_per_position(cfg.kv_type)))
            .unwrap_or(usize::MAX);
        if need > cfg.kv_memory || need == usize::MAX {
            return Err(Error::Usage(format!(
                "the KV cache for --batch {} × context {context} needs {:.1} GiB, over the {:.1} GiB budget\nhint: lower --batch or --context, or raise --kv-memory",
                cfg.batch,
                need as f64 / (1u64 << 30) as f64,
                cfg.kv_memory as f64 / (1u64 << 30) as f64
            )));
        }
        // The budget may be larger than the machine (`--kv-memory inf`): the machine is
        // a budget too.
        teacher_models::memory::check_fits(
            need as u64,
            &format!("the KV cache for --batch {} × context {context}", cfg.batch),
        )
        .map_err(|e| Error::Usage(format!("{e}\nhint: lower --batch or --context")))?;
        let cache = model.new_cache_of(cfg.batch, context, cfg.kv_type)?;
        Ok(Engine {
            model,
            tokenizer,
            cache,
            slot_tokens: vec![Vec::new(); cfg.batch],
            cfg: EngineConfig { context, ..cfg },
            stats: EngineStats::default(),
            stream: None,
        })
    }

    /// What the KV cache stores.
    /// The device the model runs on, in words.
    pub fn device(&self) -> String {
        self.model.device()
    }

    pub fn kv_type(&self) -> KvType {
        self.cache.kv_type()
    }

    /// Stream the text of the requests that ask for it (`Request::stream`) as it is
    /// generated (for interactive use).
    pub fn stream_to(&mut self, sink: TextSink<'m>) {
        self.stream = Some(sink);
    }

    /// Most sequences decoded together (`--batch`).
    pub fn batch(&self) -> usize {
        self.cfg.batch
    }

    pub fn context(&self) -> usize {
        self.cfg.context
    }

    /// Whether prompts start from prefixes other sequences computed.
    pub fn prefix_reuse(&self) -> bool {
        self.cfg.prefix_reuse
    }

    /// Start every sequence that has not begun its prompt from the longest prefix of it
    /// that a slot holds: its own slot (left by an earlier sequence) or another's,
    /// copied. At least the prompt's last token is always computed (its logits are
    /// needed). Keys and values of a position depend only on the tokens up to it and the
    /// forward pass is batch- and chunk-invariant, so this changes time, never bytes.
    ///
    /// A new sequence whose prompt shares a longer prefix with an earlier sequence that
    /// is still computing its prompt waits (`held`) until that prefix is in the cache,
    /// instead of computing the same positions alongside it: prompts admitted together
    /// (a wave, the first requests) compute their common template once. The earliest
    /// such sequence is never held, so the step always makes progress.
    fn reuse_prefixes(&mut self, running: &mut [Sequence]) {
        for i in 0..running.len() {
            let (earlier, rest) = running.split_at_mut(i);
            let s = &mut rest[0];
            if s.cached != 0 || !s.generated.is_empty() {
                continue;
            }
            let want = s.req.prompt.len() - 1;
            let common = |other: &[u32]| {
                other
                    .iter()
                    .zip(&s.req.prompt[..want])
                    .take_while(|(a, b)| a == b)
                    .count()
            };
            // The own slot first: a tie needs no copy.
            let mut best = (s.slot, common(&self.slot_tokens[s.slot]));
            for (t, held) in self.slot_tokens.iter().enumerate() {
                let n = common(held);
                if n > best.1 {
                    best = (t, n);
                }
            }
            let (from, n) = best;
            let coming = earlier
                .iter()
                .filter(|t| !t.held && t.prefill_left() > 0)
                .map(|t| common(&t.req.prompt))
                .max()
                .unwrap_or(0);
            s.held = coming >= n + HOLD_FOR_PREFIX;
            if s.held || n == 0 {
                // Nothing copied yet: the slot keeps what it holds until written.
                continue;
            }
            self.cache.copy_prefix(from, s.slot, n);
            self.slot_tokens[s.slot] = s.req.prompt[..n].to_vec();
            s.cached = n;
            self.stats.reused_prompt_tokens += n as u64;
        }
    }

    /// Run every request to completion; `on_done` gets each result as it finishes
    /// (in finishing order — callers that write files reorder by id).
    pub fn run(
        &mut self,
        requests: impl IntoIterator<Item = Request>,
        on_done: impl FnMut(Output) -> Result<()>,
    ) -> Result<()> {
        self.serve(Fixed(requests.into_iter()), on_done)
    }

    /// Run requests from `source` as they come (continuous batching), until it says
    /// `Done` and everything admitted has finished. A request whose caller went away
    /// is dropped and reported with `FinishReason::Cancelled`.
    pub fn serve(
        &mut self,
        source: impl Source,
        mut on_done: impl FnMut(Output) -> Result<()>,
    ) -> Result<()> {
        let mut sched = Scheduler::new(self.cfg.batch, self.cfg.step_tokens, source);
        loop {
            let gone = sched.cancelled();
            for (seq, reason) in sched.retire(&gone) {
                on_done(seq.finish(reason, self.tokenizer)?)?;
            }
            let held = self.cfg.prefix_reuse.then_some(&self.slot_tokens[..]);
            for (req, why) in sched.admit(self.cfg.context, held) {
                on_done(Output::failed(&req, why))?;
            }
            if sched.running.is_empty() {
                if sched.exhausted() {
                    return Ok(());
                }
                continue;
            }
            if self.cfg.prefix_reuse {
                self.reuse_prefixes(&mut sched.running);
            }
            let plan = sched.plan();
            let segs: Vec<Segment> = plan
                .iter()
                .map(|p| {
                    let s = &sched.running[p.seq];
                    let tokens: &[u32] = if p.decode {
                        std::slice::from_ref(s.generated.last().expect("decoding has a token"))
                    } else {
                        &s.req.prompt[s.cached..s.cached + p.len]
                    };
                    Segment {
                        slot: s.slot,
                        tokens,
                        start: s.cached,
                        logits: p.logits,
                    }
                })
                .collect();
            // When no row that wants a token needs its logits on the host (a constraint's
            // mask, log-probabilities), the forward pass draws the tokens itself: a GPU
            // then sends back token ids instead of logit rows (the CPU answers logits,
            // sampled below either way).
            let wanting: Vec<usize> = plan.iter().filter(|p| p.logits).map(|p| p.seq).collect();
            let seed = self.cfg.seed;
            let device_draws = wanting.iter().all(|&i| {
                let r = &sched.running[i].req;
                r.constraint.is_none() && r.top_logprobs.is_none()
            });
            let started = std::time::Instant::now();
            let before = self.model.profile();
            let picks: Vec<Pick> = if device_draws {
                let draws: Vec<Draw> = wanting
                    .iter()
                    .map(|&i| {
                        let s = &sched.running[i];
                        let (seed, stream) = s.req.draw.unwrap_or((seed, s.req.id));
                        Draw {
                            params: &s.req.params,
                            prompt: &s.req.prompt,
                            generated: &s.generated,
                            seed,
                            stream,
                        }
                    })
                    .collect();
                self.model.step_sample(&mut self.cache, &segs, &draws)?
            } else {
                self.model
                    .step(&mut self.cache, &segs)?
                    .into_iter()
                    .map(Pick::Logits)
                    .collect()
            };
            let secs = started.elapsed().as_secs_f64();
            let after = self.model.profile();
            self.stats.attention_seconds += after.attention_seconds - before.attention_seconds;
            self.stats.output_layer_seconds += after.output_seconds - before.output_seconds;
            self.stats.steps += 1;
            self.stats.slot_steps += self.cfg.batch as u64;
            self.stats.slot_steps_used += sched.running.len() as u64;
            let prompt_rows: u64 = plan
                .iter()
                .filter(|p| !p.decode)
                .map(|p| p.len as u64)
                .sum();
            self.stats.prompt_tokens += prompt_rows;
            if prompt_rows > 0 {
                self.stats.prefill_seconds += secs;
            } else {
                self.stats.decode_seconds += secs;
            }
            // What each slot now holds, then the cache positions.
            if self.cfg.prefix_reuse {
                for seg in &segs {
                    // A sequence's first write may land on what the slot's last
                    // occupant left: that is gone from here on.
                    let held = &mut self.slot_tokens[seg.slot];
                    debug_assert!(held.len() >= seg.start);
                    held.truncate(seg.start);
                    held.extend_from_slice(seg.tokens);
                }
            }
            drop(segs);
            for p in &plan {
                sched.running[p.seq].cached += p.len;
            }
            // Sample one token for every row that came back as logits, in parallel:
            // each draw depends only on its own sequence.
            let sampling_started = std::time::Instant::now();
            type Drawn = (Option<Vec<f32>>, u32, Option<TokenLogprob>);
            let mut work: Vec<Drawn> = picks
                .into_iter()
                .map(|p| match p {
                    Pick::Token(t) => (None, t, None),
                    Pick::Logits(l) => (Some(l), 0, None),
                })
                .collect();
            let running = &sched.running;
            pool::for_each_row(&mut work, 1, 2, |j, item| {
                let (logits, pick, lp) = &mut item[0];
                let Some(l) = logits else {
                    return;
                };
                let s = &running[wanting[j]];
                if let (Some(c), Some(state)) = (&s.req.constraint, s.constraint_state) {
                    c.mask(state, l);
                }
                let (seed, stream) = s.req.draw.unwrap_or((seed, s.req.id));
                *pick = sample(
                    l,
                    &s.req.params,
                    &s.req.prompt,
                    &s.generated,
                    seed,
                    stream,
                    s.generated.len() as u64,
                );
                if let Some(k) = s.req.top_logprobs {
                    let (logprob, top) = teacher_kernels::sampling::logprobs(l, *pick, k);
                    *lp = Some(TokenLogprob {
                        token: *pick,
                        logprob,
                        top,
                    });
                }
            });
            let picks: Vec<(u32, Option<TokenLogprob>)> =
                work.into_iter().map(|(_, pick, lp)| (pick, lp)).collect();
            self.stats.sampling_seconds += sampling_started.elapsed().as_secs_f64();
            let text_started = std::time::Instant::now();
            self.stats.generated_tokens += wanting.len() as u64;
            let mut finished: Vec<(usize, FinishReason)> = Vec::new();
            for (&i, (tok, lp)) in wanting.iter().zip(picks) {
                let ctx = self.cfg.context;
                let s = &mut sched.running[i];
                if self.tokenizer.is_stop(tok) {
                    finished.push((i, FinishReason::Stop));
                    continue;
                }
                if let (Some(c), Some(state)) = (&s.req.constraint, s.constraint_state) {
                    // The mask allowed only tokens that advance; a dead end (no token
                    // of the vocabulary continues the match) ends the sequence.
                    match c.advance(state, tok) {
                        Some(next) => s.constraint_state = Some(next),
                        None => {
                            finished.push((i, FinishReason::Stop));
                            continue;
                        }
                    }
                }
                s.generated.push(tok);
                s.logprobs.extend(lp);
                // The text is kept up to date at each token only where something
                // reads it now (a stop string, a stream) — a token at a time where the
                // tokenizer allows, else decoded whole again (quadratic in the length);
                // otherwise it is decoded once, at the end.
                let mut stopped = false;
                if s.reads_text(self.stream.is_some()) {
                    let text = s.text_of_all(self.tokenizer)?;
                    stopped = s.set_text(text);
                }
                if let Some(sink) = self.stream.as_mut().filter(|_| s.req.stream) {
                    // Only whole characters: a token may end inside a UTF-8 sequence.
                    if s.text.len() > s.streamed
                        && !s.text.ends_with('\u{FFFD}')
                        && s.text.is_char_boundary(s.streamed)
                    {
                        sink(s.req.id, &s.text[s.streamed..])?;
                        s.streamed = s.text.len();
                    }
                }
                if stopped {
                    finished.push((i, FinishReason::Stop));
                } else if s.generated.len() >= s.req.max_tokens {
                    finished.push((i, FinishReason::Length));
                } else if s.cached + 1 >= ctx {
                    finished.push((i, FinishReason::Context));
                }
            }
            let done = sched
                .retire(&finished)
                .into_iter()
                .map(|(seq, reason): (Sequence, FinishReason)| seq.finish(reason, self.tokenizer))
                .collect::<Result<Vec<Output>>>()?;
            self.stats.text_seconds += text_started.elapsed().as_secs_f64();
            for out in done {
                on_done(out)?;
            }
        }
    }
}
