//! Exact ROUGE-L, bit for bit what `rouge-score` 0.1.2 computes with
//! `RougeScorer(["rougeL"], use_stemmer=False)`, and an incremental index that
//! answers "is this a near-duplicate of anything kept?" without scoring every pair.
//!
//! Speed comes only from bounds that cannot change a decision:
//! - **prefix probe**: F = 2·L/(m+n) ≥ θ needs L ≥ θ·m/(2−θ) common tokens, so any
//!   such item shares one of the candidate's m − k + 1 rarest tokens; only the
//!   posting lists of those tokens are read;
//! - **length**: F ≤ 2·min(m,n)/(m+n);
//! - **token multiset**: L ≤ Σ_t min(count_a(t), count_b(t));
//! - then a bit-parallel LCS (Allison–Dix / Hyyrö) over token ids.
//!
//! Each bound is compared with a margin of 1e-9 below the threshold, so a pair whose
//! floating-point score is at or above the threshold is always scored exactly.

use std::collections::HashMap;

/// Slack for comparing a bound with the threshold: far above floating-point error in
/// F, far below the gap between two distinct F values of short texts.
const BOUND_SLACK: f64 = 1e-9;

/// `rouge_score.tokenize.tokenize(text, None)`: Python `str.lower()`, every run of
/// characters outside `[a-z0-9]` is a separator, empty pieces dropped.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let push = |c: char, cur: &mut String, tokens: &mut Vec<String>| {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            cur.push(c);
        } else if !cur.is_empty() {
            tokens.push(std::mem::take(cur));
        }
    };
    for ch in text.chars() {
        if ch.is_ascii() {
            push(ch.to_ascii_lowercase(), &mut cur, &mut tokens);
        } else {
            // Full Unicode lowercasing, as Python's: a few non-ASCII characters lower
            // to ASCII letters (U+212A KELVIN SIGN → "k", U+0130 → "i" + U+0307).
            for lc in ch.to_lowercase() {
                push(lc, &mut cur, &mut tokens);
            }
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    tokens
}

/// `rouge_score.scoring.fmeasure` on `_score_lcs` precision and recall, with the same
/// floating-point operations in the same order.
pub fn f_measure(lcs: usize, target_len: usize, prediction_len: usize) -> f64 {
    if target_len == 0 || prediction_len == 0 {
        return 0.0;
    }
    let precision = lcs as f64 / prediction_len as f64;
    let recall = lcs as f64 / target_len as f64;
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// ROUGE-L F1 of two texts (`scorer.score(target, prediction)["rougeL"].fmeasure`).
pub fn rouge_l(target: &str, prediction: &str) -> f64 {
    let mut idx = RougeIndex::new();
    let a = idx.tokens_mut(target);
    let b = idx.tokens_mut(prediction);
    f_measure(lcs_len(&a.ids, &b.ids), a.len(), b.len())
}

/// LCS length of two token-id sequences, bit-parallel over `a`.
pub fn lcs_len(a: &[u32], b: &[u32]) -> usize {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let masks = MatchMasks::new(a);
    masks.lcs_with(b)
}

/// For one sequence `a`: a bit mask of its positions per distinct token, so the LCS
/// with any `b` costs O(|b|·⌈|a|/64⌉) word operations.
struct MatchMasks {
    words: usize,
    len: usize,
    /// token id → row in `bits`.
    slot: HashMap<u32, usize>,
    bits: Vec<u64>,
}

impl MatchMasks {
    fn new(a: &[u32]) -> Self {
        let words = a.len().div_ceil(64);
        let mut slot = HashMap::new();
        let mut bits: Vec<u64> = Vec::new();
        for (i, &t) in a.iter().enumerate() {
            let next = slot.len();
            let s = *slot.entry(t).or_insert(next);
            if s == next {
                bits.resize(bits.len() + words, 0);
            }
            bits[s * words + i / 64] |= 1u64 << (i % 64);
        }
        MatchMasks {
            words,
            len: a.len(),
            slot,
            bits,
        }
    }

    /// Hyyrö's bit-vector LCS: V starts all ones; for each b-token with match mask M,
    /// U = V & M, V = (V + U) | (V − U); the LCS is the number of zeros in V.
    fn lcs_with(&self, b: &[u32]) -> usize {
        if self.words == 1 {
            let mut v: u64 = !0;
            for t in b {
                if let Some(&s) = self.slot.get(t) {
                    let u = v & self.bits[s];
                    v = v.wrapping_add(u) | (v & !u);
                }
            }
            let live = if self.len == 64 {
                !0
            } else {
                (1u64 << self.len) - 1
            };
            return (!v & live).count_ones() as usize;
        }
        let w = self.words;
        let mut v = vec![!0u64; w];
        for t in b {
            let Some(&s) = self.slot.get(t) else { continue };
            let m = &self.bits[s * w..(s + 1) * w];
            let mut carry = 0u64;
            for k in 0..w {
                let u = v[k] & m[k];
                let (sum1, c1) = v[k].overflowing_add(u);
                let (sum2, c2) = sum1.overflowing_add(carry);
                carry = u64::from(c1 || c2);
                v[k] = sum2 | (v[k] & !u);
            }
        }
        let mut zeros = 0usize;
        for (k, word) in v.iter().enumerate() {
            let bits_here = (self.len - k * 64).min(64);
            let live = if bits_here == 64 {
                !0
            } else {
                (1u64 << bits_here) - 1
            };
            zeros += (!word & live).count_ones() as usize;
        }
        zeros
    }
}

/// When a candidate counts as a near-duplicate of a kept item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropRule {
    /// Self-Instruct paper (§2.3): kept only if similarity < θ, so `score >= θ` drops.
    AtLeast,
    /// Self-Instruct / Alpaca code: `if max(scores) > 0.7: continue`.
    Above,
}

impl DropRule {
    pub fn drops(self, score: f64, threshold: f64) -> bool {
        match self {
            DropRule::AtLeast => score >= threshold,
            DropRule::Above => score > threshold,
        }
    }
}

/// How much each bound removed, for the benchmark report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneStats {
    /// Every (candidate, kept item) pair a naive loop would score.
    pub pairs: u64,
    /// Pairs never looked at: no shared token among the candidate's rarest prefix.
    pub skipped_by_prefix: u64,
    pub pruned_by_length: u64,
    pub pruned_by_multiset: u64,
    /// Pairs that needed the LCS.
    pub lcs_computed: u64,
}

impl PruneStats {
    pub fn add(&mut self, o: &PruneStats) {
        self.pairs += o.pairs;
        self.skipped_by_prefix += o.skipped_by_prefix;
        self.pruned_by_length += o.pruned_by_length;
        self.pruned_by_multiset += o.pruned_by_multiset;
        self.lcs_computed += o.lcs_computed;
    }
}

/// The best match found for a candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub score: f64,
    /// The caller's id of the kept item.
    pub id: u64,
}

/// A tokenized text: token ids plus (token, count) sorted by token id.
#[derive(Debug, Clone)]
pub struct Tokens {
    ids: Vec<u32>,
    counts: Vec<(u32, u32)>,
}

impl Tokens {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Kept texts, searchable for near-duplicates. Insertion order is kept; ids are the
/// caller's.
#[derive(Debug, Default)]
pub struct RougeIndex {
    vocab: HashMap<String, u32>,
    items: Vec<Tokens>,
    ids: Vec<u64>,
    /// token id → (item index, count of the token in that item), item-ordered.
    postings: Vec<Vec<(u32, u32)>>,
}

impl RougeIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Token ids for `text`, adding new tokens to the vocabulary.
    pub fn tokens_mut(&mut self, text: &str) -> Tokens {
        let ids: Vec<u32> = tokenize(text)
            .into_iter()
            .map(|t| {
                let n = self.vocab.len() as u32;
                *self.vocab.entry(t).or_insert(n)
            })
            .collect();
        Self::with_counts(ids)
    }

    /// Token ids for `text` without changing the index: a token the index has never
    /// seen gets a private id that matches nothing kept.
    pub fn tokens(&self, text: &str) -> Tokens {
        let mut fresh: HashMap<String, u32> = HashMap::new();
        let base = self.vocab.len() as u32;
        let ids = tokenize(text)
            .into_iter()
            .map(|t| match self.vocab.get(&t) {
                Some(&id) => id,
                None => {
                    let n = base + fresh.len() as u32;
                    *fresh.entry(t).or_insert(n)
                }
            })
            .collect();
        Self::with_counts(ids)
    }

    fn with_counts(ids: Vec<u32>) -> Tokens {
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        let mut counts: Vec<(u32, u32)> = Vec::new();
        for t in sorted {
            match counts.last_mut() {
                Some((last, c)) if *last == t => *c += 1,
                _ => counts.push((t, 1)),
            }
        }
        Tokens { ids, counts }
    }

    pub fn insert(&mut self, id: u64, text: &str) {
        let toks = self.tokens_mut(text);
        self.insert_tokens(id, toks);
    }

    /// Insert pre-tokenized text; the tokens must come from this index's `tokens_mut`.
    pub fn insert_tokens(&mut self, id: u64, toks: Tokens) {
        let idx = self.items.len() as u32;
        for &(t, c) in &toks.counts {
            let t = t as usize;
            if self.postings.len() <= t {
                self.postings.resize_with(t + 1, Vec::new);
            }
            self.postings[t].push((idx, c));
        }
        self.items.push(toks);
        self.ids.push(id);
    }

    /// The exact highest ROUGE-L F1 against every kept item (a full scan; for
    /// reports, not for filtering). Ties go to the earliest item.
    pub fn max_similarity(&self, text: &str) -> Option<Match> {
        let cand = self.tokens(text);
        if cand.is_empty() {
            return self.ids.first().map(|&id| Match { score: 0.0, id });
        }
        self.scan(&cand, 0, &mut PruneStats::default())
    }

    /// The highest-scoring kept item among those that can reach `threshold` (exact for
    /// every item scoring ≥ threshold), or None when nothing can.
    pub fn best_match(
        &self,
        cand: &Tokens,
        threshold: f64,
        stats: &mut PruneStats,
    ) -> Option<Match> {
        self.best_match_in(cand, threshold, 0, stats)
    }

    /// [`best_match`](Self::best_match) restricted to items inserted at index `from`
    /// or later.
    pub fn best_match_in(
        &self,
        cand: &Tokens,
        threshold: f64,
        from: usize,
        stats: &mut PruneStats,
    ) -> Option<Match> {
        let pool = self.items.len().saturating_sub(from);
        stats.pairs += pool as u64;
        let m = cand.len();
        if m == 0 || pool == 0 {
            // An empty text scores 0 against everything.
            stats.skipped_by_prefix += pool as u64;
            return None;
        }
        let floor = threshold - BOUND_SLACK;
        if floor > 1.0 {
            // No pair scores above 1.
            stats.skipped_by_prefix += pool as u64;
            return None;
        }
        if floor <= 0.0 {
            // Every pair can reach the threshold: score them all.
            return self.scan(cand, from, stats);
        }
        // L ≥ θ·m/(2−θ) is needed; probing m − k + 1 of the candidate's token
        // occurrences (rarest first) finds every item with at least k in common.
        let k_min = (floor * m as f64 / (2.0 - floor)).ceil().max(1.0) as usize;
        if k_min > m {
            stats.skipped_by_prefix += pool as u64;
            return None;
        }
        let prefix_len = m - k_min + 1;
        let mut by_rarity: Vec<(usize, u32, u32)> = cand
            .counts
            .iter()
            .map(|&(t, c)| {
                let df = self.postings.get(t as usize).map_or(0, |p| p.len());
                (df, t, c)
            })
            .collect();
        by_rarity.sort_unstable();
        let mut probe: Vec<u32> = Vec::new();
        let mut covered = 0usize;
        for &(_, t, c) in &by_rarity {
            if covered >= prefix_len {
                break;
            }
            probe.push(t);
            covered += c as usize;
        }
        // Items sharing a probe token, each once, in insertion order.
        let mut hits: Vec<u32> = Vec::new();
        for t in probe {
            if let Some(p) = self.postings.get(t as usize) {
                let start = p.partition_point(|&(i, _)| (i as usize) < from);
                hits.extend(p[start..].iter().map(|&(i, _)| i));
            }
        }
        hits.sort_unstable();
        hits.dedup();
        stats.skipped_by_prefix += (pool - hits.len()) as u64;

        let masks = MatchMasks::new(&cand.ids);
        let mut best: Option<Match> = None;
        for i in hits {
            let item = &self.items[i as usize];
            let n = item.len();
            if f_measure(m.min(n), m, n) < floor {
                stats.pruned_by_length += 1;
                continue;
            }
            let overlap = multiset_overlap(&cand.counts, &item.counts);
            if f_measure(overlap, m, n) < floor {
                stats.pruned_by_multiset += 1;
                continue;
            }
            stats.lcs_computed += 1;
            let score = f_measure(masks.lcs_with(&item.ids), m, n);
            if best.is_none_or(|b| score > b.score) {
                best = Some(Match {
                    score,
                    id: self.ids[i as usize],
                });
            }
        }
        best
    }

    /// Every kept item scoring at least `threshold` (exactly), in insertion order.
    pub fn matches_above(&self, cand: &Tokens, threshold: f64) -> Vec<Match> {
        let mut out = Vec::new();
        let m = cand.len();
        if m == 0 || threshold > 1.0 {
            return out;
        }
        let masks = MatchMasks::new(&cand.ids);
        let floor = threshold - BOUND_SLACK;
        let mut hits: Vec<u32> = cand
            .counts
            .iter()
            .filter_map(|&(t, _)| self.postings.get(t as usize))
            .flat_map(|p| p.iter().map(|&(i, _)| i))
            .collect();
        hits.sort_unstable();
        hits.dedup();
        for i in hits {
            let item = &self.items[i as usize];
            let n = item.len();
            if f_measure(multiset_overlap(&cand.counts, &item.counts), m, n) < floor {
                continue;
            }
            let score = f_measure(masks.lcs_with(&item.ids), m, n);
            if score >= threshold {
                out.push(Match {
                    score,
                    id: self.ids[i as usize],
                });
            }
        }
        out
    }

    fn scan(&self, cand: &Tokens, from: usize, stats: &mut PruneStats) -> Option<Match> {
        let masks = MatchMasks::new(&cand.ids);
        let mut best: Option<Match> = None;
        for (i, item) in self.items.iter().enumerate().skip(from) {
            stats.lcs_computed += 1;
            let lcs = if item.is_empty() {
                0
            } else {
                masks.lcs_with(&item.ids)
            };
            let score = f_measure(lcs, cand.len(), item.len());
            if best.is_none_or(|b| score > b.score) {
                best = Some(Match {
                    score,
                    id: self.ids[i],
                });
            }
        }
        best
    }

    /// Whether `text` is a near-duplicate of a kept item under `rule`.
    pub fn is_near_duplicate(&self, text: &str, threshold: f64, rule: DropRule) -> Option<Match> {
        let cand = self.tokens(text);
        let mut stats = PruneStats::default();
        self.best_match(&cand, threshold, &mut stats)
            .filter(|m| rule.drops(m.score, threshold))
    }
}

/// Σ_t min(count_a(t), count_b(t)) over two count lists sorted by token.
fn multiset_overlap(a: &[(u32, u32)], b: &[(u32, u32)]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += a[i].1.min(b[j].1) as usize;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dp_lcs(a: &[u32], b: &[u32]) -> usize {
        let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                t[i][j] = if a[i - 1] == b[j - 1] {
                    t[i - 1][j - 1] + 1
                } else {
                    t[i - 1][j].max(t[i][j - 1])
                };
            }
        }
        t[a.len()][b.len()]
    }

    #[test]
    fn tokenizer_matches_rouge_score_rules() {
        assert_eq!(
            tokenize("Hello, World! It's 2024."),
            ["hello", "world", "it", "s", "2024"]
        );
        assert_eq!(tokenize("naïve café"), ["na", "ve", "caf"]);
        assert_eq!(tokenize("\u{212A}elvin"), ["kelvin"]);
        assert_eq!(tokenize("\u{130}stanbul"), ["i", "stanbul"]);
        assert!(tokenize("中文 —— ！").is_empty());
        assert!(tokenize("").is_empty());
    }

    #[test]
    fn tie_examples_from_the_reference_notes() {
        assert_eq!(f_measure(7, 10, 10), 0.7);
        assert_eq!(f_measure(7, 9, 11), 0.7000000000000001);
        assert_eq!(f_measure(21, 23, 37), 0.6999999999999998);
        assert_eq!(f_measure(0, 5, 5), 0.0);
    }

    #[test]
    fn bit_parallel_lcs_equals_dynamic_programming() {
        let mut x = 12345u64;
        let mut next = |k: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % k) as u32
        };
        for round in 0..400 {
            let la = (next(150) + 1) as usize;
            let lb = (next(150) + 1) as usize;
            let alpha = if round % 2 == 0 { 4 } else { 30 };
            let a: Vec<u32> = (0..la).map(|_| next(alpha)).collect();
            let b: Vec<u32> = (0..lb).map(|_| next(alpha)).collect();
            assert_eq!(lcs_len(&a, &b), dp_lcs(&a, &b), "{a:?} {b:?}");
        }
    }

    #[test]
    fn index_finds_exactly_what_a_full_scan_finds() {
        let texts = [
            "Give three tips for staying healthy.",
            "Give three tips for staying healthy and happy.",
            "What are the three primary colors?",
            "Describe the structure of an atom.",
            "How can we reduce air pollution?",
            "Give me three tips to stay healthy.",
            "Describe the structure of a molecule.",
        ];
        let mut idx = RougeIndex::new();
        for (i, t) in texts.iter().enumerate() {
            let cand = idx.tokens(t);
            let mut st = PruneStats::default();
            let found = idx.best_match(&cand, 0.7, &mut st);
            let full = idx.max_similarity(t).filter(|m| m.score >= 0.7 - 1e-9);
            assert_eq!(
                found.map(|m| (m.id, m.score)),
                full.map(|m| (m.id, m.score)),
                "{t}"
            );
            idx.insert(i as u64, t);
        }
        assert!(idx
            .is_near_duplicate(
                "Give three tips for staying healthy!",
                0.7,
                DropRule::AtLeast
            )
            .is_some());
        assert!(idx
            .is_near_duplicate("Write a poem about the ocean.", 0.7, DropRule::AtLeast)
            .is_none());
    }
}
