//! Exact duplicates after normalisation: Unicode lowercase, every character that is
//! neither alphanumeric nor whitespace removed, whitespace runs collapsed to one space,
//! ends trimmed. "Write a poem!" and "  write a POEM " are the same text.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for ch in text.chars().flat_map(char::to_lowercase) {
        if ch.is_whitespace() {
            pending_space = !out.is_empty();
        } else if ch.is_alphanumeric() {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(ch);
        }
    }
    out
}

/// 128 bits of SHA-256 of the normalised text: stable across runs, machines and
/// Rust versions, and collision-free in practice at any dataset size.
pub fn key(text: &str) -> u128 {
    let d = Sha256::digest(normalize(text).as_bytes());
    u128::from_le_bytes(d[..16].try_into().expect("sha256 has 32 bytes"))
}

/// The kept texts' keys; 16 bytes of key plus the id per kept item.
#[derive(Debug, Default)]
pub struct ExactIndex {
    seen: HashMap<u128, u64>,
}

impl ExactIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of the kept item `text` duplicates, if any.
    pub fn find(&self, text: &str) -> Option<u64> {
        self.seen.get(&key(text)).copied()
    }

    /// Keep `text` under `id` unless it duplicates something; returns the duplicate's id.
    pub fn insert(&mut self, id: u64, text: &str) -> Option<u64> {
        match self.seen.entry(key(text)) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_ignores_case_space_and_punctuation() {
        assert_eq!(normalize("  Write a POEM!\n"), "write a poem");
        assert_eq!(key("Write a poem."), key("write   a poem"));
        assert_ne!(key("Write a poem."), key("Write a song."));
        assert_eq!(normalize("Café — déjà vu"), "café déjà vu");
    }

    #[test]
    fn index_keeps_first() {
        let mut idx = ExactIndex::new();
        assert_eq!(idx.insert(1, "Hello, world"), None);
        assert_eq!(idx.insert(2, "hello world!"), Some(1));
        assert_eq!(idx.find("HELLO WORLD"), Some(1));
        assert_eq!(idx.len(), 1);
    }
}
