//! Near-duplicate filters. Every generated item passes through one of these.
//!
//! - [`rouge_l`]: the Self-Instruct rule, exact (ROUGE-L F1 against everything kept);
//! - [`minhash`]: MinHash-LSH over word shingles, approximate, for millions of items;
//! - [`exact`]: identical text after normalisation.

pub mod exact;
pub mod heuristics;
pub mod minhash;
pub mod rouge_l;

pub use rouge_l::{DropRule, RougeIndex};
