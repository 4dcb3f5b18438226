//! `teacher report` on real, judged runs of Self-Instruct and Evol-Instruct with the
//! default model, opened in a real headless browser (Chromium from the distribution's
//! packages, driven by selenium): the page loads without console errors, every chart
//! that has data is drawn with a visible size, every SVG is well-formed, and nothing is
//! fetched from a network. The same inputs give the same bytes.
//!
//! Without Chromium and chromedriver on PATH the browser half is skipped with a message,
//! unless `TEACHER_REQUIRE_BROWSER=1` (CI sets it) makes that a failure.

use crate::common::{model_path, python_with, read, teacher_in as teacher, SMOLLM2};
use serde_json::Value;
use std::path::Path;

fn ok(dir: &Path, args: &[&str]) {
    let (ok, err) = teacher(dir, args, 8, 2);
    assert!(ok, "teacher {args:?}:\n{err}");
}

/// A command that loads no model (no `--batch`).
fn plain(dir: &Path, args: &[&str]) -> (bool, String) {
    let o = std::process::Command::new(crate::common::teacher_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn browser_available() -> bool {
    let on_path = |b: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    (on_path("chromium") || on_path("chromium-browser") || on_path("google-chrome"))
        && on_path("chromedriver")
}

/// What the browser saw (see report_browser.py).
fn open_in_browser(report: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/report_browser.py");
    let o = python_with("selenium", "selenium==4.27.1")
        .arg(script)
        .arg(report)
        .env("SE_OFFLINE", "true")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "browser check failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `drawn` charts must be drawn, `empty` ones must say why not; `either` may be
/// either (they depend on what a 135M model happened to write).
fn check_page(seen: &Value, drawn: &[&str], empty: &[&str], either: &[&str]) {
    assert_eq!(seen["ready_state"], "complete", "{seen}");
    assert_eq!(seen["console_errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["malformed_svg"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["nan"], false);
    assert_eq!(seen["external_refs"], serde_json::json!([]));
    assert_eq!(seen["scripts"], 0);
    assert!(seen["sample_rows"].as_u64().unwrap() > 0, "{seen}");
    for id in drawn {
        let c = &seen["charts"][id];
        assert_eq!(c["state"], "drawn", "{id}: {seen}");
        assert!(c["svgs"].as_u64().unwrap() >= 1, "{id}: {c}");
        assert!(c["shapes"].as_u64().unwrap() >= 1, "{id}: {c}");
        assert!(c["min_width"].as_f64().unwrap() > 50.0, "{id}: {c}");
        assert!(c["min_height"].as_f64().unwrap() > 50.0, "{id}: {c}");
    }
    for id in empty {
        assert_eq!(seen["charts"][id]["state"], "empty", "{id}: {seen}");
    }
    assert_eq!(
        seen["charts"].as_object().unwrap().len(),
        drawn.len() + empty.len() + either.len()
    );
}

#[test]
fn reports_of_judged_runs_render_in_a_headless_browser() {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let seeds: String = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/seed_tasks.jsonl"),
    )
    .unwrap()
    .lines()
    .take(12)
    .map(|l| format!("{l}\n"))
    .collect();
    std::fs::write(dir.join("seeds.jsonl"), seeds).unwrap();
    ok(
        dir,
        &[
            "self-instruct",
            "--seeds",
            "seeds.jsonl",
            "--num",
            "8",
            "--wave-size",
            "4",
            "--out",
            "si.jsonl",
            "--rejected",
            "si.rejected.jsonl",
            "--judge",
        ],
    );
    let (fine, err) = plain(
        dir,
        &[
            "report",
            "si.judged.jsonl",
            "--out",
            "si.html",
            "--samples",
            "6",
        ],
    );
    assert!(fine, "{err}");
    std::fs::write(
        dir.join("tasks.txt"),
        "Write a poem about the sea.\nExplain how a bicycle works.\nList three uses of salt.\n",
    )
    .unwrap();
    ok(
        dir,
        &[
            "evolve",
            "--input",
            "tasks.txt",
            "--rounds",
            "2",
            "--wave-size",
            "3",
            "--max-tokens",
            "64",
            "--response-max-tokens",
            "64",
            "--out",
            "ev.jsonl",
            "--judge",
            // A seed under which the 135M teacher's evolutions survive in both rounds
            // (most are truncated at 64 tokens), so the report has a trend to draw.
            "--seed",
            "25",
        ],
    );
    let (fine, err) = plain(
        dir,
        &[
            "report",
            "ev.judged.jsonl",
            "--rejected",
            "ev.rejected.jsonl",
            "--seeds",
            "tasks.txt",
            "--out",
            "ev.html",
        ],
    );
    assert!(fine, "{err}");
    // The judged file's report follows it to the run that made the records: the
    // pipeline's filter reasons and time are there beside the judge's.
    let (fine, err) = plain(
        dir,
        &[
            "report",
            "si.judged.jsonl",
            "--out",
            "si2.html",
            "--samples",
            "6",
        ],
    );
    assert!(fine, "{err}");
    assert_eq!(read(dir, "si.html"), read(dir, "si2.html"));
    let page = read(dir, "si.html");
    assert!(page.contains("stage: judging") && page.contains("stage: generation"));
    // A report never overwrites its input.
    let (fine, err) = plain(dir, &["report", "si.jsonl", "--out", "si.jsonl"]);
    assert!(!fine && err.contains("inputs"), "{err}");

    if !browser_available() {
        assert!(
            std::env::var_os("TEACHER_REQUIRE_BROWSER").is_none(),
            "TEACHER_REQUIRE_BROWSER is set but chromium/chromedriver are not on PATH"
        );
        eprintln!("skipping the browser half: chromium and chromedriver are not on PATH (apt-get install chromium chromium-driver)");
        return;
    }
    let si = open_in_browser(&dir.join("si.html"));
    check_page(
        &si,
        &[
            "chart-verb-noun",
            "chart-lengths",
            "chart-rouge",
            "chart-filters",
            "chart-scores",
            "chart-time",
            "chart-trends",
        ],
        &["chart-evolution"],
        &[],
    );
    let ev = open_in_browser(&dir.join("ev.html"));
    check_page(
        &ev,
        &[
            "chart-lengths",
            "chart-filters",
            "chart-scores",
            "chart-evolution",
            "chart-time",
            "chart-trends",
        ],
        &[],
        &["chart-verb-noun", "chart-rouge"],
    );
}
