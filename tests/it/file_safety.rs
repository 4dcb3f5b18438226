//! Regression tests for the hostile review of issue 39: no command may damage a file the
//! run did not create, whatever the spelling of its paths (`..`, symlinks, hard links),
//! the timing (two runs on one output) or the sizes its flags ask for. Each test is named
//! for the behaviour it guards; most run on the tiny synthetic model or before any model
//! is loaded.

use crate::common::{model_path, run_teacher, teacher_bin, SMOLLM2};
use crate::reliability::tiny_model;
use std::path::Path;
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn refused(args: &[&str]) -> String {
    let (ok, _, err) = run_teacher(args);
    assert!(!ok, "teacher {args:?} should be refused");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A directory with `data.jsonl` (two records) and an empty `sub/`.
fn dataset() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data.jsonl");
    let text = "{\"id\":\"a\",\"instruction\":\"Name a colour.\",\"output\":\"Red.\"}\n{\"id\":\"b\",\"instruction\":\"Name a colour.\",\"output\":\"Red.\"}\n";
    std::fs::write(&data, text).unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    (d, data, text.to_string())
}

#[test]
fn dot_dot_links_and_hard_links_never_alias_an_input_with_an_output() {
    let (d, data, text) = dataset();
    let dir = d.path();
    let dotted = dir.join("sub/../data.jsonl");
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let hard = dir.join("hard.jsonl");
    std::fs::hard_link(&data, &hard).unwrap();
    let kept = dir.join("k.jsonl");
    for alias in [&dotted, &link, &hard] {
        // dedup --dropped onto the input
        let err = refused(&[
            "dedup",
            "--input",
            s(&data),
            "--out",
            s(&kept),
            "--dropped",
            s(alias),
        ]);
        assert!(err.contains("same file"), "{err}");
        // report --out onto the dataset
        let err = refused(&["report", s(&data), "--out", s(alias)]);
        assert!(err.contains("one of the report's inputs"), "{err}");
        assert_eq!(std::fs::read_to_string(&data).unwrap(), text);
    }
    // dedup --dropped onto --out, spelled through `..`
    let err = refused(&[
        "dedup",
        "--input",
        s(&data),
        "--out",
        s(&kept),
        "--dropped",
        s(&dir.join("sub/../k.jsonl")),
    ]);
    assert!(err.contains("same file"), "{err}");
    // self-instruct --rejected onto --out: refused before the model is even opened.
    let err = refused(&[
        "self-instruct",
        "--model",
        "/no/such/model.gguf",
        "--out",
        s(&dir.join("si.jsonl")),
        "--rejected",
        s(&dir.join("sub/../si.jsonl")),
    ]);
    assert!(err.contains("--out") && err.contains("--rejected"), "{err}");
    // generate --out onto the model file itself
    let model = tiny_model(dir);
    let bytes = std::fs::read(&model).unwrap();
    let err = refused(&[
        "generate",
        "--model",
        s(&model),
        "--input",
        s(&data),
        "--out",
        s(&dir.join("sub/../tiny.gguf")),
    ]);
    assert!(err.contains("--model"), "{err}");
    assert_eq!(std::fs::read(&model).unwrap(), bytes);
    assert!(!kept.exists() && !dir.join("si.jsonl").exists());
}

/// Two runs on one output: the second is refused with the first's pid while it runs;
/// the first, SIGKILLed, leaves no lock, and a rerun resumes it to completion.
#[test]
fn a_second_run_on_a_locked_output_is_refused_with_the_holders_pid() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let prompts: String = (0..48)
        .map(|i| {
            format!("{{\"id\":\"p{i}\",\"prompt\":\"Tell a long story about the number {i}.\"}}\n")
        })
        .collect();
    std::fs::write(dir.join("in.jsonl"), prompts).unwrap();
    let args = [
        "generate",
        "--input",
        "in.jsonl",
        "--out",
        "conc.jsonl",
        "--max-tokens",
        "96",
        "--batch",
        "2",
        "--wave-size",
        "4",
    ];
    let mut first = Command::new(teacher_bin())
        .current_dir(dir)
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let manifest = dir.join("conc.jsonl.manifest.json");
    let started = std::time::Instant::now();
    while !manifest.exists() {
        assert!(
            started.elapsed().as_secs() < 120,
            "the first run never opened its output"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = Command::new(teacher_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run finished too soon for the test"
    );
    assert!(!second.status.success(), "{err}");
    assert!(
        err.contains("being written by another process")
            && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let rerun = Command::new(teacher_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m["complete"], true);
    let out = std::fs::read_to_string(dir.join("conc.jsonl")).unwrap();
    assert_eq!(out.lines().count(), 48);
    let mut ids: Vec<&str> = out
        .lines()
        .map(|l| {
            l.split("\"id\":\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 48, "no record twice");
}

/// Inputs `p0` and `p0.r1`: `p0`'s first evolution may not take the id `p0.r1` (seed 3
/// is a run in which it survives its eliminations).
#[test]
fn evolve_ids_stay_unique_when_an_input_id_looks_evolved() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("in.jsonl"),
        "{\"id\":\"p0\",\"instruction\":\"Explain how tides work.\"}\n{\"id\":\"p0.r1\",\"instruction\":\"Write a short poem about autumn leaves.\"}\n{\"id\":\"p1\",\"instruction\":\"Describe how a bicycle works.\"}\n",
    )
    .unwrap();
    let (ok, _, err) = run_teacher(&[
        "evolve",
        "--input",
        s(&dir.join("in.jsonl")),
        "--out",
        s(&dir.join("e.jsonl")),
        "--rounds",
        "1",
        "--max-tokens",
        "128",
        "--response-max-tokens",
        "64",
        "--keep-originals",
        "--seed",
        "3",
    ]);
    assert!(ok, "{err}");
    let mut ids: Vec<String> = std::fs::read_to_string(dir.join("e.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(ids.contains(&"p0.r1.1".to_string()), "{ids:?}");
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "{ids:?}");
}

#[test]
fn sizes_from_flags_are_refused_before_they_are_allocated() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let model = tiny_model(dir);
    std::fs::write(dir.join("in.jsonl"), "{\"id\":\"a\",\"prompt\":\"hi\"}\n").unwrap();
    let (input, out) = (dir.join("in.jsonl"), dir.join("o.jsonl"));
    let generate = |extra: &[&str]| -> String {
        let base = [
            "generate",
            "--model",
            s(&model),
            "--input",
            s(&input),
            "--out",
            s(&out),
        ];
        refused(&[&base[..], extra].concat())
    };
    for kv in ["1e300", "inf"] {
        let err = generate(&["--kv-memory", kv, "--batch", "390937467654"]);
        assert!(err.contains("KV cache") && err.contains("--batch"), "{err}");
    }
    // --context over the model's own is refused, not silently cut.
    let err = generate(&["--context", "100000000"]);
    assert!(err.contains("longer than the model's context"), "{err}");
    assert!(!dir.join("o.jsonl").exists());
}

#[test]
fn perplexity_batch_tokens_beyond_memory_is_refused_by_name() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    // ~3 MB: about 90 chunks of 8192 tokens, whose logits alone would take ~75 GB.
    let base = crate::common::shared_data("perplexity_gpl3.txt");
    let text = base.repeat((3 << 20) / base.len() + 1);
    let file = d.path().join("t.txt");
    std::fs::write(&file, text).unwrap();
    let err = refused(&[
        "perplexity",
        "--model",
        SMOLLM2,
        "--file",
        s(&file),
        "--context",
        "8192",
        "--batch-tokens",
        "1000000000",
    ]);
    assert!(
        err.contains("--batch-tokens") && err.contains("available"),
        "{err}"
    );
}

/// A template whose render outgrows what the context can hold stops at that bound,
/// naming it, instead of rendering and tokenizing megabytes first (respond's records
/// fail alone: `reliability::a_record_whose_prompt_cannot_be_built_fails_alone_…`).
#[test]
fn a_template_that_renders_past_the_context_is_refused_quickly() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let model = tiny_model(dir);
    let tmpl = dir.join("t.jinja");
    std::fs::write(
        &tmpl,
        "{% for i in range(1000) %}{% for j in range(1000) %}{{ messages[0]['content'] }}{% endfor %}{% endfor %}",
    )
    .unwrap();
    std::fs::write(
        dir.join("in.jsonl"),
        format!(
            "{{\"id\":\"a\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}\n",
            "x".repeat(80)
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    // generate renders every prompt before its run starts, so the bad one refuses it.
    let err = refused(&[
        "generate",
        "--model",
        s(&model),
        "--chat-template",
        s(&tmpl),
        "--input",
        s(&dir.join("in.jsonl")),
        "--out",
        s(&dir.join("o.jsonl")),
    ]);
    assert!(
        err.contains("more than the model's context can hold"),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 20);
}

#[test]
fn stats_refuses_lines_that_are_not_records_naming_the_line() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("x.jsonl");
    let cases: [(&[u8], &str); 3] = [
        (
            b"{\"instruction\":\"a\"}\n[1,2]\n",
            "line 2: is not a record",
        ),
        (
            b"{\"instruction\":\"a\"}\n\"str\"\n",
            "line 2: is not a record",
        ),
        (
            b"{\"instruction\":\"a\"}\n\n{\"instruction\":\"\xff\"}\n",
            "line 3: is not UTF-8",
        ),
    ];
    for (body, want) in cases {
        std::fs::write(&f, body).unwrap();
        let err = refused(&["stats", s(&f)]);
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn small_flags_are_refused_or_named_not_silently_changed() {
    let (d, data, _) = dataset();
    let err = refused(&[
        "dedup",
        "--input",
        s(&data),
        "--out",
        s(&d.path().join("k.jsonl")),
        "--method",
        "minhash",
        "--ngram",
        "0",
    ]);
    assert!(err.contains("--ngram must be at least 1"), "{err}");
    // MinHash's settings with another method are refused, not ignored.
    let err = refused(&[
        "dedup",
        "--input",
        s(&data),
        "--out",
        s(&d.path().join("k.jsonl")),
        "--ngram",
        "3",
    ]);
    assert!(err.contains("--ngram is a MinHash setting"), "{err}");
    let err = refused(&["models", "pull", "no-such-model"]);
    assert!(
        err.contains("unknown model `no-such-model`") && !err.contains("network"),
        "{err}"
    );
    assert!(
        err.contains("models pull` takes the catalog's names"),
        "{err}"
    );
}

/// Every value in the report goes through one escaping path: a manifest's numbers that
/// are not numbers, ids, reasons and model names never become markup.
#[test]
fn report_escapes_manifest_values_it_did_not_write() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let data = dir.join("y.jsonl");
    std::fs::write(
        &data,
        "{\"id\":\"<img src=x onerror=alert(1)>\",\"instruction\":\"Name a colour.\",\"output\":\"Red.\",\"source\":\"self-instruct\"}\n",
    )
    .unwrap();
    let evil = "<script>alert(document.domain)</script>";
    let manifest = serde_json::json!({
        "tool": "teacher", "command": "self-instruct", "params": {}, "complete": true,
        "tokens": {"prompt": evil, "generated": 10},
        "profile": {"prefill_seconds": 1.0, "decode_seconds": 1.0, "mean_batch_occupancy": evil},
        "seconds": {evil: 1.0},
        "counts": {evil: 3},
    });
    std::fs::write(dir.join("y.jsonl.manifest.json"), manifest.to_string()).unwrap();
    let out = dir.join("r.html");
    let (ok, _, err) = run_teacher(&["report", s(&data), "--out", s(&out)]);
    assert!(ok, "{err}");
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(!page.contains("<script>"), "a manifest value became markup");
    assert!(!page.contains("<img"), "a record id became markup");
    assert!(page.contains("&lt;script&gt;alert(document.domain)&lt;/script&gt;"));
}
