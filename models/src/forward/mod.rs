//! teacher's own batched forward pass on the CPU.
//!
//! One call runs a *step*: any mix of sequences, each contributing a segment of
//! tokens at its own positions (a prompt chunk, or one decode token), so every weight
//! matrix is multiplied with all rows of the step at once. Each row's numbers depend
//! only on that row and on its own sequence's KV cache: a sequence gets bit-identical
//! logits alone or among 31 others, whatever the prompt chunking or thread count.
//!
//! Weights are used in place from the memory-mapped GGUF. The per-architecture facts
//! (RoPE style, norms, activation, biases, sliding windows) live in `llama.rs`,
//! `qwen2.rs` and `gemma3.rs`.

mod gemma2;
mod gemma3;
mod kv_cache;
mod llama;
mod phi3;
mod qwen2;
mod qwen3;

pub use kv_cache::KvCache;

use crate::error::{Error, Result};
use crate::gguf::{tensor_err, GgufFile};
use crate::hparams::{Arch, HParams};
use std::sync::Arc;
use teacher_kernels::ops::{self, KvType, Rope, RopeScaling, Yarn};
use teacher_kernels::pool;
use teacher_kernels::{matmul, matmul_many, QMatrix, QType};

/// A weight matrix as a view into the GGUF map.
#[derive(Debug, Clone, Copy)]
struct WeightRef {
    t: QType,
    rows: usize,
    cols: usize,
    /// The file of a split model that holds it.
    part: usize,
    start: usize,
    len: usize,
}

impl WeightRef {
    /// Rows `first..first + n` (a part of a fused matrix; rows are contiguous).
    fn rows(self, first: usize, n: usize) -> WeightRef {
        let rb = self.t.row_bytes(self.cols);
        WeightRef {
            rows: n,
            start: self.start + first * rb,
            len: n * rb,
            ..self
        }
    }
}

/// Architecture facts that shape the block.
#[derive(Debug, Clone)]
pub(crate) struct Flavor {
    pub rope_style: ops::RopeStyle,
    pub rope_dims: usize,
    /// Per layer: the frequency base of its RoPE.
    pub rope_base: Vec<f32>,
    /// Frequency factors, linear or YaRN scaling (every layer).
    pub rope_scaling: RopeScaling,
    /// Per layer: attend only to this many most recent positions.
    pub window: Vec<Option<usize>>,
    pub attn_scale: f32,
    pub gelu: bool,
    pub embed_scale: Option<f32>,
    pub qk_norm: bool,
    pub post_norms: bool,
    pub qkv_bias: bool,
    /// q, k, v in one `attn_qkv` matrix and gate, up in one `ffn_up` (Phi-3).
    pub fused: bool,
}

impl Flavor {
    /// The plain pre-norm block with a SiLU-gated MLP and global attention, which the
    /// llama family and qwen2 share; they differ in RoPE pairing and q/k/v biases.
    pub(crate) fn llama_like(
        gguf: &GgufFile,
        hp: &HParams,
        rope_style: ops::RopeStyle,
        qkv_bias: bool,
    ) -> Result<Flavor> {
        let key = format!("{}.rope.dimension_count", hp.arch.as_str());
        let rope_dims = match gguf.get_uint(&key)? {
            None => hp.head_dim_k,
            Some(d) if d > 0 && d % 2 == 0 && d as usize <= hp.head_dim_k => d as usize,
            Some(d) => {
                return Err(Error::Metadata {
                    path: gguf.path().to_path_buf(),
                    key,
                    what: format!(
                        "is {d}; it must be even and at most the head size {}",
                        hp.head_dim_k
                    ),
                })
            }
        };
        let rope_scaling = rope_scaling(gguf, hp, rope_dims)?;
        Ok(Flavor {
            rope_style,
            rope_dims,
            rope_base: vec![hp.rope_freq_base; hp.n_layer],
            rope_scaling,
            window: vec![None; hp.n_layer],
            attn_scale: 1.0 / (hp.head_dim_k as f32).sqrt(),
            gelu: false,
            embed_scale: None,
            qk_norm: false,
            post_norms: false,
            qkv_bias,
            fused: false,
        })
    }
}

/// RoPE scaling as the GGUF declares it: `rope.scaling.type` (`linear`, `yarn`),
/// `rope.scaling.factor`, `rope.scaling.original_context_length`, the YaRN β bounds
/// and `rope.scaling.attn_factor`; frequency factors from `rope_freqs.weight` (Llama 3.1+)
/// or `rope_factors_short.weight` (Phi-3 LongRoPE; llama.cpp switches to the long
/// factors only for contexts beyond the original one).
fn rope_scaling(gguf: &GgufFile, hp: &HParams, rope_dims: usize) -> Result<RopeScaling> {
    let p = hp.arch.as_str();
    let key = |k: &str| format!("{p}.rope.scaling.{k}");
    let bad = |k: &str, what: String| Error::Metadata {
        path: gguf.path().to_path_buf(),
        key: key(k),
        what,
    };
    let mut sc = RopeScaling::none();
    let kind = gguf.get_str(&key("type"))?.unwrap_or("none").to_string();
    let factor = gguf.get_f32(&key("factor"))?;
    match (kind.as_str(), factor) {
        ("none", _) | (_, None) => {}
        ("linear" | "yarn", Some(f)) => {
            if !(f.is_finite() && f >= 1.0) {
                return Err(bad(
                    "factor",
                    format!("is {f}; a scaling factor is at least 1"),
                ));
            }
            sc.freq_scale = 1.0 / f;
            if kind == "yarn" {
                let orig = gguf
                    .get_uint(&key("original_context_length"))?
                    .filter(|&n| n > 0 && n <= 1 << 31)
                    .ok_or_else(|| {
                        bad(
                            "original_context_length",
                            "is missing or not a sensible size; YaRN needs it".into(),
                        )
                    })?;
                let beta = |k: &str, default: f32| -> Result<f32> {
                    Ok(gguf
                        .get_f32(&key(k))?
                        .filter(|b| *b > 0.0)
                        .unwrap_or(default))
                };
                sc.yarn = Some(Yarn {
                    original_context: orig as usize,
                    beta_fast: beta("yarn_beta_fast", 32.0)?,
                    beta_slow: beta("yarn_beta_slow", 1.0)?,
                });
            }
        }
        (other, Some(_)) => {
            return Err(bad(
                "type",
                format!("is `{other}`, which teacher does not implement (linear, yarn)"),
            ))
        }
    }
    if let Some(a) = gguf.get_f32(&key("attn_factor"))? {
        if !(a.is_finite() && a > 0.0) {
            return Err(bad("attn_factor", format!("is {a}, not a positive factor")));
        }
        sc.attn_factor = a;
    }
    for name in ["rope_freqs.weight", "rope_factors_short.weight"] {
        if gguf.tensor(name).is_some() {
            let f = vector(gguf, name)?;
            if f.len() != rope_dims / 2 || f.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(tensor_err(
                    gguf.path(),
                    name,
                    format!(
                        "should hold {} positive factors (one per rotated pair), has {} values",
                        rope_dims / 2,
                        f.len()
                    ),
                ));
            }
            sc.freq_factors = Some(f);
            break;
        }
    }
    Ok(sc)
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: WeightRef,
    wk: WeightRef,
    wv: WeightRef,
    wo: WeightRef,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    w_gate: WeightRef,
    w_up: WeightRef,
    w_down: WeightRef,
    post_ffn_norm: Option<Vec<f32>>,
    rope: Rope,
    window: Option<usize>,
}

/// The weights of a model, ready for batched steps.
pub struct Transformer {
    gguf: Arc<GgufFile>,
    pub hp: HParams,
    flavor: Flavor,
    embd: WeightRef,
    output: WeightRef,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    /// Wall time spent in parts of the step, for profiles.
    times: StepTimes,
}

/// Nanoseconds the steps so far spent in attention and in the output layer.
#[derive(Debug, Default)]
struct StepTimes {
    attention_ns: std::sync::atomic::AtomicU64,
    output_ns: std::sync::atomic::AtomicU64,
}

/// Where the forward pass's time went, summed over every step so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StepProfile {
    /// Attention over the KV cache (all layers).
    pub attention_seconds: f64,
    /// The final norm and the output (vocabulary) layer.
    pub output_seconds: f64,
}

/// One sequence's part of a step.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    /// The KV-cache slot of the sequence.
    pub slot: usize,
    pub tokens: &'a [u32],
    /// Position of the first token.
    pub start: usize,
    /// Return the logits of the segment's last token.
    pub logits: bool,
}

impl Transformer {
    pub fn load(gguf: Arc<GgufFile>) -> Result<Self> {
        let hp = HParams::from_gguf(&gguf)?;
        let flavor = match hp.arch {
            Arch::Llama => llama::flavor(&gguf, &hp)?,
            Arch::Qwen2 => qwen2::flavor(&gguf, &hp)?,
            Arch::Qwen3 => qwen3::flavor(&gguf, &hp)?,
            Arch::Phi3 => phi3::flavor(&gguf, &hp)?,
            Arch::Gemma2 => gemma2::flavor(&gguf, &hp)?,
            Arch::Gemma3 => gemma3::flavor(&gguf, &hp)?,
        };
        let (q_rows, k_rows, v_rows) = (
            hp.n_head * hp.head_dim_k,
            hp.n_head_kv * hp.head_dim_k,
            hp.n_head_kv * hp.head_dim_v,
        );
        let w = |name: &str| weight(&gguf, name);
        let v = |name: &str| vector(&gguf, name);
        let opt_v = |name: &str| -> Result<Option<Vec<f32>>> {
            if gguf.tensor(name).is_some() {
                vector(&gguf, name).map(Some)
            } else {
                Ok(None)
            }
        };
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let need = |name: String, present: Option<Vec<f32>>| -> Result<Option<Vec<f32>>> {
                match present {
                    Some(p) => Ok(Some(p)),
                    None => Err(tensor_err(gguf.path(), &name, "is missing from the file")),
                }
            };
            let (q_norm, k_norm) = if flavor.qk_norm {
                (
                    need(n("attn_q_norm.weight"), opt_v(&n("attn_q_norm.weight"))?)?,
                    need(n("attn_k_norm.weight"), opt_v(&n("attn_k_norm.weight"))?)?,
                )
            } else {
                (None, None)
            };
            let (post_attn_norm, post_ffn_norm) = if flavor.post_norms {
                (
                    need(
                        n("post_attention_norm.weight"),
                        opt_v(&n("post_attention_norm.weight"))?,
                    )?,
                    need(
                        n("post_ffw_norm.weight"),
                        opt_v(&n("post_ffw_norm.weight"))?,
                    )?,
                )
            } else {
                (None, None)
            };
            let (bq, bk, bv) = if flavor.qkv_bias {
                (
                    opt_v(&n("attn_q.bias"))?,
                    opt_v(&n("attn_k.bias"))?,
                    opt_v(&n("attn_v.bias"))?,
                )
            } else {
                (None, None, None)
            };
            // Fused matrices are used as row ranges of one tensor: each output is
            // computed exactly as from a separate matrix.
            let (wq, wk, wv, w_gate, w_up) = if flavor.fused {
                let qkv = w(&n("attn_qkv.weight"))?;
                let gate_up = w(&n("ffn_up.weight"))?;
                (
                    qkv.rows(0, q_rows),
                    qkv.rows(q_rows, k_rows),
                    qkv.rows(q_rows + k_rows, v_rows),
                    gate_up.rows(0, hp.n_ff),
                    gate_up.rows(hp.n_ff, hp.n_ff),
                )
            } else {
                (
                    w(&n("attn_q.weight"))?,
                    w(&n("attn_k.weight"))?,
                    w(&n("attn_v.weight"))?,
                    w(&n("ffn_gate.weight"))?,
                    w(&n("ffn_up.weight"))?,
                )
            };
            layers.push(Layer {
                attn_norm: v(&n("attn_norm.weight"))?,
                wq,
                wk,
                wv,
                wo: w(&n("attn_output.weight"))?,
                bq,
                bk,
                bv,
                q_norm,
                k_norm,
                post_attn_norm,
                ffn_norm: v(&n("ffn_norm.weight"))?,
                w_gate,
                w_up,
                w_down: w(&n("ffn_down.weight"))?,
                post_ffn_norm,
                rope: Rope::scaled(
                    flavor.rope_style,
                    flavor.rope_dims,
                    flavor.rope_base[i],
                    &flavor.rope_scaling,
                ),
                window: flavor.window[i],
            });
        }
        let embd = w("token_embd.weight")?;
        // Tied embeddings: models without `output.weight` reuse the token embedding.
        let output = if gguf.tensor("output.weight").is_some() {
            w("output.weight")?
        } else {
            embd
        };
        let output_norm = v("output_norm.weight")?;
        Ok(Transformer {
            hp,
            flavor,
            embd,
            output,
            output_norm,
            layers,
            gguf,
            times: StepTimes::default(),
        })
    }

    /// Time spent in attention and the output layer so far.
    pub fn profile(&self) -> StepProfile {
        use std::sync::atomic::Ordering::Relaxed;
        StepProfile {
            attention_seconds: self.times.attention_ns.load(Relaxed) as f64 * 1e-9,
            output_seconds: self.times.output_ns.load(Relaxed) as f64 * 1e-9,
        }
    }

    fn matrix(&self, w: &WeightRef) -> QMatrix<'_> {
        let bytes = &self.gguf.data_bytes(w.part)[w.start..w.start + w.len];
        QMatrix {
            t: w.t,
            rows: w.rows,
            cols: w.cols,
            data: bytes,
        }
    }

    pub fn kv_dim(&self) -> usize {
        self.hp.n_head_kv * self.hp.head_dim_k
    }

    /// An f32 KV cache of `slots` sequences of up to `capacity` positions each.
    pub fn new_cache(&self, slots: usize, capacity: usize) -> KvCache {
        self.new_cache_of(slots, capacity, KvType::F32)
    }

    /// A KV cache storing `kv` numbers.
    pub fn new_cache_of(&self, slots: usize, capacity: usize, kv: KvType) -> KvCache {
        KvCache::new(
            slots,
            capacity,
            self.hp.n_layer,
            self.hp.n_head_kv * self.hp.head_dim_k,
            self.hp.n_head_kv * self.hp.head_dim_v,
            kv,
        )
    }

    /// Bytes of KV cache one position of one sequence takes.
    pub fn kv_bytes_per_position(&self, kv: KvType) -> usize {
        KvCache::bytes_per_position(
            self.hp.n_layer,
            self.hp.n_head_kv * self.hp.head_dim_k,
            self.hp.n_head_kv * self.hp.head_dim_v,
            kv,
        )
    }

    /// Run one step; returns the logits (vocab-sized) of each segment that asked.
    pub fn step(&self, cache: &mut KvCache, segs: &[Segment]) -> Result<Vec<Vec<f32>>> {
        self.run_step(cache, segs, false)
    }

    /// Run one step; returns the logits of *every* token of each segment that asked,
    /// in order (perplexity scoring). Each row's numbers are the same as `step` gives.
    pub fn step_every_token(&self, cache: &mut KvCache, segs: &[Segment]) -> Result<Vec<Vec<f32>>> {
        self.run_step(cache, segs, true)
    }

    fn run_step(
        &self,
        cache: &mut KvCache,
        segs: &[Segment],
        every_token: bool,
    ) -> Result<Vec<Vec<f32>>> {
        let hp = &self.hp;
        let e = hp.n_embd;
        // Row bookkeeping: (slot, position) per row.
        let mut rows: Vec<(usize, usize)> = Vec::new();
        let mut tokens: Vec<u32> = Vec::new();
        for s in segs {
            if s.slot >= cache.slots() {
                return Err(Error::Model {
                    path: self.gguf.path().to_path_buf(),
                    what: format!("slot {} does not exist", s.slot),
                });
            }
            if s.start + s.tokens.len() > cache.capacity() {
                return Err(Error::Model {
                    path: self.gguf.path().to_path_buf(),
                    what: format!(
                        "sequence needs {} positions, the KV cache holds {}",
                        s.start + s.tokens.len(),
                        cache.capacity()
                    ),
                });
            }
            for (i, &t) in s.tokens.iter().enumerate() {
                if t as usize >= hp.vocab_size {
                    return Err(Error::Model {
                        path: self.gguf.path().to_path_buf(),
                        what: format!("token id {t} is outside the vocabulary"),
                    });
                }
                rows.push((s.slot, s.start + i));
                tokens.push(t);
            }
        }
        let r = rows.len();
        if r == 0 {
            return Ok(Vec::new());
        }
        let embd = self.matrix(&self.embd);
        let mut x = vec![0f32; r * e];
        for (row, &t) in x.chunks_mut(e).zip(&tokens) {
            embd.dequantize_row(t as usize, row);
            if let Some(s) = self.flavor.embed_scale {
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
        for (li, layer) in self.layers.iter().enumerate() {
            h.copy_from_slice(&x);
            norm_rows(&mut h, e, &layer.attn_norm, hp.rms_norm_eps);
            let (wq, wk, wv) = (
                self.matrix(&layer.wq),
                self.matrix(&layer.wk),
                self.matrix(&layer.wv),
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
            for (kr, &(_, pos)) in k.chunks_mut(nkv * dk).zip(rows.iter()) {
                layer.rope.apply(kr, dk, pos);
            }
            pool::for_each_row(&mut q, dk, ROW_TASKS, |i, qh| {
                layer.rope.apply(qh, dk, rows[i / nh].1);
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
            let scale = self.flavor.attn_scale;
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
                let (k_cache, v_cache) = cache_ref.layer(li, slot);
                let head = ops::Head {
                    k: k_cache,
                    v: v_cache,
                    kv_stride: nkv * dk,
                    kv_head: h0 / group,
                    head_dim: dk,
                    softcap,
                };
                SCORES.with_borrow_mut(|scores| {
                    let qh = &q_ref[i * per * dk..(i + 1) * per * dk];
                    ops::attend_heads(qh, &head, start, pos, scale, scores, out);
                });
            });
            self.times.attention_ns.fetch_add(
                attention_started.elapsed().as_nanos() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            matmul(&self.matrix(&layer.wo), &att, r, &mut o);
            if let Some(pn) = &layer.post_attn_norm {
                norm_rows(&mut o, e, pn, hp.rms_norm_eps);
            }
            add_into(&mut x, &o);
            h.copy_from_slice(&x);
            norm_rows(&mut h, e, &layer.ffn_norm, hp.rms_norm_eps);
            let (wg, wu) = (self.matrix(&layer.w_gate), self.matrix(&layer.w_up));
            matmul_many(&mut [(&wg, &mut gate[..]), (&wu, &mut up[..])], &h, r);
            let gelu = self.flavor.gelu;
            let up_ref = &up;
            let n_ff = hp.n_ff;
            pool::for_each_row(&mut gate, n_ff, PARALLEL_ROWS, |i, g| {
                for (gv, uv) in g.iter_mut().zip(&up_ref[i * n_ff..(i + 1) * n_ff]) {
                    let a = if gelu {
                        ops::gelu_tanh(*gv)
                    } else {
                        ops::silu(*gv)
                    };
                    *gv = a * uv;
                }
            });
            matmul(&self.matrix(&layer.w_down), &gate, r, &mut o);
            if let Some(pn) = &layer.post_ffn_norm {
                norm_rows(&mut o, e, pn, hp.rms_norm_eps);
            }
            add_into(&mut x, &o);
        }
        // Logits only for the rows that need them.
        let mut want: Vec<usize> = Vec::new();
        let mut row = 0;
        for s in segs {
            let first = row;
            row += s.tokens.len();
            if s.logits && !s.tokens.is_empty() {
                if every_token {
                    want.extend(first..row);
                } else {
                    want.push(row - 1);
                }
            }
        }
        let output_started = std::time::Instant::now();
        let mut hs = vec![0f32; want.len() * e];
        for (j, &i) in want.iter().enumerate() {
            hs[j * e..(j + 1) * e].copy_from_slice(&x[i * e..(i + 1) * e]);
        }
        norm_rows(&mut hs, e, &self.output_norm, hp.rms_norm_eps);
        let out = self.matrix(&self.output);
        let vocab = out.rows;
        let mut logits = vec![0f32; want.len() * vocab];
        matmul(&out, &hs, want.len(), &mut logits);
        if let Some(cap) = hp.final_softcap {
            logits
                .iter_mut()
                .for_each(|l| *l = cap * ops::tanh(*l / cap));
        }
        self.times.output_ns.fetch_add(
            output_started.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(logits.chunks(vocab).map(|c| c.to_vec()).collect())
    }
}

/// Below this many rows, cheap per-row work (norms, activations) runs on the calling
/// thread: handing it out costs more than the work (decode steps of a few sequences).
const PARALLEL_ROWS: usize = 8;
/// Attention and RoPE go parallel from two (row, head) units: one head's attention
/// over a long context is worth a hand-off.
const ROW_TASKS: usize = 2;

thread_local! {
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

fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn weight(gguf: &GgufFile, name: &str) -> Result<WeightRef> {
    let t = gguf
        .tensor(name)
        .ok_or_else(|| tensor_err(gguf.path(), name, "is missing from the file"))?;
    let qt = QType::from_ggml(t.type_id).ok_or_else(|| {
        tensor_err(
            gguf.path(),
            name,
            format!(
                "has type {}, which teacher's kernels do not multiply",
                t.type_name()
            ),
        )
    })?;
    if t.shape.len() != 2 {
        return Err(tensor_err(
            gguf.path(),
            name,
            format!("should be a matrix, has shape {:?}", t.shape),
        ));
    }
    Ok(WeightRef {
        t: qt,
        rows: t.shape[0],
        cols: t.shape[1],
        part: t.part,
        start: t.offset as usize,
        len: t.nbytes,
    })
}

fn vector(gguf: &GgufFile, name: &str) -> Result<Vec<f32>> {
    let t = gguf
        .tensor(name)
        .ok_or_else(|| tensor_err(gguf.path(), name, "is missing from the file"))?;
    let qt = QType::from_ggml(t.type_id)
        .ok_or_else(|| tensor_err(gguf.path(), name, "has a type teacher cannot read"))?;
    let n = t.elem_count();
    if n % qt.block_elems() != 0 {
        return Err(tensor_err(
            gguf.path(),
            name,
            "has a size that is not whole blocks",
        ));
    }
    let mut out = vec![0f32; n];
    teacher_kernels::quant::dequantize_row(qt, gguf.tensor_bytes(t), n, &mut out);
    Ok(out)
}
