//! A catalog model with a Hugging Face source, fetched through hf-hub from a real HTTP
//! server on localhost that answers the way huggingface.co's `resolve` endpoint does
//! (the range probe with `etag`, `x-repo-commit` and `content-range`, then the ranged
//! download). The real repositories cannot be reached from here; this runs the whole
//! path — hf-hub's client, the size and sha256 checks, the placement in the cache —
//! against bytes whose digest the test knows.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use teacher_models::catalog::{CatalogEntry, HfSource};
use teacher_models::fetch::{pull_into_with, HfAccess};
use teacher_models::Error;

const REPO: &str = "someone/Tiny-GGUF";
const REV: &str = "0123456789abcdef0123456789abcdef01234567";
const FILE: &str = "tiny-q4_k_m.gguf";

/// Serve `body` at /REPO/resolve/REV/FILE; count the requests.
fn serve(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            // `Range: bytes=a-b` (b absent: to the end).
            let mut range: Option<(usize, Option<usize>)> = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap_or(("0", ""));
                    range = Some((a.parse().unwrap_or(0), b.parse().ok()));
                }
            }
            let n = body.len();
            let (status, extra, payload): (&str, String, &[u8]) = if path
                != format!("/{REPO}/resolve/{REV}/{FILE}")
            {
                ("404 Not Found", String::new(), b"Entry not found")
            } else {
                let (start, last) = match range {
                    Some((a, Some(b))) => (a.min(n - 1), b.min(n - 1)),
                    Some((a, None)) => (a.min(n), n - 1),
                    None => (0, n - 1),
                };
                let slice: &[u8] = &body[start..=last];
                (
                        "206 Partial Content",
                        format!(
                            "etag: \"{}\"\r\nx-repo-commit: {REV}\r\ncontent-range: bytes {start}-{last}/{n}\r\n",
                            hex(&Sha256::digest(&body))
                        ),
                        slice,
                    )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
                payload.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(payload);
        }
    });
    (addr, hits)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn entry(bytes: u64, sha256: String, file: &str) -> CatalogEntry {
    CatalogEntry {
        name: "tiny-teacher".into(),
        default: false,
        description: "test".into(),
        architecture: "llama".into(),
        kind: "instruct".into(),
        template: "chatml".into(),
        license: "test".into(),
        file: file.into(),
        bytes,
        sha256,
        parts: Vec::new(),
        hf: Some(HfSource {
            repo: REPO.into(),
            revision: REV.into(),
        }),
    }
}

fn body() -> Vec<u8> {
    // 300 kB that are not all one value.
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn a_hugging_face_catalog_model_is_fetched_checked_and_cached() {
    let data = body();
    let (endpoint, hits) = serve(data.clone());
    let dir = tempfile::tempdir().unwrap();
    let access = HfAccess {
        endpoint: Some(endpoint),
        cache: Some(dir.path().join("hf")),
    };
    let models = dir.path().join("models");
    let e = entry(data.len() as u64, hex(&Sha256::digest(&data)), FILE);
    let path = pull_into_with(&e, &models, false, false, &access).unwrap();
    assert_eq!(path, models.join(FILE));
    assert_eq!(std::fs::read(&path).unwrap(), data);
    // Nothing temporary is left beside it.
    let names: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(FILE)]);
    // A second pull (verifying) uses the cache: no request.
    let before = hits.load(Ordering::SeqCst);
    pull_into_with(&e, &models, true, true, &access).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), before);
}

#[test]
fn a_wrong_digest_or_size_keeps_nothing_and_says_which() {
    let data = body();
    let (endpoint, _) = serve(data.clone());
    let dir = tempfile::tempdir().unwrap();
    let access = HfAccess {
        endpoint: Some(endpoint),
        cache: Some(dir.path().join("hf")),
    };
    let models = dir.path().join("models");
    let wrong = entry(data.len() as u64, "ab".repeat(32), FILE);
    match pull_into_with(&wrong, &models, false, false, &access) {
        Err(Error::HashMismatch {
            name,
            expected,
            actual,
        }) => {
            assert!(
                name.contains("tiny-teacher") && name.contains("hf-hub cache"),
                "{name}"
            );
            assert_eq!(expected, "ab".repeat(32));
            assert_eq!(actual, hex(&Sha256::digest(&data)));
        }
        other => panic!("expected a sha256 mismatch, got {other:?}"),
    }
    assert!(!models.join(FILE).exists());
    let short = entry(data.len() as u64 + 1, hex(&Sha256::digest(&data)), FILE);
    let err = pull_into_with(&short, &models, false, false, &access)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected 300001") && err.contains("delete it"),
        "{err}"
    );
    assert!(!models.join(FILE).exists());
}

#[test]
fn a_missing_file_and_offline_mode_are_clear_errors() {
    let (endpoint, hits) = serve(body());
    let dir = tempfile::tempdir().unwrap();
    let access = HfAccess {
        endpoint: Some(endpoint),
        cache: Some(dir.path().join("hf")),
    };
    let models = dir.path().join("models");
    let missing = entry(1, "00".repeat(32), "no-such-file.gguf");
    let err = pull_into_with(&missing, &models, false, false, &access)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tiny-teacher") && err.contains("HF_TOKEN"),
        "{err}"
    );
    let before = hits.load(Ordering::SeqCst);
    let err = pull_into_with(&missing, &models, true, false, &access).unwrap_err();
    assert!(matches!(err, Error::Offline { .. }), "{err}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "offline made a request"
    );
}
