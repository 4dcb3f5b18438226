//! The x86 build of `attend_heads` for head widths that are a multiple of 8: every
//! number is computed by the reference's operations in the reference's order (so the
//! bits are the same), but with many of them in flight at once.
//!
//! The reference computes one score at a time: a dot product whose eight lanes form a
//! chain of dependent adds (d/8 long), then a horizontal tree — latency-bound, about a
//! hundred cycles per score at d = 256. Here eight positions' chains run side by side
//! and their trees are done in registers, eight scores per vector; with up to four
//! query heads per KV head, each K number is widened from f16 once, in a register, for
//! all of them (more heads share a widened block in memory). The weighted value
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
/// How many positions ahead the key and value rows are prefetched when the cache is out
/// of the L3 (a pipeline's decode step). 64 measured best of 8–128 when teacher's cache
/// interleaved the heads of a position (a strided stream the hardware prefetchers
/// followed too late: `attention_step` bench 16 → +60 %, 64 → +78 %). Since the cache
/// keeps each head's positions together, the stream is sequential: the prefetches still
/// gain with Gemma 3's 256-wide heads and are neither gain nor loss with 64-wide ones
/// (BENCHMARKS.md, "The KV cache head by head").
const AHEAD: usize = 64;

/// Ask for the cache lines of `bytes` bytes at `p`, into the L1 (`_MM_HINT_T0`) or only
/// the L2 (`_MM_HINT_T1`); nothing is read, and the callers stay within the positions
/// they attend to.
#[inline(always)]
unsafe fn prefetch_bytes<const HINT: i32, T>(p: *const T, bytes: usize) {
    let p = p as *const i8;
    // One request a line (teacher's cache starts each head's slice on a line).
    let mut b = 0;
    while b < bytes {
        _mm_prefetch::<HINT>(p.wrapping_add(b));
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
        last <= head.k.len() && last <= head.v.len() && out.len() >= n * d,
        "attention rows outside the cache"
    );
    // Scores of every head, each head's 1/Σ, then eight widened K rows.
    scratch.resize(n * len + n + P * d, 0.0);
    let (scores, rest) = scratch.split_at_mut(n * len);
    let (inv, kbuf) = rest.split_at_mut(n);

    // Whole blocks of eight positions: up to four heads with the K rows widened in
    // registers, more through eight widened rows shared by all heads.
    let (qp, sp) = (q.as_ptr(), scores.as_mut_ptr());
    let blocks = Blocks {
        d,
        stride,
        off,
        start,
        len,
        scale,
        v: match head.v {
            KvSlice::F32(x) => (x.as_ptr() as *const u8, 4),
            KvSlice::F16(x) => (x.as_ptr() as *const u8, 2),
            KvSlice::Q8 { q, .. } => (q.as_ptr() as *const u8, 1),
        },
    };
    let i = match (n, head.k) {
        (1..=4, KvSlice::F16(k)) => blocks.in_registers(n, k.as_ptr(), qp, sp),
        (1..=4, KvSlice::F32(k)) => blocks.in_registers(n, k.as_ptr(), qp, sp),
        (1..=4, KvSlice::Q8 { q, d }) => blocks.in_registers(n, Q8At::of(q, d), qp, sp),
        _ => blocks.widened(n, head.k, qp, sp, kbuf.as_mut_ptr()),
    };
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

/// Where the score blocks of one call read and write.
struct Blocks {
    d: usize,
    stride: usize,
    off: usize,
    start: usize,
    len: usize,
    scale: f32,
    /// The V cache's first byte and its bytes per number.
    v: (*const u8, usize),
}

impl Blocks {
    /// The K row of position i (counted from `start`) at `k`.
    #[inline(always)]
    unsafe fn row<E: Elem>(&self, k: E, i: usize) -> E {
        k.ahead((self.start + i) * self.stride + self.off)
    }

    /// Head h's scores of the block at position i: each position's lane sums reduced
    /// by the fixed tree, times the scale.
    #[inline(always)]
    unsafe fn store_scores(&self, sums: &[__m256; P], s: *mut f32, h: usize, i: usize) {
        let v = _mm256_mul_ps(trees8(sums), _mm256_set1_ps(self.scale));
        _mm256_storeu_ps(s.add(h * self.len + i), v);
    }

    /// Ask for the K rows of the block at i + AHEAD, where it is within the call.
    #[inline(always)]
    unsafe fn prefetch<E: Elem>(&self, k: E, i: usize) {
        if i + AHEAD + P <= self.len {
            let (v, vb) = self.v;
            for p in 0..P {
                self.row(k, i + AHEAD + p).prefetch::<_MM_HINT_T0>(self.d);
                // The V rows too, into the L2, for the value sums after the scores.
                let at = (self.start + i + AHEAD + p) * self.stride + self.off;
                prefetch_bytes::<_MM_HINT_T1, _>(v.add(at * vb), self.d * vb);
            }
        }
    }

    /// Every whole block's scores for n ≤ 4 heads, each K number widened once in a
    /// register and used by every head; returns the positions done.
    #[inline(always)]
    unsafe fn in_registers<E: Elem>(&self, n: usize, k: E, q: *const f32, s: *mut f32) -> usize {
        // Heads × positions at a time: with the heads' query registers, the K
        // register and a product, at most fifteen of the sixteen registers (three heads
        // × four positions spilled a sum).
        match n {
            1 => self.blocks_of::<E, 1, 8>(k, q, s),
            2 => self.blocks_of::<E, 2, 4>(k, q, s),
            3 => self.blocks_of::<E, 3, 2>(k, q, s),
            _ => self.blocks_of::<E, 4, 2>(k, q, s),
        }
    }

    /// `in_registers` for H heads, Q positions at a time (Q divides P).
    #[inline(always)]
    unsafe fn blocks_of<E: Elem, const H: usize, const Q: usize>(
        &self,
        k: E,
        q: *const f32,
        s: *mut f32,
    ) -> usize {
        let d = self.d;
        let mut i = 0;
        while i + P <= self.len {
            self.prefetch(k, i);
            // Each head's eight positions' lane sums, then their trees.
            let mut block = [[_mm256_setzero_ps(); P]; H];
            for p0 in (0..P).step_by(Q) {
                let rows: [E; Q] = std::array::from_fn(|p| self.row(k, i + p0 + p));
                let mut acc = [[_mm256_setzero_ps(); Q]; H];
                let mut c = 0;
                while c < d {
                    for p in 0..Q {
                        let kv = rows[p].ahead(c).lanes::<Y>().0;
                        for h in 0..H {
                            let qv = _mm256_loadu_ps(q.add(h * d + c));
                            acc[h][p] = _mm256_add_ps(acc[h][p], _mm256_mul_ps(qv, kv));
                        }
                    }
                    c += 8;
                }
                for h in 0..H {
                    block[h][p0..p0 + Q].copy_from_slice(&acc[h]);
                }
            }
            for (h, b) in block.iter().enumerate() {
                self.store_scores(b, s, h, i);
            }
            i += P;
        }
        i
    }

    /// Every whole block's scores for any number of heads: the block's eight K rows
    /// widened (from an f16 cache) into `kbuf` once for all heads; returns the positions
    /// done.
    #[inline(always)]
    unsafe fn widened(
        &self,
        n: usize,
        k: KvSlice,
        q: *const f32,
        s: *mut f32,
        kbuf: *mut f32,
    ) -> usize {
        let d = self.d;
        let mut i = 0;
        while i + P <= self.len {
            match k {
                KvSlice::F32(x) => self.prefetch(x.as_ptr(), i),
                KvSlice::F16(x) => self.prefetch(x.as_ptr(), i),
                KvSlice::Q8 { q, d } => self.prefetch(Q8At::of(q, d), i),
            }
            let rows: [*const f32; P] = std::array::from_fn(|p| {
                row(
                    k,
                    (self.start + i + p) * self.stride + self.off,
                    d,
                    kbuf.add(p * d),
                )
            });
            for g in 0..n {
                let qg = q.add(g * d);
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
                self.store_scores(&acc, s, g, i);
            }
            i += P;
        }
        i
    }
}

/// A cache row of `d` numbers at offset `at` as f32: the row itself, or its f16 bits
/// widened (exactly) or its q8 numbers times their scales into `buf`.
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
        KvSlice::Q8 { q, d: scale } => {
            let src = Q8At::of(q, scale).ahead(at);
            let mut j = 0;
            while j < d {
                src.ahead(j).lanes::<Y>().store(buf.add(j));
                j += 8;
            }
            buf
        }
    }
}

/// A place in a cache, by what its numbers are: f32, f16 bits (`*const u16`) or q8
/// (`Q8At`).
trait Elem: Copy {
    /// The place `n` numbers further on (SAFETY: within the cache).
    unsafe fn ahead(self, n: usize) -> Self;
    /// L::N numbers here, as f32 (SAFETY: within the cache; the CPU runs L; for q8, the
    /// place is a multiple of L::N, so the numbers share one scale).
    unsafe fn lanes<L: Lanes>(self) -> L;
    /// Ask for the cache lines of the next `n` numbers into the L1 or L2 (`HINT`).
    unsafe fn prefetch<const HINT: i32>(self, n: usize);
}

impl Elem for *const f32 {
    #[inline(always)]
    unsafe fn ahead(self, n: usize) -> Self {
        self.add(n)
    }
    #[inline(always)]
    unsafe fn lanes<L: Lanes>(self) -> L {
        L::load_f32(self)
    }
    #[inline(always)]
    unsafe fn prefetch<const HINT: i32>(self, n: usize) {
        prefetch_bytes::<HINT, _>(self, 4 * n)
    }
}

impl Elem for *const u16 {
    #[inline(always)]
    unsafe fn ahead(self, n: usize) -> Self {
        self.add(n)
    }
    #[inline(always)]
    unsafe fn lanes<L: Lanes>(self) -> L {
        L::load_f16(self)
    }
    #[inline(always)]
    unsafe fn prefetch<const HINT: i32>(self, n: usize) {
        prefetch_bytes::<HINT, _>(self, 2 * n)
    }
}

/// Number `i` of a q8 cache: its byte is `q[i]`, its scale `d[i / 32]`.
#[derive(Clone, Copy)]
struct Q8At {
    q: *const i8,
    d: *const f32,
    i: usize,
}

impl Q8At {
    fn of(q: &[i8], d: &[f32]) -> Self {
        Q8At {
            q: q.as_ptr(),
            d: d.as_ptr(),
            i: 0,
        }
    }
}

impl Elem for Q8At {
    #[inline(always)]
    unsafe fn ahead(self, n: usize) -> Self {
        Q8At {
            i: self.i + n,
            ..self
        }
    }
    #[inline(always)]
    unsafe fn lanes<L: Lanes>(self) -> L {
        L::load_q8(self.q.add(self.i), *self.d.add(self.i / 32))
    }
    #[inline(always)]
    unsafe fn prefetch<const HINT: i32>(self, n: usize) {
        // The scales (a ninth of the bytes, read in order) are left to the hardware.
        prefetch_bytes::<HINT, _>(self.q.add(self.i), n)
    }
}

/// A register of f32 lanes the value sums run in: 256-bit (`Y`) or 512-bit (`Z`).
trait Lanes: Copy {
    /// Lanes per register.
    const N: usize;
    unsafe fn zero() -> Self;
    /// N f32 numbers at `p` (SAFETY: readable).
    unsafe fn load_f32(p: *const f32) -> Self;
    /// N f16 numbers at `p`, widened exactly (SAFETY: readable).
    unsafe fn load_f16(p: *const u16) -> Self;
    /// N q8 numbers at `p` with scale `d`: d·q, one rounding each, as the reference
    /// (SAFETY: readable).
    unsafe fn load_q8(p: *const i8, d: f32) -> Self;
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
    unsafe fn load_f32(p: *const f32) -> Self {
        Y(_mm256_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        Y(_mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)))
    }
    #[inline(always)]
    unsafe fn load_q8(p: *const i8, d: f32) -> Self {
        let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i));
        Y(_mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(q)))
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
    unsafe fn load_f32(p: *const f32) -> Self {
        Z(_mm512_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        Z(_mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)))
    }
    #[inline(always)]
    unsafe fn load_q8(p: *const i8, d: f32) -> Self {
        let q = _mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i));
        Z(_mm512_mul_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(q)))
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
    match v {
        KvSlice::F32(x) => {
            values_of::<*const f32, L, G, W>(x.as_ptr(), probs, len, start, stride, at, out, d)
        }
        KvSlice::F16(x) => {
            values_of::<*const u16, L, G, W>(x.as_ptr(), probs, len, start, stride, at, out, d)
        }
        KvSlice::Q8 { q, d: scale } => {
            values_of::<Q8At, L, G, W>(Q8At::of(q, scale), probs, len, start, stride, at, out, d)
        }
    }
}

/// `values` over a cache of element type E: the rows' loop has no branch (the element
/// type is decided outside it, the prefetched positions run as their own loop).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn values_of<E: Elem, L: Lanes, const G: usize, const W: usize>(
    v: E,
    probs: *const f32,
    len: usize,
    start: usize,
    stride: usize,
    at: usize,
    out: *mut f32,
    d: usize,
) {
    let mut acc = [[L::zero(); W]; G];
    let mut row = v.ahead(start * stride + at);
    let ahead = len.saturating_sub(AHEAD);
    for i in 0..ahead {
        row.ahead(AHEAD * stride).prefetch::<_MM_HINT_T0>(W * L::N);
        add_position::<E, L, G, W>(&mut acc, probs.add(i), len, row);
        row = row.ahead(stride);
    }
    for i in ahead..len {
        add_position::<E, L, G, W>(&mut acc, probs.add(i), len, row);
        row = row.ahead(stride);
    }
    for g in 0..G {
        for w in 0..W {
            acc[g][w].store(out.add(g * d + L::N * w));
        }
    }
}

/// One position of `values_of`: o += p·v for every head and register (`probs`: this
/// position's probability of head 0, the next head's `len` further on). A function, not
/// a closure: a closure inside a `#[target_feature]` function is compiled without those
/// features, and its intrinsics become calls (measured 20× slower).
///
/// SAFETY (caller): as `values_of`.
#[inline(always)]
unsafe fn add_position<E: Elem, L: Lanes, const G: usize, const W: usize>(
    acc: &mut [[L; W]; G],
    probs: *const f32,
    len: usize,
    row: E,
) {
    let vv: [L; W] = std::array::from_fn(|w| row.ahead(L::N * w).lanes::<L>());
    for g in 0..G {
        let p = L::splat(*probs.add(g * len));
        for w in 0..W {
            acc[g][w] = acc[g][w].add_product(p, vv[w]);
        }
    }
}
