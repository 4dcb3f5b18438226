//! The x86-64 kernels: AVX2 (+FMA, F16C), AVX2 with AVX-VNNI, and AVX-512 with VNNI.
//!
//! Every kernel computes the integers and the fma order of `column_scalar` (see the
//! module above): one exact i32 sum per scale unit, then one fma. Integer addition is
//! exact, so a kernel may add a unit's products in whatever grouping its instructions
//! give; it rounds only where the scalar loop does. What differs is how much work one
//! instruction does and what stays in registers:
//!
//! - one activation row (single-sequence decode): four columns at a time, each weight
//!   block decoded straight into registers and used once; the dot products' lanes are
//!   added across (exactly) into each column's unit sums, and the four columns' fmas run
//!   side by side in one register;
//! - several rows (prefill, batched decode): sixteen columns are decoded once into a
//!   *panel*, laid out so that lane i of a register is column i: per sub-block, eight
//!   groups of the sixteen columns' four consecutive integers, with per-column scales and
//!   a per-column bias. A tile of rows × sixteen columns then multiplies each group by
//!   four activation bytes broadcast to every lane (`vpdpbusd`), which accumulates every
//!   column's unit sum in its own lane: eight dot products, one convert, one scale
//!   product and one fma per sixteen columns and sub-block (the order AMX's tiles want
//!   too).
//!
//! VNNI multiplies unsigned by signed bytes. The panel tiles feed it the activations
//! offset by 128 (`Q8Row::qu`) and start each sum at −128·Σw, which leaves exactly
//! Σ a·w; AVX2's `vpmaddubsw` pair does the same for the types whose integers are small
//! enough not to saturate its 16-bit step (`small_ints`), and |w| with sign(a, w) for
//! the others. The single-row kernels use |w| and sign(a, w), or unsigned weights with
//! an exact offset correction. All are the same integers as the scalar loop.

use super::{OutPtr, QMatrix};
use crate::quant::{scale_min_k4, Q8Row, QType, IQ4_VALUES};
use std::arch::x86_64::*;

/// Instruction sets, as const generic parameters.
pub(super) const AVX2: u8 = 0;
pub(super) const AVX_VNNI: u8 = 1;
pub(super) const AVX512: u8 = 2;

/// Columns decoded together.
const COLS: usize = 4;
/// How far ahead the single-row kernels prefetch: the same block of the row this many
/// rows on (four groups of four). A model's matrices are small (a few hundred KB) and a
/// group takes little time, so the next group alone arrives late: 4, 8, 16 and 32 rows
/// measured 204–222, 231–246, 249–300 and 222–278 tok/s of SmolLM2 batch-1 decode.
const AHEAD_ROWS: usize = 4 * COLS;

/// Weight type codes, as const generic parameters.
const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q5_1: u8 = 3;
const Q8_0: u8 = 4;
const Q4K: u8 = 5;
const Q5K: u8 = 6;
const Q6K: u8 = 7;
/// Types with only the generic paths: decoded in registers by `decode`, then multiplied
/// by the SIMD lane dots (signed weights, no minimum).
const Q3K: u8 = 8;
const IQ4NL: u8 = 9;
const IQ4XS: u8 = 10;
/// Q2_K's lane sums (its two minima per sub-block are added by the caller).
const Q2K: u8 = 11;

const fn qtype(t: u8) -> QType {
    match t {
        Q4_0 => QType::Q4_0,
        Q4_1 => QType::Q4_1,
        Q5_0 => QType::Q5_0,
        Q5_1 => QType::Q5_1,
        Q8_0 => QType::Q8_0,
        Q4K => QType::Q4K,
        Q5K => QType::Q5K,
        Q3K => QType::Q3K,
        IQ4NL => QType::IQ4NL,
        IQ4XS => QType::IQ4XS,
        Q2K => QType::Q2K,
        _ => QType::Q6K,
    }
}

/// Whether the type carries a per-sub-block minimum (the separate `macc` term); exactly
/// these types decode to unsigned integers.
const fn has_min(t: u8) -> bool {
    matches!(t, Q4_1 | Q5_1 | Q4K | Q5K)
}

/// Whether the type's integers are small enough (|w| ≤ 64) for AVX2's `vpmaddubsw` to
/// take the activations offset to unsigned bytes, as VNNI does: a pair of products is
/// then at most 2·255·64 = 32,640 and the 16-bit step never saturates. Q8_0 and the
/// IQ4 codebooks (up to ±127) are not.
const fn small_ints(t: u8) -> bool {
    !matches!(t, Q8_0 | IQ4NL | IQ4XS)
}

/// Scale units per sub-block (`QType::scale_units`): two halves for Q2_K, Q3_K, Q6_K.
const fn units(t: u8) -> usize {
    match t {
        Q2K | Q3K | Q6K => 2,
        _ => 1,
    }
}

const fn nsb(t: u8) -> usize {
    match t {
        Q4K | Q5K | Q6K | Q3K | IQ4XS | Q2K => 8,
        _ => 1,
    }
}

/// Columns `c0..c1` of y = x·Wᵀ for all rows in `acts`, written through `out` (row
/// stride `w.rows`). Returns false for float weight types, which the caller handles.
///
/// SAFETY (caller): `isa` was detected on this CPU; the columns belong to this task.
pub(super) unsafe fn columns(
    isa: u8,
    w: &QMatrix,
    c0: usize,
    c1: usize,
    acts: &[Q8Row],
    out: OutPtr,
) -> bool {
    macro_rules! by_type {
        ($f:ident) => {
            match w.t {
                QType::Q4_0 => $f::<Q4_0>(w, c0, c1, acts, out),
                QType::Q4_1 => $f::<Q4_1>(w, c0, c1, acts, out),
                QType::Q5_0 => $f::<Q5_0>(w, c0, c1, acts, out),
                QType::Q5_1 => $f::<Q5_1>(w, c0, c1, acts, out),
                QType::Q8_0 => $f::<Q8_0>(w, c0, c1, acts, out),
                QType::Q4K => $f::<Q4K>(w, c0, c1, acts, out),
                QType::Q5K => $f::<Q5K>(w, c0, c1, acts, out),
                QType::Q6K => $f::<Q6K>(w, c0, c1, acts, out),
                QType::Q3K => $f::<Q3K>(w, c0, c1, acts, out),
                QType::IQ4NL => $f::<IQ4NL>(w, c0, c1, acts, out),
                QType::IQ4XS => $f::<IQ4XS>(w, c0, c1, acts, out),
                QType::Q2K => $f::<Q2K>(w, c0, c1, acts, out),
                // Float weights (the caller's path) and types with only the scalar
                // decoder.
                _ => return false,
            }
        };
    }
    match isa {
        AVX512 => by_type!(columns_avx512),
        AVX_VNNI => by_type!(columns_vnni),
        _ => by_type!(columns_avx2),
    }
    true
}

/// One entry point per instruction set, so the whole inlined body is compiled with
/// that set's features.
macro_rules! entry {
    ($name:ident, $isa:expr, $features:literal) => {
        #[target_feature(enable = $features)]
        unsafe fn $name<const T: u8>(
            w: &QMatrix,
            c0: usize,
            c1: usize,
            acts: &[Q8Row],
            out: OutPtr,
        ) {
            columns_body::<T, { $isa }>(w, c0, c1, acts, out)
        }
    };
}
entry!(columns_avx2, AVX2, "avx2,fma,f16c");
entry!(columns_vnni, AVX_VNNI, "avx2,fma,f16c,avxvnni");
entry!(
    columns_avx512,
    AVX512,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
);

#[inline(always)]
unsafe fn columns_body<const T: u8, const ISA: u8>(
    w: &QMatrix,
    c0: usize,
    c1: usize,
    acts: &[Q8Row],
    out: OutPtr,
) {
    let n = w.rows;
    if acts.len() == 1 {
        let a = &acts[0];
        for c in (c0..c1).step_by(COLS) {
            let k = (c1 - c).min(COLS);
            // A short last group repeats its last column; only real columns are written.
            let cols: [usize; COLS] = std::array::from_fn(|i| c + i.min(k - 1));
            let y = if ISA == AVX512 && matches!(T, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0) {
                row1_32_512::<T>(w, cols, a)
            } else if ISA == AVX512 && matches!(T, Q4K | Q5K) {
                row1_k_512::<T>(w, cols, a)
            } else if ISA == AVX512 && T == Q6K {
                row1_q6k_512(w, cols, a)
            } else {
                row1::<T, ISA>(w, cols, a)
            };
            for (i, v) in y.iter().take(k).enumerate() {
                out.write(c + i, *v);
            }
        }
        return;
    }
    let mut panel = Panel::new(w.cols / 32);
    let rb = qtype(T).row_bytes(w.cols);
    let m = acts.len();
    // Rows per tile: as many as the registers hold (eight accumulators, their minimum
    // terms and the eight weight groups with AVX-512; two rows' halves with AVX-VNNI;
    // one with plain AVX2, whose dot product takes three instructions and a constant).
    let most = match ISA {
        AVX512 => 8,
        AVX_VNNI => 2,
        _ => 1,
    };
    let tiles = m.div_ceil(most);
    for c in (c0..c1).step_by(PANEL) {
        let k = (c1 - c).min(PANEL);
        panel.fill::<T, ISA>(w, c, k);
        // The next panel's columns (contiguous after these) into the cache while this
        // one's tiles run, spread over the tiles: its fill then finds them there
        // instead of waiting on memory. A prefetch past the end is harmless.
        let next = w.data.as_ptr().wrapping_add((c + PANEL) * rb);
        let lines = (PANEL * rb).div_ceil(64);
        let per_tile = lines.div_ceil(tiles);
        let mut line = 0;
        let mut r = 0;
        while r < m {
            let to = (line + per_tile).min(lines);
            while line < to {
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(line * 64) as *const i8);
                line += 1;
            }
            // The largest tile that fits the rows left: the panel's blocks are loaded
            // once per tile, not once a row.
            let left = m - r;
            let rows = if left >= most {
                most
            } else {
                1 << left.ilog2()
            };
            let a = &acts[r..r + rows];
            match (ISA, rows) {
                (AVX512, 8) => tile512::<T, 8>(&panel, a, out, n, r, c, k),
                (AVX512, 4) => tile512::<T, 4>(&panel, a, out, n, r, c, k),
                (AVX512, 2) => tile512::<T, 2>(&panel, a, out, n, r, c, k),
                (AVX512, _) => tile512::<T, 1>(&panel, a, out, n, r, c, k),
                (AVX_VNNI, 2) => tile256::<T, ISA, 2>(&panel, a, out, n, r, c, k),
                _ => tile256::<T, ISA, 1>(&panel, a, out, n, r, c, k),
            }
            r += rows;
        }
    }
}

/// f16 at byte `at` of a block → f32 (F16C, exact like the scalar conversion).
#[inline(always)]
unsafe fn f16(p: *const u8, at: usize) -> f32 {
    let bits = u16::from_le_bytes([*p.add(at), *p.add(at + 1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// 16 bytes of packed nibbles → 32 values (low nibbles first), minus `offset`.
#[inline(always)]
unsafe fn load_q4(qs: *const u8, offset: i8) -> __m256i {
    let raw = _mm_loadu_si128(qs as *const __m128i);
    let mask = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(raw, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(offset))
}

/// 32 bytes, 0xFF where the matching bit of `bits` is set (bit i → byte i).
#[inline(always)]
unsafe fn bytes_from_bits(bits: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0x0000_0000_0000_0000,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuf);
    let select = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, select), _mm256_set1_epi64x(-1))
}

/// A Q3_K block's sixteen 6-bit scales (12 bytes at `b`: low nibbles in bytes 0–7,
/// high bit pairs in bytes 8–11, ggml's kmask layout) as the lane scales
/// dd·(scale − 32) of its eight sub-blocks — `quant::q3k_scales` and the scalar
/// decoder's product, unpacked with word operations and converted eight at a time.
#[inline(always)]
unsafe fn q3k_lane_scales(b: *const u8, dd: f32, d: &mut [[f32; 2]; 8]) {
    let lo = (b as *const u64).read_unaligned().to_le();
    let hi = (b.add(8) as *const u32).read_unaligned().to_le();
    let pairs = |shift: u32| u64::from((hi >> shift) & 0x0303_0303);
    let nibbles = 0x0F0F_0F0F_0F0F_0F0Fu64;
    // Scales 0–7 take their high bits from shifts 0 and 2, scales 8–15 from 4 and 6.
    let first = (lo & nibbles) | ((pairs(0) | pairs(2) << 32) << 4);
    let second = ((lo >> 4) & nibbles) | ((pairs(4) | pairs(6) << 32) << 4);
    let out = d.as_mut_ptr() as *mut f32;
    for (k, eight) in [first, second].into_iter().enumerate() {
        let ints = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(eight as i64));
        let centred = _mm256_cvtepi32_ps(_mm256_sub_epi32(ints, _mm256_set1_epi32(32)));
        _mm256_storeu_ps(out.add(8 * k), _mm256_mul_ps(_mm256_set1_ps(dd), centred));
    }
}

/// The sub-blocks of one weight block: signed integers in registers, the two lane-group
/// scales and the minimum of each — the numbers `quant::decode_block` gives.
#[inline(always)]
unsafe fn decode<const T: u8>(
    p: *const u8,
    wv: &mut [__m256i; 8],
    d: &mut [[f32; 2]; 8],
    mins: &mut [f32; 8],
) {
    let nib = _mm256_set1_epi8(0x0F);
    match T {
        Q4_0 => {
            wv[0] = load_q4(p.add(2), 8);
            let dd = f16(p, 0);
            d[0] = [dd, dd];
        }
        Q4_1 => {
            wv[0] = load_q4(p.add(4), 0);
            let dd = f16(p, 0);
            d[0] = [dd, dd];
            mins[0] = f16(p, 2);
        }
        Q5_0 | Q5_1 => {
            let (off, qs) = if T == Q5_1 { (4, 8) } else { (2, 6) };
            let qh = (p.add(off) as *const u32).read_unaligned();
            let lo = load_q4(p.add(qs), 0);
            let hi = _mm256_and_si256(bytes_from_bits(u32::from_le(qh)), _mm256_set1_epi8(0x10));
            let v = _mm256_or_si256(lo, hi);
            wv[0] = if T == Q5_0 {
                _mm256_sub_epi8(v, _mm256_set1_epi8(16))
            } else {
                v
            };
            let dd = f16(p, 0);
            d[0] = [dd, dd];
            if T == Q5_1 {
                mins[0] = f16(p, 2);
            }
        }
        Q8_0 => {
            wv[0] = _mm256_loadu_si256(p.add(2) as *const __m256i);
            let dd = f16(p, 0);
            d[0] = [dd, dd];
        }
        Q4K | Q5K => {
            let dd = f16(p, 0);
            let dmin = f16(p, 2);
            let scales = std::slice::from_raw_parts(p.add(4), 12);
            let qs = if T == Q5K { p.add(48) } else { p.add(16) };
            let qhv = if T == Q5K {
                _mm256_loadu_si256(p.add(16) as *const __m256i)
            } else {
                _mm256_setzero_si256()
            };
            for chunk in 0..4 {
                let q = _mm256_loadu_si256(qs.add(chunk * 32) as *const __m256i);
                for half in 0..2 {
                    let is = 2 * chunk + half;
                    let mut v = if half == 0 {
                        _mm256_and_si256(q, nib)
                    } else {
                        _mm256_and_si256(_mm256_srli_epi16(q, 4), nib)
                    };
                    if T == Q5K {
                        let bit = _mm256_set1_epi8((1u8 << is) as i8);
                        let set = _mm256_cmpeq_epi8(_mm256_and_si256(qhv, bit), bit);
                        v = _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi8(16)));
                    }
                    let (sc, mn) = scale_min_k4(is, scales);
                    wv[is] = v;
                    let ds = dd * sc as f32;
                    d[is] = [ds, ds];
                    mins[is] = -(dmin * mn as f32);
                }
            }
        }
        IQ4NL | IQ4XS => {
            // Nibbles are indices into the codebook: one byte shuffle looks up 32.
            let book =
                _mm256_broadcastsi128_si256(_mm_loadu_si128(IQ4_VALUES.as_ptr() as *const __m128i));
            let dd = f16(p, 0);
            if T == IQ4NL {
                wv[0] = _mm256_shuffle_epi8(book, load_q4(p.add(2), 0));
                d[0] = [dd, dd];
            } else {
                let sh = u16::from_le_bytes([*p.add(2), *p.add(3)]);
                for ib in 0..8 {
                    let ls = ((*p.add(4 + ib / 2) >> (4 * (ib % 2))) & 0xF) as i32
                        | ((((sh >> (2 * ib)) & 3) as i32) << 4);
                    let dl = dd * (ls - 32) as f32;
                    wv[ib] = _mm256_shuffle_epi8(book, load_q4(p.add(8 + ib * 16), 0));
                    d[ib] = [dl, dl];
                }
            }
        }
        Q3K => {
            // w = (2 low bits) − 4 where the sub-block's bit of hmask is clear.
            let hm = _mm256_loadu_si256(p as *const __m256i);
            q3k_lane_scales(p.add(96), f16(p, 108), d);
            for n in 0..2 {
                let q = _mm256_loadu_si256(p.add(32 + n * 32) as *const __m256i);
                for j in 0..4 {
                    let s = n * 4 + j;
                    let low = _mm256_and_si256(
                        _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * j as i32)),
                        _mm256_set1_epi8(3),
                    );
                    let bit = _mm256_set1_epi8((1u8 << s) as i8);
                    let set = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit);
                    wv[s] = _mm256_sub_epi8(low, _mm256_andnot_si256(set, _mm256_set1_epi8(4)));
                }
            }
        }
        Q2K => {
            // scales[16] (low nibble: the scale of 16 integers; the minima are the
            // caller's), qs[64] (2-bit), d at 80.
            let dd = f16(p, 80);
            for n in 0..2 {
                let q = _mm256_loadu_si256(p.add(16 + n * 32) as *const __m256i);
                for j in 0..4 {
                    let s = n * 4 + j;
                    wv[s] = _mm256_and_si256(
                        _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * j as i32)),
                        _mm256_set1_epi8(3),
                    );
                    let (a, b) = (*p.add(2 * s), *p.add(2 * s + 1));
                    d[s] = [dd * (a & 0xF) as f32, dd * (b & 0xF) as f32];
                }
            }
        }
        _ => {
            // Q6_K
            let dd = f16(p, 208);
            let three = _mm256_set1_epi8(3);
            let thirty_two = _mm256_set1_epi8(32);
            for n in 0..2 {
                let ql0 = _mm256_loadu_si256(p.add(n * 64) as *const __m256i);
                let ql1 = _mm256_loadu_si256(p.add(n * 64 + 32) as *const __m256i);
                let qh = _mm256_loadu_si256(p.add(128 + n * 32) as *const __m256i);
                let high = |h: __m256i| _mm256_slli_epi16(_mm256_and_si256(h, three), 4);
                let parts = [
                    _mm256_or_si256(_mm256_and_si256(ql0, nib), high(qh)),
                    _mm256_or_si256(_mm256_and_si256(ql1, nib), high(_mm256_srli_epi16(qh, 2))),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql0, 4), nib),
                        high(_mm256_srli_epi16(qh, 4)),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql1, 4), nib),
                        high(_mm256_srli_epi16(qh, 6)),
                    ),
                ];
                for (part, v) in parts.into_iter().enumerate() {
                    let k = n * 4 + part;
                    wv[k] = _mm256_sub_epi8(v, thirty_two);
                    let s0 = *p.add(192 + n * 8 + 2 * part) as i8 as f32;
                    let s1 = *p.add(192 + n * 8 + 2 * part + 1) as i8 as f32;
                    d[k] = [dd * s0, dd * s1];
                }
            }
        }
    }
}

/// `acc` plus eight i32 lane sums of u·s (u unsigned, s signed bytes; four products
/// each), exact — one VNNI instruction, or the AVX2 pair (whose 16-bit step the callers
/// keep from saturating).
#[inline(always)]
unsafe fn dot_u8_i8<const ISA: u8>(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    match ISA {
        AVX512 => _mm256_dpbusd_epi32(acc, u, s),
        AVX_VNNI => _mm256_dpbusd_avx_epi32(acc, u, s),
        _ => _mm256_add_epi32(
            acc,
            _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)),
        ),
    }
}

/// Eight i32 lane sums of w·a for signed weights: |w| is the unsigned operand and a takes
/// w's sign (pair sums ≤ 2·128·127 fit the 16-bit step).
#[inline(always)]
unsafe fn lane_dot<const ISA: u8>(w: __m256i, a: *const i8) -> __m256i {
    let a = _mm256_loadu_si256(a as *const __m256i);
    dot_u8_i8::<ISA>(
        _mm256_setzero_si256(),
        _mm256_sign_epi8(w, w),
        _mm256_sign_epi8(a, w),
    )
}

/// The same for weights known to be unsigned (0..=31: the types with a minimum, whose
/// decoders give the raw quants): they are the unsigned operand themselves (pair sums
/// ≤ 2·31·127).
#[inline(always)]
unsafe fn lane_dot_unsigned<const ISA: u8>(w: __m256i, a: *const i8) -> __m256i {
    dot_u8_i8::<ISA>(
        _mm256_setzero_si256(),
        w,
        _mm256_loadu_si256(a as *const __m256i),
    )
}

/// Four columns' scales of one unit (column i's in lane i) times the activation scale.
#[inline(always)]
unsafe fn unit_scales(d: [f32; COLS], da: f32) -> __m128 {
    _mm_mul_ps(_mm_set_ps(d[3], d[2], d[1], d[0]), _mm_set1_ps(da))
}

/// The four results of a single-row path: acc + the minimum terms.
#[inline(always)]
unsafe fn finish4(acc: __m128, mc: __m128) -> [f32; COLS] {
    let mut y = [0f32; COLS];
    _mm_storeu_ps(y.as_mut_ptr(), _mm_add_ps(acc, mc));
    y
}

/// One activation row against four columns, the blocks decoded into registers.
#[inline(always)]
unsafe fn row1<const T: u8, const ISA: u8>(
    w: &QMatrix,
    cols: [usize; COLS],
    a: &Q8Row,
) -> [f32; COLS] {
    let nsb = nsb(T);
    let bb = qtype(T).block_bytes();
    let rb = qtype(T).row_bytes(w.cols);
    let base = w.data.as_ptr();
    let rows: [*const u8; COLS] = std::array::from_fn(|i| base.add(cols[i] * rb));
    let mut acc = _mm_setzero_ps();
    let mut mc = [0f32; COLS];
    let mut wv = [[_mm256_setzero_si256(); 8]; COLS];
    let mut d = [[[0f32; 2]; 8]; COLS];
    let mut mins = [[0f32; 8]; COLS];
    for b in 0..w.cols / qtype(T).block_elems() {
        // The four rows are read in lockstep: four short streams the hardware prefetcher
        // picks up late. Ask for the same place of rows `AHEAD_ROWS` further on (a later
        // group, contiguous after these) ahead of time. A prefetch past the end is
        // harmless.
        prefetch_ahead(&rows, b * bb, bb, rb);
        for i in 0..COLS {
            decode::<T>(rows[i].add(b * bb), &mut wv[i], &mut d[i], &mut mins[i]);
        }
        for s in 0..nsb {
            let j = b * nsb + s;
            let da = *a.d.get_unchecked(j);
            let ap = a.qs.as_ptr().add(j * 32);
            let p: [__m256i; COLS] = std::array::from_fn(|i| {
                if has_min(T) {
                    lane_dot_unsigned::<ISA>(wv[i][s], ap)
                } else {
                    lane_dot::<ISA>(wv[i][s], ap)
                }
            });
            // Lanes 0–3 of each column's sum (elements 0–15) in the low half of `h`,
            // column i in lane i; lanes 4–7 (elements 16–31) in the high half.
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
            let (lo, hi) = (_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            let d0 = unit_scales(std::array::from_fn(|i| d[i][s][0]), da);
            if units(T) == 2 {
                let d1 = unit_scales(std::array::from_fn(|i| d[i][s][1]), da);
                acc = _mm_fmadd_ps(d0, _mm_cvtepi32_ps(lo), acc);
                acc = _mm_fmadd_ps(d1, _mm_cvtepi32_ps(hi), acc);
            } else {
                acc = _mm_fmadd_ps(d0, _mm_cvtepi32_ps(_mm_add_epi32(lo, hi)), acc);
            }
            if has_min(T) {
                for i in 0..COLS {
                    mc[i] = (mins[i][s] * da).mul_add(*a.sum.get_unchecked(j) as f32, mc[i]);
                }
            }
        }
    }
    finish4(acc, _mm_loadu_ps(mc.as_ptr()))
}

/// Ask for bytes `at..at + bb` (one block) of each row `AHEAD_ROWS` rows further on. A
/// prefetch past the end is harmless.
#[inline(always)]
unsafe fn prefetch_ahead(rows: &[*const u8; COLS], at: usize, bb: usize, rb: usize) {
    for r in rows {
        let ahead = r.wrapping_add(at + AHEAD_ROWS * rb);
        for line in (0..bb).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
        }
    }
}

/// The first two f16 numbers of each of four blocks (d and m or dmin; for types with one
/// scale, d and two quant bytes), as f32 in lanes 2i and 2i + 1: exact, like `f16`, four
/// columns in one conversion.
#[inline(always)]
unsafe fn block_heads(blk: &[*const u8; COLS]) -> __m256 {
    let word = |i: usize| (blk[i] as *const i32).read_unaligned();
    _mm256_cvtph_ps(_mm_set_epi32(word(3), word(2), word(1), word(0)))
}

/// The 128-bit quarters of a 512-bit register of i32 each summed (exactly): quarter i's
/// sum in lane i.
#[inline(always)]
unsafe fn quarter_sums(v: __m512i) -> __m128i {
    let v = _mm512_add_epi32(v, _mm512_shuffle_epi32::<0x4E>(v));
    let v = _mm512_add_epi32(v, _mm512_shuffle_epi32::<0xB1>(v));
    let first = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
    _mm512_castsi512_si128(_mm512_permutexvar_epi32(first, v))
}

/// Two column pairs' i32 lane sums (column 2p's eight lanes in the low half of
/// `pair[p]`, column 2p+1's in the high half) as the four columns' exact sums over
/// lanes 0–3 (elements 0–15) and over lanes 4–7 (elements 16–31), column i in lane i.
#[inline(always)]
unsafe fn half_sums4(pair: [__m512i; 2]) -> (__m128i, __m128i) {
    let (lo, hi) = half_quarters(pair);
    (quarter_sums(lo), quarter_sums(hi))
}

/// The same, the two halves added: the four columns' sums over the whole sub-block.
#[inline(always)]
unsafe fn sums4(pair: [__m512i; 2]) -> __m128i {
    let (lo, hi) = half_quarters(pair);
    quarter_sums(_mm512_add_epi32(lo, hi))
}

/// Lanes 0–3 of columns 0, 1, 2, 3 (one quarter each), and lanes 4–7 of them.
#[inline(always)]
unsafe fn half_quarters(pair: [__m512i; 2]) -> (__m512i, __m512i) {
    (
        _mm512_shuffle_i32x4::<0x88>(pair[0], pair[1]),
        _mm512_shuffle_i32x4::<0xDD>(pair[0], pair[1]),
    )
}

/// `row1` with AVX-512 for the 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0):
/// the same numbers in the same order, two columns to a 512-bit register and the four
/// columns' scales converted together. `row1` spends most of its instructions per column
/// on unpacking, sign tricks and scalar scale conversions, and batch-1 decode of these
/// types is bound by them, not by memory.
///
/// Signed weights w = u − o (Q4_0: o = 8, Q5_0: 16, Q8_0: 128 with u = w XOR 0x80) give
/// the same exact i32 lane sums as `lane_dot`'s Σ w·a as Σ u·a − o·Σa, one unsigned
/// dot product with the lane sums of `a` computed once per block.
///
/// SAFETY (caller): AVX-512 F/BW/VL/VNNI; the columns exist; `a` is `w.cols` wide.
#[inline(always)]
unsafe fn row1_32_512<const T: u8>(w: &QMatrix, cols: [usize; COLS], a: &Q8Row) -> [f32; COLS] {
    let bb = qtype(T).block_bytes();
    // Where the quants start, where Q5's fifth bits are, and the offset's log2.
    let (qs_at, qh_at, shift) = match T {
        Q4_0 => (2, 0, 3),
        Q4_1 => (4, 0, 0),
        Q5_0 => (6, 2, 4),
        Q5_1 => (8, 4, 0),
        _ => (2, 0, 7), // Q8_0
    };
    let signed = matches!(T, Q4_0 | Q5_0 | Q8_0);
    let rb = qtype(T).row_bytes(w.cols);
    let base = w.data.as_ptr();
    let rows: [*const u8; COLS] = std::array::from_fn(|i| base.add(cols[i] * rb));
    let nib = _mm256_set1_epi8(0x0F);
    // 64-bit lanes of (low nibbles of columns 2p and 2p+1, high nibbles of both) →
    // column 2p's 32 integers then column 2p+1's, as `load_q4` orders each.
    let unpack = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    let min_of = _mm256_set_epi32(7, 5, 3, 1, 7, 5, 3, 1);
    let d_of = _mm256_set_epi32(6, 4, 2, 0, 6, 4, 2, 0);
    let mut acc = _mm_setzero_ps();
    let mut mc = _mm_setzero_ps();
    for b in 0..w.cols / 32 {
        prefetch_ahead(&rows, b * bb, bb, rb);
        let blk: [*const u8; COLS] = std::array::from_fn(|i| rows[i].add(b * bb));
        // The four columns' d (and m, for the types with one; other bytes otherwise).
        let dm = block_heads(&blk);
        let da = *a.d.get_unchecked(b);
        let act = _mm512_broadcast_i64x4(_mm256_loadu_si256(
            a.qs.as_ptr().add(b * 32) as *const __m256i
        ));
        // o·(Σ of each lane's four activations).
        let offset = if signed {
            _mm512_sllv_epi32(
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), act),
                _mm512_set1_epi32(shift),
            )
        } else {
            _mm512_setzero_si512()
        };
        // (A loop, not a closure: a closure this large is not inlined, and compiled on its
        // own it loses the target features — every intrinsic became a call.)
        let mut dots = [_mm512_setzero_si512(); 2];
        for (pair, dot) in dots.iter_mut().enumerate() {
            let (c0, c1) = (blk[2 * pair], blk[2 * pair + 1]);
            let u = if T == Q8_0 {
                let q = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_loadu_si256(c0.add(2) as *const __m256i)),
                    _mm256_loadu_si256(c1.add(2) as *const __m256i),
                );
                _mm512_xor_si512(q, _mm512_set1_epi8(-128))
            } else {
                let raw = _mm256_inserti128_si256::<1>(
                    _mm256_castsi128_si256(_mm_loadu_si128(c0.add(qs_at) as *const __m128i)),
                    _mm_loadu_si128(c1.add(qs_at) as *const __m128i),
                );
                let lo = _mm256_and_si256(raw, nib);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), nib);
                let v = _mm512_permutex2var_epi64(
                    _mm512_castsi256_si512(lo),
                    unpack,
                    _mm512_castsi256_si512(hi),
                );
                if matches!(T, Q5_0 | Q5_1) {
                    // Bit j of qh is value j's fifth bit (16).
                    let bits =
                        |c: *const u8| u64::from((c.add(qh_at) as *const u32).read_unaligned());
                    let mask = bits(c0) | bits(c1) << 32;
                    _mm512_or_si512(v, _mm512_maskz_mov_epi8(mask, _mm512_set1_epi8(16)))
                } else {
                    v
                }
            };
            *dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, act), offset);
        }
        let d = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(dm, d_of));
        let scale = _mm_mul_ps(d, _mm_set1_ps(da));
        acc = _mm_fmadd_ps(scale, _mm_cvtepi32_ps(sums4(dots)), acc);
        if has_min(T) {
            // mc += (m·da)·Σa per column, fused, as `row1`'s scalar `mul_add`.
            let m = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(dm, min_of));
            let sum = _mm_set1_ps(*a.sum.get_unchecked(b) as f32);
            mc = _mm_fmadd_ps(_mm_mul_ps(m, _mm_set1_ps(da)), sum, mc);
        }
    }
    finish4(acc, mc)
}

/// `row1` for Q6_K with AVX-512 (the output layer and about half the FFN-down and
/// value matrices of the Q4_K_M teachers): two columns to a 512-bit register, each
/// column's sixteen 8-bit scales converted and multiplied by its d together, and the
/// six-bit weights as unsigned u = w + 32 with the exact i32 correction 32·Σa — the
/// same lane sums and products as `row1`, in the same order.
///
/// SAFETY (caller): AVX-512 F/BW/VL/VNNI; the columns exist; `a` is `w.cols` wide.
#[inline(always)]
unsafe fn row1_q6k_512(w: &QMatrix, cols: [usize; COLS], a: &Q8Row) -> [f32; COLS] {
    let bb = QType::Q6K.block_bytes();
    let rb = QType::Q6K.row_bytes(w.cols);
    let base = w.data.as_ptr();
    let rows: [*const u8; COLS] = std::array::from_fn(|i| base.add(cols[i] * rb));
    let (nib, three) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(3));
    let mut acc = _mm_setzero_ps();
    for b in 0..w.cols / 256 {
        prefetch_ahead(&rows, b * bb, bb, rb);
        let blk: [*const u8; COLS] = std::array::from_fn(|i| rows[i].add(b * bb));
        // d · scale, as the scalar decoder multiplies them, sixteen at a time.
        let mut sc = [[0f32; 16]; COLS];
        for (i, sc) in sc.iter_mut().enumerate() {
            let s8 = _mm_loadu_si128(blk[i].add(192) as *const __m128i);
            let s = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(s8));
            _mm512_storeu_ps(
                sc.as_mut_ptr(),
                _mm512_mul_ps(_mm512_set1_ps(f16(blk[i], 208)), s),
            );
        }
        for n in 0..2 {
            // 32 bytes at `at` of both columns of a pair, the first column's low.
            let both = |pair: usize, at: usize| {
                _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_loadu_si256(
                        blk[2 * pair].add(at) as *const __m256i
                    )),
                    _mm256_loadu_si256(blk[2 * pair + 1].add(at) as *const __m256i),
                )
            };
            let ql0 = [0, 1].map(|pair| both(pair, n * 64));
            let ql1 = [0, 1].map(|pair| both(pair, n * 64 + 32));
            let qh = [0, 1].map(|pair| both(pair, 128 + n * 32));
            for part in 0..4 {
                let k = n * 4 + part;
                let j = b * 8 + k;
                let da = *a.d.get_unchecked(j);
                let act = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    a.qs.as_ptr().add(j * 32) as *const __m256i
                ));
                // 32·(Σ of each lane's four activations).
                let offset = _mm512_slli_epi32::<5>(_mm512_dpbusd_epi32(
                    _mm512_setzero_si512(),
                    _mm512_set1_epi8(1),
                    act,
                ));
                let mut dots = [_mm512_setzero_si512(); 2];
                for (pair, dot) in dots.iter_mut().enumerate() {
                    // The decoder's four parts: low or high nibbles of ql0/ql1, with
                    // bit pair `part` of qh as bits 4–5.
                    let low = match part {
                        0 => _mm512_and_si512(ql0[pair], nib),
                        1 => _mm512_and_si512(ql1[pair], nib),
                        2 => _mm512_and_si512(_mm512_srli_epi16::<4>(ql0[pair]), nib),
                        _ => _mm512_and_si512(_mm512_srli_epi16::<4>(ql1[pair]), nib),
                    };
                    let high = _mm512_and_si512(
                        _mm512_srl_epi16(qh[pair], _mm_cvtsi32_si128(2 * part as i32)),
                        three,
                    );
                    let u = _mm512_or_si512(low, _mm512_slli_epi16::<4>(high));
                    *dot = _mm512_sub_epi32(
                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, act),
                        offset,
                    );
                }
                // Sub-block k's two units: scales 2k (elements 0–15) and 2k + 1.
                let (lo, hi) = half_sums4(dots);
                let d0 = unit_scales(std::array::from_fn(|i| sc[i][2 * k]), da);
                let d1 = unit_scales(std::array::from_fn(|i| sc[i][2 * k + 1]), da);
                acc = _mm_fmadd_ps(d0, _mm_cvtepi32_ps(lo), acc);
                acc = _mm_fmadd_ps(d1, _mm_cvtepi32_ps(hi), acc);
            }
        }
    }
    finish4(acc, _mm_setzero_ps())
}

/// The eight 6-bit (scale, minimum) pairs of a Q4_K/Q5_K block's 12 scale bytes, as
/// eight bytes each (`scale_min_k4` for j = 0..8, all at once).
#[inline(always)]
unsafe fn scales_mins_k4(q: *const u8) -> (u64, u64) {
    let word = |i: usize| (q.add(4 * i) as *const u32).read_unaligned();
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let (low6, low4, top2) = (0x3f3f_3f3fu32, 0x0f0f_0f0fu32, 0x0303_0303u32);
    // j < 4: the low six bits of bytes 0–3 (scales) and 4–7 (minima); j ≥ 4: four bits
    // of bytes 8–11 below the top two bits of bytes 0–3 (scales) or 4–7 (minima).
    let sc_hi = (w2 & low4) | (((w0 >> 6) & top2) << 4);
    let mn_hi = ((w2 >> 4) & low4) | (((w1 >> 6) & top2) << 4);
    (
        u64::from(w0 & low6) | u64::from(sc_hi) << 32,
        u64::from(w1 & low6) | u64::from(mn_hi) << 32,
    )
}

/// Eight bytes → eight f32.
#[inline(always)]
unsafe fn bytes_to_f32(x: u64) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(x as i64)))
}

/// Two eight-lane halves as one 512-bit register (low, high).
#[inline(always)]
unsafe fn join(lo: __m256, hi: __m256) -> __m512 {
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
        _mm256_castps_pd(hi),
    ))
}

/// `row1` for Q4_K and Q5_K with AVX-512 (the Q4_K_M and Q5_K_M teachers at batch 1):
/// the same numbers in the same order, two columns to a 512-bit register, and each
/// block's eight scales and minima unpacked and converted together instead of one at a
/// time.
///
/// SAFETY (caller): AVX-512 F/BW/VL/VNNI; the columns exist; `a` is `w.cols` wide.
#[inline(always)]
unsafe fn row1_k_512<const T: u8>(w: &QMatrix, cols: [usize; COLS], a: &Q8Row) -> [f32; COLS] {
    let bb = qtype(T).block_bytes();
    // Where the quants start (Q5_K's 32 bytes of fifth bits come first).
    let qs_at = if T == Q5K { 48 } else { 16 };
    let rb = qtype(T).row_bytes(w.cols);
    let base = w.data.as_ptr();
    let rows: [*const u8; COLS] = std::array::from_fn(|i| base.add(cols[i] * rb));
    let nib = _mm512_set1_epi8(0x0F);
    // Lanes 0–3 ← lane s of each of four eight-lane groups (+ s).
    let pick4 = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 16, 8, 0);
    let mut acc = _mm_setzero_ps();
    let mut mc = _mm_setzero_ps();
    for b in 0..w.cols / 256 {
        prefetch_ahead(&rows, b * bb, bb, rb);
        let blk: [*const u8; COLS] = std::array::from_fn(|i| rows[i].add(b * bb));
        // Q5_K: the fifth bits of both columns of each pair (bit s of byte l is
        // sub-block s's value l).
        let qh = if T == Q5K {
            let at = |i: usize| blk[i].add(16) as *const __m256i;
            [0, 1].map(|pair| {
                _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_loadu_si256(at(2 * pair))),
                    _mm256_loadu_si256(at(2 * pair + 1)),
                )
            })
        } else {
            [_mm512_setzero_si512(); 2]
        };
        // Per column: the eight sub-blocks' scales d·sc and minima −(dmin·m), as the
        // scalar decoder computes each.
        let dm = block_heads(&blk);
        let mut ds = [_mm256_setzero_ps(); COLS];
        let mut mins = [_mm256_setzero_ps(); COLS];
        for i in 0..COLS {
            let (sc, mn) = scales_mins_k4(blk[i].add(4));
            let lane = |l: usize| _mm256_permutevar8x32_ps(dm, _mm256_set1_epi32(l as i32));
            ds[i] = _mm256_mul_ps(lane(2 * i), bytes_to_f32(sc));
            let m = _mm256_mul_ps(lane(2 * i + 1), bytes_to_f32(mn));
            mins[i] = _mm256_xor_ps(m, _mm256_set1_ps(-0.0));
        }
        let ds2 = [join(ds[0], ds[1]), join(ds[2], ds[3])];
        let (mins01, mins23) = (join(mins[0], mins[1]), join(mins[2], mins[3]));
        for chunk in 0..4 {
            // Sub-blocks 2·chunk (low nibbles) and 2·chunk + 1 (high) of both columns of
            // each pair.
            let mut wv = [[_mm512_setzero_si512(); 2]; 2];
            for (pair, wv) in wv.iter_mut().enumerate() {
                let at = |i: usize| blk[i].add(qs_at + chunk * 32) as *const __m256i;
                let q = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_loadu_si256(at(2 * pair))),
                    _mm256_loadu_si256(at(2 * pair + 1)),
                );
                wv[0] = _mm512_and_si512(q, nib);
                wv[1] = _mm512_and_si512(_mm512_srli_epi16::<4>(q), nib);
                if T == Q5K {
                    for (half, v) in wv.iter_mut().enumerate() {
                        let bit = _mm512_set1_epi8((1u8 << (2 * chunk + half)) as i8);
                        let set = _mm512_test_epi8_mask(qh[pair], bit);
                        *v = _mm512_or_si512(*v, _mm512_maskz_mov_epi8(set, _mm512_set1_epi8(16)));
                    }
                }
            }
            for half in 0..2 {
                let sb = 2 * chunk + half;
                let j = b * 8 + sb;
                let da = *a.d.get_unchecked(j);
                let act = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    a.qs.as_ptr().add(j * 32) as *const __m256i
                ));
                let s = _mm512_set1_epi32(sb as i32);
                let dots: [__m512i; 2] = std::array::from_fn(|pair| {
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[pair][half], act)
                });
                let d = _mm512_castps512_ps128(_mm512_permutex2var_ps(
                    ds2[0],
                    _mm512_add_epi32(pick4, s),
                    ds2[1],
                ));
                let scale = _mm_mul_ps(d, _mm_set1_ps(da));
                acc = _mm_fmadd_ps(scale, _mm_cvtepi32_ps(sums4(dots)), acc);
                let m = _mm512_castps512_ps128(_mm512_permutex2var_ps(
                    mins01,
                    _mm512_add_epi32(pick4, s),
                    mins23,
                ));
                let sum = _mm_set1_ps(*a.sum.get_unchecked(j) as f32);
                mc = _mm_fmadd_ps(_mm_mul_ps(m, _mm_set1_ps(da)), sum, mc);
            }
        }
    }
    finish4(acc, mc)
}

/// Columns of a panel: one per i32 lane of a 512-bit register.
const PANEL: usize = 16;

/// One sub-block of sixteen columns, as the panel tiles read it.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Block16 {
    /// Group g: elements 4g..4g+3 of the sixteen columns (column i at bytes 4i..4i+3),
    /// what one `vpdpbusd` multiplies by four broadcast activation bytes.
    w: [[i8; 64]; 8],
    /// Per scale unit and column: −128·Σw over the unit, which leaves exactly Σ a·w of
    /// the activations offset to unsigned bytes (`Q8Row::qu`); 0 where plain AVX2 takes
    /// the signed activations instead (the types that are not `small_ints`).
    bias: [[i32; PANEL]; 2],
    /// Per scale unit and column: the scale.
    d: [[f32; PANEL]; 2],
    /// Per column: the minimum (the types that have one).
    mins: [f32; PANEL],
}

impl Block16 {
    /// Sub-block s's scales (both units) and minima of the sixteen columns, from the
    /// decoded blocks' per-column values.
    #[inline(always)]
    fn set_scales<const T: u8>(
        &mut self,
        d: &[[[f32; 2]; 8]; PANEL],
        mins: &[[f32; 8]; PANEL],
        s: usize,
    ) {
        for i in 0..PANEL {
            self.d[0][i] = d[i][s][0];
            self.d[1][i] = d[i][s][1];
            if has_min(T) {
                self.mins[i] = mins[i][s];
            }
        }
    }
}

/// Sixteen columns decoded over the whole input width: one `Block16` per sub-block.
struct Panel {
    blocks: Vec<Block16>,
}

impl Panel {
    fn new(nsb: usize) -> Panel {
        let zero = Block16 {
            w: [[0; 64]; 8],
            bias: [[0; PANEL]; 2],
            d: [[0.0; PANEL]; 2],
            mins: [0.0; PANEL],
        };
        Panel {
            blocks: vec![zero; nsb],
        }
    }

    /// Decode columns c..c+k (k ≤ 16); missing columns become zeros.
    ///
    /// Block by block, the sixteen columns' blocks are decoded side by side and each
    /// sub-block's integers turned from column-major (one column's 32 bytes a register)
    /// to the panel's group-major layout by two 8 × 8 transposes of 32-bit words.
    #[inline(always)]
    unsafe fn fill<const T: u8, const ISA: u8>(&mut self, w: &QMatrix, c: usize, k: usize) {
        if ISA == AVX512 {
            return self.fill512::<T>(w, c, k);
        }
        let nsb = nsb(T);
        let bb = qtype(T).block_bytes();
        let nblocks = w.cols / qtype(T).block_elems();
        let offset = ISA != AVX2 || small_ints(T);
        // One block of each column, decoded; the missing columns stay zero.
        let mut wv = [[_mm256_setzero_si256(); 8]; PANEL];
        let mut d = [[[0f32; 2]; 8]; PANEL];
        let mut mins = [[0f32; 8]; PANEL];
        let rows: [*const u8; PANEL] = std::array::from_fn(|i| w.row(c + i.min(k - 1)).as_ptr());
        let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
        for b in 0..nblocks {
            for i in 0..k {
                decode::<T>(rows[i].add(b * bb), &mut wv[i], &mut d[i], &mut mins[i]);
            }
            for s in 0..nsb {
                let blk = self.blocks.get_unchecked_mut(b * nsb + s);
                for half in 0..2 {
                    let groups = transpose8(std::array::from_fn(|i| wv[8 * half + i][s]));
                    let mut sums = [_mm256_setzero_si256(); 2];
                    for (g, v) in groups.iter().enumerate() {
                        let at = blk.w[g].as_mut_ptr().add(32 * half) as *mut __m256i;
                        _mm256_storeu_si256(at, *v);
                        if offset {
                            // Σw of each column's four integers, exactly.
                            let sum4 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, *v), ones16);
                            let u = g * units(T) / 8;
                            sums[u] = _mm256_add_epi32(sums[u], sum4);
                        }
                    }
                    for (u, sum) in sums.iter().enumerate() {
                        let bias =
                            _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(*sum, 7));
                        let at = blk.bias[u].as_mut_ptr().add(8 * half) as *mut __m256i;
                        _mm256_storeu_si256(at, bias);
                    }
                }
                blk.set_scales::<T>(&d, &mins, s);
            }
        }
    }

    /// `fill` with 512-bit registers: the same panel, in two-thirds of the shuffles. Columns i
    /// and i + 8 share a register, so one 16 × 8 transpose of 32-bit words turns a
    /// sub-block group-major; the one-sub-block types' scales (and minima) are gathered
    /// from the sixteen blocks and converted in one instruction each.
    #[inline(always)]
    unsafe fn fill512<const T: u8>(&mut self, w: &QMatrix, c: usize, k: usize) {
        let nsb = nsb(T);
        let bb = qtype(T).block_bytes();
        let rb = qtype(T).row_bytes(w.cols);
        let nblocks = w.cols / qtype(T).block_elems();
        // Whether a block is one f16 scale at its start (and, with a minimum, one more
        // after it): a 32-bit gather reads both for all sixteen columns.
        let gathered = matches!(T, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | IQ4NL);
        let mut wv = [[_mm256_setzero_si256(); 8]; PANEL];
        let mut d = [[[0f32; 2]; 8]; PANEL];
        let mut mins = [[0f32; 8]; PANEL];
        let rows: [*const u8; PANEL] = std::array::from_fn(|i| w.row(c + i.min(k - 1)).as_ptr());
        let offsets: [i32; PANEL] = std::array::from_fn(|i| (i.min(k - 1) * rb) as i32);
        let offsets = _mm512_loadu_si512(offsets.as_ptr() as *const _);
        let (ones8, ones16) = (_mm512_set1_epi8(1), _mm512_set1_epi16(1));
        for b in 0..nblocks {
            for i in 0..k {
                decode::<T>(rows[i].add(b * bb), &mut wv[i], &mut d[i], &mut mins[i]);
            }
            for s in 0..nsb {
                let blk = self.blocks.get_unchecked_mut(b * nsb + s);
                let pairs: [__m512i; 8] = std::array::from_fn(|i| {
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(wv[i][s]), wv[i + 8][s])
                });
                let groups = transpose16x8(pairs);
                let mut sums = [_mm512_setzero_si512(); 2];
                for (g, v) in groups.iter().enumerate() {
                    _mm512_store_si512(blk.w[g].as_mut_ptr() as *mut _, *v);
                    // Σw of each column's four integers, exactly.
                    let sum4 = _mm512_madd_epi16(_mm512_maddubs_epi16(ones8, *v), ones16);
                    let u = g * units(T) / 8;
                    sums[u] = _mm512_add_epi32(sums[u], sum4);
                }
                for u in 0..units(T) {
                    let bias =
                        _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums[u], 7));
                    _mm512_store_si512(blk.bias[u].as_mut_ptr() as *mut _, bias);
                }
                if gathered {
                    let first =
                        _mm512_i32gather_epi32::<1>(offsets, rows[0].add(b * bb) as *const _);
                    let d16 = _mm512_cvtepi32_epi16(first);
                    _mm512_store_ps(blk.d[0].as_mut_ptr(), _mm512_cvtph_ps(d16));
                    if has_min(T) {
                        let m16 = _mm512_cvtepi32_epi16(_mm512_srli_epi32(first, 16));
                        _mm512_store_ps(blk.mins.as_mut_ptr(), _mm512_cvtph_ps(m16));
                    }
                } else {
                    blk.set_scales::<T>(&d, &mins, s);
                }
            }
        }
    }
}

/// Sixteen columns' eight 32-bit words transposed, column i in the low half of
/// register i and column i + 8 in the high half of register i (i < 8): lane i of
/// result g is word g of column i.
#[inline(always)]
unsafe fn transpose16x8(r: [__m512i; 8]) -> [__m512i; 8] {
    // Within each 128-bit lane, as `transpose8`'s first two steps: afterwards u[g]
    // (g < 4) holds, lane by lane, words g and g + 4 of columns 0–3 and words g and
    // g + 4 of columns 8–11; u[g + 4] the same of columns 4–7 and 12–15.
    let t: [__m512i; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[2 * (i / 2)], r[2 * (i / 2) + 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    let u: [__m512i; 8] = std::array::from_fn(|i| {
        let base = 4 * (i / 4);
        let (a, b) = (t[base + (i % 4) / 2], t[base + (i % 4) / 2 + 2]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // Word g of columns 0–3, 4–7, 8–11, 12–15: lanes 0 (g < 4) or 1 (g ≥ 4) of
    // u[g mod 4] and u[g mod 4 + 4], then their lanes 2 or 3.
    let low = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    let high = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    std::array::from_fn(|g| {
        if g < 4 {
            _mm512_permutex2var_epi64(u[g], low, u[g + 4])
        } else {
            _mm512_permutex2var_epi64(u[g - 4], high, u[g])
        }
    })
}

/// An 8 × 8 matrix of 32-bit words transposed: word g of result i is word i of row g
/// (lane i of result g is word g of row i).
#[inline(always)]
unsafe fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    let t: [__m256i; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[2 * (i / 2)], r[2 * (i / 2) + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_epi32(a, b)
        } else {
            _mm256_unpackhi_epi32(a, b)
        }
    });
    // Per 128-bit lane, words (0, 4), (1, 5), (2, 6), (3, 7) of rows 0–3 (u0–u3) and
    // rows 4–7 (u4–u7).
    let u: [__m256i; 8] = std::array::from_fn(|i| {
        let base = 4 * (i / 4);
        let (a, b) = (t[base + (i % 4) / 2], t[base + (i % 4) / 2 + 2]);
        if i % 2 == 0 {
            _mm256_unpacklo_epi64(a, b)
        } else {
            _mm256_unpackhi_epi64(a, b)
        }
    });
    std::array::from_fn(|g| {
        if g < 4 {
            _mm256_permute2x128_si256::<0x20>(u[g], u[g + 4])
        } else {
            _mm256_permute2x128_si256::<0x31>(u[g - 4], u[g])
        }
    })
}

/// The four-byte groups of scale unit u: four each for a type of two units, all eight
/// for a type of one.
#[inline(always)]
fn unit_groups<const T: u8>(u: usize) -> std::ops::Range<usize> {
    let per = 8 / units(T);
    u * per..(u + 1) * per
}

/// R rows × 16 columns with 512-bit registers: per row and scale unit one exact i32
/// sum per column (the activations broadcast four bytes at a time), then one convert,
/// one scale product and one fma — the scalar order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile512<const T: u8, const R: usize>(
    p: &Panel,
    acts: &[Q8Row],
    out: OutPtr,
    n: usize,
    r0: usize,
    c: usize,
    k: usize,
) {
    let mut acc = [_mm512_setzero_ps(); R];
    let mut macc = [_mm512_setzero_ps(); R];
    for (j, blk) in p.blocks.iter().enumerate() {
        let wv: [__m512i; 8] =
            std::array::from_fn(|g| _mm512_load_si512(blk.w[g].as_ptr() as *const _));
        for r in 0..R {
            let a = acts.get_unchecked(r);
            let da = _mm512_set1_ps(*a.d.get_unchecked(j));
            let au = a.qu.as_ptr().add(j * 32) as *const i32;
            for u in 0..units(T) {
                let mut sum = _mm512_load_si512(blk.bias[u].as_ptr() as *const _);
                for g in unit_groups::<T>(u) {
                    let a4 = _mm512_set1_epi32(au.add(g).read_unaligned());
                    sum = _mm512_dpbusd_epi32(sum, a4, wv[g]);
                }
                let s = _mm512_mul_ps(_mm512_load_ps(blk.d[u].as_ptr()), da);
                acc[r] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(sum), acc[r]);
            }
            if has_min(T) {
                let m = _mm512_mul_ps(_mm512_load_ps(blk.mins.as_ptr()), da);
                let sum = _mm512_set1_ps(*a.sum.get_unchecked(j) as f32);
                macc[r] = _mm512_fmadd_ps(m, sum, macc[r]);
            }
        }
    }
    let mask: __mmask16 = if k >= PANEL { 0xFFFF } else { (1 << k) - 1 };
    for r in 0..R {
        let y = _mm512_add_ps(acc[r], macc[r]);
        _mm512_mask_storeu_ps(out.at((r0 + r) * n + c), mask, y);
    }
}

/// R rows × 16 columns with 256-bit registers (AVX2 or AVX-VNNI): the same sums as
/// `tile512`, each column half in its own register.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile256<const T: u8, const ISA: u8, const R: usize>(
    p: &Panel,
    acts: &[Q8Row],
    out: OutPtr,
    n: usize,
    r0: usize,
    c: usize,
    k: usize,
) {
    let offset = ISA != AVX2 || small_ints(T);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let mut macc = [[_mm256_setzero_ps(); 2]; R];
    for (j, blk) in p.blocks.iter().enumerate() {
        for r in 0..R {
            let a = acts.get_unchecked(r);
            let da = _mm256_set1_ps(*a.d.get_unchecked(j));
            let au = a.qu.as_ptr().add(j * 32) as *const i32;
            let aq = a.qs.as_ptr().add(j * 32) as *const i32;
            for u in 0..units(T) {
                let bias = blk.bias[u].as_ptr();
                let mut sum: [__m256i; 2] =
                    std::array::from_fn(|h| _mm256_load_si256(bias.add(8 * h) as *const __m256i));
                for g in unit_groups::<T>(u) {
                    for (h, sum) in sum.iter_mut().enumerate() {
                        let wg = _mm256_load_si256(blk.w[g].as_ptr().add(32 * h) as *const __m256i);
                        *sum = if offset {
                            let a4 = _mm256_set1_epi32(au.add(g).read_unaligned());
                            dot_u8_i8::<ISA>(*sum, a4, wg)
                        } else {
                            // |w| and the activations given w's sign (pair sums ≤
                            // 2·128·127 fit the 16-bit step).
                            let a4 = _mm256_set1_epi32(aq.add(g).read_unaligned());
                            let abs = _mm256_sign_epi8(wg, wg);
                            dot_u8_i8::<ISA>(*sum, abs, _mm256_sign_epi8(a4, wg))
                        };
                    }
                }
                for (h, sum) in sum.iter().enumerate() {
                    let s = _mm256_mul_ps(_mm256_load_ps(blk.d[u].as_ptr().add(8 * h)), da);
                    acc[r][h] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(*sum), acc[r][h]);
                }
            }
            if has_min(T) {
                let sum = _mm256_set1_ps(*a.sum.get_unchecked(j) as f32);
                for h in 0..2 {
                    let m = _mm256_mul_ps(_mm256_load_ps(blk.mins.as_ptr().add(8 * h)), da);
                    macc[r][h] = _mm256_fmadd_ps(m, sum, macc[r][h]);
                }
            }
        }
    }
    for r in 0..R {
        let mut y = [0f32; PANEL];
        for h in 0..2 {
            _mm256_storeu_ps(
                y.as_mut_ptr().add(8 * h),
                _mm256_add_ps(acc[r][h], macc[r][h]),
            );
        }
        for (i, v) in y.iter().take(k).enumerate() {
            out.write((r0 + r) * n + c + i, *v);
        }
    }
}
