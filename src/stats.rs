//! `teacher stats`: what a dataset made by teacher (or any instruction JSONL) contains.
//!
//! Self-Instruct output: counts by source, acceptance by filter reason (from the
//! manifest), length distributions, each machine instruction's highest ROUGE-L against
//! the seeds (the paper's Figure 3) and the most common leading verbs. Evol-Instruct
//! output: per round and operation the success rate and elimination reasons (with the
//! rejected file), length growth, and how many rounds each root survived.

use crate::diversity;
use crate::error::{Error, Result};
use crate::pipeline::run_file::manifest_path;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

/// The records of a JSONL file: every non-blank line a JSON object, errors naming the
/// file and line (invalid UTF-8 included).
fn read_jsonl(path: &Path) -> Result<Vec<Value>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).split(b'\n').enumerate() {
        let bad = |what: String| Error::Input {
            path: path.to_path_buf(),
            line: i + 1,
            what,
        };
        let bytes = line.map_err(|e| Error::io(path, e))?;
        let line = std::str::from_utf8(&bytes).map_err(|e| {
            bad(format!(
                "is not UTF-8 (invalid byte at column {})",
                e.valid_up_to() + 1
            ))
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        if !v.is_object() {
            return Err(bad(format!(
                "is not a record: a JSON object was expected, got {}",
                match v {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            )));
        }
        out.push(v);
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

/// The instruction of a record: `instruction`, or a conversation's first user turn.
fn instruction_of(r: &Value) -> &str {
    if let Some(s) = r["instruction"].as_str() {
        return s;
    }
    r["messages"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
}

/// What `compute` reads: the dataset, optionally its rejected file and a seed set to
/// measure novelty against (by default the file's own `seed`/`original` records).
pub fn compute(path: &Path, rejected: Option<&Path>) -> Result<Value> {
    compute_with_seeds(path, rejected, None)
}

pub fn compute_with_seeds(
    path: &Path,
    rejected: Option<&Path>,
    seeds: Option<&Path>,
) -> Result<Value> {
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
        // generate and respond count finish reasons; the others count rejections.
        let made_by = if m["command"] == "merge" {
            &m["of"]
        } else {
            &m["command"]
        };
        if matches!(made_by.as_str(), Some("generate" | "respond")) {
            out["finish_reasons"] = m["counts"].clone();
        } else {
            out["rejections"] = m["counts"].clone();
        }
        out["seconds"] = m["seconds"].clone();
        if !m["profile"].is_null() {
            out["profile"] = m["profile"].clone();
            out["tokens"] = m["tokens"].clone();
        }
        if let Some(source) = judged_run_source(m) {
            add_source_run(&mut out, m, &source);
        }
    }
    if is_evol {
        out["evol"] = evol_stats(&records, &rejected);
    } else {
        let machine: Vec<&Value> = records.iter().filter(|r| r["source"] != "seed").collect();
        if let Some(counts) = out["rejections"].as_object().cloned() {
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
    }
    let seed_texts: Vec<String> = match seeds {
        Some(p) => crate::pipeline::items::load(p)?
            .iter()
            .map(|it| it.instruction.clone())
            .collect(),
        None => records
            .iter()
            .filter(|r| r["source"] == "seed" || r["source"] == "original")
            .map(|r| instruction_of(r).to_string())
            .collect(),
    };
    let machine: Vec<&Value> = records
        .iter()
        .filter(|r| r["source"] != "seed" && r["source"] != "original")
        .collect();
    let seed_refs: Vec<&str> = seed_texts.iter().map(String::as_str).collect();
    let nearest = (!seed_refs.is_empty()).then(|| {
        diversity::nearest_seed_scores(
            &seed_refs,
            &machine
                .iter()
                .map(|r| instruction_of(r))
                .collect::<Vec<_>>(),
        )
    });
    if let Some(scores) = &nearest {
        out["rouge_l_vs_seeds"] = diversity::histogram10(scores);
    }
    out["diversity"] = diversity_stats(&machine, nearest.as_deref(), seed_refs.len());
    out["trends"] = trends(&machine, nearest.as_deref());
    let judged: Vec<&Value> = records
        .iter()
        .chain(rejected.iter())
        .filter(|r| r["scores"].is_object())
        .collect();
    if !judged.is_empty() {
        out["scores"] = score_stats(&judged, manifest.as_ref());
    }
    Ok(out)
}

/// The manifest of the run whose records `teacher judge` scored (its input), when it
/// is still there and unchanged.
fn judged_run_source(m: &Value) -> Option<Value> {
    if m["command"] != "judge" {
        return None;
    }
    let input = Path::new(m["run"]["input"].as_str()?);
    let sha = teacher_models::fetch::sha256_file(input).ok()?;
    if m["params"]["input_sha256"].as_str() != Some(sha.as_str()) {
        return None;
    }
    let source = std::fs::read_to_string(manifest_path(input)).ok()?;
    serde_json::from_str(&source).ok()
}

/// A judged output's figures are its source run's plus the judging: the pipeline's
/// rejections, then the judge's (prefixed `judge:`); stages and tokens of both; the
/// engine profile of the source run (generation).
fn add_source_run(out: &mut Value, judge: &Value, source: &Value) {
    out["source_command"] = source["command"].clone();
    let source_rejects = !matches!(source["command"].as_str(), Some("generate" | "respond"));
    let mut rejections = if source_rejects {
        source["counts"].as_object().cloned().unwrap_or_default()
    } else {
        Default::default()
    };
    for (k, v) in judge["counts"].as_object().into_iter().flatten() {
        rejections.insert(format!("judge: {k}"), v.clone());
    }
    out["rejections"] = Value::Object(rejections);
    let mut seconds = source["seconds"].as_object().cloned().unwrap_or_default();
    for (k, v) in judge["seconds"].as_object().into_iter().flatten() {
        seconds.insert(k.clone(), v.clone());
    }
    out["seconds"] = Value::Object(seconds);
    if !source["profile"].is_null() {
        out["profile"] = source["profile"].clone();
        out["tokens"] = source["tokens"].clone();
        out["judge_tokens"] = judge["tokens"].clone();
    }
}

/// A share rounded for display (4 decimals).
fn share(x: f64) -> Value {
    json!((x * 1e4).round() / 1e4)
}

fn mean(xs: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for x in xs {
        sum += x;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// The Self-Instruct paper's near-duplicate threshold: ROUGE-L 0.7.
const NEAR_DUPLICATE: f64 = 0.7;

/// Verb–noun structure, distinct-n and novelty against the seeds.
fn diversity_stats(machine: &[&Value], nearest: Option<&[f64]>, seeds: usize) -> Value {
    let instructions: Vec<&str> = machine.iter().map(|r| instruction_of(r)).collect();
    let outputs: Vec<&str> = machine
        .iter()
        .filter_map(|r| r["output"].as_str())
        .collect();
    let d = |texts: &[&str], n| diversity::distinct_n(texts.iter().copied(), n).map(share);
    let mut v = json!({
        "verb_noun": diversity::verb_noun_summary(&instructions, 20, 4),
        "distinct_1_instructions": d(&instructions, 1),
        "distinct_2_instructions": d(&instructions, 2),
        "distinct_1_outputs": d(&outputs, 1),
        "distinct_2_outputs": d(&outputs, 2),
    });
    if let Some(ns) = nearest {
        v["seeds"] = json!(seeds);
        v["mean_rouge_l_to_nearest_seed"] = json!(mean(ns.iter().copied()).map(share));
        v["near_duplicates_of_a_seed"] = json!(ns.iter().filter(|s| **s >= NEAR_DUPLICATE).count());
        v["near_duplicate_of_seed_share"] = if ns.is_empty() {
            Value::Null
        } else {
            share(ns.iter().filter(|s| **s >= NEAR_DUPLICATE).count() as f64 / ns.len() as f64)
        };
    }
    v
}

/// Per round (Evol-Instruct) or per wave (Self-Instruct, Magpie): records, length,
/// distinct-2, novelty against the seeds and mean scores.
fn trends(machine: &[&Value], nearest: Option<&[f64]>) -> Value {
    let key = if machine.iter().any(|r| r["round"].is_u64()) {
        "round"
    } else if machine.iter().any(|r| r["wave"].is_u64()) {
        "wave"
    } else {
        return Value::Null;
    };
    let mut groups: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, r) in machine.iter().enumerate() {
        if let Some(k) = r[key].as_u64() {
            groups.entry(k).or_default().push(i);
        }
    }
    let rows: Vec<Value> = groups
        .into_iter()
        .map(|(k, idx)| {
            let inst: Vec<&str> = idx.iter().map(|&i| instruction_of(machine[i])).collect();
            let score_mean = |name: &str| {
                mean(idx.iter().filter_map(|&i| machine[i]["scores"][name].as_f64())).map(share)
            };
            json!({
                key: k,
                "records": idx.len(),
                "instruction_words_mean": mean(inst.iter().map(|t| t.split_whitespace().count() as f64)).map(share),
                "distinct_2_instructions": diversity::distinct_n(inst.iter().copied(), 2).map(share),
                "mean_rouge_l_to_nearest_seed": nearest.and_then(|ns| mean(idx.iter().map(|&i| ns[i]))).map(share),
                "mean_quality": score_mean("quality"),
                "mean_complexity": score_mean("complexity"),
            })
        })
        .collect();
    json!({"by": key, "rows": rows})
}

/// Judge scores (kept and, with `--rejected`, rejected records): histograms 1–10,
/// means, and judgements that could not be scored by reason.
fn score_stats(judged: &[&Value], manifest: Option<&Value>) -> Value {
    let mut v = json!({"records": judged.len()});
    for k in ["quality", "complexity"] {
        let mut hist = [0u64; 10];
        let mut unscored: BTreeMap<String, u64> = BTreeMap::new();
        for r in judged {
            match r["scores"][k].as_u64() {
                Some(x @ 1..=10) => hist[x as usize - 1] += 1,
                _ => {
                    *unscored
                        .entry(
                            r["scores"][format!("{k}_unscored")]
                                .as_str()
                                .unwrap_or("missing")
                                .to_string(),
                        )
                        .or_default() += 1
                }
            }
        }
        let n: u64 = hist.iter().sum();
        let m = (n > 0).then(|| {
            hist.iter()
                .enumerate()
                .map(|(i, c)| (i + 1) as f64 * *c as f64)
                .sum::<f64>()
                / n as f64
        });
        v[k] = json!({"histogram": hist, "mean": m.map(share), "unscored": unscored});
    }
    let models: std::collections::BTreeSet<&str> = judged
        .iter()
        .filter_map(|r| r["scores"]["judge_model"].as_str())
        .collect();
    v["judge_models"] = json!(models);
    if let Some(t) = manifest.map(|m| &m["judge"]).filter(|t| t.is_object()) {
        v["judgements"] = t.clone();
    }
    v
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
    if let Some(r) = v.get("finish_reasons").and_then(|r| r.as_object()) {
        let list: Vec<String> = r.iter().map(|(k, n)| format!("{k} {n}")).collect();
        s.push_str(&format!("finish reasons: {}\n", list.join(", ")));
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
    if let Some(d) = v.get("diversity").filter(|d| d.is_object()) {
        let f = |k: &str| d[k].as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
        s.push_str(&format!(
            "distinct-1/2: instructions {}/{}, outputs {}/{}\n",
            f("distinct_1_instructions"),
            f("distinct_2_instructions"),
            f("distinct_1_outputs"),
            f("distinct_2_outputs")
        ));
        if d["seeds"].is_u64() {
            s.push_str(&format!(
                "against {} seeds: mean highest ROUGE-L {}, {} near-duplicates of a seed (>= 0.7, {} of records)\n",
                d["seeds"],
                f("mean_rouge_l_to_nearest_seed"),
                d["near_duplicates_of_a_seed"],
                f("near_duplicate_of_seed_share")
            ));
        }
        let vn = &d["verb_noun"];
        s.push_str(&format!(
            "verb-noun structure: {} of {} instructions open with a verb, {} with a verb and its object\n",
            vn["with_verb"], vn["instructions"], vn["with_verb_and_noun"]
        ));
        for t in vn["top"].as_array().into_iter().flatten().take(10) {
            let nouns: Vec<String> = t["nouns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| format!("{} {}", n["noun"].as_str().unwrap_or(""), n["count"]))
                .collect();
            s.push_str(&format!(
                "  {:<12} {:>5}  {}\n",
                t["verb"].as_str().unwrap_or(""),
                t["count"],
                nouns.join(", ")
            ));
        }
    }
    if let Some(t) = v["trends"].as_object() {
        let by = t["by"].as_str().unwrap_or("");
        s.push_str(&format!(
            "{by:>6} records words distinct-2 rouge-seed quality complexity\n"
        ));
        let f = |x: &Value| x.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
        for r in t["rows"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "{:>6} {:>7} {:>5} {:>10} {:>10} {:>7} {:>10}\n",
                r[by],
                r["records"],
                f(&r["instruction_words_mean"]),
                f(&r["distinct_2_instructions"]),
                f(&r["mean_rouge_l_to_nearest_seed"]),
                f(&r["mean_quality"]),
                f(&r["mean_complexity"])
            ));
        }
    }
    if let Some(sc) = v["scores"].as_object() {
        for k in ["quality", "complexity"] {
            let q = &sc[k];
            s.push_str(&format!(
                "{k} (1-10): mean {}, histogram {}, unscored {}\n",
                q["mean"], q["histogram"], q["unscored"]
            ));
        }
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
