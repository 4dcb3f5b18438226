//! The CLI as a user runs it, on the real models.

use crate::common::{model_path, run_teacher, GEMMA3, SMOLLM2};

#[test]
fn models_info_reports_both_models() {
    model_path(SMOLLM2);
    model_path(GEMMA3);
    let (ok, out, err) = run_teacher(&["models", "info", SMOLLM2, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["n_layer"], 30);
    assert_eq!(v["context_length"], 8192);
    assert_eq!(v["vocab_size"], 49152);
    assert_eq!(v["chat_template"], true);
    assert_eq!(v["tensor_types"]["Q4_1"], 210);
    assert_eq!(
        v["sha256"],
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    let p = v["parameters"].as_u64().unwrap();
    assert!((130_000_000..140_000_000).contains(&p), "{p}");

    let (ok, out, err) = run_teacher(&["models", "info", GEMMA3, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["architecture"], "gemma3");
    assert_eq!(v["n_layer"], 18);
    assert_eq!(v["vocab_size"], 262144);
    assert_eq!(v["chat_template"], false);
    assert_eq!(v["prompt_style"], "completion");
    assert_eq!(v["tensor_types"]["Q5_0"], 81);
    let p = v["parameters"].as_u64().unwrap();
    assert!((260_000_000..275_000_000).contains(&p), "{p}");
}

#[test]
fn tokenize_prints_ids_and_counts() {
    model_path(SMOLLM2);
    let (ok, out, err) = run_teacher(&["tokenize", "Hello, world!"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "[19556,28,905,17]");
    let (ok, out, _) = run_teacher(&["tokenize", "--count", "Hello, world!"]);
    assert!(ok);
    assert_eq!(out.trim(), "4");
    let (_, special, _) = run_teacher(&["tokenize", "--count", "<|im_start|>user"]);
    let (_, plain, _) = run_teacher(&["tokenize", "--count", "--no-special", "<|im_start|>user"]);
    assert!(special.trim().parse::<u32>().unwrap() < plain.trim().parse::<u32>().unwrap());
}

#[test]
fn unknown_model_is_a_clear_error() {
    let (ok, _, err) = run_teacher(&["tokenize", "--model", "gemma3-27m", "hi"]);
    assert!(!ok);
    assert!(err.contains("did you mean `gemma3-270m`"), "{err}");
}

#[test]
fn invalid_sampling_is_refused_before_loading() {
    let (ok, _, err) = run_teacher(&[
        "complete",
        "--model",
        "/does/not/exist.gguf",
        "--prompt",
        "x",
        "--top-p",
        "1.5",
    ]);
    assert!(!ok);
    assert!(err.contains("top_p"), "{err}");
}

#[test]
fn complete_answers_a_simple_question_greedily() {
    model_path(SMOLLM2);
    let (ok, out, err) = run_teacher(&[
        "complete",
        "--prompt",
        "What is the capital of France? Answer in one sentence.",
        "--chat",
        "--max-tokens",
        "40",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("Paris"), "{out}");
    assert!(
        err.contains("finish: Stop"),
        "the answer ends by itself: {err}"
    );
    // Greedy decoding is deterministic.
    let (_, again, _) = run_teacher(&[
        "complete",
        "--prompt",
        "What is the capital of France? Answer in one sentence.",
        "--chat",
        "--max-tokens",
        "40",
    ]);
    assert_eq!(out, again);
}

#[test]
fn complete_continues_plain_text_with_base_model() {
    model_path(GEMMA3);
    let (ok, out, err) = run_teacher(&[
        "complete",
        "--model",
        GEMMA3,
        "--prompt",
        "The first three days of the week are Monday, Tuesday and",
        "--max-tokens",
        "6",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("Wednesday"), "{out}");
}

#[test]
fn sampled_completion_is_reproducible_by_seed() {
    model_path(SMOLLM2);
    let args = |seed: &'static str| {
        vec![
            "complete",
            "--prompt",
            "Write a short poem about the sea.",
            "--chat",
            "--max-tokens",
            "24",
            "--temperature",
            "0.9",
            "--top-p",
            "0.95",
            "--seed",
            seed,
        ]
    };
    let (ok, a, err) = run_teacher(&args("7"));
    assert!(ok, "{err}");
    let (_, b, _) = run_teacher(&args("7"));
    let (_, c, _) = run_teacher(&args("8"));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn messages_on_a_base_model_is_a_clear_error() {
    model_path(GEMMA3);
    let (ok, _, err) = run_teacher(&[
        "complete",
        "--model",
        GEMMA3,
        "--messages",
        r#"[{"role":"user","content":"hi"}]"#,
    ]);
    assert!(!ok);
    assert!(err.contains("no chat template"), "{err}");
}

#[test]
fn device_flag_names_what_it_accepts_and_what_this_build_lacks() {
    let m = model_path(SMOLLM2);
    let m = m.to_str().unwrap();
    let bench = |dev: &str| {
        run_teacher(&[
            "bench",
            "--model",
            m,
            "--device",
            dev,
            "--batch",
            "1",
            "--prompt-tokens",
            "2",
            "--gen-tokens",
            "1",
        ])
    };
    let (ok, _, err) = bench("tpu");
    assert!(
        !ok && err.contains("`tpu` is not a device") && err.contains("cuda:N"),
        "{err}"
    );
    let (ok, _, err) = bench("metal");
    assert!(!ok && err.contains("no Metal backend"), "{err}");
    #[cfg(not(feature = "cuda"))]
    {
        let (ok, _, err) = bench("cuda:1");
        assert!(
            !ok && err.contains("no CUDA backend") && err.contains("--features cuda"),
            "{err}"
        );
    }
    // cpu, and auto in a build without a GPU backend, run on the CPU without comment.
    let (ok, out, err) = bench("cpu");
    assert!(ok && out.contains("· cpu ·"), "{out}\n{err}");
}

#[test]
fn bench_decodes_by_sampling_when_asked() {
    let m = model_path(SMOLLM2);
    let m = m.to_str().unwrap();
    let bench = |extra: &[&str]| {
        let mut a = vec![
            "bench",
            "--model",
            m,
            "--batch",
            "2",
            "--prompt-tokens",
            "4",
            "--gen-tokens",
            "3",
            "--json",
        ];
        a.extend_from_slice(extra);
        run_teacher(&a)
    };
    let (ok, out, err) = bench(&["--temperature", "0.8", "--top-p", "0.95"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decode"], "sampled (temperature 0.8, top-p 0.95)");
    assert!(
        v["rows"][0]["decode_tok_s"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    let (ok, out, _) = bench(&[]);
    assert!(ok);
    assert!(out.contains("\"decode\": \"greedy\""), "{out}");
    let (ok, _, err) = bench(&["--temperature", "0.8", "--top-p", "1.5"]);
    assert!(
        !ok && err.contains("--temperature/--top-p") && err.contains("top_p"),
        "{err}"
    );
}
