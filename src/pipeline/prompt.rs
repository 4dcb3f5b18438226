//! Prompt texts and completion parsers of the Self-Instruct pipeline.
//!
//! The templates are teacher's own wording of the method (files beside this one);
//! `PROMPT_VERSION` goes into every record so a dataset says which wording made it.

use crate::filter::heuristics::collapse_ws;
use regex::Regex;
use std::sync::OnceLock;

pub const PROMPT_VERSION: &str = "teacher-si-2";

const GENERATE: &str = include_str!("prompts/si_generate.txt");
const CLASSIFY: &str = include_str!("prompts/si_classify.txt");
const INPUT_FIRST: &str = include_str!("prompts/si_instances_input_first.txt");
const OUTPUT_FIRST: &str = include_str!("prompts/si_instances_output_first.txt");
const ALPACA: &str = include_str!("prompts/alpaca_generate.txt");

/// Paper style: numbered in-context instructions; the model continues the list after
/// the next number.
pub fn paper_generate(examples: &[&str]) -> String {
    let mut p = GENERATE.to_string();
    for (i, inst) in examples.iter().enumerate() {
        let inst = collapse_ws(inst);
        p.push_str(&format!("{}. {}\n", i + 1, inst.trim_end_matches(':')));
    }
    p.push_str(&format!("{}.", examples.len() + 1));
    p
}

fn re(pattern: &'static str, cell: &'static OnceLock<Regex>) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static regex"))
}

/// The instructions of a paper-style completion (the text after "9."): split on a
/// newline, a number, an optional space, a period and a space.
pub fn parse_paper_completion(text: &str) -> Vec<String> {
    static SPLIT: OnceLock<Regex> = OnceLock::new();
    re(r"\n\d+\s?\. ", &SPLIT)
        .split(text)
        .map(collapse_ws)
        .collect()
}

pub fn classify_prompt(instruction: &str) -> String {
    format!("{CLASSIFY} {}\nClassification:", instruction.trim())
}

/// Classification iff the answer is Yes (any of the reference's spellings).
pub fn parse_classify(completion: &str) -> bool {
    matches!(completion.trim(), "Yes" | "yes" | "YES")
}

pub fn instances_prompt(instruction: &str, classification: bool) -> String {
    let t = if classification {
        OUTPUT_FIRST
    } else {
        INPUT_FIRST
    };
    format!("{t} {}\n", instruction.trim())
}

/// (input, output) pairs of an input-first completion (§5.1 of the reference notes).
pub fn parse_input_first(text: &str) -> Vec<(String, String)> {
    static EXAMPLE: OnceLock<Regex> = OnceLock::new();
    static OUTPUT: OnceLock<Regex> = OnceLock::new();
    static INPUT: OnceLock<Regex> = OnceLock::new();
    let example = re(r"Example\s?\d*\.?", &EXAMPLE);
    let output = re(r"Output\s*\d*\s*:", &OUTPUT);
    let input = re(r"^\s*Input\s*\d*\s*:", &INPUT);
    let pieces: Vec<&str> = if example.is_match(text) {
        example
            .split(text)
            .filter(|p| !p.trim().is_empty())
            .collect()
    } else if output.is_match(text) {
        vec![text]
    } else {
        return Vec::new();
    };
    static INPUT_ANY: OnceLock<Regex> = OnceLock::new();
    let input_any = re(r"Input\s*\d*\s*:", &INPUT_ANY);
    pieces
        .into_iter()
        .map(|p| {
            let marks: Vec<_> = output.find_iter(p).collect();
            let (inp, mut out) = match marks.first() {
                Some(m) => {
                    let end = marks.get(1).map_or(p.len(), |n| n.start());
                    (&p[..m.start()], &p[m.end()..end])
                }
                None => ("", p),
            };
            if let Some(m) = input_any.find(out) {
                out = &out[..m.start()];
            }
            let inp = input.replace(inp.trim(), "").trim().to_string();
            (inp, out.trim().to_string())
        })
        .collect()
}

/// (input, label) pairs of an output-first completion (§5.2).
pub fn parse_output_first(text: &str) -> Vec<(String, String)> {
    if !text.contains("Class label:") {
        return Vec::new();
    }
    text.split("Class label:")
        .skip(1)
        .map(|piece| {
            let mut lines = piece.trim().lines();
            let label = lines.next().unwrap_or("").trim().to_string();
            let input = lines
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_string();
            (input, label)
        })
        .collect()
}

/// Alpaca style: the user message with the rules and the in-context tasks (numbered
/// from 1), ready for the chat template; the assistant turn is then primed with
/// `{n}. Instruction:` for the first new task.
pub fn alpaca_user_message(examples: &[(&str, &str, &str)], num_tasks: usize) -> String {
    let mut ex = String::new();
    for (i, (inst, input, output)) in examples.iter().enumerate() {
        let k = i + 1;
        let inst = collapse_ws(inst);
        let input = if input.trim().is_empty() {
            "<noinput>"
        } else {
            input
        };
        ex.push_str(&format!(
            "###\n{k}. Instruction: {}\n{k}. Input:\n{input}\n{k}. Output:\n{output}\n",
            inst.trim_end_matches(':')
        ));
    }
    ex.push_str("###");
    ALPACA
        .replace("{num_tasks}", &num_tasks.to_string())
        .replace("{examples}", &ex)
}

/// Version of the output constraints `--constrained` puts on pipeline generations
/// (recorded with the prompt version).
pub const CONSTRAINT_VERSION: &str = "c1";

/// The shape of an alpaca-style completion after the primer `{first}. Instruction:`:
/// complete tasks (instruction line, `Input:` and `Output:` fields, `###`), numbered on
/// from `first` up to `last`, so every task the model finishes is one the parser reads.
pub fn alpaca_constraint(first: usize, last: usize) -> String {
    let task = |k: usize| {
        format!(r" [^\n]+\n{k}\. Input:\n[^\n]+\n{k}\. Output:\n[^\n]+(?:\n[^#\n][^\n]*)*\n###")
    };
    let mut re = String::new();
    for k in (first..=last.max(first)).rev() {
        re = if re.is_empty() {
            task(k)
        } else {
            format!(r"{}(?:\n{}\. Instruction:{re})?", task(k), k + 1)
        };
    }
    re
}

/// The shape of a paper-style completion after `{first}.`: one instruction per line,
/// numbered on from `first` up to `last`.
pub fn paper_constraint(first: usize, last: usize) -> String {
    let mut re = String::new();
    for k in (first..=last.max(first)).rev() {
        let line = r" [^\n]{3,}";
        re = if re.is_empty() {
            line.to_string()
        } else {
            format!(r"{line}(?:\n{}\.{re})?", k + 1)
        };
    }
    re + r"\n?"
}

/// The classification question's answer.
pub const CLASSIFY_CONSTRAINT: &str = " ?(?:Yes|No)";

/// What the assistant's turn starts with in alpaca style.
pub fn alpaca_primer(first_number: usize) -> String {
    format!("{first_number}. Instruction:")
}

/// One task read from an alpaca-style completion; `output` is None when the model
/// did not write one (it is then asked for separately).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedTask {
    pub instruction: String,
    pub input: String,
    pub output: Option<String>,
}

/// Tasks of an alpaca-style completion, read leniently: pieces are separated by `###`
/// or by a new numbered `Instruction:` line; in each, the instruction runs to the
/// `Input:`/`Output:` field or, without fields, to the end of its line; `<noinput>`
/// means no input. With `truncated`, the last piece keeps only a complete instruction
/// line (its input and output may be cut). None marks a piece with no instruction.
pub fn parse_alpaca_completion(
    completion: &str,
    first_number: usize,
    truncated: bool,
) -> Vec<Option<ParsedTask>> {
    static NUMBERED: OnceLock<Regex> = OnceLock::new();
    static INST: OnceLock<Regex> = OnceLock::new();
    static INPUT: OnceLock<Regex> = OnceLock::new();
    static OUTPUT: OnceLock<Regex> = OnceLock::new();
    let numbered = re(r"\n\s*\d+\.\s*Instruction:", &NUMBERED);
    let inst_re = re(r"^\s*(?:\d+\.\s*)?Instruction:", &INST);
    let input_re = re(r"(?:\d+\.\s*)?Input:", &INPUT);
    let output_re = re(r"(?:\d+\.\s*)?Output:", &OUTPUT);
    let text = format!("{}{}", alpaca_primer(first_number), completion);
    let mut pieces: Vec<String> = Vec::new();
    for block in text.split("###") {
        let mut last = 0;
        for m in numbered.find_iter(block) {
            pieces.push(block[last..m.start()].to_string());
            last = m.start() + 1;
        }
        pieces.push(block[last..].to_string());
    }
    pieces.retain(|p| !p.trim().is_empty());
    let n = pieces.len();
    pieces
        .iter()
        .enumerate()
        .map(|(idx, piece)| {
            let cut = truncated && idx + 1 == n;
            let m = inst_re.find(piece)?;
            let body = &piece[m.end()..];
            let inp = input_re.find(body);
            let out = output_re.find(body);
            let inst_end = match (inp, out) {
                (Some(a), Some(b)) => a.start().min(b.start()),
                (Some(a), None) => a.start(),
                (None, Some(b)) => b.start(),
                (None, None) => match body.trim_start().find('\n') {
                    Some(i) => body.len() - body.trim_start().len() + i,
                    None if cut => return None,
                    None => body.len(),
                },
            };
            let instruction = collapse_ws(&body[..inst_end]);
            if instruction.is_empty() {
                return None;
            }
            let mut input = match (inp, out) {
                (Some(a), Some(b)) if b.start() > a.end() => {
                    body[a.end()..b.start()].trim().to_string()
                }
                (Some(a), None) => body[a.end()..].trim().to_string(),
                _ => String::new(),
            };
            if input.eq_ignore_ascii_case("<noinput>") {
                input.clear();
            }
            let mut output = out
                .map(|b| body[b.end()..].trim().to_string())
                .filter(|o| !o.is_empty());
            if cut {
                // A cut-off piece's fields may be incomplete: keep the instruction only.
                input.clear();
                output = None;
            }
            Some(ParsedTask {
                instruction,
                input,
                output,
            })
        })
        .collect()
}

/// The prompt that asks the model to answer one task (chat models through their
/// template; base models with a plain completion layout).
pub fn respond_prompt(
    file: &teacher_models::ModelFile,
    instruction: &str,
    input: &str,
    system: Option<&str>,
) -> crate::error::Result<String> {
    let user = if input.trim().is_empty() {
        instruction.trim().to_string()
    } else {
        format!("{}\n\n{}", instruction.trim(), input.trim())
    };
    if file.chat_template.is_some() {
        let mut msgs = Vec::new();
        if let Some(s) = system {
            msgs.push(teacher_models::Message::new("system", s));
        }
        msgs.push(teacher_models::Message::new("user", user));
        Ok(file.render_chat(&msgs)?)
    } else {
        let mut p = String::new();
        if let Some(s) = system {
            p.push_str(s.trim());
            p.push_str("\n\n");
        }
        p.push_str(&format!("Instruction: {}\n", instruction.trim()));
        if !input.trim().is_empty() {
            p.push_str(&format!("Input: {}\n", input.trim()));
        }
        p.push_str("Response:");
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_prompt_ends_with_the_next_number() {
        let p = paper_generate(&["Name a color:", "Write  a\npoem."]);
        assert!(p.ends_with("1. Name a color\n2. Write a poem.\n3."));
    }

    #[test]
    fn paper_completion_splits_on_numbers() {
        let got = parse_paper_completion(
            " Describe a sunset.\n10. List two fruits.\n11 . Explain gravity.",
        );
        assert_eq!(
            got,
            ["Describe a sunset.", "List two fruits.", "Explain gravity."]
        );
    }

    #[test]
    fn input_first_parsing() {
        let t = "Example 1\nWord: cat\nOutput: hat\nExample 2\nWord: dog\nOutput: log\n";
        assert_eq!(
            parse_input_first(t),
            vec![
                ("Word: cat".to_string(), "hat".to_string()),
                ("Word: dog".to_string(), "log".to_string())
            ]
        );
        assert_eq!(
            parse_input_first("Output: just this"),
            vec![(String::new(), "just this".to_string())]
        );
        assert!(parse_input_first("nothing useful").is_empty());
    }

    #[test]
    fn output_first_parsing() {
        let t =
            "Class label: positive\nSentence: Great day.\nClass label: negative\nSentence: Awful.";
        assert_eq!(
            parse_output_first(t),
            vec![
                ("Sentence: Great day.".to_string(), "positive".to_string()),
                ("Sentence: Awful.".to_string(), "negative".to_string())
            ]
        );
    }

    fn task(i: &str, inp: &str, out: Option<&str>) -> Option<ParsedTask> {
        Some(ParsedTask {
            instruction: i.into(),
            input: inp.into(),
            output: out.map(Into::into),
        })
    }

    #[test]
    fn alpaca_parsing_is_lenient() {
        let c = " Name a fruit.\n4. Input:\n<noinput>\n4. Output:\nApple\n###\n5. Instruction: Add the numbers.\n5. Input:\n2 and 3\n5. Output:\n5\n###\n6. Instruction: Only an instruction here\nand some rambling\n7. Instruction: Another one.\nOutput: done";
        let got = parse_alpaca_completion(c, 4, false);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], task("Name a fruit.", "", Some("Apple")));
        assert_eq!(got[1], task("Add the numbers.", "2 and 3", Some("5")));
        assert_eq!(got[2], task("Only an instruction here", "", None));
        assert_eq!(got[3], task("Another one.", "", Some("done")));
        // Truncated: the last piece keeps its instruction only.
        let got = parse_alpaca_completion(c, 4, true);
        assert_eq!(got[3], task("Another one.", "", None));
        // A cut instruction line is not used.
        assert_eq!(
            parse_alpaca_completion(" Write a poem abo", 4, true),
            vec![None]
        );
        assert_eq!(parse_alpaca_completion("\n\n", 4, false)[0], None);
    }

    #[test]
    fn classify_answers() {
        assert!(parse_classify(" Yes"));
        assert!(!parse_classify(" No"));
        assert!(!parse_classify(""));
    }
}

#[cfg(test)]
mod constraint_tests {
    use super::*;

    fn whole(re: &str, text: &str) -> bool {
        regex::Regex::new(&format!("^(?s:{re})$"))
            .unwrap()
            .is_match(text)
    }

    #[test]
    fn constraints_admit_what_the_parsers_read() {
        let a = alpaca_constraint(4, 19);
        let two = " Name a fruit.\n4. Input:\n<noinput>\n4. Output:\nApple\n###\n5. Instruction: Add 2 and 3.\n5. Input:\n2, 3\n5. Output:\n5\nDone.\n###";
        assert!(whole(&a, two));
        let parsed = parse_alpaca_completion(two, 4, false);
        assert_eq!(parsed.len(), 2);
        assert!(parsed
            .iter()
            .all(|p| p.as_ref().is_some_and(|t| t.output.is_some())));
        assert!(!whole(&a, " Name a fruit.\n4. Output:\nApple\n###"));
        assert!(!whole(
            &a,
            " Name a fruit.\n4. Input:\nx\n4. Output:\nApple\n###\n6. Instruction: x"
        ));
        let p = paper_constraint(9, 15);
        let text = " Describe a sunset.\n10. List two fruits.\n11. Explain gravity.\n";
        assert!(whole(&p, text));
        assert_eq!(parse_paper_completion(text.trim_end()).len(), 3);
        assert!(!whole(&p, " Describe a sunset.\n\n10. x"));
        assert!(!whole(
            &p,
            &(1..=8)
                .map(|k| format!(" task number {k}\n{}.", k + 9))
                .collect::<String>()
        ));
        assert!(whole(CLASSIFY_CONSTRAINT, " Yes") && !whole(CLASSIFY_CONSTRAINT, " Maybe"));
    }
}
