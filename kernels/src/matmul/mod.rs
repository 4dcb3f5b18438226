//! Quantized matrix multiplication y = x·Wᵀ for B activation rows.
//!
//! # The one summation order
//! For output (r, c), over the row's 32-element sub-blocks j in order, and within a
//! sub-block over its scale units u (the whole sub-block, or its two 16-element halves
//! for the types with a scale per half: Q2_K, Q3_K, Q6_K):
//! - one i32 sum p = Σ w_i·a_i over the unit's elements (exact integers, any order);
//! - acc = fma(d_u·da_j, p, acc);
//! - macc = fma(m_j·da_j, Σa, macc) when the type has a minimum/offset (Q2_K: one term
//!   per half, halves in order);
//! - y = acc + macc.
//!
//! One exact integer sum and one fma per unit is the order AMX and every dot-product
//! instruction want: a kernel may add a unit's products in any grouping (lanes, columns,
//! tiles) because integer addition is exact, and rounds exactly where this says. The
//! scalar reference, every SIMD kernel and the GPU source compute exactly this, so y is
//! bit-identical whatever the SIMD level, the number of rows B (each weight block is
//! decoded once and applied to all rows, but rows never mix) and the thread count
//! (threads split the output columns; one column is computed by one thread).
//!
//! (Until version 0.1 the order was eight 4-product lane sums per sub-block, each with
//! its own fma chain, and a fixed tree over the lanes: every output's last bits differ
//! between the two.)

use crate::quant::{decode_block, dequantize_row, sub_blocks, Q8Row, QType, SubBlock};

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

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
    /// AVX-512 (F, BW, VL) with VNNI: two columns per register, the same bits again.
    Avx512,
    /// aarch64 NEON (every aarch64 CPU has it).
    Neon,
}

impl Isa {
    /// Every instruction set this CPU can run, the scalar reference first.
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Scalar];
        #[cfg(target_arch = "aarch64")]
        v.push(Isa::Neon);
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                v.push(Isa::Avx2);
                if is_x86_feature_detected!("avxvnni") {
                    v.push(Isa::AvxVnni);
                }
                if is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
                {
                    v.push(Isa::Avx512);
                }
            }
        }
        v
    }
}

/// The fastest instruction set of this CPU. `TEACHER_ISA=scalar|avx2|avxvnni|avx512|neon`
/// caps it (for comparisons; all give the same bits).
pub fn detected_isa() -> Isa {
    let available = Isa::available();
    let cap = std::env::var("TEACHER_ISA")
        .ok()
        .map(|s| s.to_ascii_lowercase());
    let wanted = match cap.as_deref() {
        Some("scalar") => Some(Isa::Scalar),
        Some("avx2") => Some(Isa::Avx2),
        Some("avxvnni") => Some(Isa::AvxVnni),
        Some("avx512") => Some(Isa::Avx512),
        Some("neon") => Some(Isa::Neon),
        _ => None,
    };
    match wanted {
        Some(w) if available.contains(&w) => w,
        _ => *available.last().unwrap_or(&Isa::Scalar),
    }
}

/// Columns per parallel task: about four tasks per thread (to balance uneven cores),
/// at least 16 columns and a multiple of 16. The split never changes a result: one
/// column is always computed whole by one task.
fn cols_per_task(n: usize) -> usize {
    let threads = crate::pool::global().threads();
    let per = n.div_ceil(threads * 4);
    per.div_ceil(16).max(1) * 16
}

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

    /// Where output `i` is, for a vector store.
    ///
    /// SAFETY (caller): every element stored through it is in bounds and written by this
    /// thread only.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn at(self, i: usize) -> *mut f32 {
        self.0.add(i)
    }

    /// SAFETY (caller): as `write`; the element was written by this thread.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn read(self, i: usize) -> f32 {
        *self.0.add(i)
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
        let mut acts: Vec<Q8Row> = (0..m).map(|_| Q8Row::default()).collect();
        // Rows are independent: quantized in parallel once there are enough of them.
        crate::pool::for_each_row(&mut acts, 1, 8, |r, a| {
            Q8Row::quantize(&x[r * k..(r + 1) * k], &mut a[0])
        });
        acts
    } else {
        Vec::new()
    };
    // Σa over each 16-element half of every sub-block, per row: Q2_K's two minimum
    // terms per sub-block (only computed when such a matrix is in the call).
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    let halves: Vec<Vec<(i32, i32)>> = if jobs.iter().any(|(w, _)| w.t.min_terms() == 2) {
        acts.iter()
            .map(|a| a.qs.chunks_exact(32).map(half_sums).collect())
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
        #[cfg(target_arch = "x86_64")]
        {
            let code = match isa {
                Isa::Scalar | Isa::Neon => None,
                Isa::Avx2 => Some(x86::AVX2),
                Isa::AvxVnni => Some(x86::AVX_VNNI),
                Isa::Avx512 => Some(x86::AVX512),
            };
            if let Some(code) = code {
                // SAFETY: a non-scalar Isa is only chosen after detecting its features;
                // the columns c0..c1 belong to this task. Types without a SIMD decoder
                // fall through to the scalar reference.
                if unsafe { x86::columns(code, w, c0, c1, &acts, out) } {
                    if w.t.min_terms() == 2 {
                        // SAFETY: the columns c0..c1 belong to this task.
                        unsafe { add_half_min_terms(w, c0, c1, &acts, &halves, out) };
                    }
                    return;
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: the columns c0..c1 belong to this task.
        if isa == Isa::Neon && unsafe { neon::columns(w, c0, c1, &acts, out) } {
            return;
        }
        let mut acc = vec![0f32; m];
        let mut macc = vec![0f32; m];
        for c in c0..c1 {
            acc.iter_mut().for_each(|v| *v = 0.0);
            macc.iter_mut().for_each(|v| *v = 0.0);
            column_scalar(w, c, &acts, &mut acc, &mut macc);
            for (r, (v, mc)) in acc.iter().zip(macc.iter()).enumerate() {
                // SAFETY: column c belongs to this task only; r·n + c < m·n.
                unsafe { out.write(r * n + c, v + mc) };
            }
        }
    };
    crate::pool::run(tasks.len(), |i| run(&tasks[i]));
}

/// Q2_K's minimum terms, added to the sums a SIMD kernel wrote (it computes Q2_K as a
/// type without minima). The scalar order is y = acc + macc with macc its own fma chain
/// from +0.0: the kernel wrote acc + 0.0, and adding macc to that gives the same bits
/// (macc is never −0.0, so only a −0.0 acc could differ, and +0.0 + macc = −0.0 + macc
/// for every macc that is not −0.0).
///
/// SAFETY (caller): the columns c0..c1 belong to this task and were written by it; the
/// CPU has AVX2 and FMA (every x86 instruction set teacher uses beyond the scalar one
/// does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_half_min_terms(
    w: &QMatrix,
    c0: usize,
    c1: usize,
    acts: &[Q8Row],
    halves: &[Vec<(i32, i32)>],
    out: OutPtr,
) {
    half_min_terms_body(w, c0, c1, acts, halves, out)
}

/// The body of `add_half_min_terms`, inlined into its AVX2+FMA build (`mul_add` is then one
/// instruction instead of a call; the same exactly rounded result either way).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn half_min_terms_body(
    w: &QMatrix,
    c0: usize,
    c1: usize,
    acts: &[Q8Row],
    halves: &[Vec<(i32, i32)>],
    out: OutPtr,
) {
    // Eight columns side by side (and rows after one another): each (row, column)
    // chain is the scalar order, and the eight independent chains fill the vector
    // lanes and the fma units, where one column's chain waited on each fma in turn.
    const G: usize = 8;
    let n = w.rows;
    let bb = w.t.block_bytes();
    let nblocks = w.cols / w.t.block_elems();
    // Per sub-block: the eight columns' first-half minima, then their second-half ones.
    let mut mins = vec![[[0f32; G]; 2]; nblocks * 8];
    let mut macc = vec![[0f32; G]; acts.len()];
    for c in (c0..c1).step_by(G) {
        let g = (c1 - c).min(G);
        for k in 0..G {
            // A short last group repeats its last column; only real columns are written.
            let row = w.row(c + k.min(g - 1));
            for (b, block) in row.chunks_exact(bb).enumerate() {
                let dmin = crate::quant::f16_at(block, 82);
                for s in 0..8 {
                    // The same expression as `decode_block`.
                    let (x, y) = (block[2 * s], block[2 * s + 1]);
                    mins[b * 8 + s][0][k] = -(dmin * (x >> 4) as f32);
                    mins[b * 8 + s][1][k] = -(dmin * (y >> 4) as f32);
                }
            }
        }
        macc.iter_mut().for_each(|v| *v = [0.0; G]);
        for (j, [m0, m1]) in mins.iter().enumerate() {
            for (r, a) in acts.iter().enumerate() {
                let da = a.d[j];
                let (lo, hi) = halves[r][j];
                let (lo, hi) = (lo as f32, hi as f32);
                let acc = &mut macc[r];
                for k in 0..G {
                    acc[k] = (m0[k] * da).mul_add(lo, acc[k]);
                    acc[k] = (m1[k] * da).mul_add(hi, acc[k]);
                }
            }
        }
        for (r, acc) in macc.iter().enumerate() {
            for (k, mc) in acc.iter().take(g).enumerate() {
                let i = r * n + c + k;
                out.write(i, out.read(i) + mc);
            }
        }
    }
}

/// Sequential f32 dot (float weights are rare here: norms are not matmuls).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (x, y) in a.iter().zip(b) {
        acc = x.mul_add(*y, acc);
    }
    acc
}

/// The scalar reference for one output column over all rows: `acc` and `macc` per row.
fn column_scalar(w: &QMatrix, c: usize, acts: &[Q8Row], acc: &mut [f32], macc: &mut [f32]) {
    let t = w.t;
    let nsb = sub_blocks(t);
    let min_terms = t.min_terms();
    let units = t.scale_units();
    let len = 32 / units;
    let mut sbs = [SubBlock::default(); 8];
    for (b, block) in w.row(c).chunks_exact(t.block_bytes()).enumerate() {
        decode_block(t, block, &mut sbs[..nsb]);
        for (s, sb) in sbs[..nsb].iter().enumerate() {
            let j = b * nsb + s;
            for (r, a) in acts.iter().enumerate() {
                let qa = &a.qs[j * 32..j * 32 + 32];
                let da = a.d[j];
                for u in 0..units {
                    let p: i32 = (u * len..(u + 1) * len)
                        .map(|i| sb.w[i] as i32 * qa[i] as i32)
                        .sum();
                    acc[r] = (sb.d[u] * da).mul_add(p as f32, acc[r]);
                }
                match min_terms {
                    0 => {}
                    1 => macc[r] = (sb.m[0] * da).mul_add(a.sum[j] as f32, macc[r]),
                    _ => {
                        let (lo, hi) = half_sums(qa);
                        macc[r] = (sb.m[0] * da).mul_add(lo as f32, macc[r]);
                        macc[r] = (sb.m[1] * da).mul_add(hi as f32, macc[r]);
                    }
                }
            }
        }
    }
}

/// Σa over the two 16-element halves of a sub-block (Q2_K's per-half minimum terms).
#[inline]
pub(crate) fn half_sums(qa: &[i8]) -> (i32, i32) {
    let lo: i32 = qa[..16].iter().map(|&v| v as i32).sum();
    let hi: i32 = qa[16..32].iter().map(|&v| v as i32).sum();
    (lo, hi)
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
                QType::Q2K => {
                    b[80..82].copy_from_slice(&f16b(small(next())));
                    b[82..84].copy_from_slice(&f16b(small(next())));
                }
                QType::Q3K => b[108..110].copy_from_slice(&f16b(small(next()))),
                QType::IQ4NL | QType::IQ4XS => b[0..2].copy_from_slice(&f16b(small(next()))),
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

    /// Every weight type: the block-quantized ones and the float ones.
    fn all_types() -> Vec<QType> {
        let mut v = QType::QUANTIZED.to_vec();
        v.extend([QType::F32, QType::F16, QType::BF16]);
        v
    }

    #[test]
    fn every_type_matches_dequantized_f64_matmul() {
        for t in all_types() {
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
        for t in all_types() {
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
    fn every_instruction_set_gives_the_scalar_bits() {
        // Column counts below, at and past the sixteen of a panel (and the single-row
        // paths' groups of four, with a short last one); 1, 2, 3, 5, 7, 9, 11 and 16 rows
        // every row-tile shape of the 256- and 512-bit kernels (a single row; eight-,
        // four-, two- and one-row tiles in each combination).
        for isa in Isa::available() {
            for t in all_types() {
                for (n, k, m) in [
                    (21, 512, 1),
                    (23, 256, 2),
                    (11, 256, 3),
                    (6, 768, 5),
                    (9, 512, 7),
                    (13, 512, 9),
                    (40, 256, 16),
                    (35, 512, 11),
                    (16, 768, 3),
                ] {
                    let data = random_matrix(t, n, k, 17);
                    let w = QMatrix::new(t, n, k, &data).unwrap();
                    let x = random_acts(m, k, 7);
                    let mut a = vec![0f32; m * n];
                    let mut b = vec![0f32; m * n];
                    matmul_with(&w, &x, m, &mut a, Isa::Scalar);
                    matmul_with(&w, &x, m, &mut b, isa);
                    for i in 0..a.len() {
                        assert_eq!(a[i].to_bits(), b[i].to_bits(), "{isa:?} {t:?} m{m} at {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn extreme_quants_give_the_scalar_bits_on_every_instruction_set() {
        // Weights at the ends of each type's range (every quant byte 0x00, 0xFF, 0x80
        // or 0x7F: Q8_0's −128, the nibble types' 0 and 15, every fifth bit set)
        // against activations at ±127 after quantization: the largest lane sums the
        // single-row kernels' offset correction (Σ u·a − o·Σa) and the panels see.
        let (n, k) = (9, 512);
        for t in [
            QType::Q4_0,
            QType::Q4_1,
            QType::Q5_0,
            QType::Q5_1,
            QType::Q8_0,
            QType::Q4K,
            QType::Q5K,
            QType::Q6K,
            QType::Q3K,
            QType::Q2K,
            QType::IQ4NL,
            QType::IQ4XS,
        ] {
            for fill in [0x00u8, 0xFF, 0x80, 0x7F] {
                // Valid scales from the random matrix, every other byte set to `fill`.
                let scales = random_matrix(t, n, k, 23);
                let mut data = scales.clone();
                for (i, b) in data.iter_mut().enumerate() {
                    let at = i % t.block_bytes();
                    let scale_bytes = match t {
                        QType::Q4_1 | QType::Q5_1 | QType::Q4K | QType::Q5K => 0..4,
                        QType::Q6K => 208..210,
                        QType::Q3K => 108..110,
                        QType::Q2K => 80..84,
                        _ => 0..2,
                    };
                    *b = if scale_bytes.contains(&at) {
                        scales[i]
                    } else {
                        fill
                    };
                }
                let w = QMatrix::new(t, n, k, &data).unwrap();
                for (m, sign) in [(1, 1.0f32), (1, -1.0), (3, 1.0), (5, -1.0)] {
                    let x: Vec<f32> = (0..m * k)
                        .map(|i| sign * if i % 3 == 0 { -2.5 } else { 2.5 })
                        .collect();
                    let mut a = vec![0f32; m * n];
                    matmul_with(&w, &x, m, &mut a, Isa::Scalar);
                    for isa in Isa::available() {
                        let mut b = vec![0f32; m * n];
                        matmul_with(&w, &x, m, &mut b, isa);
                        for i in 0..a.len() {
                            assert_eq!(
                                a[i].to_bits(),
                                b[i].to_bits(),
                                "{isa:?} {t:?} fill {fill:#x} m{m} at {i}"
                            );
                        }
                    }
                }
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
