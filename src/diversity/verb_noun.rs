//! The verb–noun structure of an instruction, as the Self-Instruct paper plots it in its
//! Figure 2: the root verb and its first direct-object noun ("Write a haiku about…" →
//! write / haiku).
//!
//! The paper used the Berkeley Neural Parser. This is a small rule-based approach that
//! runs offline in Rust with no model: an instruction is read as an imperative when its
//! first word (after a politeness lead like "please" or "can you", or after an opening
//! "Given …," / "Using …," phrase) is a verb of an embedded lexicon of base-form verbs;
//! the object is the head (last word) of the noun phrase that follows, which ends at a
//! preposition, conjunction, relative word, punctuation, or a participle after a noun.
//! Questions and clausal objects ("Explain why…") give a verb without a noun. Its
//! agreement with spaCy's dependency parser (`en_core_web_sm`) on the shipped seed
//! tasks and on 4,096 Alpaca instructions is measured by
//! `benches/verb_noun_vs_spacy.py` and recorded in BENCHMARKS.md.

/// Base-form verbs that open instructions.
const VERBS: &[&str] = &[
    "add",
    "adapt",
    "address",
    "adjust",
    "advise",
    "analyse",
    "analyze",
    "annotate",
    "answer",
    "apply",
    "arrange",
    "articulate",
    "ask",
    "assemble",
    "assess",
    "assign",
    "assume",
    "build",
    "brainstorm",
    "break",
    "calculate",
    "categorize",
    "categorise",
    "change",
    "check",
    "choose",
    "cite",
    "clarify",
    "classify",
    "clean",
    "combine",
    "come",
    "compare",
    "compile",
    "complete",
    "compose",
    "compute",
    "conceive",
    "condense",
    "conduct",
    "connect",
    "consider",
    "construct",
    "contrast",
    "convert",
    "correct",
    "count",
    "craft",
    "create",
    "critique",
    "cut",
    "debug",
    "decide",
    "decipher",
    "declare",
    "decode",
    "deduce",
    "define",
    "delete",
    "demonstrate",
    "derive",
    "describe",
    "design",
    "detect",
    "determine",
    "develop",
    "devise",
    "diagnose",
    "discover",
    "discuss",
    "distinguish",
    "divide",
    "document",
    "draft",
    "draw",
    "edit",
    "elaborate",
    "eliminate",
    "emphasize",
    "employ",
    "enumerate",
    "equate",
    "establish",
    "estimate",
    "evaluate",
    "examine",
    "expand",
    "explain",
    "explore",
    "express",
    "extend",
    "extract",
    "fill",
    "find",
    "finish",
    "fix",
    "flag",
    "format",
    "formulate",
    "forecast",
    "frame",
    "gather",
    "generate",
    "get",
    "give",
    "group",
    "guess",
    "help",
    "highlight",
    "identify",
    "illustrate",
    "imagine",
    "implement",
    "improve",
    "include",
    "indicate",
    "infer",
    "insert",
    "interpret",
    "introduce",
    "invent",
    "investigate",
    "justify",
    "keep",
    "label",
    "let",
    "link",
    "list",
    "locate",
    "look",
    "make",
    "map",
    "mark",
    "match",
    "measure",
    "mention",
    "merge",
    "model",
    "modify",
    "name",
    "note",
    "offer",
    "order",
    "organize",
    "organise",
    "outline",
    "paraphrase",
    "parse",
    "perform",
    "pick",
    "plan",
    "point",
    "predict",
    "prepare",
    "present",
    "prioritize",
    "produce",
    "program",
    "propose",
    "prove",
    "provide",
    "put",
    "rank",
    "rate",
    "read",
    "recall",
    "recommend",
    "reconstruct",
    "record",
    "redesign",
    "reduce",
    "refactor",
    "reformat",
    "reformulate",
    "refute",
    "reorder",
    "reorganize",
    "rephrase",
    "replace",
    "report",
    "represent",
    "research",
    "resolve",
    "respond",
    "restate",
    "restructure",
    "retrieve",
    "return",
    "reverse",
    "review",
    "revise",
    "rewrite",
    "rework",
    "route",
    "run",
    "say",
    "schedule",
    "score",
    "search",
    "select",
    "send",
    "separate",
    "share",
    "show",
    "simplify",
    "simulate",
    "sketch",
    "solve",
    "sort",
    "specify",
    "spell",
    "split",
    "state",
    "structure",
    "suggest",
    "summarize",
    "summarise",
    "supply",
    "swap",
    "take",
    "tell",
    "test",
    "think",
    "tokenize",
    "track",
    "train",
    "transcribe",
    "transform",
    "translate",
    "turn",
    "type",
    "underline",
    "update",
    "use",
    "validate",
    "verify",
    "visualize",
    "walk",
    "write",
];

/// Words that end the object's noun phrase (and, right after the verb, mean the verb
/// takes no noun object).
const STOPS: &[&str] = &[
    "about",
    "above",
    "across",
    "after",
    "against",
    "along",
    "among",
    "and",
    "around",
    "as",
    "at",
    "based",
    "because",
    "before",
    "below",
    "beneath",
    "besides",
    "between",
    "but",
    "by",
    "despite",
    "during",
    "for",
    "from",
    "how",
    "if",
    "in",
    "including",
    "inside",
    "into",
    "like",
    "near",
    "nor",
    "of",
    "off",
    "on",
    "onto",
    "or",
    "out",
    "over",
    "per",
    "since",
    "so",
    "such",
    "than",
    "that",
    "then",
    "through",
    "to",
    "toward",
    "towards",
    "under",
    "until",
    "upon",
    "using",
    "via",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "with",
    "within",
    "without",
    "is",
    "are",
    "was",
    "were",
    "be",
    "can",
    "could",
    "should",
    "would",
    "will",
    "may",
    "might",
    "must",
];

/// Words skipped at the start of a noun phrase.
const DETERMINERS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "all",
    "both", "your", "my", "our", "their", "his", "her", "its", "few", "several", "many", "more",
    "most", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "twenty", "hundred", "another", "other", "no",
];

/// Adjectives that follow their noun ("ideas suitable for…", "the themes present in…").
const POSTNOMINAL: &[&str] = &[
    "suitable",
    "present",
    "available",
    "possible",
    "necessary",
    "relevant",
    "related",
    "similar",
    "different",
    "responsible",
    "capable",
    "able",
    "needed",
    "worth",
    "ready",
    "free",
    "due",
    "likely",
    "full",
];

/// Particles of phrasal verbs ("look up", "pick out", "come up with").
const PARTICLES: &[&str] = &["up", "out", "down", "off", "back", "away"];

/// Indirect objects right after the verb ("Tell me a joke").
const PRONOUNS: &[&str] = &["me", "us", "him", "her", "them", "you", "it"];

/// Politeness and request leads before an imperative.
const LEADS: &[&[&str]] = &[
    &["please"],
    &["kindly"],
    &["can", "you", "please"],
    &["could", "you", "please"],
    &["would", "you", "please"],
    &["can", "you"],
    &["could", "you"],
    &["would", "you"],
    &["will", "you"],
    &["i", "want", "you", "to"],
    &["i", "would", "like", "you", "to"],
    &["i", "need", "you", "to"],
    &["now"],
];

/// The root verb and, when there is one, its first direct-object noun (both lower
/// case, the noun in its singular form); `None` when the instruction does not open
/// with an imperative verb.
pub fn verb_noun(instruction: &str) -> Option<(String, Option<String>)> {
    let words = tokens(first_sentence(instruction));
    let mut i = skip_opening_phrase(&words);
    for lead in LEADS {
        if words.len() >= i + lead.len() && words[i..i + lead.len()] == **lead {
            i += lead.len();
            break;
        }
    }
    let verb = words.get(i)?;
    if !VERBS.contains(&verb.as_str()) {
        return None;
    }
    let mut j = i + 1;
    while words.get(j).is_some_and(|w| PRONOUNS.contains(&w.as_str())) {
        j += 1;
    }
    if words
        .get(j)
        .is_some_and(|w| PARTICLES.contains(&w.as_str()))
    {
        j += 1;
    }
    Some((verb.clone(), object_head(&words[j.min(words.len())..])))
}

/// "Given a list of X, invent …" and "Using the text, …" open with a phrase that ends
/// at the first comma; the instruction proper follows.
fn skip_opening_phrase(words: &[String]) -> usize {
    let opens = matches!(
        words.first().map(String::as_str),
        Some("given" | "using" | "based" | "according" | "with" | "for" | "in" | "from")
    );
    if opens {
        if let Some(c) = words.iter().position(|w| w == ",") {
            return c + 1;
        }
    }
    0
}

/// The head noun of the noun phrase at the start of `rest`.
fn object_head(rest: &[String]) -> Option<String> {
    let mut k = 0;
    while rest
        .get(k)
        .is_some_and(|w| DETERMINERS.contains(&w.as_str()) || is_number(w))
    {
        k += 1;
    }
    let mut head: Option<&str> = None;
    let rest = &rest[k..];
    for (i, w) in rest.iter().enumerate() {
        if w == "," || is_punctuation(w) || STOPS.contains(&w.as_str()) {
            break;
        }
        if head.is_some() {
            // A participle after the noun starts a reduced clause ("a poem describing
            // the sea", "the language used in…") unless a noun follows it ("a rhyming
            // poem") or it is itself the noun ("the meaning of…").
            let participle =
                w.len() >= 4 && (w.ends_with("ing") && !w.ends_with("thing") || w.ends_with("ed"));
            let next = rest.get(i + 1).map(String::as_str);
            let ends_phrase = next.is_none_or(|n| {
                is_punctuation(n)
                    || DETERMINERS.contains(&n)
                    || PRONOUNS.contains(&n)
                    || STOPS.contains(&n) && n != "of"
            });
            if participle && ends_phrase
                || DETERMINERS.contains(&w.as_str())
                || POSTNOMINAL.contains(&w.as_str())
                || VERBS.contains(&w.as_str()) && w.ends_with('s')
            {
                break;
            }
        }
        head = Some(w);
    }
    head.filter(|h| h.chars().all(|c| c.is_alphabetic() || c == '-'))
        .map(singular)
}

/// The first sentence: up to `.`, `?`, `!`, `:` or `;` followed by a space, or a line
/// break.
fn first_sentence(s: &str) -> &str {
    let s = s.trim();
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        let next_space = b.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
        if c == b'\n' || (matches!(c, b'.' | b'?' | b'!' | b':' | b';') && next_space) {
            return &s[..i];
        }
    }
    s
}

/// Lower-case words, with `,` and other punctuation as their own tokens (quotes end a
/// noun phrase too).
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c.is_alphanumeric() || c == '-' || c == '\'' || c == '’' {
            cur.extend(c.to_lowercase());
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_punctuation(w: &str) -> bool {
    w.chars().all(|c| !c.is_alphanumeric())
}

fn is_number(w: &str) -> bool {
    w.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// A plural noun's singular by the regular English rules (irregular plurals stay).
fn singular(w: &str) -> String {
    const KEEP: &[&str] = &[
        "news",
        "series",
        "species",
        "physics",
        "mathematics",
        "lens",
    ];
    if KEEP.contains(&w) || w.len() <= 3 {
        return w.to_string();
    }
    if let Some(s) = w.strip_suffix("ies") {
        return format!("{s}y");
    }
    for suffix in ["sses", "xes", "ches", "shes", "zes"] {
        if w.ends_with(suffix) {
            return w[..w.len() - 2].to_string();
        }
    }
    if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        return w[..w.len() - 1].to_string();
    }
    w.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vn(s: &str) -> Option<(String, Option<String>)> {
        verb_noun(s)
    }

    fn pair(v: &str, n: &str) -> Option<(String, Option<String>)> {
        Some((v.into(), Some(n.into())))
    }

    #[test]
    fn imperatives_give_the_verb_and_the_head_of_the_object() {
        assert_eq!(
            vn("Write a haiku about a morning commute."),
            pair("write", "haiku")
        );
        assert_eq!(
            vn("Write a two-sentence product description for the item below."),
            pair("write", "description")
        );
        assert_eq!(vn("Give me a list of five fruits"), pair("give", "list"));
        assert_eq!(vn("Tell me a joke."), pair("tell", "joke"));
        assert_eq!(
            vn("Please rewrite the following sentences."),
            pair("rewrite", "sentence")
        );
        assert_eq!(
            vn("Can you suggest three names for a cat?"),
            pair("suggest", "name")
        );
        assert_eq!(
            vn("Given a list of ingredients, invent a name for a dish."),
            pair("invent", "name")
        );
        assert_eq!(
            vn("Write an article summarizing the news"),
            pair("write", "article")
        );
        assert_eq!(vn("List 5 countries in Europe"), pair("list", "country"));
        assert_eq!(vn("Find the boxes"), pair("find", "box"));
        assert_eq!(
            vn("Rewrite the given paragraph."),
            pair("rewrite", "paragraph")
        );
        assert_eq!(vn("Write a four-line rhyming poem."), pair("write", "poem"));
        assert_eq!(
            vn("Give five ways a small office can help"),
            pair("give", "way")
        );
        assert_eq!(
            vn("Suggest three ideas suitable for kids"),
            pair("suggest", "idea")
        );
        assert_eq!(
            vn("Look up the boiling point of water"),
            pair("look", "point")
        );
        assert_eq!(
            vn("Explain the main finding of the study"),
            pair("explain", "finding")
        );
        assert_eq!(
            vn("Identify the language used in the text"),
            pair("identify", "language")
        );
        assert_eq!(vn("Come up with a name"), Some(("come".into(), None)));
    }

    #[test]
    fn questions_and_clausal_objects() {
        assert_eq!(vn("What is the capital of France?"), None);
        assert_eq!(vn("Is 17 prime?"), None);
        assert_eq!(
            vn("Explain why the sky is blue."),
            Some(("explain".into(), None))
        );
        assert_eq!(vn("Tell me about Rome."), Some(("tell".into(), None)));
        assert_eq!(vn("Using the text, who built it?"), None);
        assert_eq!(vn(""), None);
    }
}
