//! Kill tests with the real default model: a run killed while it works — by SIGKILL in
//! the middle of a wave, and by an abort between appending a wave's records and
//! committing them (`TEACHER_TEST_ABORT_IN_COMMIT`, the worst moment) — then run again
//! with the same command, ends with the same bytes as a run never interrupted.
//! (`evol.rs` kills evolve the same way.)

use crate::common::{model_path, read, teacher_bin, SMOLLM2};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(teacher_bin());
    c.current_dir(dir)
        .args(args)
        .env_remove("TEACHER_MODEL")
        .env_remove("TEACHER_TEST_ABORT_IN_COMMIT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

fn waves_done(manifest: &Path) -> u64 {
    std::fs::read_to_string(manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["waves_done"].as_u64())
        .unwrap_or(0)
}

/// Straight run into `a`; into `b`: an abort inside the commit of wave 1, a resume
/// SIGKILLed once wave 2 has started, and a resume to the end.
fn killed_and_resumed_equals_straight(args: &[&str], files: &[&str]) {
    model_path(SMOLLM2);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let with = |prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for (i, f) in files.iter().enumerate() {
            v.push(if i == 0 { "--out" } else { "--rejected" }.into());
            v.push(format!("{prefix}.{f}"));
        }
        v
    };
    let a = with("a");
    let st = cmd(dir, &a.iter().map(String::as_str).collect::<Vec<_>>())
        .status()
        .unwrap();
    assert!(st.success());
    let b = with("b");
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    // 1. Dies between appending wave 1's records and committing them.
    let st = cmd(dir, &b)
        .env("TEACHER_TEST_ABORT_IN_COMMIT", "1")
        .status()
        .unwrap();
    assert!(!st.success(), "the fault fired");
    let manifest = dir.join(format!("b.{}.manifest.json", files[0]));
    assert_eq!(waves_done(&manifest), 1, "wave 1 was not committed");
    // 2. SIGKILL in the middle of a later wave.
    let mut child = cmd(dir, &b).spawn().unwrap();
    let t0 = Instant::now();
    while waves_done(&manifest) < 2 && t0.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    // 3. To the end.
    let st = cmd(dir, &b).status().unwrap();
    assert!(st.success());
    for f in files {
        assert_eq!(
            read(dir, &format!("b.{f}")),
            read(dir, &format!("a.{f}")),
            "{f} after kills and resumes"
        );
    }
}

#[test]
fn self_instruct_killed_in_a_commit_and_mid_wave_resumes_to_the_same_bytes() {
    killed_and_resumed_equals_straight(
        &[
            "self-instruct",
            "--num",
            "6",
            "--wave-size",
            "3",
            "--num-tasks",
            "4",
            "--max-tokens",
            "200",
            "--answer-max-tokens",
            "64",
            "--batch",
            "6",
        ],
        &["si.jsonl", "si.rej.jsonl"],
    );
}

#[test]
fn generate_killed_in_a_commit_and_mid_wave_resumes_to_the_same_bytes() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("prompts.jsonl");
    let body: String = (0..24)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"messages\":[{{\"role\":\"user\",\"content\":\"Write one sentence about the number {i}.\"}}],\"temperature\":0.8}}\n"
            )
        })
        .collect();
    std::fs::write(&input, body).unwrap();
    let input = input.to_str().unwrap().to_string();
    killed_and_resumed_equals_straight(
        &[
            "generate",
            "--input",
            &input,
            "--wave-size",
            "6",
            "--max-tokens",
            "48",
            "--seed",
            "3",
            "--batch",
            "6",
        ],
        &["gen.jsonl"],
    );
}
