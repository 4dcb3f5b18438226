//! The batched engine through `teacher generate`: byte-identical output at any batch
//! size and thread count, input order, per-request failures, stop strings.

use crate::common::{model_path, run_teacher, teacher_bin, GEMMA3, SMOLLM2};
use std::path::{Path, PathBuf};

const TOPICS: [&str; 16] = [
    "the ocean",
    "a mountain",
    "friendship",
    "coffee",
    "a robot",
    "the moon",
    "rain",
    "music",
    "a library",
    "winter",
    "a garden",
    "trains",
    "honesty",
    "the city",
    "a river",
    "chess",
];

/// 64 prompts of different lengths; odd lines sampled (per-line temperature), even
/// lines greedy.
fn prompts(dir: &Path, chat: bool, max_tokens: usize) -> PathBuf {
    let mut body = String::new();
    for i in 0..64 {
        let topic = TOPICS[i % 16];
        let text = match i % 4 {
            0 => format!("Write one sentence about {topic}."),
            1 => format!("Give a title for a story about {topic}"),
            2 => format!("Explain, in simple words and with an example, why people like {topic}."),
            _ => format!("List three facts about {topic}:"),
        };
        let prompt = if chat {
            serde_json::json!({"id": format!("item-{i}"), "messages": [{"role": "user", "content": text}]})
        } else {
            serde_json::json!({"id": i, "prompt": text})
        };
        let mut rec = prompt;
        rec["max_tokens"] = serde_json::json!(max_tokens);
        if i % 2 == 1 {
            rec["temperature"] = serde_json::json!(0.8);
            rec["top_p"] = serde_json::json!(0.95);
        }
        body += &(rec.to_string() + "\n");
    }
    let p = dir.join(if chat { "chat.jsonl" } else { "plain.jsonl" });
    std::fs::write(&p, body).unwrap();
    p
}

fn generate_with(
    model: &str,
    input: &Path,
    out: &Path,
    batch: usize,
    threads: usize,
    extra: &[&str],
) -> Vec<u8> {
    let o = std::process::Command::new(teacher_bin())
        .args([
            "generate",
            "--model",
            model,
            "--seed",
            "7",
            "--batch",
            &batch.to_string(),
        ])
        .args([
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out).unwrap()
}

/// The first `n` lines of a JSONL output.
fn head(bytes: &[u8], n: usize) -> &[u8] {
    let end = bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(n - 1)
        .map_or(bytes.len(), |(i, _)| i + 1);
    &bytes[..end]
}

/// Batch-1 runs take the first 16 prompts only (one at a time is the slow case): an
/// item's text depends on nothing else in the run, so their lines must be the first 16
/// lines of every other run's, byte for byte.
const BATCH_1_PROMPTS: usize = 16;

fn identical_at_any_batch_and_thread_count(model: &str, chat: bool, max_tokens: usize) {
    model_path(model);
    let dir = tempfile::tempdir().unwrap();
    let input = prompts(dir.path(), chat, max_tokens);
    let first = dir.path().join("first.jsonl");
    std::fs::write(
        &first,
        head(&std::fs::read(&input).unwrap(), BATCH_1_PROMPTS),
    )
    .unwrap();
    let input_for = |batch: usize| if batch == 1 { &first } else { &input };
    // The last run computes every prompt in full; the others start prompts from
    // prefixes other sequences (or the slot's last occupant) computed.
    let runs = [
        (1, 2, &[][..]),
        (4, 1, &[][..]),
        (32, 2, &[][..]),
        (32, 1, &[][..]),
        (8, 2, &["--no-prefix-reuse"][..]),
    ];
    let mut outputs = Vec::new();
    for (i, (batch, threads, extra)) in runs.iter().enumerate() {
        let out = dir.path().join(format!("out{i}.jsonl"));
        outputs.push(generate_with(
            model,
            input_for(*batch),
            &out,
            *batch,
            *threads,
            extra,
        ));
    }
    let reused = |i: usize| -> u64 {
        let m = std::fs::read_to_string(dir.path().join(format!("out{i}.jsonl.manifest.json")))
            .unwrap();
        let m: serde_json::Value = serde_json::from_str(&m).unwrap();
        m["profile"]["prefix_reused_tokens"].as_u64().unwrap()
    };
    assert!(reused(0) > 0 && reused(2) > 0, "prefixes were reused");
    assert_eq!(reused(4), 0);
    // The f32 cache copies another store: reuse on and off give the same bytes there too.
    let f32_runs: Vec<Vec<u8>> = [
        &["--kv-type", "f32"][..],
        &["--kv-type", "f32", "--no-prefix-reuse"],
    ]
    .iter()
    .enumerate()
    .map(|(i, extra)| {
        let out = dir.path().join(format!("f32-{i}.jsonl"));
        generate_with(model, &input, &out, 6, 2, extra)
    })
    .collect();
    assert!(
        f32_runs[0] == f32_runs[1],
        "{model}: f32 cache, prefix reuse changed bytes"
    );
    // So does the q8 cache, at any batch and thread count; its text is its own.
    let q8_runs: Vec<Vec<u8>> = [
        (1, 1, &["--kv-type", "q8"][..]),
        (32, 2, &["--kv-type", "q8"][..]),
        (6, 2, &["--kv-type", "q8", "--no-prefix-reuse"][..]),
    ]
    .iter()
    .enumerate()
    .map(|(i, (batch, threads, extra))| {
        let out = dir.path().join(format!("q8-{i}.jsonl"));
        generate_with(model, input_for(*batch), &out, *batch, *threads, extra)
    })
    .collect();
    for (i, o) in q8_runs.iter().enumerate() {
        let lines = o.iter().filter(|&&b| b == b'\n').count();
        assert!(
            o == head(&q8_runs[1], lines),
            "{model}: q8 cache, run {i} differs"
        );
    }
    let m = std::fs::read_to_string(dir.path().join("q8-0.jsonl.manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&m).unwrap();
    assert_eq!(m["params"]["kv_cache"], "q8", "{m}");
    for (i, o) in outputs.iter().enumerate() {
        let lines = o.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(lines, if runs[i].0 == 1 { BATCH_1_PROMPTS } else { 64 });
        assert!(
            o == head(&outputs[2], lines),
            "{model}: run {:?} differs from {:?}",
            runs[i],
            runs[2]
        );
    }
    let lines: Vec<serde_json::Value> = String::from_utf8(outputs[2].clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 64);
    for (i, l) in lines.iter().enumerate() {
        let want = if chat {
            serde_json::json!(format!("item-{i}"))
        } else {
            serde_json::json!(i)
        };
        assert_eq!(l["id"], want, "output in input order");
        assert!(l["completion_tokens"].as_u64().unwrap() >= 1);
        assert!(l["prompt_tokens"].as_u64().unwrap() > 3);
    }
    // Sampled lines differ from greedy ones on the same prompt pattern somewhere.
    assert!(lines
        .iter()
        .any(|l| !l["text"].as_str().unwrap().is_empty()));
}

#[test]
fn smollm2_output_is_identical_at_batch_1_4_32_and_1_or_2_threads() {
    identical_at_any_batch_and_thread_count(SMOLLM2, true, 12);
}

#[test]
fn gemma3_output_is_identical_at_batch_1_4_32_and_1_or_2_threads() {
    identical_at_any_batch_and_thread_count(GEMMA3, false, 8);
}

#[test]
fn a_prompt_longer_than_the_context_fails_alone() {
    model_path(SMOLLM2);
    let dir = tempfile::tempdir().unwrap();
    let long = "word ".repeat(200);
    let body = format!(
        "{}\n{}\n{}\n",
        serde_json::json!({"id": "a", "prompt": "One, two,", "max_tokens": 4}),
        serde_json::json!({"id": "b", "prompt": long, "max_tokens": 4}),
        serde_json::json!({"id": "c", "prompt": "Red, green,", "max_tokens": 4}),
    );
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, body).unwrap();
    let out = dir.path().join("out.jsonl");
    let (ok, _, err) = run_teacher(&[
        "generate",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--context",
        "64",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["finish_reason"], "error");
    let why = lines[1]["error"].as_str().unwrap();
    assert!(
        why.contains("longer than the context") && why.contains("> 63 tokens"),
        "{why}"
    );
    assert_eq!(lines[0]["finish_reason"], "length");
    assert_eq!(lines[2]["completion_tokens"], 4);
}

#[test]
fn stop_strings_end_the_text_before_them() {
    model_path(SMOLLM2);
    let dir = tempfile::tempdir().unwrap();
    let body = serde_json::json!({"id": 1, "prompt": "1. apples\n2. pears\n3.", "max_tokens": 40, "stop": ["\n"]}).to_string();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, body + "\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let (ok, _, err) = run_teacher(&[
        "generate",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&out).unwrap().trim()).unwrap();
    assert_eq!(v["finish_reason"], "stop");
    assert!(!v["text"].as_str().unwrap().contains('\n'), "{v}");
}

/// Requests without stop strings have their text decoded once, when they finish; with a
/// stop string that never appears, at every token. The texts must be the same bytes,
/// for both tokenizer kinds (byte-level BPE, SentencePiece with byte fallback), text
/// outside ASCII, and every way a sequence ends: an end-of-turn token (SmolLM2),
/// `max_tokens`, the context.
#[test]
fn text_decoded_once_at_the_end_is_the_text_decoded_at_every_token() {
    let asks = [
        "Write one sentence about the sea.",
        "Answer in Japanese: what is your favourite season?",
        "Write three emoji and one German word with an umlaut.",
        "Count from one to twenty in French, one word per line.",
        "Say hello.",
        "Écris une phrase sur le café, avec des accents.",
    ];
    for model in [SMOLLM2, GEMMA3] {
        model_path(model);
        let dir = tempfile::tempdir().unwrap();
        let input = |stop: bool| {
            let mut body = String::new();
            for (i, ask) in asks.iter().enumerate() {
                // Gemma's catalog GGUF has no chat template: a plain prompt, which it
                // continues past the answer (so only SmolLM2 ends at an end of turn).
                let mut rec = if model == GEMMA3 {
                    serde_json::json!({"id": i, "prompt": format!("Q: {ask}\nA:")})
                } else {
                    serde_json::json!({"id": i, "messages": [{"role": "user", "content": ask}]})
                };
                rec["max_tokens"] = serde_json::json!(16 + 24 * i);
                if i % 2 == 1 {
                    rec["temperature"] = serde_json::json!(0.9);
                }
                if stop {
                    rec["stop"] = serde_json::json!(["\u{1}"]);
                }
                body += &(rec.to_string() + "\n");
            }
            let path = dir.path().join(format!("in-{stop}.jsonl"));
            std::fs::write(&path, body).unwrap();
            path
        };
        let run = |stop: bool| {
            let out = dir.path().join(format!("out-{stop}.jsonl"));
            generate_with(model, &input(stop), &out, 4, 2, &["--context", "64"])
        };
        let (once, every) = (run(false), run(true));
        let text = String::from_utf8(once.clone()).unwrap();
        let ends: &[&str] = if model == GEMMA3 {
            &["\"length\"", "\"context\""]
        } else {
            &["\"stop\"", "\"length\"", "\"context\""]
        };
        for reason in ends {
            assert!(
                text.contains(reason),
                "{model}: no sequence ended by {reason}:\n{text}"
            );
        }
        assert!(!text.is_ascii(), "{model}: only ASCII:\n{text}");
        assert_eq!(
            text,
            String::from_utf8(every).unwrap(),
            "{model}: decoded once and at every token differ"
        );
    }
}

#[test]
fn bad_input_is_refused_before_the_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    for (body, needle) in [
        ("{\"prompt\":\"a\"}\n{oops\n", "line 2: not valid JSON"),
        (
            "{\"prompt\":\"a\",\"temperature\":-1}\n",
            "line 1: temperature must be >= 0",
        ),
        (
            "{\"prompt\":\"a\",\"top_p\":1.5}\n",
            "line 1: top_p must be in (0, 1]",
        ),
        (
            "{\"id\":1,\"prompt\":\"a\"}\n{\"id\":1,\"prompt\":\"b\"}\n",
            "line 2: id 1 appears twice",
        ),
        ("{\"text\":\"a\"}\n", "line 1: needs `prompt` or `messages`"),
    ] {
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, body).unwrap();
        let (ok, _, err) = run_teacher(&[
            "generate",
            "--model",
            "/no/such/model.gguf",
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!ok);
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!out.exists());
    }
    let (ok, _, err) = run_teacher(&[
        "generate",
        "--model",
        "/no/such/model.gguf",
        "--input",
        "x.jsonl",
        "--out",
        "y.jsonl",
        "--temperature=-2",
    ]);
    assert!(!ok && err.contains("temperature"), "{err}");
}

#[test]
fn bench_prints_a_row_per_batch_size() {
    model_path(SMOLLM2);
    let (ok, out, err) = run_teacher(&[
        "bench",
        "--batch",
        "1,2",
        "--prompt-tokens",
        "8",
        "--gen-tokens",
        "4",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["batch"], 2);
    assert!(rows[0]["decode_tok_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn kv_cache_over_budget_is_a_clear_error() {
    model_path(SMOLLM2);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"prompt\":\"hi\"}\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let (ok, _, err) = run_teacher(&[
        "generate",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--batch",
        "64",
        "--context",
        "8192",
        "--kv-memory",
        "0.5",
    ]);
    assert!(!ok);
    assert!(
        err.contains("KV cache") && err.contains("--kv-memory"),
        "{err}"
    );
}

#[test]
fn generate_returns_log_probabilities_identically_at_any_batch() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("lp.jsonl");
    let mut body = String::new();
    for i in 0..6 {
        let mut rec = serde_json::json!({"id": i, "prompt": format!("Count to {}:", i + 3),
            "max_tokens": 8, "logprobs": 4});
        if i % 2 == 1 {
            rec["temperature"] = serde_json::json!(0.9);
        }
        body += &(rec.to_string() + "\n");
    }
    // A line without logprobs gets none.
    body += "{\"id\": 9, \"prompt\": \"Hello\", \"max_tokens\": 3}\n";
    std::fs::write(&input, body).unwrap();
    let a = generate_with(SMOLLM2, &input, &d.path().join("a.jsonl"), 1, 2, &[]);
    let b = generate_with(SMOLLM2, &input, &d.path().join("b.jsonl"), 5, 1, &[]);
    assert!(a == b, "log-probabilities differ between batch 1 and 5");
    let lines: Vec<serde_json::Value> = String::from_utf8(a)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for l in &lines[..6] {
        let lps = l["logprobs"].as_array().unwrap();
        assert_eq!(lps.len() as u64, l["completion_tokens"].as_u64().unwrap());
        for t in lps {
            let top = t["top"].as_array().unwrap();
            assert_eq!(top.len(), 4);
            let chosen = t["logprob"].as_f64().unwrap();
            assert!(chosen <= 0.0);
            let mass: f64 = top.iter().map(|x| x[1].as_f64().unwrap().exp()).sum();
            assert!(mass <= 1.0 + 1e-5, "{t}");
            if l["id"].as_u64().unwrap() % 2 == 0 {
                // Greedy: the chosen token is the first alternative.
                assert_eq!(top[0][0], t["token"], "{t}");
                assert_eq!(top[0][1].as_f64().unwrap(), chosen);
            }
        }
    }
    assert!(lines[6].get("logprobs").is_none());
    // A bad value is named by line before the model loads.
    std::fs::write(&input, "{\"prompt\": \"x\", \"logprobs\": 50}\n").unwrap();
    let (ok, _, err) = run_teacher(&[
        "generate",
        "--input",
        input.to_str().unwrap(),
        "--out",
        d.path().join("c.jsonl").to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("line 1") && err.contains("logprobs"),
        "{err}"
    );
}
