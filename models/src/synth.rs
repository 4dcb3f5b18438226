//! Synthetic models: GGUF files with the shapes of real models and random weights, for
//! benchmarks and device checks where the real weights cannot travel (a 1.5 B model on
//! a machine without network), written with teacher's own GGUF writer.
//!
//! Matrices are random blocks of the chosen type with small valid scales; norms are
//! ≈1, biases small; the tokenizer is a GPT-2-style vocabulary of placeholder pieces
//! (`t0`, `t1`, …). The numbers mean nothing; speed and memory are those of the real
//! shape.

use crate::error::{Error, Result};
use crate::gguf_write::{self, TensorSpec};
use crate::hparams::Arch;
use candle_core::quantized::gguf_file::Value;
use std::path::Path;
use teacher_kernels::matmul::tests_support::random_matrix;
use teacher_kernels::QType;

/// The hyper-parameters of a model shape.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shape {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub context: usize,
    pub rope_base: f32,
    pub sliding_window: Option<usize>,
    /// No `output.weight`: the token embedding is reused.
    pub tied: bool,
    /// Give the model a ChatML chat template (an "instruct" model).
    pub chat: bool,
}

/// Named shapes of real models (their config.json / GGUF metadata).
pub const PRESETS: &[&str] = &[
    "tiny",
    "smollm2-135m",
    "gemma3-270m",
    "qwen3-0.6b",
    "qwen2.5-1.5b",
    "gemma2-2b",
    "phi3-mini",
    "llama3-8b",
];

impl Shape {
    pub fn preset(name: &str) -> Result<Shape> {
        #[allow(clippy::too_many_arguments)]
        let s = |arch,
                 n_layer,
                 n_embd,
                 n_ff,
                 n_head,
                 n_head_kv,
                 head_dim,
                 vocab,
                 rope_base,
                 sliding_window,
                 tied| Shape {
            arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            vocab,
            context: 8192,
            rope_base,
            sliding_window,
            tied,
            chat: false,
        };
        Ok(match name {
            // A few-layer llama with a ChatML template: fast enough for tests that
            // need a model but not its words.
            "tiny" => Shape {
                chat: true,
                ..s(
                    Arch::Llama,
                    2,
                    64,
                    128,
                    4,
                    2,
                    16,
                    512,
                    10_000.0,
                    None,
                    false,
                )
            },
            "smollm2-135m" => s(
                Arch::Llama,
                30,
                576,
                1536,
                9,
                3,
                64,
                49152,
                100_000.0,
                None,
                true,
            ),
            "gemma3-270m" => s(
                Arch::Gemma3,
                18,
                640,
                2048,
                4,
                1,
                256,
                262_144,
                1_000_000.0,
                Some(512),
                true,
            ),
            "qwen3-0.6b" => s(
                Arch::Qwen3,
                28,
                1024,
                3072,
                16,
                8,
                128,
                151_936,
                1_000_000.0,
                None,
                true,
            ),
            "qwen2.5-1.5b" => s(
                Arch::Qwen2,
                28,
                1536,
                8960,
                12,
                2,
                128,
                151_936,
                1_000_000.0,
                None,
                true,
            ),
            "gemma2-2b" => s(
                Arch::Gemma2,
                26,
                2304,
                9216,
                8,
                4,
                256,
                256_000,
                10_000.0,
                Some(4096),
                true,
            ),
            "phi3-mini" => s(
                Arch::Phi3,
                32,
                3072,
                8192,
                32,
                32,
                96,
                32_064,
                10_000.0,
                None,
                false,
            ),
            "llama3-8b" => s(
                Arch::Llama,
                32,
                4096,
                14_336,
                32,
                8,
                128,
                128_256,
                500_000.0,
                None,
                false,
            ),
            other => {
                return Err(Error::Usage(format!(
                    "no shape named `{other}`; known shapes: {}",
                    PRESETS.join(", ")
                )))
            }
        })
    }

    /// Parameters of the shape (weights only).
    pub fn parameters(&self) -> u64 {
        self.tensors(QType::F32, QType::F32)
            .iter()
            .map(|t| t.shape.iter().product::<usize>() as u64)
            .sum()
    }

    /// The tensors the forward pass of the architecture reads, with `wtype` for the
    /// layer matrices and `etype` for the embedding (and output) matrix.
    pub fn tensors(&self, wtype: QType, etype: QType) -> Vec<TensorSpec> {
        let (e, ff) = (self.n_embd, self.n_ff);
        let q = self.n_head * self.head_dim;
        let kv = self.n_head_kv * self.head_dim;
        let f32_id = 0;
        let id = |t: QType| ggml_id(t);
        let mut v = vec![
            TensorSpec::new("token_embd.weight", id(etype), &[self.vocab, e]),
            TensorSpec::new("output_norm.weight", f32_id, &[e]),
        ];
        if !self.tied {
            v.push(TensorSpec::new(
                "output.weight",
                id(etype),
                &[self.vocab, e],
            ));
        }
        for i in 0..self.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let w = |s: &str, shape: &[usize]| TensorSpec::new(n(s), id(wtype), shape);
            let f = |s: &str, len: usize| TensorSpec::new(n(s), f32_id, &[len]);
            v.push(f("attn_norm.weight", e));
            if self.arch == Arch::Phi3 {
                v.push(w("attn_qkv.weight", &[q + 2 * kv, e]));
            } else {
                v.push(w("attn_q.weight", &[q, e]));
                v.push(w("attn_k.weight", &[kv, e]));
                v.push(w("attn_v.weight", &[kv, e]));
            }
            if self.arch == Arch::Qwen2 {
                v.push(f("attn_q.bias", q));
                v.push(f("attn_k.bias", kv));
                v.push(f("attn_v.bias", kv));
            }
            if matches!(self.arch, Arch::Qwen3 | Arch::Gemma3) {
                v.push(f("attn_q_norm.weight", self.head_dim));
                v.push(f("attn_k_norm.weight", self.head_dim));
            }
            v.push(w("attn_output.weight", &[e, q]));
            v.push(f("ffn_norm.weight", e));
            if self.arch == Arch::Phi3 {
                v.push(w("ffn_up.weight", &[2 * ff, e]));
            } else {
                v.push(w("ffn_gate.weight", &[ff, e]));
                v.push(w("ffn_up.weight", &[ff, e]));
            }
            v.push(w("ffn_down.weight", &[e, ff]));
            if matches!(self.arch, Arch::Gemma2 | Arch::Gemma3) {
                v.push(f("post_attention_norm.weight", e));
                v.push(f("post_ffw_norm.weight", e));
            }
        }
        v
    }

    /// The GGUF metadata of the shape, with a placeholder tokenizer.
    pub fn metadata(&self, name: &str) -> Vec<(String, Value)> {
        let a = self.arch.as_str();
        let u = |x: usize| Value::U32(x as u32);
        let mut md = vec![
            ("general.architecture".to_string(), Value::String(a.into())),
            (
                "general.name".to_string(),
                Value::String(format!("synthetic {name}")),
            ),
            (format!("{a}.block_count"), u(self.n_layer)),
            (format!("{a}.context_length"), u(self.context)),
            (format!("{a}.embedding_length"), u(self.n_embd)),
            (format!("{a}.feed_forward_length"), u(self.n_ff)),
            (format!("{a}.attention.head_count"), u(self.n_head)),
            (format!("{a}.attention.head_count_kv"), u(self.n_head_kv)),
            (format!("{a}.attention.key_length"), u(self.head_dim)),
            (format!("{a}.attention.value_length"), u(self.head_dim)),
            (format!("{a}.rope.freq_base"), Value::F32(self.rope_base)),
            (
                format!("{a}.attention.layer_norm_rms_epsilon"),
                Value::F32(1e-6),
            ),
            ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
            ("tokenizer.ggml.pre".into(), Value::String("default".into())),
            (
                "tokenizer.ggml.tokens".into(),
                Value::Array(
                    (0..self.vocab)
                        .map(|i| Value::String(placeholder_piece(i)))
                        .collect(),
                ),
            ),
            ("tokenizer.ggml.merges".into(), Value::Array(vec![])),
            ("tokenizer.ggml.eos_token_id".into(), u(0)),
        ];
        if self.chat {
            md.push((
                "tokenizer.chat_template".into(),
                Value::String(CHATML.into()),
            ));
        }
        if let Some(w) = self.sliding_window {
            md.push((format!("{a}.attention.sliding_window"), u(w)));
        }
        if self.arch == Arch::Gemma2 {
            md.push((format!("{a}.attn_logit_softcapping"), Value::F32(50.0)));
            md.push((format!("{a}.final_logit_softcapping"), Value::F32(30.0)));
        }
        md
    }
}

/// ChatML, the template of SmolLM2 and Qwen (the `tiny` preset's).
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Token i of the placeholder vocabulary: the 256 byte pieces of GPT-2's byte-level
/// BPE first (so any text encodes), then `t256`, `t257`, ….
fn placeholder_piece(i: usize) -> String {
    if i >= 256 {
        return format!("t{i}");
    }
    // GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the others
    // to U+0100 onwards in byte order.
    let printable = |b: usize| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    if printable(i) {
        char::from_u32(i as u32).unwrap_or('?').to_string()
    } else {
        let n = (0..i).filter(|&b| !printable(b)).count();
        char::from_u32(256 + n as u32).unwrap_or('?').to_string()
    }
}

/// The ggml type id of a weight type.
pub fn ggml_id(t: QType) -> u32 {
    t.ggml_id()
}

/// A weight type by llama.cpp's name (`q4_k`, `Q4_K`, `iq4_xs`, `f16`, …).
pub fn parse_type(s: &str) -> Result<QType> {
    let all = QType::ALL;
    all.into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            Error::Usage(format!(
                "unknown weight type `{s}`; one of {}",
                all.map(|t| t.name()).join(", ")
            ))
        })
}

/// Write a synthetic model of `shape` to `path`: layer matrices of type `wtype`, the
/// embedding (and output) matrix of `etype`. Deterministic in `seed`.
pub fn write(
    path: &Path,
    name: &str,
    shape: &Shape,
    wtype: QType,
    etype: QType,
    seed: u64,
) -> Result<()> {
    let mut tensors = shape.tensors(wtype, etype);
    // As llama.cpp's quantizer does, a matrix whose rows are not whole blocks of the
    // chosen type (576-wide rows and 256-element K-quant blocks) falls back to Q8_0.
    for t in &mut tensors {
        let qt = QType::from_ggml(t.type_id).expect("synthetic types are teacher's own");
        let cols = *t.shape.last().unwrap_or(&0);
        if t.shape.len() == 2 && !cols.is_multiple_of(qt.block_elems()) {
            if !cols.is_multiple_of(32) {
                return Err(Error::Usage(format!(
                    "`{}` has rows of {cols} values, not whole blocks of any quantized type",
                    t.name
                )));
            }
            t.type_id = ggml_id(QType::Q8_0);
        }
    }
    gguf_write::write(path, &shape.metadata(name), &tensors, |i, buf| {
        let t = &tensors[i];
        let qt = QType::from_ggml(t.type_id).expect("synthetic types are teacher's own");
        let s = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        if t.shape.len() == 2 {
            buf.extend_from_slice(&random_matrix(qt, t.shape[0], t.shape[1], s));
        } else {
            // Norm weights near 1, biases near 0.
            let center = if t.name.ends_with(".bias") { 0.0 } else { 1.0 };
            for j in 0..t.shape[0] {
                let x = ((j as u64 * 2_654_435_761 + s) % 1000) as f32 / 10_000.0;
                buf.extend_from_slice(&(center + x - 0.05).to_le_bytes());
            }
        }
        Ok(())
    })
}
