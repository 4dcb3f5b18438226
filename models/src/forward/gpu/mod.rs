//! The forward step on a GPU (CUDA or Metal, through `teacher_kernels::gpu::Gpu`): the
//! CPU step's operations in the CPU step's order, each a kernel of
//! `kernels/gpu/forward.h` that computes the CPU kernel's bits.
//!
//! Weights are uploaded once, still in their GGUF blocks; per step only the token ids,
//! positions, slots and logit rows go up and the asked-for logits come back. Steps of
//! a shape seen before (decode steps at a steady batch) replay a captured CUDA graph,
//! so a step costs one launch instead of hundreds (Metal encodes a step's kernels in one
//! command buffer instead). `TEACHER_CUDA_GRAPHS=0` turns graphs off (for comparisons; the numbers are the same).

mod sample;

pub use sample::draw_on_gpu;

use super::{Step, Transformer, WeightRef};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use teacher_kernels::gpu::{
    Arg, DevBuf, Gpu, GpuError, Graph, ATT_THREADS, MAX_HEAD_DIM, MM_COLS, MM_ROWS,
};
use teacher_kernels::ops::{KvType, Rope, RopeStyle};
use teacher_kernels::QType;

type GResult<T> = std::result::Result<T, GpuError>;

/// A weight matrix on the GPU.
struct DevWeight {
    t: QType,
    rows: usize,
    cols: usize,
    buf: Arc<DevBuf<u8>>,
}

struct DevLayer {
    attn_norm: DevBuf<f32>,
    wq: DevWeight,
    wk: DevWeight,
    wv: DevWeight,
    wo: DevWeight,
    bq: Option<DevBuf<f32>>,
    bk: Option<DevBuf<f32>>,
    bv: Option<DevBuf<f32>>,
    q_norm: Option<DevBuf<f32>>,
    k_norm: Option<DevBuf<f32>>,
    post_attn_norm: Option<DevBuf<f32>>,
    ffn_norm: DevBuf<f32>,
    w_gate: DevWeight,
    w_up: DevWeight,
    w_down: DevWeight,
    post_ffn_norm: Option<DevBuf<f32>>,
    /// Index into the distinct RoPE tables.
    rope: usize,
    window: Option<usize>,
}

/// Per-step buffers, grown to the largest step seen.
#[derive(Default)]
struct Scratch {
    rows: usize,
    want: usize,
    score_len: usize,
    bufs: Option<Bufs>,
}

struct Bufs {
    x: DevBuf<f32>,
    h: DevBuf<f32>,
    q: DevBuf<f32>,
    k: DevBuf<f32>,
    v: DevBuf<f32>,
    att: DevBuf<f32>,
    o: DevBuf<f32>,
    gate: DevBuf<f32>,
    up: DevBuf<f32>,
    aq: DevBuf<i8>,
    ad: DevBuf<f32>,
    asum: DevBuf<i32>,
    ahalf: DevBuf<i32>,
    scores: DevBuf<f32>,
    tokens: DevBuf<u32>,
    pos: DevBuf<i32>,
    slot: DevBuf<i32>,
    want_rows: DevBuf<i32>,
    hs: DevBuf<f32>,
    logits: DevBuf<f32>,
    picks: DevBuf<u32>,
}

/// Host-side state behind the model's lock: scratch, RoPE tables, captured graphs.
struct State {
    scratch: Scratch,
    /// One (sin, cos) table per distinct RoPE, `table_len` positions long.
    tables: Vec<DevBuf<f32>>,
    table_len: usize,
    graphs: HashMap<GraphKey, GraphEntry>,
    sampling: sample::SampleBufs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct GraphKey {
    rows: usize,
    want: usize,
    cache: u64,
}

struct GraphEntry {
    seen: usize,
    graph: Option<Graph>,
}

pub(super) struct GpuModel {
    gpu: Arc<Gpu>,
    layers: Vec<DevLayer>,
    embd: DevWeight,
    output: DevWeight,
    output_norm: DevBuf<f32>,
    ropes: Vec<Rope>,
    graphs_on: bool,
    state: Mutex<State>,
}

/// The GPU KV cache: [slot][layer][position][dim], f32 or f16, like the CPU's.
pub(super) struct KvCache {
    pub slots: usize,
    pub capacity: usize,
    pub kv_type: KvType,
    n_layer: usize,
    k_dim: usize,
    v_dim: usize,
    k: DevBuf<u8>,
    v: DevBuf<u8>,
    gpu: Arc<Gpu>,
    /// A failed prefix copy, reported by the next step.
    failed: Option<String>,
}

impl KvCache {
    pub fn copy_prefix(&mut self, from: usize, to: usize, len: usize) {
        assert!(from < self.slots && to < self.slots && len <= self.capacity);
        if from == to || len == 0 {
            return;
        }
        for layer in 0..self.n_layer {
            let base = |slot: usize| (slot * self.n_layer + layer) * self.capacity;
            let (bf, bt) = (base(from), base(to));
            for (buf, dim) in [(self.k.ptr(), self.k_dim), (self.v.ptr(), self.v_dim)] {
                // Bytes of one position's row.
                let row = self.kv_type.bytes_of(dim);
                if let Err(e) = self.gpu.copy::<u8>(buf, bt * row, buf, bf * row, len * row) {
                    self.failed.get_or_insert(e.to_string());
                }
            }
        }
    }
}

fn ggml_kind(t: QType) -> (&'static str, i32) {
    match t {
        QType::Q4_0 => ("q4_0", -1),
        QType::Q4_1 => ("q4_1", -1),
        QType::Q5_0 => ("q5_0", -1),
        QType::Q5_1 => ("q5_1", -1),
        QType::Q8_0 => ("q8_0", -1),
        QType::Q2K => ("q2_k", -1),
        QType::Q3K => ("q3_k", -1),
        QType::Q4K => ("q4_k", -1),
        QType::Q5K => ("q5_k", -1),
        QType::Q6K => ("q6_k", -1),
        QType::IQ4NL => ("iq4_nl", -1),
        QType::IQ4XS => ("iq4_xs", -1),
        QType::F32 => ("float", 0),
        QType::F16 => ("float", 1),
        QType::BF16 => ("float", 2),
    }
}

impl GpuModel {
    /// The model on `device` (`cuda:N` or `metal`), or why it cannot run there.
    pub fn open(t: &Transformer, device: super::Device) -> GResult<GpuModel> {
        let gpu = match device {
            #[cfg(feature = "cuda")]
            super::Device::Cuda(n) => Gpu::cuda(n)?,
            #[cfg(not(feature = "cuda"))]
            super::Device::Cuda(_) => {
                return Err(GpuError::Unavailable(
                    "this build of teacher has no CUDA backend\nhint: build with `cargo build --release --features cuda`, or use --device cpu".into(),
                ))
            }
            super::Device::Metal => Gpu::metal()?,
            super::Device::Cpu | super::Device::Auto => {
                return Err(GpuError::Unavailable(format!("{device} is not a GPU")))
            }
        };
        GpuModel::new(t, gpu)
    }

    /// The first GPU this build can use: CUDA device 0, then Metal.
    pub fn auto(t: &Transformer) -> GResult<GpuModel> {
        let mut why = Vec::new();
        #[cfg(feature = "cuda")]
        match GpuModel::open(t, super::Device::Cuda(0)) {
            Ok(g) => return Ok(g),
            Err(e) => why.push(e.to_string()),
        }
        #[cfg(feature = "metal")]
        match GpuModel::open(t, super::Device::Metal) {
            Ok(g) => return Ok(g),
            Err(e) => why.push(e.to_string()),
        }
        Err(GpuError::Unavailable(why.join("; ")))
    }

    fn new(t: &Transformer, gpu: Gpu) -> GResult<GpuModel> {
        let hp = &t.hp;
        if hp.head_dim_k > MAX_HEAD_DIM || hp.head_dim_v > MAX_HEAD_DIM {
            return Err(GpuError::Unavailable(format!(
                "heads of {} dimensions are larger than the GPU attention kernel's {MAX_HEAD_DIM}",
                hp.head_dim_k.max(hp.head_dim_v)
            )));
        }
        let gpu = Arc::new(gpu);
        let mut uploaded: HashMap<(usize, usize), Arc<DevBuf<u8>>> = HashMap::new();
        let mut weight = |w: &WeightRef| -> GResult<DevWeight> {
            let buf = match uploaded.get(&(w.part, w.start)) {
                Some(b) => b.clone(),
                None => {
                    let bytes = &t.gguf.data_bytes(w.part)[w.start..w.start + w.len];
                    let b = Arc::new(gpu.upload(bytes)?);
                    uploaded.insert((w.part, w.start), b.clone());
                    b
                }
            };
            Ok(DevWeight {
                t: w.t,
                rows: w.rows,
                cols: w.cols,
                buf,
            })
        };
        let vec = |v: &[f32]| gpu.upload(v);
        let opt = |v: &Option<Vec<f32>>| -> GResult<Option<DevBuf<f32>>> {
            v.as_deref().map(&vec).transpose()
        };
        let mut ropes: Vec<Rope> = Vec::new();
        let mut layers = Vec::with_capacity(t.layers.len());
        for l in &t.layers {
            let rope = match ropes.iter().position(|r| r.same_angles(&l.rope)) {
                Some(i) => i,
                None => {
                    ropes.push(l.rope.clone());
                    ropes.len() - 1
                }
            };
            layers.push(DevLayer {
                attn_norm: vec(&l.attn_norm)?,
                wq: weight(&l.wq)?,
                wk: weight(&l.wk)?,
                wv: weight(&l.wv)?,
                wo: weight(&l.wo)?,
                bq: opt(&l.bq)?,
                bk: opt(&l.bk)?,
                bv: opt(&l.bv)?,
                q_norm: opt(&l.q_norm)?,
                k_norm: opt(&l.k_norm)?,
                post_attn_norm: opt(&l.post_attn_norm)?,
                ffn_norm: vec(&l.ffn_norm)?,
                w_gate: weight(&l.w_gate)?,
                w_up: weight(&l.w_up)?,
                w_down: weight(&l.w_down)?,
                post_ffn_norm: opt(&l.post_ffn_norm)?,
                rope,
                window: l.window,
            });
        }
        let embd = weight(&t.embd)?;
        let output = weight(&t.output)?;
        let output_norm = vec(&t.output_norm)?;
        gpu.synchronize()?;
        let graphs_on =
            gpu.records_graphs() && std::env::var("TEACHER_CUDA_GRAPHS").map_or(true, |v| v != "0");
        Ok(GpuModel {
            gpu,
            layers,
            embd,
            output,
            output_norm,
            ropes,
            graphs_on,
            state: Mutex::new(State {
                scratch: Scratch::default(),
                tables: Vec::new(),
                table_len: 0,
                graphs: HashMap::new(),
                sampling: sample::SampleBufs::default(),
            }),
        })
    }

    pub fn describe(&self) -> String {
        self.gpu.name.clone()
    }

    pub fn new_cache(
        &self,
        slots: usize,
        capacity: usize,
        n_layer: usize,
        k_dim: usize,
        v_dim: usize,
        kv: KvType,
    ) -> GResult<KvCache> {
        let n = |dim: usize| {
            slots
                .checked_mul(n_layer)
                .and_then(|x| x.checked_mul(capacity))
                .and_then(|x| x.checked_mul(kv.bytes_of(dim)))
                .ok_or_else(|| GpuError::Driver("KV cache size overflows".into()))
        };
        let (nk, nv) = (n(k_dim)?, n(v_dim)?);
        Ok(KvCache {
            slots,
            capacity,
            kv_type: kv,
            n_layer,
            k_dim,
            v_dim,
            k: self.gpu.alloc::<u8>(nk)?,
            v: self.gpu.alloc::<u8>(nv)?,
            gpu: self.gpu.clone(),
            failed: None,
        })
    }

    pub fn run_step(
        &self,
        t: &Transformer,
        cache: &mut KvCache,
        step: &Step,
    ) -> Result<super::StepOut> {
        let err = |e: GpuError| Error::Model {
            path: t.gguf.path().to_path_buf(),
            what: format!("GPU step failed: {e}"),
        };
        if let Some(f) = cache.failed.take() {
            return Err(err(GpuError::Driver(f)));
        }
        let want = super::logit_rows(step.segs, step.every_token);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.step_locked(t, &mut st, cache, step, &want)
            .map_err(err)
    }

    fn step_locked(
        &self,
        t: &Transformer,
        st: &mut State,
        cache: &KvCache,
        step: &Step,
        want: &[usize],
    ) -> GResult<super::StepOut> {
        let (rows, tokens) = (step.rows, step.tokens);
        // Plain greedy draws need only the argmax.
        let greedy = step.greedy
            || step
                .draws
                .is_some_and(|d| d.iter().all(|d| d.params.is_plain_greedy()));
        let gpu = &self.gpu;
        let r = rows.len();
        let grown = self.ensure_scratch(t, st, r, want.len().max(1), cache.capacity)?;
        self.ensure_tables(st, cache.capacity)?;
        if grown {
            st.graphs.clear();
        }
        let b = st.scratch.bufs.as_mut().expect("scratch allocated above");
        let pos: Vec<i32> = rows.iter().map(|&(_, p)| p as i32).collect();
        let slot: Vec<i32> = rows.iter().map(|&(s, _)| s as i32).collect();
        let want_i: Vec<i32> = want.iter().map(|&w| w as i32).collect();
        gpu.write(tokens, &mut b.tokens)?;
        gpu.write(&pos, &mut b.pos)?;
        gpu.write(&slot, &mut b.slot)?;
        gpu.write(&want_i, &mut b.want_rows)?;
        let key = GraphKey {
            rows: r,
            want: want.len(),
            cache: cache.k.ptr(),
        };
        let st_tables: Vec<u64> = st.tables.iter().map(|t| t.ptr()).collect();
        let b = st.scratch.bufs.as_ref().expect("scratch allocated above");
        let enqueue = || self.enqueue(t, b, &st_tables, cache, r, want.len());
        if self.graphs_on {
            if st.graphs.len() > 64 {
                st.graphs.clear();
            }
            let entry = st.graphs.entry(key).or_insert(GraphEntry {
                seen: 0,
                graph: None,
            });
            entry.seen += 1;
            if entry.graph.is_none() && entry.seen >= 2 {
                entry.graph = gpu.capture(enqueue)?;
            }
            match &entry.graph {
                Some(g) => g.launch()?,
                None => enqueue()?,
            }
        } else {
            enqueue()?;
        }
        let vocab = self.output.rows;
        if greedy {
            // Only the chosen token ids cross the bus.
            gpu.launch(
                "argmax_rows",
                (want.len() as u32, 1),
                256,
                &[
                    Arg::Ptr(b.logits.ptr()),
                    Arg::I32(want.len() as i32),
                    Arg::I32(vocab as i32),
                    Arg::Ptr(b.picks.ptr()),
                ],
            )?;
            let mut picks = vec![0u32; want.len()];
            gpu.read(&b.picks, &mut picks)?;
            return Ok(super::StepOut::Tokens(picks));
        }
        if let (Some(draws), true) = (step.draws, gpu.samples()) {
            let picks = st.sampling.draw(gpu, &b.logits, draws, vocab)?;
            return Ok(super::StepOut::Picks(picks));
        }
        let mut host = vec![0f32; want.len() * vocab];
        gpu.read(&b.logits, &mut host)?;
        Ok(super::StepOut::Logits(
            host.chunks(vocab.max(1)).map(|c| c.to_vec()).collect(),
        ))
    }

    /// Grow the scratch buffers to hold `r` rows, `w` logit rows and attention over
    /// `cap` positions; true when they were reallocated (captured graphs then point at
    /// freed memory and are dropped).
    fn ensure_scratch(
        &self,
        t: &Transformer,
        st: &mut State,
        r: usize,
        w: usize,
        cap: usize,
    ) -> GResult<bool> {
        let s = &mut st.scratch;
        if s.bufs.is_some() && r <= s.rows && w <= s.want && cap <= s.score_len {
            return Ok(false);
        }
        let hp = &t.hp;
        let (r, w, cap) = (r.max(s.rows), w.max(s.want), cap.max(s.score_len));
        let (e, nh, nkv, dk, dv, nff) = (
            hp.n_embd,
            hp.n_head,
            hp.n_head_kv,
            hp.head_dim_k,
            hp.head_dim_v,
            hp.n_ff,
        );
        let kmax = e.max(nh * dv).max(nff);
        let g = &self.gpu;
        s.bufs = None;
        s.bufs = Some(Bufs {
            x: g.alloc(r * e)?,
            h: g.alloc(r * e)?,
            q: g.alloc(r * nh * dk)?,
            k: g.alloc(r * nkv * dk)?,
            v: g.alloc(r * nkv * dv)?,
            att: g.alloc(r * nh * dv)?,
            o: g.alloc(r * e)?,
            gate: g.alloc(r * nff)?,
            up: g.alloc(r * nff)?,
            aq: g.alloc(r * kmax)?,
            ad: g.alloc(r * kmax / 32)?,
            asum: g.alloc(r * kmax / 32)?,
            ahalf: g.alloc(2 * r * kmax / 32)?,
            scores: g.alloc(r * nh * cap)?,
            tokens: g.alloc(r)?,
            pos: g.alloc(r)?,
            slot: g.alloc(r)?,
            want_rows: g.alloc(w)?,
            hs: g.alloc(w * e)?,
            logits: g.alloc(w * self.output.rows)?,
            picks: g.alloc(w)?,
        });
        s.rows = r;
        s.want = w;
        s.score_len = cap;
        Ok(true)
    }

    /// RoPE (sin, cos) tables for positions 0..cap of every distinct rope, computed on
    /// the host by the CPU's own `Rope::sin_cos`.
    fn ensure_tables(&self, st: &mut State, cap: usize) -> GResult<()> {
        if cap <= st.table_len && st.tables.len() == self.ropes.len() {
            return Ok(());
        }
        let mut tables = Vec::with_capacity(self.ropes.len());
        for rope in &self.ropes {
            let half = rope.dims / 2;
            let mut tab = vec![0f32; cap * half * 2];
            for p in 0..cap {
                for i in 0..half {
                    let (s, c) = rope.sin_cos(p, i);
                    tab[(p * half + i) * 2] = s;
                    tab[(p * half + i) * 2 + 1] = c;
                }
            }
            tables.push(self.gpu.upload(&tab)?);
        }
        st.tables = tables;
        st.table_len = cap;
        st.graphs.clear();
        Ok(())
    }

    /// Queue one whole step on the stream (also what a graph captures): every pointer
    /// and shape here is fixed for a (rows, logit rows, cache) shape; what changes from
    /// step to step (tokens, positions, slots, logit rows) is read from device buffers.
    fn enqueue(
        &self,
        t: &Transformer,
        b: &Bufs,
        tables: &[u64],
        cache: &KvCache,
        r: usize,
        w: usize,
    ) -> GResult<()> {
        let g = &self.gpu;
        let hp = &t.hp;
        let fl = &t.flavor;
        let (e, nh, nkv, dk, dv, nff) = (
            hp.n_embd,
            hp.n_head,
            hp.n_head_kv,
            hp.head_dim_k,
            hp.head_dim_v,
            hp.n_ff,
        );
        let eps = hp.rms_norm_eps;
        let p = |s: &DevBuf<f32>| Arg::Ptr(s.ptr());
        let (x, h, q, k, v, att, o, gate, up) = (
            b.x.ptr(),
            b.h.ptr(),
            b.q.ptr(),
            b.k.ptr(),
            b.v.ptr(),
            b.att.ptr(),
            b.o.ptr(),
            b.gate.ptr(),
            b.up.ptr(),
        );
        let (pos, slot) = (b.pos.ptr(), b.slot.ptr());
        // Embedding lookup.
        let (kind, ft) = ggml_kind(self.embd.t);
        let (scaled, scale) = match fl.embed_scale {
            Some(s) => (1, s),
            None => (0, 1.0),
        };
        let embd_args = [
            Arg::Ptr(self.embd.buf.ptr()),
            if ft >= 0 {
                Arg::I32(ft)
            } else {
                Arg::I64(self.embd.t.row_bytes(self.embd.cols) as i64)
            },
            Arg::I32(e as i32),
            Arg::Ptr(b.tokens.ptr()),
            Arg::I32(r as i32),
            Arg::I32(scaled),
            Arg::F32(scale),
            Arg::Ptr(x),
        ];
        g.launch_n(&format!("embed_{kind}"), r * e, &embd_args)?;
        let norm = |buf: u64, rows: usize, width: usize, wt: &DevBuf<f32>| -> GResult<()> {
            // One warp per row, eight rows a block.
            g.launch(
                "rms_norm",
                (rows.div_ceil(8) as u32, 1),
                256,
                &[
                    Arg::Ptr(buf),
                    Arg::I32(rows as i32),
                    Arg::I32(width as i32),
                    p(wt),
                    Arg::F32(eps),
                ],
            )
        };
        // Rows of `width` activations into Q8 blocks (aq/ad/asum/ahalf), a warp a block.
        let quantize_rows = |src: u64, rows: usize, width: usize| -> GResult<()> {
            let warps = rows * width / 32;
            g.launch(
                "quantize_q8",
                (warps.div_ceil(8) as u32, 1),
                256,
                &[
                    Arg::Ptr(src),
                    Arg::I32(rows as i32),
                    Arg::I32(width as i32),
                    Arg::Ptr(b.aq.ptr()),
                    p(&b.ad),
                    Arg::Ptr(b.asum.ptr()),
                    Arg::Ptr(b.ahalf.ptr()),
                ],
            )
        };
        let quantize = |src: u64, width: usize| quantize_rows(src, r, width);
        // y (m × w.rows) = input · wᵀ; `src` is the f32 input (float weights), the
        // quantized copy of it is in aq/ad/asum/ahalf.
        let mm = |wt: &DevWeight, src: u64, m: usize, y: u64| -> GResult<()> {
            let (kind, ft) = ggml_kind(wt.t);
            if ft >= 0 {
                g.launch_n(
                    "mm_float",
                    m * wt.rows,
                    &[
                        Arg::Ptr(wt.buf.ptr()),
                        Arg::I32(ft),
                        Arg::I32(wt.rows as i32),
                        Arg::I32(wt.cols as i32),
                        Arg::Ptr(src),
                        Arg::I32(m as i32),
                        Arg::Ptr(y),
                    ],
                )
            } else {
                g.launch(
                    &format!("mm_{kind}"),
                    (wt.rows.div_ceil(MM_COLS) as u32, m.div_ceil(MM_ROWS) as u32),
                    MM_COLS as u32,
                    &[
                        Arg::Ptr(wt.buf.ptr()),
                        Arg::I32(wt.rows as i32),
                        Arg::I32(wt.cols as i32),
                        Arg::Ptr(b.aq.ptr()),
                        p(&b.ad),
                        Arg::Ptr(b.asum.ptr()),
                        Arg::Ptr(b.ahalf.ptr()),
                        Arg::I32(m as i32),
                        Arg::Ptr(y),
                    ],
                )
            }
        };
        let bias = |buf: u64, width: usize, bs: &Option<DevBuf<f32>>| -> GResult<()> {
            match bs {
                Some(bv) => g.launch_n(
                    "add_bias",
                    r * width,
                    &[
                        Arg::Ptr(buf),
                        Arg::I64((r * width) as i64),
                        Arg::I32(width as i32),
                        p(bv),
                    ],
                ),
                None => Ok(()),
            }
        };
        let add_into = |dst: u64, src: u64| -> GResult<()> {
            g.launch_n(
                "add_into",
                r * e,
                &[Arg::Ptr(dst), Arg::Ptr(src), Arg::I64((r * e) as i64)],
            )
        };
        let copy = |dst: &DevBuf<f32>, src: &DevBuf<f32>, n: usize| -> GResult<()> {
            g.copy::<f32>(dst.ptr(), 0, src.ptr(), 0, n)
        };
        let kv_f16 = i32::from(cache.kv_type == KvType::F16);
        let (kc, vc) = (cache.k.ptr(), cache.v.ptr());
        let softcap = hp.attn_softcap.unwrap_or(0.0);
        for (li, l) in self.layers.iter().enumerate() {
            copy(&b.h, &b.x, r * e)?;
            norm(h, r, e, &l.attn_norm)?;
            quantize(h, e)?;
            mm(&l.wq, h, r, q)?;
            mm(&l.wk, h, r, k)?;
            mm(&l.wv, h, r, v)?;
            bias(q, nh * dk, &l.bq)?;
            bias(k, nkv * dk, &l.bk)?;
            bias(v, nkv * dv, &l.bv)?;
            if let (Some(qn), Some(kn)) = (&l.q_norm, &l.k_norm) {
                norm(q, r * nh, dk, qn)?;
                norm(k, r * nkv, dk, kn)?;
            }
            let rope = &self.ropes[l.rope];
            let style = match rope.style {
                RopeStyle::Interleaved => 0,
                RopeStyle::Halves => 1,
            };
            for (buf, heads) in [(k, nkv), (q, nh)] {
                g.launch_n(
                    "rope",
                    r * heads * (rope.dims / 2),
                    &[
                        Arg::Ptr(buf),
                        Arg::I32(r as i32),
                        Arg::I32(heads as i32),
                        Arg::I32(dk as i32),
                        Arg::I32(rope.dims as i32),
                        Arg::I32(style),
                        Arg::Ptr(pos),
                        Arg::Ptr(tables[l.rope]),
                    ],
                )?;
            }
            g.launch_n(
                "kv_write",
                r * (nkv * dk + nkv * dv),
                &[
                    Arg::Ptr(k),
                    Arg::Ptr(v),
                    Arg::I32(r as i32),
                    Arg::I32((nkv * dk) as i32),
                    Arg::I32((nkv * dv) as i32),
                    Arg::Ptr(slot),
                    Arg::Ptr(pos),
                    Arg::I32(li as i32),
                    Arg::I32(cache.n_layer as i32),
                    Arg::I32(cache.capacity as i32),
                    Arg::I32(kv_f16),
                    Arg::Ptr(kc),
                    Arg::Ptr(vc),
                ],
            )?;
            g.launch(
                "attention",
                ((r * nh) as u32, 1),
                ATT_THREADS,
                &[
                    Arg::Ptr(q),
                    Arg::I32(nh as i32),
                    Arg::I32(nkv as i32),
                    Arg::I32(dk as i32),
                    Arg::Ptr(slot),
                    Arg::Ptr(pos),
                    Arg::I32(li as i32),
                    Arg::I32(cache.n_layer as i32),
                    Arg::I32(cache.capacity as i32),
                    Arg::I32(l.window.map_or(0, |w| w as i32)),
                    Arg::I32(kv_f16),
                    Arg::Ptr(kc),
                    Arg::Ptr(vc),
                    Arg::F32(fl.attn_scale),
                    Arg::F32(softcap),
                    p(&b.scores),
                    Arg::Ptr(att),
                ],
            )?;
            quantize(att, nh * dv)?;
            mm(&l.wo, att, r, o)?;
            if let Some(pn) = &l.post_attn_norm {
                norm(o, r, e, pn)?;
            }
            add_into(x, o)?;
            copy(&b.h, &b.x, r * e)?;
            norm(h, r, e, &l.ffn_norm)?;
            quantize(h, e)?;
            mm(&l.w_gate, h, r, gate)?;
            mm(&l.w_up, h, r, up)?;
            g.launch_n(
                "gated_act",
                r * nff,
                &[
                    Arg::Ptr(gate),
                    Arg::Ptr(up),
                    Arg::I64((r * nff) as i64),
                    Arg::I32(i32::from(fl.gelu)),
                ],
            )?;
            quantize(gate, nff)?;
            mm(&l.w_down, gate, r, o)?;
            if let Some(pn) = &l.post_ffn_norm {
                norm(o, r, e, pn)?;
            }
            add_into(x, o)?;
        }
        if w == 0 {
            return Ok(());
        }
        let hs = b.hs.ptr();
        g.launch_n(
            "gather_rows",
            w * e,
            &[
                Arg::Ptr(x),
                Arg::Ptr(b.want_rows.ptr()),
                Arg::I32(w as i32),
                Arg::I32(e as i32),
                Arg::Ptr(hs),
            ],
        )?;
        norm(hs, w, e, &self.output_norm)?;
        quantize_rows(hs, w, e)?;
        let logits = b.logits.ptr();
        mm(&self.output, hs, w, logits)?;
        if let Some(cap) = hp.final_softcap {
            let total = w * self.output.rows;
            g.launch_n(
                "softcap_rows",
                total,
                &[Arg::Ptr(logits), Arg::I64(total as i64), Arg::F32(cap)],
            )?;
        }
        Ok(())
    }
}
