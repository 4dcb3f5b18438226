//! Flags several commands share: the model, the engine, sampling.

use clap::Args;
use std::path::PathBuf;
use teacher::engine::EngineConfig;
use teacher_kernels::SamplingParams;
use teacher_models::fetch;
use teacher_models::forward::{Device, Transformer};
use teacher_models::{LoadOptions, ModelFile};

#[derive(Args, Clone)]
pub(crate) struct ModelArgs {
    /// A catalog name (`teacher models list`), a path to a `.gguf` file, or
    /// `hf:OWNER/REPO/FILE.gguf`.
    #[arg(
        long,
        short,
        env = "TEACHER_MODEL",
        default_value = "smollm2-135m-instruct"
    )]
    pub(crate) model: String,
    /// A Hugging Face `tokenizer.json` to use instead of the GGUF's tokenizer.
    #[arg(long)]
    pub(crate) tokenizer: Option<PathBuf>,
    /// A Jinja chat template file to use instead of the GGUF's.
    #[arg(long)]
    pub(crate) chat_template: Option<PathBuf>,
    /// Where the model runs: auto (a GPU this build supports, if present; else the
    /// CPU), cpu, cuda, cuda:N or metal. The output is the same on each.
    #[arg(long, env = "TEACHER_DEVICE", default_value = "auto")]
    pub(crate) device: String,
}

impl ModelArgs {
    /// Load the forward pass of an opened model on `--device`, saying on stderr which
    /// device was chosen when it is not the plain CPU.
    pub(crate) fn load(&self, file: &ModelFile) -> anyhow::Result<Transformer> {
        let device: Device = self.device.parse()?;
        let model = Transformer::load_on(file.gguf.clone(), device)?;
        if let Some(note) = model.device_note() {
            eprintln!("device: {note}");
        } else if device != Device::Cpu && model.device() != "cpu" {
            eprintln!("device: {}", model.device());
        }
        Ok(model)
    }

    /// The local files this model reads (`--model` when it is a path, `--tokenizer`,
    /// `--chat-template`), so that no output is written over one of them.
    pub(crate) fn input_files(&self) -> Vec<(&'static str, &std::path::Path)> {
        let mut v: Vec<(&'static str, &std::path::Path)> = Vec::new();
        let model = std::path::Path::new(&self.model);
        if model.is_file() {
            v.push(("--model", model));
        }
        if let Some(t) = &self.tokenizer {
            v.push(("--tokenizer", t));
        }
        if let Some(t) = &self.chat_template {
            v.push(("--chat-template", t));
        }
        v
    }

    pub(crate) fn open(&self, offline: bool) -> anyhow::Result<ModelFile> {
        let resolved = fetch::resolve(&self.model, offline)?;
        let opts = LoadOptions {
            tokenizer: self.tokenizer.clone(),
            chat_template: self.chat_template.clone(),
        };
        Ok(ModelFile::open(&resolved.path, &opts)?)
    }
}

#[derive(Args, Clone)]
pub(crate) struct EngineArgs {
    /// Most sequences decoded together.
    #[arg(long, default_value_t = 16)]
    pub(crate) batch: usize,
    /// Positions per sequence (prompt + completion); at most the model's context
    /// [default: 2048, or the model's context where that is shorter].
    #[arg(long)]
    pub(crate) context: Option<usize>,
    /// Memory the KV cache may take, in GiB.
    #[arg(long, default_value_t = 8.0)]
    pub(crate) kv_memory: f64,
    /// What the KV cache stores: f16 (llama.cpp's default; half the memory and
    /// attention traffic), f32 (exact activations) or q8 (8-bit blocks of 32 with a
    /// scale, like llama.cpp's q8_0: 56 % of f16's memory; CPU only, different text).
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    pub(crate) kv_type: KvArg,
    /// Compute every prompt in full instead of starting it from a prefix another
    /// sequence already computed (the output is the same; for measuring).
    #[arg(long)]
    pub(crate) no_prefix_reuse: bool,
}

impl EngineArgs {
    pub(crate) fn config(&self, seed: u64) -> EngineConfig {
        let mut cfg = EngineConfig::new(self.batch, self.context.unwrap_or(2048), seed);
        cfg.strict_context = self.context.is_some();
        // A negative or NaN budget becomes 0 (then refused with the sizes); an absurd one
        // saturates.
        cfg.kv_memory = (self.kv_memory.max(0.0) * (1u64 << 30) as f64) as usize;
        cfg.kv_type = self.kv_type.into();
        cfg.prefix_reuse = !self.no_prefix_reuse;
        cfg
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum KvArg {
    F16,
    F32,
    Q8,
}

impl From<KvArg> for teacher_kernels::ops::KvType {
    fn from(k: KvArg) -> Self {
        match k {
            KvArg::F16 => teacher_kernels::ops::KvType::F16,
            KvArg::F32 => teacher_kernels::ops::KvType::F32,
            KvArg::Q8 => teacher_kernels::ops::KvType::Q8,
        }
    }
}

#[derive(Args, Clone)]
pub(crate) struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub(crate) max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub(crate) top_p: f32,
    /// 0 disables top-k.
    #[arg(long, default_value_t = 0)]
    pub(crate) top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    pub(crate) min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub(crate) repetition_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub(crate) presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub(crate) frequency_penalty: f32,
    /// The run seed: the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

impl SamplingArgs {
    pub(crate) fn params(&self) -> anyhow::Result<SamplingParams> {
        if self.max_tokens == 0 {
            anyhow::bail!("--max-tokens must be at least 1");
        }
        let p = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            logit_bias: vec![],
        };
        p.validate().map_err(teacher::Error::from)?;
        Ok(p)
    }
}

/// The model file, its sha256 (from the catalog when known) and its name.
pub(crate) fn open_for_pipeline(
    m: &ModelArgs,
    offline: bool,
) -> anyhow::Result<(ModelFile, String)> {
    let resolved = fetch::resolve(&m.model, offline)?;
    let file = ModelFile::open(
        &resolved.path,
        &LoadOptions {
            tokenizer: m.tokenizer.clone(),
            chat_template: m.chat_template.clone(),
        },
    )?;
    let sha = match &resolved.entry {
        Some(e) => e.sha256.clone(),
        None => fetch::sha256_file(&resolved.path)?,
    };
    Ok((file, sha))
}

/// Refuse output paths that cannot be written before any work is done: a directory, a
/// missing parent directory, two outputs that are one file, or an output that is one of
/// the command's inputs (the model's files included). Paths are compared by the file
/// they name on disk: `sub/../in.jsonl`, symlinks and hard links included.
pub(crate) fn check_outputs(
    outputs: &[(&str, &std::path::Path)],
    inputs: &[(&str, &std::path::Path)],
) -> anyhow::Result<()> {
    for (flag, out) in outputs {
        if out.is_dir() {
            anyhow::bail!(
                "{flag} `{}` is a directory; give a file name",
                out.display()
            );
        }
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                anyhow::bail!(
                    "{flag} `{}`: the directory `{}` does not exist",
                    out.display(),
                    parent.display()
                );
            }
        }
    }
    teacher::files::check_distinct(outputs)?;
    for out in outputs {
        for input in inputs {
            teacher::files::check_distinct(&[*out, *input])?;
        }
    }
    Ok(())
}
