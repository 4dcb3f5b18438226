//! MinHash-LSH near-duplicate detection (Broder 1997; banding as in datasketch's
//! `MinHashLSH`), for datasets too large for exact ROUGE-L.
//!
//! - Shingles: word n-grams of the normalised text (see [`super::exact::normalize`]);
//!   a text shorter than n words is one shingle.
//! - `num_perm` hash functions h_i(x) = (a_i·x + b_i) mod (2^61 − 1), with a_i, b_i
//!   drawn from Philox by (seed, i): the same signatures on every run and machine.
//! - Bands × rows chosen for the Jaccard threshold by minimising the weighted integrated
//!   false positive and false negative probabilities (datasketch's `_optimal_param`).
//!   Dedup weighs a missed duplicate 9× a spurious candidate (14 bands × 9 rows at 128
//!   permutations, θ = 0.8), because every candidate is then verified by its true
//!   Jaccard similarity on the stored shingles, which removes the spurious ones.
//! - Memory per kept item: one (u64 band key → u32 item) entry per band, about
//!   `bands × 24` bytes, plus 4 bytes per distinct shingle when verifying (≈ 420 B for
//!   a 15-word instruction at the defaults).

use std::collections::HashMap;
use teacher_kernels::philox;

const MERSENNE_61: u64 = (1 << 61) - 1;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MinHashParams {
    pub threshold: f64,
    /// Weight of false negatives in the band choice (false positives get 1 − this).
    pub fn_weight: f64,
    pub num_perm: usize,
    pub ngram: usize,
    pub bands: usize,
    pub rows: usize,
    pub seed: u64,
}

impl MinHashParams {
    pub fn new(threshold: f64, num_perm: usize, ngram: usize, seed: u64, fn_weight: f64) -> Self {
        let (bands, rows) = optimal_bands(threshold, num_perm, fn_weight);
        MinHashParams {
            threshold,
            fn_weight,
            num_perm,
            ngram: ngram.max(1),
            bands,
            rows,
            seed,
        }
    }
}

/// The probability that two texts of Jaccard `s` share at least one band.
pub fn collision_probability(s: f64, bands: usize, rows: usize) -> f64 {
    1.0 - (1.0 - s.powi(rows as i32)).powi(bands as i32)
}

fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    // Simpson's rule; the integrands are smooth polynomials in s.
    const N: usize = 256;
    let h = (b - a) / N as f64;
    let mut sum = f(a) + f(b);
    for i in 1..N {
        let x = a + i as f64 * h;
        sum += if i % 2 == 1 { 4.0 } else { 2.0 } * f(x);
    }
    sum * h / 3.0
}

/// (bands, rows) with bands·rows ≤ num_perm minimising (1 − w)·false positives below
/// the threshold plus w·false negatives above it.
pub fn optimal_bands(threshold: f64, num_perm: usize, fn_weight: f64) -> (usize, usize) {
    let mut best = (1, num_perm.max(1));
    let mut best_err = f64::INFINITY;
    for b in 1..=num_perm {
        for r in 1..=(num_perm / b) {
            let fp = integrate(|s| collision_probability(s, b, r), 0.0, threshold);
            let fneg = integrate(|s| 1.0 - collision_probability(s, b, r), threshold, 1.0);
            let err = (1.0 - fn_weight) * fp + fn_weight * fneg;
            if err < best_err {
                best_err = err;
                best = (b, r);
            }
        }
    }
    best
}

/// FNV-1a 64 over bytes: fixed, fast, good enough before the permutation mixing.
fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes of the word n-grams of `text`, sorted and unique.
pub fn shingles(text: &str, n: usize) -> Vec<u64> {
    let norm = super::exact::normalize(text);
    let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
    let mut out = Vec::new();
    if words.is_empty() {
        return out;
    }
    let n = n.max(1);
    if words.len() <= n {
        out.push(hash_words(&words));
    } else {
        for w in words.windows(n) {
            out.push(hash_words(w));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn hash_words(words: &[&str]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325;
    for w in words {
        h = fnv1a(w.as_bytes(), h);
        h = fnv1a(b"\x1f", h);
    }
    splitmix64(h) % MERSENNE_61
}

#[inline]
fn mod_mersenne(x: u128) -> u64 {
    // x < 2^122 here; fold twice.
    let lo = (x as u64) & MERSENNE_61;
    let hi = (x >> 61) as u64;
    let s = lo + (hi & MERSENNE_61) + (hi >> 61);
    let s = (s & MERSENNE_61) + (s >> 61);
    if s >= MERSENNE_61 {
        s - MERSENNE_61
    } else {
        s
    }
}

/// The `num_perm` hash functions.
#[derive(Debug, Clone)]
pub struct Hasher {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl Hasher {
    pub fn new(p: &MinHashParams) -> Self {
        let draw = |i: u64| philox::random_u64(p.seed, 0x6d69_6e68_6173_6800, i) % MERSENNE_61;
        let a = (0..p.num_perm as u64).map(|i| draw(2 * i).max(1)).collect();
        let b = (0..p.num_perm as u64).map(|i| draw(2 * i + 1)).collect();
        Hasher { a, b }
    }

    /// The MinHash signature of a shingle set (all u64::MAX for an empty text).
    pub fn signature(&self, shingles: &[u64]) -> Vec<u64> {
        let mut sig = vec![u64::MAX; self.a.len()];
        for &s in shingles {
            for ((m, &a), &b) in sig.iter_mut().zip(&self.a).zip(&self.b) {
                let h = mod_mersenne(a as u128 * s as u128 + b as u128);
                if h < *m {
                    *m = h;
                }
            }
        }
        sig
    }
}

/// The LSH index over kept items.
#[derive(Debug)]
pub struct MinHashIndex {
    pub params: MinHashParams,
    hasher: Hasher,
    bands: Vec<HashMap<u64, u32>>,
    /// Kept items' shingles (low 32 bits, sorted), only when verifying by true Jaccard.
    shingles: Option<Vec<Vec<u32>>>,
    ids: Vec<u64>,
}

/// A duplicate found by the index: the kept item's id and, when verified, the true
/// Jaccard similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinHashMatch {
    pub id: u64,
    pub jaccard: Option<f64>,
}

impl MinHashIndex {
    pub fn new(params: MinHashParams, verify: bool) -> Self {
        MinHashIndex {
            hasher: Hasher::new(&params),
            bands: (0..params.bands).map(|_| HashMap::new()).collect(),
            shingles: verify.then(Vec::new),
            ids: Vec::new(),
            params,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Shingles and signature of a text (pure; safe to compute in parallel).
    pub fn sketch(&self, text: &str) -> Sketch {
        let shingles = shingles(text, self.params.ngram);
        let sig = self.hasher.signature(&shingles);
        let keys = sig
            .chunks(self.params.rows)
            .take(self.params.bands)
            .enumerate()
            .map(|(band, rows)| {
                let mut h = splitmix64(band as u64);
                for &v in rows {
                    h = splitmix64(h ^ v);
                }
                h
            })
            .collect();
        Sketch { shingles, keys }
    }

    /// The kept item this sketch duplicates, if any.
    pub fn find(&self, sk: &Sketch) -> Option<MinHashMatch> {
        if sk.shingles.is_empty() {
            return None;
        }
        match &self.shingles {
            None => sk
                .keys
                .iter()
                .zip(&self.bands)
                .find_map(|(k, band)| band.get(k))
                .map(|&i| MinHashMatch {
                    id: self.ids[i as usize],
                    jaccard: None,
                }),
            Some(kept) => {
                let mut cands: Vec<u32> = sk
                    .keys
                    .iter()
                    .zip(&self.bands)
                    .filter_map(|(k, band)| band.get(k).copied())
                    .collect();
                cands.sort_unstable();
                cands.dedup();
                let mut best: Option<MinHashMatch> = None;
                let mine = short_shingles(&sk.shingles);
                for i in cands {
                    let j = jaccard(&mine, &kept[i as usize]);
                    if j >= self.params.threshold
                        && best.is_none_or(|b| j > b.jaccard.unwrap_or(0.0))
                    {
                        best = Some(MinHashMatch {
                            id: self.ids[i as usize],
                            jaccard: Some(j),
                        });
                    }
                }
                best
            }
        }
    }

    pub fn insert(&mut self, id: u64, sk: Sketch) {
        let idx = self.ids.len() as u32;
        for (k, band) in sk.keys.iter().zip(&mut self.bands) {
            // The first item in a bucket represents it.
            band.entry(*k).or_insert(idx);
        }
        if let Some(kept) = &mut self.shingles {
            kept.push(short_shingles(&sk.shingles));
        }
        self.ids.push(id);
    }
}

/// A text's shingles and band keys.
#[derive(Debug, Clone)]
pub struct Sketch {
    pub shingles: Vec<u64>,
    keys: Vec<u64>,
}

/// Shingle hashes cut to 32 bits for storage (a chance collision among a text's
/// dozens of shingles is ~1e-8), sorted and unique.
fn short_shingles(s: &[u64]) -> Vec<u32> {
    let mut v: Vec<u32> = s.iter().map(|&h| h as u32).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Jaccard similarity of two sorted unique sets.
pub fn jaccard<T: Ord>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_choice_follows_the_threshold() {
        let (b, r) = optimal_bands(0.8, 128, 0.5);
        assert!(b * r <= 128);
        // Steep around the threshold: unlikely to collide at 0.5, likely at 0.95.
        assert!(collision_probability(0.5, b, r) < 0.1, "{b}x{r}");
        assert!(collision_probability(0.95, b, r) > 0.99, "{b}x{r}");
        let (b2, r2) = optimal_bands(0.5, 128, 0.5);
        assert!(r2 < r && b2 > b);
        // Weighing misses more buys recall at the threshold.
        let (b3, r3) = optimal_bands(0.8, 128, 0.9);
        assert!(collision_probability(0.8, b3, r3) > collision_probability(0.8, b, r));
    }

    #[test]
    fn signatures_estimate_jaccard() {
        let p = MinHashParams::new(0.8, 256, 1, 7, 0.5);
        let h = Hasher::new(&p);
        let a: Vec<u64> = (0..100).map(|x| x * 7919 % 1_000_003).collect();
        let b: Vec<u64> = (20..120).map(|x| x * 7919 % 1_000_003).collect(); // J = 80/120
        let (sa, sb) = (h.signature(&a), h.signature(&b));
        let est = sa.iter().zip(&sb).filter(|(x, y)| x == y).count() as f64 / 256.0;
        assert!((est - 80.0 / 120.0).abs() < 0.1, "{est}");
    }

    #[test]
    fn index_finds_near_duplicates_and_not_strangers() {
        let mut idx = MinHashIndex::new(MinHashParams::new(0.8, 128, 1, 1, 0.9), true);
        let kept = "write a short story about a robot who learns to paint with watercolors in a small village";
        let sk = idx.sketch(kept);
        assert!(idx.find(&sk).is_none());
        idx.insert(10, sk);
        let near = idx.sketch("Write a short story about a robot who learns to paint with watercolors in a small village.");
        assert_eq!(idx.find(&near).map(|m| m.id), Some(10));
        let far = idx.sketch("Explain the difference between mitosis and meiosis in plain words");
        assert!(idx.find(&far).is_none());
    }
}
