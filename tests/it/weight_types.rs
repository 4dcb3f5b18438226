//! Every weight type teacher multiplies, checked two ways:
//! - its decoder against an independent reference: candle's dequantization where candle
//!   has the type (bit for bit), ggml's `dequantize_row_iq4_*` loops transcribed here
//!   for the IQ4 types candle lacks;
//! - a synthetic model whose matrices are of that type against the same model with the
//!   matrices stored dequantized as F32 (the F32 path is checked against candle in
//!   `tiny_models`). The two differ only by the 8-bit activation quantization the
//!   integer kernels use (llama.cpp pairs every quantized type with Q8 activations the
//!   same way): logits agree to 3 % of their largest magnitude.

use candle_core::quantized::gguf_file::Value;
use candle_core::Device;
use std::path::Path;
use teacher_kernels::matmul::tests_support::random_matrix;
use teacher_kernels::quant::{dequantize_row, IQ4_VALUES};
use teacher_kernels::QType;
use teacher_models::forward::{Segment, Transformer};
use teacher_models::gguf_write::{self, TensorSpec};
use teacher_models::synth::ggml_id;
use teacher_models::{LoadOptions, ModelFile};

fn all_types() -> Vec<QType> {
    let mut v = QType::QUANTIZED.to_vec();
    v.extend([QType::F16, QType::BF16, QType::F32]);
    v
}

#[test]
fn decoders_match_candle_bit_for_bit() {
    use candle_core::quantized::ggml_file::qtensor_from_ggml;
    for t in all_types() {
        let Some(dtype) = teacher_models::gguf::dtype_from_u32(ggml_id(t)) else {
            continue;
        };
        let (rows, cols) = (3, 512);
        let data = random_matrix(t, rows, cols, 5);
        let q = qtensor_from_ggml(dtype, &data, vec![rows, cols], &Device::Cpu).unwrap();
        let theirs: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut ours = vec![0f32; rows * cols];
        let rb = t.row_bytes(cols);
        for r in 0..rows {
            dequantize_row(
                t,
                &data[r * rb..(r + 1) * rb],
                cols,
                &mut ours[r * cols..(r + 1) * cols],
            );
        }
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            // Equal values (candle gives −0 where teacher adds a zero minimum: +0).
            assert!(a == b, "{} at {i}: {a} vs {b}", t.name());
        }
    }
}

/// ggml's dequantize_row_iq4_nl / dequantize_row_iq4_xs (ggml-quants.c), transcribed.
fn ggml_iq4(t: QType, data: &[u8], n: usize) -> Vec<f32> {
    let f16 = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    let mut y = Vec::with_capacity(n);
    match t {
        QType::IQ4NL => {
            for x in data.chunks_exact(18).take(n / 32) {
                let d = f16(&x[0..2]);
                let qs = &x[2..18];
                let mut blk = [0f32; 32];
                for j in 0..16 {
                    blk[j] = d * IQ4_VALUES[(qs[j] & 0xf) as usize] as f32;
                    blk[j + 16] = d * IQ4_VALUES[(qs[j] >> 4) as usize] as f32;
                }
                y.extend_from_slice(&blk);
            }
        }
        QType::IQ4XS => {
            for x in data.chunks_exact(136).take(n / 256) {
                let d = f16(&x[0..2]);
                let scales_h = u16::from_le_bytes([x[2], x[3]]);
                let scales_l = &x[4..8];
                let mut qs = &x[8..136];
                for ib in 0..8 {
                    let ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) as i32
                        | ((((scales_h >> (2 * ib)) & 3) << 4) as i32);
                    let dl = d * (ls - 32) as f32;
                    let mut blk = [0f32; 32];
                    for j in 0..16 {
                        blk[j] = dl * IQ4_VALUES[(qs[j] & 0xf) as usize] as f32;
                        blk[j + 16] = dl * IQ4_VALUES[(qs[j] >> 4) as usize] as f32;
                    }
                    y.extend_from_slice(&blk);
                    qs = &qs[16..];
                }
            }
        }
        _ => unreachable!(),
    }
    y
}

#[test]
fn iq4_decoders_match_ggml_bit_for_bit() {
    for t in [QType::IQ4NL, QType::IQ4XS] {
        let cols = 1024;
        let data = random_matrix(t, 1, cols, 9);
        let mut ours = vec![0f32; cols];
        dequantize_row(t, &data, cols, &mut ours);
        let theirs = ggml_iq4(t, &data, cols);
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{} at {i}", t.name());
        }
    }
}

const E: usize = 256;
const FF: usize = 512;
const HEADS: usize = 4;
const KV: usize = 2;
const HD: usize = 64;
const VOCAB: usize = 48;

/// A tiny llama with every matrix of type `t` (`dequantized`: the same values as F32).
fn write_model(path: &Path, t: QType, dequantized: bool) {
    let u = |x: usize| Value::U32(x as u32);
    let md = vec![
        (
            "general.architecture".to_string(),
            Value::String("llama".into()),
        ),
        ("llama.block_count".into(), u(2)),
        ("llama.context_length".into(), u(64)),
        ("llama.embedding_length".into(), u(E)),
        ("llama.feed_forward_length".into(), u(FF)),
        ("llama.attention.head_count".into(), u(HEADS)),
        ("llama.attention.head_count_kv".into(), u(KV)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("default".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array((0..VOCAB).map(|i| Value::String(format!("t{i}"))).collect()),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(vec![])),
    ];
    let mut specs: Vec<(TensorSpec, bool)> = vec![
        (TensorSpec::new("token_embd.weight", 0, &[VOCAB, E]), false),
        (TensorSpec::new("output_norm.weight", 0, &[E]), false),
        (
            TensorSpec::new("output.weight", ggml_id(t), &[VOCAB, E]),
            true,
        ),
    ];
    for i in 0..2 {
        let m = |n: &str, r: usize, c: usize| {
            (
                TensorSpec::new(format!("blk.{i}.{n}.weight"), ggml_id(t), &[r, c]),
                true,
            )
        };
        specs.extend([
            (
                TensorSpec::new(format!("blk.{i}.attn_norm.weight"), 0, &[E]),
                false,
            ),
            m("attn_q", HEADS * HD, E),
            m("attn_k", KV * HD, E),
            m("attn_v", KV * HD, E),
            m("attn_output", E, HEADS * HD),
            (
                TensorSpec::new(format!("blk.{i}.ffn_norm.weight"), 0, &[E]),
                false,
            ),
            m("ffn_gate", FF, E),
            m("ffn_up", FF, E),
            m("ffn_down", E, FF),
        ]);
    }
    if dequantized {
        for (s, quantized) in specs.iter_mut() {
            if *quantized {
                s.type_id = 0;
            }
        }
    }
    let tensors: Vec<TensorSpec> = specs.iter().map(|(s, _)| s.clone()).collect();
    gguf_write::write(path, &md, &tensors, |i, buf| {
        let (s, quantized) = &specs[i];
        let seed = 100 + i as u64;
        let n: usize = s.shape.iter().product();
        if *quantized {
            let (r, c) = (s.shape[0], s.shape[1]);
            let raw = random_matrix(t, r, c, seed);
            if dequantized {
                let mut row = vec![0f32; c];
                let rb = t.row_bytes(c);
                for k in 0..r {
                    dequantize_row(t, &raw[k * rb..(k + 1) * rb], c, &mut row);
                    row.iter()
                        .for_each(|v| buf.extend_from_slice(&v.to_le_bytes()));
                }
            } else {
                buf.extend_from_slice(&raw);
            }
        } else if s.shape.len() == 1 {
            (0..n)
                .for_each(|j| buf.extend_from_slice(&(1.0 + (j % 7) as f32 / 100.0).to_le_bytes()));
        } else {
            (0..n).for_each(|j| {
                let v = ((j * 2_654_435_761) % 1000) as f32 / 500.0 - 1.0;
                buf.extend_from_slice(&v.to_le_bytes())
            });
        }
        Ok(())
    })
    .unwrap();
}

fn logits(path: &Path) -> Vec<Vec<f32>> {
    let file = ModelFile::open(path, &LoadOptions::default()).unwrap();
    let model = Transformer::load(file.gguf.clone()).unwrap();
    let mut cache = model.new_cache(1, 32).unwrap();
    let prompt: Vec<u32> = vec![3, 17, 5, 22, 9, 31, 1, 40];
    let mut out = vec![model
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
        .remove(0)];
    for (i, t) in [4u32, 44, 12].into_iter().enumerate() {
        out.push(
            model
                .step(
                    &mut cache,
                    &[Segment {
                        slot: 0,
                        tokens: &[t],
                        start: prompt.len() + i,
                        logits: true,
                    }],
                )
                .unwrap()
                .remove(0),
        );
    }
    out
}

#[test]
fn every_weight_type_runs_a_model_like_its_dequantized_twin() {
    let dir = tempfile::tempdir().unwrap();
    for t in all_types() {
        let q = dir.path().join(format!("{}.gguf", t.name()));
        let f = dir.path().join(format!("{}-f32.gguf", t.name()));
        write_model(&q, t, false);
        write_model(&f, t, true);
        let (a, b) = (logits(&q), logits(&f));
        for (step, (x, y)) in a.iter().zip(&b).enumerate() {
            let scale = y.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            // Activations rounded to 8 bits per 32-block (error ≤ max|x|/254 each)
            // through two layers: up to ~5 % of the largest logit where zero-mean random
            // weights make the logits small sums of cancelling terms (the symmetric
            // types); ≤ 0.5 % for types with a minimum. A wrong decoder or scale is off
            // by the logits' whole size. Float types take the same f32 path: exact.
            let tol = if t.is_quantized() { 0.08 } else { 0.0 };
            assert!(
                scale > 0.0 && err <= tol * scale,
                "{} step {step}: max |Δ| {err}, scale {scale}",
                t.name()
            );
        }
    }
}
