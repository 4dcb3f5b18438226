//! `teacher perplexity` against llama.cpp's `llama-perplexity` on the shared GPL-3 text
//! (figures from ../shared/README.md: llama.cpp commit 0c1e570, `-c N -b 512`, CPU):
//! within 1 % for both catalog models at 128 and 512 tokens.

use crate::common::{model_path, run_teacher, shared_dir, GEMMA3, SMOLLM2};

/// (model, context, llama.cpp's perplexity).
const LLAMA_CPP: [(&str, usize, f64); 4] = [
    (SMOLLM2, 128, 24.2139),
    (SMOLLM2, 512, 18.3914),
    (GEMMA3, 128, 18.4456),
    (GEMMA3, 512, 13.9062),
];

fn perplexity(model: &str, context: usize) -> serde_json::Value {
    perplexity_with(model, context, "f16")
}

/// A run's report, computed once per (model, context, KV type) in this test process:
/// both tests read the f16 figures, and a figure is a pure function of its inputs.
fn perplexity_with(model: &str, context: usize, kv: &str) -> serde_json::Value {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    type Memo = Mutex<HashMap<(String, usize, String), Arc<OnceLock<serde_json::Value>>>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let cell = MEMO
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((model.to_string(), context, kv.to_string()))
        .or_default()
        .clone();
    cell.get_or_init(|| run_perplexity(model, context, kv))
        .clone()
}

fn run_perplexity(model: &str, context: usize, kv: &str) -> serde_json::Value {
    let path = model_path(model);
    let text = shared_dir().join("data/perplexity_gpl3.txt");
    assert!(text.exists(), "shared text missing: {}", text.display());
    let (ok, out, err) = run_teacher(&[
        "perplexity",
        "--model",
        path.to_str().unwrap(),
        "--file",
        text.to_str().unwrap(),
        "--context",
        &context.to_string(),
        "--kv-type",
        kv,
        "--json",
    ]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn perplexity_is_within_one_percent_of_llama_cpp() {
    for (model, context, reference) in LLAMA_CPP {
        let v = perplexity(model, context);
        let r = &v["report"];
        let ppl = r["perplexity"].as_f64().unwrap();
        let rel = (ppl - reference).abs() / reference;
        eprintln!(
            "{model} -c {context}: teacher {ppl:.4}, llama.cpp {reference} ({:+.3} %)",
            100.0 * (ppl / reference - 1.0)
        );
        assert!(
            rel < 0.01,
            "{model} -c {context}: {ppl} vs llama.cpp {reference}"
        );
        // llama-perplexity's chunking: N/2 − 1 scored tokens per chunk.
        let chunks = r["chunks"].as_u64().unwrap() as usize;
        assert_eq!(
            r["scored_tokens"].as_u64().unwrap() as usize,
            chunks * (context / 2 - 1)
        );
        assert_eq!(r["running"].as_array().unwrap().len(), chunks);
    }
}

/// The 8-bit cache (`--kv-type q8`) costs little: within 1 % of llama.cpp's f16-cache
/// figure too (measured +0.52 % and −0.19 % against the f16 cache's −0.18 % and −0.28 %), and not
/// f16's figure itself (the q8 cache was read).
#[test]
fn q8_cache_perplexity_is_within_one_percent_of_llama_cpps_f16_cache() {
    for (model, context, reference) in [LLAMA_CPP[0], LLAMA_CPP[3]] {
        let r = &perplexity_with(model, context, "q8")["report"];
        assert_eq!(r["kv_cache"], "q8");
        let ppl = r["perplexity"].as_f64().unwrap();
        let f16 = perplexity(model, context)["report"]["perplexity"]
            .as_f64()
            .unwrap();
        eprintln!("{model} -c {context}: q8 cache {ppl:.4}, f16 {f16:.4}, llama.cpp {reference}");
        assert!(
            (ppl - reference).abs() / reference < 0.01,
            "{model} -c {context}: q8 cache {ppl} vs llama.cpp {reference}"
        );
        assert_ne!(
            ppl, f16,
            "{model}: the q8 cache gave the f16 cache's figure"
        );
    }
}

#[test]
fn perplexity_refuses_a_text_shorter_than_one_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("short.txt");
    std::fs::write(&f, "Only a few words.").unwrap();
    let path = model_path(SMOLLM2);
    let (ok, _, err) = run_teacher(&[
        "perplexity",
        "--model",
        path.to_str().unwrap(),
        "--file",
        f.to_str().unwrap(),
        "--context",
        "128",
    ]);
    assert!(!ok);
    assert!(err.contains("fewer than one chunk"), "{err}");
    std::fs::write(&f, [0xffu8, 0xfe, 0x41]).unwrap();
    let (ok, _, err) = run_teacher(&[
        "perplexity",
        "--model",
        path.to_str().unwrap(),
        "--file",
        f.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("not UTF-8"), "{err}");
}
