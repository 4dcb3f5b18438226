//! `teacher serve`: an OpenAI-compatible HTTP server on the batched engine.
//!
//! Connections are read on their own threads (`http.rs`), bodies parsed and checked
//! (`openai.rs`), prompts tokenized there; each choice becomes an engine request on a
//! bounded queue (429 when full). The engine runs on the calling thread and takes
//! requests from the queue as slots free up (continuous batching through
//! `Engine::serve`). Draws are keyed by the client's `seed` and the choice index, and
//! the forward pass is batch-invariant, so the same request with the same seed gives the
//! same text whatever else is being served. A client that goes away is noticed (a
//! streaming one at its next write, a waiting one by polling its socket) and its
//! sequences are dropped, freeing their slots. Ctrl-C
//! drains: no new connections, in-flight requests finish, then the server exits.

pub mod http;
pub mod openai;

use crate::engine::{Engine, FinishReason, Next, Output, Request, Source};
use crate::error::{Error, Result};
use http::{respond_error, respond_json, EventStream, HttpRequest};
use openai::{Call, Kind, PromptIn};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use teacher_models::ModelFile;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    /// Required as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// The name `/v1/models` lists and requests must use.
    pub model_name: String,
    /// Choices queued or running before new requests get 429.
    pub max_queue: usize,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Mixed into the draws of requests without a `seed`.
    pub seed: u64,
}

enum Event {
    Text(String),
    Done(Output),
}

struct Job {
    req: Request,
    events: Sender<(usize, Event)>,
    choice: usize,
}

/// Where a running request's events go: (choice index, channel).
type Senders = HashMap<u64, (usize, Sender<(usize, Event)>)>;

/// What the connection threads and the engine share.
struct Hub {
    queue: Mutex<VecDeque<Job>>,
    wake: Condvar,
    senders: Mutex<Senders>,
    cancelled: Mutex<Vec<u64>>,
    in_flight: AtomicUsize,
    connections: AtomicUsize,
    draining: AtomicBool,
    next_id: AtomicU64,
    /// Constraints compiled once per pattern for the whole server (their per-state
    /// masks are shared by every request that uses them).
    constraints: Mutex<crate::constrain::Cache>,
    /// Each token's text, for `logprobs` in responses.
    token_bytes: Vec<Option<Vec<u8>>>,
}

impl Hub {
    fn send(&self, id: u64, ev: Event) -> bool {
        let senders = self.senders.lock().expect("senders");
        match senders.get(&id) {
            Some((choice, tx)) => tx.send((*choice, ev)).is_ok(),
            None => true,
        }
    }
}

struct QueueSource<'h>(&'h Hub);

impl Source for QueueSource<'_> {
    fn next(&mut self, idle: bool) -> Next {
        let hub = self.0;
        let mut q = hub.queue.lock().expect("queue");
        if q.is_empty() && idle {
            if hub.draining.load(Ordering::SeqCst) {
                return Next::Done;
            }
            q = hub
                .wake
                .wait_timeout(q, Duration::from_millis(100))
                .expect("queue")
                .0;
        }
        match q.pop_front() {
            Some(job) => {
                hub.senders
                    .lock()
                    .expect("senders")
                    .insert(job.req.id, (job.choice, job.events));
                Next::Request(job.req)
            }
            None => Next::Wait,
        }
    }

    fn cancelled(&mut self) -> Vec<u64> {
        std::mem::take(&mut *self.0.cancelled.lock().expect("cancelled"))
    }
}

/// Serve until Ctrl-C (or `stop` is set) and everything in flight has finished.
/// `on_ready` gets the bound address (the port when 0 was asked for).
pub fn run(
    engine: &mut Engine,
    file: Arc<ModelFile>,
    cfg: ServeConfig,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let listener = TcpListener::bind(cfg.addr).map_err(|e| {
        Error::Usage(format!(
            "cannot listen on {}: {e}\nhint: choose another --port (0 picks a free one)",
            cfg.addr
        ))
    })?;
    let addr = listener.local_addr().map_err(|e| Error::io("socket", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("socket", e))?;
    let hub = Arc::new(Hub {
        queue: Mutex::new(VecDeque::new()),
        wake: Condvar::new(),
        senders: Mutex::new(HashMap::new()),
        cancelled: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
        connections: AtomicUsize::new(0),
        draining: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        constraints: Mutex::new(crate::constrain::Cache::new(&file.tokenizer)),
        token_bytes: file.tokenizer.token_bytes(),
    });
    let context = engine.context();
    let cfg = Arc::new(cfg);
    on_ready(addr);

    // Accept connections until the drain starts.
    let acceptor = {
        let hub = hub.clone();
        let cfg = cfg.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let max_connections = cfg.max_queue + 64;
            loop {
                if stop.load(Ordering::SeqCst) {
                    hub.draining.store(true, Ordering::SeqCst);
                    hub.wake.notify_all();
                    eprintln!("teacher: draining: no new connections; finishing what is in flight");
                    return;
                }
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        if hub.connections.load(Ordering::SeqCst) >= max_connections {
                            respond_error(&stream, 503, "too many open connections", None);
                            continue;
                        }
                        hub.connections.fetch_add(1, Ordering::SeqCst);
                        let (hub, cfg, file) = (hub.clone(), cfg.clone(), file.clone());
                        std::thread::spawn(move || {
                            handle(&stream, &hub, &cfg, &file, context);
                            hub.connections.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };

    // The engine: stream text to the waiting connections, hand over results.
    {
        let sink_hub = hub.clone();
        engine.stream_to(Box::new(move |id, text| {
            if !sink_hub.send(id, Event::Text(text.to_string())) {
                sink_hub.cancelled.lock().expect("cancelled").push(id);
            }
            Ok(())
        }));
    }
    let done_hub = hub.clone();
    engine.serve(QueueSource(&hub), |out| {
        if out.finish_reason == FinishReason::Cancelled {
            eprintln!(
                "teacher: request {} cancelled (client went away) after {} tokens; its slot is free",
                out.id, out.completion_tokens
            );
        }
        let entry = done_hub.senders.lock().expect("senders").remove(&out.id);
        if let Some((choice, tx)) = entry {
            let _ = tx.send((choice, Event::Done(out)));
        }
        done_hub.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    })?;
    let _ = acceptor.join();
    // Let the last responses be written.
    for _ in 0..3000 {
        if hub.connections.load(Ordering::SeqCst) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("teacher: drained; stopped");
    Ok(())
}

/// Whether the client closed its side (it sends nothing after its request, so a
/// readable end of stream means it went away).
fn client_gone(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let gone = matches!(stream.peek(&mut [0u8; 1]), Ok(0));
    let _ = stream.set_nonblocking(false);
    gone
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn handle(stream: &TcpStream, hub: &Hub, cfg: &ServeConfig, file: &ModelFile, context: usize) {
    let req = match http::read_request(stream, cfg.max_body) {
        Ok(r) => r,
        Err(Some((status, msg))) => return respond_error(stream, status, &msg, None),
        Err(None) => return,
    };
    if let Some(key) = &cfg.api_key {
        let given = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return respond_error(
                stream,
                401,
                "missing or wrong API key (Authorization: Bearer …)",
                None,
            );
        }
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v1/models") => respond_json(
            stream,
            200,
            &json!({"object": "list", "data": [{"id": cfg.model_name, "object": "model",
                "created": 0, "owned_by": "teacher"}]}),
        ),
        ("GET", "/health") => respond_json(stream, 200, &json!({"status": "ok"})),
        ("POST", "/v1/completions") => {
            complete(stream, &req, Kind::Completion, hub, cfg, file, context)
        }
        ("POST", "/v1/chat/completions") => {
            complete(stream, &req, Kind::Chat, hub, cfg, file, context)
        }
        (_, "/v1/models" | "/v1/completions" | "/v1/chat/completions" | "/health") => {
            respond_error(
                stream,
                405,
                &format!("{} is not allowed here", req.method),
                None,
            )
        }
        (_, path) => respond_error(stream, 404, &format!("no route `{path}`"), None),
    }
}

#[allow(clippy::too_many_arguments)]
fn complete(
    stream: &TcpStream,
    req: &HttpRequest,
    kind: Kind,
    hub: &Hub,
    cfg: &ServeConfig,
    file: &ModelFile,
    context: usize,
) {
    let raw = String::from_utf8_lossy(&req.body);
    let body: Value = match serde_json::from_str(&raw) {
        Ok(v) => v,
        Err(e) => {
            return respond_error(
                stream,
                400,
                &format!("the body is not valid JSON: {e}"),
                None,
            )
        }
    };
    let call = match openai::parse(kind, &body, &raw, &cfg.model_name) {
        Ok(c) => c,
        Err(openai::BadRequest(msg, param)) => {
            let status = if param == Some("model") { 404 } else { 400 };
            return respond_error(stream, status, &msg, param);
        }
    };
    let jobs = match build_jobs(&call, hub, cfg, file, context) {
        Ok(j) => j,
        Err((msg, param)) => return respond_error(stream, 400, &msg, param),
    };
    let (prompt_tokens, jobs, rx) = jobs;
    let n = jobs.len();
    if hub.draining.load(Ordering::SeqCst) {
        return respond_error(stream, 503, "the server is shutting down", None);
    }
    // Admission: bounded in-flight choices.
    let mut cur = hub.in_flight.load(Ordering::SeqCst);
    loop {
        if cur + n > cfg.max_queue {
            return respond_error(
                stream,
                429,
                &format!(
                    "the queue is full ({cur} choices in flight, limit {}); retry later",
                    cfg.max_queue
                ),
                None,
            );
        }
        match hub
            .in_flight
            .compare_exchange(cur, cur + n, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    let ids: Vec<u64> = jobs.iter().map(|j| j.req.id).collect();
    {
        let mut q = hub.queue.lock().expect("queue");
        q.extend(jobs);
    }
    hub.wake.notify_all();
    let id = format!(
        "{}-{}",
        if kind == Kind::Chat {
            "chatcmpl"
        } else {
            "cmpl"
        },
        hub.next_id.fetch_add(1, Ordering::SeqCst)
    );
    let created = now();
    if call.stream {
        stream_out(stream, kind, &id, created, cfg, rx, n, &call.stop);
    } else {
        let mut outs: Vec<Option<Output>> = vec![None; n];
        let mut left = n;
        let mut checked = std::time::Instant::now();
        while left > 0 {
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok((i, Event::Done(o))) => {
                    outs[i] = Some(o);
                    left -= 1;
                }
                Ok((_, Event::Text(_))) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => return respond_error(stream, 500, "the engine stopped", None),
            }
            if left > 0 && checked.elapsed() >= Duration::from_millis(250) {
                checked = std::time::Instant::now();
                if client_gone(stream) {
                    // Free the slots: the engine drops these at its next step.
                    hub.cancelled.lock().expect("cancelled").extend(&ids);
                    return;
                }
            }
        }
        let outs: Vec<Output> = outs.into_iter().map(|o| o.expect("every choice")).collect();
        if let Some(e) = outs.iter().find_map(|o| o.error.clone()) {
            return respond_error(stream, 400, &e, Some("messages"));
        }
        respond_json(
            stream,
            200,
            &openai::response(
                kind,
                &id,
                created,
                &cfg.model_name,
                &outs,
                prompt_tokens,
                &hub.token_bytes,
            ),
        );
    }
}

type Jobs = (usize, Vec<Job>, Receiver<(usize, Event)>);

fn build_jobs(
    call: &Call,
    hub: &Hub,
    cfg: &ServeConfig,
    file: &ModelFile,
    context: usize,
) -> std::result::Result<Jobs, (String, Option<&'static str>)> {
    let constraint = match &call.constraint {
        None => None,
        Some(spec) => {
            let pattern = spec
                .pattern()
                .map_err(|e| (e.to_string(), Some("response_format")))?;
            Some(
                hub.constraints
                    .lock()
                    .expect("constraints")
                    .get(&pattern)
                    .map_err(|e| (e.to_string(), Some("response_format")))?,
            )
        }
    };
    // Without a seed, each request draws its own (from the server seed and a counter).
    let seed = call.seed.unwrap_or_else(|| {
        teacher_kernels::philox::random_u64(
            cfg.seed,
            0x5345_5256,
            hub.next_id.fetch_add(1, Ordering::SeqCst),
        )
    });
    let (tx, rx) = channel();
    let mut jobs = Vec::new();
    let mut prompt_tokens = 0;
    for (p, prompt) in call.prompts.iter().enumerate() {
        let text = match prompt {
            PromptIn::Text(t) => t.clone(),
            PromptIn::Messages(ms) => file
                .render_chat(ms)
                .map_err(|e| (e.to_string(), Some("messages")))?,
        };
        let ids = file
            .encode_prompt(&text)
            .map_err(|e| (e.to_string(), Some("prompt")))?;
        if ids.is_empty() {
            return Err(("the prompt is empty".into(), Some("prompt")));
        }
        if ids.len() >= context {
            return Err((
                format!(
                    "the prompt has {} tokens; this server's context is {context} (one position is needed to generate)",
                    ids.len()
                ),
                Some("messages"),
            ));
        }
        prompt_tokens += ids.len();
        let max_tokens = call
            .max_tokens
            .unwrap_or(match call.kind {
                Kind::Completion => 16,
                Kind::Chat => context - ids.len(),
            })
            .min(context - ids.len());
        for j in 0..call.n {
            let choice = p * call.n + j;
            jobs.push(Job {
                req: Request {
                    id: hub.next_id.fetch_add(1, Ordering::SeqCst),
                    prompt: ids.clone(),
                    params: call.params.clone(),
                    max_tokens,
                    stop: call.stop.clone(),
                    constraint: constraint.clone(),
                    draw: Some((seed, choice as u64)),
                    top_logprobs: call.logprobs,
                    stream: call.stream,
                },
                events: tx.clone(),
                choice,
            });
        }
    }
    Ok((prompt_tokens, jobs, rx))
}

/// Server-sent events for a streaming call. Text that could still turn out to be the
/// start of a stop string is held back, so the streamed pieces add up to exactly the
/// final text.
#[allow(clippy::too_many_arguments)]
fn stream_out(
    stream: &TcpStream,
    kind: Kind,
    id: &str,
    created: u64,
    cfg: &ServeConfig,
    rx: Receiver<(usize, Event)>,
    n: usize,
    stop: &[String],
) {
    let Ok(mut sse) = EventStream::start(stream) else {
        return;
    };
    let hold = stop
        .iter()
        .map(|s| s.len())
        .max()
        .unwrap_or(1)
        .saturating_sub(1);
    let mut full: Vec<String> = vec![String::new(); n];
    let mut sent: Vec<usize> = vec![0; n];
    let mut started = vec![false; n];
    let mut left = n;
    let head = openai::StreamHead {
        kind,
        id,
        created,
        model: &cfg.model_name,
    };
    while left > 0 {
        let Ok((i, ev)) = rx.recv() else { return };
        let (piece, finish) = match ev {
            Event::Text(t) => {
                full[i].push_str(&t);
                let mut safe = full[i].len().saturating_sub(hold);
                while !full[i].is_char_boundary(safe) {
                    safe -= 1;
                }
                if safe <= sent[i] {
                    continue;
                }
                let p = full[i][sent[i]..safe].to_string();
                sent[i] = safe;
                (Some(p), None)
            }
            Event::Done(o) => {
                left -= 1;
                let rest = o.text.get(sent[i]..).unwrap_or("").to_string();
                (Some(rest).filter(|r| !r.is_empty()), Some(o.finish_reason))
            }
        };
        let first = !started[i];
        started[i] = true;
        if let Some(p) = &piece {
            let c = openai::chunk(&head, i, Some(p), None, first);
            if sse.send(&c.to_string()).is_err() {
                return; // the client went away: dropping `rx` cancels the rest
            }
        }
        if let Some(f) = finish {
            let c = openai::chunk(&head, i, None, Some(f), first && piece.is_none());
            if sse.send(&c.to_string()).is_err() {
                return;
            }
        }
    }
    let _ = sse.send("[DONE]");
}
