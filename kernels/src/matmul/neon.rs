//! The aarch64 kernel (NEON, present on every aarch64 CPU): the scalar decoders give a
//! column's integers once, NEON computes the lane sums and the fma chain for every row.
//!
//! i8·i8 products are widened to i16 (`vmull_s8`, exact: |w·a| ≤ 128·127), pairs added
//! into i32 (`vpaddlq_s16`), pairs of pairs (`vpaddq_s32`) and the lanes of a scale unit
//! (`vaddvq_s32`): the exact i32 sum of each unit of the scalar loop, then
//! fma(d·da, p, acc) (`mul_add`, one `fmadd`). Same bits as `column_scalar`.
//!
//! Tested under qemu-aarch64 (bit equality with the scalar reference for every type and
//! row count); its speed has not been measured on ARM hardware.

use super::{OutPtr, QMatrix};
use crate::quant::{decode_block, sub_blocks, Q8Row, SubBlock};
use std::arch::aarch64::*;

/// Columns `c0..c1` for all rows; false for float weights (the caller's path).
///
/// SAFETY (caller): the columns belong to this task.
pub(super) unsafe fn columns(
    w: &QMatrix,
    c0: usize,
    c1: usize,
    acts: &[Q8Row],
    out: OutPtr,
) -> bool {
    let t = w.t;
    if !t.is_quantized() {
        return false;
    }
    let min_terms = t.min_terms();
    let halves = t.scale_units() == 2;
    let nsb = sub_blocks(t);
    let n = w.rows;
    let mut col = vec![SubBlock::default(); w.cols / 32];
    for c in c0..c1 {
        for (b, block) in w.row(c).chunks_exact(t.block_bytes()).enumerate() {
            decode_block(t, block, &mut col[b * nsb..(b + 1) * nsb]);
        }
        for (r, a) in acts.iter().enumerate() {
            let mut acc = 0f32;
            let mut mc = 0f32;
            for (j, sb) in col.iter().enumerate() {
                let ap = a.qs.as_ptr().add(j * 32);
                let (p_lo, p_hi) = lane_sums(sb.w.as_ptr(), ap);
                let da = *a.d.get_unchecked(j);
                if halves {
                    acc = (sb.d[0] * da).mul_add(vaddvq_s32(p_lo) as f32, acc);
                    acc = (sb.d[1] * da).mul_add(vaddvq_s32(p_hi) as f32, acc);
                } else {
                    let p = vaddvq_s32(vaddq_s32(p_lo, p_hi));
                    acc = (sb.d[0] * da).mul_add(p as f32, acc);
                }
                match min_terms {
                    0 => {}
                    1 => mc = (sb.m[0] * da).mul_add(*a.sum.get_unchecked(j) as f32, mc),
                    _ => {
                        let (s_lo, s_hi) = super::half_sums(&a.qs[j * 32..j * 32 + 32]);
                        mc = (sb.m[0] * da).mul_add(s_lo as f32, mc);
                        mc = (sb.m[1] * da).mul_add(s_hi as f32, mc);
                    }
                }
            }
            out.write(r * n + c, acc + mc);
        }
    }
    true
}

/// Lane sums 0–3 (elements 0–15) and 4–7 (16–31) of one 32-element sub-block: each the
/// sum of four products.
#[inline(always)]
unsafe fn lane_sums(w: *const i8, a: *const i8) -> (int32x4_t, int32x4_t) {
    let half = |w: int8x16_t, a: int8x16_t| {
        let lo = vmull_s8(vget_low_s8(w), vget_low_s8(a));
        let hi = vmull_high_s8(w, a);
        vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
    };
    (
        half(vld1q_s8(w), vld1q_s8(a)),
        half(vld1q_s8(w.add(16)), vld1q_s8(a.add(16))),
    )
}
