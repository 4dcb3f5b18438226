//! `teacher models list|pull|info`.

use anyhow::bail;
use clap::Subcommand;
use std::io::Write;
use teacher_models::catalog::Catalog;
use teacher_models::fetch;
use teacher_models::{LoadOptions, ModelFile};

#[derive(Subcommand)]
pub(crate) enum ModelsCommand {
    /// The catalog, and which models are already downloaded.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Download catalog models into the cache (verified by sha256).
    Pull {
        /// Catalog names; none with --all.
        names: Vec<String>,
        /// Every model in the catalog (the real teachers are GBs each).
        #[arg(long)]
        all: bool,
    },
    /// Facts about a model: architecture, size, quantization, tokenizer, template.
    Info {
        /// A catalog name, a `.gguf` path or `hf:OWNER/REPO/FILE`.
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic model: the shape of a real one with random weights (for
    /// benchmarks and device checks where real weights cannot travel).
    Synth {
        /// A named shape (smollm2-135m, gemma3-270m, qwen3-0.6b, qwen2.5-1.5b,
        /// gemma2-2b, phi3-mini, llama3-8b).
        #[arg(long)]
        shape: String,
        /// Weight type of the layer matrices (q4_0, q4_k, q6_k, iq4_xs, f16, …).
        #[arg(long = "type", default_value = "q4_k")]
        wtype: String,
        /// Weight type of the embedding and output matrices (default: q8_0).
        #[arg(long, default_value = "q8_0")]
        embd_type: String,
        #[arg(long)]
        out: std::path::PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub(crate) fn run(cmd: ModelsCommand, offline: bool) -> anyhow::Result<()> {
    let catalog = Catalog::builtin();
    let mut out = std::io::stdout().lock();
    match cmd {
        ModelsCommand::List { json } => {
            let rows: Vec<serde_json::Value> = catalog
                .entries
                .iter()
                .map(|e| {
                    let path = fetch::cached_path(e);
                    serde_json::json!({
                        "name": e.name,
                        "default": e.default,
                        "kind": e.kind,
                        "architecture": e.architecture,
                        "template": e.template,
                        "source": e.source(),
                        "hf": e.hf,
                        "file": e.file,
                        "sha256": e.sha256,
                        "bytes": e.bytes,
                        "license": e.license,
                        "description": e.description,
                        "downloaded": path.exists(),
                        "path": path,
                    })
                })
                .collect();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                writeln!(
                    out,
                    "{:<24} {:<9} {:<7} {:<7} {:>8}  {:<12} {:<6} description",
                    "name", "kind", "arch", "chat", "size", "source", "local"
                )?;
                for (e, r) in catalog.entries.iter().zip(&rows) {
                    let name = if e.default {
                        format!("{} *", e.name)
                    } else {
                        e.name.clone()
                    };
                    writeln!(
                        out,
                        "{:<24} {:<9} {:<7} {:<7} {:>5} MB  {:<12} {:<6} {}",
                        name,
                        e.kind,
                        e.architecture,
                        e.template,
                        e.bytes / 1_000_000,
                        e.source(),
                        if r["downloaded"] == true { "yes" } else { "no" },
                        e.description
                    )?;
                }
                writeln!(
                    out,
                    "(* the default; cache: {})",
                    fetch::models_dir().display()
                )?;
            }
        }
        ModelsCommand::Pull { names, all } => {
            let names: Vec<String> = if all {
                catalog.entries.iter().map(|e| e.name.clone()).collect()
            } else if names.is_empty() {
                bail!("name the models to pull, or pass --all (see `teacher models list`)");
            } else {
                names
            };
            for n in names {
                // `hf:` models are fetched the way `--model` fetches them.
                if n.starts_with("hf:") {
                    let r = fetch::resolve(&n, offline)?;
                    writeln!(out, "{n}\t{}", r.path.display())?;
                    continue;
                }
                let e = catalog.lookup(&n).map_err(|e| {
                    anyhow::anyhow!(
                        "{}\nhint: `teacher models pull` takes the catalog's names (`teacher models list`) or `hf:OWNER/REPO/FILE.gguf`; a local `.gguf` needs no pull, give its path to --model",
                        e.to_string().lines().next().unwrap_or_default()
                    )
                })?;
                let path = fetch::pull(e, offline, true)?;
                writeln!(out, "{}\t{}", e.name, path.display())?;
            }
        }
        ModelsCommand::Synth {
            shape,
            wtype,
            embd_type,
            out: path,
            seed,
        } => {
            use teacher_models::synth;
            let sh = synth::Shape::preset(&shape)?;
            let (w, e) = (synth::parse_type(&wtype)?, synth::parse_type(&embd_type)?);
            let started = std::time::Instant::now();
            synth::write(&path, &shape, &sh, w, e, seed)?;
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            writeln!(
                out,
                "{}: synthetic {shape} ({} parameters, {} layers / {} embeddings), {:.1} MB in {:.1} s",
                path.display(),
                sh.parameters(),
                w.name(),
                e.name(),
                bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            )?;
        }
        ModelsCommand::Info { model, json } => {
            let resolved = fetch::resolve(&model, offline)?;
            let file = ModelFile::open(&resolved.path, &LoadOptions::default())?;
            let mut info = file.info();
            info.sha256 = Some(fetch::sha256_file(&resolved.path)?);
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?;
            } else {
                let types: Vec<String> = info
                    .tensor_types
                    .iter()
                    .map(|(k, v)| format!("{k} ×{v}"))
                    .collect();
                let lines = [
                    ("path", info.path.display().to_string()),
                    ("name", info.name.clone().unwrap_or_default()),
                    ("architecture", info.architecture.clone()),
                    (
                        "parameters",
                        format!(
                            "{} ({:.1} M)",
                            info.parameters,
                            info.parameters as f64 / 1e6
                        ),
                    ),
                    ("file size", format!("{} bytes", info.file_bytes)),
                    ("tensor types", types.join(", ")),
                    ("context length", info.context_length.to_string()),
                    ("layers", info.n_layer.to_string()),
                    ("embedding", info.n_embd.to_string()),
                    (
                        "heads (kv)",
                        format!("{} ({})", info.n_head, info.n_head_kv),
                    ),
                    ("tokenizer", info.tokenizer.clone()),
                    ("vocab size", info.vocab_size.to_string()),
                    (
                        "chat template",
                        if info.chat_template {
                            "yes".into()
                        } else {
                            "no (plain completion prompts)".into()
                        },
                    ),
                    ("license", info.license.clone().unwrap_or_default()),
                    ("sha256", info.sha256.clone().unwrap_or_default()),
                ];
                for (k, v) in lines {
                    writeln!(out, "{:<15} {v}", format!("{k}:"))?;
                }
            }
        }
    }
    Ok(())
}
