//! One module per command: its clap arguments and its handler. `args.rs` holds the
//! flags several commands share (model, engine, sampling).

pub(crate) mod args;
pub(crate) mod bench;
pub(crate) mod complete;
pub(crate) mod dedup;
pub(crate) mod evolve;
pub(crate) mod generate;
pub(crate) mod judge;
pub(crate) mod magpie;
pub(crate) mod merge;
pub(crate) mod models;
pub(crate) mod perplexity;
pub(crate) mod report;
pub(crate) mod respond;
pub(crate) mod self_instruct;
pub(crate) mod selftest;
pub(crate) mod serve;
pub(crate) mod stats;
pub(crate) mod tokenize;
