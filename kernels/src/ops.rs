//! The small per-row operations of a transformer forward pass: RMSNorm, RoPE,
//! activation functions and attention over one sequence's KV cache.
//!
//! Reductions use eight independent partial sums combined in a fixed tree: the
//! compiler vectorises them (lanes are independent), and the result is the same on
//! every machine and for every batch, since each row is computed on its own.

/// Σ a_i·b_i with 8 fixed partial sums.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for i in 0..chunks {
        for l in 0..8 {
            acc[l] += a[i * 8 + l] * b[i * 8 + l];
        }
    }
    for i in chunks * 8..n {
        acc[i % 8] += a[i] * b[i];
    }
    tree8(&acc)
}

#[inline]
fn tree8(acc: &[f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

#[inline]
fn sum_squares(x: &[f32]) -> f32 {
    dot(x, x)
}

/// y = x / sqrt(mean(x²) + eps) · w, in place.
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    let ms = sum_squares(x) / x.len() as f32;
    let scale = 1.0 / (ms + eps).sqrt();
    for (v, g) in x.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (x[2i], x[2i+1]): llama.cpp's LLAMA_ROPE_TYPE_NORM (llama).
    Interleaved,
    /// Halves (x[i], x[i+d/2]): LLAMA_ROPE_TYPE_NEOX (qwen2, gemma3).
    Halves,
}

/// Precomputed inverse frequencies for one head size and base.
#[derive(Debug, Clone)]
pub struct Rope {
    pub style: RopeStyle,
    pub dims: usize,
    inv_freq: Vec<f32>,
}

impl Rope {
    /// `dims` rotated dimensions (≤ head size), `base` the frequency base.
    pub fn new(style: RopeStyle, dims: usize, base: f32) -> Self {
        let inv_freq = (0..dims / 2)
            .map(|i| 1.0 / base.powf(2.0 * i as f32 / dims as f32))
            .collect();
        Rope {
            style,
            dims,
            inv_freq,
        }
    }

    /// Rotate every head of `x` (heads × head_dim) for position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let half = self.dims / 2;
        for head in x.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let theta = pos as f32 * self.inv_freq[i];
                let (sin, cos) = theta.sin_cos();
                let (a, b) = match self.style {
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                    RopeStyle::Halves => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos - x1 * sin;
                head[b] = x0 * sin + x1 * cos;
            }
        }
    }
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU, tanh approximation (gelu_pytorch_tanh, as Gemma uses).
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// Attention of one query row over positions `start..=end` of one sequence's cache.
///
/// `q`: n_head × head_dim; `k_cache`/`v_cache`: positions × (n_head_kv × head_dim);
/// `out`: n_head × head_dim; `scores`: scratch of at least end+1.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    start: usize,
    end: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let kv_stride = n_head_kv * head_dim;
    let group = n_head / n_head_kv;
    let len = end + 1 - start;
    scores.resize(len, 0.0);
    for h in 0..n_head {
        let kvh = h / group;
        let qh = &q[h * head_dim..(h + 1) * head_dim];
        let mut max = f32::NEG_INFINITY;
        for (i, t) in (start..=end).enumerate() {
            let k = &k_cache[t * kv_stride + kvh * head_dim..t * kv_stride + (kvh + 1) * head_dim];
            let s = dot(qh, k) * scale;
            scores[i] = s;
            max = max.max(s);
        }
        let mut sum = 0f32;
        for s in scores[..len].iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        let inv = 1.0 / sum;
        let o = &mut out[h * head_dim..(h + 1) * head_dim];
        o.iter_mut().for_each(|v| *v = 0.0);
        for (i, t) in (start..=end).enumerate() {
            let p = scores[i] * inv;
            let v = &v_cache[t * kv_stride + kvh * head_dim..t * kv_stride + (kvh + 1) * head_dim];
            for (oo, vv) in o.iter_mut().zip(v) {
                *oo += p * vv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_weights() {
        let mut x = vec![3.0f32, 4.0];
        rms_norm(&mut x, &[1.0, 1.0], 0.0);
        let r = (12.5f32).sqrt();
        assert!((x[0] - 3.0 / r).abs() < 1e-6 && (x[1] - 4.0 / r).abs() < 1e-6);
    }

    #[test]
    fn rope_at_zero_is_identity_and_preserves_norm() {
        for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
            let rope = Rope::new(style, 8, 10000.0);
            let x0: Vec<f32> = (0..16).map(|i| i as f32 * 0.1 - 0.5).collect();
            let mut x = x0.clone();
            rope.apply(&mut x, 8, 0);
            assert_eq!(x, x0);
            rope.apply(&mut x, 8, 17);
            let n0: f32 = x0.iter().map(|v| v * v).sum();
            let n1: f32 = x.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-4);
        }
    }

    #[test]
    fn attention_over_one_position_returns_its_value() {
        let q = vec![1.0f32; 4];
        let k = vec![0.5f32; 4];
        let v = vec![2.0f32, 3.0, 4.0, 5.0];
        let mut out = vec![0f32; 4];
        let mut s = Vec::new();
        attend(&q, &k, &v, 2, 1, 2, 0, 0, 1.0, &mut s, &mut out);
        assert_eq!(out, vec![2.0, 3.0, 2.0, 3.0]);
    }
}
