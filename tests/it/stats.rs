//! `teacher stats` on hand-made files (no model needed).

use crate::common::run_teacher;

#[test]
fn self_instruct_file_report() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("si.jsonl");
    let recs = [
        r#"{"id":"s1","instruction":"Write a poem about the sea.","input":"","output":"Waves...","source":"seed"}"#,
        r#"{"id":"s2","instruction":"Classify the review as positive or negative.","input":"Great!","output":"positive","source":"seed"}"#,
        r#"{"id":"si-1","instruction":"Write a poem about the mountains.","input":"","output":"Peaks rise high","source":"self-instruct"}"#,
        r#"{"id":"si-2","instruction":"Explain how rainbows form in simple words.","input":"","output":"Light bends in drops.","source":"self-instruct"}"#,
    ];
    std::fs::write(&f, recs.join("\n") + "\n").unwrap();
    std::fs::write(
        d.path().join("si.jsonl.manifest.json"),
        r#"{"command":"self-instruct","counts":{"near_duplicate":3,"too_short":1},"seconds":{"generation":10.0}}"#,
    )
    .unwrap();
    let (ok, out, err) = run_teacher(&["stats", f.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["by_source"]["seed"], 2);
    assert_eq!(v["acceptance"]["accepted"], 2);
    assert_eq!(v["acceptance"]["rejected"], 4);
    assert_eq!(v["leading_verbs"][0][0], "explain");
    // "Write a poem about the mountains." vs the seed "Write a poem about the sea.": 5/6 tokens.
    let hist = v["rouge_l_vs_seeds"].as_array().unwrap();
    assert_eq!(hist[8]["count"], 1);
    assert_eq!(v["instruction_words"]["max"], 7);
    let (ok, text, _) = run_teacher(&["stats", f.to_str().unwrap()]);
    assert!(ok && text.contains("highest ROUGE-L against the seeds"));
}

#[test]
fn evol_file_report() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("ev.jsonl");
    let r = d.path().join("rej.jsonl");
    std::fs::write(
        &f,
        [
            r#"{"id":"a.r1","instruction":"x y z","output":"one two","root_id":"a","parent_id":"a","round":1,"op":"deepening","source":"evol"}"#,
            r#"{"id":"a.r2","instruction":"x y z w","output":"one two three","root_id":"a","parent_id":"a.r1","round":2,"op":"breadth","source":"evol"}"#,
            r#"{"id":"b.r2","instruction":"p q","output":"r","root_id":"b","parent_id":"b","round":2,"op":"deepening","source":"evol"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    std::fs::write(
        &r,
        r#"{"parent_id":"b","round":1,"op":"deepening","reason":"struggled"}"#,
    )
    .unwrap();
    let (ok, out, err) = run_teacher(&[
        "stats",
        f.to_str().unwrap(),
        "--rejected",
        r.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["evol"]["by_round_and_op"].as_array().unwrap();
    let r1 = rows
        .iter()
        .find(|c| c["round"] == 1 && c["op"] == "deepening")
        .unwrap();
    assert_eq!(r1["evolved"], 1);
    assert_eq!(r1["eliminated"], 1);
    assert_eq!(r1["success_rate"], 0.5);
    assert_eq!(v["evol"]["roots_by_rounds_survived"]["2"], 1);
    assert_eq!(v["evol"]["roots_by_rounds_survived"]["1"], 1);
}
