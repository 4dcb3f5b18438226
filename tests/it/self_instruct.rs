//! Self-Instruct on the real default model: determinism across batch sizes and thread
//! counts, resume to the same bytes, refusal to mix runs, seed formats.

use crate::common::{model_path, read, teacher_in, SMOLLM2};
use std::path::Path;

fn si(dir: &Path, out: &str, extra: &[&str], batch: usize, threads: usize) -> (bool, String) {
    let mut args = vec![
        "self-instruct",
        "--out",
        out,
        "--wave-size",
        "3",
        "--max-tokens",
        "96",
        "--answer-max-tokens",
        "48",
        "--seed",
        "5",
    ];
    args.extend_from_slice(extra);
    teacher_in(dir, &args, batch, threads)
}

#[test]
fn output_is_identical_at_any_batch_and_thread_count_and_resumes_to_the_same_bytes() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (ok, err) = si(
        dir,
        "a.jsonl",
        &["--num", "4", "--rejected", "a.rej.jsonl"],
        1,
        2,
    );
    assert!(ok, "{err}");
    let (ok, err) = si(
        dir,
        "b.jsonl",
        &["--num", "4", "--rejected", "b.rej.jsonl"],
        8,
        1,
    );
    assert!(ok, "{err}");
    assert_eq!(read(dir, "a.jsonl"), read(dir, "b.jsonl"));
    assert_eq!(read(dir, "a.rej.jsonl"), read(dir, "b.rej.jsonl"));

    let a = read(dir, "a.jsonl");
    let recs: Vec<serde_json::Value> = a
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let machine: Vec<_> = recs
        .iter()
        .filter(|r| r["source"] == "self-instruct")
        .collect();
    assert!(machine.len() >= 4);
    assert_eq!(recs.iter().filter(|r| r["source"] == "seed").count(), 126);
    for r in &machine {
        for k in [
            "id",
            "instruction",
            "input",
            "output",
            "is_classification",
            "wave",
            "in_context_ids",
            "model",
            "prompt_version",
        ] {
            assert!(r.get(k).is_some(), "record lacks `{k}`: {r}");
        }
        assert!(!r["output"].as_str().unwrap().is_empty());
        assert_eq!(r["in_context_ids"].as_array().unwrap().len(), 3);
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&read(dir, "a.jsonl.manifest.json")).unwrap();
    assert_eq!(manifest["params"]["style"], "alpaca");
    assert!(manifest["seconds"]["generation"].as_f64().unwrap() > 0.0);

    // Resume: a run stopped early (fewer tasks), then continued, and a half-written
    // wave left at the end of the file, give the same bytes as the straight run.
    let (ok, err) = si(
        dir,
        "c.jsonl",
        &["--num", "1", "--rejected", "c.rej.jsonl"],
        4,
        2,
    );
    assert!(ok, "{err}");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("c.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"id\":\"si-99\",\"instruction\":\"half a wa").unwrap();
    let (ok, err) = si(
        dir,
        "c.jsonl",
        &["--num", "4", "--rejected", "c.rej.jsonl"],
        4,
        2,
    );
    assert!(ok, "{err}");
    assert_eq!(read(dir, "c.jsonl"), a);
    assert_eq!(read(dir, "c.rej.jsonl"), read(dir, "a.rej.jsonl"));

    // Different parameters on an existing output: refused, file untouched.
    let (ok, err) = si(dir, "a.jsonl", &["--num", "4", "--threshold", "0.5"], 4, 2);
    assert!(!ok);
    assert!(
        err.contains("refusing to mix runs") && err.contains("threshold"),
        "{err}"
    );
    assert_eq!(read(dir, "a.jsonl"), a);

    // Export shapes.
    let (ok, err) = si(
        dir,
        "a.jsonl",
        &[
            "--num",
            "4",
            "--rejected",
            "a.rej.jsonl",
            "--format",
            "sharegpt",
        ],
        4,
        2,
    );
    assert!(ok, "{err}");
    let sg = read(dir, "a.sharegpt.jsonl");
    let first: serde_json::Value = serde_json::from_str(sg.lines().next().unwrap()).unwrap();
    assert_eq!(first["conversations"][0]["from"], "human");
}

/// Alpaca-style waves stream: once a wave has committed, the next waves' requests
/// start while the one being committed still decodes, and waves started past the end
/// are cancelled. The files are byte for byte those of a run grown one wave at a time
/// (each resumed run below starts only the wave it commits, having no yield yet), in
/// fewer engine steps (counted without prefix reuse, whose prefill depends on what an
/// engine's slots hold from earlier waves).
#[test]
fn streamed_waves_write_what_one_wave_at_a_time_writes() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let target = 10;
    let steps = |out: &str| -> u64 {
        let m: serde_json::Value =
            serde_json::from_str(&read(dir, &format!("{out}.manifest.json"))).unwrap();
        m["profile"]["steps"].as_u64().unwrap()
    };
    let machine = |out: &str| -> usize {
        read(dir, out)
            .lines()
            .filter(|l| l.contains("\"source\":\"self-instruct\""))
            .count()
    };
    let num = target.to_string();
    let (ok, err) = si(
        dir,
        "s.jsonl",
        &[
            "--num",
            &num,
            "--rejected",
            "s.rej.jsonl",
            "--no-prefix-reuse",
        ],
        8,
        2,
    );
    assert!(ok, "{err}");
    let straight_steps = steps("s.jsonl");
    let mut stepwise_steps = 0;
    let mut runs = 0;
    while runs == 0 || machine("w.jsonl") < target {
        let num = (if runs == 0 { 0 } else { machine("w.jsonl") } + 1).to_string();
        let (ok, err) = si(
            dir,
            "w.jsonl",
            &[
                "--num",
                &num,
                "--rejected",
                "w.rej.jsonl",
                "--no-prefix-reuse",
            ],
            8,
            2,
        );
        assert!(ok, "{err}");
        stepwise_steps += steps("w.jsonl");
        runs += 1;
    }
    assert!(runs >= 3, "{runs} runs: too few waves to stream");
    assert_eq!(read(dir, "s.jsonl"), read(dir, "w.jsonl"));
    assert_eq!(read(dir, "s.rej.jsonl"), read(dir, "w.rej.jsonl"));
    assert!(
        straight_steps < stepwise_steps,
        "streamed {straight_steps} steps, one wave at a time {stepwise_steps}"
    );
}

#[test]
fn user_seed_files_in_every_format_work() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("alpaca.json"),
        r#"[{"instruction":"Name a fruit that is red.","input":"","output":"Strawberry."},
            {"instruction":"Add the two numbers.","input":"2 and 5","output":"7"},
            {"instruction":"Give a synonym for fast.","input":"","output":"Quick."}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("plain.txt"),
        "Write a haiku about the sea.\nList three colors.\nExplain what a verb is.\n",
    )
    .unwrap();
    let (ok, err) = si(
        dir,
        "x.jsonl",
        &["--num", "1", "--seeds", "alpaca.json"],
        4,
        2,
    );
    assert!(ok, "{err}");
    assert!(read(dir, "x.jsonl").contains("Strawberry."));
    // Plain instructions have no instances: the alpaca style needs examples with outputs.
    let (ok, err) = si(
        dir,
        "y.jsonl",
        &["--num", "1", "--seeds", "plain.txt", "--style", "alpaca"],
        4,
        2,
    );
    assert!(!ok || read(dir, "y.jsonl").contains("haiku"), "{err}");
    std::fs::write(
        dir.join("bad.jsonl"),
        "{\"instruction\":\"a\",\"instances\":[]}\n{nope\n",
    )
    .unwrap();
    let (ok, err) = si(
        dir,
        "z.jsonl",
        &["--num", "1", "--seeds", "bad.jsonl"],
        4,
        2,
    );
    assert!(!ok);
    assert!(err.contains("bad.jsonl` line 2"), "{err}");
}

#[test]
fn paper_style_runs_on_the_base_model_with_all_three_stages() {
    crate::common::model_path(crate::common::GEMMA3);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let args = [
        "--model",
        "gemma3-270m",
        "--style",
        "paper",
        "--num",
        "1",
        "--rejected",
        "p.rej.jsonl",
    ];
    let (ok, err) = si(dir, "p.jsonl", &args, 3, 2);
    assert!(ok, "{err}");
    let (ok, err) = si(
        dir,
        "q.jsonl",
        &["--model", "gemma3-270m", "--style", "paper", "--num", "1"],
        1,
        1,
    );
    assert!(ok, "{err}");
    assert_eq!(read(dir, "p.jsonl"), read(dir, "q.jsonl"));
    let manifest: serde_json::Value =
        serde_json::from_str(&read(dir, "p.jsonl.manifest.json")).unwrap();
    assert_eq!(manifest["params"]["style"], "paper");
    assert_eq!(manifest["params"]["temperature"], 0.7);
    // Every candidate is accounted for: kept, or rejected with a reason.
    for l in read(dir, "p.rej.jsonl").lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["reason"].is_string());
    }
    for l in read(dir, "p.jsonl")
        .lines()
        .filter(|l| l.contains("\"source\":\"self-instruct\""))
    {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["is_classification"].is_boolean());
        assert!(!v["instances"].as_array().unwrap().is_empty());
        assert_eq!(v["in_context_ids"].as_array().unwrap().len(), 8);
    }
}
