//! teacher's own batched forward pass, behind one seam for its backends: the CPU
//! (`cpu/`) and, with `--features cuda|metal`, the GPU (`gpu/`), siblings that give the
//! same bits.
//!
//! One call runs a *step*: any mix of sequences, each contributing a segment of
//! tokens at its own positions (a prompt chunk, or one decode token), so every weight
//! matrix is multiplied with all rows of the step at once. Each row's numbers depend
//! only on that row and on its own sequence's KV cache: a sequence gets bit-identical
//! logits alone or among 31 others, whatever the prompt chunking or thread count.
//!
//! Weights are used in place from the memory-mapped GGUF. The per-architecture facts
//! (RoPE style, norms, activation, biases, sliding windows) live in one file per
//! architecture: `llama.rs`, `qwen2.rs`, `qwen3.rs`, `phi3.rs`, `gemma2.rs`,
//! `gemma3.rs`.

mod cpu;
mod device;
mod gemma2;
mod gemma3;
#[cfg(feature = "gpu")]
mod gpu;
mod llama;
mod phi3;
mod qwen2;
mod qwen3;

pub use device::Device;
#[cfg(feature = "gpu")]
pub use gpu::draw_on_gpu;

use crate::error::{Error, Result};
use crate::gguf::{tensor_err, GgufFile};
use crate::hparams::{Arch, HParams};
use std::sync::Arc;
use teacher_kernels::ops::{self, KvType, Rope, RopeScaling, Yarn};
use teacher_kernels::{QMatrix, QType};

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
    backend: Backend,
    /// Why `--device auto` stayed on the CPU, when a GPU backend is built in.
    device_note: Option<String>,
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
    /// Load the model on `device`. `Device::Auto` takes a compiled-in GPU that is
    /// present, else the CPU (`device_note` says why); naming a GPU that cannot be used
    /// is an error that says why.
    pub fn load_on(gguf: Arc<GgufFile>, device: Device) -> Result<Self> {
        #[allow(unused_mut)]
        let mut t = Self::load(gguf)?;
        match device {
            Device::Cpu => {}
            #[cfg(feature = "gpu")]
            Device::Auto => match gpu::GpuModel::auto(&t) {
                Ok(g) => t.backend = Backend::Gpu(Box::new(g)),
                Err(e) => t.device_note = Some(format!("no usable GPU ({e}); running on the CPU")),
            },
            #[cfg(not(feature = "gpu"))]
            Device::Auto => {}
            #[cfg(feature = "gpu")]
            Device::Cuda(_) | Device::Metal => {
                let g = gpu::GpuModel::open(&t, device).map_err(|e| {
                    Error::Usage(format!(
                        "--device {device}: {e}\nhint: --device auto falls back to the CPU"
                    ))
                })?;
                t.backend = Backend::Gpu(Box::new(g));
            }
            #[cfg(not(feature = "gpu"))]
            Device::Cuda(_) => {
                return Err(Error::Usage(
                    "--device cuda: this build of teacher has no CUDA backend\nhint: build with `cargo build --release --features cuda`, or use --device cpu".into(),
                ))
            }
            #[cfg(not(feature = "gpu"))]
            Device::Metal => {
                return Err(Error::Usage(
                    "--device metal: this build of teacher has no Metal backend\nhint: on a Mac, build with `cargo build --release --features metal`; or use --device cpu".into(),
                ))
            }
        }
        Ok(t)
    }

    /// The device the forward pass runs on, in words (`cpu`, `cuda:0 (NVIDIA H200)`).
    pub fn device(&self) -> String {
        match &self.backend {
            Backend::Cpu => "cpu".into(),
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => g.describe(),
        }
    }

    /// Why `--device auto` chose the CPU although a GPU backend is built in.
    pub fn device_note(&self) -> Option<&str> {
        self.device_note.as_deref()
    }

    /// Load the model on the CPU.
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
            backend: Backend::Cpu,
            device_note: None,
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
    pub fn new_cache(&self, slots: usize, capacity: usize) -> Result<KvCache> {
        self.new_cache_of(slots, capacity, KvType::F32)
    }

    /// A KV cache storing `kv` numbers.
    pub fn new_cache_of(&self, slots: usize, capacity: usize, kv: KvType) -> Result<KvCache> {
        let (hk, hv) = (self.hp.head_dim_k, self.hp.head_dim_v);
        if kv == KvType::Q8 && !(hk.is_multiple_of(32) && hv.is_multiple_of(32)) {
            return Err(Error::Model {
                path: self.gguf.path().to_path_buf(),
                what: format!(
                    "--kv-type q8 stores each head in blocks of 32 numbers, and this \
                     model's key and value heads are {hk} and {hv} wide\nhint: use \
                     --kv-type f16"
                ),
            });
        }
        Ok(KvCache(match &self.backend {
            Backend::Cpu => CacheImpl::Cpu(cpu::KvCache::new(
                slots,
                capacity,
                self.hp.n_layer,
                self.hp.n_head_kv,
                (hk, hv),
                kv,
            )),
            #[cfg(feature = "gpu")]
            Backend::Gpu(_) if kv == KvType::Q8 => {
                return Err(Error::Model {
                    path: self.gguf.path().to_path_buf(),
                    what: "--kv-type q8 runs on the CPU: the GPU backend's attention reads \
                           f16 or f32 caches\nhint: use --kv-type f16 on a GPU"
                        .into(),
                })
            }
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => CacheImpl::Gpu(
                g.new_cache(
                    slots,
                    capacity,
                    self.hp.n_layer,
                    self.hp.n_head_kv * hk,
                    self.hp.n_head_kv * hv,
                    kv,
                )
                .map_err(|e| Error::Model {
                    path: self.gguf.path().to_path_buf(),
                    what: format!("cannot allocate the KV cache on the GPU: {e}"),
                })?,
            ),
        }))
    }

    /// Bytes of KV cache one position of one sequence takes.
    pub fn kv_bytes_per_position(&self, kv: KvType) -> usize {
        cpu::KvCache::bytes_per_position(
            self.hp.n_layer,
            self.hp.n_head_kv * self.hp.head_dim_k,
            self.hp.n_head_kv * self.hp.head_dim_v,
            kv,
        )
    }

    /// Run one step; returns the logits (vocab-sized) of each segment that asked.
    pub fn step(&self, cache: &mut KvCache, segs: &[Segment]) -> Result<Vec<Vec<f32>>> {
        self.run_step(cache, segs, false, false)?.logits()
    }

    /// Run one step; returns the greedy choice (`sampling::argmax` of the logits) of
    /// each segment that asked. A GPU sends back only these token ids.
    pub fn step_argmax(&self, cache: &mut KvCache, segs: &[Segment]) -> Result<Vec<u32>> {
        match self.run_step(cache, segs, false, true)? {
            StepOut::Tokens(t) => Ok(t),
            StepOut::Logits(l) => Ok(l
                .iter()
                .map(|r| teacher_kernels::sampling::argmax(r))
                .collect()),
            StepOut::Picks(_) => Err(Error::Usage(
                "internal: a greedy step returned picks".into(),
            )),
        }
    }

    /// Run one step and draw each asking segment's next token (`draws`, one per
    /// asking segment, in order): a backend that samples on its device answers
    /// `Pick::Token` — the token `sampling::sample` draws from the same logits — and
    /// sends back no logits; otherwise (and for a row the device leaves undecided) it
    /// answers the row's raw logits, for the caller to sample.
    pub fn step_sample(
        &self,
        cache: &mut KvCache,
        segs: &[Segment],
        draws: &[Draw],
    ) -> Result<Vec<Pick>> {
        let asking = segs.iter().filter(|s| s.logits).count();
        if draws.len() != asking {
            return Err(Error::Usage(format!(
                "internal: {} draws for {asking} segments that want a token",
                draws.len()
            )));
        }
        match self.run_step_with(cache, segs, false, false, Some(draws))? {
            StepOut::Picks(p) => Ok(p),
            StepOut::Logits(l) => Ok(l.into_iter().map(Pick::Logits).collect()),
            StepOut::Tokens(t) => Ok(t.into_iter().map(Pick::Token).collect()),
        }
    }

    /// Run one step; returns the logits of *every* token of each segment that asked,
    /// in order (perplexity scoring). Each row's numbers are the same as `step` gives.
    pub fn step_every_token(&self, cache: &mut KvCache, segs: &[Segment]) -> Result<Vec<Vec<f32>>> {
        self.run_step(cache, segs, true, false)?.logits()
    }

    fn run_step(
        &self,
        cache: &mut KvCache,
        segs: &[Segment],
        every_token: bool,
        greedy: bool,
    ) -> Result<StepOut> {
        self.run_step_with(cache, segs, every_token, greedy, None)
    }

    fn run_step_with(
        &self,
        cache: &mut KvCache,
        segs: &[Segment],
        every_token: bool,
        greedy: bool,
        draws: Option<&[Draw]>,
    ) -> Result<StepOut> {
        let hp = &self.hp;
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
        if rows.is_empty() {
            return Ok(StepOut::Logits(Vec::new()));
        }
        let step = Step {
            segs,
            rows: &rows,
            tokens: &tokens,
            every_token,
            greedy,
            draws,
        };
        match (&self.backend, &mut cache.0) {
            (Backend::Cpu, CacheImpl::Cpu(c)) => cpu::run_step(self, c, &step),
            #[cfg(feature = "gpu")]
            (Backend::Gpu(g), CacheImpl::Gpu(c)) => g.run_step(self, c, &step),
            #[allow(unreachable_patterns)]
            _ => Err(Error::Model {
                path: self.gguf.path().to_path_buf(),
                what: "the KV cache was made for another device than the model's".into(),
            }),
        }
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

/// The rows of a step whose logits are returned: each asking segment's last row, or
/// all of its rows for `every_token`.
fn logit_rows(segs: &[Segment], every_token: bool) -> Vec<usize> {
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
    want
}

/// Where the forward pass runs (one backend each, siblings behind `Transformer`).
enum Backend {
    Cpu,
    #[cfg(feature = "gpu")]
    Gpu(Box<gpu::GpuModel>),
}

/// The KV cache of a model's sequences, kept on the model's device.
pub struct KvCache(CacheImpl);

enum CacheImpl {
    Cpu(cpu::KvCache),
    #[cfg(feature = "gpu")]
    Gpu(gpu::KvCache),
}

impl KvCache {
    pub fn slots(&self) -> usize {
        match &self.0 {
            CacheImpl::Cpu(c) => c.slots(),
            #[cfg(feature = "gpu")]
            CacheImpl::Gpu(c) => c.slots,
        }
    }

    pub fn capacity(&self) -> usize {
        match &self.0 {
            CacheImpl::Cpu(c) => c.capacity(),
            #[cfg(feature = "gpu")]
            CacheImpl::Gpu(c) => c.capacity,
        }
    }

    pub fn kv_type(&self) -> KvType {
        match &self.0 {
            CacheImpl::Cpu(c) => c.kv_type(),
            #[cfg(feature = "gpu")]
            CacheImpl::Gpu(c) => c.kv_type,
        }
    }

    /// Copy positions `0..len` of every layer from slot `from` to slot `to` (a shared
    /// prompt prefix: the keys and values of a position depend only on the tokens up to
    /// it, so the copy holds exactly what computing them again would write).
    pub fn copy_prefix(&mut self, from: usize, to: usize, len: usize) {
        match &mut self.0 {
            CacheImpl::Cpu(c) => c.copy_prefix(from, to, len),
            #[cfg(feature = "gpu")]
            CacheImpl::Gpu(c) => c.copy_prefix(from, to, len),
        }
    }
}

/// One asking row's draw, for a backend that samples on its device: what
/// `sampling::sample` is given (the step is the number of tokens generated so far).
pub struct Draw<'a> {
    pub params: &'a teacher_kernels::SamplingParams,
    pub prompt: &'a [u32],
    pub generated: &'a [u32],
    pub seed: u64,
    pub stream: u64,
}

/// A row's outcome from [`Transformer::step_sample`]: the drawn token, or the raw
/// logits for the caller to sample.
#[derive(Debug)]
pub enum Pick {
    Token(u32),
    Logits(Vec<f32>),
}

/// What a backend's step gives back: logit rows, or (asked for greedy choices, on a
/// device that makes them itself) token ids, or (asked to draw) a pick per row.
enum StepOut {
    Logits(Vec<Vec<f32>>),
    Tokens(Vec<u32>),
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    Picks(Vec<Pick>),
}

impl StepOut {
    fn logits(self) -> Result<Vec<Vec<f32>>> {
        match self {
            StepOut::Logits(l) => Ok(l),
            StepOut::Tokens(_) | StepOut::Picks(_) => Err(Error::Usage(
                "internal: a logits step returned token ids".into(),
            )),
        }
    }
}

/// One step as the backends get it: the segments, and their rows ((slot, position)
/// each) and tokens, already checked against the cache and the vocabulary.
struct Step<'a> {
    segs: &'a [Segment<'a>],
    rows: &'a [(usize, usize)],
    tokens: &'a [u32],
    /// Logits of every row of the asking segments, not only their last.
    every_token: bool,
    /// Greedy token ids are wanted instead of logits (a backend may answer either).
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    greedy: bool,
    /// Draws for the asking rows (a backend may draw them or answer logits).
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    draws: Option<&'a [Draw<'a>]>,
}
