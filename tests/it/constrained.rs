//! Constrained generation on the real model: every output matches its own constraint
//! (JSON schemas, regular expressions, OpenAI `response_format`), rows of one batch
//! carry different constraints, the bytes are the same at batch 1 and 16, and bad
//! constraints are named by line before the model loads.

use crate::common::{model_path, read, teacher_in as teacher, SMOLLM2};
use serde_json::{json, Value};

fn task_schema() -> Value {
    json!({"type": "object", "properties": {
        "instruction": {"type": "string", "minLength": 1, "maxLength": 160},
        "input": {"type": "string", "maxLength": 80},
        "output": {"type": "string", "maxLength": 240}},
        "required": ["instruction", "output"]})
}

#[test]
fn constrained_outputs_match_and_are_batch_invariant() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let topics = [
        "photosynthesis",
        "fractions",
        "the water cycle",
        "prime numbers",
        "volcanoes",
        "poetry",
    ];
    let mut lines = Vec::new();
    for (i, t) in topics.iter().enumerate() {
        let ask = format!(
            "Write one exercise about {t} as a JSON object with instruction, input and output."
        );
        lines.push(json!({"id": format!("s{i}"), "messages": [{"role": "user", "content": ask}], "json_schema": task_schema()}));
        lines.push(json!({"id": format!("r{i}"), "prompt": format!("Q: Is {t} a topic in school? A (yes or no, then a reason):"), "regex": " (yes|no), [a-z ]{3,60}\\."}));
        lines.push(json!({"id": format!("f{i}"), "messages": [{"role": "user", "content": format!("Rate {t} from 1 to 5.")}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "rating", "schema":
                {"type": "object", "properties": {"topic": {"type": "string", "maxLength": 40}, "score": {"enum": [1, 2, 3, 4, 5]}}, "required": ["topic", "score"]}}}}));
        lines.push(json!({"id": format!("u{i}"), "prompt": format!("A fact about {t}:"), "max_tokens": 16}));
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("in.jsonl"), text).unwrap();
    let args = |out: &'static str| {
        [
            "generate",
            "--input",
            "in.jsonl",
            "--out",
            out,
            "--max-tokens",
            "160",
            "--temperature",
            "0.9",
            "--seed",
            "2",
        ]
    };
    let (ok, err) = teacher(dir, &args("one.jsonl"), 1, 2);
    assert!(ok, "{err}");
    let (ok, err) = teacher(dir, &args("sixteen.jsonl"), 16, 1);
    assert!(ok, "{err}");
    let out = read(dir, "one.jsonl");
    assert_eq!(out, read(dir, "sixteen.jsonl"));

    let re = regex::Regex::new(r"^ (yes|no), [a-z ]{3,60}\.$").unwrap();
    for line in out.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let id = r["id"].as_str().unwrap();
        let text = r["text"].as_str().unwrap();
        let finished = r["finish_reason"] == "stop";
        match &id[..1] {
            "s" if finished => {
                let v: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("{id}: not JSON ({e}): {text}"));
                let o = v.as_object().unwrap();
                assert!(o
                    .keys()
                    .all(|k| ["instruction", "input", "output"].contains(&k.as_str())));
                assert!(!v["instruction"].as_str().unwrap().is_empty(), "{text}");
                assert!(v["output"].is_string(), "{text}");
                // Properties in the schema's order.
                assert!(
                    text.find("\"instruction\"") < text.find("\"output\""),
                    "{text}"
                );
            }
            "r" if finished => assert!(re.is_match(text), "{id}: {text:?}"),
            "f" if finished => {
                let v: Value = serde_json::from_str(text).unwrap();
                assert!((1..=5).contains(&v["score"].as_i64().unwrap()), "{text}");
                assert!(v["topic"].is_string());
            }
            _ => {}
        }
    }
    // Most constrained rows finish within the limit (the rest are checked as prefixes
    // by the masks; a finished one is a whole match).
    let finished = out
        .lines()
        .filter(|l| !l.contains("\"id\":\"u") && l.contains("\"finish_reason\":\"stop\""))
        .count();
    assert!(
        finished >= 12,
        "only {finished} of 18 constrained rows finished:\n{out}"
    );
}

#[test]
fn bad_constraints_are_named_by_line_before_loading() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let cases = [
        (json!({"prompt": "x", "regex": "("}), "cannot be compiled"),
        (
            json!({"prompt": "x", "json_schema": {"type": "object", "properties": {"a": {"$ref": "#"}}}}),
            "$ref",
        ),
        (
            json!({"prompt": "x", "regex": "a", "json_schema": {"type": "integer"}}),
            "give one constraint",
        ),
        (
            json!({"prompt": "x", "response_format": {"type": "json_object"}}),
            "json_object",
        ),
        (
            json!({"prompt": "x", "regex": 3}),
            "`regex` must be a string",
        ),
    ];
    for (line, want) in cases {
        let text = format!("{{\"prompt\": \"ok\"}}\n{line}\n");
        std::fs::write(dir.join("bad.jsonl"), text).unwrap();
        let (ok, err) = teacher(
            dir,
            &[
                "generate",
                "--model",
                "no-such-model",
                "--input",
                "bad.jsonl",
                "--out",
                "o.jsonl",
            ],
            1,
            1,
        );
        assert!(!ok);
        assert!(
            err.contains("bad.jsonl` line 2") && err.contains(want),
            "{want}: {err}"
        );
    }
}

#[test]
fn constrained_pipelines_are_versioned_and_deterministic() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let si = |out: &'static str| {
        [
            "self-instruct",
            "--constrained",
            "--num",
            "3",
            "--wave-size",
            "3",
            "--max-tokens",
            "200",
            "--answer-max-tokens",
            "48",
            "--seed",
            "4",
            "--out",
            out,
        ]
    };
    let (ok, err) = teacher(dir, &si("a.jsonl"), 1, 2);
    assert!(ok, "{err}");
    let (ok, err) = teacher(dir, &si("b.jsonl"), 3, 1);
    assert!(ok, "{err}");
    assert_eq!(read(dir, "a.jsonl"), read(dir, "b.jsonl"));
    let m: Value = serde_json::from_str(&read(dir, "a.jsonl.manifest.json")).unwrap();
    assert_eq!(m["params"]["constrained"], "c1");
    assert!(m["tokens"]["generated"].as_u64().unwrap() > 0);
    let tasks: Vec<Value> = read(dir, "a.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["source"] == "self-instruct")
        .collect();
    assert!(!tasks.is_empty());
    assert!(tasks
        .iter()
        .all(|t| t["prompt_version"] == "teacher-si-2+c1"));

    // evolve: the equality verdict can only be one of its two answers.
    let text = crate::common::shared_data("alpaca_cleaned_first4096.json");
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    let items: Vec<Value> = rows[..6]
        .iter()
        .map(|r| json!({"id": r["id"], "instruction": r["text"]}))
        .collect();
    std::fs::write(dir.join("ev.json"), serde_json::to_string(&items).unwrap()).unwrap();
    let (ok, err) = teacher(
        dir,
        &[
            "evolve",
            "--constrained",
            "--input",
            "ev.json",
            "--rounds",
            "1",
            "--max-tokens",
            "96",
            "--response-max-tokens",
            "96",
            "--out",
            "ev.jsonl",
        ],
        6,
        2,
    );
    assert!(ok, "{err}");
    let m: Value = serde_json::from_str(&read(dir, "ev.jsonl.manifest.json")).unwrap();
    assert_eq!(m["params"]["constrained"], "c1");
    assert!(m["counts"]["equality_unclear"].is_null(), "{}", m["counts"]);
    for line in read(dir, "ev.jsonl").lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["prompt_version"], "teacher-evol-1+c1");
        let inst = r["instruction"].as_str().unwrap();
        assert!(!inst.contains('#') && !inst.contains('\n'), "{inst}");
    }
}
