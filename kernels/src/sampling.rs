//! The sampling chain: one row of logits → one token.
//!
//! Order (as in Hugging Face transformers and vLLM): penalties and logit bias on the
//! raw logits, then temperature, then top-k, top-p and min-p on the tempered
//! distribution, then one draw. Temperature 0 is greedy. Every intermediate ordering
//! is the total order (logit descending, token id ascending), so the chosen token
//! depends only on the logits, the parameters and the uniform draw — never on the
//! algorithm used to find the candidates.

use crate::{math, philox};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SamplingError {
    #[error("temperature must be >= 0 and finite, got {0}")]
    Temperature(f32),
    #[error("top_p must be in (0, 1], got {0}")]
    TopP(f32),
    #[error("min_p must be in [0, 1], got {0}")]
    MinP(f32),
    #[error("repetition_penalty must be > 0, got {0}")]
    RepetitionPenalty(f32),
    #[error("{name} must be finite, got {value}")]
    NotFinite { name: &'static str, value: f32 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 means no top-k cut.
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    /// Multiplicative (CTRL-style) penalty on tokens already in the sequence; 1 = off.
    pub repetition_penalty: f32,
    /// Subtracted once from every token already present (OpenAI semantics).
    pub presence_penalty: f32,
    /// Subtracted per occurrence (OpenAI semantics).
    pub frequency_penalty: f32,
    pub logit_bias: Vec<(u32, f32)>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self::default()
    }

    /// Refuse values that make no sense before any model work starts.
    pub fn validate(&self) -> Result<(), SamplingError> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(SamplingError::Temperature(self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplingError::TopP(self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(SamplingError::MinP(self.min_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(SamplingError::RepetitionPenalty(self.repetition_penalty));
        }
        for (name, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !value.is_finite() {
                return Err(SamplingError::NotFinite { name, value });
            }
        }
        Ok(())
    }

    /// Greedy with nothing that changes the logits first: `sample` is then `argmax`.
    pub fn is_plain_greedy(&self) -> bool {
        self.temperature == 0.0 && !self.penalties_active() && self.logit_bias.is_empty()
    }

    fn penalties_active(&self) -> bool {
        self.repetition_penalty != 1.0
            || self.presence_penalty != 0.0
            || self.frequency_penalty != 0.0
    }
}

/// Sample one token from `logits` (modified in place by penalties and bias).
///
/// A NaN logit is never drawn: constrained generation masks disallowed tokens with NaN.
///
/// `prompt` and `generated` are the sequence so far: the repetition penalty looks at
/// both (as Hugging Face and vLLM do), presence and frequency penalties at the
/// generated tokens only (the OpenAI semantics the reference pipelines were run with);
/// `(seed, stream, step)` name the draw: stream is the request id, step the index of
/// the token being generated.
pub fn sample(
    logits: &mut [f32],
    params: &SamplingParams,
    prompt: &[u32],
    generated: &[u32],
    seed: u64,
    stream: u64,
    step: u64,
) -> u32 {
    assert!(!logits.is_empty(), "sampling needs at least one logit");
    if params.penalties_active() {
        apply_penalties(logits, params, prompt, generated);
    }
    for &(tok, bias) in &params.logit_bias {
        if let Some(l) = logits.get_mut(tok as usize) {
            *l += bias;
        }
    }
    if params.temperature == 0.0 {
        return argmax(logits);
    }
    let u = philox::uniform(seed, stream, step, 0);
    sample_tempered(logits, params, u)
}

/// Log-probabilities under softmax(`logits`) (NaN logits — masked tokens — excluded):
/// that of `chosen`, and the `k` most likely tokens with theirs (ties to the lower id).
/// Computed in f64 with teacher's own `exp` and `ln`, the normaliser summed in index
/// order, so the numbers are reproducible to the bit.
pub fn logprobs(logits: &[f32], chosen: u32, k: usize) -> (f32, Vec<(u32, f32)>) {
    let max = logits
        .iter()
        .filter(|l| !l.is_nan())
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    if !max.is_finite() {
        return (f32::NEG_INFINITY, Vec::new());
    }
    let z: f64 = logits
        .iter()
        .filter(|l| !l.is_nan())
        .map(|&l| math::exp(l as f64 - max))
        .sum();
    let log_z = math::ln(z);
    let lp = |l: f32| -> f32 {
        if l.is_nan() {
            f32::NEG_INFINITY
        } else {
            (l as f64 - max - log_z) as f32
        }
    };
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if l.is_nan() {
                continue;
            }
            let better = |t: &(u32, f32)| l > t.1 || (l == t.1 && (i as u32) < t.0);
            if top.len() < k || top.last().is_some_and(better) {
                let at = top.iter().position(better).unwrap_or(top.len());
                top.insert(at, (i as u32, l));
                top.truncate(k);
            }
        }
    }
    let chosen_lp = logits
        .get(chosen as usize)
        .map_or(f32::NEG_INFINITY, |&l| lp(l));
    (
        chosen_lp,
        top.into_iter().map(|(t, l)| (t, lp(l))).collect(),
    )
}

/// The highest logit; ties go to the lowest token id. NaN never wins; a row with
/// nothing above −∞ answers 0.
///
/// Two passes the compiler vectorises: the largest value, in 16 independent lanes
/// (a maximum is exact, so the lanes' order does not matter), then the first
/// position holding it — the answer of the one-pass scan `if v > best`.
pub fn argmax(logits: &[f32]) -> u32 {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            if v > *m {
                *m = v;
            }
        }
    }
    let mut best = f32::NEG_INFINITY;
    for &v in lanes.iter().chain(rest) {
        if v > best {
            best = v;
        }
    }
    if best == f32::NEG_INFINITY {
        return 0;
    }
    let mut base = 0;
    for c in logits.chunks(LANES) {
        if c.iter().fold(false, |hit, &v| hit | (v == best)) {
            let at = c.iter().position(|&v| v == best).unwrap_or(0);
            return (base + at) as u32;
        }
        base += c.len();
    }
    0
}

fn apply_penalties(logits: &mut [f32], p: &SamplingParams, prompt: &[u32], generated: &[u32]) {
    let n = logits.len();
    if p.repetition_penalty != 1.0 {
        let mut seen: Vec<u32> = prompt
            .iter()
            .chain(generated)
            .copied()
            .filter(|&t| (t as usize) < n)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            let l = &mut logits[t as usize];
            *l = if *l > 0.0 {
                *l / p.repetition_penalty
            } else {
                *l * p.repetition_penalty
            };
        }
    }
    if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
        let mut counts: Vec<u32> = generated
            .iter()
            .copied()
            .filter(|&t| (t as usize) < n)
            .collect();
        counts.sort_unstable();
        for run in counts.chunk_by(|a, b| a == b) {
            logits[run[0] as usize] -= run.len() as f32 * p.frequency_penalty + p.presence_penalty;
        }
    }
}

/// A band larger than this (flat distributions) has its best `PARTIAL` selected and
/// sorted first; the rest of it is sorted only if a draw walks past them.
const PARTIAL: usize = 2048;

/// The candidate bands, in units of T: band 1 holds the logits within 12·ln 2·T of the
/// highest (a probability within 2^-12 of the most likely token's), band 2 those within
/// 40·ln 2·T, band 3 the rest. A draw nearly always ends in band 1, a few hundred tokens
/// at most of a language model's vocabulary, so the rest is never sorted.
const BANDS: [f32; 2] = [12.0 * std::f32::consts::LN_2, 40.0 * std::f32::consts::LN_2];

/// Exponentials computed per chunk before their terms join the normaliser's chain, so
/// the next chunk's `exp` overlaps the chain's latency.
const CHUNK: usize = 256;

thread_local! {
    /// e^{(l−max)/T} by token id (a vocabulary's worth, reused by the thread's draws).
    static EXPS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The candidates (non-NaN logits) in the sampling order — logit descending, id
/// ascending — produced a piece at a time: whatever a consumer has read of `sorted` is
/// a prefix of the full sort of every candidate, so stopping early never changes what
/// it saw. A band is taken by comparing the logit with a threshold, which keeps the
/// prefix property whatever the threshold is (a token ordered before one of the band
/// has a logit at least as high).
struct Ranked<'a> {
    logits: &'a [f32],
    sorted: Vec<(u32, f32)>,
    /// The current band's candidates not yet in `sorted`.
    pending: Vec<(u32, f32)>,
    /// Logit thresholds of bands 1 and 2; band 3 takes everything below the second.
    cuts: [f32; 2],
    /// Bands taken so far.
    bands: usize,
    /// Whether the current band's best `PARTIAL` were already taken by selection.
    headed: bool,
}

fn order(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

impl<'a> Ranked<'a> {
    fn new(logits: &'a [f32], max_l: f32, temperature: f32) -> Self {
        Ranked {
            logits,
            sorted: Vec::new(),
            pending: Vec::new(),
            cuts: BANDS.map(|b| max_l - b * temperature),
            bands: 0,
            headed: false,
        }
    }

    /// Whether the candidate logit `l` (not NaN) lies in band `k` (0-based): the first
    /// band whose threshold it reaches, else the last.
    fn in_band(&self, k: usize, l: f32) -> bool {
        let band = self.cuts.iter().position(|&c| l >= c).unwrap_or(2);
        band == k && !l.is_nan()
    }

    /// Extend `sorted` by at least one candidate; false when it holds them all.
    fn grow(&mut self) -> bool {
        while self.pending.is_empty() {
            if self.bands == 3 {
                return false;
            }
            let k = self.bands;
            self.pending = (self.logits.iter().enumerate())
                .filter(|&(_, &l)| self.in_band(k, l))
                .map(|(i, &l)| (i as u32, l))
                .collect();
            self.bands += 1;
            self.headed = false;
        }
        if self.pending.len() > PARTIAL && !self.headed {
            // A draw rarely walks past a band's best 2,048; when it does, the rest of
            // the band is sorted whole next time (one sort, not one selection a piece).
            self.headed = true;
            self.pending.select_nth_unstable_by(PARTIAL - 1, order);
            let mut head: Vec<(u32, f32)> = self.pending.drain(..PARTIAL).collect();
            head.sort_unstable_by(order);
            self.sorted.extend(head);
        } else {
            self.pending.sort_unstable_by(order);
            self.sorted.append(&mut self.pending);
        }
        true
    }

    /// Grow until `sorted` holds at least `n` candidates or all of them.
    fn fill_to(&mut self, n: usize) {
        while self.sorted.len() < n && self.grow() {}
    }
}

fn sample_tempered(logits: &[f32], p: &SamplingParams, u: f64) -> u32 {
    let inv_t = 1.0 / p.temperature as f64;
    // The highest logit and the candidates' count in one pass, eight lanes at a time (a
    // maximum is the same in any order; `l > m` keeps m for a NaN l).
    let (mut lanes, mut counts) = ([f32::NEG_INFINITY; 8], [0usize; 8]);
    let whole = logits.len() / 8 * 8;
    for ls in logits[..whole].chunks_exact(8) {
        for k in 0..8 {
            lanes[k] = if ls[k] > lanes[k] { ls[k] } else { lanes[k] };
            counts[k] += usize::from(!ls[k].is_nan());
        }
    }
    for &l in &logits[whole..] {
        lanes[0] = if l > lanes[0] { l } else { lanes[0] };
        counts[0] += usize::from(!l.is_nan());
    }
    let candidates: usize = counts.iter().sum();
    if candidates == 0 {
        return 0;
    }
    let max_l = lanes.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
    let masked = candidates < logits.len();
    EXPS.with_borrow_mut(|e| {
        // e^{(l−max)/T} by token id (0 for a masked token), and the softmax normaliser
        // over the whole vocabulary in index order (reproducible).
        e.resize(logits.len(), 0.0);
        let mut z = 0.0f64;
        for (es, ls) in e.chunks_mut(CHUNK).zip(logits.chunks(CHUNK)) {
            for (x, &l) in es.iter_mut().zip(ls) {
                *x = (l as f64 - max_l as f64) * inv_t;
            }
            math::exp_in_place(es);
            if masked {
                for (x, &l) in es.iter_mut().zip(ls) {
                    if l.is_nan() {
                        *x = 0.0;
                    }
                }
            }
            z = es.iter().fold(z, |t, &v| t + v);
        }
        let ranked = Ranked::new(logits, max_l, p.temperature);
        let keep = if p.top_k > 0 {
            p.top_k.min(candidates)
        } else {
            candidates
        };
        if keep == candidates && p.top_p >= 1.0 && p.min_p <= 0.0 {
            return draw_untruncated(ranked, u, e, z);
        }
        truncated(ranked, (keep < candidates).then_some(keep), p, u, e, z)
    })
}

/// Top-k (`top_k`: the count it keeps, when that is fewer than the candidates), top-p
/// and min-p: sort just far enough that the candidates they keep are all in `sorted`
/// (`finish` then cuts exactly where it would in the full order).
fn truncated(
    mut r: Ranked,
    top_k: Option<usize>,
    p: &SamplingParams,
    u: f64,
    e: &[f64],
    z: f64,
) -> u32 {
    let prob = |c: &(u32, f32)| e[c.0 as usize] / z;
    if let Some(keep) = top_k {
        r.fill_to(keep);
        r.sorted.truncate(keep);
    } else {
        // No top-k cut: top-p's nucleus (the prefix whose cumulative probability,
        // summed in order, first reaches top_p) or min-p's floor (probabilities ≥
        // min_p × the first) decide how far.
        r.grow();
        let floor = prob(&r.sorted[0]) * p.min_p as f64;
        let mut cum = 0.0f64;
        let mut at = 0;
        while at < r.sorted.len() || r.grow() {
            let q = prob(&r.sorted[at]);
            cum += q;
            at += 1;
            if (p.top_p < 1.0 && cum >= p.top_p as f64) || (p.min_p > 0.0 && q < floor) {
                break;
            }
        }
        r.sorted.truncate(at);
    }
    let mut probs: Vec<f64> = r.sorted.iter().map(prob).collect();
    finish(&r.sorted, &mut probs, p, u)
}

/// The draw when nothing is cut: walk the tokens from the most likely down until the
/// cumulative probability passes u·Σp (Σp in index order). The walk nearly always stops
/// within band 1, so only that is sorted. Same token as a walk over a full sort.
fn draw_untruncated(mut r: Ranked, u: f64, e: &[f64], z: f64) -> u32 {
    // Σp in index order (masked tokens add +0, which changes no sum of terms ≥ +0).
    let total = e.iter().fold(0.0f64, |t, &v| t + v / z);
    let target = u * total;
    let mut cum = 0.0;
    let mut at = 0;
    while at < r.sorted.len() || r.grow() {
        let c = r.sorted[at];
        cum += e[c.0 as usize] / z;
        if target < cum {
            return c.0;
        }
        at += 1;
    }
    r.sorted[r.sorted.len() - 1].0
}

/// Apply top-p and min-p to sorted candidates, renormalise, draw with `u`.
fn finish(cand: &[(u32, f32)], probs: &mut Vec<f64>, p: &SamplingParams, u: f64) -> u32 {
    let mut n = probs.len();
    if p.top_p < 1.0 {
        let mut cum = 0.0;
        for (i, &q) in probs.iter().enumerate() {
            cum += q;
            if cum >= p.top_p as f64 {
                n = i + 1;
                break;
            }
        }
    }
    if p.min_p > 0.0 {
        let floor = probs[0] * p.min_p as f64;
        n = n.min(probs.iter().take_while(|&&q| q >= floor).count().max(1));
    }
    probs.truncate(n);
    let total: f64 = probs.iter().sum();
    let target = u * total;
    let mut cum = 0.0;
    for (i, &q) in probs.iter().enumerate() {
        cum += q;
        if target < cum {
            return cand[i].0;
        }
    }
    cand[n - 1].0
}

#[cfg(test)]
mod tests {

    #[test]
    fn argmax_is_the_one_pass_scan() {
        use super::argmax;
        // The definition: the first position whose value beats every earlier one.
        fn scan(l: &[f32]) -> u32 {
            let (mut best, mut best_v) = (0usize, f32::NEG_INFINITY);
            for (i, &v) in l.iter().enumerate() {
                if v > best_v {
                    (best, best_v) = (i, v);
                }
            }
            best as u32
        }
        let pool = [
            f32::NAN,
            f32::NEG_INFINITY,
            f32::INFINITY,
            -0.0,
            0.0,
            1.5,
            1.5,
            -3.0,
            7.25,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [0usize, 1, 2, 15, 16, 17, 33, 100, 1000] {
            for _ in 0..200 {
                let row: Vec<f32> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        pool[(state % pool.len() as u64) as usize]
                    })
                    .collect();
                assert_eq!(argmax(&row), scan(&row), "{row:?}");
            }
        }
        assert_eq!(argmax(&[f32::NAN, f32::NEG_INFINITY, 2.0, 2.0]), 2);
        assert_eq!(argmax(&[-0.0, 0.0]), 0);
        assert_eq!(argmax(&[f32::NAN; 40]), 0);
    }

    #[test]
    fn logprobs_are_a_normalised_log_softmax_without_masked_tokens() {
        use super::logprobs;
        let l = [1.0f32, 3.0, f32::NAN, 3.0, -2.0];
        let (c, top) = logprobs(&l, 0, 3);
        let z: f64 = [1.0f64, 3.0, 3.0, -2.0].iter().map(|x| x.exp()).sum();
        assert!((c as f64 - (1.0 - z.ln())).abs() < 1e-6);
        // Ties go to the lower id; the masked token never appears.
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 3, 0]);
        let total: f64 = [0u32, 1, 3, 4]
            .iter()
            .map(|&t| (logprobs(&l, t, 0).0 as f64).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(logprobs(&l, 2, 0).0, f32::NEG_INFINITY);
        assert_eq!(logprobs(&[f32::NAN], 0, 2), (f32::NEG_INFINITY, vec![]));
    }

    #[test]
    fn nan_logits_are_never_drawn() {
        let mut base = vec![f32::NAN; 64];
        base[5] = -30.0;
        base[40] = -31.0;
        for (t, p, k) in [
            (0.0, 1.0, 0),
            (1.0, 1.0, 0),
            (1.5, 0.9, 0),
            (1.0, 1.0, 3),
            (2.0, 0.5, 0),
        ] {
            let params = SamplingParams {
                temperature: t,
                top_p: p,
                top_k: k,
                repetition_penalty: 1.3,
                ..SamplingParams::default()
            };
            for step in 0..200 {
                let mut l = base.clone();
                let tok = sample(&mut l, &params, &[5, 7], &[40], 9, 1, step);
                assert!(
                    tok == 5 || tok == 40,
                    "drew {tok} at T={t} top_p={p} top_k={k}"
                );
            }
        }
    }

    use super::*;

    #[test]
    fn greedy_picks_max_lowest_id_on_ties() {
        let mut l = vec![0.1, 3.0, 3.0, -1.0];
        assert_eq!(
            sample(&mut l, &SamplingParams::greedy(), &[], &[], 1, 1, 0),
            1
        );
    }

    #[test]
    fn validate_refuses_bad_values() {
        let mut p = SamplingParams {
            temperature: -0.5,
            ..Default::default()
        };
        assert_eq!(p.validate(), Err(SamplingError::Temperature(-0.5)));
        p = SamplingParams {
            top_p: 0.0,
            ..Default::default()
        };
        assert!(p.validate().is_err());
        p.top_p = 1.5;
        assert!(p.validate().is_err());
        p.top_p = 1.0;
        assert!(p.validate().is_ok());
    }

    #[test]
    fn top_k_one_is_greedy() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let best = argmax(&logits);
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 1,
            ..Default::default()
        };
        for step in 0..50 {
            let mut l = logits.clone();
            assert_eq!(sample(&mut l, &p, &[], &[], 9, 3, step), best);
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus_only() {
        // probs ~ [0.64, 0.24, 0.09, 0.03] at T=1
        let logits = vec![3.0f32, 2.0, 1.0, 0.0];
        let p = SamplingParams {
            temperature: 1.0,
            top_p: 0.7,
            ..Default::default()
        };
        let mut seen = [0usize; 4];
        for step in 0..2000 {
            let mut l = logits.clone();
            seen[sample(&mut l, &p, &[], &[], 5, 0, step) as usize] += 1;
        }
        assert!(seen[0] > 0 && seen[1] > 0);
        assert_eq!(seen[2] + seen[3], 0, "{seen:?}");
        // Renormalised: 0.64/(0.64+0.24) ~= 0.73 of draws are token 0.
        let frac = seen[0] as f64 / 2000.0;
        assert!((frac - 0.727).abs() < 0.04, "{frac}");
    }

    /// The definition, by a full sort of every candidate: what the banded selection
    /// must give for every draw.
    fn reference(logits: &[f32], p: &SamplingParams, u: f64) -> u32 {
        let inv_t = 1.0 / p.temperature as f64;
        let mut cand: Vec<(u32, f32)> = (logits.iter().enumerate())
            .filter(|(_, l)| !l.is_nan())
            .map(|(i, &l)| (i as u32, l))
            .collect();
        if cand.is_empty() {
            return 0;
        }
        let max_l = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = (logits.iter())
            .map(|&l| match l.is_nan() {
                true => 0.0,
                false => math::exp((l as f64 - max_l) * inv_t),
            })
            .collect();
        let z = e.iter().fold(0.0f64, |t, &v| t + v);
        cand.sort_by(order);
        let keep = match p.top_k {
            0 => cand.len(),
            k => k.min(cand.len()),
        };
        if keep == cand.len() && p.top_p >= 1.0 && p.min_p <= 0.0 {
            let target = u * e.iter().fold(0.0f64, |t, &v| t + v / z);
            let mut cum = 0.0;
            for c in &cand {
                cum += e[c.0 as usize] / z;
                if target < cum {
                    return c.0;
                }
            }
            return cand[cand.len() - 1].0;
        }
        cand.truncate(keep);
        let mut probs: Vec<f64> = cand.iter().map(|c| e[c.0 as usize] / z).collect();
        finish(&cand, &mut probs, p, u)
    }

    #[test]
    fn banded_selection_draws_what_a_full_sort_draws() {
        // Vocabularies and logit shapes that end draws in each band and past a band's
        // first 2,048 (flat logits), with masked (NaN) tokens, ±∞, ties and ±0.
        let hash = |i: u64, k: u64| {
            let x = (i ^ (k << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            ((x >> 11) as f64 / (1u64 << 53) as f64) as f32
        };
        // (name, vocabulary, logit of token i from its hash h)
        type Shape = (&'static str, usize, fn(f32, usize) -> f32);
        let shapes: [Shape; 7] = [
            ("peaked", 50_000, |h, i| {
                h * 10.0 + if i % 997 == 3 { 14.0 } else { 0.0 }
            }),
            ("flat", 20_000, |h, _| h * 0.01),
            ("wide", 5_000, |h, _| (h - 0.5) * 200.0),
            ("ties", 3_000, |h, _| (h * 8.0).floor()),
            (
                "zeros",
                600,
                |h, i| if i % 2 == 0 { 0.0 } else { -0.0 } - (h * 2.0).floor(),
            ),
            ("masked", 4_000, |h, i| {
                if i % 3 == 0 {
                    f32::NAN
                } else {
                    h * 30.0
                }
            }),
            ("infinite", 500, |h, i| match i % 101 {
                7 => f32::NEG_INFINITY,
                9 if h > 0.5 => f32::INFINITY,
                _ => h,
            }),
        ];
        let params = [
            (0.7f32, 0usize, 1.0f32, 0.0f32),
            (1.0, 0, 0.9, 0.0),
            (0.3, 0, 0.5, 0.0),
            (2.5, 0, 0.999, 0.0),
            (1.0, 40, 1.0, 0.0),
            (0.8, 3, 0.8, 0.0),
            (1.0, 0, 1.0, 0.05),
            (1.2, 0, 0.95, 0.3),
            (0.9, 1_000_000, 1.0, 0.0),
            (1.0, 2_500, 1.0, 0.0),
        ];
        let (mut beyond_band_1, mut beyond_partial) = (0, 0);
        for (k, (name, vocab, shape)) in shapes.iter().enumerate() {
            let logits: Vec<f32> = (0..*vocab)
                .map(|i| shape(hash(i as u64, k as u64), i))
                .collect();
            let mut sorted: Vec<(u32, f32)> = (logits.iter().enumerate())
                .filter(|(_, l)| !l.is_nan())
                .map(|(i, &l)| (i as u32, l))
                .collect();
            sorted.sort_by(order);
            for &(temperature, top_k, top_p, min_p) in &params {
                let p = SamplingParams {
                    temperature,
                    top_k,
                    top_p,
                    min_p,
                    ..Default::default()
                };
                let cut = sorted[0].1 - BANDS[0] * temperature;
                for step in 0..12 {
                    let u = philox::uniform(7, k as u64, step, 0);
                    let want = reference(&logits, &p, u);
                    assert_eq!(sample_tempered(&logits, &p, u), want, "{name} {p:?} u {u}");
                    let rank = sorted.iter().position(|c| c.0 == want).unwrap();
                    beyond_partial += usize::from(rank >= PARTIAL);
                    beyond_band_1 += usize::from(logits[want as usize] < cut);
                }
            }
        }
        assert!(
            beyond_band_1 > 0 && beyond_partial > 0,
            "{beyond_band_1} {beyond_partial}"
        );
    }

    #[test]
    fn the_bands_together_are_the_full_order() {
        // Logits exactly at both band thresholds, around them, masked and infinite ones:
        // taken band by band, the candidates come out exactly as one full sort.
        for temperature in [0.05f32, 0.7, 1.0, 3.0] {
            let cuts = BANDS.map(|b| 5.0 - b * temperature);
            let mut logits = vec![5.0f32, f32::NAN, f32::NEG_INFINITY, 5.0];
            for c in cuts {
                logits.extend([c, c, c.next_up(), c.next_down(), -0.0, 0.0]);
            }
            logits.extend((0..5_000).map(|i| 5.0 - (i % 257) as f32 * 0.37));
            let mut want: Vec<(u32, f32)> = (logits.iter().enumerate())
                .filter(|(_, l)| !l.is_nan())
                .map(|(i, &l)| (i as u32, l))
                .collect();
            want.sort_by(order);
            let mut r = Ranked::new(&logits, 5.0, temperature);
            while r.grow() {}
            let bits =
                |v: &[(u32, f32)]| v.iter().map(|c| (c.0, c.1.to_bits())).collect::<Vec<_>>();
            assert_eq!(bits(&r.sorted), bits(&want), "T {temperature}");
            let p = SamplingParams {
                temperature,
                top_p: 0.999,
                ..Default::default()
            };
            for step in 0..20 {
                let u = philox::uniform(5, 5, step, 0);
                assert_eq!(sample_tempered(&logits, &p, u), reference(&logits, &p, u));
            }
        }
    }

    #[test]
    fn untruncated_draw_equals_a_full_sort_walk() {
        // Flat logits push some draws past the sorted head of 2,048.
        for (vocab, spread) in [(50_000usize, 0.01f32), (50_000, 8.0), (300, 3.0)] {
            let logits: Vec<f32> = (0..vocab)
                .map(|i| ((i * 7919) % 1009) as f32 / 1009.0 * spread)
                .collect();
            let p = SamplingParams {
                temperature: 0.9,
                ..Default::default()
            };
            let inv_t = 1.0 / 0.9f64;
            let max_l = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let e = |l: f32| math::exp((l as f64 - max_l) * inv_t);
            let z: f64 = logits.iter().map(|&l| e(l)).sum();
            let total: f64 = logits.iter().map(|&l| e(l) / z).sum();
            let mut sorted: Vec<(u32, f32)> = logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, l))
                .collect();
            sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut past_head = 0;
            for step in 0..200 {
                let u = philox::uniform(3, 1, step, 0);
                let mut cum = 0.0;
                let mut want = sorted[sorted.len() - 1].0;
                for (rank, c) in sorted.iter().enumerate() {
                    cum += e(c.1) / z;
                    if u * total < cum {
                        want = c.0;
                        past_head += usize::from(rank >= PARTIAL);
                        break;
                    }
                }
                assert_eq!(
                    sample_tempered(&logits, &p, u),
                    want,
                    "vocab {vocab} step {step}"
                );
            }
            if spread < 1.0 {
                assert!(past_head > 0, "the flat case should exercise the fallback");
            }
        }
    }

    #[test]
    fn penalties_lower_seen_tokens() {
        let mut l = vec![2.0f32, 2.0, -1.0];
        let p = SamplingParams {
            repetition_penalty: 2.0,
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            ..Default::default()
        };
        // Token 1 only in the prompt: repetition penalty only.
        apply_penalties(&mut l, &p, &[1], &[0, 0, 2]);
        assert_eq!(l, vec![2.0 / 2.0 - 0.5 - 0.5, 1.0, -2.0 - 0.25 - 0.5]);
    }

    #[test]
    fn same_draw_same_token() {
        let logits: Vec<f32> = (0..500).map(|i| (i as f32 * 0.013).sin()).collect();
        let p = SamplingParams {
            temperature: 0.7,
            top_p: 0.9,
            min_p: 0.05,
            ..Default::default()
        };
        let a: Vec<u32> = (0..30)
            .map(|s| sample(&mut logits.clone(), &p, &[], &[], 11, 4, s))
            .collect();
        let b: Vec<u32> = (0..30)
            .map(|s| sample(&mut logits.clone(), &p, &[], &[], 11, 4, s))
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 1);
    }
}
