//! The `teacher` command line: a dispatcher. Each command's flags and handler live in
//! their own module under `cli/`; this file parses, dispatches and maps errors to exit
//! codes.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use teacher_models::fetch;

#[derive(Parser)]
#[command(
    name = "teacher",
    version,
    about = "Run a quantized LLM on your own machine as the teacher that writes instruction-tuning data"
)]
struct Cli {
    /// Never touch the network; models must already be local.
    #[arg(long, global = true, env = "TEACHER_OFFLINE", value_parser = clap::builder::FalseyValueParser::new())]
    offline: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the token ids the model's tokenizer gives for TEXT (as a JSON array).
    Tokenize(cli::tokenize::TokenizeArgs),
    /// Continue a prompt (or answer messages) with the model, streaming to stdout.
    Complete(cli::complete::CompleteArgs),
    /// Completions for a JSONL file of prompts, batched, written in input order.
    Generate(cli::generate::GenerateArgs),
    /// Prefill and batched decode throughput of a model, as a table or JSON.
    Bench(cli::bench::BenchArgs),
    /// List, fetch and inspect models.
    #[command(subcommand)]
    Models(cli::models::ModelsCommand),
    /// Drop near-duplicates from a JSONL or JSON-array file, keeping the first of each group.
    Dedup(cli::dedup::DedupArgs),
    /// Grow a seed set into new tasks with instances (Self-Instruct / Alpaca).
    SelfInstruct(cli::self_instruct::SelfInstructArgs),
    /// A response from the teacher for every instruction of a file.
    Respond(cli::respond::RespondArgs),
    /// Evolve instructions into harder ones over rounds (Evol-Instruct), with responses.
    Evolve(cli::evolve::EvolveArgs),
    /// Conversations drawn from a chat model with nothing but its pre-query template (Magpie).
    Magpie(cli::magpie::MagpieArgs),
    /// Score every record with a judge model: response quality and instruction complexity.
    Judge(cli::judge::JudgeArgs),
    /// Join the shards of a `--shard I/N` run into one output, as the single run writes it.
    Merge(cli::merge::MergeArgs),
    /// An OpenAI-compatible server (/v1/completions, /v1/chat/completions) on the engine.
    Serve(cli::serve::ServeArgs),
    /// Perplexity of a text, computed as llama.cpp's llama-perplexity does.
    Perplexity(cli::perplexity::PerplexityArgs),
    /// Check a GPU backend against the CPU, bit for bit, on synthetic models.
    Selftest(cli::selftest::SelftestArgs),
    /// One self-contained HTML page of charts (verb-noun, lengths, similarity, scores, time).
    Report(cli::report::ReportArgs),
    /// Counts, acceptance by filter, length and similarity distributions of a dataset.
    Stats(cli::stats::StatsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let offline = cli.offline || fetch::offline_from_env();
    match cli.command {
        Command::Tokenize(a) => cli::tokenize::run(a, offline),
        Command::Complete(a) => cli::complete::run(a, offline),
        Command::Generate(a) => cli::generate::run(a, offline),
        Command::Bench(a) => cli::bench::run(a, offline),
        Command::Models(m) => cli::models::run(m, offline),
        Command::Dedup(a) => cli::dedup::run(a),
        Command::SelfInstruct(a) => cli::self_instruct::run(a, offline),
        Command::Respond(a) => cli::respond::run(a, offline),
        Command::Evolve(a) => cli::evolve::run(a, offline),
        Command::Magpie(a) => cli::magpie::run(a, offline),
        Command::Judge(a) => cli::judge::run(a, offline),
        Command::Merge(a) => cli::merge::run(a),
        Command::Serve(a) => cli::serve::run(a, offline),
        Command::Perplexity(a) => cli::perplexity::run(a, offline),
        Command::Selftest(a) => cli::selftest::run(a),
        Command::Report(a) => cli::report::run(a),
        Command::Stats(a) => cli::stats::run(a),
    }
}
