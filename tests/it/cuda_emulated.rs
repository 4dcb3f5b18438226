//! The CUDA backend where no GPU is: the kernels of `kernels/gpu/forward.h` built for
//! the CPU by their emulator (`kernels/cuda/emulate.cpp`, fibers for CUDA threads) and
//! run through the real CUDA backend code (`--device cuda` with
//! TEACHER_CUDA_EMULATOR). Their numbers must be the CPU forward's, bit for bit, and
//! every output byte the same. What a real GPU adds (its memory model, graphs, speed)
//! is checked by `scripts/gpu-check.sh` on a GPU machine.

use crate::common::teacher_bin;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the emulator library into `dir`; None where it cannot be built here (not
/// x86-64, or no g++), unless TEACHER_REQUIRE_CUDA_EMULATOR is set.
fn emulator(dir: &Path) -> Option<PathBuf> {
    let required = std::env::var_os("TEACHER_REQUIRE_CUDA_EMULATOR").is_some();
    if !cfg!(target_arch = "x86_64") {
        assert!(!required, "the kernel emulator needs an x86-64 host");
        eprintln!("skipped: the kernel emulator needs an x86-64 host");
        return None;
    }
    let lib = dir.join("libteacher_cuda_emu.so");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels/cuda/emulate.cpp");
    let built = Command::new("g++")
        .args([
            "-O2",
            "-std=c++17",
            "-ffp-contract=off",
            "-fno-fast-math",
            "-shared",
            "-fPIC",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&lib)
        .status();
    match built {
        Ok(s) if s.success() => Some(lib),
        other => {
            assert!(
                !required,
                "g++ could not build the kernel emulator: {other:?}"
            );
            eprintln!("skipped: g++ could not build the kernel emulator ({other:?})");
            None
        }
    }
}

fn teacher(emu: Option<&Path>, args: &[&str]) -> (bool, String, String) {
    let mut c = Command::new(teacher_bin());
    c.args(args)
        .env_remove("TEACHER_MODEL")
        .env_remove("TEACHER_DEVICE")
        .env("TEACHER_OFFLINE", "1");
    match emu {
        Some(e) => c.env("TEACHER_CUDA_EMULATOR", e),
        None => c.env_remove("TEACHER_CUDA_EMULATOR"),
    };
    let out = c.output().expect("the teacher binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn emulated_cuda_kernels_give_the_cpu_bits_for_every_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let Some(emu) = emulator(dir.path()) else {
        return;
    };
    let (ok, out, err) = teacher(
        Some(&emu),
        &[
            "selftest",
            "--device",
            "cuda",
            "--types",
            "q2_k,q4_k,bf16",
            "--wide",
            "16",
        ],
    );
    assert!(ok, "{out}\n{err}");
    // The kernels one by one (every weight type's matmul, the functions, RMSNorm), then
    // six architectures × three weight types × two KV types × three checks, and wide16.
    assert!(
        out.contains("matmul-iq4_xs-m19") && out.contains("fn-gelu"),
        "{out}"
    );
    assert!(
        out.contains("gemma2") && out.contains("phi3") && out.contains("wide16"),
        "{out}"
    );
    assert!(out.contains(" 0 differ"), "{out}");
    assert!(!out.contains("DIFFERS"), "{out}");
}

#[test]
fn emulated_cuda_device_writes_the_cpu_bytes_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let Some(emu) = emulator(dir.path()) else {
        return;
    };
    let d = dir.path();
    let model = d.join("tiny.gguf");
    let (ok, _, err) = teacher(
        None,
        &[
            "models",
            "synth",
            "--shape",
            "tiny",
            "--type",
            "q4_k",
            "--out",
            model.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let prompts = d.join("p.jsonl");
    let lines: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#"{{"id": "p{i}", "prompt": "A note on item {i}", "temperature": 0.8, "top_p": 0.9, "max_tokens": {}}}"#,
                4 + 3 * i
            )
        })
        .collect();
    std::fs::write(&prompts, lines.join("\n") + "\n").unwrap();
    let m = model.to_str().unwrap();
    for dev in ["cpu", "cuda"] {
        let out = d.join(format!("gen-{dev}.jsonl"));
        let (ok, _, err) = teacher(
            Some(&emu),
            &[
                "generate",
                "--model",
                m,
                "--device",
                dev,
                "--input",
                prompts.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--batch",
                "4",
                "--seed",
                "5",
            ],
        );
        assert!(ok, "{dev}: {err}");
        let si = d.join(format!("si-{dev}.jsonl"));
        let rej = d.join(format!("si-{dev}.rejected.jsonl"));
        let (ok, _, err) = teacher(
            Some(&emu),
            &[
                "self-instruct",
                "--model",
                m,
                "--device",
                dev,
                "--num",
                "3",
                "--stall-waves",
                "1",
                "--wave-size",
                "4",
                "--batch",
                "8",
                "--max-tokens",
                "24",
                "--temperature",
                "0.9",
                "--seed",
                "3",
                "--out",
                si.to_str().unwrap(),
                "--rejected",
                rej.to_str().unwrap(),
            ],
        );
        assert!(ok, "{dev}: {err}");
        if dev == "cuda" {
            assert!(
                err.contains("device: cuda:0 (kernel emulator on the CPU)"),
                "{err}"
            );
        }
    }
    let read = |f: &str| std::fs::read(d.join(f)).unwrap();
    let gen = read("gen-cpu.jsonl");
    assert_eq!(gen.iter().filter(|&&b| b == b'\n').count(), 10);
    assert!(
        gen == read("gen-cuda.jsonl"),
        "generate: the CUDA backend wrote other bytes"
    );
    assert!(
        read("si-cpu.rejected.jsonl").len() > 100,
        "self-instruct generated nothing"
    );
    assert!(read("si-cpu.jsonl") == read("si-cuda.jsonl"));
    assert!(read("si-cpu.rejected.jsonl") == read("si-cuda.rejected.jsonl"));
    // The manifest says where the model ran (and nothing else differs but timings).
    let manifest = |dev: &str| -> serde_json::Value {
        let p = d.join(format!("si-{dev}.jsonl.manifest.json"));
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    };
    let (mc, mg) = (manifest("cpu"), manifest("cuda"));
    assert_eq!(mc["run"]["device"], "cpu", "{mc}");
    assert_eq!(
        mg["run"]["device"], "cuda:0 (kernel emulator on the CPU)",
        "{mg}"
    );
    assert_eq!(mc["params"], mg["params"]);
}

#[test]
fn a_cuda_build_without_a_gpu_says_so_and_auto_falls_back_to_the_cpu() {
    // This machine has no CUDA driver; a machine that has one skips the first half.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    let m = model.to_str().unwrap();
    let (ok, _, err) = teacher(None, &["models", "synth", "--shape", "tiny", "--out", m]);
    assert!(ok, "{err}");
    let args = |dev: &'static str| {
        vec![
            "bench",
            "--model",
            m,
            "--device",
            dev,
            "--batch",
            "1",
            "--prompt-tokens",
            "4",
            "--gen-tokens",
            "2",
        ]
    };
    let (ok, _, err) = teacher(None, &args("cuda"));
    if ok {
        eprintln!("skipped: this machine has a usable CUDA GPU");
        return;
    }
    assert!(
        err.contains("--device cuda:0") && err.contains("hint: --device auto"),
        "{err}"
    );
    let (ok, out, err) = teacher(None, &args("auto"));
    assert!(ok, "{err}");
    assert!(
        err.contains("device: no usable GPU (no CUDA driver") && err.contains("running on the CPU"),
        "{err}"
    );
    assert!(out.contains("· cpu ·"), "{out}");
}
