//! Perplexity of a text under a model, computed the way llama.cpp's `llama-perplexity`
//! does (`tools/perplexity/perplexity.cpp`, `perplexity()`), so the two numbers can be
//! compared directly:
//!
//! - the whole text is tokenized once (BOS added where the model's GGUF says so, special
//!   tokens not parsed);
//! - it is cut into non-overlapping chunks of N tokens (a shorter tail is dropped);
//! - the first token of every chunk is *replaced* by BOS where the model adds one;
//! - tokens at positions N/2+1 … N−1 of each chunk are scored from the logits at
//!   N/2 … N−2 (N/2−1 tokens per chunk);
//! - PPL = exp(mean negative log-likelihood); the ± figure is llama.cpp's
//!   PPL·sqrt(var(nll)/(count−1)).
//!
//! Several chunks run side by side as separate sequences of one step (each its own KV
//! slot), which changes no number: the forward pass is batch-invariant.

use crate::error::{Error, Result};
use teacher_kernels::math;
use teacher_kernels::ops::KvType;
use teacher_models::forward::{Segment, Transformer};
use teacher_models::TextTokenizer;

#[derive(Debug, Clone)]
pub struct Options {
    /// Tokens per chunk (llama.cpp `-c`).
    pub context: usize,
    /// Most tokens per forward step (llama.cpp `-b`); chunks that fit run together.
    pub batch_tokens: usize,
    /// Score only the first this many chunks.
    pub max_chunks: Option<usize>,
    pub kv_type: KvType,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub context: usize,
    /// What the KV cache stored (`KvType::name`).
    pub kv_cache: &'static str,
    pub text_tokens: usize,
    pub add_bos: bool,
    pub chunks: usize,
    pub scored_tokens: usize,
    pub perplexity: f64,
    /// llama.cpp's uncertainty estimate of the perplexity.
    pub perplexity_error: f64,
    pub mean_nll: f64,
    /// The running perplexity after each chunk (what llama-perplexity prints as
    /// `[1]24.5,[2]…`).
    pub running: Vec<f64>,
    pub seconds: f64,
    pub tokens_per_second: f64,
}

/// Negative log-likelihood of `target` under `logits` (log-softmax in f64, with
/// teacher's own `exp`/`ln` so the figure is the same on every machine).
pub fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let sum: f64 = logits.iter().map(|&v| math::exp((v - max) as f64)).sum();
    -((logits[target as usize] - max) as f64 - math::ln(sum))
}

/// Tokenize `text` as llama-perplexity does and score it.
pub fn compute(
    model: &Transformer,
    tok: &TextTokenizer,
    text: &str,
    opts: &Options,
    mut progress: impl FnMut(usize, usize, f64),
) -> Result<Report> {
    let started = std::time::Instant::now();
    let n = opts.context;
    if n < 4 {
        return Err(Error::Usage(format!(
            "--context must be at least 4 tokens to score anything, got {n}"
        )));
    }
    if n > model.hp.context_length {
        return Err(Error::Usage(format!(
            "--context {n} is longer than the model's context length {}",
            model.hp.context_length
        )));
    }
    let tokens = tok.encode(text, false, tok.add_bos)?;
    let available = tokens.len() / n;
    if available == 0 {
        return Err(Error::Usage(format!(
            "the text has {} tokens, fewer than one chunk of {n}; give a longer text or a smaller --context",
            tokens.len()
        )));
    }
    let chunks = opts.max_chunks.map_or(available, |m| m.min(available));
    let bos = match (tok.add_bos, tok.bos) {
        (true, Some(b)) => Some(b),
        _ => None,
    };
    let per_step = (opts.batch_tokens / n).max(1);
    // One step holds `group` chunks' KV cache and the logits of their scored halves:
    // checked against the machine before either is allocated.
    let group = per_step.min(chunks) as u64;
    let cache_bytes = group
        .saturating_mul(n as u64)
        .saturating_mul(model.kv_bytes_per_position(opts.kv_type) as u64);
    let logits_bytes = group
        .saturating_mul((n - 1 - n / 2) as u64)
        .saturating_mul(model.hp.vocab_size as u64)
        .saturating_mul(4);
    teacher_models::memory::check_fits(
        cache_bytes.saturating_add(logits_bytes),
        &format!(
            "scoring {group} chunks of --context {n} at once (--batch-tokens {}: KV cache and logits)",
            opts.batch_tokens
        ),
    )
    .map_err(|e| Error::Usage(format!("{e}\nhint: lower --batch-tokens")))?;
    let mut cache = model.new_cache_of(per_step.min(chunks), n, opts.kv_type)?;
    let first = n / 2;
    let (mut sum, mut sum2, mut count) = (0f64, 0f64, 0usize);
    let mut running = Vec::with_capacity(chunks);
    let mut done = 0;
    while done < chunks {
        let group = per_step.min(chunks - done);
        let mut inputs: Vec<Vec<u32>> = (done..done + group)
            .map(|c| tokens[c * n..(c + 1) * n].to_vec())
            .collect();
        if let Some(b) = bos {
            inputs.iter_mut().for_each(|t| t[0] = b);
        }
        // The first half only fills the cache; the second half's logits are scored.
        let head: Vec<Segment> = inputs
            .iter()
            .enumerate()
            .map(|(slot, t)| Segment {
                slot,
                tokens: &t[..first],
                start: 0,
                logits: false,
            })
            .collect();
        model.step(&mut cache, &head)?;
        let tail: Vec<Segment> = inputs
            .iter()
            .enumerate()
            .map(|(slot, t)| Segment {
                slot,
                tokens: &t[first..n - 1],
                start: first,
                logits: true,
            })
            .collect();
        let logits = model.step_every_token(&mut cache, &tail)?;
        let per_chunk = n - 1 - first;
        for (g, chunk_logits) in logits.chunks(per_chunk).enumerate() {
            let c = done + g;
            for (i, l) in chunk_logits.iter().enumerate() {
                // Scored against the original tokens (only position 0 was replaced).
                let target = tokens[c * n + first + 1 + i];
                let v = nll(l, target);
                sum += v;
                sum2 += v * v;
                count += 1;
            }
            running.push(math::exp(sum / count as f64));
        }
        done += group;
        progress(done, chunks, math::exp(sum / count as f64));
    }
    let mean = sum / count as f64;
    let ppl = math::exp(mean);
    let var = sum2 / count as f64 - mean * mean;
    let err = if var > 0.0 && count > 1 {
        ppl * (var / (count - 1) as f64).sqrt()
    } else {
        0.0
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        context: n,
        kv_cache: opts.kv_type.name(),
        text_tokens: tokens.len(),
        add_bos: bos.is_some(),
        chunks,
        scored_tokens: count,
        perplexity: ppl,
        perplexity_error: err,
        mean_nll: mean,
        running,
        seconds,
        tokens_per_second: (chunks * n) as f64 / seconds.max(1e-9),
    })
}
