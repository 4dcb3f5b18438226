//! `teacher dedup`: keep the first of each near-duplicate group of a JSONL (or JSON
//! array) file, in file order.
//!
//! Records are read and decided in chunks: the expensive part of each decision (the
//! search against everything kept before the chunk) runs in parallel, then the chunk
//! is walked in order to check each survivor against what the chunk itself kept. So
//! decisions are exactly those of a one-at-a-time loop, on any number of threads.
//! Kept records are copied byte for byte. The output is written to a temporary file
//! and renamed into place at the end: a failed run leaves no partial output.

use crate::error::{Error, Result};
use crate::filter::exact::ExactIndex;
use crate::filter::minhash::{MinHashIndex, MinHashParams};
use crate::filter::rouge_l::{DropRule, PruneStats, RougeIndex};
use rayon::prelude::*;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

const CHUNK: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    RougeL,
    MinHash,
    Exact,
}

#[derive(Debug, Clone)]
pub struct DedupOptions {
    pub method: Method,
    pub threshold: f64,
    pub rule: DropRule,
    /// Field paths whose text is compared (`instruction`, `conversations.0.value`);
    /// several are joined with a newline.
    pub fields: Vec<String>,
    pub skip_invalid: bool,
    pub num_perm: usize,
    pub ngram: usize,
    pub verify: bool,
    pub seed: u64,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DedupReport {
    pub read: u64,
    pub kept: u64,
    pub dropped: u64,
    pub invalid: u64,
    pub seconds: f64,
    pub rouge_pruning: Option<PruneStats>,
    pub minhash: Option<MinHashParams>,
}

/// One input record: its line, its bytes as read, the text compared.
struct Record {
    line: usize,
    raw: String,
    text: String,
    id: Option<String>,
}

enum Index {
    Rouge(RougeIndex),
    MinHash(MinHashIndex),
    Exact(ExactIndex),
}

/// What a dropped record duplicated: the kept record's line and id, and the score.
struct Dup {
    kept: u64,
    score: Option<f64>,
}

pub fn run(
    input: &Path,
    out: &Path,
    dropped: Option<&Path>,
    opts: &DedupOptions,
    mut progress: impl FnMut(&DedupReport),
) -> Result<DedupReport> {
    let started = std::time::Instant::now();
    let mut report = DedupReport::default();
    let reader = RecordReader::open(input)?;
    let mut out_file = AtomicFile::create(out)?;
    let mut dropped_file = dropped.map(AtomicFile::create).transpose()?;
    let mut index = match opts.method {
        Method::RougeL => Index::Rouge(RougeIndex::new()),
        Method::MinHash => Index::MinHash(MinHashIndex::new(
            MinHashParams::new(
                opts.threshold,
                opts.num_perm,
                opts.ngram,
                opts.seed,
                if opts.verify { 0.9 } else { 0.5 },
            ),
            opts.verify,
        )),
        Method::Exact => Index::Exact(ExactIndex::new()),
    };
    // The kept records' lines and ids, for the dropped report (index → line, id).
    let mut kept_meta: Vec<(usize, Option<String>)> = Vec::new();
    let mut stats = PruneStats::default();
    let mut warned = 0usize;

    let mut chunk: Vec<Record> = Vec::with_capacity(CHUNK);
    let mut lines = reader.into_iter();
    loop {
        chunk.clear();
        for item in lines.by_ref() {
            let (line, raw) = item?;
            report.read += 1;
            match extract(&raw, &opts.fields) {
                Ok((text, id)) => chunk.push(Record {
                    line,
                    raw,
                    text,
                    id,
                }),
                Err(what) => {
                    if !opts.skip_invalid {
                        return Err(Error::Input {
                            path: input.to_path_buf(),
                            line,
                            what: format!("{what}\nhint: fix the record, choose the field with --field, or pass --skip-invalid"),
                        });
                    }
                    report.invalid += 1;
                    if warned < 5 {
                        eprintln!(
                            "warning: `{}` line {line}: {what} (skipped)",
                            input.display()
                        );
                        warned += 1;
                    }
                }
            }
            if chunk.len() == CHUNK {
                break;
            }
        }
        if chunk.is_empty() {
            break;
        }
        let decisions = decide_chunk(&mut index, &chunk, opts, &mut stats);
        for (rec, dup) in chunk.iter().zip(decisions) {
            match dup {
                None => {
                    out_file.write_line(&rec.raw)?;
                    kept_meta.push((rec.line, rec.id.clone()));
                    report.kept += 1;
                }
                Some(d) => {
                    report.dropped += 1;
                    if let Some(f) = dropped_file.as_mut() {
                        let (kline, kid) = &kept_meta[d.kept as usize];
                        let record: serde_json::Value =
                            serde_json::from_str(&rec.raw).unwrap_or(serde_json::Value::Null);
                        let row = serde_json::json!({
                            "line": rec.line,
                            "record": record,
                            "duplicate_of": { "line": kline, "id": kid },
                            "score": d.score,
                        });
                        f.write_line(&row.to_string())?;
                    }
                }
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        progress(&report);
    }
    out_file.commit()?;
    if let Some(f) = dropped_file {
        f.commit()?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    match &index {
        Index::Rouge(_) => report.rouge_pruning = Some(stats),
        Index::MinHash(m) => report.minhash = Some(m.params.clone()),
        Index::Exact(_) => {}
    }
    Ok(report)
}

/// Decide a chunk: `None` keeps the record, `Some` names what it duplicates.
fn decide_chunk(
    index: &mut Index,
    chunk: &[Record],
    opts: &DedupOptions,
    stats: &mut PruneStats,
) -> Vec<Option<Dup>> {
    match index {
        Index::Rouge(idx) => {
            let toks: Vec<_> = chunk.iter().map(|r| idx.tokens_mut(&r.text)).collect();
            let before = idx.len();
            let shared: &RougeIndex = idx;
            let first: Vec<(Option<Dup>, PruneStats)> = toks
                .par_iter()
                .map(|t| {
                    let mut st = PruneStats::default();
                    let m = shared.best_match(t, opts.threshold, &mut st);
                    let dup = m
                        .filter(|m| opts.rule.drops(m.score, opts.threshold))
                        .map(|m| Dup {
                            kept: m.id,
                            score: Some(m.score),
                        });
                    (dup, st)
                })
                .collect();
            let mut out = Vec::with_capacity(chunk.len());
            for (t, (dup, st)) in toks.into_iter().zip(first) {
                stats.add(&st);
                let dup = dup.or_else(|| {
                    idx.best_match_in(&t, opts.threshold, before, stats)
                        .filter(|m| opts.rule.drops(m.score, opts.threshold))
                        .map(|m| Dup {
                            kept: m.id,
                            score: Some(m.score),
                        })
                });
                if dup.is_none() {
                    let id = idx.len() as u64;
                    idx.insert_tokens(id, t);
                }
                out.push(dup);
            }
            out
        }
        Index::MinHash(idx) => {
            let shared: &MinHashIndex = idx;
            let sketches: Vec<_> = chunk.par_iter().map(|r| shared.sketch(&r.text)).collect();
            sketches
                .into_iter()
                .map(|sk| match idx.find(&sk) {
                    Some(m) => Some(Dup {
                        kept: m.id,
                        score: m.jaccard,
                    }),
                    None => {
                        let id = idx.len() as u64;
                        idx.insert(id, sk);
                        None
                    }
                })
                .collect()
        }
        Index::Exact(idx) => chunk
            .iter()
            .map(|r| {
                let id = idx.len() as u64;
                idx.insert(id, &r.text).map(|k| Dup {
                    kept: k,
                    score: Some(1.0),
                })
            })
            .collect(),
    }
}

/// The compared text of a record, and its `id` if it has one.
fn extract(raw: &str, fields: &[String]) -> std::result::Result<(String, Option<String>), String> {
    let v: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| format!("not valid JSON: {e}"))?;
    if !v.is_object() {
        return Err("a record must be a JSON object".into());
    }
    let mut parts = Vec::with_capacity(fields.len());
    for f in fields {
        let mut cur = &v;
        for key in f.split('.') {
            let next = match cur {
                serde_json::Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                serde_json::Value::Object(o) => o.get(key),
                _ => None,
            };
            cur = next.ok_or_else(|| format!("has no field `{f}`"))?;
        }
        match cur {
            serde_json::Value::String(s) => parts.push(s.as_str()),
            other => return Err(format!("field `{f}` is {}, not a string", json_kind(other))),
        }
    }
    let id = match v.get("id") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok((parts.join("\n"), id))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// JSONL read line by line, or a JSON array (read whole) turned into lines.
enum RecordReader {
    Lines(PathBuf, std::io::Lines<std::io::BufReader<std::fs::File>>),
    Array(std::vec::IntoIter<(usize, String)>),
}

impl RecordReader {
    fn open(path: &Path) -> Result<Self> {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut first = [0u8; 1];
        let mut is_array = false;
        loop {
            use std::io::Read;
            match f.read(&mut first).map_err(|e| Error::io(path, e))? {
                0 => break,
                // Whitespace and a UTF-8 byte-order mark (EF BB BF) before the data.
                _ if first[0].is_ascii_whitespace() || matches!(first[0], 0xEF | 0xBB | 0xBF) => {
                    continue
                }
                _ => {
                    is_array = first[0] == b'[';
                    break;
                }
            }
        }
        if is_array {
            let text = crate::input::read_text(path)?;
            let items: Vec<serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| Error::Input {
                    path: path.to_path_buf(),
                    line: e.line(),
                    what: format!("not a valid JSON array: {e}"),
                })?;
            let rows: Vec<(usize, String)> = items
                .iter()
                .enumerate()
                .map(|(i, v)| (i + 1, v.to_string()))
                .collect();
            return Ok(RecordReader::Array(rows.into_iter()));
        }
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(RecordReader::Lines(
            path.to_path_buf(),
            std::io::BufReader::with_capacity(1 << 20, f).lines(),
        ))
    }
}

impl IntoIterator for RecordReader {
    type Item = Result<(usize, String)>;
    type IntoIter = Box<dyn Iterator<Item = Result<(usize, String)>>>;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            RecordReader::Array(it) => Box::new(it.map(Ok)),
            RecordReader::Lines(path, lines) => Box::new(
                lines
                    .enumerate()
                    .map(move |(i, l)| match l {
                        Ok(s) if i == 0 => Ok((1, crate::input::strip_bom(&s).to_string())),
                        Ok(s) => Ok((i + 1, s)),
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                            Err(Error::Input {
                                path: path.clone(),
                                line: i + 1,
                                what: "is not valid UTF-8".into(),
                            })
                        }
                        Err(e) => Err(Error::io(&path, e)),
                    })
                    .filter(|r| !matches!(r, Ok((_, s)) if s.trim().is_empty())),
            ),
        }
    }
}

/// A file written under a temporary name and renamed into place on `commit`; dropped
/// without commit, it removes itself. The destination is locked from `create` on, so a
/// second process writing the same file is refused (and the lock takes an empty file,
/// removed again if the write never commits).
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    w: Option<BufWriter<std::fs::File>>,
    /// Whether `create` made the (empty) destination to lock it.
    made_destination: bool,
    _lock: crate::files::OutputLock,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let (lock, made_destination) = crate::files::OutputLock::acquire(path)?;
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let f = match std::fs::File::create(&tmp) {
            Ok(f) => f,
            Err(e) => {
                if made_destination {
                    let _ = std::fs::remove_file(path);
                }
                return Err(Error::io(&tmp, e));
            }
        };
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            w: Some(BufWriter::with_capacity(1 << 20, f)),
            made_destination,
            _lock: lock,
        })
    }

    /// Write `text` as it is.
    pub fn write_text(&mut self, text: &str) -> Result<()> {
        let w = self.w.as_mut().expect("open until commit");
        w.write_all(text.as_bytes())
            .map_err(|e| Error::io(&self.tmp, e))
    }

    pub fn write_line(&mut self, line: &str) -> Result<()> {
        let w = self.w.as_mut().expect("open until commit");
        w.write_all(line.as_bytes())
            .and_then(|_| w.write_all(b"\n"))
            .map_err(|e| Error::io(&self.tmp, e))
    }

    pub fn commit(mut self) -> Result<()> {
        let w = self.w.take().expect("open until commit");
        let f = w
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.w.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
            if self.made_destination {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}
