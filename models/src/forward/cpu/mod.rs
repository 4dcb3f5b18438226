//! The forward step on the CPU: teacher's own kernels over the memory-mapped weights,
//! threads splitting output columns, attention heads and rows.

mod kv_cache;

pub use kv_cache::KvCache;

use super::{Step, StepOut, Transformer};
use crate::error::Result;
use teacher_kernels::ops;
use teacher_kernels::pool;
use teacher_kernels::{matmul, matmul_many};

/// One step on the CPU: the logits of the rows that asked, or their greedy tokens
/// when the step is greedy.
pub(super) fn run_step(model: &Transformer, cache: &mut KvCache, step: &Step) -> Result<StepOut> {
    let (segs, rows, tokens) = (step.segs, step.rows, step.tokens);
    let hp = &model.hp;
    let e = hp.n_embd;
    let r = rows.len();
    let embd = model.matrix(&model.embd);
    let mut x = vec![0f32; r * e];
    for (row, &t) in x.chunks_mut(e).zip(tokens) {
        embd.dequantize_row(t as usize, row);
        if let Some(s) = model.flavor.embed_scale {
            row.iter_mut().for_each(|v| *v *= s);
        }
    }
    let (nh, nkv, dk, dv) = (hp.n_head, hp.n_head_kv, hp.head_dim_k, hp.head_dim_v);
    let mut h = vec![0f32; r * e];
    let mut q = vec![0f32; r * nh * dk];
    let mut k = vec![0f32; r * nkv * dk];
    let mut v = vec![0f32; r * nkv * dv];
    let mut att = vec![0f32; r * nh * dv];
    let mut o = vec![0f32; r * e];
    let mut gate = vec![0f32; r * hp.n_ff];
    let mut up = vec![0f32; r * hp.n_ff];
    // RoPE angles of the step's positions, computed once per distinct rope (Gemma 3
    // alternates two; the other families have one) and shared by its layers and heads.
    let mut angle_tables: Vec<(&ops::Rope, Vec<(f32, f32)>)> = Vec::new();
    let rope_table: Vec<usize> = model
        .layers
        .iter()
        .map(|layer| {
            match angle_tables
                .iter()
                .position(|(r, _)| r.same_angles(&layer.rope))
            {
                Some(t) => t,
                None => {
                    let mut table = Vec::with_capacity(r * layer.rope.dims / 2);
                    for &(_, pos) in rows {
                        layer.rope.angles(pos, &mut table);
                    }
                    angle_tables.push((&layer.rope, table));
                    angle_tables.len() - 1
                }
            }
        })
        .collect();
    for (li, layer) in model.layers.iter().enumerate() {
        norm_rows_of(&x, &mut h, e, &layer.attn_norm, hp.rms_norm_eps);
        let (wq, wk, wv) = (
            model.matrix(&layer.wq),
            model.matrix(&layer.wk),
            model.matrix(&layer.wv),
        );
        matmul_many(
            &mut [(&wq, &mut q[..]), (&wk, &mut k[..]), (&wv, &mut v[..])],
            &h,
            r,
        );
        add_bias(&mut q, layer.bq.as_deref());
        add_bias(&mut k, layer.bk.as_deref());
        add_bias(&mut v, layer.bv.as_deref());
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            norm_rows(&mut q, dk, qn, hp.rms_norm_eps);
            norm_rows(&mut k, dk, kn, hp.rms_norm_eps);
        }
        // K is roped before it enters the cache; each query head is roped and
        // attends in its own task (heads split across threads even for one row).
        let angles = &angle_tables[rope_table[li]].1;
        let per_row = layer.rope.dims / 2;
        for (i, kr) in k.chunks_mut(nkv * dk).enumerate() {
            layer
                .rope
                .apply_angles(kr, dk, &angles[i * per_row..(i + 1) * per_row]);
        }
        pool::for_each_row(&mut q, dk, ROW_TASKS, |i, qh| {
            let row = i / nh;
            layer
                .rope
                .apply_angles(qh, dk, &angles[row * per_row..(row + 1) * per_row]);
        });
        for (i, &(slot, pos)) in rows.iter().enumerate() {
            cache.write(
                li,
                slot,
                pos,
                &k[i * nkv * dk..(i + 1) * nkv * dk],
                &v[i * nkv * dv..(i + 1) * nkv * dv],
            );
        }
        let cache_ref: &KvCache = cache;
        let scale = model.flavor.attn_scale;
        let softcap = hp.attn_softcap.unwrap_or(0.0);
        let q_ref = &q;
        // Units of query heads sharing a KV head, whose K/V rows are then read once;
        // single heads when there are too few units to keep the threads busy. Each
        // head's numbers are the same either way.
        let group = nh / nkv;
        let per = if r * nkv >= 2 * pool::global().threads() {
            group
        } else {
            1
        };
        let attention_started = std::time::Instant::now();
        pool::for_each_row(&mut att, per * dv, ROW_TASKS, |i, out| {
            let (row, h0) = (i * per / nh, i * per % nh);
            let (slot, pos) = rows[row];
            let start = match layer.window {
                Some(w) => (pos + 1).saturating_sub(w),
                None => 0,
            };
            let (k_cache, v_cache) = cache_ref.head(li, slot, h0 / group);
            let head = ops::Head {
                k: k_cache,
                v: v_cache,
                kv_stride: dk,
                kv_head: 0,
                head_dim: dk,
                softcap,
            };
            SCORES.with_borrow_mut(|scores| {
                let qh = &q_ref[i * per * dk..(i + 1) * per * dk];
                ops::attend_heads(qh, &head, start, pos, scale, scores, out);
            });
        });
        model.times.attention_ns.fetch_add(
            attention_started.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        matmul(&model.matrix(&layer.wo), &att, r, &mut o);
        if let Some(pn) = &layer.post_attn_norm {
            norm_rows(&mut o, e, pn, hp.rms_norm_eps);
        }
        add_rows(&mut x, &o, e);
        norm_rows_of(&x, &mut h, e, &layer.ffn_norm, hp.rms_norm_eps);
        let (wg, wu) = (model.matrix(&layer.w_gate), model.matrix(&layer.w_up));
        matmul_many(&mut [(&wg, &mut gate[..]), (&wu, &mut up[..])], &h, r);
        let gelu = model.flavor.gelu;
        let up_ref = &up;
        let n_ff = hp.n_ff;
        pool::for_each_row(&mut gate, n_ff, PARALLEL_ROWS, |i, g| {
            ops::gated_activation(g, &up_ref[i * n_ff..(i + 1) * n_ff], gelu);
        });
        matmul(&model.matrix(&layer.w_down), &gate, r, &mut o);
        if let Some(pn) = &layer.post_ffn_norm {
            norm_rows(&mut o, e, pn, hp.rms_norm_eps);
        }
        add_rows(&mut x, &o, e);
    }
    // Logits only for the rows that need them.
    let want = super::logit_rows(segs, step.every_token);
    let output_started = std::time::Instant::now();
    let mut hs = vec![0f32; want.len() * e];
    for (j, &i) in want.iter().enumerate() {
        hs[j * e..(j + 1) * e].copy_from_slice(&x[i * e..(i + 1) * e]);
    }
    norm_rows(&mut hs, e, &model.output_norm, hp.rms_norm_eps);
    let out = model.matrix(&model.output);
    let vocab = out.rows;
    let n = want.len() * vocab;
    // A decode step's logits are rows × vocabulary floats (32 MiB for 32 rows of
    // Gemma's 262 k): written into a buffer this thread keeps, not into fresh pages
    // the kernel would fault in on every step. Every-token scoring (perplexity)
    // allocates its own, so that no long prompt's logits stay held.
    let mut own = Vec::new();
    let result = LOGITS.with_borrow_mut(|kept| {
        let logits = if step.every_token {
            own.resize(n, 0f32);
            &mut own[..]
        } else {
            if kept.len() < n {
                kept.resize(n, 0f32);
            }
            &mut kept[..n]
        };
        matmul(&out, &hs, want.len(), logits);
        if let Some(cap) = hp.final_softcap {
            pool::for_each_row(logits, vocab, 2, |_, row| {
                row.iter_mut().for_each(|l| *l = cap * ops::tanh(*l / cap));
            });
        }
        let logits: &[f32] = logits;
        if step.greedy {
            let mut tokens = vec![0u32; want.len()];
            pool::for_each_row(&mut tokens, 1, 2, |i, t| {
                t[0] = teacher_kernels::sampling::argmax(&logits[i * vocab..(i + 1) * vocab]);
            });
            StepOut::Tokens(tokens)
        } else {
            let mut rows: Vec<Vec<f32>> = vec![Vec::new(); want.len()];
            pool::for_each_row(&mut rows, 1, 2, |i, r| {
                r[0] = logits[i * vocab..(i + 1) * vocab].to_vec();
            });
            StepOut::Logits(rows)
        }
    });
    model.times.output_ns.fetch_add(
        output_started.elapsed().as_nanos() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(result)
}

/// Below this many rows, cheap per-row work (norms, activations) runs on the calling
/// thread: handing it out costs more than the work (decode steps of a few sequences).
const PARALLEL_ROWS: usize = 8;
/// Attention and RoPE go parallel from two (row, head) units: one head's attention
/// over a long context is worth a hand-off.
const ROW_TASKS: usize = 2;

thread_local! {
    /// The output layer's buffer of a step's logits, kept by the stepping thread.
    static LOGITS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Attention score scratch, one per thread.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn norm_rows(x: &mut [f32], width: usize, w: &[f32], eps: f32) {
    pool::for_each_row(x, width, PARALLEL_ROWS, |_, row| ops::rms_norm(row, w, eps));
}

fn add_bias(x: &mut [f32], b: Option<&[f32]>) {
    if let Some(b) = b {
        for row in x.chunks_mut(b.len()) {
            for (v, bb) in row.iter_mut().zip(b) {
                *v += bb;
            }
        }
    }
}

/// h = RMSNorm(x) row by row, each row copied and normalised by one task (in parallel
/// when there are enough rows; the copy then runs beside the other thread's work).
fn norm_rows_of(x: &[f32], h: &mut [f32], width: usize, w: &[f32], eps: f32) {
    pool::for_each_row(h, width, PARALLEL_ROWS, |i, row| {
        row.copy_from_slice(&x[i * width..(i + 1) * width]);
        ops::rms_norm(row, w, eps)
    });
}

/// x += y, row by row (in parallel when there are enough rows).
fn add_rows(x: &mut [f32], y: &[f32], width: usize) {
    pool::for_each_row(x, width, PARALLEL_ROWS, |i, row| {
        for (a, b) in row.iter_mut().zip(&y[i * width..(i + 1) * width]) {
            *a += b;
        }
    });
}
