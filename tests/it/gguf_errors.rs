//! Bad input to the model layer: each case is a clear error naming what and where,
//! never a panic.

use crate::common::{model_path, SMOLLM2};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use teacher_models::{ChatTemplate, Error, LoadOptions, Message, ModelFile};

/// What to change in the tiny model before writing it.
#[derive(Default)]
struct Tweak {
    arch: Option<&'static str>,
    no_tokenizer: bool,
    bad_q_rows: bool,
}

/// A tiny llama-shaped GGUF (1 layer, 8-wide, 3-token BPE vocab) written with candle's
/// GGUF writer, so the error paths are tested on files a real writer produced.
fn tiny_llama(dir: &Path, tweak: Tweak) -> PathBuf {
    let e = 8usize;
    let ff = 16usize;
    let vocab = 3usize;
    let arch = tweak.arch.unwrap_or("llama");
    let s = |v: &str| Value::String(v.to_string());
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), s(arch)),
        (format!("{arch}.block_count"), Value::U32(1)),
        (format!("{arch}.context_length"), Value::U32(64)),
        (format!("{arch}.embedding_length"), Value::U32(e as u32)),
        (format!("{arch}.feed_forward_length"), Value::U32(ff as u32)),
        (format!("{arch}.attention.head_count"), Value::U32(2)),
        (format!("{arch}.attention.head_count_kv"), Value::U32(1)),
        (format!("{arch}.rope.dimension_count"), Value::U32(4)),
    ];
    if !tweak.no_tokenizer {
        md.extend([
            ("tokenizer.ggml.model".to_string(), s("gpt2")),
            ("tokenizer.ggml.pre".to_string(), s("default")),
            (
                "tokenizer.ggml.tokens".to_string(),
                Value::Array(vec![s("a"), s("b"), s("ab")]),
            ),
            (
                "tokenizer.ggml.merges".to_string(),
                Value::Array(vec![s("a b")]),
            ),
        ]);
    }
    let t = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin()).collect();
        QTensor::quantize(
            &Tensor::from_vec(data, shape, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap()
    };
    let q_rows = if tweak.bad_q_rows { e + 4 } else { e };
    let tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), t(&[vocab, e])),
        ("output_norm.weight".into(), t(&[e])),
        ("blk.0.attn_norm.weight".into(), t(&[e])),
        ("blk.0.attn_q.weight".into(), t(&[q_rows, e])),
        ("blk.0.attn_k.weight".into(), t(&[e / 2, e])),
        ("blk.0.attn_v.weight".into(), t(&[e / 2, e])),
        ("blk.0.attn_output.weight".into(), t(&[e, e])),
        ("blk.0.ffn_norm.weight".into(), t(&[e])),
        ("blk.0.ffn_gate.weight".into(), t(&[ff, e])),
        ("blk.0.ffn_up.weight".into(), t(&[ff, e])),
        ("blk.0.ffn_down.weight".into(), t(&[e, ff])),
    ];
    let path = dir.join("tiny.gguf");
    let mut f = std::fs::File::create(&path).unwrap();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
    path
}

fn open(path: &Path) -> Result<ModelFile, Error> {
    ModelFile::open(path, &LoadOptions::default())
}

fn err_text(r: Result<ModelFile, Error>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tiny_model_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let f = open(&tiny_llama(dir.path(), Tweak::default())).unwrap();
    assert_eq!(f.hparams.n_layer, 1);
    assert_eq!(f.tokenizer.encode("ab", true, false).unwrap(), vec![2]);
}

#[test]
fn missing_file() {
    let msg = err_text(open(Path::new("/no/such/model.gguf")));
    assert!(msg.contains("/no/such/model.gguf"), "{msg}");
}

#[test]
fn not_a_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.gguf");
    std::fs::write(&p, b"hello, I am a text file\n").unwrap();
    let msg = err_text(open(&p));
    assert!(
        msg.contains("is not a GGUF file") && msg.contains("notes.gguf"),
        "{msg}"
    );
}

#[test]
fn truncated_gguf_header_and_data() {
    let src = std::fs::read(model_path(SMOLLM2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [3usize, 20, 4000, 5_000_000] {
        let p = dir.path().join(format!("cut{cut}.gguf"));
        std::fs::write(&p, &src[..cut]).unwrap();
        let msg = err_text(open(&p));
        assert!(
            msg.contains("truncated") || msg.contains("not a GGUF"),
            "cut at {cut}: {msg}"
        );
        assert!(msg.contains(&format!("cut{cut}.gguf")), "{msg}");
    }
}

#[test]
fn missing_tokenizer_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny_llama(
        dir.path(),
        Tweak {
            no_tokenizer: true,
            ..Default::default()
        },
    );
    let msg = err_text(open(&p));
    assert!(
        msg.contains("has no tokenizer") && msg.contains("--tokenizer"),
        "{msg}"
    );
}

#[test]
fn unsupported_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny_llama(
        dir.path(),
        Tweak {
            arch: Some("mamba"),
            ..Default::default()
        },
    );
    let msg = err_text(open(&p));
    assert!(msg.contains("`mamba`"), "{msg}");
    assert!(
        msg.contains("`llama`") && msg.contains("`gemma3`") && msg.contains("`qwen2`"),
        "{msg}"
    );
}

#[test]
fn tensor_shape_contradicting_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny_llama(
        dir.path(),
        Tweak {
            bad_q_rows: true,
            ..Default::default()
        },
    );
    let msg = err_text(open(&p));
    assert!(
        msg.contains("blk.0.attn_q.weight") && msg.contains("[12, 8]") && msg.contains("[8, 8]"),
        "{msg}"
    );
}

#[test]
fn unknown_catalog_name_suggests_closest() {
    let e = teacher_models::fetch::resolve("smollm2-135m", true).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("unknown model `smollm2-135m`"), "{msg}");
    assert!(
        msg.contains("did you mean `smollm2-135m-instruct`"),
        "{msg}"
    );
}

#[test]
fn offline_without_cache_says_what_to_do() {
    let catalog = teacher_models::Catalog::builtin();
    let entry = catalog.get(SMOLLM2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = teacher_models::fetch::pull_into(entry, dir.path(), true, false).unwrap_err();
    assert!(e.to_string().contains("network is off"), "{e}");
}

#[test]
fn hash_mismatch_leaves_nothing_in_the_cache() {
    let catalog = teacher_models::Catalog::builtin();
    let mut entry = catalog.get(SMOLLM2).unwrap().clone();
    entry.sha256 = "0".repeat(64);
    let dir = tempfile::tempdir().unwrap();
    let e = teacher_models::fetch::pull_into(&entry, dir.path(), false, false).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("sha256 mismatch") && msg.contains(&entry.name),
        "{msg}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the cache holds {left:?}");
}

#[test]
fn chat_template_errors_are_reported_not_hung() {
    let msgs = [Message::new("user", "hi")];
    let e = ChatTemplate::new("{% for m in messages %}{{ m.content }", "test")
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not compile"), "{e}");
    let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}", "test").unwrap();
    let e = t
        .render(&msgs, true, "", "", usize::MAX)
        .unwrap_err()
        .to_string();
    assert!(e.contains("roles must alternate"), "{e}");
    // A template that would run for ~10^15 steps stops on its fuel limit.
    let t = ChatTemplate::new(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}",
        "test",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let e = t
        .render(&msgs, true, "", "", usize::MAX)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rendering failed"), "{e}");
    assert!(started.elapsed().as_secs() < 30);
}
