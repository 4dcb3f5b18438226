//! Differential tests against `rouge-score` 0.1.2 itself (PyPI): identical scores,
//! bit for bit, and identical keep/drop decisions on a stream of real instructions.

use crate::common::{python_with, run_teacher, shared_data};
use std::io::Write;
use teacher::filter::rouge_l::rouge_l;

fn reference(mode: &str, input: &str) -> Vec<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/rouge_reference.py");
    let mut cmd = python_with("rouge_score", "rouge-score==0.1.2");
    let mut child = cmd
        .arg(script)
        .arg(mode)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference script failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn alpaca() -> Vec<String> {
    let text = shared_data("alpaca_cleaned_first4096.json");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    rows.iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect()
}

/// xorshift64*: a fixed generator for the test's own random pairs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn pairs() -> Vec<(String, String)> {
    let mut rng = Rng(0x5eed);
    let words = [
        "the", "a", "cat", "dog", "write", "poem", "Story", "list", "3", "x1", "of", "and",
    ];
    let mut out = Vec::new();
    // Random texts over a small vocabulary: many overlaps, many exact ties.
    for _ in 0..2000 {
        let gen = |rng: &mut Rng| {
            let n = 1 + rng.below(24);
            (0..n)
                .map(|_| words[rng.below(words.len())])
                .collect::<Vec<_>>()
                .join(" ")
        };
        let a = gen(&mut rng);
        let b = gen(&mut rng);
        out.push((a, b));
    }
    // Constructed exact ties: (m, n, lcs) with 20·lcs = 7·(m+n), whose doubles fall
    // on, just above or just below 0.7.
    for &(m, n, l) in &[
        (10usize, 10usize, 7usize),
        (9, 11, 7),
        (23, 37, 21),
        (20, 20, 14),
        (17, 23, 14),
    ] {
        for _ in 0..20 {
            let vocab: Vec<String> = (0..(m + n))
                .map(|i| format!("w{}x{}", i, rng.below(1000)))
                .collect();
            let a: Vec<&str> = vocab[..m].iter().map(|s| s.as_str()).collect();
            let mut b: Vec<&str> = a[..l].to_vec();
            b.extend(vocab[m..m + (n - l)].iter().map(|s| s.as_str()));
            out.push((a.join(" "), b.join(" ")));
        }
    }
    // Adversarial: empty, no ASCII letters, case folding quirks, punctuation runs,
    // repeats, very long texts, numbers glued to words.
    let long_a = (0..700)
        .map(|i| ["alpha", "beta", "gamma"][i % 3])
        .collect::<Vec<_>>()
        .join(" ");
    let long_b = (0..650)
        .map(|i| ["beta", "gamma", "delta", "alpha"][i % 4])
        .collect::<Vec<_>>()
        .join(" ");
    let adversarial: Vec<(&str, &str)> = vec![
        ("", ""),
        ("", "something"),
        ("中文字符", "日本語のテキスト"),
        ("\u{212A}elvin scale", "kelvin scale"),
        ("\u{130}stanbul is big", "istanbul is big"),
        ("ÉCOLE naïve façade", "ecole naive facade"),
        ("a---b___c...d", "a b c d"),
        ("word word word word", "word"),
        ("x1y2z3 4u", "x1y2z3 4u"),
        ("Don't stop!!!", "dont stop"),
        ("🚀 rocket 🚀", "rocket"),
        ("ΣΊΣΥΦΟΣ", "σίσυφος"),
        (&long_a, &long_b),
    ];
    for (a, b) in adversarial {
        out.push((a.to_string(), b.to_string()));
    }
    // Real instructions: neighbours, random pairs, and edited copies near 0.7.
    let real = alpaca();
    for i in 0..1500 {
        out.push((real[i].clone(), real[i + 1].clone()));
        out.push((
            real[rng.below(real.len())].clone(),
            real[rng.below(real.len())].clone(),
        ));
        let mut w: Vec<&str> = real[i].split(' ').collect();
        if w.len() > 3 {
            let k = rng.below(w.len());
            w.remove(k);
            let k = rng.below(w.len());
            w[k] = "changed";
        }
        out.push((real[i].clone(), w.join(" ")));
    }
    out
}

#[test]
fn scores_equal_rouge_score_bit_for_bit() {
    let pairs = pairs();
    let input: String = pairs
        .iter()
        .map(|(a, b)| serde_json::json!({"a": a, "b": b}).to_string() + "\n")
        .collect();
    let expected = reference("pairs", &input);
    assert_eq!(expected.len(), pairs.len());
    let mut ties = 0;
    for ((a, b), e) in pairs.iter().zip(&expected) {
        let want: f64 = e["f"].as_str().unwrap().parse().unwrap();
        let got = rouge_l(a, b);
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{a:?} vs {b:?}: rouge-score {want}, teacher {got}"
        );
        if want == 0.7 {
            ties += 1;
        }
    }
    assert!(ties > 10, "the pairs include exact ties at 0.7 ({ties})");
}

fn stream_decisions_match(strict: bool, n: usize) {
    let texts = &alpaca()[..n];
    let input: String = texts
        .iter()
        .map(|t| serde_json::json!({"text": t}).to_string() + "\n")
        .collect();
    let expected = reference(if strict { "stream-strict" } else { "stream" }, &input);
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.jsonl");
    let jsonl: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"id": i, "instruction": t}).to_string() + "\n")
        .collect();
    std::fs::write(&inp, jsonl).unwrap();
    let out = dir.path().join("out.jsonl");
    let mut args = vec![
        "dedup",
        "--input",
        inp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if strict {
        args.push("--strict");
    }
    let (ok, _, err) = run_teacher(&args);
    assert!(ok, "{err}");
    let kept: Vec<i64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let want: Vec<i64> = expected
        .iter()
        .enumerate()
        .filter(|(_, e)| e["kept"].as_bool().unwrap())
        .map(|(i, _)| i as i64)
        .collect();
    assert_eq!(kept, want);
    assert!(want.len() < n, "the stream has real near-duplicates");
}

#[test]
fn stream_decisions_equal_reference_loop_paper_rule() {
    stream_decisions_match(false, 700);
}

#[test]
fn stream_decisions_equal_reference_loop_code_rule() {
    stream_decisions_match(true, 700);
}
