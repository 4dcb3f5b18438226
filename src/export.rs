//! Export teacher's JSONL records as Alpaca, ShareGPT or chat-messages JSON.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A JSON array of `{instruction, input, output}`.
    Alpaca,
    /// JSONL of `{conversations: [{from: human, value}, {from: gpt, value}]}`.
    Sharegpt,
    /// JSONL of `{messages: [{role: user, content}, {role: assistant, content}]}`.
    Messages,
}

/// The user turn of a record: the instruction, then the input after a blank line.
fn user_turn(r: &Value) -> String {
    let inst = r["instruction"].as_str().unwrap_or_default();
    match r["input"].as_str() {
        Some(i) if !i.is_empty() => format!("{inst}\n\n{i}"),
        _ => inst.to_string(),
    }
}

pub fn convert(records: &[Value], f: Format) -> String {
    match f {
        Format::Alpaca => {
            let rows: Vec<Value> = records
                .iter()
                .map(|r| json!({"instruction": r["instruction"], "input": r["input"], "output": r["output"]}))
                .collect();
            serde_json::to_string_pretty(&rows).expect("values serialise") + "\n"
        }
        Format::Sharegpt => records
            .iter()
            .map(|r| {
                json!({"id": r["id"], "conversations": [
                    {"from": "human", "value": user_turn(r)},
                    {"from": "gpt", "value": r["output"]},
                ]})
                .to_string()
                    + "\n"
            })
            .collect(),
        Format::Messages => records
            .iter()
            .map(|r| {
                json!({"id": r["id"], "messages": [
                    {"role": "user", "content": user_turn(r)},
                    {"role": "assistant", "content": r["output"]},
                ]})
                .to_string()
                    + "\n"
            })
            .collect(),
    }
}

/// Write `<input stem>.<format>.json(l)` beside `input` (never `input` itself: the name
/// gains a part); returns its path.
pub fn export_file(input: &Path, f: Format) -> Result<PathBuf> {
    let file = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
    let mut records = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(input, e))?;
        if line.trim().is_empty() {
            continue;
        }
        records.push(serde_json::from_str(&line).map_err(|e| Error::Input {
            path: input.to_path_buf(),
            line: i + 1,
            what: format!("not valid JSON: {e}"),
        })?);
    }
    let (name, ext) = match f {
        Format::Alpaca => ("alpaca", "json"),
        Format::Sharegpt => ("sharegpt", "jsonl"),
        Format::Messages => ("messages", "jsonl"),
    };
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = input.with_file_name(format!("{stem}.{name}.{ext}"));
    // Locked and renamed into place, like every output: never half-written, never
    // written by two runs at once.
    let mut file = crate::dedup::AtomicFile::create(&out)?;
    file.write_text(&convert(&records, f))?;
    file.commit()?;
    Ok(out)
}
