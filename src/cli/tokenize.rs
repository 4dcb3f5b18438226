//! `teacher tokenize`: token ids of a text.

use super::args::ModelArgs;
use clap::Args;
use std::io::Write;

#[derive(Args)]
pub(crate) struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print only the number of tokens.
    #[arg(long)]
    count: bool,
    /// Treat special-token text such as `<|im_start|>` as plain text.
    #[arg(long)]
    no_special: bool,
    /// Do not add the BOS token even when the model asks for it.
    #[arg(long)]
    no_bos: bool,
    /// The text to tokenize.
    text: String,
}

pub(crate) fn run(a: TokenizeArgs, offline: bool) -> anyhow::Result<()> {
    let file = a.model.open(offline)?;
    let ids = file.tokenizer.encode(&a.text, !a.no_special, !a.no_bos)?;
    let mut out = std::io::stdout().lock();
    if a.count {
        writeln!(out, "{}", ids.len())?;
    } else {
        writeln!(out, "{}", serde_json::to_string(&ids)?)?;
    }
    Ok(())
}
