//! Regression tests for the defects of the hostile review (issue 13), each named for the
//! behaviour it guards. Most run on `teacher models synth --shape tiny` (a 2-layer
//! random llama with a ChatML template: pipelines finish in a fraction of a second);
//! the kill tests in `kill_resume.rs` use the real default model.

use crate::common::{run_teacher, teacher_bin};
use std::path::{Path, PathBuf};

/// The tiny synthetic model, written once per test directory.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.gguf");
    if !p.exists() {
        let (ok, _, err) = run_teacher(&[
            "models",
            "synth",
            "--shape",
            "tiny",
            "--type",
            "f32",
            "--embd-type",
            "f32",
            "--out",
            p.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
    }
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A paper-style Self-Instruct run on the tiny model (it accepts nothing, so it stops
/// after `--stall-waves` waves).
fn si_args<'a>(model: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "self-instruct",
        "--model",
        model,
        "--style",
        "paper",
        "--num",
        "2",
        "--wave-size",
        "2",
        "--max-tokens",
        "8",
        "--stall-waves",
        "2",
        "--out",
        out,
    ]
}

/// The tiny model, and the output and manifest of a Self-Instruct run in `dir`.
fn si_paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        tiny_model(dir),
        dir.join("si.jsonl"),
        dir.join("si.jsonl.manifest.json"),
    )
}

fn run(args: &[&str]) -> (bool, String) {
    let (ok, _, err) = run_teacher(args);
    (ok, err)
}

#[test]
fn resume_with_a_different_context_tokenizer_or_template_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("si.jsonl");
    let base = si_args(s(&model), s(&out));
    let (ok, err) = run(&base);
    assert!(ok, "{err}");
    let before = std::fs::read(&out).unwrap();
    let mut ctx = base.clone();
    ctx.extend(["--context", "300"]);
    let (ok, err) = run(&ctx);
    assert!(!ok && err.contains("`context`"), "{err}");
    let tmpl = dir.path().join("t.jinja");
    std::fs::write(
        &tmpl,
        "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    )
    .unwrap();
    let mut t = base.clone();
    t.extend(["--chat-template", s(&tmpl)]);
    let (ok, err) = run(&t);
    assert!(!ok && err.contains("`text`"), "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "refusals leave the output alone"
    );
}

#[test]
fn resume_by_another_teacher_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (model, out, manifest) = si_paths(dir.path());
    let args = si_args(s(&model), s(&out));
    let (ok, err) = run(&args);
    assert!(ok, "{err}");
    // The same run, as an older teacher would have left it.
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(m["version"], env!("CARGO_PKG_VERSION"));
    m["version"] = "0.1.0".into();
    std::fs::write(&manifest, m.to_string()).unwrap();
    let before = std::fs::read(&out).unwrap();
    let (ok, err) = run(&args);
    assert!(
        !ok && err.contains("teacher 0.1.0") && err.contains(env!("CARGO_PKG_VERSION")),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "the output is untouched"
    );
    // Put back, it resumes (a finished run: nothing to do).
    m["version"] = env!("CARGO_PKG_VERSION").into();
    std::fs::write(&manifest, m.to_string()).unwrap();
    let (ok, err) = run(&args);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

#[test]
fn rejected_flag_never_empties_a_file_that_is_not_the_runs_own() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let important = dir.path().join("important.txt");
    let body: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    std::fs::write(&important, &body).unwrap();
    let out = dir.path().join("si.jsonl");
    // A fresh run.
    let mut a = si_args(s(&model), s(&out));
    a.extend(["--rejected", s(&important)]);
    let (ok, err) = run(&a);
    assert!(!ok && err.contains("important.txt"), "{err}");
    assert_eq!(std::fs::read_to_string(&important).unwrap(), body);
    assert!(!out.exists(), "nothing started");
    // A resume naming another file than the run's own.
    let own = dir.path().join("own.rej.jsonl");
    let mut a = si_args(s(&model), s(&out));
    a.extend(["--rejected", s(&own)]);
    let (ok, err) = run(&a);
    assert!(ok, "{err}");
    let mut b = si_args(s(&model), s(&out));
    b.extend(["--rejected", s(&important)]);
    let (ok, err) = run(&b);
    assert!(!ok && err.contains("not the rejected file"), "{err}");
    assert_eq!(std::fs::read_to_string(&important).unwrap(), body);
    // The output itself as --rejected.
    let mut c = si_args(s(&model), s(&out));
    c.extend(["--rejected", s(&out)]);
    let (ok, err) = run(&c);
    assert!(!ok && err.contains("--rejected"), "{err}");
}

#[test]
fn a_finished_stalled_run_is_a_no_op_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (model, out, manifest) = si_paths(dir.path());
    let args = si_args(s(&model), s(&out));
    let (ok, err) = run(&args);
    assert!(ok && err.contains("stopped after 2 waves"), "{err}");
    let waves = |m: &Path| -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(m).unwrap()).unwrap();
        v["waves_done"].as_u64().unwrap()
    };
    let (bytes, w) = (std::fs::read(&out).unwrap(), waves(&manifest));
    assert_eq!(w, 3, "the seed wave and two stalled waves");
    for _ in 0..2 {
        let (ok, err) = run(&args);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&out).unwrap(), bytes);
        assert_eq!(waves(&manifest), w);
    }
}

#[test]
fn prompts_longer_than_the_context_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("si.jsonl");
    let rej = dir.path().join("rej.jsonl");
    let mut a = si_args(s(&model), s(&out));
    a.extend(["--context", "32", "--rejected", s(&rej)]);
    let (ok, err) = run(&a);
    assert!(ok, "{err}");
    assert!(
        err.contains("longer than the context") && err.contains("raise --context"),
        "{err}"
    );
    let rejected = std::fs::read_to_string(&rej).unwrap();
    assert!(rejected.contains("\"prompt_too_long\""), "{rejected}");
    assert!(!rejected.contains("\"unparsable\""));
}

#[test]
fn evolve_takes_ids_ending_in_round_suffixes_and_children_get_new_ids() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"p7.r2\",\"instruction\":\"Name a color.\"}\n{\"id\":\"p7\",\"instruction\":\"Name a fruit.\"}\n",
    )
    .unwrap();
    let out = dir.path().join("ev.jsonl");
    let (ok, err) = run(&[
        "evolve",
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--rounds",
        "2",
        "--max-tokens",
        "4",
        "--response-max-tokens",
        "4",
        "--keep-originals",
        "--out",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let recs: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut ids: Vec<&str> = recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    // Originals keep their ids as roots.
    assert!(recs
        .iter()
        .any(|r| r["id"] == "p7.r2" && r["root_id"] == "p7.r2"));
    for r in &recs {
        assert_ne!(
            r.get("parent_id"),
            Some(&r["id"]),
            "a child never takes its parent's id"
        );
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "ids are unique");
    // Running it again resumes (rebuilding lineage from `root_id`) without a panic.
    let (ok, err) = run(&[
        "evolve",
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--rounds",
        "2",
        "--max-tokens",
        "4",
        "--response-max-tokens",
        "4",
        "--keep-originals",
        "--out",
        s(&out),
    ]);
    assert!(ok, "{err}");
}

#[test]
fn huge_batch_and_zero_sizes_are_refused_with_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"id\":\"a\",\"prompt\":\"hi\"}\n").unwrap();
    let out = dir.path().join("o.jsonl");
    for (flag, val, needle) in [
        ("--batch", "390937467654", "KV cache"),
        ("--batch", "0", "--batch and --context must be at least 1"),
        ("--context", "0", "--batch and --context must be at least 1"),
    ] {
        let (ok, err) = run(&[
            "generate",
            "--model",
            s(&model),
            "--input",
            s(&input),
            "--out",
            s(&out),
            flag,
            val,
        ]);
        assert!(!ok && err.contains(needle), "{flag} {val}: {err}");
    }
    let (ok, err) = run(&[
        "complete",
        "--model",
        s(&model),
        "--prompt",
        "hi",
        "--max-tokens",
        "0",
    ]);
    assert!(
        !ok && err.contains("--max-tokens must be at least 1"),
        "{err}"
    );
}

#[test]
fn input_with_a_byte_order_mark_is_read_as_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("bom.jsonl");
    std::fs::write(
        &input,
        "\u{feff}{\"id\":\"first\",\"instruction\":\"Say hi.\"}\n{\"id\":\"second\",\"instruction\":\"Say bye.\"}\n",
    )
    .unwrap();
    let out = dir.path().join("r.jsonl");
    let (ok, err) = run(&[
        "respond",
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--max-tokens",
        "4",
        "--out",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], "first");
    assert_eq!(first["instruction"], "Say hi.");
    // generate and dedup read the same file the same way.
    let g = dir.path().join("bom_prompts.jsonl");
    std::fs::write(&g, "\u{feff}{\"id\":\"x\",\"prompt\":\"hi\"}\n").unwrap();
    let (ok, err) = run(&[
        "generate",
        "--model",
        s(&model),
        "--input",
        s(&g),
        "--max-tokens",
        "2",
        "--out",
        s(&dir.path().join("g.jsonl")),
    ]);
    assert!(ok, "{err}");
    let (ok, err) = run(&[
        "dedup",
        "--input",
        s(&input),
        "--out",
        s(&dir.path().join("d.jsonl")),
    ]);
    assert!(ok, "{err}");
}

#[test]
fn non_utf8_and_empty_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("bad.jsonl");
    let mut bytes = b"{\"instruction\":\"ok\"}\n{\"instruction\":\"".to_vec();
    bytes.extend([0xff, 0xfe]);
    bytes.extend(b"\"}\n");
    std::fs::write(&input, bytes).unwrap();
    let out = dir.path().join("r.jsonl");
    let args = |i: &Path| {
        vec![
            "respond".to_string(),
            "--model".into(),
            s(&model).into(),
            "--input".into(),
            s(i).into(),
            "--out".into(),
            s(&out).into(),
        ]
    };
    let a = args(&input);
    let (ok, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !ok && err.contains("bad.jsonl") && err.contains("line 2") && err.contains("UTF-8"),
        "{err}"
    );
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let a = args(&empty);
    let (ok, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !ok && err.contains("empty.jsonl") && err.contains("no records"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_record_whose_prompt_cannot_be_built_fails_alone_with_its_line_and_id() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    // A template that refuses one record (the bound on rendered prompts is the other
    // way a prompt cannot be built; see `a_runaway_template_stops_at_the_bound`).
    let tmpl = dir.path().join("t.jinja");
    std::fs::write(
        &tmpl,
        "{% for m in messages %}{% if 'forbidden' in m['content'] %}{{ raise_exception('cannot render this one') }}{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n",
    )
    .unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"a\",\"instruction\":\"fine\"}\n{\"id\":\"b\",\"instruction\":\"forbidden\"}\n{\"id\":\"c\",\"instruction\":\"fine too\"}\n",
    )
    .unwrap();
    let out = dir.path().join("r.jsonl");
    let (ok, err) = run(&[
        "respond",
        "--model",
        s(&model),
        "--chat-template",
        s(&tmpl),
        "--input",
        s(&input),
        "--max-tokens",
        "2",
        "--out",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let recs: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[1]["finish_reason"], "error");
    let why = recs[1]["error"].as_str().unwrap();
    assert!(why.contains("line 2") && why.contains("`b`"), "{why}");
    assert_ne!(recs[0]["finish_reason"], "error");
    assert_ne!(recs[2]["finish_reason"], "error");
    // A record over what the model's context can hold (its context × its longest
    // token), with the model's own template.
    let big = dir.path().join("big.jsonl");
    std::fs::write(
        &big,
        format!(
            "{{\"id\":\"small\",\"instruction\":\"fine\"}}\n{{\"id\":\"huge\",\"instruction\":\"{}\"}}\n",
            "word ".repeat(17 << 18)
        ),
    )
    .unwrap();
    let out2 = dir.path().join("r2.jsonl");
    let (ok, err) = run(&[
        "respond",
        "--model",
        s(&model),
        "--input",
        s(&big),
        "--max-tokens",
        "2",
        "--out",
        s(&out2),
    ]);
    assert!(ok, "{err}");
    let recs: Vec<serde_json::Value> = std::fs::read_to_string(&out2)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs[1]["finish_reason"], "error");
    let why = recs[1]["error"].as_str().unwrap();
    assert!(
        why.contains("line 2") && why.contains("`huge`") && why.contains("grew past"),
        "{why}"
    );
}

/// A render stops at the bound it is given (the model's context × its longest token),
/// long before the 16 MiB bound every render has.
#[test]
fn a_runaway_template_stops_at_the_bound() {
    use teacher_models::{ChatTemplate, Message};
    let t = ChatTemplate::new(
        "{% for i in range(100000) %}{% for m in messages %}{{ m['content'] }}{% endfor %}{% endfor %}",
        "test",
    )
    .unwrap();
    let big = "x".repeat(1000);
    let err = t
        .render(&[Message::new("user", big.clone())], true, "", "", 1 << 16)
        .unwrap_err()
        .to_string();
    assert!(err.contains("grew past 65536 bytes"), "{err}");
    let err = t
        .render(&[Message::new("user", big)], true, "", "", usize::MAX)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("grew past {} bytes", 16 << 20)),
        "{err}"
    );
}

#[test]
fn output_paths_are_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"a\",\"prompt\":\"hi\",\"instruction\":\"hi\"}\n",
    )
    .unwrap();
    let sub = dir.path().join("adir");
    std::fs::create_dir(&sub).unwrap();
    // generate: the model does not even need to exist for the check to fire first.
    let (ok, err) = run(&[
        "generate",
        "--model",
        "/no/such/model.gguf",
        "--input",
        s(&input),
        "--out",
        s(&sub),
    ]);
    assert!(!ok && err.contains("is a directory"), "{err}");
    let (ok, err) = run(&["dedup", "--input", s(&input), "--out", s(&sub)]);
    assert!(!ok && err.contains("is a directory"), "{err}");
    let x = dir.path().join("x.jsonl");
    let (ok, err) = run(&[
        "dedup",
        "--input",
        s(&input),
        "--out",
        s(&x),
        "--dropped",
        s(&x),
    ]);
    assert!(!ok && err.contains("same file"), "{err}");
    // No hidden temporary files were left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .chain(std::fs::read_dir(&sub).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn offline_hint_for_hugging_face_models_names_a_command_that_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(teacher_bin())
        .args([
            "--offline",
            "models",
            "info",
            "hf:nobody/nothing/model.gguf",
        ])
        .env("HF_HOME", dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!err.contains("models pull"), "{err}");
    assert!(
        err.contains("--model hf:nobody/nothing/model.gguf"),
        "{err}"
    );
}

#[test]
fn model_downloads_take_wheels_only() {
    // A stand-in interpreter records the pip command teacher runs, then fails.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("args.txt");
    let py = dir.path().join("python");
    std::fs::write(
        &py,
        format!("#!/bin/sh\necho \"$@\" >> {}\nexit 1\n", log.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = std::process::Command::new(teacher_bin())
        .args(["models", "pull", "gemma3-270m"])
        .env("TEACHER_HOME", dir.path().join("home"))
        .env("TEACHER_PYTHON", &py)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(
        args.contains("download") && args.contains("--only-binary=:all:"),
        "{args}"
    );
}

#[test]
fn crafted_gguf_sizes_are_errors_not_crashes() {
    use teacher_models::gguf_write::{self, TensorSpec};
    let dir = tempfile::tempdir().unwrap();
    // A tensor whose byte size overflows (2^62 × 2^3 F32 elements).
    let p = dir.path().join("overflow.gguf");
    let md = vec![(
        "general.architecture".to_string(),
        candle_core::quantized::gguf_file::Value::String("llama".into()),
    )];
    gguf_write::write(&p, &md, &[TensorSpec::new("t", 0, &[1])], |_, b| {
        b.extend_from_slice(&[0u8; 4]);
        Ok(())
    })
    .unwrap();
    // Patch the one dimension (the u64 right after the name and n_dims) to 2^62.
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes
        .windows(9)
        .position(|w| w == b"\x01\x00\x00\x00\x00\x00\x00\x00t")
        .expect("tensor name")
        + 9
        + 4;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let (ok, _, err) = run_teacher(&["models", "info", s(&p)]);
    assert!(
        !ok && err.contains("`t`") && (err.contains("overflow") || err.contains("truncated")),
        "{err}"
    );
}

#[test]
fn a_cached_model_generates_inside_a_network_namespace_without_interfaces() {
    // `unshare -n`: a fresh network namespace, only a downed loopback — any attempt to
    // reach the network fails at once.
    let probe = std::process::Command::new("unshare")
        .args(["-n", "true"])
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        eprintln!("SKIPPED: `unshare -n` is not available here (needs root or user namespaces)");
        return;
    }
    crate::common::model_path(crate::common::SMOLLM2);
    let o = std::process::Command::new("unshare")
        .arg("-n")
        .arg(teacher_bin())
        .args([
            "complete",
            "--model",
            crate::common::SMOLLM2,
            "--chat",
            "--prompt",
            "What is 2 + 2?",
            "--max-tokens",
            "8",
        ])
        .env_remove("TEACHER_MODEL")
        .env_remove("TEACHER_OFFLINE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("generated"), "{err}");
}
