//! The `teacher` command line: parse, check, call the library, map errors to exit codes.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use teacher::engine::{Engine, EngineConfig, Request};
use teacher_kernels::SamplingParams;
use teacher_models::catalog::Catalog;
use teacher_models::fetch;
use teacher_models::forward::Transformer;
use teacher_models::{LoadOptions, Message, ModelFile};

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
    Tokenize(TokenizeArgs),
    /// Continue a prompt (or answer messages) with the model, streaming to stdout.
    Complete(CompleteArgs),
    /// Completions for a JSONL file of prompts, batched, written in input order.
    Generate(GenerateArgs),
    /// Prefill and batched decode throughput of a model, as a table or JSON.
    Bench(BenchArgs),
    /// List, fetch and inspect models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Drop near-duplicates from a JSONL or JSON-array file, keeping the first of each group.
    Dedup(DedupArgs),
    /// Grow a seed set into new tasks with instances (Self-Instruct / Alpaca).
    SelfInstruct(SelfInstructArgs),
    /// A response from the teacher for every instruction of a file.
    Respond(RespondArgs),
    /// Evolve instructions into harder ones over rounds (Evol-Instruct), with responses.
    Evolve(EvolveArgs),
    /// Counts, acceptance by filter, length and similarity distributions of a dataset.
    Stats {
        /// A JSONL file made by self-instruct, evolve or respond (or any records with
        /// `instruction`).
        file: PathBuf,
        /// The run's rejected file, for per-round and per-operation elimination counts.
        #[arg(long)]
        rejected: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct RespondArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Alpaca or teacher records, `messages`/ShareGPT records, or one instruction per line.
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// A system prompt for chat models (base models get it as a preamble).
    #[arg(long)]
    system: Option<String>,
    /// Records per committed wave.
    #[arg(long, default_value_t = 64)]
    wave_size: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args)]
struct EvolveArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Instructions to evolve (any format `respond` reads).
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Write every failed evolution with its elimination reason here.
    #[arg(long)]
    rejected: Option<PathBuf>,
    /// Evolution rounds (the paper uses 4).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Operations to draw from (default: all six).
    #[arg(long, value_enum, value_delimiter = ',')]
    ops: Option<Vec<teacher::pipeline::evol::EvolOp>>,
    /// Also write the original instructions (round 0).
    #[arg(long)]
    keep_originals: bool,
    /// ROUGE-L F1 at which an evolution duplicates another kept one.
    #[arg(long, default_value_t = 0.7)]
    threshold: f64,
    /// Items per committed wave.
    #[arg(long, default_value_t = 64)]
    wave_size: usize,
    /// Evolution decoding (WizardLM: temperature 1, top-p 0.95).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Token limit of an evolved instruction.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Response decoding (the paper: temperature 1, top-p 0.9).
    #[arg(long, default_value_t = 1.0)]
    response_temperature: f32,
    #[arg(long, default_value_t = 0.9)]
    response_top_p: f32,
    /// Token limit of a response (the paper allows 2048).
    #[arg(long, default_value_t = 512)]
    response_max_tokens: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args)]
struct SelfInstructArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Machine-generated tasks to produce (at least; the last wave is kept whole).
    #[arg(long, default_value_t = 100)]
    num: usize,
    /// The output JSONL; running the same command again resumes it.
    #[arg(long, default_value = "self_instruct.jsonl")]
    out: PathBuf,
    /// Write every rejected candidate with its reason here.
    #[arg(long)]
    rejected: Option<PathBuf>,
    /// Seed tasks (Self-Instruct JSONL, Alpaca JSON/JSONL, or one instruction per line);
    /// default: the 126 seeds shipped with teacher.
    #[arg(long)]
    seeds: Option<PathBuf>,
    #[arg(long, value_enum)]
    seed_format: Option<teacher::pipeline::seeds::SeedFormat>,
    /// `paper` for base models, `alpaca` for chat models; default from the model.
    #[arg(long, value_enum)]
    style: Option<teacher::pipeline::self_instruct::Style>,
    /// Prompts per wave; the output depends on it (never on --batch).
    #[arg(long, default_value_t = 64)]
    wave_size: usize,
    /// Alpaca style: tasks asked for per request.
    #[arg(long, default_value_t = 20)]
    num_tasks: usize,
    /// ROUGE-L F1 at which a new instruction is a near-duplicate.
    #[arg(long, default_value_t = 0.7)]
    threshold: f64,
    /// Drop only above the threshold (the reference code's `>`), not at it.
    #[arg(long)]
    strict: bool,
    /// Apply Python's str.capitalize() to instructions as the Self-Instruct code does
    /// (lower-cases everything after the first letter).
    #[arg(long)]
    capitalize: bool,
    /// Override the instruction-generation temperature (paper 0.7, alpaca 1.0).
    #[arg(long)]
    temperature: Option<f32>,
    /// Override top-p (paper 0.5, alpaca 1.0).
    #[arg(long)]
    top_p: Option<f32>,
    /// Override the instruction-generation token limit (paper 1024, alpaca 600).
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Alpaca style: token limit of the answer asked for a task that came without one.
    #[arg(long, default_value_t = 400)]
    answer_max_tokens: usize,
    /// The run seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after this many waves in a row produce nothing.
    #[arg(long, default_value_t = 5)]
    stall_waves: usize,
    /// Also export the data as `alpaca`, `sharegpt` or `messages` JSON next to --out.
    #[arg(long, value_enum)]
    format: Option<teacher::export::Format>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DedupMethod {
    /// Exact ROUGE-L F1 (Self-Instruct's filter).
    RougeL,
    /// MinHash-LSH over word n-grams (approximate; millions of items).
    Minhash,
    /// Identical after normalising case, whitespace and punctuation.
    Exact,
}

#[derive(Args)]
struct DedupArgs {
    /// JSONL (one object per line) or a JSON array of objects.
    #[arg(long)]
    input: PathBuf,
    /// Where the kept records go (JSONL, records copied byte for byte).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "rouge-l")]
    method: DedupMethod,
    /// Similarity at which a record is a duplicate: ROUGE-L F1 (default 0.7) or
    /// Jaccard (default 0.8).
    #[arg(long)]
    threshold: Option<f64>,
    /// Drop only when the score is strictly above the threshold (the Self-Instruct and
    /// Alpaca code's `>`), instead of the paper's `>=`.
    #[arg(long)]
    strict: bool,
    /// The field compared; a dotted path reaches into objects and arrays, e.g.
    /// `conversations.0.value` for a ShareGPT record's first turn.
    #[arg(long, default_value = "instruction", conflicts_with = "fields")]
    field: String,
    /// Several fields, comma-separated, compared joined by a newline.
    #[arg(long, value_delimiter = ',')]
    fields: Option<Vec<String>>,
    /// Write each dropped record with the line, id and score of what it duplicated.
    #[arg(long)]
    dropped: Option<PathBuf>,
    /// Count and skip records that are not JSON objects with the field as a string.
    #[arg(long)]
    skip_invalid: bool,
    /// MinHash: number of permutations.
    #[arg(long, default_value_t = 128)]
    num_perm: usize,
    /// MinHash: words per shingle.
    #[arg(long, default_value_t = 1)]
    ngram: usize,
    /// MinHash: drop on any band collision instead of confirming each candidate by its
    /// true Jaccard similarity (less memory, some false drops; bands then balance
    /// misses and false drops equally).
    #[arg(long)]
    no_verify: bool,
    /// MinHash: seed of the hash functions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// A catalog name (`teacher models list`), a path to a `.gguf` file, or
    /// `hf:OWNER/REPO/FILE.gguf`.
    #[arg(
        long,
        short,
        env = "TEACHER_MODEL",
        default_value = "smollm2-135m-instruct"
    )]
    model: String,
    /// A Hugging Face `tokenizer.json` to use instead of the GGUF's tokenizer.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// A Jinja chat template file to use instead of the GGUF's.
    #[arg(long)]
    chat_template: Option<PathBuf>,
}

impl ModelArgs {
    fn open(&self, offline: bool) -> anyhow::Result<ModelFile> {
        let resolved = fetch::resolve(&self.model, offline)?;
        let opts = LoadOptions {
            tokenizer: self.tokenizer.clone(),
            chat_template: self.chat_template.clone(),
        };
        Ok(ModelFile::open(&resolved.path, &opts)?)
    }
}

#[derive(Args)]
struct TokenizeArgs {
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

#[derive(Args)]
struct CompleteArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Plain text for the model to continue.
    #[arg(
        long,
        conflicts_with = "messages",
        required_unless_present = "messages"
    )]
    prompt: Option<String>,
    /// With --prompt: send it as one user message through the chat template.
    #[arg(long, requires = "prompt")]
    chat: bool,
    /// A JSON array of `{"role", "content"}` messages (chat models).
    #[arg(long)]
    messages: Option<String>,
    /// A system message put before the others (chat only).
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Most sequences decoded together.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Positions per sequence (prompt + completion); at most the model's context.
    #[arg(long, default_value_t = 2048)]
    context: usize,
    /// Memory the KV cache may take, in GiB.
    #[arg(long, default_value_t = 8.0)]
    kv_memory: f64,
    /// What the KV cache stores: f16 (llama.cpp's default; half the memory and
    /// attention traffic) or f32 (exact activations).
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    kv_type: KvArg,
}

impl EngineArgs {
    fn config(&self, seed: u64) -> EngineConfig {
        let mut cfg = EngineConfig::new(self.batch, self.context, seed);
        cfg.kv_memory = (self.kv_memory * (1u64 << 30) as f64) as usize;
        cfg.kv_type = self.kv_type.into();
        cfg
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum KvArg {
    F16,
    F32,
}

impl From<KvArg> for teacher_kernels::ops::KvType {
    fn from(k: KvArg) -> Self {
        match k {
            KvArg::F16 => teacher_kernels::ops::KvType::F16,
            KvArg::F32 => teacher_kernels::ops::KvType::F32,
        }
    }
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL: `{"id", "prompt"}` or `{"id", "messages"}` per line, with optional
    /// `temperature`, `top_p`, `top_k`, `min_p`, `max_tokens`, `stop`.
    #[arg(long)]
    input: PathBuf,
    /// Where `{id, text, finish_reason, prompt_tokens, completion_tokens}` lines go.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(Args)]
struct BenchArgs {
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
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// 0 disables top-k.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    frequency_penalty: f32,
    /// The run seed: the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl SamplingArgs {
    fn params(&self) -> anyhow::Result<SamplingParams> {
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

#[derive(Subcommand)]
enum ModelsCommand {
    /// The catalog, and which models are already downloaded.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Download catalog models into the cache (verified by sha256).
    Pull {
        /// Catalog names; none with --all.
        names: Vec<String>,
        /// Every model in the catalog.
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
        Command::Tokenize(a) => tokenize(a, offline),
        Command::Complete(a) => complete(a, offline),
        Command::Generate(a) => generate(a, offline),
        Command::Bench(a) => bench(a, offline),
        Command::Models(m) => models(m, offline),
        Command::Dedup(a) => dedup(a),
        Command::SelfInstruct(a) => self_instruct(a, offline),
        Command::Respond(a) => respond(a, offline),
        Command::Evolve(a) => evolve(a, offline),
        Command::Stats {
            file,
            rejected,
            json,
        } => {
            let v = teacher::stats::compute(&file, rejected.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", teacher::stats::render(&v));
            }
            Ok(())
        }
    }
}

fn self_instruct(a: SelfInstructArgs, offline: bool) -> anyhow::Result<()> {
    use teacher::pipeline::{seeds, self_instruct as si};
    if a.num == 0 || a.wave_size == 0 || a.num_tasks == 0 {
        bail!("--num, --wave-size and --num-tasks must be at least 1");
    }
    if !(a.threshold > 0.0 && a.threshold <= 1.0) {
        bail!("--threshold must be in (0, 1], got {}", a.threshold);
    }
    let check = SamplingParams {
        temperature: a.temperature.unwrap_or(0.7),
        top_p: a.top_p.unwrap_or(0.5),
        ..SamplingParams::default()
    };
    check.validate().map_err(teacher::Error::from)?;
    let seed_tasks = match &a.seeds {
        Some(p) => seeds::load(p, a.seed_format)?,
        None => seeds::default_seeds(),
    };
    let seeds_sha = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for s in &seed_tasks {
            h.update(serde_json::to_vec(s)?);
        }
        format!("{:x}", h.finalize())
    };
    let resolved = fetch::resolve(&a.model.model, offline)?;
    let file = ModelFile::open(
        &resolved.path,
        &LoadOptions {
            tokenizer: a.model.tokenizer.clone(),
            chat_template: a.model.chat_template.clone(),
        },
    )?;
    let style = a.style.unwrap_or(match file.prompt_style() {
        teacher_models::PromptStyle::Chat => si::Style::Alpaca,
        teacher_models::PromptStyle::Completion => si::Style::Paper,
    });
    if style == si::Style::Alpaca && file.chat_template.is_none() {
        bail!("--style alpaca needs a chat model; `{}` has no chat template\nhint: use --style paper, or give a template with --chat-template FILE", a.model.model);
    }
    let model_sha256 = match &resolved.entry {
        Some(e) => e.sha256.clone(),
        None => fetch::sha256_file(&resolved.path)?,
    };
    let cfg = si::Config {
        style,
        num: a.num,
        wave_size: a.wave_size,
        seed: a.seed,
        num_tasks: a.num_tasks,
        threshold: a.threshold,
        rule: if a.strict {
            teacher::filter::DropRule::Above
        } else {
            teacher::filter::DropRule::AtLeast
        },
        capitalize: a.capitalize,
        temperature: a.temperature,
        top_p: a.top_p,
        max_tokens: a.max_tokens,
        answer_max_tokens: a.answer_max_tokens.max(1),
        stall_waves: a.stall_waves.max(1),
        model_name: a.model.model.clone(),
        model_sha256,
        seeds_sha256: seeds_sha,
    };
    let model = Transformer::load(file.gguf.clone())?;
    let ecfg = a.engine.config(a.seed);
    let mut engine = Engine::new(&model, &file.tokenizer, ecfg)?;
    let bar = teacher::progress::bar(a.num as u64, "tasks");
    let started = std::time::Instant::now();
    let p = si::run(
        &mut engine,
        &file,
        seed_tasks,
        &cfg,
        &a.out,
        a.rejected.as_deref(),
        |p| {
            let rejected: u64 = p.rejected.values().sum();
            let tps = p.generated_tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
            match &bar {
                Some(b) => {
                    b.set_position(p.accepted as u64);
                    b.set_message(format!(
                        "wave {} · {tps:.0} tok/s · {rejected} rejected",
                        p.wave
                    ));
                }
                None => eprintln!(
                    "teacher: wave {}: {}/{} tasks, {} rejected {:?}, {:.0} tok/s",
                    p.wave, p.accepted, p.target, rejected, p.rejected, tps
                ),
            }
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let total = started.elapsed().as_secs_f64();
    eprintln!(
        "teacher: {} tasks in `{}` ({} rejected) in {:.1} s; generation {:.1} s, filtering {:.2} s",
        p.accepted,
        a.out.display(),
        p.rejected.values().sum::<u64>(),
        total,
        p.generation_seconds,
        p.filter_seconds
    );
    if let Some(f) = a.format {
        let path = teacher::export::export_file(&a.out, f)?;
        eprintln!("teacher: exported {}", path.display());
    }
    Ok(())
}

/// The model file, its sha256 (from the catalog when known) and its name.
fn open_for_pipeline(m: &ModelArgs, offline: bool) -> anyhow::Result<(ModelFile, String)> {
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

fn respond(a: RespondArgs, offline: bool) -> anyhow::Result<()> {
    use teacher::pipeline::{items, respond as rs};
    let sampling = a.sampling.params()?;
    if a.wave_size == 0 || a.sampling.max_tokens == 0 {
        bail!("--wave-size and --max-tokens must be at least 1");
    }
    let list = items::load(&a.input)?;
    let (file, model_sha256) = open_for_pipeline(&a.model, offline)?;
    let cfg = rs::Config {
        sampling,
        max_tokens: a.sampling.max_tokens,
        seed: a.sampling.seed,
        system: a.system.clone(),
        wave_size: a.wave_size,
        model_name: a.model.model.clone(),
        model_sha256,
        input_sha256: fetch::sha256_file(&a.input)?,
    };
    let model = Transformer::load(file.gguf.clone())?;
    let ecfg = a.engine.config(a.sampling.seed);
    let mut engine = Engine::new(&model, &file.tokenizer, ecfg)?;
    let bar = teacher::progress::bar(list.len() as u64, "responses");
    let started = std::time::Instant::now();
    let n = rs::run(
        &mut engine,
        &file,
        &list,
        &cfg,
        &a.out,
        |done, total| match &bar {
            Some(b) => b.set_position(done as u64),
            None => eprintln!("teacher: {done}/{total} responses"),
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "teacher: {n} responses in `{}` in {:.1} s ({} tokens generated)",
        a.out.display(),
        started.elapsed().as_secs_f64(),
        engine.stats.generated_tokens
    );
    Ok(())
}

fn evolve(a: EvolveArgs, offline: bool) -> anyhow::Result<()> {
    use teacher::pipeline::{evol, items};
    if a.rounds == 0 || a.wave_size == 0 || a.max_tokens == 0 || a.response_max_tokens == 0 {
        bail!("--rounds, --wave-size, --max-tokens and --response-max-tokens must be at least 1");
    }
    if !(a.threshold > 0.0 && a.threshold <= 1.0) {
        bail!("--threshold must be in (0, 1], got {}", a.threshold);
    }
    let evolve_sampling = SamplingParams {
        temperature: a.temperature,
        top_p: a.top_p,
        ..SamplingParams::default()
    };
    let response_sampling = SamplingParams {
        temperature: a.response_temperature,
        top_p: a.response_top_p,
        ..SamplingParams::default()
    };
    evolve_sampling.validate().map_err(teacher::Error::from)?;
    response_sampling.validate().map_err(teacher::Error::from)?;
    let mut ops = a.ops.clone().unwrap_or_else(|| evol::ALL_OPS.to_vec());
    ops.sort();
    ops.dedup();
    let list = items::load(&a.input)?;
    let (file, model_sha256) = open_for_pipeline(&a.model, offline)?;
    let cfg = evol::Config {
        rounds: a.rounds,
        ops,
        seed: a.seed,
        wave_size: a.wave_size,
        keep_originals: a.keep_originals,
        threshold: a.threshold,
        evolve_sampling,
        evolve_max_tokens: a.max_tokens,
        response_sampling,
        response_max_tokens: a.response_max_tokens,
        model_name: a.model.model.clone(),
        model_sha256,
        input_sha256: fetch::sha256_file(&a.input)?,
    };
    let model = Transformer::load(file.gguf.clone())?;
    let ecfg = a.engine.config(a.seed);
    let mut engine = Engine::new(&model, &file.tokenizer, ecfg)?;
    let started = std::time::Instant::now();
    let bar = teacher::progress::bar((a.rounds * list.len()) as u64, "evolutions tried");
    let p = evol::run(
        &mut engine,
        &file,
        &list,
        &cfg,
        &a.out,
        a.rejected.as_deref(),
        |p| {
            let failed: u64 = p
                .failed
                .iter()
                .filter(|(k, _)| *k != "equality_unclear")
                .map(|(_, v)| v)
                .sum();
            match &bar {
                Some(b) => {
                    b.set_position(p.evolved + failed);
                    b.set_message(format!(
                        "round {} · {} evolved · {failed} eliminated",
                        p.round, p.evolved
                    ));
                }
                None => eprintln!(
                    "teacher: round {} wave {}: {} evolved, eliminated {:?}",
                    p.round, p.waves, p.evolved, p.failed
                ),
            }
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "teacher: {} evolved instructions in `{}` in {:.1} s; generation {:.1} s, filtering {:.2} s; eliminated {:?}",
        p.evolved,
        a.out.display(),
        started.elapsed().as_secs_f64(),
        p.generation_seconds,
        p.filter_seconds,
        p.failed
    );
    Ok(())
}

fn dedup(a: DedupArgs) -> anyhow::Result<()> {
    use teacher::dedup::{DedupOptions, Method};
    use teacher::filter::DropRule;
    let (method, default_threshold) = match a.method {
        DedupMethod::RougeL => (Method::RougeL, 0.7),
        DedupMethod::Minhash => (Method::MinHash, 0.8),
        DedupMethod::Exact => (Method::Exact, 1.0),
    };
    let threshold = a.threshold.unwrap_or(default_threshold);
    if !(threshold > 0.0 && threshold <= 1.0) {
        bail!("--threshold must be in (0, 1], got {threshold}");
    }
    if a.num_perm == 0 || a.num_perm > 1024 {
        bail!("--num-perm must be in 1..=1024, got {}", a.num_perm);
    }
    let opts = DedupOptions {
        method,
        threshold,
        rule: if a.strict {
            DropRule::Above
        } else {
            DropRule::AtLeast
        },
        fields: a.fields.clone().unwrap_or_else(|| vec![a.field.clone()]),
        skip_invalid: a.skip_invalid,
        num_perm: a.num_perm,
        ngram: a.ngram,
        verify: !a.no_verify,
        seed: a.seed,
    };
    let bar = teacher::progress::counter("records");
    let report = teacher::dedup::run(&a.input, &a.out, a.dropped.as_deref(), &opts, |r| {
        if let Some(b) = &bar {
            b.set_position(r.read);
            b.set_message(format!("kept {} dropped {}", r.kept, r.dropped));
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if report.read == 0 {
        eprintln!(
            "teacher: `{}` is empty; wrote an empty `{}`",
            a.input.display(),
            a.out.display()
        );
    }
    eprintln!(
        "teacher: read {}, kept {}, dropped {}, invalid {} in {:.2} s",
        report.read, report.kept, report.dropped, report.invalid, report.seconds
    );
    if let Some(p) = &report.rouge_pruning {
        let pct = |x: u64| {
            if p.pairs == 0 {
                0.0
            } else {
                100.0 * x as f64 / p.pairs as f64
            }
        };
        eprintln!(
            "teacher: {} candidate pairs: {:.2}% never probed (prefix), {:.2}% pruned by length, {:.2}% by token multiset, {:.2}% scored by LCS",
            p.pairs,
            pct(p.skipped_by_prefix),
            pct(p.pruned_by_length),
            pct(p.pruned_by_multiset),
            pct(p.lcs_computed)
        );
    }
    if let Some(m) = &report.minhash {
        eprintln!(
            "teacher: minhash {} permutations as {} bands x {} rows, {}-word shingles",
            m.num_perm, m.bands, m.rows, m.ngram
        );
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

fn tokenize(a: TokenizeArgs, offline: bool) -> anyhow::Result<()> {
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

fn complete(a: CompleteArgs, offline: bool) -> anyhow::Result<()> {
    // Check everything the user typed before the model is loaded.
    let sampling = a.sampling.params()?;
    let messages: Option<Vec<Message>> = match (&a.messages, &a.prompt, a.chat) {
        (Some(json), _, _) => {
            let m: Vec<Message> = serde_json::from_str(json).context(
                "--messages must be a JSON array of {\"role\": ..., \"content\": ...} objects",
            )?;
            if m.is_empty() {
                bail!("--messages is an empty list");
            }
            Some(m)
        }
        (None, Some(p), true) => Some(vec![Message::new("user", p.clone())]),
        _ => None,
    };
    let messages = messages.map(|mut m| {
        if let Some(s) = &a.system {
            m.insert(0, Message::new("system", s.clone()));
        }
        m
    });
    let file = a.model.open(offline)?;
    let text = match &messages {
        Some(m) => file.render_chat(m)?,
        None => a.prompt.clone().unwrap_or_default(),
    };
    let ids = file.encode_prompt(&text)?;
    let model = Transformer::load(file.gguf.clone())?;
    let cfg = EngineConfig::new(1, model.hp.context_length.min(8192), a.sampling.seed);
    let mut engine = Engine::new(&model, &file.tokenizer, cfg)?;
    let mut result = None;
    engine.stream_to(Box::new(|_, piece| {
        let mut out = std::io::stdout().lock();
        out.write_all(piece.as_bytes())
            .and_then(|_| out.flush())
            .map_err(teacher::Error::Output)
    }));
    let req = Request {
        id: 0,
        prompt: ids,
        params: sampling,
        max_tokens: a.sampling.max_tokens,
        stop: Vec::new(),
    };
    engine.run([req], |o| {
        result = Some(o);
        Ok(())
    })?;
    drop(engine);
    writeln!(std::io::stdout())?;
    let done = result.expect("one request gives one result");
    if let Some(e) = &done.error {
        bail!("{e}");
    }
    eprintln!(
        "teacher: {} prompt tokens, {} generated, finish: {:?}",
        done.prompt_tokens, done.completion_tokens, done.finish_reason
    );
    Ok(())
}

fn generate(a: GenerateArgs, offline: bool) -> anyhow::Result<()> {
    let defaults = a.sampling.params()?;
    if a.sampling.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    let records = teacher::generate::read_prompts(&a.input, &defaults, a.sampling.max_tokens)?;
    let file = a.model.open(offline)?;
    let model = Transformer::load(file.gguf.clone())?;
    let cfg = a.engine.config(a.sampling.seed);
    let mut engine = Engine::new(&model, &file.tokenizer, cfg)?;
    let bar = teacher::progress::counter("completions");
    let started = std::time::Instant::now();
    teacher::generate::run(&mut engine, &file, &records, &a.out, |n| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let s = &engine.stats;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "teacher: {} completions, {} prompt + {} generated tokens in {:.1} s ({:.1} generated tok/s)",
        records.len(),
        s.prompt_tokens,
        s.generated_tokens,
        secs,
        s.generated_tokens as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn bench(a: BenchArgs, offline: bool) -> anyhow::Result<()> {
    if a.batch.contains(&0) || a.prompt_tokens == 0 || a.gen_tokens == 0 {
        bail!("batch sizes, --prompt-tokens and --gen-tokens must be at least 1");
    }
    let file = a.model.open(offline)?;
    let started = std::time::Instant::now();
    let model = Transformer::load(file.gguf.clone())?;
    let load_s = started.elapsed().as_secs_f64();
    let threads = rayon::current_num_threads();
    let isa = format!("{:?}", teacher_kernels::matmul::detected_isa());
    if !a.json {
        println!(
            "model {} · {} threads · kernels {isa} · KV {:?} · load {:.2} s · prompt {} + gen {} tokens",
            a.model.model, threads, a.kv_type, load_s, a.prompt_tokens, a.gen_tokens
        );
        println!(
            "{:>6} {:>14} {:>16} {:>12}",
            "batch", "prefill tok/s", "decode tok/s", "peak RSS MB"
        );
    }
    let rows = teacher::bench::run(
        &model,
        &file.tokenizer,
        &a.batch,
        a.prompt_tokens,
        a.gen_tokens,
        a.kv_type.into(),
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

fn models(cmd: ModelsCommand, offline: bool) -> anyhow::Result<()> {
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
                    "{:<24} {:<9} {:<8} {:>8}  {:<10} description",
                    "name", "kind", "arch", "size", "local"
                )?;
                for (e, r) in catalog.entries.iter().zip(&rows) {
                    let name = if e.default {
                        format!("{} *", e.name)
                    } else {
                        e.name.clone()
                    };
                    writeln!(
                        out,
                        "{:<24} {:<9} {:<8} {:>6} MB  {:<10} {}",
                        name,
                        e.kind,
                        e.architecture,
                        e.bytes / 1_000_000,
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
                let e = catalog.lookup(&n)?;
                let path = fetch::pull(e, offline, true)?;
                writeln!(out, "{}\t{}", e.name, path.display())?;
            }
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
