//! Encoding equals llama.cpp's on every line of the shared golden file, for both
//! models, with and without special-token parsing; decode(encode(s)) round-trips.

use crate::common::{model_path, shared_data};
use teacher_models::{LoadOptions, ModelFile};

#[derive(serde::Deserialize)]
struct Golden {
    model: String,
    sha256: String,
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
}

fn golden() -> Vec<Golden> {
    let text = shared_data("tokenizer_golden.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("golden line parses"))
        .collect()
}

fn check_model(name: &str) {
    let file = ModelFile::open(&model_path(name), &LoadOptions::default()).unwrap();
    let rows: Vec<Golden> = golden().into_iter().filter(|g| g.model == name).collect();
    assert!(rows.len() >= 20, "golden file has rows for {name}");
    let sha = teacher_models::fetch::sha256_file(file.gguf.path()).unwrap();
    let mut failures = Vec::new();
    for g in &rows {
        assert_eq!(g.sha256, sha, "golden rows were made with this exact file");
        let ids = file
            .tokenizer
            .encode(&g.text, g.parse_special, true)
            .unwrap();
        if ids != g.ids {
            failures.push(format!(
                "{:?} (parse_special={}):\n  llama.cpp {:?}\n  teacher   {:?}",
                g.text, g.parse_special, g.ids, ids
            ));
        }
        if !g.parse_special {
            let body: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|&t| Some(t) != file.tokenizer.bos)
                .collect();
            assert_eq!(file.tokenizer.decode(&body).unwrap(), g.text, "round trip");
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} mismatches\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_model(crate::common::SMOLLM2);
}

#[test]
fn gemma3_matches_llama_cpp() {
    check_model(crate::common::GEMMA3);
}

#[test]
fn plain_text_round_trips() {
    for name in [crate::common::SMOLLM2, crate::common::GEMMA3] {
        let file = ModelFile::open(&model_path(name), &LoadOptions::default()).unwrap();
        for text in [
            "Write a haiku about rust.\n\nThen explain it.",
            "  two leading spaces, tabs\tand trailing  ",
            "naïve café — 中文 🚀",
        ] {
            let ids = file.tokenizer.encode(text, false, false).unwrap();
            assert_eq!(file.tokenizer.decode(&ids).unwrap(), text, "{name}");
        }
    }
}
