//! Small random-weight models of every architecture, written by teacher's own GGUF
//! writer, against candle-transformers' model of the same family:
//! - llama, qwen2, qwen3, phi3: candle's quantized models read the same GGUF;
//! - Llama 3 RoPE frequency factors (`rope_freqs.weight`) and gemma2: candle's
//!   full-precision `llama` (with its Llama3RopeConfig) and `gemma2` models, given the
//!   same weights under Hugging Face names (q/k un-permuted for llama, norms −1 for
//!   Gemma, whose GGUF norms carry the +1).
//!
//! Weights are F32, so the two sides differ only in summation order (teacher quantizes
//! activations to 8 bits only for quantized weights): logits agree to 1e-4 of their
//! largest magnitude (f32 accumulation over ≤ 128 terms per dot, a handful of layers).

use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use teacher_kernels::ops::KvType;
use teacher_models::forward::{Segment, Transformer};
use teacher_models::gguf_write::{self, TensorSpec};
use teacher_models::{LoadOptions, Model, ModelFile};

const E: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const FF: usize = 128;
const LAYERS: usize = 2;
const VOCAB: usize = 40;

/// A tiny model's recipe.
struct Tiny {
    arch: &'static str,
    head_dim: usize,
    rope_dims: usize,
    rope_base: f32,
    extra: Vec<(String, Value)>,
    /// Llama 3 style frequency factors, one per rotated pair.
    rope_freqs: Option<Vec<f32>>,
    tied: bool,
}

impl Tiny {
    fn new(arch: &'static str) -> Self {
        Tiny {
            arch,
            head_dim: 16,
            rope_dims: 16,
            rope_base: 10_000.0,
            extra: Vec::new(),
            rope_freqs: None,
            tied: false,
        }
    }
}

/// Every tensor of a tiny model by GGUF name: shape and values (GGUF layout).
type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Writes the model; returns its path and every tensor.
fn write_tiny(dir: &Path, m: &Tiny) -> (PathBuf, Tensors) {
    let arch = m.arch;
    let hd = m.head_dim;
    let s = |v: &str| Value::String(v.to_string());
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), s(arch)),
        (format!("{arch}.block_count"), Value::U32(LAYERS as u32)),
        (format!("{arch}.context_length"), Value::U32(128)),
        (format!("{arch}.embedding_length"), Value::U32(E as u32)),
        (format!("{arch}.feed_forward_length"), Value::U32(FF as u32)),
        (
            format!("{arch}.attention.head_count"),
            Value::U32(HEADS as u32),
        ),
        (
            format!("{arch}.attention.head_count_kv"),
            Value::U32(KV_HEADS as u32),
        ),
        (
            format!("{arch}.attention.key_length"),
            Value::U32(hd as u32),
        ),
        (
            format!("{arch}.attention.value_length"),
            Value::U32(hd as u32),
        ),
        (
            format!("{arch}.rope.dimension_count"),
            Value::U32(m.rope_dims as u32),
        ),
        (format!("{arch}.rope.freq_base"), Value::F32(m.rope_base)),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-5),
        ),
        ("tokenizer.ggml.model".into(), s("gpt2")),
        ("tokenizer.ggml.pre".into(), s("default")),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array((0..VOCAB).map(|i| s(&format!("t{i}"))).collect()),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(vec![])),
    ];
    md.extend(m.extra.iter().cloned());
    let mut seed = 0x1234_5678u64;
    let mut rand = |n: usize, scale: f32, offset: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                offset + scale * ((seed % 2001) as f32 / 1000.0 - 1.0)
            })
            .collect()
    };
    let (q, kv) = (HEADS * hd, KV_HEADS * hd);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        let n = shape.iter().product();
        tensors.push((name, shape, rand(n, scale, offset)));
    };
    add("token_embd.weight".into(), vec![VOCAB, E], 1.0, 0.0);
    add("output_norm.weight".into(), vec![E], 0.1, 1.0);
    if !m.tied {
        add("output.weight".into(), vec![VOCAB, E], 0.2, 0.0);
    }
    for i in 0..LAYERS {
        let b = |n: &str| format!("blk.{i}.{n}");
        add(b("attn_norm.weight"), vec![E], 0.1, 1.0);
        if arch == "phi3" {
            add(b("attn_qkv.weight"), vec![q + 2 * kv, E], 0.2, 0.0);
            add(b("ffn_up.weight"), vec![2 * FF, E], 0.2, 0.0);
        } else {
            add(b("attn_q.weight"), vec![q, E], 0.2, 0.0);
            add(b("attn_k.weight"), vec![kv, E], 0.2, 0.0);
            add(b("attn_v.weight"), vec![kv, E], 0.2, 0.0);
            add(b("ffn_gate.weight"), vec![FF, E], 0.2, 0.0);
            add(b("ffn_up.weight"), vec![FF, E], 0.2, 0.0);
        }
        add(b("attn_output.weight"), vec![E, q], 0.2, 0.0);
        add(b("ffn_norm.weight"), vec![E], 0.1, 1.0);
        add(b("ffn_down.weight"), vec![E, FF], 0.2, 0.0);
        if arch == "qwen2" {
            add(b("attn_q.bias"), vec![q], 0.2, 0.0);
            add(b("attn_k.bias"), vec![kv], 0.2, 0.0);
            add(b("attn_v.bias"), vec![kv], 0.2, 0.0);
        }
        if arch == "qwen3" {
            add(b("attn_q_norm.weight"), vec![hd], 0.1, 1.0);
            add(b("attn_k_norm.weight"), vec![hd], 0.1, 1.0);
        }
        if arch == "gemma2" {
            add(b("post_attention_norm.weight"), vec![E], 0.1, 1.0);
            add(b("post_ffw_norm.weight"), vec![E], 0.1, 1.0);
        }
    }
    if let Some(f) = &m.rope_freqs {
        tensors.push(("rope_freqs.weight".into(), vec![f.len()], f.clone()));
    }
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|(n, sh, _)| TensorSpec::new(n.clone(), 0, sh))
        .collect();
    let path = dir.join(format!("tiny-{arch}.gguf"));
    gguf_write::write(&path, &md, &specs, |i, buf| {
        for v in &tensors[i].2 {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        Ok(())
    })
    .unwrap();
    let map = tensors.into_iter().map(|(n, sh, d)| (n, (sh, d))).collect();
    (path, map)
}

/// Teacher's logits for a prompt then four single-token steps.
fn ours(path: &Path, prompt: &[u32], next: &[u32]) -> Vec<Vec<f32>> {
    ours_with(path, prompt, next, KvType::F32)
}

/// `ours` with a KV cache of type `kv`.
fn ours_with(path: &Path, prompt: &[u32], next: &[u32], kv: KvType) -> Vec<Vec<f32>> {
    let file = ModelFile::open(path, &LoadOptions::default()).unwrap();
    let model = Transformer::load(file.gguf.clone()).unwrap();
    let mut cache = model.new_cache_of(1, 64, kv).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    for toks in std::iter::once(prompt).chain(next.chunks(1)) {
        let l = model
            .step(
                &mut cache,
                &[Segment {
                    slot: 0,
                    tokens: toks,
                    start: pos,
                    logits: true,
                }],
            )
            .unwrap()
            .remove(0);
        pos += toks.len();
        out.push(l);
    }
    out
}

const PROMPT: [u32; 7] = [3, 17, 5, 22, 9, 31, 1];
const NEXT: [u32; 4] = [3, 10, 17, 24];

fn assert_close(arch: &str, reference: &[Vec<f32>], got: &[Vec<f32>]) {
    assert_within(arch, reference, got, 1e-4);
}

/// Every logit within `tolerance` of the reference step's largest magnitude (at least
/// 1).
fn assert_within(arch: &str, reference: &[Vec<f32>], got: &[Vec<f32>], tolerance: f32) {
    assert_eq!(reference.len(), got.len());
    for (step, (r, o)) in reference.iter().zip(got).enumerate() {
        assert_eq!(r.len(), o.len(), "{arch}: vocabulary size");
        let scale = r.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
        let err = r.iter().zip(o).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= tolerance * scale,
            "{arch} step {step}: max |Δ| {err} (scale {scale})"
        );
    }
}

/// Candle's quantized model of the family reading the file: the logits of `PROMPT` and
/// then of each token of `NEXT`.
fn candle_logits(path: &Path) -> Vec<Vec<f32>> {
    let mut reference = Model::load(
        ModelFile::open(path, &LoadOptions::default()).unwrap(),
        &Device::Cpu,
    )
    .unwrap();
    let mut r = vec![reference.forward(&PROMPT, 0).unwrap()];
    for (i, &t) in NEXT.iter().enumerate() {
        r.push(reference.forward(&[t], PROMPT.len() + i).unwrap());
    }
    r
}

/// Against candle's quantized model of the family, reading the same file.
fn compare_with_candle_gguf(m: &Tiny) {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_tiny(dir.path(), m);
    let r = candle_logits(&path);
    assert_close(m.arch, &r, &ours(&path, &PROMPT, &NEXT));
}

#[test]
fn tiny_llama_matches_candle_reference() {
    compare_with_candle_gguf(&Tiny::new("llama"));
}

#[test]
fn tiny_mistral_shaped_llama_matches_candle_reference() {
    // Mistral / Ministral GGUFs are `llama` files with grouped-query attention and a
    // large RoPE base; Mistral Nemo and Ministral have head_dim ≠ n_embd / n_head,
    // which candle's quantized llama cannot express, so that case is covered by qwen3.
    let mut m = Tiny::new("llama");
    m.rope_base = 1_000_000.0;
    compare_with_candle_gguf(&m);
}

#[test]
fn tiny_qwen2_matches_candle_reference() {
    compare_with_candle_gguf(&Tiny::new("qwen2"));
}

#[test]
fn tiny_qwen3_matches_candle_reference() {
    // Qwen3's head size is not n_embd / n_head (64 / 4 = 16 here, heads of 32).
    let mut m = Tiny::new("qwen3");
    m.head_dim = 32;
    m.rope_dims = 32;
    m.rope_base = 1_000_000.0;
    // candle's qwen3 computes in F16 unless the file says F32 (`general.dtype` 0).
    m.extra = vec![("general.dtype".into(), Value::U32(0))];
    compare_with_candle_gguf(&m);
}

#[test]
fn tiny_phi3_matches_candle_reference() {
    // candle's phi3 rotates whole heads with base 10 000 (partial rotary is covered
    // by the RoPE unit tests and `partial_rotary_leaves_the_other_dimensions`).
    compare_with_candle_gguf(&Tiny::new("phi3"));
}

/// The 8-bit KV cache: on heads of 32 (one q8 block each) the logits stay within its
/// rounding of candle's f32 reference, and differ from the f32 cache's (it was read);
/// heads of 16 are refused by name, with what to use instead.
#[test]
fn q8_cache_is_close_to_the_reference_and_refuses_heads_it_cannot_block() {
    let mut m = Tiny::new("qwen3");
    m.head_dim = 32;
    m.rope_dims = 32;
    m.extra = vec![("general.dtype".into(), Value::U32(0))];
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_tiny(dir.path(), &m);
    let r = candle_logits(&path);
    let q8 = ours_with(&path, &PROMPT, &NEXT, KvType::Q8);
    assert_within("qwen3, q8 cache", &r, &q8, 2e-2);
    assert_ne!(
        q8,
        ours(&path, &PROMPT, &NEXT),
        "the q8 cache gave f32's logits"
    );

    let (path, _) = write_tiny(dir.path(), &Tiny::new("llama"));
    let file = ModelFile::open(&path, &LoadOptions::default()).unwrap();
    let model = Transformer::load(file.gguf.clone()).unwrap();
    let err = model
        .new_cache_of(1, 64, KvType::Q8)
        .err()
        .expect("heads of 16 in a q8 cache")
        .to_string();
    assert!(
        err.contains("--kv-type q8") && err.contains("16 and 16 wide") && err.contains("f16"),
        "{err}"
    );
}

#[test]
fn partial_rotary_leaves_the_other_dimensions() {
    // Phi-4-mini style: rope.dimension_count < head size. Changing a position must
    // change logits, and a model whose rope dims are 0..8 of 16 must differ from the
    // full-rotary one (the tail dimensions are not rotated).
    let dir = tempfile::tempdir().unwrap();
    let full = write_tiny(dir.path(), &Tiny::new("phi3")).0;
    let dir2 = tempfile::tempdir().unwrap();
    let mut m = Tiny::new("phi3");
    m.rope_dims = 8;
    let partial = write_tiny(dir2.path(), &m).0;
    let a = ours(&full, &PROMPT, &NEXT);
    let b = ours(&partial, &PROMPT, &NEXT);
    // Position 0 rotates nothing: the first token alone is identical.
    let one_a = ours(&full, &PROMPT[..1], &[]);
    let one_b = ours(&partial, &PROMPT[..1], &[]);
    assert_eq!(one_a, one_b);
    assert_ne!(a, b);
}

/// Hugging Face tensors for candle's full-precision models, from the GGUF tensors.
fn hf_tensors(arch: &str, m: &Tiny, gguf: &Tensors) -> HashMap<String, Tensor> {
    let t = |name: &str| -> Tensor {
        let (sh, d) = &gguf[name];
        Tensor::from_vec(d.clone(), sh.as_slice(), &Device::Cpu).unwrap()
    };
    // Gemma's GGUF norms hold 1 + w.
    let norm = |name: &str| -> Tensor {
        let x = t(name);
        if arch == "gemma2" {
            (x - 1.0).unwrap()
        } else {
            x
        }
    };
    // llama.cpp's converter permutes llama q/k rows for adjacent-pair RoPE; undo it.
    let unpermute = |name: &str, heads: usize| -> Tensor {
        let (sh, d) = &gguf[name];
        if arch != "llama" {
            return t(name);
        }
        let (rows, cols) = (sh[0], sh[1]);
        let hd = rows / heads;
        let mut out = vec![0f32; rows * cols];
        for h in 0..heads {
            for j in 0..hd / 2 {
                for k in 0..2 {
                    let g = h * hd + 2 * j + k;
                    let f = h * hd + k * (hd / 2) + j;
                    out[f * cols..(f + 1) * cols].copy_from_slice(&d[g * cols..(g + 1) * cols]);
                }
            }
        }
        Tensor::from_vec(out, (rows, cols), &Device::Cpu).unwrap()
    };
    let mut v = HashMap::new();
    v.insert("model.embed_tokens.weight".into(), t("token_embd.weight"));
    v.insert("model.norm.weight".into(), norm("output_norm.weight"));
    if !m.tied {
        v.insert("lm_head.weight".into(), t("output.weight"));
    }
    for i in 0..LAYERS {
        let g = |n: &str| format!("blk.{i}.{n}.weight");
        let h = |n: &str| format!("model.layers.{i}.{n}.weight");
        v.insert(h("self_attn.q_proj"), unpermute(&g("attn_q"), HEADS));
        v.insert(h("self_attn.k_proj"), unpermute(&g("attn_k"), KV_HEADS));
        v.insert(h("self_attn.v_proj"), t(&g("attn_v")));
        v.insert(h("self_attn.o_proj"), t(&g("attn_output")));
        v.insert(h("mlp.gate_proj"), t(&g("ffn_gate")));
        v.insert(h("mlp.up_proj"), t(&g("ffn_up")));
        v.insert(h("mlp.down_proj"), t(&g("ffn_down")));
        v.insert(h("input_layernorm"), norm(&g("attn_norm")));
        if arch == "gemma2" {
            v.insert(
                h("post_attention_layernorm"),
                norm(&g("post_attention_norm")),
            );
            v.insert(h("pre_feedforward_layernorm"), norm(&g("ffn_norm")));
            v.insert(h("post_feedforward_layernorm"), norm(&g("post_ffw_norm")));
        } else {
            v.insert(h("post_attention_layernorm"), norm(&g("ffn_norm")));
        }
    }
    v
}

#[test]
fn tiny_llama3_rope_frequency_factors_match_candle_llama3_scaling() {
    use candle_transformers::models::llama as cl;
    // Llama 3.1's rope_scaling (factor 8, low 1, high 4, original 8192), turned into
    // per-pair factors exactly as llama.cpp's converter writes `rope_freqs.weight`.
    let (factor, low, high, orig) = (8.0f64, 1.0f64, 4.0f64, 8192.0f64);
    let (dims, base) = (16usize, 500_000.0f64);
    let freqs: Vec<f32> = (0..dims / 2)
        .map(|i| {
            let freq = 1.0 / base.powf(2.0 * i as f64 / dims as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < orig / high {
                1.0
            } else if wavelen > orig / low {
                factor as f32
            } else {
                let smooth = (orig / wavelen - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect();
    assert!(
        freqs.iter().any(|&f| f != 1.0),
        "the test must exercise factors"
    );
    let mut m = Tiny::new("llama");
    m.rope_base = base as f32;
    m.rope_freqs = Some(freqs);
    let dir = tempfile::tempdir().unwrap();
    let (path, tensors) = write_tiny(dir.path(), &m);
    let cfg = cl::Config {
        hidden_size: E,
        intermediate_size: FF,
        vocab_size: VOCAB,
        num_hidden_layers: LAYERS,
        num_attention_heads: HEADS,
        num_key_value_heads: KV_HEADS,
        use_flash_attn: false,
        rms_norm_eps: 1e-5,
        rope_theta: base as f32,
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling: Some(cl::Llama3RopeConfig {
            factor: factor as f32,
            low_freq_factor: low as f32,
            high_freq_factor: high as f32,
            original_max_position_embeddings: orig as usize,
            rope_type: cl::Llama3RopeType::Llama3,
        }),
        max_position_embeddings: 128,
        tie_word_embeddings: false,
    };
    let vb = candle_nn::VarBuilder::from_tensors(
        hf_tensors("llama", &m, &tensors),
        DType::F32,
        &Device::Cpu,
    );
    let model = cl::Llama::load(vb, &cfg).unwrap();
    let mut cache = cl::Cache::new(true, DType::F32, &cfg, &Device::Cpu).unwrap();
    let fwd = |toks: &[u32], pos: usize, cache: &mut cl::Cache| -> Vec<f32> {
        let x = Tensor::new(toks, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let l = model.forward(&x, pos, cache).unwrap();
        l.squeeze(0).unwrap().to_vec1::<f32>().unwrap()
    };
    let mut r = vec![fwd(&PROMPT, 0, &mut cache)];
    for (i, &t) in NEXT.iter().enumerate() {
        r.push(fwd(&[t], PROMPT.len() + i, &mut cache));
    }
    assert_close("llama3", &r, &ours(&path, &PROMPT, &NEXT));
    // And the factors matter: without them the logits differ.
    let mut plain = Tiny::new("llama");
    plain.rope_base = base as f32;
    let dir2 = tempfile::tempdir().unwrap();
    let (p2, _) = write_tiny(dir2.path(), &plain);
    assert_ne!(ours(&p2, &PROMPT, &NEXT), ours(&path, &PROMPT, &NEXT));
}

#[test]
fn tiny_gemma2_matches_candle_gemma2() {
    use candle_transformers::models::gemma2 as cg;
    let (attn_cap, final_cap) = (3.0f32, 2.5f32);
    let mut m = Tiny::new("gemma2");
    m.tied = true;
    m.extra = vec![
        ("gemma2.attn_logit_softcapping".into(), Value::F32(attn_cap)),
        (
            "gemma2.final_logit_softcapping".into(),
            Value::F32(final_cap),
        ),
        // Longer than the test's sequence: candle applies its window to every layer
        // and only inside a prompt, llama.cpp to even layers only.
        ("gemma2.attention.sliding_window".into(), Value::U32(64)),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (path, tensors) = write_tiny(dir.path(), &m);
    let cfg = cg::Config {
        attention_bias: false,
        head_dim: m.head_dim,
        hidden_activation: candle_nn::Activation::GeluPytorchTanh,
        hidden_size: E,
        intermediate_size: FF,
        num_attention_heads: HEADS,
        num_hidden_layers: LAYERS,
        num_key_value_heads: KV_HEADS,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        vocab_size: VOCAB,
        final_logit_softcapping: Some(final_cap as f64),
        attn_logit_softcapping: Some(attn_cap as f64),
        query_pre_attn_scalar: m.head_dim,
        sliding_window: None,
        max_position_embeddings: 128,
    };
    let vb = candle_nn::VarBuilder::from_tensors(
        hf_tensors("gemma2", &m, &tensors),
        DType::F32,
        &Device::Cpu,
    );
    let mut model = cg::Model::new(false, &cfg, vb).unwrap();
    let mut fwd = |toks: &[u32], pos: usize| -> Vec<f32> {
        let x = Tensor::new(toks, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let l = model.forward(&x, pos).unwrap();
        l.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    let mut r = vec![fwd(&PROMPT, 0)];
    for (i, &t) in NEXT.iter().enumerate() {
        r.push(fwd(&[t], PROMPT.len() + i));
    }
    let got = ours(&path, &PROMPT, &NEXT);
    assert_close("gemma2", &r, &got);
    // Soft-capping bounds every logit.
    assert!(got.iter().flatten().all(|l| l.abs() <= final_cap));
}

#[test]
fn gemma2_alternates_local_and_global_layers() {
    // With a window of 2, only the even (local) layers are limited: a model whose
    // window is 2 differs from one whose window covers the sequence.
    let mk = |w: u32| {
        let mut m = Tiny::new("gemma2");
        m.tied = true;
        m.extra = vec![("gemma2.attention.sliding_window".into(), Value::U32(w))];
        m
    };
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let wide = write_tiny(d1.path(), &mk(64)).0;
    let narrow = write_tiny(d2.path(), &mk(2)).0;
    // Two tokens fit both windows: identical; longer prompts do not.
    assert_eq!(
        ours(&wide, &PROMPT[..2], &[]),
        ours(&narrow, &PROMPT[..2], &[])
    );
    assert_ne!(ours(&wide, &PROMPT, &[]), ours(&narrow, &PROMPT, &[]));
}

#[test]
fn qwen2_yarn_rope_scaling_is_applied_where_declared() {
    let yarn = |factor: f32| {
        let mut m = Tiny::new("qwen2");
        m.extra = vec![
            (
                "qwen2.rope.scaling.type".into(),
                Value::String("yarn".into()),
            ),
            ("qwen2.rope.scaling.factor".into(), Value::F32(factor)),
            (
                "qwen2.rope.scaling.original_context_length".into(),
                Value::U32(32),
            ),
        ];
        m
    };
    let d0 = tempfile::tempdir().unwrap();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let plain = write_tiny(d0.path(), &Tiny::new("qwen2")).0;
    let unit = write_tiny(d1.path(), &yarn(1.0)).0;
    let four = write_tiny(d2.path(), &yarn(4.0)).0;
    // Factor 1 is no scaling at all; factor 4 changes the angles and magnitudes.
    assert_eq!(ours(&plain, &PROMPT, &NEXT), ours(&unit, &PROMPT, &NEXT));
    assert_ne!(ours(&plain, &PROMPT, &NEXT), ours(&four, &PROMPT, &NEXT));
    // A YaRN declaration without its original context is refused by name.
    let mut bad = Tiny::new("qwen2");
    bad.extra = vec![
        (
            "qwen2.rope.scaling.type".into(),
            Value::String("yarn".into()),
        ),
        ("qwen2.rope.scaling.factor".into(), Value::F32(4.0)),
    ];
    let d3 = tempfile::tempdir().unwrap();
    let p = write_tiny(d3.path(), &bad).0;
    let file = ModelFile::open(&p, &LoadOptions::default()).unwrap();
    let err = Transformer::load(file.gguf.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("original_context_length"), "{err}");
}

#[test]
fn bad_rope_dimension_count_is_refused_by_name() {
    let mut m = Tiny::new("llama");
    m.rope_dims = 2000;
    let d = tempfile::tempdir().unwrap();
    let p = write_tiny(d.path(), &m).0;
    let file = ModelFile::open(&p, &LoadOptions::default()).unwrap();
    let err = Transformer::load(file.gguf.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("rope.dimension_count"), "{err}");
}

#[test]
fn unsupported_architecture_names_the_supported_list() {
    let m = Tiny::new("falcon");
    let d = tempfile::tempdir().unwrap();
    let p = write_tiny(d.path(), &m).0;
    let err = ModelFile::open(&p, &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("falcon"), "{err}");
    for a in ["llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"] {
        assert!(err.contains(a), "{err}");
    }
}

/// Split a GGUF the way llama.cpp's `gguf-split` does: the first file keeps the
/// metadata, every file gets `split.no`, `split.count`, `split.tensors.count` and a
/// share of the tensors.
fn split_gguf(src: &Path, dir: &Path, prefix: &str, count: usize) -> Vec<PathBuf> {
    let g = teacher_models::GgufFile::open(src).unwrap();
    let per = g.tensors.len().div_ceil(count);
    let mut paths = Vec::new();
    for i in 0..count {
        let mut md: Vec<(String, Value)> = if i == 0 {
            g.metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            Vec::new()
        };
        md.push(("split.no".into(), Value::U16(i as u16)));
        md.push(("split.count".into(), Value::U16(count as u16)));
        md.push((
            "split.tensors.count".into(),
            Value::I32(g.tensors.len() as i32),
        ));
        let mine: Vec<_> = g.tensors.iter().skip(i * per).take(per).collect();
        let specs: Vec<TensorSpec> = mine
            .iter()
            .map(|t| TensorSpec::new(t.name.clone(), t.type_id, &t.shape))
            .collect();
        let p = dir.join(format!("{prefix}-{:05}-of-{count:05}.gguf", i + 1));
        gguf_write::write(&p, &md, &specs, |j, buf| {
            buf.extend_from_slice(g.tensor_bytes(mine[j]));
            Ok(())
        })
        .unwrap();
        paths.push(p);
    }
    paths
}

#[test]
fn split_gguf_opens_as_one_model() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, _) = write_tiny(dir.path(), &Tiny::new("qwen2"));
    let parts = split_gguf(&whole, dir.path(), "tiny", 3);
    let file = ModelFile::open(&parts[0], &LoadOptions::default()).unwrap();
    assert_eq!(file.gguf.split_count(), 3);
    assert_eq!(
        ours(&whole, &PROMPT, &NEXT),
        ours(&parts[0], &PROMPT, &NEXT)
    );
    // Opening a later part names the first one.
    let err = ModelFile::open(&parts[1], &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tiny-00001-of-00003.gguf"), "{err}");
    // A missing part is named.
    std::fs::remove_file(&parts[2]).unwrap();
    let err = ModelFile::open(&parts[0], &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("part 3 of 3") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn synthetic_shapes_have_the_real_models_tensors() {
    // The catalog models' own tensor directories are the reference for their shapes.
    use teacher_models::synth;
    for (shape, real) in [
        ("smollm2-135m", crate::common::SMOLLM2),
        ("gemma3-270m", crate::common::GEMMA3),
    ] {
        let real = teacher_models::GgufFile::open(&crate::common::model_path(real)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.gguf");
        let sh = synth::Shape::preset(shape).unwrap();
        synth::write(
            &p,
            shape,
            &sh,
            teacher_kernels::QType::Q4K,
            teacher_kernels::QType::Q8_0,
            1,
        )
        .unwrap();
        let ours = teacher_models::GgufFile::open(&p).unwrap();
        let dims = |g: &teacher_models::GgufFile| {
            let mut v: Vec<(String, Vec<usize>)> = g
                .tensors
                .iter()
                .filter(|t| t.name != "rope_freqs.weight")
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(dims(&ours), dims(&real), "{shape}");
        // And it runs.
        let file = ModelFile::open(&p, &LoadOptions::default()).unwrap();
        let model = Transformer::load(file.gguf.clone()).unwrap();
        let mut cache = model.new_cache(1, 8).unwrap();
        let l = model
            .step(
                &mut cache,
                &[Segment {
                    slot: 0,
                    tokens: &[1, 2, 3],
                    start: 0,
                    logits: true,
                }],
            )
            .unwrap();
        assert!(l[0].iter().all(|v| v.is_finite()));
    }
}
