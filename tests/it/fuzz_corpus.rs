//! Replays the fuzz corpus (`fuzz/corpus/TARGET/`) and every crasher found so far
//! (`fuzz/regressions/TARGET/`, kept after the fix) through the fuzz targets' entry
//! points, so a normal `cargo test` guards what fuzzing found. Run the fuzzers with
//! `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none TARGET`.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| f(&data));
            assert!(r.is_ok(), "{target}: {} panics", p.display());
            n += 1;
        }
    }
    assert!(n > 0, "{target}: no corpus found under {}", root.display());
}

#[test]
fn fuzz_corpus_gguf_replays_cleanly() {
    replay("gguf", teacher::fuzzing::gguf);
}

#[test]
fn fuzz_corpus_chat_template_replays_cleanly() {
    replay("chat_template", teacher::fuzzing::chat_template);
}

#[test]
fn fuzz_corpus_input_files_replays_cleanly() {
    replay("input_files", teacher::fuzzing::input_files);
}

#[test]
fn fuzz_corpus_rouge_replays_cleanly() {
    replay("rouge", teacher::fuzzing::rouge);
}
