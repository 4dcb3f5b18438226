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

/// The engine's text a token at a time (`TextDecoder`) is `decode` of all the ids so
/// far, after every id: on the golden texts' ids (special tokens included), and on
/// random ids weighted towards what is hard — byte tokens that make valid and invalid
/// UTF-8, single-byte byte-level tokens, control tokens, leading spaces.
#[test]
fn text_a_token_at_a_time_is_the_whole_decode() {
    for name in [crate::common::SMOLLM2, crate::common::GEMMA3] {
        let file = ModelFile::open(&model_path(name), &LoadOptions::default()).unwrap();
        let tok = &file.tokenizer;
        let n = tok.vocab_size as u32;
        let text_of = |id: u32| tok.token_text(id).unwrap_or("").to_string();
        // SentencePiece's byte tokens (`<0xE4>`), else one-character tokens (byte-level's
        // lone bytes).
        let mut bytes: Vec<u32> = (0..n)
            .filter(|&i| {
                let t = text_of(i);
                t.starts_with("<0x") && t.len() == 6
            })
            .collect();
        if bytes.is_empty() {
            bytes = (0..n)
                .filter(|&i| text_of(i).chars().count() == 1)
                .collect();
        }
        let control: Vec<u32> = (0..n)
            .filter(|&i| {
                let t = text_of(i);
                t.starts_with('<') && t.ends_with('>') && !t.starts_with("<0x") && t.len() > 2
            })
            .collect();
        let spaces: Vec<u32> = (0..n)
            .filter(|&i| {
                let t = text_of(i);
                t.starts_with('\u{2581}') || t.starts_with('\u{120}')
            })
            .take(2000)
            .collect();
        assert!(
            bytes.len() >= 200 && control.len() >= 2 && spaces.len() >= 100,
            "{name}"
        );
        let mut seqs: Vec<Vec<u32>> = golden()
            .into_iter()
            .filter(|g| g.model == name)
            .map(|g| g.ids)
            .collect();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % m
        };
        for _ in 0..400 {
            let len = 1 + next(40);
            let seq = (0..len)
                .map(|_| match next(8) {
                    0..=2 => bytes[next(bytes.len())],
                    3 => control[next(control.len())],
                    4 => spaces[next(spaces.len())],
                    _ => next(n as usize) as u32,
                })
                .collect();
            seqs.push(seq);
        }
        let mut checked = 0;
        for seq in &seqs {
            let mut d = tok
                .text_decoder()
                .expect("a GGUF tokenizer decodes a token at a time");
            for i in 0..seq.len() {
                d.push(tok, seq[i]);
                let whole = tok.decode(&seq[..=i]).unwrap();
                assert_eq!(d.text(), whole, "{name}: ids {:?}", &seq[..=i]);
                checked += 1;
            }
        }
        assert!(checked > 8000, "{name}: {checked}");
    }
}
