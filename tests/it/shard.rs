//! Sharded runs (`--shard I/N`) and `teacher merge` on the real default model: three
//! shards run at other batch sizes and thread counts merge to the single run's bytes
//! (generate, respond, evolve, with a killed shard resumed), a sharded Self-Instruct is
//! deterministic and has no near-duplicates across shards, and merge refuses every
//! inconsistent set of shards by name.

use crate::common::{model_path, read, teacher_in as teacher, SMOLLM2};
use std::path::Path;
use std::process::Command;

fn args(base: &[&str], extra: &[&str]) -> Vec<String> {
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn ok(dir: &Path, a: &[String], batch: usize, threads: usize) {
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let (ok, err) = teacher(dir, &a, batch, threads);
    assert!(ok, "teacher {a:?} failed:\n{err}");
}

/// `teacher merge ARGS` in `dir`: (success, stderr).
fn merge(dir: &Path, a: &[&str]) -> (bool, String) {
    let o = Command::new(crate::common::teacher_bin())
        .current_dir(dir)
        .arg("merge")
        .args(a)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text.lines().collect();
    v.sort();
    v
}

fn write_prompts(dir: &Path, n: usize) {
    let text: String = (0..n)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"id": format!("p{i}"), "prompt": format!("Write one sentence about the number {i}.")})
            )
        })
        .collect();
    std::fs::write(dir.join("in.jsonl"), text).unwrap();
}

fn write_instructions(dir: &Path, n: usize) {
    let text = crate::common::shared_data("alpaca_cleaned_first4096.json");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let items: Vec<serde_json::Value> = rows[..n]
        .iter()
        .map(|r| serde_json::json!({"id": r["id"], "instruction": r["text"]}))
        .collect();
    std::fs::write(dir.join("ev.json"), serde_json::to_string(&items).unwrap()).unwrap();
}

#[test]
fn generate_and_respond_shards_merge_to_the_single_run() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write_prompts(dir, 7);
    let gen = [
        "generate",
        "--input",
        "in.jsonl",
        "--max-tokens",
        "24",
        "--temperature",
        "0.8",
        "--seed",
        "9",
    ];
    ok(dir, &args(&gen, &["--out", "single.jsonl"]), 4, 2);
    for (i, (batch, threads)) in [(1, 1), (3, 2), (2, 1)].into_iter().enumerate() {
        let shard = format!("{i}/3");
        let out = format!("g{i}.jsonl");
        ok(
            dir,
            &args(&gen, &["--out", &out, "--shard", &shard]),
            batch,
            threads,
        );
    }
    // Shard 1 holds prompts 2..4 (a contiguous slice).
    let g1 = read(dir, "g1.jsonl");
    assert!(
        g1.starts_with("{") && g1.contains("\"p2\"") && g1.contains("\"p3\""),
        "{g1}"
    );
    let (merged, err) = merge(dir, &["g*.jsonl", "--out", "merged.jsonl"]);
    assert!(merged, "{err}");
    assert_eq!(read(dir, "merged.jsonl"), read(dir, "single.jsonl"));
    let m: serde_json::Value =
        serde_json::from_str(&read(dir, "merged.jsonl.manifest.json")).unwrap();
    assert_eq!(m["command"], "merge");
    assert_eq!(m["of"], "generate");
    assert_eq!(m["shards"].as_array().unwrap().len(), 3);
    assert_eq!(m["records"], 7);
    assert_eq!(m["complete"], true);
    assert!(m["params"]["shard"].is_null());

    // respond: the same, over instruction records.
    write_instructions(dir, 5);
    let resp = [
        "respond",
        "--input",
        "ev.json",
        "--max-tokens",
        "32",
        "--seed",
        "4",
    ];
    ok(dir, &args(&resp, &["--out", "r.jsonl"]), 5, 2);
    for i in 0..3 {
        let shard = format!("{i}/3");
        let out = format!("r{i}.jsonl");
        ok(
            dir,
            &args(&resp, &["--out", &out, "--shard", &shard]),
            1 + i,
            1,
        );
    }
    let (merged, err) = merge(
        dir,
        &["r2.jsonl", "r0.jsonl", "r1.jsonl", "--out", "rm.jsonl"],
    );
    assert!(merged, "{err}");
    assert_eq!(read(dir, "rm.jsonl"), read(dir, "r.jsonl"));
}

#[test]
fn evolve_shards_merge_to_the_single_run_with_near_duplicates_and_a_killed_shard() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write_instructions(dir, 9);
    // A low threshold makes the near-duplicate filter act, so the test covers it
    // (and chains that go on from a dropped evolution).
    let ev = [
        "evolve",
        "--input",
        "ev.json",
        "--rounds",
        "2",
        "--wave-size",
        "4",
        "--max-tokens",
        "96",
        "--response-max-tokens",
        "96",
        "--seed",
        "8",
        "--threshold",
        "0.15",
        "--keep-originals",
    ];
    ok(dir, &args(&ev, &["--out", "single.jsonl"]), 9, 2);
    let m: serde_json::Value =
        serde_json::from_str(&read(dir, "single.jsonl.manifest.json")).unwrap();
    let near = m["counts"]["near_duplicate"].as_u64().unwrap_or(0);
    assert!(near >= 1, "the run should drop a near-duplicate: {m}");
    // The rejected file is kept by default (a resume reads chains back from it).
    assert!(read(dir, "single.rejected.jsonl").contains("\"near_duplicate\""));

    for (i, (batch, threads)) in [(2, 1), (5, 2), (1, 1)].into_iter().enumerate() {
        let shard = format!("{i}/3");
        let out = format!("e{i}.jsonl");
        let a = args(&ev, &["--out", &out, "--shard", &shard]);
        if i == 2 {
            // Kill shard 2 in its second commit, then resume it.
            let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
            let o = Command::new(crate::common::teacher_bin())
                .current_dir(dir)
                .args(&a)
                .env("TEACHER_TEST_ABORT_IN_COMMIT", "2")
                .output()
                .unwrap();
            assert!(!o.status.success());
            let (done, err) = merge(
                dir,
                &["e0.jsonl", "e1.jsonl", "e2.jsonl", "--out", "x.jsonl"],
            );
            assert!(!done);
            assert!(err.contains("not complete"), "{err}");
        }
        ok(dir, &a, batch, threads);
    }
    // Shards leave the near-duplicate filter to merge.
    assert!(!read(dir, "e0.rejected.jsonl").contains("near_duplicate"));
    let (merged, err) = merge(
        dir,
        &[
            "e*.jsonl",
            "--out",
            "merged.jsonl",
            "--rejected",
            "merged.rej.jsonl",
        ],
    );
    assert!(merged, "{err}");
    assert_eq!(read(dir, "merged.jsonl"), read(dir, "single.jsonl"));
    assert_eq!(
        sorted_lines(&read(dir, "merged.rej.jsonl")),
        sorted_lines(&read(dir, "single.rejected.jsonl"))
    );
    let m: serde_json::Value =
        serde_json::from_str(&read(dir, "merged.jsonl.manifest.json")).unwrap();
    assert_eq!(m["counts"]["near_duplicate_across_shards"], near);
}

#[test]
fn self_instruct_shards_are_deterministic_and_free_of_near_duplicates() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let si = [
        "self-instruct",
        "--num",
        "4",
        "--wave-size",
        "3",
        "--max-tokens",
        "96",
        "--answer-max-tokens",
        "48",
        "--seed",
        "5",
    ];
    for (set, (batch, threads)) in [("a", (1, 2)), ("b", (4, 1))] {
        for i in 0..2 {
            let shard = format!("{i}/2");
            let out = format!("{set}{i}.jsonl");
            ok(
                dir,
                &args(&si, &["--out", &out, "--shard", &shard]),
                batch,
                threads,
            );
        }
        let pattern = format!("{set}?.jsonl");
        let out = format!("{set}.jsonl");
        let (merged, err) = merge(dir, &[&pattern, "--out", &out]);
        assert!(merged, "{err}");
    }
    // Each shard stops at its share of --num 4, whatever its wave made.
    for f in ["a0.jsonl", "a1.jsonl", "b0.jsonl", "b1.jsonl"] {
        let made = read(dir, f)
            .lines()
            .filter(|l| l.contains("\"source\":\"self-instruct\""))
            .count();
        assert!(made <= 2, "{f}: {made} tasks, over its share of 2");
    }
    // Shards draw differently (their own seeds) and the merge is a function of them.
    assert_ne!(read(dir, "a0.jsonl"), read(dir, "a1.jsonl"));
    let merged = read(dir, "a.jsonl");
    assert_eq!(merged, read(dir, "b.jsonl"));
    let recs: Vec<serde_json::Value> = merged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seeds = recs.iter().filter(|r| r["source"] == "seed").count();
    assert_eq!(seeds, 126, "the seeds once");
    let tasks: Vec<&serde_json::Value> = recs
        .iter()
        .filter(|r| r["source"] == "self-instruct")
        .collect();
    assert!(tasks.len() >= 2, "{}", tasks.len());
    let mut ids: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert!(
        ids.iter().any(|i| i.starts_with("si-s0-")) && ids.iter().any(|i| i.starts_with("si-s1-"))
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), tasks.len(), "ids are unique across shards");
    for (i, a) in tasks.iter().enumerate() {
        for b in &tasks[..i] {
            let s = teacher::filter::rouge_l::rouge_l(
                b["instruction"].as_str().unwrap(),
                a["instruction"].as_str().unwrap(),
            );
            assert!(s < 0.7, "{} ~ {}: {s}", a["instruction"], b["instruction"]);
        }
    }
}

#[test]
fn merge_refuses_inconsistent_shards_by_name() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write_prompts(dir, 4);
    let gen = [
        "generate",
        "--input",
        "in.jsonl",
        "--max-tokens",
        "8",
        "--wave-size",
        "1",
    ];
    for i in 0..3 {
        let shard = format!("{i}/3");
        let out = format!("g{i}.jsonl");
        ok(dir, &args(&gen, &["--out", &out, "--shard", &shard]), 2, 1);
    }
    ok(
        dir,
        &args(
            &gen,
            &["--out", "seed7.jsonl", "--shard", "1/3", "--seed", "7"],
        ),
        2,
        1,
    );
    ok(
        dir,
        &args(&gen, &["--out", "of2.jsonl", "--shard", "1/2"]),
        2,
        1,
    );

    let refuse = |a: &[&str], want: &[&str]| {
        let (done, err) = merge(dir, a);
        assert!(!done, "merge {a:?} should fail");
        for w in want {
            assert!(err.contains(w), "merge {a:?}: `{w}` not in:\n{err}");
        }
        assert!(
            !dir.join("m.jsonl").exists(),
            "a refused merge writes nothing"
        );
    };
    refuse(
        &["g0.jsonl", "g2.jsonl", "--out", "m.jsonl"],
        &["missing shard 1/3"],
    );
    for f in ["g1.jsonl", "g1.jsonl.manifest.json"] {
        std::fs::copy(dir.join(f), dir.join(f.replace("g1", "copy"))).unwrap();
    }
    refuse(
        &[
            "g0.jsonl",
            "g1.jsonl",
            "copy.jsonl",
            "g2.jsonl",
            "--out",
            "m.jsonl",
        ],
        &["both shard 1/3"],
    );
    refuse(
        &["g0.jsonl", "seed7.jsonl", "g2.jsonl", "--out", "m.jsonl"],
        &["seed7.jsonl", "not shards of the same run", "`seed`"],
    );
    // A shard made by another version of teacher (its manifest says so).
    std::fs::copy(dir.join("g1.jsonl"), dir.join("old.jsonl")).unwrap();
    let text = std::fs::read_to_string(dir.join("g1.jsonl.manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["version"] = "0.1.0".into();
    std::fs::write(dir.join("old.jsonl.manifest.json"), m.to_string()).unwrap();
    refuse(
        &["g0.jsonl", "old.jsonl", "g2.jsonl", "--out", "m.jsonl"],
        &["old.jsonl", "teacher 0.1.0", "one version"],
    );
    refuse(
        &["g0.jsonl", "g1.jsonl", "of2.jsonl", "--out", "m.jsonl"],
        &["of2.jsonl", "1/2"],
    );
    refuse(&["g*.jsonl", "--out", "g1.jsonl"], &["one of the shards"]);
    refuse(
        &["no-such-*.jsonl", "--out", "m.jsonl"],
        &["no shard output matches"],
    );
    refuse(&["in.jsonl", "--out", "m.jsonl"], &["in.jsonl", "manifest"]);

    // An incomplete shard (killed in its first commit).
    for (f, to) in [
        ("g2.jsonl", "g2.bak"),
        ("g2.jsonl.manifest.json", "g2.man.bak"),
    ] {
        std::fs::rename(dir.join(f), dir.join(to)).unwrap();
    }
    let o = Command::new(crate::common::teacher_bin())
        .current_dir(dir)
        .args(args(&gen, &["--out", "g2.jsonl", "--shard", "2/3"]))
        .env("TEACHER_TEST_ABORT_IN_COMMIT", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    refuse(
        &["g0.jsonl", "g1.jsonl", "g2.jsonl", "--out", "m.jsonl"],
        &["shard 2/3", "g2.jsonl", "not complete"],
    );
    std::fs::remove_file(dir.join("g2.jsonl")).unwrap();
    for (f, to) in [
        ("g2.bak", "g2.jsonl"),
        ("g2.man.bak", "g2.jsonl.manifest.json"),
    ] {
        std::fs::rename(dir.join(f), dir.join(to)).unwrap();
    }

    // A file that is not a merge output is never overwritten; an earlier merge is.
    let set = ["g0.jsonl", "g1.jsonl", "g2.jsonl", "--out", "m.jsonl"];
    std::fs::write(dir.join("m.jsonl"), "mine\n").unwrap();
    let (done, err) = merge(dir, &set);
    assert!(
        !done && err.contains("not the output of an earlier merge"),
        "{err}"
    );
    assert_eq!(read(dir, "m.jsonl"), "mine\n");
    std::fs::remove_file(dir.join("m.jsonl")).unwrap();
    for _ in 0..2 {
        let (done, err) = merge(dir, &set);
        assert!(done, "{err}");
    }
    assert_eq!(read(dir, "m.jsonl").lines().count(), 4);

    // A shard changed after its run.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("g0.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{}\n").unwrap();
    std::fs::remove_file(dir.join("m.jsonl")).unwrap();
    refuse(&set, &["shard 0/3", "changed after the run"]);
}

/// A shard edited in place to the same length (an id changed) is refused by its
/// committed sha256; `--rejected` never empties a file that is not an earlier merge's;
/// a path spelled through `..` or a link is still the shard it names.
#[test]
fn merge_refuses_a_shard_edited_in_place_and_protects_its_rejected_file() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write_prompts(dir, 4);
    std::fs::create_dir(dir.join("sub")).unwrap();
    let gen = ["generate", "--input", "in.jsonl", "--max-tokens", "4"];
    for i in 0..2 {
        let (shard, out) = (format!("{i}/2"), format!("g{i}.jsonl"));
        ok(dir, &args(&gen, &["--out", &out, "--shard", &shard]), 2, 1);
    }
    let set = ["g0.jsonl", "g1.jsonl", "--out", "m.jsonl"];
    std::fs::write(dir.join("important.txt"), "keep me\n").unwrap();
    let (done, err) = merge(dir, &[&set[..], &["--rejected", "important.txt"]].concat());
    assert!(
        !done && err.contains("--rejected `important.txt` already exists"),
        "{err}"
    );
    assert_eq!(read(dir, "important.txt"), "keep me\n");
    assert!(!dir.join("m.jsonl").exists());
    for rejected in ["sub/../g1.jsonl", "sub/../g0.jsonl.manifest.json"] {
        let (done, err) = merge(dir, &[&set[..], &["--rejected", rejected]].concat());
        assert!(
            !done && err.contains("one of the shards"),
            "{rejected}: {err}"
        );
    }
    std::os::unix::fs::symlink(dir.join("g0.jsonl"), dir.join("link.jsonl")).unwrap();
    let (done, err) = merge(dir, &["g0.jsonl", "g1.jsonl", "--out", "link.jsonl"]);
    assert!(!done && err.contains("one of the shards"), "{err}");
    // A merge's own rejected file may be written again by the same merge.
    for _ in 0..2 {
        let (done, err) = merge(
            dir,
            &[&set[..], &["--rejected", "m.rejected.jsonl"]].concat(),
        );
        assert!(done, "{err}");
    }
    let text = read(dir, "g1.jsonl");
    let first_id = serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).unwrap()
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let edited = text.replacen(
        &format!("\"{first_id}\""),
        &format!("\"{}\"", "X".repeat(first_id.len())),
        1,
    );
    assert_eq!(edited.len(), text.len());
    assert_ne!(edited, text);
    std::fs::write(dir.join("g1.jsonl"), edited).unwrap();
    std::fs::remove_file(dir.join("m.jsonl")).unwrap();
    let (done, err) = merge(dir, &set);
    assert!(
        !done && err.contains("shard 1/2") && err.contains("not the bytes its run committed"),
        "{err}"
    );
}
