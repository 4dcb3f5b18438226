//! Shared helpers: real models fetched through the product's own catalog path.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const SMOLLM2: &str = "smollm2-135m-instruct";
pub const GEMMA3: &str = "gemma3-270m";

static PULL: Mutex<()> = Mutex::new(());

/// The GGUF of a catalog model, downloaded (and sha256-checked) on first use.
pub fn model_path(name: &str) -> PathBuf {
    let _guard = PULL.lock().unwrap_or_else(|e| e.into_inner());
    teacher_models::fetch::resolve(name, false)
        .unwrap_or_else(|e| panic!("cannot provision test model `{name}`: {e}"))
        .path
}

/// `../shared` beside the checkout, where the reference data lives.
/// The project's shared reference material: `../shared` beside the checkout, or
/// `TEACHER_SHARED` for a checkout elsewhere.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("TEACHER_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

/// A file of the shared reference data, or a panic that says where it was looked for.
pub fn shared_data(name: &str) -> String {
    let path = shared_dir().join("data").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the shared reference data {} ({e}): the tests expect the project's \
             shared/ folder beside the checkout, or its path in TEACHER_SHARED",
            path.display()
        )
    })
}

pub fn teacher_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_teacher"))
}

/// Run the teacher binary; returns (status success, stdout, stderr).
pub fn run_teacher(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(teacher_bin())
        .args(args)
        .env_remove("TEACHER_MODEL")
        .output()
        .expect("the teacher binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `python3` able to import `module`; when the system Python cannot, the PyPI package
/// `requirement` is installed once into `target/pydeps` and put on PYTHONPATH.
pub fn python_with(module: &str, requirement: &str) -> std::process::Command {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pydeps");
    let importable = |pythonpath: Option<&Path>| {
        let mut c = std::process::Command::new("python3");
        if let Some(p) = pythonpath {
            c.env("PYTHONPATH", p);
        }
        c.args(["-c", &format!("import {module}")])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut cmd = std::process::Command::new("python3");
    if importable(None) {
        return cmd;
    }
    if !importable(Some(&deps)) {
        let ok = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&deps)
            .arg(requirement)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "could not install {requirement} for the differential test"
        );
    }
    cmd.env("PYTHONPATH", &deps);
    cmd
}

/// Run the teacher binary in `dir` with `--batch` and a thread count; returns (success,
/// stderr). The pipelines' determinism tests vary exactly these two.
pub fn teacher_in(dir: &Path, args: &[&str], batch: usize, threads: usize) -> (bool, String) {
    let o = std::process::Command::new(teacher_bin())
        .current_dir(dir)
        .args(args)
        .args(["--batch", &batch.to_string()])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env_remove("TEACHER_MODEL")
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A file of a test directory as text.
pub fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap()
}
