//! `teacher report`: one self-contained HTML file (inline CSS and SVG, no script, no
//! network) with the charts of a dataset: the verb–noun sunburst, length histograms,
//! ROUGE-L against the seeds, acceptance by filter reason, judge score distributions,
//! evolution success by operation and round, time per stage and tokens/s, trends per
//! wave or round, and a table of random samples with their scores.
//!
//! The page is built from `stats` (the same numbers `teacher stats --json` prints) and
//! the records; the same inputs give the same bytes.

pub mod html;
pub mod svg;

use crate::error::{Error, Result};
use crate::html;
use html::Markup;
use serde_json::Value;
use std::path::Path;
use svg::{colour, trim_number};

/// The charts a report has, by element id, in page order.
pub const CHARTS: [(&str, &str); 8] = [
    ("chart-verb-noun", "Verb–noun structure of the instructions"),
    ("chart-lengths", "Lengths"),
    ("chart-rouge", "Similarity to the nearest seed"),
    ("chart-filters", "Acceptance by filter reason"),
    ("chart-scores", "Judge scores"),
    (
        "chart-evolution",
        "Evolution success by operation and round",
    ),
    ("chart-time", "Time per stage and tokens per second"),
    ("chart-trends", "Trends"),
];

pub struct Options<'a> {
    pub dataset: &'a Path,
    pub rejected: Option<&'a Path>,
    pub seeds: Option<&'a Path>,
    /// Records shown in the samples table.
    pub samples: usize,
    /// Which records the samples are (the same seed, the same rows).
    pub seed: u64,
}

/// The whole page.
pub fn build(o: &Options) -> Result<String> {
    let stats = crate::stats::compute_with_seeds(o.dataset, o.rejected, o.seeds)?;
    let records = crate::pipeline::run_file::read_records(o.dataset)?;
    let mut page = Markup::new();
    let name = o
        .dataset
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    page.push(html!("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>teacher report: {}</title><style>{}</style></head><body>\n", (&name), Markup::from_static(CSS)));
    page.push(html!(
        "<header><h1>teacher report: {}</h1><p>{}</p></header>",
        (&name),
        (&describe_run(&stats))
    ));
    page.push(html!("\n"));
    page.push(cards(&stats));
    page.push(html!("<main>\n"));
    for (id, title) in CHARTS {
        let (body, caption) = chart(id, &stats, &records);
        let state = if body.is_some() { "drawn" } else { "empty" };
        page.push(html!("<figure class=\"chart\" id=\"{}\" data-state=\"{}\"><h2>{}</h2>{}<figcaption>{}</figcaption></figure>", id, state, (title), body.unwrap_or_default(), caption));
        page.push(html!("\n"));
    }
    page.push(samples(&records, o.samples, o.seed));
    page.push(html!("</main><footer>Made by teacher {} from <code>{}</code>{}. The numbers are those of <code>teacher stats --json</code>.</footer></body></html>", env!("CARGO_PKG_VERSION"), (&name), o.rejected
            .map(|r| html!(" and <code>{}</code>", (&r.display().to_string())))
            .unwrap_or_default()));
    page.push(html!("\n"));
    Ok(page.into_string())
}

/// Write the page to `out` through a temporary file (never a half-written report).
pub fn write(out: &Path, page: &str) -> Result<()> {
    let mut f = crate::dedup::AtomicFile::create(out)?;
    f.write_line(page.trim_end_matches('\n'))?;
    f.commit()
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1220px;padding:16px;color:#222;background:#fafafa}header h1{margin:0 0 4px;font-size:22px}header p{margin:0;color:#555}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}.card{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:8px 12px;min-width:120px}.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}main{display:grid;grid-template-columns:repeat(auto-fill,minmax(590px,1fr));gap:14px}figure.chart{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:0;padding:10px;overflow-x:auto}figure.chart h2{font-size:15px;margin:0 0 6px}figure.chart h3{font-size:13px;margin:8px 0 2px;font-weight:600}section.samples h2{font-size:15px}figcaption{color:#555;font-size:12px;margin-top:6px}.empty{color:#888;font-style:italic}section.samples{grid-column:1/-1;background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:10px}table{border-collapse:collapse;width:100%;font-size:12px}td,th{border-top:1px solid #eee;padding:5px;vertical-align:top;text-align:left}td pre{white-space:pre-wrap;margin:0;font-family:inherit}footer{color:#777;font-size:12px;margin-top:14px}svg text{fill:#333}";

fn describe_run(stats: &Value) -> String {
    let mut parts = Vec::new();
    match (stats["source_command"].as_str(), stats["command"].as_str()) {
        (Some(src), Some(c)) => {
            parts.push(format!("made by `teacher {src}`, scored by `teacher {c}`"))
        }
        (None, Some(c)) => parts.push(format!("made by `teacher {c}`")),
        _ => {}
    }
    parts.push(format!("{} records", stats["records"]));
    if let Some(by) = stats["by_source"].as_object() {
        let s: Vec<String> = by.iter().map(|(k, v)| format!("{k} {v}")).collect();
        parts.push(format!("by source: {}", s.join(", ")));
    }
    parts.join(" · ")
}

fn cards(stats: &Value) -> Markup {
    let mut c: Vec<(String, String)> = vec![("records".into(), stats["records"].to_string())];
    if let Some(a) = stats.get("acceptance") {
        c.push((
            "kept of generated".into(),
            format!("{:.1} %", a["rate"].as_f64().unwrap_or(0.0) * 100.0),
        ));
    }
    if let Some(t) = throughput(stats) {
        c.push(("generated tokens / s".into(), format!("{t:.1}")));
    }
    let d = &stats["diversity"];
    if let Some(x) = d["distinct_2_instructions"].as_f64() {
        c.push(("distinct-2 of instructions".into(), format!("{x:.3}")));
    }
    if let Some(x) = d["mean_rouge_l_to_nearest_seed"].as_f64() {
        c.push(("mean ROUGE-L to nearest seed".into(), format!("{x:.3}")));
    }
    for k in ["quality", "complexity"] {
        if let Some(m) = stats["scores"][k]["mean"].as_f64() {
            c.push((format!("mean {k} (1–10)"), format!("{m:.2}")));
        }
    }
    let mut s = html!("<section class=\"cards\">");
    for (label, value) in c {
        s.push(html!(
            "<div class=\"card\"><b>{}</b><span>{}</span></div>",
            (&value),
            (&label)
        ));
    }
    s.push(html!("</section>\n"));
    s
}

/// Generated tokens per second of generation time, when the manifest has both.
fn throughput(stats: &Value) -> Option<f64> {
    let generated = stats["tokens"]["generated"].as_f64()?;
    let p = &stats["profile"];
    let secs = p["prefill_seconds"].as_f64().unwrap_or(0.0) + p["decode_seconds"].as_f64()?;
    (secs > 0.0).then(|| generated / secs)
}

fn words(r: &Value, k: &str) -> Option<usize> {
    r[k].as_str().map(|s| s.split_whitespace().count())
}

/// A histogram of word counts as bars with ranges for labels.
fn length_histogram(label: &str, xs: &[usize]) -> Markup {
    let max = xs.iter().copied().max().unwrap_or(0).max(1);
    let bins = 12usize;
    let width = max.div_ceil(bins).max(1);
    let mut counts = vec![0f64; max / width + 1];
    for &x in xs {
        counts[x / width] += 1.0;
    }
    let data: Vec<(String, f64)> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let lo = i * width;
            let label = if width == 1 {
                lo.to_string()
            } else {
                format!("{lo}–{}", lo + width - 1)
            };
            (label, *c)
        })
        .collect();
    svg::bars(label, &data, |_| colour(0).to_string())
}

/// One chart's SVG (None when the data is not there) and its caption.
fn chart(id: &str, stats: &Value, records: &[Value]) -> (Option<Markup>, Markup) {
    let machine: Vec<&Value> = records
        .iter()
        .filter(|r| r["source"] != "seed" && r["source"] != "original")
        .collect();
    match id {
        "chart-verb-noun" => {
            let vn = &stats["diversity"]["verb_noun"];
            let top: Vec<svg::VerbRing> = vn["top"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        t["verb"].as_str().unwrap_or("").to_string(),
                        t["count"].as_f64().unwrap_or(0.0),
                        t["nouns"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|n| {
                                (
                                    n["noun"].as_str().unwrap_or("").to_string(),
                                    n["count"].as_f64().unwrap_or(0.0),
                                )
                            })
                            .collect(),
                    )
                })
                .collect();
            let caption = html!("The {} most common root verbs (inner ring) and their most common direct-object nouns (outer ring), as in Figure 2 of the Self-Instruct paper. {} of {} instructions open with a verb, {} with a verb and its object. Parser: teacher's rule-based one (agreement with spaCy in BENCHMARKS.md).", top.len(), vn["with_verb"], vn["instructions"], vn["with_verb_and_noun"]);
            (
                (!top.is_empty()).then(|| svg::sunburst("verb-noun sunburst", &top)),
                caption,
            )
        }
        "chart-lengths" => {
            let mut body = Markup::new();
            let mut shown = Vec::new();
            for (k, what) in [
                ("instruction", "instruction"),
                ("input", "input"),
                ("output", "response"),
            ] {
                let xs: Vec<usize> = machine
                    .iter()
                    .filter_map(|r| words(r, k))
                    .filter(|&n| k != "input" || n > 0)
                    .collect();
                if xs.is_empty() {
                    continue;
                }
                body.push(html!("<h3>{} words ({} records)</h3>", what, xs.len()));
                body.push(length_histogram(&format!("{what} length histogram"), &xs));
                shown.push(what);
            }
            (
                (!shown.is_empty()).then_some(body),
                html!("Words per field of the generated records (non-empty inputs only); seeds and originals excluded."),
            )
        }
        "chart-rouge" => {
            let h = stats["rouge_l_vs_seeds"].as_array();
            let d = &stats["diversity"];
            let data: Vec<(String, f64)> = h
                .into_iter()
                .flatten()
                .map(|b| {
                    (
                        format!(
                            "{}–{}",
                            trim_number(b["from"].as_f64().unwrap_or(0.0)),
                            trim_number(b["to"].as_f64().unwrap_or(0.0))
                        ),
                        b["count"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect();
            let drawn = data.iter().any(|d| d.1 > 0.0);
            (
                drawn.then(|| {
                    svg::bars("ROUGE-L histogram", &data, |i| {
                        if i >= 7 { "#D55E00" } else { colour(0) }.to_string()
                    })
                }),
                html!("Each generated instruction's highest ROUGE-L F against {} seed instructions (Figure 3 of the Self-Instruct paper). Mean {}; {} at or above 0.7, the paper's near-duplicate line (red).", d["seeds"], d["mean_rouge_l_to_nearest_seed"].as_f64().map_or("–".into(), |m| format!("{m:.3}")), d["near_duplicates_of_a_seed"]),
            )
        }
        "chart-filters" => {
            let mut data: Vec<(String, f64)> = vec![("kept".into(), machine.len() as f64)];
            let mut reasons: Vec<(String, f64)> = stats["rejections"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .filter(|(_, v)| *v > 0.0)
                .collect();
            reasons.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            data.extend(reasons);
            let drawn = stats["rejections"].is_object();
            (
                drawn.then(|| svg::hbars("acceptance by reason", &data, "")),
                html!("Generated records kept, and those dropped by each filter or elimination rule (from the run's manifest)."),
            )
        }
        "chart-scores" => {
            let sc = &stats["scores"];
            if !sc.is_object() {
                return (
                    None,
                    html!("<span class=\"empty\">Not judged: run <code>teacher judge</code> (or a pipeline with <code>--judge</code>) and report on its output.</span>"),
                );
            }
            let mut body = Markup::new();
            for (i, k) in ["quality", "complexity"].into_iter().enumerate() {
                let h: Vec<(String, f64)> = sc[k]["histogram"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(j, c)| ((j + 1).to_string(), c.as_f64().unwrap_or(0.0)))
                    .collect();
                let unscored: Vec<String> = sc[k]["unscored"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(why, n)| format!("{n} {}", why.replace('_', " ")))
                    .collect();
                body.push(html!(
                    "<h3>{}: mean {}; not scored: {}</h3>",
                    k,
                    sc[k]["mean"]
                        .as_f64()
                        .map_or("–".into(), |m| format!("{m:.2}")),
                    (&if unscored.is_empty() {
                        "none".into()
                    } else {
                        unscored.join(", ")
                    })
                ));
                body.push(svg::bars(&format!("{k} histogram"), &h, |_| {
                    colour(if i == 0 { 2 } else { 3 }).to_string()
                }));
            }
            (
                Some(body),
                html!("Scores from 1 to 10 by {} (response quality, MT-Bench-style single-answer grading; instruction complexity, WizardLM-style difficulty), over kept and rejected records.", (&sc["judge_models"].to_string())),
            )
        }
        "chart-evolution" => {
            let cells = stats["evol"]["by_round_and_op"].as_array();
            let Some(cells) = cells.filter(|c| !c.is_empty()) else {
                return (
                    None,
                    html!("<span class=\"empty\">Not an Evol-Instruct output.</span>"),
                );
            };
            let mut ops: Vec<String> = cells
                .iter()
                .filter_map(|c| c["op"].as_str().map(str::to_string))
                .collect();
            ops.sort();
            ops.dedup();
            let mut rounds: Vec<u64> = cells.iter().filter_map(|c| c["round"].as_u64()).collect();
            rounds.sort();
            rounds.dedup();
            let cols: Vec<String> = rounds.iter().map(|r| format!("round {r}")).collect();
            let body = svg::heatmap("evolution success", &ops, &cols, |i, j| {
                cells
                    .iter()
                    .find(|c| c["op"] == ops[i].as_str() && c["round"] == rounds[j])
                    .map(|c| {
                        let rate = c["success_rate"].as_f64().unwrap_or(0.0);
                        (
                            rate,
                            format!(
                                "{:.0} % of {}",
                                rate * 100.0,
                                c["evolved"].as_u64().unwrap_or(0)
                                    + c["eliminated"].as_u64().unwrap_or(0)
                            ),
                        )
                    })
            });
            (
                Some(body),
                html!("Share of evolutions that survived elimination, by operation and round (darker is higher); the rejected file gives the reasons."),
            )
        }
        "chart-time" => {
            let mut data: Vec<(String, f64)> = stats["seconds"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((format!("stage: {k}"), v.as_f64()?)))
                .collect();
            let p = &stats["profile"];
            for (k, label) in [
                ("prefill_seconds", "engine: prefill"),
                ("decode_seconds", "engine: decode"),
                ("attention_seconds", "  of which attention"),
                ("sampling_seconds", "engine: sampling"),
                ("text_and_stop_seconds", "engine: text and stops"),
            ] {
                if let Some(v) = p[k].as_f64() {
                    data.push((label.into(), v));
                }
            }
            let caption = match throughput(stats) {
                Some(t) => html!("Seconds per pipeline stage (all runs of this output) and where the engine's time went (last process). {} prompt and {} generated tokens; {:.1} generated tokens per second of prefill and decode; mean batch occupancy {}.", stats["tokens"]["prompt"], stats["tokens"]["generated"], t, p["mean_batch_occupancy"]
                        .as_f64()
                        .map_or("-".into(), |o| format!("{:.0} %", o * 100.0))),
                None => html!("Seconds per pipeline stage (from the manifest)."),
            };
            let data: Vec<(String, f64)> = data
                .into_iter()
                .map(|(k, v)| (k, (v * 100.0).round() / 100.0))
                .collect();
            (
                (!data.is_empty()).then(|| svg::hbars("time per stage", &data, "s")),
                caption,
            )
        }
        "chart-trends" => {
            let t = &stats["trends"];
            let Some(rows) = t["rows"].as_array().filter(|r| r.len() > 1) else {
                return (
                    None,
                    html!("<span class=\"empty\">One wave or round only: no trend to draw.</span>"),
                );
            };
            let by = t["by"].as_str().unwrap_or("wave");
            let xs: Vec<String> = rows.iter().map(|r| r[by].to_string()).collect();
            let series: Vec<(String, Vec<Option<f64>>)> = [
                ("mean_rouge_l_to_nearest_seed", "ROUGE-L to seed"),
                ("distinct_2_instructions", "distinct-2"),
                ("mean_quality", "quality"),
                ("mean_complexity", "complexity"),
            ]
            .into_iter()
            .map(|(k, name)| {
                (
                    name.to_string(),
                    rows.iter().map(|r| r[k].as_f64()).collect::<Vec<_>>(),
                )
            })
            .filter(|(_, ys)| ys.iter().any(Option::is_some))
            .collect();
            (
                (!series.is_empty()).then(|| svg::lines("trends", &xs, &series)),
                html!(
                    "Per {}: each series on its own scale from 0 to the value in the legend.",
                    by
                ),
            )
        }
        _ => (None, Markup::new()),
    }
}

/// A table of `k` records drawn with Philox from `seed`, in file order.
fn samples(records: &[Value], k: usize, seed: u64) -> Markup {
    let machine: Vec<&Value> = records
        .iter()
        .filter(|r| r["source"] != "seed" && r["source"] != "original")
        .collect();
    let mut pick = crate::pipeline::pick(seed, 0x5A4D_504C, 0, machine.len(), k);
    pick.sort_unstable();
    let mut s = html!("<section class=\"samples\" id=\"samples\"><h2>{} random samples of {}</h2><table><thead><tr><th>id</th><th>instruction</th><th>response</th><th>quality</th><th>complexity</th><th>judge's rationale</th></tr></thead><tbody>", pick.len(), machine.len());
    let cut = |t: &str, n: usize| -> String {
        if t.chars().count() > n {
            t.chars().take(n).collect::<String>() + " …"
        } else {
            t.to_string()
        }
    };
    for i in pick {
        let r = machine[i];
        let mut inst = r["instruction"].as_str().unwrap_or("").to_string();
        if inst.is_empty() {
            inst = r["messages"][0]["content"].as_str().unwrap_or("").into();
        }
        if let Some(input) = r["input"].as_str().filter(|t| !t.trim().is_empty()) {
            inst = format!("{inst}\n\n{input}");
        }
        let output = r["output"]
            .as_str()
            .or_else(|| r["text"].as_str())
            .unwrap_or("");
        let sc = &r["scores"];
        let score = |k: &str| match &sc[k] {
            Value::Number(n) => n.to_string(),
            _ => sc[format!("{k}_unscored")]
                .as_str()
                .map_or("–".into(), |w| w.replace('_', " ")),
        };
        s.push(html!("<tr><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td><td>{}</td><td>{}</td><td>{}</td></tr>", (&r["id"].as_str().map_or(r["id"].to_string(), str::to_string)), (&cut(&inst, 400)), (&cut(output, 600)), (&score("quality")), (&score("complexity")), (&cut(sc["quality_rationale"].as_str().unwrap_or(""), 300))));
    }
    s.push(html!("</tbody></table></section>\n"));
    s
}

/// Refuse a report path that is the dataset, its rejected file or its seeds (by the file
/// the paths name, so `sub/../data.jsonl` is the dataset too).
pub fn check_paths(o: &Options, out: &Path) -> Result<()> {
    for p in [Some(o.dataset), o.rejected, o.seeds].into_iter().flatten() {
        if crate::files::same_file(p, out) {
            return Err(Error::Usage(format!(
                "--out `{}` is one of the report's inputs; give the report its own file",
                out.display()
            )));
        }
    }
    Ok(())
}
