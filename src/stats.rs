//! `teacher stats`: what a dataset made by teacher (or any instruction JSONL) contains.
//!
//! Self-Instruct output: counts by source, acceptance by filter reason (from the
//! manifest), length distributions, each machine instruction's highest ROUGE-L against
//! the seeds (the paper's Figure 3) and the most common leading verbs. Evol-Instruct
//! output: per round and operation the success rate and elimination reasons (with the
//! rejected file), length growth, and how many rounds each root survived.

use crate::error::{Error, Result};
use crate::filter::rouge_l::RougeIndex;
use crate::pipeline::run_file::manifest_path;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

fn read_jsonl(path: &Path) -> Result<Vec<Value>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| Error::Input {
            path: path.to_path_buf(),
            line: i + 1,
            what: format!("not valid JSON: {e}"),
        })?);
    }
    Ok(out)
}

fn words(v: &Value, k: &str) -> usize {
    v[k].as_str().map_or(0, |s| s.split_whitespace().count())
}

/// min, quartiles, max and mean of a list of lengths.
fn distribution(mut xs: Vec<usize>) -> Value {
    if xs.is_empty() {
        return json!(null);
    }
    xs.sort_unstable();
    let q = |p: f64| xs[((xs.len() - 1) as f64 * p).round() as usize];
    let mean = xs.iter().sum::<usize>() as f64 / xs.len() as f64;
    json!({"min": xs[0], "p25": q(0.25), "median": q(0.5), "p75": q(0.75), "max": xs[xs.len() - 1], "mean": (mean * 10.0).round() / 10.0})
}

fn leading_verbs(records: &[&Value], top: usize) -> Value {
    let mut c: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        if let Some(w) = r["instruction"]
            .as_str()
            .and_then(|s| s.split_whitespace().next())
        {
            let w: String = w
                .chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase();
            if !w.is_empty() {
                *c.entry(w).or_default() += 1;
            }
        }
    }
    let mut v: Vec<(String, usize)> = c.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(top);
    json!(v
        .into_iter()
        .map(|(w, n)| json!([w, n]))
        .collect::<Vec<_>>())
}

pub fn compute(path: &Path, rejected: Option<&Path>) -> Result<Value> {
    let records = read_jsonl(path)?;
    let manifest: Option<Value> = std::fs::read_to_string(manifest_path(path))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let rejected = match rejected {
        Some(p) => read_jsonl(p)?,
        None => Vec::new(),
    };
    let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *by_source
            .entry(r["source"].as_str().unwrap_or("unknown").to_string())
            .or_default() += 1;
    }
    let is_evol = by_source.contains_key("evol");
    let mut out = json!({
        "file": path,
        "records": records.len(),
        "by_source": by_source,
    });
    if let Some(m) = &manifest {
        out["command"] = m["command"].clone();
        out["rejections"] = m["counts"].clone();
        out["seconds"] = m["seconds"].clone();
        if !m["profile"].is_null() {
            out["profile"] = m["profile"].clone();
            out["tokens"] = m["tokens"].clone();
        }
    }
    if is_evol {
        out["evol"] = evol_stats(&records, &rejected);
    } else {
        let machine: Vec<&Value> = records.iter().filter(|r| r["source"] != "seed").collect();
        let seeds: Vec<&Value> = records.iter().filter(|r| r["source"] == "seed").collect();
        if let Some(counts) = manifest.as_ref().and_then(|m| m["counts"].as_object()) {
            let rejected: u64 = counts.values().filter_map(|v| v.as_u64()).sum();
            let accepted = machine.len() as u64;
            out["acceptance"] = json!({
                "accepted": accepted,
                "rejected": rejected,
                "rate": if accepted + rejected > 0 { accepted as f64 / (accepted + rejected) as f64 } else { 0.0 },
            });
        }
        out["instruction_words"] =
            distribution(machine.iter().map(|r| words(r, "instruction")).collect());
        out["input_words"] = distribution(machine.iter().map(|r| words(r, "input")).collect());
        out["output_words"] = distribution(machine.iter().map(|r| words(r, "output")).collect());
        out["with_input"] = json!(machine.iter().filter(|r| words(r, "input") > 0).count());
        out["leading_verbs"] = leading_verbs(&machine, 20);
        if by_source.contains_key("magpie") {
            out["magpie"] = magpie_stats(&machine);
        }
        if !seeds.is_empty() && !machine.is_empty() {
            let mut idx = RougeIndex::new();
            for (i, s) in seeds.iter().enumerate() {
                idx.insert(i as u64, s["instruction"].as_str().unwrap_or_default());
            }
            let mut hist = [0usize; 10];
            for r in &machine {
                let best = idx
                    .max_similarity(r["instruction"].as_str().unwrap_or_default())
                    .map_or(0.0, |m| m.score);
                hist[((best * 10.0) as usize).min(9)] += 1;
            }
            out["rouge_l_vs_seeds"] = json!(hist
                .iter()
                .enumerate()
                .map(|(i, n)| json!({"from": i as f64 / 10.0, "to": (i + 1) as f64 / 10.0, "count": n}))
                .collect::<Vec<_>>());
        }
    }
    Ok(out)
}

/// Magpie conversations: turns per conversation and words per user and assistant turn.
fn magpie_stats(records: &[&Value]) -> Value {
    let mut turns = Vec::new();
    let (mut user, mut assistant) = (Vec::new(), Vec::new());
    for r in records {
        let Some(ms) = r["messages"].as_array() else {
            continue;
        };
        turns.push(ms.iter().filter(|m| m["role"] == "user").count());
        for m in ms {
            let n = words(m, "content");
            match m["role"].as_str() {
                Some("user") => user.push(n),
                Some("assistant") => assistant.push(n),
                _ => {}
            }
        }
    }
    json!({
        "conversations": turns.len(),
        "user_turns": distribution(turns),
        "user_words": distribution(user),
        "assistant_words": distribution(assistant),
    })
}

fn evol_stats(records: &[Value], rejected: &[Value]) -> Value {
    let evolved: Vec<&Value> = records.iter().filter(|r| r["source"] == "evol").collect();
    // (round, op) → (successes, failures by reason)
    let mut cells: BTreeMap<(u64, String), (u64, BTreeMap<String, u64>)> = BTreeMap::new();
    for r in &evolved {
        let key = (
            r["round"].as_u64().unwrap_or(0),
            r["op"].as_str().unwrap_or("?").to_string(),
        );
        cells.entry(key).or_default().0 += 1;
    }
    for r in rejected {
        let key = (
            r["round"].as_u64().unwrap_or(0),
            r["op"].as_str().unwrap_or("?").to_string(),
        );
        *cells
            .entry(key)
            .or_default()
            .1
            .entry(r["reason"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let table: Vec<Value> = cells
        .iter()
        .map(|((round, op), (ok, fails))| {
            let failed: u64 = fails.values().sum();
            json!({
                "round": round, "op": op, "evolved": ok, "eliminated": failed,
                "success_rate": if ok + failed > 0 { *ok as f64 / (ok + failed) as f64 } else { 0.0 },
                "reasons": fails,
            })
        })
        .collect();
    let mut per_round: BTreeMap<u64, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for r in &evolved {
        let e = per_round
            .entry(r["round"].as_u64().unwrap_or(0))
            .or_default();
        e.0.push(words(r, "instruction"));
        e.1.push(words(r, "output"));
    }
    let growth: Vec<Value> = per_round
        .iter()
        .map(|(round, (i, o))| json!({"round": round, "instruction_words": distribution(i.clone()), "response_words": distribution(o.clone())}))
        .collect();
    let mut depth: BTreeMap<String, u64> = BTreeMap::new();
    for r in &evolved {
        *depth
            .entry(r["root_id"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let mut depth_hist: BTreeMap<u64, u64> = BTreeMap::new();
    for d in depth.values() {
        *depth_hist.entry(*d).or_default() += 1;
    }
    json!({"by_round_and_op": table, "length_growth": growth, "roots_by_rounds_survived": depth_hist})
}

/// A readable report of [`compute`]'s result.
pub fn render(v: &Value) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "file: {}\nrecords: {}  by source: {}\n",
        v["file"].as_str().unwrap_or(""),
        v["records"],
        v["by_source"]
    ));
    if let Some(a) = v.get("acceptance") {
        s.push_str(&format!(
            "acceptance: {} kept, {} rejected ({:.1}% kept)\n",
            a["accepted"],
            a["rejected"],
            a["rate"].as_f64().unwrap_or(0.0) * 100.0
        ));
    }
    if let Some(r) = v.get("rejections").and_then(|r| r.as_object()) {
        s.push_str("rejections by reason:\n");
        let mut rs: Vec<(&String, &Value)> = r.iter().collect();
        rs.sort_by_key(|r| std::cmp::Reverse(r.1.as_u64()));
        for (k, n) in rs {
            s.push_str(&format!("  {k:<22} {n}\n"));
        }
    }
    for k in ["instruction_words", "input_words", "output_words"] {
        if let Some(d) = v.get(k).filter(|d| !d.is_null()) {
            s.push_str(&format!(
                "{k:<18} min {} p25 {} median {} p75 {} max {} mean {}\n",
                d["min"], d["p25"], d["median"], d["p75"], d["max"], d["mean"]
            ));
        }
    }
    if let Some(h) = v.get("rouge_l_vs_seeds").and_then(|h| h.as_array()) {
        s.push_str("highest ROUGE-L against the seeds:\n");
        let max = h
            .iter()
            .filter_map(|b| b["count"].as_u64())
            .max()
            .unwrap_or(1)
            .max(1);
        for b in h {
            let n = b["count"].as_u64().unwrap_or(0);
            s.push_str(&format!(
                "  {:.1}-{:.1} {:>6} {}\n",
                b["from"].as_f64().unwrap_or(0.0),
                b["to"].as_f64().unwrap_or(0.0),
                n,
                "#".repeat((40 * n / max) as usize)
            ));
        }
    }
    if let Some(vs) = v.get("leading_verbs").and_then(|x| x.as_array()) {
        let list: Vec<String> = vs
            .iter()
            .map(|p| format!("{} {}", p[0].as_str().unwrap_or(""), p[1]))
            .collect();
        s.push_str(&format!("leading verbs: {}\n", list.join(", ")));
    }
    if let Some(e) = v.get("evol") {
        s.push_str("round op                   evolved eliminated success  reasons\n");
        for c in e["by_round_and_op"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "{:>5} {:<20} {:>7} {:>10} {:>6.1}%  {}\n",
                c["round"].as_u64().unwrap_or(0),
                c["op"].as_str().unwrap_or(""),
                c["evolved"].as_u64().unwrap_or(0),
                c["eliminated"].as_u64().unwrap_or(0),
                c["success_rate"].as_f64().unwrap_or(0.0) * 100.0,
                c["reasons"]
            ));
        }
        for g in e["length_growth"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "round {}: instruction words mean {}, response words mean {}\n",
                g["round"], g["instruction_words"]["mean"], g["response_words"]["mean"]
            ));
        }
        s.push_str(&format!(
            "roots by rounds survived: {}\n",
            e["roots_by_rounds_survived"]
        ));
    }
    if let Some(p) = v["profile"].as_object() {
        let f = |k: &str| p.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
        s.push_str(&format!(
            "engine time (last process): prefill {:.1} s, decode {:.1} s (attention {:.1} s, output layer {:.1} s inside them), sampling {:.1} s, text and stop checks {:.1} s; mean batch occupancy {:.0} %\n",
            f("prefill_seconds"),
            f("decode_seconds"),
            f("attention_seconds"),
            f("output_layer_seconds"),
            f("sampling_seconds"),
            f("text_and_stop_seconds"),
            100.0 * f("mean_batch_occupancy")
        ));
    }
    s
}
