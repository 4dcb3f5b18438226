//! teacher: a local quantized LLM as the teacher that writes instruction-tuning data.
//!
//! The binary (`main.rs`) is a thin clap layer over this library.

pub mod bench;
pub mod constrain;
pub mod dedup;
pub mod diversity;
pub mod engine;
pub mod error;
pub mod export;
pub mod files;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod input;
pub mod merge;
pub mod perplexity;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod selftest;
pub mod serve;
pub mod shard;
pub mod stats;

pub use error::{Error, Result};
