//! End-to-end tests of teacher on the real models (one test binary, as linking candle
//! once per file costs minutes on a 2-core machine).

mod cli;
mod common;
mod constrained;
#[cfg(feature = "cuda")]
mod cuda_emulated;
mod dedup_cli;
mod engine;
mod evol;
mod file_safety;
mod forward;
mod fuzz_corpus;
mod gguf_errors;
mod judge;
mod kill_resume;
mod magpie;
mod perplexity;
mod reliability;
mod report;
mod rouge_parity;
mod self_instruct;
mod serve;
mod shard;
mod stats;
mod tiny_models;
mod tokenizer_parity;
mod weight_types;
