//! Evol-Instruct and respond on the real models: determinism, kill-and-resume to the
//! same bytes, lineage, base-model completion prompts, and the chain
//! self-instruct → evolve → respond on files.

use crate::common::{model_path, read, teacher_bin, teacher_in as teacher, GEMMA3, SMOLLM2};
use std::path::Path;
use std::process::Command;

fn write_input(dir: &Path) {
    let text = crate::common::shared_data("alpaca_cleaned_first4096.json");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let items: Vec<serde_json::Value> = rows[..6]
        .iter()
        .map(|r| serde_json::json!({"id": r["id"], "instruction": r["text"]}))
        .collect();
    std::fs::write(dir.join("in.json"), serde_json::to_string(&items).unwrap()).unwrap();
}

const EVOLVE: &[&str] = &[
    "evolve",
    "--input",
    "in.json",
    "--rounds",
    "2",
    "--wave-size",
    "2",
    "--max-tokens",
    "64",
    "--response-max-tokens",
    "64",
    "--keep-originals",
    "--seed",
    "6",
];

#[test]
fn evolve_is_deterministic_resumable_and_keeps_lineage() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write_input(dir);
    let with = |out: &str, rej: &str| -> Vec<String> {
        let mut v: Vec<String> = EVOLVE.iter().map(|s| s.to_string()).collect();
        v.extend(["--out".into(), out.into(), "--rejected".into(), rej.into()]);
        v
    };
    let args_a = with("a.jsonl", "a.rej.jsonl");
    let args_a: Vec<&str> = args_a.iter().map(|s| s.as_str()).collect();
    let (ok, err) = teacher(dir, &args_a, 1, 2);
    assert!(ok, "{err}");
    let args_b = with("b.jsonl", "b.rej.jsonl");
    let args_b: Vec<&str> = args_b.iter().map(|s| s.as_str()).collect();
    let (ok, err) = teacher(dir, &args_b, 6, 1);
    assert!(ok, "{err}");
    let a = read(dir, "a.jsonl");
    assert_eq!(a, read(dir, "b.jsonl"));
    assert_eq!(read(dir, "a.rej.jsonl"), read(dir, "b.rej.jsonl"));

    let recs: Vec<serde_json::Value> = a
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.iter().filter(|r| r["source"] == "original").count(), 6);
    let ids: std::collections::HashSet<&str> =
        recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for r in recs.iter().filter(|r| r["source"] == "evol") {
        assert!(
            ids.contains(r["parent_id"].as_str().unwrap()),
            "parent of {r} is in the file"
        );
        let round = r["round"].as_u64().unwrap();
        assert!((1..=2).contains(&round));
        assert!(r["id"]
            .as_str()
            .unwrap()
            .starts_with(r["root_id"].as_str().unwrap()));
        assert!(!r["output"].as_str().unwrap().is_empty());
        assert!(r["op"].is_string());
    }
    // Eliminated evolutions are written with a reason.
    for l in read(dir, "a.rej.jsonl").lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["reason"].is_string() && v["parent_id"].is_string());
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&read(dir, "a.jsonl.manifest.json")).unwrap();
    assert_eq!(
        manifest["waves_done"], 7,
        "1 wave of originals + 2 rounds of 3 waves"
    );

    // Kill a run after its second wave, run it again: the same bytes.
    let args_c = with("c.jsonl", "c.rej.jsonl");
    let mut child = Command::new(teacher_bin())
        .current_dir(dir)
        .args(&args_c)
        .args(["--batch", "4"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let manifest = dir.join("c.jsonl.manifest.json");
    let started = std::time::Instant::now();
    loop {
        let waves = std::fs::read_to_string(&manifest)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["waves_done"].as_u64())
            .unwrap_or(0);
        if waves >= 2 || started.elapsed().as_secs() > 300 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let args_c: Vec<&str> = args_c.iter().map(|s| s.as_str()).collect();
    let (ok, err) = teacher(dir, &args_c, 4, 2);
    assert!(ok, "{err}");
    assert_eq!(read(dir, "c.jsonl"), a);
    assert_eq!(read(dir, "c.rej.jsonl"), read(dir, "a.rej.jsonl"));

    // Evolving evolve's own output (ids ending in `.rN`) works, and every child gets an
    // id of its own (issue 13: this panicked, and children took their parent's id).
    assert!(
        recs.iter().any(|r| r["source"] == "evol"),
        "the first run kept evolutions"
    );
    let again = [
        "evolve",
        "--input",
        "a.jsonl",
        "--rounds",
        "1",
        "--max-tokens",
        "48",
        "--response-max-tokens",
        "48",
        "--wave-size",
        "8",
        "--out",
        "d.jsonl",
    ];
    let (ok, err) = teacher(dir, &again, 8, 2);
    assert!(ok, "{err}");
    let d = read(dir, "d.jsonl");
    for l in d.lines() {
        let r: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_ne!(r["id"], r["parent_id"], "{r}");
        assert!(ids.contains(r["root_id"].as_str().unwrap()), "{r}");
    }
    let (ok, err) = teacher(dir, &again, 8, 2);
    assert!(ok, "{err}");
    assert_eq!(
        read(dir, "d.jsonl"),
        d,
        "a finished run is a no-op when run again"
    );
}

#[test]
fn gemma3_evolves_and_responds_with_completion_prompts() {
    model_path(GEMMA3);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("in.txt"), "Give three tips for staying healthy.\nDescribe the water cycle.\nName two primary colors.\n").unwrap();
    let (ok, err) = teacher(
        dir,
        &[
            "evolve",
            "--model",
            GEMMA3,
            "--input",
            "in.txt",
            "--out",
            "e.jsonl",
            "--rounds",
            "1",
            "--max-tokens",
            "48",
            "--response-max-tokens",
            "48",
            "--rejected",
            "e.rej.jsonl",
        ],
        3,
        2,
    );
    assert!(ok, "{err}");
    let produced = read(dir, "e.jsonl").lines().count() + read(dir, "e.rej.jsonl").lines().count();
    assert_eq!(produced, 3, "every item is either evolved or eliminated");
    let (ok, err) = teacher(
        dir,
        &[
            "respond",
            "--model",
            GEMMA3,
            "--input",
            "in.txt",
            "--out",
            "r.jsonl",
            "--max-tokens",
            "24",
        ],
        3,
        2,
    );
    assert!(ok, "{err}");
    let recs: Vec<serde_json::Value> = read(dir, "r.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[1]["instruction"], "Describe the water cycle.");
    assert!(recs
        .iter()
        .all(|r| r["output"].is_string() && r["model"] == GEMMA3));
}

#[test]
fn self_instruct_evolve_respond_chain_on_files() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (ok, err) = teacher(
        dir,
        &[
            "self-instruct",
            "--num",
            "2",
            "--wave-size",
            "2",
            "--max-tokens",
            "80",
            "--answer-max-tokens",
            "40",
            "--out",
            "si.jsonl",
        ],
        4,
        2,
    );
    assert!(ok, "{err}");
    // Evolve only the machine-generated tasks.
    let machine: String = read(dir, "si.jsonl")
        .lines()
        .filter(|l| l.contains("\"source\":\"self-instruct\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("machine.jsonl"), machine).unwrap();
    let (ok, err) = teacher(
        dir,
        &[
            "evolve",
            "--input",
            "machine.jsonl",
            "--out",
            "ev.jsonl",
            "--rounds",
            "1",
            "--max-tokens",
            "64",
            "--response-max-tokens",
            "48",
            "--keep-originals",
        ],
        4,
        2,
    );
    assert!(ok, "{err}");
    let (ok, err) = teacher(
        dir,
        &[
            "respond",
            "--input",
            "ev.jsonl",
            "--out",
            "final.jsonl",
            "--max-tokens",
            "32",
        ],
        4,
        2,
    );
    assert!(ok, "{err}");
    let ev = read(dir, "ev.jsonl").lines().count();
    let fin: Vec<serde_json::Value> = read(dir, "final.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(fin.len(), ev);
    assert!(fin
        .iter()
        .all(|r| r["root_id"].is_string() && r["output"].is_string()));
}

#[test]
fn respond_keeps_records_and_answers_conversations() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("in.jsonl"),
        "{\"id\":\"q1\",\"instruction\":\"What is 2 + 2?\",\"input\":\"\",\"extra\":7}\n{\"id\":\"q2\",\"messages\":[{\"role\":\"user\",\"content\":\"Name a color.\"}]}\n",
    )
    .unwrap();
    let (ok, err) = teacher(
        dir,
        &[
            "respond",
            "--input",
            "in.jsonl",
            "--out",
            "out.jsonl",
            "--max-tokens",
            "24",
            "--system",
            "Answer briefly.",
        ],
        2,
        2,
    );
    assert!(ok, "{err}");
    let recs: Vec<serde_json::Value> = read(dir, "out.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs[0]["id"], "q1");
    assert_eq!(recs[0]["extra"], 7);
    assert!(
        recs[0]["output"].as_str().unwrap().contains('4'),
        "{}",
        recs[0]
    );
    assert_eq!(recs[1]["id"], "q2");
    assert_eq!(recs[0]["sampling"]["max_tokens"], 24);
}
