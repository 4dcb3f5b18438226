//! Human-written seed tasks: the embedded default set and user files in the
//! Self-Instruct seed schema, Alpaca records (JSON array or JSONL), or plain text.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The default seeds, written for teacher (see `seeds/README.md`).
const DEFAULT_SEEDS: &str = include_str!("../../seeds/seed_tasks.jsonl");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    #[serde(default)]
    pub input: String,
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedTask {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub instruction: String,
    #[serde(default)]
    pub instances: Vec<Instance>,
    #[serde(default)]
    pub is_classification: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeedFormat {
    /// `{"id", "name", "instruction", "instances": [{input, output}], "is_classification"}` per line.
    SelfInstruct,
    /// `{"instruction", "input", "output"}` as a JSON array or one per line.
    Alpaca,
    /// One instruction per line.
    Text,
}

pub fn default_seeds() -> Vec<SeedTask> {
    parse(
        Path::new("seeds/seed_tasks.jsonl"),
        DEFAULT_SEEDS,
        Some(SeedFormat::SelfInstruct),
    )
    .expect("the embedded seed set parses (tested)")
}

pub fn load(path: &Path, format: Option<SeedFormat>) -> Result<Vec<SeedTask>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::Input {
            path: path.to_path_buf(),
            line,
            what: "is not valid UTF-8".into(),
        }
    })?;
    let seeds = parse(path, crate::input::strip_bom(&text), format)?;
    if seeds.is_empty() {
        return Err(Error::Input {
            path: path.to_path_buf(),
            line: 1,
            what: "holds no seed tasks".into(),
        });
    }
    Ok(seeds)
}

fn detect(text: &str) -> SeedFormat {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return SeedFormat::Alpaca;
    }
    if trimmed.starts_with('{') {
        let first = trimmed.lines().next().unwrap_or("");
        return match serde_json::from_str::<serde_json::Value>(first) {
            Ok(v) if v.get("instances").is_some() => SeedFormat::SelfInstruct,
            _ => SeedFormat::Alpaca,
        };
    }
    SeedFormat::Text
}

pub fn parse(path: &Path, text: &str, format: Option<SeedFormat>) -> Result<Vec<SeedTask>> {
    let bad = |line: usize, what: String| Error::Input {
        path: path.to_path_buf(),
        line,
        what,
    };
    let mut out = Vec::new();
    match format.unwrap_or_else(|| detect(text)) {
        SeedFormat::Text => {
            for (i, l) in text.lines().enumerate() {
                let l = l.trim();
                if !l.is_empty() {
                    out.push(SeedTask {
                        id: format!("seed_{}", i + 1),
                        name: String::new(),
                        instruction: l.to_string(),
                        instances: Vec::new(),
                        is_classification: false,
                    });
                }
            }
        }
        SeedFormat::SelfInstruct => {
            for (i, l) in text.lines().enumerate() {
                if l.trim().is_empty() {
                    continue;
                }
                let mut t: SeedTask = serde_json::from_str(l)
                    .map_err(|e| bad(i + 1, format!("is not a Self-Instruct seed task: {e}")))?;
                if t.instruction.trim().is_empty() {
                    return Err(bad(i + 1, "has an empty `instruction`".into()));
                }
                if t.id.is_empty() {
                    t.id = format!("seed_{}", i + 1);
                }
                out.push(t);
            }
        }
        SeedFormat::Alpaca => {
            let rows: Vec<(usize, serde_json::Value)> = if text.trim_start().starts_with('[') {
                let v: Vec<serde_json::Value> = serde_json::from_str(text)
                    .map_err(|e| bad(e.line(), format!("is not a JSON array of records: {e}")))?;
                v.into_iter().enumerate().map(|(i, r)| (i + 1, r)).collect()
            } else {
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .map(|(i, l)| {
                        serde_json::from_str(l)
                            .map(|v| (i + 1, v))
                            .map_err(|e| bad(i + 1, format!("is not valid JSON: {e}")))
                    })
                    .collect::<Result<_>>()?
            };
            for (n, r) in rows {
                let field = |k: &str| -> Result<String> {
                    match r.get(k) {
                        None | Some(serde_json::Value::Null) => Ok(String::new()),
                        Some(serde_json::Value::String(s)) => Ok(s.clone()),
                        Some(other) => {
                            Err(bad(n, format!("`{k}` must be a string, found {other}")))
                        }
                    }
                };
                let instruction = field("instruction")?;
                if instruction.trim().is_empty() {
                    return Err(bad(n, "has no `instruction`".into()));
                }
                let output = field("output")?;
                let instances = if output.is_empty() {
                    Vec::new()
                } else {
                    vec![Instance {
                        input: field("input")?,
                        output,
                    }]
                };
                out.push(SeedTask {
                    id: match r.get("id") {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(v @ serde_json::Value::Number(_)) => v.to_string(),
                        _ => format!("seed_{n}"),
                    },
                    name: String::new(),
                    instruction,
                    instances,
                    is_classification: r
                        .get("is_classification")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_is_large_and_diverse() {
        let s = default_seeds();
        assert!(s.len() >= 120);
        assert!(s.iter().filter(|t| t.is_classification).count() >= 25);
        assert!(s
            .iter()
            .all(|t| !t.instances.is_empty() && !t.instruction.is_empty()));
        let ids: std::collections::HashSet<_> = s.iter().map(|t| &t.id).collect();
        assert_eq!(ids.len(), s.len());
    }

    #[test]
    fn formats_are_detected() {
        let p = Path::new("x");
        let si = r#"{"id":"a","name":"n","instruction":"Do it.","instances":[{"input":"","output":"ok"}],"is_classification":false}"#;
        assert_eq!(parse(p, si, None).unwrap()[0].instances[0].output, "ok");
        let al = r#"[{"instruction":"Add.","input":"1 2","output":"3"},{"instruction":"Hi.","input":"","output":""}]"#;
        let a = parse(p, al, None).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].instances[0].input, "1 2");
        assert!(a[1].instances.is_empty());
        let tx = "Write a poem.\n\nName a color.\n";
        assert_eq!(parse(p, tx, None).unwrap().len(), 2);
    }

    #[test]
    fn malformed_records_name_the_line() {
        let p = Path::new("seeds.jsonl");
        let e = parse(p, "{\"instruction\":\"a\",\"instances\":[]}\n{bad\n", None).unwrap_err();
        assert!(e.to_string().contains("seeds.jsonl` line 2"), "{e}");
        let e = parse(p, "[{\"instruction\": 5}]", None).unwrap_err();
        assert!(
            e.to_string().contains("line 1")
                && e.to_string().contains("`instruction` must be a string"),
            "{e}"
        );
    }
}
