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
    /// Decode by sampling at this temperature (with --top-p) instead of greedily: the
    /// forward pass draws the tokens, on the GPU where it can.
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: BenchArgs, offline: bool) -> anyhow::Result<()> {
    if a.batch.contains(&0) || a.prompt_tokens == 0 || a.gen_tokens == 0 || a.prefill_step == 0 {
        bail!("batch sizes, --prompt-tokens, --gen-tokens and --prefill-step must be at least 1");
    }
    let sampling = match a.temperature {
        None => None,
        Some(t) => {
            let p = teacher_kernels::SamplingParams {
                temperature: t,
                top_p: a.top_p,
                ..Default::default()
            };
            p.validate()
                .map_err(|e| anyhow::anyhow!("--temperature/--top-p: {e}"))?;
            Some(p)
        }
    };
    let file = a.model.open(offline)?;
    let started = std::time::Instant::now();
    let model = a.model.load(&file)?;
    let load_s = started.elapsed().as_secs_f64();
    let threads = rayon::current_num_threads();
    let isa = format!("{:?}", teacher_kernels::matmul::detected_isa());
    if !a.json {
        println!(
            "model {} · {} · {} threads · kernels {isa} · KV {:?} · load {:.2} s · prompt {} + gen {} tokens · decode {}",
            a.model.model,
            model.device(),
            threads,
            a.kv_type,
            load_s,
            a.prompt_tokens,
            a.gen_tokens,
            decode_mode(&sampling)
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
            sampling: sampling.clone(),
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
            "kv_cache": teacher_kernels::ops::KvType::from(a.kv_type).name(),
            "load_seconds": load_s,
            "decode": decode_mode(&sampling),
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

/// How decode steps choose tokens, in words.
fn decode_mode(sampling: &Option<teacher_kernels::SamplingParams>) -> String {
    match sampling {
        None => "greedy".to_string(),
        Some(p) => format!("sampled (temperature {}, top-p {})", p.temperature, p.top_p),
    }
}
