//! The cheap instruction and instance filters of Self-Instruct and Alpaca
//! (`../shared/reference/self-instruct.md` §2.4, §5.3, §6.4), each with its reason.

use serde::Serialize;

/// Why a candidate was not kept. Every rejection is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The prompt did not fit the context (`--context`): nothing was generated.
    PromptTooLong,
    /// The completion hit max_tokens (paper style drops the whole completion).
    Truncated,
    /// The completion did not have the expected shape.
    Unparsable,
    Empty,
    TooShort,
    TooLong,
    Blacklisted,
    WriteAProgram,
    PunctuationStart,
    NonAsciiStart,
    NearDuplicate,
    /// No instance survived the instance filters.
    NoInstances,
    /// An instance: empty output.
    EmptyOutput,
    /// An instance: output equal to input.
    OutputEqualsInput,
    /// An instance: input or output ends with ':' (cut off).
    EndsWithColon,
    /// Two instances of one task with the same input and different outputs.
    ConflictingOutputs,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PromptTooLong => "prompt_too_long",
            Reason::Truncated => "truncated",
            Reason::Unparsable => "unparsable",
            Reason::Empty => "empty",
            Reason::TooShort => "too_short",
            Reason::TooLong => "too_long",
            Reason::Blacklisted => "blacklisted",
            Reason::WriteAProgram => "write_a_program",
            Reason::PunctuationStart => "punctuation_start",
            Reason::NonAsciiStart => "non_ascii_start",
            Reason::NearDuplicate => "near_duplicate",
            Reason::NoInstances => "no_instances",
            Reason::EmptyOutput => "empty_output",
            Reason::OutputEqualsInput => "output_equals_input",
            Reason::EndsWithColon => "ends_with_colon",
            Reason::ConflictingOutputs => "conflicting_outputs",
        }
    }
}

/// Self-Instruct's 13 blacklisted words (matched as whole words, any case).
pub const PAPER_BLACKLIST: &[&str] = &[
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
    "draw", "plot", "go to",
];

/// Alpaca's 18: the paper's plus five.
pub const ALPACA_BLACKLIST: &[&str] = &[
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
];

/// `string.punctuation`.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Whole-word, case-insensitive match of `word` (which may contain a space) in `text`,
/// as Python's `re.search(r"\b(word)\b", text, re.I)`.
pub fn contains_word(text: &str, word: &str) -> bool {
    let hay = text.to_lowercase();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut start = 0;
    while let Some(i) = hay[start..].find(word) {
        let at = start + i;
        let before = hay[..at].chars().next_back();
        let after = hay[at + word.len()..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return true;
        }
        start = at + word.len().max(1);
        while !hay.is_char_boundary(start) {
            start += 1;
        }
    }
    false
}

/// The instruction filters in the reference order; None keeps it.
pub fn check_instruction(inst: &str, blacklist: &[&str]) -> Option<Reason> {
    if inst.is_empty() {
        return Some(Reason::Empty);
    }
    let words = inst.split_whitespace().count();
    if words <= 3 {
        return Some(Reason::TooShort);
    }
    if words > 150 {
        return Some(Reason::TooLong);
    }
    if blacklist.iter().any(|w| contains_word(inst, w)) {
        return Some(Reason::Blacklisted);
    }
    if inst.starts_with("Write a program") {
        return Some(Reason::WriteAProgram);
    }
    let first = inst.chars().next().expect("non-empty");
    if PUNCTUATION.contains(first) {
        return Some(Reason::PunctuationStart);
    }
    if !first.is_ascii() {
        return Some(Reason::NonAsciiStart);
    }
    None
}

/// One instance's filters (§5.3).
pub fn check_instance(input: &str, output: &str) -> Option<Reason> {
    if output.is_empty() {
        return Some(Reason::EmptyOutput);
    }
    if input == output {
        return Some(Reason::OutputEqualsInput);
    }
    if input.ends_with(':') || output.ends_with(':') {
        return Some(Reason::EndsWithColon);
    }
    None
}

/// Collapse whitespace runs to one space and trim (the reference's `" ".join(x.split())`).
pub fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Python's `str.capitalize()`: first character upper-cased, all others lower-cased.
pub fn py_capitalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    if let Some(c) = chars.next() {
        out.extend(c.to_uppercase());
    }
    for c in chars {
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_only() {
        assert!(contains_word("Draw a cat.", "draw"));
        assert!(!contains_word("Describe a drawing.", "draw"));
        assert!(contains_word("How do I go to the bank?", "go to"));
        assert!(!contains_word("The cargo tower", "go to"));
        assert!(contains_word("Make a MAP", "map"));
    }

    #[test]
    fn instruction_rules_in_order() {
        let bl = PAPER_BLACKLIST;
        assert_eq!(check_instruction("", bl), Some(Reason::Empty));
        assert_eq!(
            check_instruction("Name three fruits", bl),
            Some(Reason::TooShort)
        );
        assert_eq!(
            check_instruction(&"word ".repeat(151), bl),
            Some(Reason::TooLong)
        );
        assert_eq!(
            check_instruction("Describe the image in detail.", bl),
            Some(Reason::Blacklisted)
        );
        assert_eq!(
            check_instruction("Write a program that sorts numbers.", bl),
            Some(Reason::WriteAProgram)
        );
        assert_eq!(
            check_instruction("\"Quote\" the following text please.", bl),
            Some(Reason::PunctuationStart)
        );
        assert_eq!(
            check_instruction("Écris une phrase en français ici.", bl),
            Some(Reason::NonAsciiStart)
        );
        assert_eq!(
            check_instruction("Describe a sunset over the sea.", bl),
            None
        );
        assert_eq!(
            check_instruction("Write a song about the sea.", ALPACA_BLACKLIST),
            None
        );
        assert_eq!(
            check_instruction("Write a music review for this album.", ALPACA_BLACKLIST),
            Some(Reason::Blacklisted)
        );
    }

    #[test]
    fn instance_rules() {
        assert_eq!(check_instance("a", ""), Some(Reason::EmptyOutput));
        assert_eq!(
            check_instance("same", "same"),
            Some(Reason::OutputEqualsInput)
        );
        assert_eq!(
            check_instance("Sentence:", "x"),
            Some(Reason::EndsWithColon)
        );
        assert_eq!(check_instance("", "fine"), None);
    }

    #[test]
    fn capitalize_like_python() {
        assert_eq!(
            py_capitalize("write a Python function"),
            "Write a python function"
        );
        assert_eq!(collapse_ws("  a \n b\t c "), "a b c");
    }
}
