//! The x86 build of `attend_heads` for head widths that are a multiple of 8: every
//! number is computed by the reference's operations in the reference's order (so the
//! bits are the same), but with many of them in flight at once.
//!
//! The reference computes one score at a time: a dot product whose eight lanes form a
//! chain of dependent adds (d/8 long), then a horizontal tree — latency-bound, about a
//! hundred cycles per score at d = 256. Here eight positions' chains run side by side
//! and their trees are done in registers, eight scores per vector. The weighted value
//! sum keeps up to four heads' accumulators in registers across all positions instead
//! of loading and storing the output for every position (sixteen numbers a register
//! with AVX-512, eight with AVX2).

use super::{dot8_with, kv_row, softmax_heads, Head, KvSlice};
use crate::trees_x86::trees8;
use std::arch::x86_64::*;

/// Positions per block of scores.
const P: usize = 8;
/// Heads whose value sums share one pass over the values.
const HEADS: usize = 4;
/// How many positions ahead the key and value rows are prefetched: a head's rows are a
/// strided stream (one head's slice of each position) that the hardware prefetchers
/// follow too late when the cache is out of the L3 (a pipeline's decode step). 64
/// measured best of 8–128 (`attention_step` bench: 16 → +60 %, 64 → +78 %).
const AHEAD: usize = 64;

/// Ask for the cache lines of `n` numbers at float offset `at` (nothing is read; the
/// callers stay within the positions they attend to).
#[inline(always)]
unsafe fn prefetch(c: KvSlice, at: usize, n: usize) {
    let (p, bytes) = match c {
        KvSlice::F32(x) => (x.as_ptr().wrapping_add(at) as *const i8, n * 4),
        KvSlice::F16(x) => (x.as_ptr().wrapping_add(at) as *const i8, n * 2),
    };
    // One request a line (teacher's cache starts each head's slice on a line).
    let mut b = 0;
    while b < bytes {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(b));
        b += 64;
    }
}

/// `attend_heads` with AVX2 and F16C.
///
/// SAFETY (caller): the CPU has AVX2 and F16C; `head.head_dim` is a multiple of 8.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn attend_heads(
    q: &[f32],
    head: &Head,
    start: usize,
    end: usize,
    scale: f32,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    body::<false>(q, head, start, end, scale, scratch, out)
}

/// `attend_heads` with AVX-512 for the value sums (sixteen numbers a register). (The
/// scores stay 256-bit: two positions a 512-bit register measured no faster.)
///
/// SAFETY (caller): the CPU has AVX2, F16C and AVX-512 F; `head.head_dim` is a multiple
/// of 8.
#[target_feature(enable = "avx2,f16c,avx512f")]
pub(super) unsafe fn attend_heads_512(
    q: &[f32],
    head: &Head,
    start: usize,
    end: usize,
    scale: f32,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    body::<true>(q, head, start, end, scale, scratch, out)
}

#[inline(always)]
unsafe fn body<const WIDE: bool>(
    q: &[f32],
    head: &Head,
    start: usize,
    end: usize,
    scale: f32,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let (d, stride) = (head.head_dim, head.kv_stride);
    debug_assert!(d.is_multiple_of(8));
    let off = head.kv_head * d;
    let n = q.len() / d;
    let len = end + 1 - start;
    // Every row read below lies within these bounds (the reference slices each row).
    let last = end * stride + off + d;
    assert!(
        last <= kv_len(head.k) && last <= kv_len(head.v) && out.len() >= n * d,
        "attention rows outside the cache"
    );
    // Scores of every head, each head's 1/Σ, then eight widened K rows.
    scratch.resize(n * len + n + P * d, 0.0);
    let (scores, rest) = scratch.split_at_mut(n * len);
    let (inv, kbuf) = rest.split_at_mut(n);

    let mut i = 0;
    while i + P <= len {
        if i + AHEAD + P <= len {
            for p in 0..P {
                prefetch(head.k, (start + i + AHEAD + p) * stride + off, d);
            }
        }
        let rows: [*const f32; P] = std::array::from_fn(|p| {
            row(
                head.k,
                (start + i + p) * stride + off,
                d,
                kbuf.as_mut_ptr().add(p * d),
            )
        });
        for g in 0..n {
            let qg = q.as_ptr().add(g * d);
            let mut acc = [_mm256_setzero_ps(); P];
            let mut c = 0;
            while c < d {
                let qv = _mm256_loadu_ps(qg.add(c));
                for p in 0..P {
                    let k = _mm256_loadu_ps(rows[p].add(c));
                    acc[p] = _mm256_add_ps(acc[p], _mm256_mul_ps(qv, k));
                }
                c += 8;
            }
            let s = _mm256_mul_ps(trees8(&acc), _mm256_set1_ps(scale));
            _mm256_storeu_ps(scores.as_mut_ptr().add(g * len + i), s);
        }
        i += P;
    }
    // The last positions one at a time, as the reference does them all.
    for i in i..len {
        let k = kv_row::<true>(head.k, (start + i) * stride + off, d, kbuf);
        for g in 0..n {
            scores[g * len + i] = dot8_with::<true>(&q[g * d..(g + 1) * d], k) * scale;
        }
    }

    softmax_heads(scores, len, head.softcap, inv);
    // The weights the reference applies: numerator × 1/Σ.
    for (s, inv) in scores.chunks_exact_mut(len).zip(inv.iter()) {
        s.iter_mut().for_each(|x| *x *= inv);
    }

    let probs = scores.as_ptr();
    let mut g0 = 0;
    while g0 < n {
        let heads = (n - g0).min(HEADS);
        let mut c = 0;
        while c < d {
            let wide = d - c >= 16;
            let o = out.as_mut_ptr().add(g0 * d + c);
            let at = off + c;
            let pr = probs.add(g0 * len);
            macro_rules! go {
                ($g:literal) => {
                    if wide {
                        values::<Y, $g, 2>(head.v, pr, len, start, stride, at, o, d)
                    } else {
                        values::<Y, $g, 1>(head.v, pr, len, start, stride, at, o, d)
                    }
                };
            }
            // With AVX-512: 64, 32 or 16 numbers a pass, whichever fits.
            let step = if WIDE && d - c >= 16 {
                let w = if d - c >= 64 {
                    4
                } else if d - c >= 32 {
                    2
                } else {
                    1
                };
                macro_rules! wide {
                    ($g:literal) => {
                        match w {
                            4 => values::<Z, $g, 4>(head.v, pr, len, start, stride, at, o, d),
                            2 => values::<Z, $g, 2>(head.v, pr, len, start, stride, at, o, d),
                            _ => values::<Z, $g, 1>(head.v, pr, len, start, stride, at, o, d),
                        }
                    };
                }
                match heads {
                    1 => wide!(1),
                    2 => wide!(2),
                    3 => wide!(3),
                    _ => wide!(4),
                }
                16 * w
            } else {
                match heads {
                    1 => go!(1),
                    2 => go!(2),
                    3 => go!(3),
                    _ => go!(4),
                }
                if wide {
                    16
                } else {
                    8
                }
            };
            c += step;
        }
        g0 += heads;
    }
}

fn kv_len(c: KvSlice) -> usize {
    match c {
        KvSlice::F32(x) => x.len(),
        KvSlice::F16(x) => x.len(),
    }
}

/// A cache row of `d` numbers at float offset `at` as f32: the row itself, or its f16
/// bits widened (exactly) into `buf`.
///
/// SAFETY (caller): `at + d` is within the cache; `buf` holds `d` floats.
#[inline(always)]
unsafe fn row(c: KvSlice, at: usize, d: usize, buf: *mut f32) -> *const f32 {
    match c {
        KvSlice::F32(x) => x.as_ptr().add(at),
        KvSlice::F16(x) => {
            let src = x.as_ptr().add(at);
            let mut j = 0;
            while j < d {
                let h = _mm_loadu_si128(src.add(j) as *const __m128i);
                _mm256_storeu_ps(buf.add(j), _mm256_cvtph_ps(h));
                j += 8;
            }
            buf
        }
    }
}

/// Eight numbers of a cache at float offset `at`, as f32.
///
/// SAFETY (caller): `at + 8` is within the cache.
#[inline(always)]
unsafe fn load8(c: KvSlice, at: usize) -> __m256 {
    match c {
        KvSlice::F32(x) => _mm256_loadu_ps(x.as_ptr().add(at)),
        KvSlice::F16(x) => _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(at) as *const __m128i)),
    }
}

/// A register of f32 lanes the value sums run in: 256-bit (`Y`) or 512-bit (`Z`).
trait Lanes: Copy {
    /// Lanes per register.
    const N: usize;
    unsafe fn zero() -> Self;
    /// N numbers of a cache at float offset `at`, as f32 (SAFETY: within the cache).
    unsafe fn load(c: KvSlice, at: usize) -> Self;
    unsafe fn splat(x: f32) -> Self;
    /// self + p·v, rounded twice like the reference's `o += p * v`.
    unsafe fn add_product(self, p: Self, v: Self) -> Self;
    unsafe fn store(self, to: *mut f32);
}

#[derive(Clone, Copy)]
struct Y(__m256);
#[derive(Clone, Copy)]
struct Z(__m512);

impl Lanes for Y {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Y(_mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn load(c: KvSlice, at: usize) -> Self {
        Y(load8(c, at))
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Y(_mm256_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn add_product(self, p: Self, v: Self) -> Self {
        Y(_mm256_add_ps(self.0, _mm256_mul_ps(p.0, v.0)))
    }
    #[inline(always)]
    unsafe fn store(self, to: *mut f32) {
        _mm256_storeu_ps(to, self.0)
    }
}

/// (Only used from `attend_heads_512`, whose build has AVX-512 F.)
impl Lanes for Z {
    const N: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Z(_mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn load(c: KvSlice, at: usize) -> Self {
        Z(match c {
            KvSlice::F32(x) => _mm512_loadu_ps(x.as_ptr().add(at)),
            KvSlice::F16(x) => {
                _mm512_cvtph_ps(_mm256_loadu_si256(x.as_ptr().add(at) as *const __m256i))
            }
        })
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Z(_mm512_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn add_product(self, p: Self, v: Self) -> Self {
        Z(_mm512_add_ps(self.0, _mm512_mul_ps(p.0, v.0)))
    }
    #[inline(always)]
    unsafe fn store(self, to: *mut f32) {
        _mm512_storeu_ps(to, self.0)
    }
}

/// Σ_i p_g[i]·v_i over all positions for G heads and W registers of output numbers
/// starting at float offset `at` of each value row: o += p·v per position in order, as
/// the reference, with the sums held in registers.
///
/// SAFETY (caller): every row (start + i)·stride + at + W·L::N is within the cache;
/// `probs` holds G rows of `len`; `out` has G rows of stride `d` with W·L::N numbers
/// each; the CPU runs L's registers.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn values<L: Lanes, const G: usize, const W: usize>(
    v: KvSlice,
    probs: *const f32,
    len: usize,
    start: usize,
    stride: usize,
    at: usize,
    out: *mut f32,
    d: usize,
) {
    let mut acc = [[L::zero(); W]; G];
    for i in 0..len {
        let base = (start + i) * stride + at;
        if i + AHEAD < len {
            prefetch(v, base + AHEAD * stride, W * L::N);
        }
        let vv: [L; W] = std::array::from_fn(|w| L::load(v, base + L::N * w));
        for g in 0..G {
            let p = L::splat(*probs.add(g * len + i));
            for w in 0..W {
                acc[g][w] = acc[g][w].add_product(p, vv[w]);
            }
        }
    }
    for g in 0..G {
        for w in 0..W {
            acc[g][w].store(out.add(g * d + L::N * w));
        }
    }
}
