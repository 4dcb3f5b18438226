//! `teacher bench`: prefill and aggregate decode throughput of the engine's forward
//! pass at several batch sizes, measured like llama.cpp's llama-batched-bench (B
//! prompts of P tokens prefilled (after an untimed warm-up pass, repeated and averaged),
//! then G decode steps of B rows each).

use crate::error::Result;
use teacher_kernels::ops::KvType;
use teacher_models::forward::{Draw, KvCache, Pick, Segment, Transformer};
use teacher_models::TextTokenizer;

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    pub batch: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    /// Prompt tokens per second over all B prompts.
    pub prefill_tok_s: f64,
    /// Generated tokens per second summed over the batch.
    pub decode_tok_s: f64,
    pub peak_rss_mb: Option<f64>,
}

/// KV memory bench may allocate (the engine's default `--kv-memory`).
const BENCH_KV_BUDGET: usize = 8 << 30;

/// What to measure: batch sizes, prompt and generated tokens per sequence, the KV cache
/// type, and the prompt tokens of one prefill step (llama.cpp's -ub).
#[derive(Debug, Clone)]
pub struct Plan {
    pub batches: Vec<usize>,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub kv: KvType,
    pub prefill_step: usize,
    /// Decode by sampling with these parameters (the forward pass draws the tokens,
    /// on the device where it can) instead of by argmax; None: greedy.
    pub sampling: Option<teacher_kernels::SamplingParams>,
}

pub fn run(
    model: &Transformer,
    tok: &TextTokenizer,
    plan: &Plan,
    mut report: impl FnMut(&BenchRow),
) -> Result<Vec<BenchRow>> {
    let (batches, prompt_len, gen_len, kv, prefill_step) = (
        &plan.batches[..],
        plan.prompt_tokens,
        plan.gen_tokens,
        plan.kv,
        plan.prefill_step,
    );
    let text = "The quick brown fox jumps over the lazy dog while the teacher writes new \
                instructions, answers them carefully, and checks every answer twice. ";
    let base = tok.encode(&text.repeat(16), false, false)?;
    if base.is_empty() {
        return Err(crate::Error::Usage(
            "the model's tokenizer gives no tokens for the benchmark text".into(),
        ));
    }
    let positions = prompt_len.saturating_add(gen_len).saturating_add(1);
    if positions > model.hp.context_length {
        return Err(crate::Error::Usage(format!(
            "--prompt-tokens + --gen-tokens ({positions} positions) exceed the model's context of {}",
            model.hp.context_length
        )));
    }
    for &b in batches {
        // The same budget the engine's --kv-memory default enforces.
        let need = b
            .checked_mul(positions)
            .and_then(|n| n.checked_mul(model.kv_bytes_per_position(kv)));
        if need.is_none_or(|n| n > BENCH_KV_BUDGET) {
            return Err(crate::Error::Usage(format!(
                "batch {b} × {positions} positions needs more than the {} GiB KV budget of bench\nhint: lower --batch or the token counts",
                BENCH_KV_BUDGET >> 30
            )));
        }
    }
    let mut rows = Vec::new();
    for &b in batches {
        let prompts: Vec<Vec<u32>> = (0..b)
            .map(|i| {
                (0..prompt_len)
                    .map(|j| base[(i * 7 + j) % base.len()])
                    .collect()
            })
            .collect();
        let mut cache = model.new_cache_of(b, prompt_len + gen_len + 1, kv)?;
        let mut next: Vec<u32> = vec![0; b];
        // The first pass also pages the weights in from the file: untimed, as
        // llama-bench's warm-up run. Then whole prefills are repeated (each rewrites the
        // cache from position 0) until they add up to a quarter second, and averaged.
        prefill_all(model, &mut cache, &prompts, prefill_step, &mut next)?;
        let started = std::time::Instant::now();
        let mut reps = 0;
        while reps == 0 || (started.elapsed().as_secs_f64() < 0.25 && reps < 20) {
            prefill_all(model, &mut cache, &prompts, prefill_step, &mut next)?;
            reps += 1;
        }
        let prefill = started.elapsed().as_secs_f64() / reps as f64;
        let mut history: Vec<Vec<u32>> = vec![Vec::new(); b];
        let started = std::time::Instant::now();
        for g in 0..gen_len {
            let toks: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
            let segs: Vec<Segment> = (0..b)
                .map(|s| Segment {
                    slot: s,
                    tokens: &toks[s],
                    start: prompt_len + g,
                    logits: true,
                })
                .collect();
            next = match &plan.sampling {
                None => model.step_argmax(&mut cache, &segs)?,
                Some(p) => {
                    let picks = draw(model, &mut cache, &segs, p, &prompts, &history)?;
                    for (h, &t) in history.iter_mut().zip(&picks) {
                        h.push(t);
                    }
                    picks
                }
            };
        }
        let decode = started.elapsed().as_secs_f64();
        let row = BenchRow {
            batch: b,
            prompt_tokens: prompt_len,
            gen_tokens: gen_len,
            prefill_tok_s: (b * prompt_len) as f64 / prefill,
            decode_tok_s: (b * gen_len) as f64 / decode,
            peak_rss_mb: peak_rss_mb(),
        };
        report(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// Draw each segment's next token with `p` (seed 1, one stream per sequence, `history`
/// the tokens drawn so far; what comes back as logits is sampled here, as the engine
/// does).
fn draw(
    model: &Transformer,
    cache: &mut KvCache,
    segs: &[Segment],
    p: &teacher_kernels::SamplingParams,
    prompts: &[Vec<u32>],
    history: &[Vec<u32>],
) -> Result<Vec<u32>> {
    let draws: Vec<Draw> = segs
        .iter()
        .map(|s| Draw {
            params: p,
            prompt: &prompts[s.slot],
            generated: &history[s.slot],
            seed: 1,
            stream: s.slot as u64,
        })
        .collect();
    Ok(model
        .step_sample(cache, segs, &draws)?
        .into_iter()
        .zip(segs)
        .map(|(pick, s)| match pick {
            Pick::Token(t) => t,
            Pick::Logits(mut l) => teacher_kernels::sample(
                &mut l,
                p,
                &prompts[s.slot],
                &history[s.slot],
                1,
                s.slot as u64,
                history[s.slot].len() as u64,
            ),
        })
        .collect())
}

/// One prefill of every prompt: whole prompts per step, up to the step budget (at least
/// one); `next` gets each prompt's greedy next token.
fn prefill_all(
    model: &Transformer,
    cache: &mut KvCache,
    prompts: &[Vec<u32>],
    step_tokens: usize,
    next: &mut [u32],
) -> Result<()> {
    let prompt_len = prompts.first().map_or(0, |p| p.len());
    let per_step = (step_tokens / prompt_len.max(1)).max(1);
    let mut i = 0;
    while i < prompts.len() {
        let group: Vec<usize> = (i..(i + per_step).min(prompts.len())).collect();
        let segs: Vec<Segment> = group
            .iter()
            .map(|&s| Segment {
                slot: s,
                tokens: &prompts[s],
                start: 0,
                logits: true,
            })
            .collect();
        let picks = model.step_argmax(cache, &segs)?;
        for (&s, t) in group.iter().zip(picks) {
            next[s] = t;
        }
        i += group.len();
    }
    Ok(())
}

/// The process's peak resident set (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
