//! Small random-weight GGUF models written by the test itself (candle's GGUF writer):
//! teacher's batched forward against candle-transformers' reference for every
//! architecture candle models correctly (llama, qwen2), without any download.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use teacher_models::forward::{Segment, Transformer};
use teacher_models::{LoadOptions, Model, ModelFile};

const E: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 16;
const FF: usize = 128;
const LAYERS: usize = 2;
const VOCAB: usize = 40;

fn write_tiny(dir: &Path, arch: &str) -> PathBuf {
    let s = |v: &str| Value::String(v.to_string());
    let md: Vec<(String, Value)> = vec![
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
            format!("{arch}.rope.dimension_count"),
            Value::U32(HEAD_DIM as u32),
        ),
        (format!("{arch}.rope.freq_base"), Value::F32(10000.0)),
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
    let mut seed = 0x1234_5678u64;
    let mut t = |shape: &[usize], scale: f32, offset: f32| {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                offset + scale * ((seed % 2001) as f32 / 1000.0 - 1.0)
            })
            .collect();
        QTensor::quantize(
            &Tensor::from_vec(data, shape, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap()
    };
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), t(&[VOCAB, E], 1.0, 0.0)),
        ("output_norm.weight".into(), t(&[E], 0.1, 1.0)),
        ("output.weight".into(), t(&[VOCAB, E], 0.2, 0.0)),
    ];
    for i in 0..LAYERS {
        let b = |n: &str| format!("blk.{i}.{n}");
        tensors.extend([
            (b("attn_norm.weight"), t(&[E], 0.1, 1.0)),
            (b("attn_q.weight"), t(&[HEADS * HEAD_DIM, E], 0.2, 0.0)),
            (b("attn_k.weight"), t(&[KV_HEADS * HEAD_DIM, E], 0.2, 0.0)),
            (b("attn_v.weight"), t(&[KV_HEADS * HEAD_DIM, E], 0.2, 0.0)),
            (b("attn_output.weight"), t(&[E, HEADS * HEAD_DIM], 0.2, 0.0)),
            (b("ffn_norm.weight"), t(&[E], 0.1, 1.0)),
            (b("ffn_gate.weight"), t(&[FF, E], 0.2, 0.0)),
            (b("ffn_up.weight"), t(&[FF, E], 0.2, 0.0)),
            (b("ffn_down.weight"), t(&[E, FF], 0.2, 0.0)),
        ]);
        if arch == "qwen2" {
            tensors.extend([
                (b("attn_q.bias"), t(&[HEADS * HEAD_DIM], 0.2, 0.0)),
                (b("attn_k.bias"), t(&[KV_HEADS * HEAD_DIM], 0.2, 0.0)),
                (b("attn_v.bias"), t(&[KV_HEADS * HEAD_DIM], 0.2, 0.0)),
            ]);
        }
    }
    let path = dir.join(format!("tiny-{arch}.gguf"));
    let mut f = std::fs::File::create(&path).unwrap();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
    path
}

fn compare(arch: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tiny(dir.path(), arch);
    let file = ModelFile::open(&path, &LoadOptions::default()).unwrap();
    let ours = Transformer::load(file.gguf.clone()).unwrap();
    let mut reference = Model::load(
        ModelFile::open(&path, &LoadOptions::default()).unwrap(),
        &Device::Cpu,
    )
    .unwrap();
    let prompt: Vec<u32> = vec![3, 17, 5, 22, 9, 31, 1];
    let mut cache = ours.new_cache(1, 64);
    let mut r = reference.forward(&prompt, 0).unwrap();
    let mut o = ours
        .step(
            &mut cache,
            &[Segment {
                slot: 0,
                tokens: &prompt,
                start: 0,
                logits: true,
            }],
        )
        .unwrap()
        .remove(0);
    for (step, pos) in (prompt.len()..prompt.len() + 4).enumerate() {
        let scale = r.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
        let err = r
            .iter()
            .zip(&o)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // Float weights: only the summation order differs.
        assert!(
            err <= 1e-4 * scale,
            "{arch} step {step}: max |Δ| {err} (scale {scale})"
        );
        let next = (step as u32 * 7 + 3) % VOCAB as u32;
        r = reference.forward(&[next], pos).unwrap();
        o = ours
            .step(
                &mut cache,
                &[Segment {
                    slot: 0,
                    tokens: &[next],
                    start: pos,
                    logits: true,
                }],
            )
            .unwrap()
            .remove(0);
    }
}

#[test]
fn tiny_llama_matches_candle_reference() {
    compare("llama");
}

#[test]
fn tiny_qwen2_matches_candle_reference() {
    compare("qwen2");
}
