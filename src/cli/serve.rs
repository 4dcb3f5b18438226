//! `teacher serve`: an OpenAI-compatible server on the batched engine.

use super::args::{open_for_pipeline, EngineArgs, ModelArgs};
use anyhow::{bail, Context};
use clap::Args;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use teacher::engine::Engine;

#[derive(Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on. Anything but loopback needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (0: any free port; the address is printed on stdout).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Require `Authorization: Bearer KEY` (also read from TEACHER_API_KEY).
    #[arg(long, env = "TEACHER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Choices queued or running before requests are refused with 429.
    #[arg(long, default_value_t = 256)]
    max_queue: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// The model name clients use (default: --model as given).
    #[arg(long)]
    served_name: Option<String>,
    /// Seed of the draws of requests that give no `seed`.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    engine: EngineArgs,
}

pub(crate) fn run(a: ServeArgs, offline: bool) -> anyhow::Result<()> {
    if !a.host.is_loopback() && a.api_key.is_none() {
        bail!(
            "--host {} would serve the network without authentication\nhint: add --api-key KEY (clients send `Authorization: Bearer KEY`), or keep the default 127.0.0.1",
            a.host
        );
    }
    if a.max_queue == 0 || a.max_body == 0 {
        bail!("--max-queue and --max-body must be at least 1");
    }
    let (file, _sha) = open_for_pipeline(&a.model, offline)?;
    let file = Arc::new(file);
    let model = a.model.load(&file)?;
    let ecfg = a.engine.config(a.seed);
    let mut engine = Engine::new(&model, &file.tokenizer, ecfg)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }
    let name = a
        .served_name
        .clone()
        .unwrap_or_else(|| a.model.model.clone());
    let cfg = teacher::serve::ServeConfig {
        addr: SocketAddr::new(a.host, a.port),
        api_key: a.api_key.clone(),
        model_name: name.clone(),
        max_queue: a.max_queue,
        max_body: a.max_body,
        seed: a.seed,
    };
    teacher::serve::run(&mut engine, file.clone(), cfg, stop, |addr| {
        println!("teacher: serving `{name}` on http://{addr}/v1 (OpenAI-compatible: /v1/models, /v1/completions, /v1/chat/completions)");
        let _ = std::io::stdout().flush();
    })?;
    Ok(())
}
