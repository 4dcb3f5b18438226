//! `teacher selftest`: a GPU backend against the CPU, bit for bit (`teacher::selftest`).

use anyhow::bail;
use clap::Args;
use std::io::Write;
use teacher_kernels::QType;
use teacher_models::forward::Device;

#[derive(Args)]
pub(crate) struct SelftestArgs {
    /// The device to check against the CPU.
    #[arg(long, default_value = "cuda")]
    device: String,
    /// Weight types to cover (llama.cpp names); all that teacher reads by default.
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Sequences of the case that decodes many at once (0 skips it).
    #[arg(long, default_value_t = 256)]
    wide: usize,
    /// Also write every case as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

pub(crate) fn run(a: SelftestArgs) -> anyhow::Result<()> {
    let device: Device = a.device.parse()?;
    let types: Vec<QType> = if a.types.is_empty() {
        QType::ALL.to_vec()
    } else {
        a.types
            .iter()
            .map(|t| teacher_models::synth::parse_type(t))
            .collect::<Result<_, _>>()?
    };
    let dir = tempfile::tempdir()?;
    let started = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<7} {:<7} {:<4} {:<13} {:>8} {:>10} {:>8}",
        "arch", "weights", "kv", "check", "logits", "identical", "max ulp"
    )?;
    let mut line = |r: &teacher::selftest::CaseResult| {
        let _ = writeln!(
            out,
            "{:<7} {:<7} {:<4} {:<13} {:>8} {:>9.4}% {:>8}{}",
            r.arch,
            r.weights,
            r.kv_cache,
            r.check,
            r.logits,
            100.0 * r.identical as f64 / r.logits.max(1) as f64,
            r.max_ulp,
            if r.passed() { "" } else { "  DIFFERS" }
        );
        let _ = out.flush();
    };
    let mut results = Vec::new();
    #[cfg(any(feature = "cuda", feature = "metal"))]
    results.extend(teacher::selftest::gpu_kernels(device, &mut line)?);
    results.extend(teacher::selftest::run(
        device,
        dir.path(),
        &types,
        a.wide,
        &mut line,
    )?);
    let failed = results.iter().filter(|r| !r.passed()).count();
    let logits: usize = results.iter().map(|r| r.logits).sum();
    let same: usize = results.iter().map(|r| r.identical).sum();
    println!(
        "{} cases, {failed} differ; {same} of {logits} logits bit-identical ({:.4}%) in {:.1} s",
        results.len(),
        100.0 * same as f64 / logits.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    if let Some(p) = &a.json {
        let v = serde_json::json!({
            "device": a.device,
            "cases": results,
            "failed": failed,
            "logits": logits,
            "identical": same,
        });
        std::fs::write(p, serde_json::to_string_pretty(&v)?)?;
    }
    if failed > 0 {
        bail!("{failed} cases differ from the CPU");
    }
    Ok(())
}
