//! `teacher serve` as a real server on localhost, driven by real HTTP clients: a raw
//! HTTP/1.1 client here (64 concurrent clients whose bytes must equal single-client
//! runs, streaming, errors, 429, disconnects, Ctrl-C drain) and the official `openai`
//! Python client (installed from PyPI when missing).

use crate::common::{model_path, teacher_bin, SMOLLM2};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        model_path(SMOLLM2);
        let mut child = Command::new(teacher_bin())
            .args(["serve", "--port", "0"])
            .args(extra)
            .env_remove("TEACHER_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        let log = Arc::new(Mutex::new(String::new()));
        let (l, err) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Server { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn interrupt(&self) {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request over a fresh connection: (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    s.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

fn post(addr: &str, path: &str, body: &Value) -> (u16, Value) {
    let (st, b) = http(addr, "POST", path, &body.to_string(), &[]);
    (st, serde_json::from_str(&b).unwrap_or(Value::String(b)))
}

fn chat(i: usize) -> Value {
    let topics = [
        "the moon", "bread", "rivers", "chess", "owls", "glass", "rain", "maps",
    ];
    json!({"model": SMOLLM2, "seed": 1000 + i, "max_tokens": 12, "temperature": 0.9,
        "messages": [{"role": "user", "content": format!("Tell me one thing about {}.", topics[i % topics.len()])}]})
}

fn content(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

#[test]
fn concurrent_clients_get_the_bytes_of_single_client_runs() {
    let srv = Server::start(&["--batch", "16"]);
    let addr = srv.addr.clone();
    // One client at a time.
    let single: Vec<String> = (0..64)
        .map(|i| content(&post(&addr, "/v1/chat/completions", &chat(i)).1))
        .collect();
    // 64 at once.
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || content(&post(&addr, "/v1/chat/completions", &chat(i)).1))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), single[i], "client {i}");
    }
    assert!(
        single
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 32,
        "seeds should vary the text"
    );

    // Streaming pieces add up to the non-streaming text, stop strings included.
    let mut req = chat(3);
    req["max_tokens"] = json!(40);
    req["stop"] = json!([". ", "\n\n"]);
    let (_, whole) = post(&addr, "/v1/chat/completions", &req);
    req["stream"] = json!(true);
    let (st, sse) = http(&addr, "POST", "/v1/chat/completions", &req.to_string(), &[]);
    assert_eq!(st, 200);
    let mut text = String::new();
    let mut pieces = 0;
    let mut finish = Value::Null;
    let events: Vec<&str> = sse.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(c);
            pieces += usize::from(!c.is_empty());
        }
        if !v["choices"][0]["finish_reason"].is_null() {
            finish = v["choices"][0]["finish_reason"].clone();
        }
    }
    assert_eq!(text, content(&whole));
    assert!(
        pieces > 1,
        "the text came in {pieces} piece(s), not as it grew"
    );
    assert_eq!(finish, whole["choices"][0]["finish_reason"]);

    // Completions with n and a JSON schema.
    let (st, v) = post(
        &addr,
        "/v1/completions",
        &json!({"prompt": "The capital of France is", "max_tokens": 6, "n": 3, "seed": 9}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"].as_array().unwrap().len(), 3);
    assert_eq!(v["object"], "text_completion");
    let schema = json!({"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]});
    let (st, v) = post(
        &addr,
        "/v1/chat/completions",
        &json!({"max_tokens": 30, "seed": 2,
        "messages": [{"role": "user", "content": "Is water wet?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}}),
    );
    assert_eq!(st, 200, "{v}");
    let answer: Value = serde_json::from_str(&content(&v)).unwrap();
    assert!(
        answer["answer"] == "yes" || answer["answer"] == "no",
        "{answer}"
    );
}

#[test]
fn bad_requests_limits_disconnects_and_drain() {
    let srv = Server::start(&[
        "--batch",
        "2",
        "--max-queue",
        "3",
        "--max-body",
        "4000",
        "--context",
        "256",
    ]);
    let a = srv.addr.as_str();
    let (st, b) = http(a, "POST", "/v1/chat/completions", "{bad", &[]);
    assert_eq!(st, 400);
    assert!(b.contains("not valid JSON"), "{b}");
    let (st, v) = post(
        a,
        "/v1/chat/completions",
        &json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(st, 404);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("smollm2"),
        "{v}"
    );
    let (st, v) = post(a, "/v1/chat/completions", &json!({"messages": []}));
    assert_eq!((st, v["error"]["param"].clone()), (400, json!("messages")));
    let (st, v) = post(
        a,
        "/v1/completions",
        &json!({"prompt": "x", "temperature": 7}),
    );
    assert_eq!(
        (st, v["error"]["param"].clone()),
        (400, json!("temperature"))
    );
    // logprobs: named bad values, and no streaming with them.
    for (path, body, param) in [
        (
            "/v1/completions",
            json!({"prompt": "x", "logprobs": 21}),
            "logprobs",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}),
            "top_logprobs",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "logprobs": 1, "stream": true}),
            "logprobs",
        ),
    ] {
        let (st, v) = post(a, path, &body);
        assert_eq!(
            (st, v["error"]["param"].clone()),
            (400, json!(param)),
            "{v}"
        );
    }
    let (st, _) = http(a, "POST", "/v1/completions", &"x".repeat(5000), &[]);
    assert_eq!(st, 413);
    let (st, _) = http(a, "GET", "/v1/chat/completions", "", &[]);
    assert_eq!(st, 405);
    let (st, _) = http(a, "GET", "/nope", "", &[]);
    assert_eq!(st, 404);
    let long = "word ".repeat(400);
    let (st, v) = post(
        a,
        "/v1/completions",
        &json!({"prompt": long, "max_tokens": 4}),
    );
    assert_eq!(st, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("context"),
        "{v}"
    );

    // A full queue answers 429; everything admitted completes.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let a = srv.addr.clone();
            std::thread::spawn(move || {
                let mut r = chat(i);
                r["max_tokens"] = json!(48);
                post(&a, "/v1/chat/completions", &r).0
            })
        })
        .collect();
    let codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(codes.contains(&429), "{codes:?}");
    assert!(codes.iter().all(|&c| c == 200 || c == 429), "{codes:?}");

    // A client that goes away frees its slot: a streaming one after its first chunk,
    // then one waiting for a whole answer.
    let log_says_cancelled = |times: usize| {
        (0..600).any(|_| {
            let n = srv.log().matches("cancelled (client went away)").count();
            if n < times {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            n >= times
        })
    };
    for (times, stream) in [(1, true), (2, false)] {
        let mut s = TcpStream::connect(a).unwrap();
        let body = json!({"messages": [{"role": "user", "content": "Write a very long story."}],
            "max_tokens": 1500, "stream": stream})
        .to_string();
        s.write_all(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        if stream {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).unwrap();
        } else {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        drop(s);
        assert!(log_says_cancelled(times), "log:\n{}", srv.log());
    }

    // Ctrl-C while a request is in flight: it completes, then the server exits.
    let addr = srv.addr.clone();
    let inflight = std::thread::spawn(move || {
        let mut r = chat(1);
        r["max_tokens"] = json!(64);
        post(&addr, "/v1/chat/completions", &r)
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    srv.interrupt();
    let (st, v) = inflight.join().unwrap();
    assert_eq!(st, 200, "{v}");
    let mut srv = srv;
    let status = srv.child.wait().unwrap();
    assert!(status.success());
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(srv.log().contains("drained"), "{}", srv.log());
}

#[test]
fn api_key_and_network_binding() {
    let srv = Server::start(&["--api-key", "sekrit"]);
    let (st, _) = http(&srv.addr, "GET", "/v1/models", "", &[]);
    assert_eq!(st, 401);
    let (st, b) = http(
        &srv.addr,
        "GET",
        "/v1/models",
        "",
        &[("Authorization", "Bearer sekrit")],
    );
    assert_eq!(st, 200);
    assert!(b.contains(SMOLLM2));
    let o = Command::new(teacher_bin())
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .env_remove("TEACHER_API_KEY")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--api-key"));
}

#[test]
fn the_official_openai_python_client_works() {
    let srv = Server::start(&["--batch", "8"]);
    let script = r#"
import json, sys, concurrent.futures
from openai import OpenAI
c = OpenAI(base_url=f"http://{sys.argv[1]}/v1", api_key="unused")
model = c.models.list().data[0].id
def ask(i, stream=False):
    kw = dict(model=model, seed=i, max_tokens=16, temperature=0.8,
              messages=[{"role": "user", "content": f"Name a colour and a number {i}."}])
    if not stream:
        return c.chat.completions.create(**kw).choices[0].message.content
    return "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(stream=True, **kw))
single = [ask(i) for i in range(16)]
with concurrent.futures.ThreadPoolExecutor(16) as ex:
    together = list(ex.map(ask, range(16)))
assert together == single, (together, single)
assert ask(3, stream=True) == single[3]
r = c.completions.create(model=model, prompt="One, two,", max_tokens=5, n=2, seed=1, temperature=0)
assert len(r.choices) == 2 and r.choices[0].text == r.choices[1].text
schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0}}, "required": ["name", "age"]}
r = c.chat.completions.create(model=model, max_tokens=40, seed=4,
    messages=[{"role": "user", "content": "Invent a person."}],
    response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
p = json.loads(r.choices[0].message.content)
assert isinstance(p["age"], int) and isinstance(p["name"], str), p
# Log-probabilities: the chosen token's and the alternatives', in both shapes.
import math
r = c.chat.completions.create(model=model, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3,
    messages=[{"role": "user", "content": "Say hello."}])
lp = r.choices[0].logprobs.content
assert "".join(t.token for t in lp) == r.choices[0].message.content, lp
for t in lp:
    assert len(t.top_logprobs) == 3 and t.logprob <= 0
    # Greedy: the chosen token is the most likely one.
    assert t.top_logprobs[0].token == t.token and abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6
    assert sum(math.exp(a.logprob) for a in t.top_logprobs) <= 1.0 + 1e-5
    assert bytes(t.bytes).decode("utf-8", "replace") == t.token
r = c.completions.create(model=model, prompt="One, two,", max_tokens=4, temperature=0, logprobs=2)
l = r.choices[0].logprobs
assert "".join(l.tokens) == r.choices[0].text and len(l.token_logprobs) == len(l.tokens) == len(l.top_logprobs)
assert all(len(d) <= 2 for d in l.top_logprobs) and l.text_offset[0] == 0
print("ok", model, r.usage.total_tokens)
"#;
    let out = crate::common::python_with("openai", "openai>=1.30")
        .args(["-c", script, &srv.addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python:\n{err}\nserver log:\n{}",
        srv.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok smollm2"));
}
