//! Instruction lists as `respond` and `evolve` read them: Alpaca records (JSON array or
//! JSONL), teacher's own records, `messages` / ShareGPT `conversations` records, or
//! plain text with one instruction per line.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;
use teacher_models::Message;

#[derive(Debug, Clone)]
pub struct Item {
    pub line: usize,
    pub id: String,
    pub instruction: String,
    pub input: String,
    /// A whole conversation to answer (messages records).
    pub messages: Option<Vec<Message>>,
    /// The record as read, kept in the output.
    pub record: Value,
}

impl Item {
    /// The instruction and its input as one prompt, as WizardLM's code joins them.
    pub fn prompt_text(&self) -> String {
        if self.input.trim().is_empty() {
            self.instruction.trim().to_string()
        } else {
            format!("{}\n{}", self.instruction.trim(), self.input.trim())
        }
    }
}

pub fn load(path: &Path) -> Result<Vec<Item>> {
    load_with(path, false)
}

/// `load`, also accepting records of `teacher generate` output (`text` and
/// `finish_reason`, no instruction — their prompts are in the generate input), whose
/// instruction is left empty.
pub fn load_outputs(path: &Path) -> Result<Vec<Item>> {
    load_with(path, true)
}

/// A record of `teacher generate` output: a completion (`text`, `finish_reason`) with
/// no instruction, prompt or conversation of its own.
pub fn is_generate_output(r: &Value) -> bool {
    r.get("text").is_some()
        && r.get("finish_reason").is_some()
        && ["instruction", "prompt", "messages", "conversations"]
            .iter()
            .all(|k| r.get(*k).is_none())
}

fn load_with(path: &Path, generate_outputs: bool) -> Result<Vec<Item>> {
    let text = crate::input::read_text(path)?;
    let bad = |line: usize, what: String| Error::Input {
        path: path.to_path_buf(),
        line,
        what,
    };
    let trimmed = text.trim_start();
    let rows: Vec<(usize, Value)> = if trimmed.starts_with('[') {
        let v: Vec<Value> = serde_json::from_str(&text)
            .map_err(|e| bad(e.line(), format!("not a JSON array of records: {e}")))?;
        v.into_iter().enumerate().map(|(i, r)| (i + 1, r)).collect()
    } else if trimmed.starts_with('{') {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map(|v| (i + 1, v))
                    .map_err(|e| bad(i + 1, format!("not valid JSON: {e}")))
            })
            .collect::<Result<_>>()?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, serde_json::json!({"instruction": l.trim()})))
            .collect()
    };
    if rows.is_empty() {
        return Err(bad(1, "holds no records (the file is empty)".into()));
    }
    let mut items = Vec::with_capacity(rows.len());
    let mut seen = std::collections::HashSet::new();
    for (line, r) in rows {
        let obj = r
            .as_object()
            .ok_or_else(|| bad(line, "a record must be a JSON object".into()))?;
        let id = match obj.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Number(_)) => v.to_string(),
            _ => format!("item-{line}"),
        };
        if !seen.insert(id.clone()) {
            return Err(bad(line, format!("id `{id}` appears twice")));
        }
        let str_field = |k: &str| -> Result<String> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(bad(line, format!("`{k}` must be a string, found {other}"))),
            }
        };
        let messages: Option<Vec<Message>> = if let Some(m) = obj.get("messages") {
            Some(serde_json::from_value(m.clone()).map_err(|e| {
                bad(
                    line,
                    format!("`messages` must be a list of {{role, content}}: {e}"),
                )
            })?)
        } else if let Some(Value::Array(c)) = obj.get("conversations") {
            let mut ms = Vec::new();
            for turn in c {
                let from = turn["from"].as_str().unwrap_or("");
                let role = match from {
                    "human" | "user" => "user",
                    "gpt" | "assistant" | "model" => "assistant",
                    "system" => "system",
                    other => return Err(bad(line, format!("unknown ShareGPT speaker `{other}`"))),
                };
                ms.push(Message::new(role, turn["value"].as_str().unwrap_or("")));
            }
            Some(ms)
        } else {
            None
        };
        // A conversation is answered up to its last user turn.
        let (instruction, input, messages) = match messages {
            Some(mut ms) => {
                while ms.last().is_some_and(|m| m.role != "user") {
                    ms.pop();
                }
                let last = ms
                    .last()
                    .ok_or_else(|| bad(line, "the conversation has no user turn".into()))?;
                (last.content.clone(), String::new(), Some(ms))
            }
            None => {
                let inst = str_field("instruction")?;
                let inst = if inst.is_empty() {
                    str_field("prompt")?
                } else {
                    inst
                };
                let inst = if inst.is_empty() {
                    str_field("text")?
                } else {
                    inst
                };
                if generate_outputs && is_generate_output(&r) {
                    (String::new(), String::new(), None)
                } else if inst.trim().is_empty() {
                    return Err(bad(
                        line,
                        "has no `instruction` (or `messages`, `conversations`, `prompt`, `text`)"
                            .into(),
                    ));
                } else {
                    (inst, str_field("input")?, None)
                }
            }
        };
        items.push(Item {
            line,
            id,
            instruction,
            input,
            messages,
            record: r,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_loads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        std::fs::write(
            &p,
            r#"{"id":"x","instruction":"Add.","input":"1 2","output":"3"}
{"messages":[{"role":"user","content":"Hi there"},{"role":"assistant","content":"Hello"}]}
{"conversations":[{"from":"human","value":"Name a fruit"}]}
"#,
        )
        .unwrap();
        let items = load(&p).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].prompt_text(), "Add.\n1 2");
        assert_eq!(items[1].instruction, "Hi there");
        assert_eq!(items[1].messages.as_ref().unwrap().len(), 1);
        assert_eq!(items[2].id, "item-3");
        let t = d.path().join("b.txt");
        std::fs::write(&t, "Write a poem.\n\nName a color.\n").unwrap();
        assert_eq!(load(&t).unwrap().len(), 2);
        // generate output (an empty completion too) loads only as outputs.
        std::fs::write(&p, "{\"id\":1,\"text\":\"\",\"finish_reason\":\"stop\"}\n").unwrap();
        assert!(load(&p).is_err());
        let g = load_outputs(&p).unwrap();
        assert_eq!((g[0].id.as_str(), g[0].instruction.as_str()), ("1", ""));
        std::fs::write(&p, "{\"output\":\"x\"}\n").unwrap();
        assert!(load(&p)
            .unwrap_err()
            .to_string()
            .contains("line 1: has no `instruction`"));
    }
}
