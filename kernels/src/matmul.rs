//! Quantized matrix multiplication y = x·Wᵀ for B activation rows.
//!
//! # The one summation order
//! For output (r, c), over the row's 32-element sub-blocks j in order:
//! - eight i32 lane sums p_l = Σ_{i=4l}^{4l+3} w_i·a_i (exact integers);
//! - lanes_l = fma(d_j·da_j, p_l, lanes_l) (Q6_K: d0 for lanes 0–3, d1 for 4–7);
//! - macc = fma(m_j·da_j, Σa, macc) when the type has a minimum/offset;
//! - y = ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)) + macc.
//!
//! The scalar reference, the AVX2 kernel and any later kernel compute exactly this, so
//! y is bit-identical whatever the SIMD level, the number of rows B (each weight block
//! is decoded once and applied to all rows, but rows never mix) and the thread count
//! (threads split the output columns; one column is computed by one thread).

use crate::quant::{decode_block, dequantize_row, sub_blocks, Q8Row, QType, SubBlock};
use rayon::prelude::*;

/// A weight matrix in a GGUF block format, `rows` outputs × `cols` inputs, row-major.
#[derive(Debug, Clone, Copy)]
pub struct QMatrix<'a> {
    pub t: QType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

impl<'a> QMatrix<'a> {
    pub fn new(t: QType, rows: usize, cols: usize, data: &'a [u8]) -> Option<Self> {
        if !cols.is_multiple_of(t.block_elems()) || data.len() != rows * t.row_bytes(cols) {
            return None;
        }
        Some(QMatrix {
            t,
            rows,
            cols,
            data,
        })
    }

    pub fn row(&self, i: usize) -> &'a [u8] {
        let rb = self.t.row_bytes(self.cols);
        &self.data[i * rb..(i + 1) * rb]
    }

    /// Row `i` as f32 (embedding lookup).
    pub fn dequantize_row(&self, i: usize, out: &mut [f32]) {
        dequantize_row(self.t, self.row(i), self.cols, out);
    }
}

/// Which implementation runs; recorded in run manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    Avx2,
    /// AVX2 with AVX-VNNI dot products: the same integers, so the same bits as Avx2.
    AvxVnni,
}

pub fn detected_isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("TEACHER_FORCE_SCALAR").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            if std::env::var_os("TEACHER_NO_VNNI").is_none() && is_x86_feature_detected!("avxvnni")
            {
                return Isa::AvxVnni;
            }
            return Isa::Avx2;
        }
    }
    Isa::Scalar
}

/// Columns per parallel task: about four tasks per thread (to balance uneven cores),
/// at least 16 columns and a multiple of 16. The split never changes a result: one
/// column is always computed whole by one task.
fn cols_per_task(n: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let per = n.div_ceil(threads * 4);
    per.div_ceil(16).max(1) * 16
}

/// Activation rows multiplied together against one weight column.
const ROWS_PER_TILE: usize = 32;

/// Raw pointer to the output, shared by tasks that write disjoint columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// (The pointers are only dereferenced through `write`.)
// SAFETY: every task writes only the columns of its own range, so no two threads
// touch the same element; the borrow of `y` outlives the parallel region.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// SAFETY (caller): `i` is in bounds and written by this thread only.
    #[inline]
    unsafe fn write(self, i: usize, v: f32) {
        *self.0.add(i) = v;
    }
}

/// y[r·n + c] = Σ_k x[r·k + k] · W[c][k] for r < m, c < n = w.rows.
pub fn matmul(w: &QMatrix, x: &[f32], m: usize, y: &mut [f32]) {
    matmul_with(w, x, m, y, detected_isa());
}

pub fn matmul_with(w: &QMatrix, x: &[f32], m: usize, y: &mut [f32], isa: Isa) {
    matmul_many_with(&mut [(w, y)], x, m, isa);
}

/// Several products of the same activations (q, k and v; gate and up) in one parallel
/// region: the activations are quantized once and the threads are woken once.
pub fn matmul_many(jobs: &mut [(&QMatrix, &mut [f32])], x: &[f32], m: usize) {
    matmul_many_with(jobs, x, m, detected_isa());
}

pub fn matmul_many_with(jobs: &mut [(&QMatrix, &mut [f32])], x: &[f32], m: usize, isa: Isa) {
    if m == 0 || jobs.is_empty() {
        return;
    }
    let k = jobs[0].0.cols;
    assert_eq!(x.len(), m * k, "activation shape");
    for (w, y) in jobs.iter() {
        assert_eq!(w.cols, k, "matrices of one call share their input size");
        assert_eq!(y.len(), m * w.rows, "output shape");
    }
    let acts: Vec<Q8Row> = if jobs.iter().any(|(w, _)| w.t.is_quantized()) {
        (0..m)
            .map(|r| {
                let mut q = Q8Row::default();
                Q8Row::quantize(&x[r * k..(r + 1) * k], &mut q);
                q
            })
            .collect()
    } else {
        Vec::new()
    };
    let outs: Vec<OutPtr> = jobs
        .iter_mut()
        .map(|(_, y)| OutPtr(y.as_mut_ptr()))
        .collect();
    let total: usize = jobs.iter().map(|(w, _)| w.rows).sum();
    let per = cols_per_task(total);
    // (job, first column, end column) per task.
    let mut tasks: Vec<(usize, usize, usize)> = Vec::new();
    for (j, (w, _)) in jobs.iter().enumerate() {
        for c0 in (0..w.rows).step_by(per) {
            tasks.push((j, c0, (c0 + per).min(w.rows)));
        }
    }
    let mats: Vec<&QMatrix> = jobs.iter().map(|(w, _)| *w).collect();
    let run = |&(j, c0, c1): &(usize, usize, usize)| {
        let w = mats[j];
        let out = outs[j];
        let n = w.rows;
        if !w.t.is_quantized() {
            let mut wrow = vec![0f32; k];
            for c in c0..c1 {
                w.dequantize_row(c, &mut wrow);
                for r in 0..m {
                    let v = dot_f32(&x[r * k..(r + 1) * k], &wrow);
                    // SAFETY: column c belongs to this task only; r·n + c < m·n.
                    unsafe { out.write(r * n + c, v) };
                }
            }
            return;
        }
        let tile = m.min(ROWS_PER_TILE);
        let mut lanes = vec![[0f32; 8]; tile];
        let mut macc = vec![0f32; tile];
        // Rows in tiles, so a tile's activations stay in cache while the task's weight
        // columns are streamed; a row's result does not depend on its tile.
        for r0 in (0..m).step_by(ROWS_PER_TILE) {
            let rows = &acts[r0..(r0 + ROWS_PER_TILE).min(m)];
            let (lanes, macc) = (&mut lanes[..rows.len()], &mut macc[..rows.len()]);
            for c in c0..c1 {
                lanes.iter_mut().for_each(|l| *l = [0.0; 8]);
                macc.iter_mut().for_each(|v| *v = 0.0);
                match isa {
                    Isa::Scalar => column_scalar(w, c, rows, lanes, macc),
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: Avx2 is only chosen after detecting avx2, fma and f16c.
                    Isa::Avx2 => unsafe { avx2::column(w, c, rows, lanes, macc) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AvxVnni is only chosen after detecting avx2, fma, f16c, avxvnni.
                    Isa::AvxVnni => unsafe { avx2::column_vnni(w, c, rows, lanes, macc) },
                    #[cfg(not(target_arch = "x86_64"))]
                    Isa::Avx2 | Isa::AvxVnni => column_scalar(w, c, rows, lanes, macc),
                }
                for (i, (l, mc)) in lanes.iter().zip(macc.iter()).enumerate() {
                    let v = reduce(l) + mc;
                    // SAFETY: column c belongs to this task only; (r0+i)·n + c < m·n.
                    unsafe { out.write((r0 + i) * n + c, v) };
                }
            }
        }
    };
    tasks.par_iter().for_each(run);
}

#[inline]
fn reduce(l: &[f32; 8]) -> f32 {
    let t = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    (t[0] + t[2]) + (t[1] + t[3])
}

/// Sequential f32 dot (float weights are rare here: norms are not matmuls).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (x, y) in a.iter().zip(b) {
        acc = x.mul_add(*y, acc);
    }
    acc
}

/// The scalar reference for one output column over all rows.
fn column_scalar(w: &QMatrix, c: usize, acts: &[Q8Row], lanes: &mut [[f32; 8]], macc: &mut [f32]) {
    let t = w.t;
    let nsb = sub_blocks(t);
    let mut sbs = [SubBlock::default(); 8];
    for (b, block) in w.row(c).chunks_exact(t.block_bytes()).enumerate() {
        decode_block(t, block, &mut sbs[..nsb]);
        for (s, sb) in sbs[..nsb].iter().enumerate() {
            let j = b * nsb + s;
            for (r, a) in acts.iter().enumerate() {
                let qa = &a.qs[j * 32..j * 32 + 32];
                let da = a.d[j];
                for l in 0..8 {
                    let mut p = 0i32;
                    for i in 4 * l..4 * l + 4 {
                        p += sb.w[i] as i32 * qa[i] as i32;
                    }
                    let scale = sb.d[l / 4] * da;
                    lanes[r][l] = scale.mul_add(p as f32, lanes[r][l]);
                }
                if sb.m != 0.0 {
                    macc[r] = (sb.m * da).mul_add(a.sum[j] as f32, macc[r]);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    /// f16 → f32 with F16C (exact, like the scalar conversion).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f16(b: &[u8], at: usize) -> f32 {
        let bits = u16::from_le_bytes([*b.get_unchecked(at), *b.get_unchecked(at + 1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    /// Decode one 32-element sub-block's integers into a register (fast paths for the
    /// common 32-element types, the scalar decoder otherwise).
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load_q4(qs: *const u8, offset: i8) -> __m256i {
        let raw = _mm_loadu_si128(qs as *const __m128i);
        let mask = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(raw, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
        let v = _mm256_set_m128i(hi, lo);
        _mm256_sub_epi8(v, _mm256_set1_epi8(offset))
    }

    /// Eight i32 lane sums of w·a (4 products each), exact.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn lane_dot(w: __m256i, a: *const i8) -> __m256 {
        let a = _mm256_loadu_si256(a as *const __m256i);
        let aw = _mm256_sign_epi8(w, w);
        let sa = _mm256_sign_epi8(a, w);
        let p16 = _mm256_maddubs_epi16(aw, sa);
        let p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
        _mm256_cvtepi32_ps(p32)
    }

    /// The same lane sums with one VNNI instruction (u8·i8 products summed in groups
    /// of four into i32 lanes: the identical integers, without the i16 step).
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    #[inline]
    unsafe fn lane_dot_vnni(w: __m256i, a: *const i8) -> __m256 {
        let a = _mm256_loadu_si256(a as *const __m256i);
        let aw = _mm256_sign_epi8(w, w);
        let sa = _mm256_sign_epi8(a, w);
        _mm256_cvtepi32_ps(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), aw, sa))
    }

    /// One output column over a tile of rows, instantiated once per instruction set so
    /// each copy is compiled with its own target features.
    macro_rules! column_kernel {
        ($name:ident, $features:literal, $dot:ident) => {
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(
                w: &QMatrix,
                c: usize,
                acts: &[Q8Row],
                lanes: &mut [[f32; 8]],
                macc: &mut [f32],
            ) {
                let t = w.t;
                let nsb = sub_blocks(t);
                let row = w.row(c);
                let bb = t.block_bytes();
                let m = acts.len();
                // The caller's lane arrays are the accumulators (zeroed per column).
                let acc = lanes.as_mut_ptr() as *mut f32;
                let mut wv = [_mm256_setzero_si256(); 8];
                let mut d = [[0f32; 2]; 8];
                let mut mins = [0f32; 8];
                if m == 1 {
                    // One row (single-sequence decode): the same operations in the same order,
                    // with the accumulators kept in registers.
                    let a = acts.get_unchecked(0);
                    let mut lane = _mm256_setzero_ps();
                    let mut mc = 0f32;
                    for (b, block) in row.chunks_exact(bb).enumerate() {
                        decode(t, block, &mut wv, &mut d, &mut mins);
                        for s in 0..nsb {
                            let j = b * nsb + s;
                            let (d0, d1, mn) = (d[s][0], d[s][1], mins[s]);
                            let da = *a.d.get_unchecked(j);
                            let p = $dot(wv[s], a.qs.as_ptr().add(j * 32));
                            let scale = if d0 == d1 {
                                _mm256_set1_ps(d0 * da)
                            } else {
                                _mm256_set_m128(_mm_set1_ps(d1 * da), _mm_set1_ps(d0 * da))
                            };
                            lane = _mm256_fmadd_ps(scale, p, lane);
                            if mn != 0.0 {
                                mc = (mn * da).mul_add(*a.sum.get_unchecked(j) as f32, mc);
                            }
                        }
                    }
                    _mm256_storeu_ps(acc, lane);
                    *macc.get_unchecked_mut(0) = mc;
                    return;
                }
                for (b, block) in row.chunks_exact(bb).enumerate() {
                    decode(t, block, &mut wv, &mut d, &mut mins);
                    for s in 0..nsb {
                        let j = b * nsb + s;
                        let (w, d0, d1, mn) = (wv[s], d[s][0], d[s][1], mins[s]);
                        for r in 0..m {
                            let a = acts.get_unchecked(r);
                            let da = *a.d.get_unchecked(j);
                            let p = $dot(w, a.qs.as_ptr().add(j * 32));
                            let scale = if d0 == d1 {
                                _mm256_set1_ps(d0 * da)
                            } else {
                                _mm256_set_m128(_mm_set1_ps(d1 * da), _mm_set1_ps(d0 * da))
                            };
                            let slot = acc.add(r * 8);
                            _mm256_storeu_ps(
                                slot,
                                _mm256_fmadd_ps(scale, p, _mm256_loadu_ps(slot)),
                            );
                            if mn != 0.0 {
                                let mc = macc.get_unchecked_mut(r);
                                *mc = (mn * da).mul_add(*a.sum.get_unchecked(j) as f32, *mc);
                            }
                        }
                    }
                }
            }
        };
    }

    column_kernel!(column, "avx2,fma,f16c", lane_dot);
    column_kernel!(column_vnni, "avx2,fma,f16c,avxvnni", lane_dot_vnni);

    /// 32 bytes, 0xFF where the matching bit of `bits` is set (bit i → byte i).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
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

    /// The sub-blocks of one block as registers of i8 integers plus their factors: the
    /// same numbers `quant::decode_block` gives.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn decode(
        t: QType,
        block: &[u8],
        wv: &mut [__m256i; 8],
        d: &mut [[f32; 2]; 8],
        mins: &mut [f32; 8],
    ) {
        let p = block.as_ptr();
        let nib = _mm256_set1_epi8(0x0F);
        match t {
            QType::Q4_0 => {
                wv[0] = load_q4(p.add(2), 8);
                let dd = f16(block, 0);
                d[0] = [dd, dd];
                mins[0] = 0.0;
            }
            QType::Q4_1 => {
                wv[0] = load_q4(p.add(4), 0);
                let dd = f16(block, 0);
                d[0] = [dd, dd];
                mins[0] = f16(block, 2);
            }
            QType::Q5_0 | QType::Q5_1 => {
                let (off, qs, m) = if t == QType::Q5_1 {
                    (4, 8, f16(block, 2))
                } else {
                    (2, 6, 0.0)
                };
                let qh = u32::from_le_bytes([
                    block[off],
                    block[off + 1],
                    block[off + 2],
                    block[off + 3],
                ]);
                let lo = load_q4(p.add(qs), 0);
                let hi = _mm256_and_si256(bytes_from_bits(qh), _mm256_set1_epi8(0x10));
                let v = _mm256_or_si256(lo, hi);
                wv[0] = if t == QType::Q5_0 {
                    _mm256_sub_epi8(v, _mm256_set1_epi8(16))
                } else {
                    v
                };
                let dd = f16(block, 0);
                d[0] = [dd, dd];
                mins[0] = m;
            }
            QType::Q8_0 => {
                wv[0] = _mm256_loadu_si256(p.add(2) as *const __m256i);
                let dd = f16(block, 0);
                d[0] = [dd, dd];
                mins[0] = 0.0;
            }
            QType::Q4K | QType::Q5K => {
                let dd = f16(block, 0);
                let dmin = f16(block, 2);
                let scales = &block[4..16];
                let (qh, qs) = if t == QType::Q5K {
                    (p.add(16), p.add(48))
                } else {
                    (p, p.add(16))
                };
                let qhv = if t == QType::Q5K {
                    _mm256_loadu_si256(qh as *const __m256i)
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
                        if t == QType::Q5K {
                            let bit = _mm256_set1_epi8((1u8 << is) as i8);
                            let set = _mm256_cmpeq_epi8(_mm256_and_si256(qhv, bit), bit);
                            v = _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi8(16)));
                        }
                        let (sc, mn) = crate::quant::scale_min_k4(is, scales);
                        wv[is] = v;
                        let ds = dd * sc as f32;
                        d[is] = [ds, ds];
                        mins[is] = -(dmin * mn as f32);
                    }
                }
            }
            QType::Q6K => {
                let dd = f16(block, 208);
                let three = _mm256_set1_epi8(3);
                let thirty_two = _mm256_set1_epi8(32);
                for n in 0..2 {
                    let ql0 = _mm256_loadu_si256(p.add(n * 64) as *const __m256i);
                    let ql1 = _mm256_loadu_si256(p.add(n * 64 + 32) as *const __m256i);
                    let qh = _mm256_loadu_si256(p.add(128 + n * 32) as *const __m256i);
                    let high = |shift: i32| {
                        let h = match shift {
                            0 => qh,
                            2 => _mm256_srli_epi16(qh, 2),
                            4 => _mm256_srli_epi16(qh, 4),
                            _ => _mm256_srli_epi16(qh, 6),
                        };
                        _mm256_slli_epi16(_mm256_and_si256(h, three), 4)
                    };
                    let parts = [
                        _mm256_or_si256(_mm256_and_si256(ql0, nib), high(0)),
                        _mm256_or_si256(_mm256_and_si256(ql1, nib), high(2)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), nib), high(4)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), nib), high(6)),
                    ];
                    for (part, v) in parts.into_iter().enumerate() {
                        let k = n * 4 + part;
                        wv[k] = _mm256_sub_epi8(v, thirty_two);
                        let s0 = block[192 + n * 8 + 2 * part] as i8 as f32;
                        let s1 = block[192 + n * 8 + 2 * part + 1] as i8 as f32;
                        d[k] = [dd * s0, dd * s1];
                        mins[k] = 0.0;
                    }
                }
            }
            QType::F32 | QType::F16 | QType::BF16 => {
                unreachable!("float weights take the f32 path")
            }
        }
    }
}

/// Random weight data for tests and benchmarks (here so other crates' tests can use it).
#[doc(hidden)]
pub mod tests_support {
    use crate::quant::QType;

    /// Random weight blocks of a type, built byte by byte with valid f16 scales.
    pub fn random_matrix(t: QType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let nblocks = rows * cols / t.block_elems();
        let mut data = vec![0u8; nblocks * t.block_bytes()];
        for b in data.chunks_exact_mut(t.block_bytes()) {
            for byte in b.iter_mut() {
                *byte = next() as u8;
            }
            let f16b = |v: f32| half::f16::from_f32(v).to_le_bytes();
            let small = |x: u64| (x % 1000) as f32 / 40000.0 + 0.001;
            match t {
                QType::Q4_0 | QType::Q5_0 | QType::Q8_0 => {
                    b[0..2].copy_from_slice(&f16b(small(next())))
                }
                QType::Q4_1 | QType::Q5_1 => {
                    b[0..2].copy_from_slice(&f16b(small(next())));
                    b[2..4].copy_from_slice(&f16b(-small(next())));
                }
                QType::Q4K | QType::Q5K => {
                    b[0..2].copy_from_slice(&f16b(small(next())));
                    b[2..4].copy_from_slice(&f16b(small(next())));
                }
                QType::Q6K => b[208..210].copy_from_slice(&f16b(small(next()))),
                QType::F16 => b.copy_from_slice(&f16b((next() % 200) as f32 / 100.0 - 1.0)),
                QType::F32 => {
                    b.copy_from_slice(&((next() % 200) as f32 / 100.0 - 1.0).to_le_bytes())
                }
                QType::BF16 => b.copy_from_slice(
                    &half::bf16::from_f32((next() % 200) as f32 / 100.0 - 1.0).to_le_bytes(),
                ),
            }
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::random_matrix;
    use super::*;

    fn random_acts(m: usize, k: usize, seed: u64) -> Vec<f32> {
        (0..m * k)
            .map(|i| (((i as u64 * 2654435761 + seed) % 1000) as f32 / 500.0 - 1.0) * 1.5)
            .collect()
    }

    const TYPES: [QType; 11] = [
        QType::Q4_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q5_1,
        QType::Q8_0,
        QType::Q4K,
        QType::Q5K,
        QType::Q6K,
        QType::F32,
        QType::F16,
        QType::BF16,
    ];

    #[test]
    fn every_type_matches_dequantized_f64_matmul() {
        for t in TYPES {
            let (n, k, m) = (37, 512, 5);
            let data = random_matrix(t, n, k, 7);
            let w = QMatrix::new(t, n, k, &data).unwrap();
            let x = random_acts(m, k, 3);
            let mut y = vec![0f32; m * n];
            matmul(&w, &x, m, &mut y);
            let mut wr = vec![0f32; k];
            for c in 0..n {
                w.dequantize_row(c, &mut wr);
                for r in 0..m {
                    let exact: f64 = (0..k).map(|i| x[r * k + i] as f64 * wr[i] as f64).sum();
                    let scale: f64 = (0..k)
                        .map(|i| (x[r * k + i] as f64 * wr[i] as f64).abs())
                        .sum();
                    let err = (y[r * n + c] as f64 - exact).abs();
                    // Activation quantization to 8 bits bounds the relative error.
                    assert!(
                        err <= 0.01 * scale + 1e-6,
                        "{t:?} r{r} c{c}: {} vs {exact} (scale {scale})",
                        y[r * n + c]
                    );
                }
            }
        }
    }

    #[test]
    fn simd_equals_scalar_bit_for_bit() {
        if detected_isa() == Isa::Scalar {
            return;
        }
        for t in TYPES {
            let (n, k, m) = (19, 768, 7);
            let data = random_matrix(t, n, k, 11);
            let w = QMatrix::new(t, n, k, &data).unwrap();
            let x = random_acts(m, k, 5);
            let mut a = vec![0f32; m * n];
            let mut b = vec![0f32; m * n];
            matmul_with(&w, &x, m, &mut a, Isa::Scalar);
            matmul_with(&w, &x, m, &mut b, detected_isa());
            for i in 0..a.len() {
                assert_eq!(a[i].to_bits(), b[i].to_bits(), "{t:?} at {i}");
            }
        }
    }

    #[test]
    fn avx2_and_vnni_give_the_same_bits() {
        #[cfg(target_arch = "x86_64")]
        {
            if !(is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2")) {
                return;
            }
            for t in TYPES {
                let (n, k, m) = (21, 512, 3);
                let data = random_matrix(t, n, k, 17);
                let w = QMatrix::new(t, n, k, &data).unwrap();
                let x = random_acts(m, k, 7);
                let mut a = vec![0f32; m * n];
                let mut b = vec![0f32; m * n];
                matmul_with(&w, &x, m, &mut a, Isa::Avx2);
                matmul_with(&w, &x, m, &mut b, Isa::AvxVnni);
                assert!(
                    a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{t:?}"
                );
            }
        }
    }

    #[test]
    fn a_row_is_the_same_among_1_7_or_32_rows() {
        for t in [
            QType::Q4_1,
            QType::Q8_0,
            QType::Q5_0,
            QType::Q4K,
            QType::Q6K,
        ] {
            let (n, k) = (70, 768);
            let data = random_matrix(t, n, k, 13);
            let w = QMatrix::new(t, n, k, &data).unwrap();
            let x32 = random_acts(32, k, 9);
            let mut y32 = vec![0f32; 32 * n];
            matmul(&w, &x32, 32, &mut y32);
            let mut y7 = vec![0f32; 7 * n];
            matmul(&w, &x32[..7 * k], 7, &mut y7);
            for r in 0..7 {
                let mut y1 = vec![0f32; n];
                matmul(&w, &x32[r * k..(r + 1) * k], 1, &mut y1);
                for c in 0..n {
                    assert_eq!(y1[c].to_bits(), y32[r * n + c].to_bits(), "{t:?}");
                    assert_eq!(y1[c].to_bits(), y7[r * n + c].to_bits(), "{t:?}");
                }
            }
        }
    }
}
