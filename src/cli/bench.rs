//! `teacher bench`: prefill and batched decode throughput.

use super::args::{KvArg, ModelArgs};
use anyhow::bail;
use clap::Args;

#[derive(Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16,32,64")]
    batch: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 64)]
    gen_tokens: usize,
    /// What the KV cache stores (as the engine's --kv-type).
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    kv_type: KvArg,
    /// Prompt tokens per prefill step (llama.cpp's -ub; larger suits a GPU).
    #[arg(long, default_value_t = 512)]
    prefill_step: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: BenchArgs, offline: bool) -> anyhow::Result<()> {
    if a.batch.contains(&0) || a.prompt_tokens == 0 || a.gen_tokens == 0 || a.prefill_step == 0 {
        bail!("batch sizes, --prompt-tokens, --gen-tokens and --prefill-step must be at least 1");
    }
    let file = a.model.open(offline)?;
    let started = std::time::Instant::now();
    let model = a.model.load(&file)?;
    let load_s = started.elapsed().as_secs_f64();
    let threads = rayon::current_num_threads();
    let isa = format!("{:?}", teacher_kernels::matmul::detected_isa());
    if !a.json {
        println!(
            "model {} · {} · {} threads · kernels {isa} · KV {:?} · load {:.2} s · prompt {} + gen {} tokens",
            a.model.model, model.device(), threads, a.kv_type, load_s, a.prompt_tokens, a.gen_tokens
        );
        println!(
            "{:>6} {:>14} {:>16} {:>12}",
            "batch", "prefill tok/s", "decode tok/s", "peak RSS MB"
        );
    }
    let rows = teacher::bench::run(
        &model,
        &file.tokenizer,
        &teacher::bench::Plan {
            batches: a.batch.clone(),
            prompt_tokens: a.prompt_tokens,
            gen_tokens: a.gen_tokens,
            kv: a.kv_type.into(),
            prefill_step: a.prefill_step,
        },
        |r| {
            if !a.json {
                println!(
                    "{:>6} {:>14.1} {:>16.1} {:>12.0}",
                    r.batch,
                    r.prefill_tok_s,
                    r.decode_tok_s,
                    r.peak_rss_mb.unwrap_or(0.0)
                );
            }
        },
    )?;
    if a.json {
        let v = serde_json::json!({
            "model": a.model.model,
            "device": model.device(),
            "threads": threads,
            "kernels": isa,
            "kv_cache": format!("{:?}", a.kv_type).to_lowercase(),
            "load_seconds": load_s,
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}
