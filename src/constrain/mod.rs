//! Constrained generation: a per-request regular expression (or a JSON schema turned
//! into one, `schema.rs`) that the output must match, enforced token by token.
//!
//! The pattern is compiled once into a dense, anchored DFA over bytes. A sequence's
//! constraint state is a DFA state; the tokens allowed in a state are those whose
//! bytes keep the DFA alive, plus the end tokens when the text so far is a whole match.
//! Each state's allowed set is computed once (walking every token's bytes) and cached
//! for every sequence that shares the constraint. The sampler never draws a masked
//! token (the mask writes NaN, which `teacher_kernels::sampling` skips), and the mask is
//! a pure function of the state, so constrained outputs keep teacher's determinism at
//! any batch size and thread count.

pub mod schema;

use crate::error::{Error, Result};
use regex_automata::dfa::{dense, Automaton};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::Anchored;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use teacher_models::TextTokenizer;

/// The most memory one constraint's DFA may take.
const DFA_SIZE_LIMIT: usize = 64 << 20;

/// A compiled constraint, shared by every request that uses it.
pub struct Constraint {
    /// The pattern as given (or as built from a schema), for manifests and errors.
    pub pattern: String,
    dfa: dense::DFA<Vec<u32>>,
    start: StateID,
    /// By state id: a whole match can still be reached from the state. (The DFA reports
    /// matches one byte late, so "not dead" is not enough: after `ab` for `a+b`, one
    /// more byte reaches a match state that stands for the match before it.)
    live: Vec<bool>,
    vocab: Arc<Vocab>,
    rows: Mutex<HashMap<StateID, Arc<Row>>>,
}

/// The model's tokens as bytes, and its end tokens.
pub struct Vocab {
    bytes: Vec<Option<Vec<u8>>>,
    stops: Vec<u32>,
}

impl Vocab {
    pub fn new(tok: &TextTokenizer) -> Vocab {
        Vocab {
            bytes: tok.token_bytes(),
            stops: tok.stop_tokens.clone(),
        }
    }
}

/// What one DFA state allows.
struct Row {
    /// Bit per token id.
    allowed: Vec<u64>,
    any: bool,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("pattern", &self.pattern)
            .finish()
    }
}

impl Constraint {
    /// Compile `pattern` (Rust regex syntax, matched against the whole output).
    pub fn regex(pattern: &str, vocab: Arc<Vocab>) -> Result<Constraint> {
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(regex_automata::dfa::StartKind::Anchored)
                    .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
            )
            .build(&format!("(?s:{pattern})"))
            .map_err(|e| {
                Error::Usage(format!(
                    "the output constraint cannot be compiled: {e}\nhint: simplify the pattern or schema (long length bounds such as {{0,5000}} make large automata)"
                ))
            })?;
        let start = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .map_err(|e| Error::Usage(format!("the output constraint has no start: {e}")))?;
        let live = liveness(&dfa, start)?;
        Ok(Constraint {
            pattern: pattern.to_string(),
            dfa,
            start,
            live,
            vocab,
            rows: Mutex::new(HashMap::new()),
        })
    }

    /// A JSON schema (the subset `schema.rs` reads) as a constraint.
    pub fn json_schema(schema: &schema::Json, vocab: Arc<Vocab>) -> Result<Constraint> {
        let pattern = schema::to_regex(schema)?;
        Constraint::regex(&pattern, vocab)
    }

    pub fn start(&self) -> State {
        State(self.start)
    }

    /// Whether the output so far is a whole match.
    pub fn is_complete(&self, s: State) -> bool {
        self.dfa.is_match_state(self.dfa.next_eoi_state(s.0))
    }

    fn walk(&self, mut s: StateID, bytes: &[u8]) -> Option<StateID> {
        for &b in bytes {
            s = self.dfa.next_state(s, b);
            if !self.live.get(s.as_usize()).copied().unwrap_or(false) {
                return None;
            }
        }
        Some(s)
    }

    fn row(&self, s: State) -> Arc<Row> {
        if let Some(r) = self.rows.lock().expect("rows lock").get(&s.0) {
            return r.clone();
        }
        let n = self.vocab.bytes.len();
        let mut allowed = vec![0u64; n.div_ceil(64)];
        let mut any = false;
        for (id, b) in self.vocab.bytes.iter().enumerate() {
            if let Some(b) = b {
                if self.walk(s.0, b).is_some() {
                    allowed[id / 64] |= 1 << (id % 64);
                    any = true;
                }
            }
        }
        // End tokens end a whole match; with nothing else possible they are the only
        // way out, so a dead end also ends there (the caller's parser judges it).
        if self.is_complete(s) || !any {
            for &t in &self.vocab.stops {
                if (t as usize) < n {
                    allowed[t as usize / 64] |= 1 << (t % 64);
                }
            }
        }
        let row = Arc::new(Row { allowed, any });
        self.rows
            .lock()
            .expect("rows lock")
            .insert(s.0, row.clone());
        row
    }

    /// Mask every token `s` does not allow (NaN: never drawn).
    pub fn mask(&self, s: State, logits: &mut [f32]) {
        let row = self.row(s);
        for (w, chunk) in logits.chunks_mut(64).enumerate() {
            let bits = row.allowed.get(w).copied().unwrap_or(0);
            if bits == u64::MAX {
                continue;
            }
            for (b, l) in chunk.iter_mut().enumerate() {
                if bits & (1 << b) == 0 {
                    *l = f32::NAN;
                }
            }
        }
    }

    /// Whether `s` can continue with any text token.
    pub fn can_continue(&self, s: State) -> bool {
        self.row(s).any
    }

    /// The state after `token` (None for a token the state does not allow).
    pub fn advance(&self, s: State, token: u32) -> Option<State> {
        let b = self.vocab.bytes.get(token as usize)?.as_ref()?;
        self.walk(s.0, b).map(State)
    }
}

/// Compiled constraints a cache keeps.
const MAX_CACHED: usize = 256;

/// Constraints compiled once per pattern for one model, shared by every request.
pub struct Cache {
    vocab: Arc<Vocab>,
    by_pattern: HashMap<String, Arc<Constraint>>,
}

impl Cache {
    pub fn new(tok: &TextTokenizer) -> Cache {
        Cache {
            vocab: Arc::new(Vocab::new(tok)),
            by_pattern: HashMap::new(),
        }
    }

    pub fn get(&mut self, pattern: &str) -> Result<Arc<Constraint>> {
        if let Some(c) = self.by_pattern.get(pattern) {
            return Ok(c.clone());
        }
        let c = Arc::new(Constraint::regex(pattern, self.vocab.clone())?);
        if self.by_pattern.len() >= MAX_CACHED {
            // A server fed ever-new schemas: start over (requests in flight keep theirs).
            self.by_pattern.clear();
        }
        self.by_pattern.insert(pattern.to_string(), c.clone());
        Ok(c)
    }
}

/// The most DFA states a constraint may reach.
const MAX_STATES: usize = 200_000;

/// Which states reachable from `start` can still end in a whole match: every state
/// reachable from start, then backwards from those whose end-of-input is a match.
fn liveness(dfa: &dense::DFA<Vec<u32>>, start: StateID) -> Result<Vec<bool>> {
    let mut index: HashMap<StateID, usize> = HashMap::new();
    let mut states = vec![start];
    index.insert(start, 0);
    let mut preds: Vec<Vec<usize>> = vec![Vec::new()];
    let mut i = 0;
    while i < states.len() {
        let s = states[i];
        let mut seen_here: Vec<usize> = Vec::new();
        for b in 0..=255u8 {
            let t = dfa.next_state(s, b);
            if dfa.is_dead_state(t) || dfa.is_quit_state(t) {
                continue;
            }
            let j = match index.get(&t) {
                Some(&j) => j,
                None => {
                    if states.len() >= MAX_STATES {
                        return Err(Error::Usage(format!(
                            "the output constraint needs more than {MAX_STATES} automaton states\nhint: tighten length bounds or simplify the pattern"
                        )));
                    }
                    states.push(t);
                    preds.push(Vec::new());
                    index.insert(t, states.len() - 1);
                    states.len() - 1
                }
            };
            if !seen_here.contains(&j) {
                seen_here.push(j);
                preds[j].push(i);
            }
        }
        i += 1;
    }
    let mut live_idx = vec![false; states.len()];
    let mut stack: Vec<usize> = (0..states.len())
        .filter(|&k| dfa.is_match_state(dfa.next_eoi_state(states[k])))
        .collect();
    for &k in &stack {
        live_idx[k] = true;
    }
    while let Some(k) = stack.pop() {
        for &p in &preds[k] {
            if !live_idx[p] {
                live_idx[p] = true;
                stack.push(p);
            }
        }
    }
    let len = states.iter().map(|s| s.as_usize()).max().unwrap_or(0) + 1;
    let mut live = vec![false; len];
    for (k, s) in states.iter().enumerate() {
        live[s.as_usize()] = live_idx[k];
    }
    Ok(live)
}

/// A sequence's place in its constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State(StateID);

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&str], stops: &[u32]) -> Arc<Vocab> {
        Arc::new(Vocab {
            bytes: tokens
                .iter()
                .map(|t| (!t.is_empty()).then(|| t.as_bytes().to_vec()))
                .collect(),
            stops: stops.to_vec(),
        })
    }

    #[test]
    fn masks_follow_the_pattern_and_end_only_on_a_match() {
        // ids: 0 "<eos>" (not text), 1 "a", 2 "b", 3 "ab", 4 "c"
        let v = vocab(&["", "a", "b", "ab", "c"], &[0]);
        let c = Constraint::regex("a+b", v).unwrap();
        let s = c.start();
        let mut l = vec![1.0f32; 5];
        c.mask(s, &mut l);
        assert!(l[0].is_nan() && l[2].is_nan() && l[4].is_nan());
        assert!(!l[1].is_nan() && !l[3].is_nan());
        let s = c.advance(s, 3).unwrap();
        assert!(c.is_complete(s));
        let mut l = vec![1.0f32; 5];
        c.mask(s, &mut l);
        // "ab" is whole and nothing may follow: only the end token.
        assert_eq!(
            l.iter().map(|x| !x.is_nan()).collect::<Vec<_>>(),
            [true, false, false, false, false]
        );
        assert!(c.advance(s, 1).is_none());
    }

    #[test]
    fn bad_patterns_are_errors() {
        let v = vocab(&["a"], &[]);
        let e = Constraint::regex("(", v).unwrap_err().to_string();
        assert!(e.contains("cannot be compiled"), "{e}");
    }
}
