//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer). Each takes
//! arbitrary bytes and drives one parser the way user input reaches it; any panic,
//! hang or unbounded allocation is a bug. `tests/it/fuzz_corpus.rs` replays the kept
//! corpus and every crasher through the same functions in a normal `cargo test`.

use std::io::Write;
use teacher_models::{ChatTemplate, GgufFile, HParams, Message, TextTokenizer};

/// GGUF header, metadata and tensor directory; then hyper-parameters, the tokenizer
/// and the forward pass's construction (no step is run).
pub fn gguf(data: &[u8]) {
    let Ok(g) = GgufFile::from_bytes("fuzz.gguf", data) else {
        return;
    };
    let _ = HParams::parameter_count(&g);
    let _ = TextTokenizer::from_gguf(&g).map(|t| t.encode("Hello, world!", true, true));
    if HParams::from_gguf(&g).is_ok() {
        let g = std::sync::Arc::new(g);
        let _ = teacher_models::forward::Transformer::load(g);
    }
}

/// A chat template (the first line of the input is a message, the rest the template).
pub fn chat_template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (msg, src) = text.split_once('\n').unwrap_or(("hi", &text));
    if let Ok(t) = ChatTemplate::new(src, "fuzz") {
        let _ = t.render(
            &[
                Message::new("system", "s"),
                Message::new("user", msg.to_string()),
                Message::new("assistant", "a"),
            ],
            true,
            "<s>",
            "</s>",
            usize::MAX,
        );
    }
}

/// Every input-file reader: instruction items (respond/evolve), seed tasks in every
/// format, generate's prompt lines, dedup's record reader.
pub fn input_files(data: &[u8]) {
    let Ok(mut f) = tempfile::NamedTempFile::new() else {
        return;
    };
    if f.write_all(data).and_then(|_| f.flush()).is_err() {
        return;
    }
    let p = f.path();
    let _ = crate::pipeline::items::load(p);
    for fmt in [
        None,
        Some(crate::pipeline::seeds::SeedFormat::SelfInstruct),
        Some(crate::pipeline::seeds::SeedFormat::Alpaca),
        Some(crate::pipeline::seeds::SeedFormat::Text),
    ] {
        let _ = crate::pipeline::seeds::load(p, fmt);
    }
    let _ = crate::generate::read_prompts(p, &teacher_kernels::SamplingParams::default(), 16);
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let opts = crate::dedup::DedupOptions {
        method: crate::dedup::Method::RougeL,
        threshold: 0.7,
        rule: crate::filter::DropRule::AtLeast,
        fields: vec!["instruction".into()],
        skip_invalid: false,
        num_perm: 16,
        ngram: 1,
        verify: true,
        seed: 1,
    };
    let _ = crate::dedup::run(p, &dir.path().join("o.jsonl"), None, &opts, |_| {});
}

/// The ROUGE-L tokenizer and score on two arbitrary texts, with its invariants: a
/// score lies in [0, 1], is symmetric, and a text scores 1 against itself when it has
/// tokens.
pub fn rouge(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\u{0}').unwrap_or((&text, ""));
    let s = crate::filter::rouge_l::rouge_l(a, b);
    assert!((0.0..=1.0).contains(&s), "score {s}");
    assert_eq!(s, crate::filter::rouge_l::rouge_l(b, a), "symmetric");
    if !crate::filter::rouge_l::tokenize(a).is_empty() {
        assert_eq!(crate::filter::rouge_l::rouge_l(a, a), 1.0);
    }
    let mut idx = crate::filter::rouge_l::RougeIndex::new();
    idx.insert(0, a);
    if let Some(m) = idx.max_similarity(b) {
        assert_eq!(m.score, s, "the index agrees with the direct score");
    }
}
