//! `teacher judge` on the real default model: scores on every record shape, determinism
//! across batch sizes and thread counts, resume after a kill, the minimum filters and
//! their reasons, strict parsing when unconstrained, `generate` output with its
//! prompts, and `--judge` on a pipeline giving the bytes of a separate judge run.

use crate::common::{model_path, read, teacher_in as teacher, SMOLLM2};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn records(dir: &Path, name: &str) -> Vec<Value> {
    read(dir, name)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ok(dir: &Path, args: &[&str], batch: usize, threads: usize) {
    let (ok, err) = teacher(dir, args, batch, threads);
    assert!(ok, "teacher {args:?}:\n{err}");
}

/// Eight labelled pairs, an instruction without a response and a conversation.
fn write_input(dir: &Path) -> usize {
    let labelled = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/judge_labelled.jsonl"),
    )
    .unwrap();
    let mut text: String = labelled.lines().take(8).map(|l| format!("{l}\n")).collect();
    text.push_str("{\"id\":\"only-instruction\",\"instruction\":\"Name a prime number.\"}\n");
    text.push_str(r#"{"id":"chat","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello! How can I help?"},{"role":"user","content":"What is 2+2?"},{"role":"assistant","content":"4"}]}"#);
    text.push('\n');
    std::fs::write(dir.join("in.jsonl"), text).unwrap();
    10
}

fn judge_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "judge",
        "--input",
        "in.jsonl",
        "--out",
        out,
        "--wave-size",
        "3",
        "--max-tokens",
        "96",
    ];
    a.extend_from_slice(extra);
    a
}

fn tallies(dir: &Path, out: &str) -> Value {
    let m: Value = serde_json::from_str(&read(dir, &format!("{out}.manifest.json"))).unwrap();
    assert_eq!(m["complete"], true);
    m["judge"].clone()
}

#[test]
fn judge_scores_every_record_deterministically_and_resumes() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let n = write_input(dir);
    ok(dir, &judge_args("a.jsonl", &[]), 1, 2);
    // Killed in its second commit, then resumed at another batch size and thread count.
    let o = Command::new(crate::common::teacher_bin())
        .current_dir(dir)
        .args(judge_args("b.jsonl", &[]))
        .env("TEACHER_TEST_ABORT_IN_COMMIT", "1")
        .env_remove("TEACHER_MODEL")
        .output()
        .unwrap();
    assert!(!o.status.success());
    ok(dir, &judge_args("b.jsonl", &[]), 7, 1);
    assert_eq!(read(dir, "a.jsonl"), read(dir, "b.jsonl"));

    let recs = records(dir, "a.jsonl");
    assert_eq!(recs.len(), n);
    let input: Vec<Value> = read(dir, "in.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (r, i) in recs.iter().zip(&input) {
        // The record is kept as it was, plus `scores`.
        let mut without = r.clone();
        without.as_object_mut().unwrap().remove("scores");
        assert_eq!(&without, i);
        let s = &r["scores"];
        assert_eq!(s["judge_model"], "smollm2-135m-instruct");
        assert_eq!(s["judge_prompt_version"], "judge-1");
        for k in ["quality", "complexity"] {
            match s[k].as_u64() {
                Some(x) => {
                    assert!((1..=10).contains(&x), "{r}");
                    assert!(s[format!("{k}_rationale")].is_string(), "{r}");
                    // The probability-weighted score of a constrained answer.
                    let e = s[format!("{k}_expected")].as_f64().unwrap();
                    assert!((1.0..=10.0).contains(&e), "{r}");
                }
                None => assert!(s[format!("{k}_unscored")].is_string(), "{r}"),
            }
        }
    }
    let only = recs.iter().find(|r| r["id"] == "only-instruction").unwrap();
    assert_eq!(only["scores"]["quality"], Value::Null);
    assert_eq!(only["scores"]["quality_unscored"], "no_response");
    let t = tallies(dir, "a.jsonl");
    for k in ["quality", "complexity"] {
        let sum: u64 = t
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| name.starts_with(k))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum();
        assert_eq!(sum, n as u64, "{t}");
        let scored = recs.iter().filter(|r| r["scores"][k].is_u64()).count() as u64;
        assert_eq!(
            t[format!("{k}_scored")].as_u64().unwrap_or(0),
            scored,
            "{t}"
        );
    }
    assert_eq!(t["quality_no_response"], 1);

    // Unconstrained, the judge writes what it likes and the parser counts what it
    // cannot read.
    ok(dir, &judge_args("u.jsonl", &["--unconstrained"]), 4, 2);
    let u = records(dir, "u.jsonl");
    let t = tallies(dir, "u.jsonl");
    for k in ["quality", "complexity"] {
        let unparsable = u
            .iter()
            .filter(|r| r["scores"][format!("{k}_unscored")] == "unparsable")
            .count() as u64;
        assert_eq!(
            t[format!("{k}_unparsable")].as_u64().unwrap_or(0),
            unparsable,
            "{t}"
        );
    }

    // The minimums keep or reject each record by the same scores, with the reason.
    ok(
        dir,
        &judge_args("f.jsonl", &["--min-quality", "6", "--min-complexity", "3"]),
        3,
        2,
    );
    let kept = records(dir, "f.jsonl");
    let rejected = records(dir, "f.rejected.jsonl");
    assert_eq!(kept.len() + rejected.len(), n);
    let scores_of = |id: &Value| {
        recs.iter()
            .find(|r| &r["id"] == id)
            .map(|r| r["scores"].clone())
            .unwrap()
    };
    for r in &kept {
        assert_eq!(r["scores"], scores_of(&r["id"]));
        assert!(r["scores"]["quality"].as_u64().unwrap() >= 6, "{r}");
        assert!(r["scores"]["complexity"].as_u64().unwrap() >= 3, "{r}");
    }
    let mut reasons = std::collections::BTreeMap::<String, u64>::new();
    for r in &rejected {
        let mut s = r["scores"].clone();
        assert_eq!(s, scores_of(&r["id"]));
        let reason = r["reason"].as_str().unwrap();
        *reasons.entry(reason.to_string()).or_default() += 1;
        let q = s["quality"].take().as_u64();
        let c = s["complexity"].take().as_u64();
        let expected = match (q, c) {
            (None, _) => "unscored_quality",
            (Some(q), _) if q < 6 => "low_quality",
            (_, None) => "unscored_complexity",
            _ => "low_complexity",
        };
        assert_eq!(reason, expected, "{r}");
    }
    let m: Value = serde_json::from_str(&read(dir, "f.jsonl.manifest.json")).unwrap();
    assert_eq!(m["counts"], serde_json::to_value(&reasons).unwrap());

    // Two shards at other batch sizes merge to the single run's bytes, rejections too.
    for (i, batch) in [(0, 2), (1, 5)] {
        let shard = format!("{i}/2");
        let out = format!("s{i}.jsonl");
        ok(
            dir,
            &judge_args(
                &out,
                &[
                    "--min-quality",
                    "6",
                    "--min-complexity",
                    "3",
                    "--shard",
                    &shard,
                ],
            ),
            batch,
            1,
        );
    }
    let o = Command::new(crate::common::teacher_bin())
        .current_dir(dir)
        .args([
            "merge",
            "s1.jsonl",
            "s0.jsonl",
            "--out",
            "m.jsonl",
            "--rejected",
            "m.rejected.jsonl",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read(dir, "m.jsonl"), read(dir, "f.jsonl"));
    assert_eq!(read(dir, "m.rejected.jsonl"), read(dir, "f.rejected.jsonl"));
    let mm: Value = serde_json::from_str(&read(dir, "m.jsonl.manifest.json")).unwrap();
    assert_eq!(mm["judge"], m["judge"]);
}

#[test]
fn generate_output_is_judged_with_its_prompts_and_pipelines_judge_when_asked() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("prompts.jsonl"),
        "{\"id\":1,\"prompt\":\"The capital of France is\"}\n{\"id\":2,\"messages\":[{\"role\":\"user\",\"content\":\"Name a fruit.\"}]}\n",
    )
    .unwrap();
    ok(
        dir,
        &[
            "generate",
            "--input",
            "prompts.jsonl",
            "--out",
            "gen.jsonl",
            "--max-tokens",
            "8",
        ],
        2,
        2,
    );
    // stats knows generate counts finish reasons, not rejections.
    let o = Command::new(crate::common::teacher_bin())
        .current_dir(dir)
        .args(["stats", "gen.jsonl", "--json"])
        .output()
        .unwrap();
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        st["finish_reasons"].is_object() && st.get("rejections").is_none(),
        "{st}"
    );
    let (fine, err) = teacher(
        dir,
        &["judge", "--input", "gen.jsonl", "--out", "j.jsonl"],
        2,
        2,
    );
    assert!(!fine);
    assert!(err.contains("--prompts"), "{err}");
    assert!(!dir.join("j.jsonl").exists());
    ok(
        dir,
        &[
            "judge",
            "--input",
            "gen.jsonl",
            "--prompts",
            "prompts.jsonl",
            "--out",
            "j.jsonl",
            "--max-tokens",
            "96",
        ],
        2,
        2,
    );
    let j = records(dir, "j.jsonl");
    assert_eq!(j.len(), 2);
    assert!(j.iter().all(|r| r["scores"]["judge_model"].is_string()));

    // `respond --judge` judges its output when it finishes, on the same engine: the
    // bytes of a separate `teacher judge` over that output with the same settings.
    std::fs::write(
        dir.join("tasks.txt"),
        "Name a color.\nWhat is 3 times 4?\nWrite a short greeting.\n",
    )
    .unwrap();
    ok(
        dir,
        &[
            "respond",
            "--input",
            "tasks.txt",
            "--out",
            "r.jsonl",
            "--max-tokens",
            "24",
            "--judge",
            "--min-quality",
            "2",
        ],
        2,
        2,
    );
    ok(
        dir,
        &[
            "judge",
            "--input",
            "r.jsonl",
            "--out",
            "r2.jsonl",
            "--min-quality",
            "2",
        ],
        5,
        1,
    );
    assert_eq!(read(dir, "r.judged.jsonl"), read(dir, "r2.jsonl"));
    assert_eq!(
        read(dir, "r.judged.rejected.jsonl"),
        read(dir, "r2.rejected.jsonl")
    );
    assert_eq!(
        records(dir, "r.judged.jsonl").len() + records(dir, "r.judged.rejected.jsonl").len(),
        3
    );
}
