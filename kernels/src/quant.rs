//! GGUF weight formats (ggml block layouts) and the activation format they are
//! multiplied with.
//!
//! Every weight type is seen by the matmul as a sequence of 32-element sub-blocks,
//! each `d · w_i + m` with small integers `w_i` (i8) and two f32 factors (Q6_K, with a
//! scale per 16 elements, gives two `d`s). Activations are quantized per row into
//! 32-element Q8 blocks (`d_a`, i8 `a_i`, and Σa_i). The dot product of a sub-block is
//! then `d·d_a·Σ w_i a_i + m·d_a·Σ a_i`: integer work that SIMD does exactly, and a
//! few float operations done in one fixed order, so results never depend on the SIMD
//! level, the number of rows or the thread count.

use half::f16;

/// The weight types teacher multiplies (ggml type ids in comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QType {
    F32,   // 0
    F16,   // 1
    Q4_0,  // 2
    Q4_1,  // 3
    Q5_0,  // 6
    Q5_1,  // 7
    Q8_0,  // 8
    Q4K,   // 12
    Q5K,   // 13
    Q6K,   // 14
    Q2K,   // 10
    Q3K,   // 11
    IQ4NL, // 20
    IQ4XS, // 23
    BF16,  // 30
}

/// The non-linear 4-bit codebook of IQ4_NL and IQ4_XS (ggml `kvalues_iq4nl`).
pub const IQ4_VALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

impl QType {
    /// The block-quantized types the matmul kernels multiply.
    pub const QUANTIZED: [QType; 12] = [
        QType::Q4_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q5_1,
        QType::Q8_0,
        QType::Q2K,
        QType::Q3K,
        QType::Q4K,
        QType::Q5K,
        QType::Q6K,
        QType::IQ4NL,
        QType::IQ4XS,
    ];

    /// The minimum/offset terms of a 32-element sub-block: 0 (symmetric types), 1 (one
    /// `m` for the sub-block) or 2 (Q2_K: one per 16 elements).
    /// How many scales a 32-element sub-block has: two (one per 16-element half: Q2_K,
    /// Q3_K, Q6_K) or one. The matmul sums and scales each such unit exactly once.
    pub fn scale_units(self) -> usize {
        match self {
            QType::Q2K | QType::Q3K | QType::Q6K => 2,
            _ => 1,
        }
    }

    pub fn min_terms(self) -> usize {
        match self {
            QType::Q4_1 | QType::Q5_1 | QType::Q4K | QType::Q5K => 1,
            QType::Q2K => 2,
            _ => 0,
        }
    }

    /// Every type teacher reads, floats first.
    pub const ALL: [QType; 15] = [
        QType::F32,
        QType::F16,
        QType::BF16,
        QType::Q4_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q5_1,
        QType::Q8_0,
        QType::Q2K,
        QType::Q3K,
        QType::Q4K,
        QType::Q5K,
        QType::Q6K,
        QType::IQ4NL,
        QType::IQ4XS,
    ];

    /// The ggml type id (`enum ggml_type`).
    pub fn ggml_id(self) -> u32 {
        match self {
            QType::F32 => 0,
            QType::F16 => 1,
            QType::Q4_0 => 2,
            QType::Q4_1 => 3,
            QType::Q5_0 => 6,
            QType::Q5_1 => 7,
            QType::Q8_0 => 8,
            QType::Q2K => 10,
            QType::Q3K => 11,
            QType::Q4K => 12,
            QType::Q5K => 13,
            QType::Q6K => 14,
            QType::IQ4NL => 20,
            QType::IQ4XS => 23,
            QType::BF16 => 30,
        }
    }

    pub fn from_ggml(id: u32) -> Option<QType> {
        QType::ALL.into_iter().find(|t| t.ggml_id() == id)
    }

    /// Elements per block.
    pub fn block_elems(self) -> usize {
        match self {
            QType::F32 | QType::F16 | QType::BF16 => 1,
            QType::Q4_0 | QType::Q4_1 | QType::Q5_0 | QType::Q5_1 | QType::Q8_0 => 32,
            QType::IQ4NL => 32,
            QType::Q2K | QType::Q3K | QType::Q4K | QType::Q5K | QType::Q6K | QType::IQ4XS => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            QType::F32 => 4,
            QType::F16 | QType::BF16 => 2,
            QType::Q4_0 => 18,
            QType::Q4_1 => 20,
            QType::Q5_0 => 22,
            QType::Q5_1 => 24,
            QType::Q8_0 => 34,
            QType::Q4K => 144,
            QType::Q5K => 176,
            QType::Q6K => 210,
            QType::Q2K => 84,
            QType::Q3K => 110,
            QType::IQ4NL => 18,
            QType::IQ4XS => 136,
        }
    }

    pub fn row_bytes(self, k: usize) -> usize {
        k / self.block_elems() * self.block_bytes()
    }

    pub fn name(self) -> &'static str {
        match self {
            QType::F32 => "F32",
            QType::F16 => "F16",
            QType::BF16 => "BF16",
            QType::Q4_0 => "Q4_0",
            QType::Q4_1 => "Q4_1",
            QType::Q5_0 => "Q5_0",
            QType::Q5_1 => "Q5_1",
            QType::Q8_0 => "Q8_0",
            QType::Q4K => "Q4_K",
            QType::Q5K => "Q5_K",
            QType::Q6K => "Q6_K",
            QType::Q2K => "Q2_K",
            QType::Q3K => "Q3_K",
            QType::IQ4NL => "IQ4_NL",
            QType::IQ4XS => "IQ4_XS",
        }
    }

    /// Whether the matmul takes the integer path (quantized activations); float
    /// weights are multiplied in f32.
    pub fn is_quantized(self) -> bool {
        !matches!(self, QType::F32 | QType::F16 | QType::BF16)
    }
}

#[inline(always)]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// One 32-element sub-block of weights as integers and factors: value_i = d[h]·w_i + m[h]
/// with h = i / 16 (the K-quants with 16-element scales — Q2_K, Q3_K, Q6_K — have two
/// `d`s; only Q2_K has two different `m`s; every other type repeats one).
#[derive(Debug, Clone, Copy)]
pub struct SubBlock {
    pub w: [i8; 32],
    pub d: [f32; 2],
    pub m: [f32; 2],
}

impl Default for SubBlock {
    fn default() -> Self {
        SubBlock {
            w: [0; 32],
            d: [0.0; 2],
            m: [0.0; 2],
        }
    }
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block.
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Decode the sub-blocks of one weight block (`block` holds exactly one block) into
/// `out` (1 for the 32-element types, 8 for the K-quants). The scalar reference for
/// every SIMD decoder.
pub fn decode_block(t: QType, block: &[u8], out: &mut [SubBlock]) {
    match t {
        QType::Q4_0 | QType::Q4_1 => {
            let d = f16_at(block, 0);
            let (m, qs) = if t == QType::Q4_1 {
                (f16_at(block, 2), &block[4..20])
            } else {
                (0.0, &block[2..18])
            };
            let off = if t == QType::Q4_0 { 8 } else { 0 };
            let sb = &mut out[0];
            for j in 0..16 {
                sb.w[j] = (qs[j] & 0xF) as i8 - off;
                sb.w[j + 16] = (qs[j] >> 4) as i8 - off;
            }
            sb.d = [d, d];
            sb.m = [m, m];
        }
        QType::Q5_0 | QType::Q5_1 => {
            let d = f16_at(block, 0);
            let (m, rest) = if t == QType::Q5_1 {
                (f16_at(block, 2), &block[4..])
            } else {
                (0.0, &block[2..])
            };
            let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let qs = &rest[4..20];
            let off = if t == QType::Q5_0 { 16 } else { 0 };
            let sb = &mut out[0];
            for j in 0..16 {
                let h0 = (((qh >> j) << 4) & 0x10) as u8;
                let h1 = ((qh >> (j + 12)) & 0x10) as u8;
                sb.w[j] = ((qs[j] & 0xF) | h0) as i8 - off;
                sb.w[j + 16] = ((qs[j] >> 4) | h1) as i8 - off;
            }
            sb.d = [d, d];
            sb.m = [m, m];
        }
        QType::Q8_0 => {
            let d = f16_at(block, 0);
            let sb = &mut out[0];
            for j in 0..32 {
                sb.w[j] = block[2 + j] as i8;
            }
            sb.d = [d, d];
            sb.m = [0.0; 2];
        }
        QType::Q4K | QType::Q5K => {
            let d = f16_at(block, 0);
            let dmin = f16_at(block, 2);
            let scales = &block[4..16];
            let (qh, qs) = if t == QType::Q5K {
                (&block[16..48], &block[48..176])
            } else {
                (&block[0..0], &block[16..144])
            };
            for chunk in 0..4 {
                let q = &qs[chunk * 32..chunk * 32 + 32];
                for half in 0..2 {
                    let is = 2 * chunk + half;
                    let (sc, mn) = scale_min_k4(is, scales);
                    let sb = &mut out[is];
                    for l in 0..32 {
                        let lo = if half == 0 { q[l] & 0xF } else { q[l] >> 4 };
                        let hi = if t == QType::Q5K && qh[l] & (1 << is) != 0 {
                            16
                        } else {
                            0
                        };
                        sb.w[l] = (lo + hi) as i8;
                    }
                    let dd = d * sc as f32;
                    sb.d = [dd, dd];
                    let mm = -(dmin * mn as f32);
                    sb.m = [mm, mm];
                }
            }
        }
        QType::Q6K => {
            let ql = &block[0..128];
            let qh = &block[128..192];
            let sc = &block[192..208];
            let d = f16_at(block, 208);
            for n in 0..2 {
                let ql = &ql[n * 64..];
                let qh = &qh[n * 32..];
                let sc = &sc[n * 8..];
                // Four 32-element sub-blocks per 128: l, l+32, l+64, l+96.
                for (part, shift_l, hi_shift, ql_off) in [
                    (0usize, 0u8, 0u8, 0usize),
                    (1, 0, 2, 32),
                    (2, 4, 4, 0),
                    (3, 4, 6, 32),
                ] {
                    let sb = &mut out[n * 4 + part];
                    for l in 0..32 {
                        let low = (ql[l + ql_off] >> shift_l) & 0xF;
                        let high = ((qh[l] >> hi_shift) & 3) << 4;
                        sb.w[l] = (low | high) as i8 - 32;
                    }
                    let s0 = sc[2 * part] as i8 as f32;
                    let s1 = sc[2 * part + 1] as i8 as f32;
                    sb.d = [d * s0, d * s1];
                    sb.m = [0.0; 2];
                }
            }
        }
        QType::Q2K => {
            // scales[16] (low nibble scale, high nibble min, per 16 elements),
            // qs[64] (2-bit), d, dmin.
            let scales = &block[0..16];
            let qs = &block[16..80];
            let d = f16_at(block, 80);
            let dmin = f16_at(block, 82);
            for n in 0..2 {
                let q = &qs[n * 32..n * 32 + 32];
                for j in 0..4 {
                    let s = n * 4 + j;
                    let sb = &mut out[s];
                    for l in 0..32 {
                        sb.w[l] = ((q[l] >> (2 * j)) & 3) as i8;
                    }
                    let (a, b) = (scales[2 * s], scales[2 * s + 1]);
                    sb.d = [d * (a & 0xF) as f32, d * (b & 0xF) as f32];
                    sb.m = [-(dmin * (a >> 4) as f32), -(dmin * (b >> 4) as f32)];
                }
            }
        }
        QType::Q3K => {
            // hmask[32], qs[64] (low 2 bits), scales[12] (sixteen 6-bit scales), d.
            let hm = &block[0..32];
            let qs = &block[32..96];
            let sc = q3k_scales(&block[96..108]);
            let d = f16_at(block, 108);
            for n in 0..2 {
                let q = &qs[n * 32..n * 32 + 32];
                for j in 0..4 {
                    let s = n * 4 + j;
                    let bit = 1u8 << s;
                    let sb = &mut out[s];
                    for l in 0..32 {
                        let low = ((q[l] >> (2 * j)) & 3) as i8;
                        sb.w[l] = low - if hm[l] & bit != 0 { 0 } else { 4 };
                    }
                    sb.d = [
                        d * (sc[2 * s] as i32 - 32) as f32,
                        d * (sc[2 * s + 1] as i32 - 32) as f32,
                    ];
                    sb.m = [0.0; 2];
                }
            }
        }
        QType::IQ4NL => {
            let d = f16_at(block, 0);
            let qs = &block[2..18];
            let sb = &mut out[0];
            for j in 0..16 {
                sb.w[j] = IQ4_VALUES[(qs[j] & 0xF) as usize];
                sb.w[j + 16] = IQ4_VALUES[(qs[j] >> 4) as usize];
            }
            sb.d = [d, d];
            sb.m = [0.0; 2];
        }
        QType::IQ4XS => {
            // d, scales_h (u16), scales_l[4], qs[128]: eight 32-element sub-blocks with
            // 6-bit scales (offset 32) over the IQ4_NL codebook.
            let d = f16_at(block, 0);
            let sh = u16::from_le_bytes([block[2], block[3]]);
            let sl = &block[4..8];
            let qs = &block[8..136];
            for (ib, sb) in out.iter_mut().enumerate().take(8) {
                let ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 0xF) as i32
                    | ((((sh >> (2 * ib)) & 3) as i32) << 4);
                let dl = d * (ls - 32) as f32;
                let q = &qs[ib * 16..ib * 16 + 16];
                for j in 0..16 {
                    sb.w[j] = IQ4_VALUES[(q[j] & 0xF) as usize];
                    sb.w[j + 16] = IQ4_VALUES[(q[j] >> 4) as usize];
                }
                sb.d = [dl, dl];
                sb.m = [0.0; 2];
            }
        }
        QType::F32 | QType::F16 | QType::BF16 => {
            unreachable!("float weights are not decoded into sub-blocks")
        }
    }
}

/// The sixteen 6-bit scales of a Q3_K block, unpacked from its 12 bytes (ggml's
/// kmask shuffle: low 4 bits from bytes 0–7, high 2 bits from bytes 8–11).
fn q3k_scales(b: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 { b[i] & 0xF } else { b[i - 8] >> 4 };
        let high = (b[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = low | (high << 4);
    }
    out
}

/// Sub-blocks per block.
pub fn sub_blocks(t: QType) -> usize {
    t.block_elems() / 32
}

/// Dequantize one row of `k` elements (reference path; also the embedding lookup).
pub fn dequantize_row(t: QType, row: &[u8], k: usize, out: &mut [f32]) {
    match t {
        QType::F32 => {
            for (i, o) in out[..k].iter_mut().enumerate() {
                *o = f32::from_le_bytes(row[4 * i..4 * i + 4].try_into().unwrap());
            }
        }
        QType::F16 => {
            for (i, o) in out[..k].iter_mut().enumerate() {
                *o = f16_at(row, 2 * i);
            }
        }
        QType::BF16 => {
            for (i, o) in out[..k].iter_mut().enumerate() {
                *o = half::bf16::from_le_bytes([row[2 * i], row[2 * i + 1]]).to_f32();
            }
        }
        _ => {
            let mut sbs = [SubBlock::default(); 8];
            let nsb = sub_blocks(t);
            for (b, block) in row
                .chunks_exact(t.block_bytes())
                .enumerate()
                .take(k / t.block_elems())
            {
                decode_block(t, block, &mut sbs[..nsb]);
                for (s, sb) in sbs[..nsb].iter().enumerate() {
                    let base = b * t.block_elems() + s * 32;
                    for i in 0..32 {
                        out[base + i] = sb.d[i / 16] * sb.w[i] as f32 + sb.m[i / 16];
                    }
                }
            }
        }
    }
}

/// A row of activations quantized to 32-element Q8 blocks.
#[derive(Debug, Clone, Default)]
pub struct Q8Row {
    pub d: Vec<f32>,
    /// Σ a_i per block.
    pub sum: Vec<i32>,
    /// The quantized values, 32 per block.
    pub qs: Vec<i8>,
    /// The same values offset by 128 as unsigned bytes (a + 128 = a XOR 0x80), the
    /// unsigned operand VNNI's u8·i8 dot product wants.
    pub qu: Vec<u8>,
}

impl Q8Row {
    /// Quantize `x` (length a multiple of 32) as ggml's quantize_row_q8_0 does:
    /// d = max|x|/127, a_i = round(x_i/d).
    pub fn quantize(x: &[f32], out: &mut Q8Row) {
        let nb = x.len() / 32;
        out.d.resize(nb, 0.0);
        out.sum.resize(nb, 0);
        out.qs.resize(nb * 32, 0);
        out.qu.resize(nb * 32, 0);
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
            {
                // SAFETY: the features were just detected.
                unsafe { quantize_avx512(x, out) };
                return;
            }
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the feature was just detected.
                unsafe { quantize_avx2(x, out) };
                return;
            }
        }
        quantize_into(x, out);
    }
}

/// The same code compiled for AVX2: only exact operations (max, multiply, integer
/// conversion), so the same bits as the baseline build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2(x: &[f32], out: &mut Q8Row) {
    quantize_blocks::<false>(x, out)
}

/// The same code again for AVX-512 (a block's 32 numbers in two registers; BW for the
/// byte stores): the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_avx512(x: &[f32], out: &mut Q8Row) {
    quantize_blocks::<true>(x, out)
}

fn quantize_into(x: &[f32], out: &mut Q8Row) {
    quantize_blocks::<false>(x, out)
}

/// The largest non-NaN |x| of a block (0 if none), as the select fold of
/// `quantize_blocks` finds it: `vmaxps(a, m)` is `a > m ? a : m`, the fold's select, over
/// sixteen lanes and then across them — max is exact and, without NaNs (they never win
/// the select) and without −0 (|x| is never −0), independent of the order.
///
/// SAFETY (caller): AVX-512 F; `blk` has 32 numbers.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block_amax_512(blk: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let p = blk.as_ptr();
    let m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(p)), _mm512_setzero_ps());
    let m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(p.add(16))), m);
    _mm512_reduce_max_ps(m)
}

/// Quantize whole blocks; `WIDE` (the AVX-512 build only) finds each block's maximum
/// with 512-bit instructions, which the compiler does not make of the fold.
#[inline(always)]
fn quantize_blocks<const WIDE: bool>(x: &[f32], out: &mut Q8Row) {
    for (b, blk) in x.chunks_exact(32).enumerate() {
        let amax = if WIDE {
            // SAFETY: WIDE is only set by the AVX-512 build.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                block_amax_512(blk)
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!()
        } else {
            block_amax(blk)
        };
        let (d, id) = q8_scale(amax);
        let qs = &mut out.qs[b * 32..b * 32 + 32];
        let qu = &mut out.qu[b * 32..b * 32 + 32];
        let mut s = 0i32;
        for i in 0..32 {
            let q = q8_value(blk[i], id);
            s += q;
            qs[i] = q as i8;
            qu[i] = q as u8 ^ 0x80;
        }
        out.d[b] = d;
        out.sum[b] = s;
    }
}

/// Quantize `x` (a multiple of 32 long) into the caller's storage, `qs` (one number
/// each) and `d` (one scale per 32): the numbers and scales `Q8Row::quantize` makes of
/// it (a KV cache's rows are stored this way).
pub fn quantize_q8_into(x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    assert!(
        x.len().is_multiple_of(32) && qs.len() == x.len() && d.len() == x.len() / 32,
        "q8 blocks of {} numbers into {} numbers and {} scales",
        x.len(),
        qs.len(),
        d.len()
    );
    for ((blk, qs), d) in x.chunks_exact(32).zip(qs.chunks_exact_mut(32)).zip(d) {
        let (scale, id) = q8_scale(block_amax(blk));
        for (q, &x) in qs.iter_mut().zip(blk) {
            *q = q8_value(x, id) as i8;
        }
        *d = scale;
    }
}

/// The largest non-NaN |x| of a block (0 if none). A select rather than `f32::max`
/// (same result: a NaN never wins either way), which the compiler turns into vector max
/// instructions.
#[inline(always)]
fn block_amax(blk: &[f32]) -> f32 {
    blk.iter()
        .fold(0f32, |m, v| if v.abs() > m { v.abs() } else { m })
}

/// A block's scale d = max|x|/127 and its inverse (0 for an all-zero block).
#[inline(always)]
fn q8_scale(amax: f32) -> (f32, f32) {
    let d = amax / 127.0;
    (d, if d != 0.0 { 1.0 / d } else { 0.0 })
}

/// One number of a block: round(x/d) in [−127, 127], NaN as 0.
#[inline(always)]
fn q8_value(x: f32, id: f32) -> i32 {
    round_half_away(q8_range(x * id)).clamp(-127, 127)
}

/// x/d limited to [−128, 128], NaN as 0: what a saturating conversion and the clamp to
/// ±127 would make of anything outside anyway (an infinite 1/d, a NaN input), so that
/// `round_half_away` can truncate without saturating.
#[inline(always)]
fn q8_range(x: f32) -> f32 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-128.0, 128.0)
    }
}

/// `x.round() as i32` (halves away from zero, as C's roundf) for |x| ≤ 128, without a
/// libm call, so the loop around it vectorises: truncate, then step by the exact
/// remainder. (The truncation is a plain one: Rust's saturating `as` is converted lane
/// by lane.)
#[inline(always)]
fn round_half_away(x: f32) -> i32 {
    debug_assert!(x.abs() <= 128.0, "{x}");
    // SAFETY: x is finite and far within i32 (`q8_range`).
    let t = unsafe { x.to_int_unchecked::<i32>() };
    let frac = x - t as f32;
    t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quantize a row into a block type with simple reference encoders, so decode can be
    /// checked against known values.
    fn encode_q4_1(x: &[f32; 32]) -> Vec<u8> {
        let min = x.iter().cloned().fold(f32::INFINITY, f32::min);
        let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut b = Vec::new();
        b.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        b.extend_from_slice(&f16::from_f32(min).to_le_bytes());
        for j in 0..16 {
            let lo = (((x[j] - min) * id).round() as u8).min(15);
            let hi = (((x[j + 16] - min) * id).round() as u8).min(15);
            b.push(lo | (hi << 4));
        }
        b
    }

    #[test]
    fn q4_1_round_trip_is_close() {
        let mut x = [0f32; 32];
        for (i, v) in x.iter_mut().enumerate() {
            *v = (i as f32 * 0.37).sin() * 2.0;
        }
        let b = encode_q4_1(&x);
        let mut y = [0f32; 32];
        dequantize_row(QType::Q4_1, &b, 32, &mut y);
        for i in 0..32 {
            assert!(
                (x[i] - y[i]).abs() < 4.0 / 15.0 * 0.6,
                "{i}: {} vs {}",
                x[i],
                y[i]
            );
        }
    }

    #[test]
    fn q8_row_quantization() {
        let x: Vec<f32> = (0..64).map(|i| i as f32 - 32.0).collect();
        let mut q = Q8Row::default();
        Q8Row::quantize(&x, &mut q);
        assert_eq!(q.d.len(), 2);
        assert_eq!(q.qs[0], -127);
        assert_eq!(q.sum[0], q.qs[..32].iter().map(|&v| v as i32).sum::<i32>());
    }

    type Build = fn(&[f32], &mut Q8Row);

    /// Every build of the quantizer this CPU runs, the baseline first.
    fn builds() -> Vec<(&'static str, Build)> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut v: Vec<(&'static str, Build)> = vec![("baseline", quantize_into)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY (of the call): the feature was detected.
                v.push(("avx2", |x, o| unsafe { quantize_avx2(x, o) }));
            }
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
            {
                // SAFETY (of the call): the features were detected.
                v.push(("avx512", |x, o| unsafe { quantize_avx512(x, o) }));
            }
        }
        v
    }

    /// `x` quantized by one build into a row of the right sizes.
    fn quantized_by(build: Build, x: &[f32]) -> Q8Row {
        let nb = x.len() / 32;
        let mut q = Q8Row {
            d: vec![0.0; nb],
            sum: vec![0; nb],
            qs: vec![0; nb * 32],
            qu: vec![0; nb * 32],
        };
        build(x, &mut q);
        q
    }

    fn assert_same(a: &Q8Row, b: &Q8Row, what: &str) {
        assert_eq!((&a.qs, &a.qu, &a.sum), (&b.qs, &b.qu, &b.sum), "{what}");
        assert!(
            a.d.iter()
                .zip(&b.d)
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            "{what}: scales"
        );
    }

    #[test]
    fn simd_build_of_quantization_gives_the_baseline_bits() {
        let x: Vec<f32> = (0..32 * 40)
            .map(|i| ((i * 7919) % 2003) as f32 / 97.0 - 10.0 + if i % 64 == 0 { 0.5 } else { 0.0 })
            .collect();
        let base = quantized_by(quantize_into, &x);
        for (name, build) in builds() {
            assert_same(&quantized_by(build, &x), &base, name);
        }
        let mut a = Q8Row::default();
        Q8Row::quantize(&x, &mut a);
        assert_same(&a, &base, "Q8Row::quantize");
    }

    #[test]
    fn rounding_matches_roundf_on_every_half_and_neighbour() {
        let mut x = -128.0f32;
        while x <= 128.0 {
            for v in [x, x.next_up(), x.next_down()].map(q8_range) {
                assert_eq!(round_half_away(v), v.round() as i32, "{v}");
            }
            x += 0.25;
        }
        assert_eq!(round_half_away(q8_range(f32::NAN)), 0);
    }

    /// The quantizer as first written (a saturating conversion), the definition the
    /// vectorising one must give bit for bit.
    fn quantize_by_cast(x: &[f32], out: &mut Q8Row) {
        for (b, blk) in x.chunks_exact(32).enumerate() {
            let amax = blk
                .iter()
                .fold(0f32, |m, v| if v.abs() > m { v.abs() } else { m });
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut s = 0i32;
            for i in 0..32 {
                let v = blk[i] * id;
                let t = v as i32;
                let frac = v - t as f32;
                let q = (t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)).clamp(-127, 127);
                s += q;
                out.qs[b * 32 + i] = q as i8;
                out.qu[b * 32 + i] = q as u8 ^ 0x80;
            }
            out.d[b] = d;
            out.sum[b] = s;
        }
    }

    #[test]
    fn quantizer_gives_the_saturating_bits_on_extreme_rows() {
        // Blocks of ordinary numbers, halves, subnormals (1/d overflows to infinity),
        // infinities, NaNs, zeros and the largest floats.
        let sub = f32::from_bits(3);
        let blocks: Vec<Vec<f32>> = vec![
            (0..32).map(|i| (i as f32 * 0.77).sin() * 3.0).collect(),
            (0..32).map(|i| i as f32 - 15.5).collect(),
            (0..32)
                .map(|i| {
                    if i % 3 == 0 {
                        sub
                    } else {
                        -sub * (i % 5) as f32
                    }
                })
                .collect(),
            (0..32)
                .map(|i| if i == 7 { f32::INFINITY } else { i as f32 })
                .collect(),
            (0..32)
                .map(|i| if i == 3 { f32::NAN } else { -(i as f32) })
                .collect(),
            (0..32)
                .map(|i| {
                    if i % 2 == 0 {
                        f32::NEG_INFINITY
                    } else {
                        f32::NAN
                    }
                })
                .collect(),
            vec![0.0; 32],
            (0..32)
                .map(|i| {
                    if i % 2 == 0 {
                        f32::MAX
                    } else {
                        -f32::MAX / 3.0
                    }
                })
                .collect(),
            (0..32).map(|i| 127.0 / 254.0 * (i as f32 - 16.0)).collect(),
        ];
        let x: Vec<f32> = blocks.concat();
        let by_cast = quantized_by(quantize_by_cast, &x);
        // Every build: the baseline, AVX2 and AVX-512 where the CPU has them.
        for (name, build) in builds() {
            assert_same(&quantized_by(build, &x), &by_cast, name);
        }
        // The KV cache's quantizer makes the same numbers and scales.
        let (mut qs, mut d) = (vec![0i8; x.len()], vec![0f32; x.len() / 32]);
        quantize_q8_into(&x, &mut qs, &mut d);
        assert_eq!(qs, by_cast.qs);
        let bits = |d: &[f32]| d.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&d), bits(&by_cast.d));
    }
}
