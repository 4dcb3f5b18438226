//! `teacher dedup` as a user runs it: formats, methods, reports and bad input.

use crate::common::run_teacher;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const RECORDS: &str = r#"{"id":"a","instruction":"Give three tips for staying healthy.","output":"..."}
{"id":"b","instruction":"What are the three primary colors?"}
{"id":"c","instruction":"Give three tips for staying  healthy!"}
{"id":"d","instruction":"Describe the structure of an atom."}
{"id":"e","instruction":"give three tips for staying healthy and happy."}
"#;

#[test]
fn rouge_l_keeps_first_of_each_group_and_reports_drops() {
    let dir = tempfile::tempdir().unwrap();
    let inp = write(dir.path(), "in.jsonl", RECORDS);
    let out = dir.path().join("out.jsonl");
    let dropped = dir.path().join("dropped.jsonl");
    let (ok, _, err) = run_teacher(&[
        "dedup",
        "--input",
        &inp,
        "--out",
        out.to_str().unwrap(),
        "--dropped",
        dropped.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // Kept lines are the input lines, byte for byte.
    let kept = std::fs::read_to_string(&out).unwrap();
    let input_lines: Vec<&str> = RECORDS.lines().collect();
    assert_eq!(
        kept,
        format!(
            "{}\n{}\n{}\n",
            input_lines[0], input_lines[1], input_lines[3]
        )
    );
    let d = lines(&dropped);
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["line"], 3);
    assert_eq!(d[0]["duplicate_of"]["id"], "a");
    assert_eq!(d[0]["score"], 1.0);
    assert_eq!(d[1]["record"]["id"], "e");
    assert!(d[1]["score"].as_f64().unwrap() >= 0.7);
    assert!(err.contains("read 5, kept 3, dropped 2"), "{err}");
}

#[test]
fn json_array_input_and_nested_field() {
    let dir = tempfile::tempdir().unwrap();
    let arr = r#"[
      {"conversations":[{"from":"human","value":"Write a haiku about autumn leaves."},{"from":"gpt","value":"..."}]},
      {"conversations":[{"from":"human","value":"Write a haiku about autumn leaves"},{"from":"gpt","value":"!"}]},
      {"conversations":[{"from":"human","value":"Summarize the plot of Hamlet."},{"from":"gpt","value":"?"}]}
    ]"#;
    let inp = write(dir.path(), "in.json", arr);
    let out = dir.path().join("out.jsonl");
    let (ok, _, err) = run_teacher(&[
        "dedup",
        "--input",
        &inp,
        "--out",
        out.to_str().unwrap(),
        "--field",
        "conversations.0.value",
    ]);
    assert!(ok, "{err}");
    let kept = lines(&out);
    assert_eq!(kept.len(), 2);
    assert_eq!(
        kept[1]["conversations"][0]["value"],
        "Summarize the plot of Hamlet."
    );
}

#[test]
fn exact_and_minhash_methods() {
    let dir = tempfile::tempdir().unwrap();
    let inp = write(dir.path(), "in.jsonl", RECORDS);
    let out = dir.path().join("out.jsonl");
    let (ok, _, err) = run_teacher(&[
        "dedup",
        "--input",
        &inp,
        "--out",
        out.to_str().unwrap(),
        "--method",
        "exact",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        lines(&out).len(),
        4,
        "only c is an exact duplicate after normalisation"
    );
    let (ok, _, err) = run_teacher(&[
        "dedup",
        "--input",
        &inp,
        "--out",
        out.to_str().unwrap(),
        "--method",
        "minhash",
    ]);
    assert!(ok, "{err}");
    let ids: Vec<String> = lines(&out)
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a", "b", "d", "e"]);
    assert!(err.contains("bands"), "{err}");
}

#[test]
fn multiple_fields_are_compared_together() {
    let dir = tempfile::tempdir().unwrap();
    let recs = r#"{"instruction":"Translate to French.","input":"Good morning, my friend."}
{"instruction":"Translate to French.","input":"Where is the train station?"}
"#;
    let inp = write(dir.path(), "in.jsonl", recs);
    let out = dir.path().join("out.jsonl");
    let (ok, _, _) = run_teacher(&["dedup", "--input", &inp, "--out", out.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(lines(&out).len(), 1);
    let (ok, _, _) = run_teacher(&[
        "dedup",
        "--input",
        &inp,
        "--out",
        out.to_str().unwrap(),
        "--fields",
        "instruction,input",
    ]);
    assert!(ok);
    assert_eq!(lines(&out).len(), 2);
}

#[test]
fn bad_records_name_the_line_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    for (body, needle) in [
        (
            "{\"instruction\":\"ok\"}\nnot json\n",
            "line 2: not valid JSON",
        ),
        (
            "{\"instruction\":\"ok\"}\n{\"text\":\"x\"}\n",
            "line 2: has no field `instruction`",
        ),
        (
            "{\"instruction\":\"ok\"}\n{\"instruction\":5}\n",
            "line 2: field `instruction` is a number",
        ),
        ("[1, 2]\n", "line 1: a record must be a JSON object"),
    ] {
        let inp = write(dir.path(), "bad.jsonl", body);
        let (ok, _, err) = run_teacher(&["dedup", "--input", &inp, "--out", out.to_str().unwrap()]);
        assert!(!ok);
        assert!(err.contains(needle), "{err}");
        assert!(!out.exists(), "no output file after an error");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
    // Invalid UTF-8.
    let p = dir.path().join("latin1.jsonl");
    std::fs::write(
        &p,
        b"{\"instruction\":\"ok\"}\n{\"instruction\":\"caf\xe9\"}\n",
    )
    .unwrap();
    let (ok, _, err) = run_teacher(&[
        "dedup",
        "--input",
        p.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("line 2") && err.contains("UTF-8"), "{err}");
}

#[test]
fn skip_invalid_counts_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let inp = write(dir.path(), "in.jsonl", "{\"instruction\":\"Name a fruit.\"}\nnot json\n{\"x\":1}\n{\"instruction\":\"Name a color.\"}\n");
    let out = dir.path().join("out.jsonl");
    let (ok, _, err) = run_teacher(&[
        "dedup",
        "--input",
        &inp,
        "--out",
        out.to_str().unwrap(),
        "--skip-invalid",
        "--json",
    ]);
    assert!(ok, "{err}");
    assert_eq!(lines(&out).len(), 2);
    assert!(err.contains("invalid 2"), "{err}");
    assert_eq!(err.matches("warning:").count(), 2);
}

#[test]
fn empty_input_gives_empty_output_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let inp = write(dir.path(), "empty.jsonl", "");
    let out = dir.path().join("out.jsonl");
    let (ok, _, err) = run_teacher(&["dedup", "--input", &inp, "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    assert!(err.contains("is empty"), "{err}");
}

#[test]
fn decisions_do_not_depend_on_thread_count() {
    // Enough records to span several parallel chunks, with duplicates across chunks.
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for i in 0..6000 {
        let topic = ["rivers", "mountains", "cities", "birds", "stars", "songs"][i % 6];
        body += &format!(
            "{{\"instruction\":\"Write {} facts about {} number {}.\"}}\n",
            ["three", "four"][i % 2],
            topic,
            i % 1500
        );
    }
    let inp = write(dir.path(), "in.jsonl", &body);
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("out{threads}.jsonl"));
        let o = std::process::Command::new(crate::common::teacher_bin())
            .args(["dedup", "--input", &inp, "--out", out.to_str().unwrap()])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success());
        outputs.push(std::fs::read(&out).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert!(outputs[0].len() < body.len());
}
