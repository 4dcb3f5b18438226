//! The data pipelines: Self-Instruct (`self_instruct`), Evol-Instruct (`evol`),
//! responses (`respond`), Magpie (`magpie`) and the judge (`judge`), with the pieces they
//! share: seed sets, prompt texts, the resumable run file, and deterministic choices.

pub mod evol;
pub mod items;
pub mod judge;
pub mod magpie;
pub mod prompt;
pub mod respond;
pub mod run_file;
pub mod seeds;
pub mod self_instruct;

use crate::engine::{Engine, Output, Request};
use crate::error::Result;
use std::collections::HashMap;
use teacher_kernels::philox;

/// Facts about the machine side of a run, recorded in the manifest (they do not change
/// the output, so they are not part of the parameters a resume must match).
pub fn run_info(engine: &Engine) -> serde_json::Value {
    serde_json::json!({
        "engine_context": engine.context(),
        "kernels": format!("{:?}", teacher_kernels::matmul::detected_isa()),
        "device": engine.device(),
        "threads": rayon::current_num_threads(),
        "prefix_reuse": engine.prefix_reuse(),
    })
}

/// A pipeline's parameters plus every engine and model setting that can change a byte
/// of its output: the KV cache type, the context (a prompt longer than it fails), the
/// tokenizer and the chat template.
pub fn with_engine_params(
    mut params: serde_json::Value,
    engine: &Engine,
    file: &teacher_models::ModelFile,
) -> serde_json::Value {
    params["kv_cache"] = engine.kv_type().name().into();
    params["context"] = engine.context().into();
    params["text"] = file.text_fingerprint();
    params
}

/// An f32 setting as the decimal the user typed (0.7, not 0.699999988…), for manifests.
pub fn f32_json(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .map(serde_json::Value::from)
        .unwrap_or(serde_json::Value::Null)
}

/// The sampling settings a per-item pipeline's parameters record, plus `extra` (a
/// JSON object) — everything that can change a byte of its output.
pub fn params_with_sampling(
    s: &teacher_kernels::SamplingParams,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut p = serde_json::json!({
        "temperature": f32_json(s.temperature),
        "top_p": f32_json(s.top_p),
        "top_k": s.top_k,
        "min_p": f32_json(s.min_p),
        "repetition_penalty": f32_json(s.repetition_penalty),
    });
    if let (Some(p), serde_json::Value::Object(e)) = (p.as_object_mut(), extra) {
        p.extend(e);
    }
    p
}

/// Run `requests` through the engine and return their outputs in request order.
pub fn generate_all(engine: &mut Engine, requests: Vec<Request>) -> Result<Vec<Output>> {
    let order: HashMap<u64, usize> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, i))
        .collect();
    let mut outs: Vec<Option<Output>> = vec![None; requests.len()];
    engine.run(requests, |o| {
        let i = order[&o.id];
        outs[i] = Some(o);
        Ok(())
    })?;
    Ok(outs
        .into_iter()
        .map(|o| o.expect("every request finishes"))
        .collect())
}

/// The requests a finished output leads to in `run_chains`: `first` go ahead of
/// everything queued (later stages of chains already running, so they finish soon),
/// `last` behind it. `stop` ends the run instead: queued requests are dropped and
/// running ones cancelled (their outputs are not passed on).
#[derive(Default)]
pub struct FollowUps {
    pub first: Vec<Request>,
    pub last: Vec<Request>,
    pub stop: bool,
}

/// Run chains of requests as one engine stream: `first` starts them, and `follow` gets
/// every output as it finishes and returns the requests it leads to (later stages of
/// the same items, or items now allowed to start), which are admitted while the other
/// chains still decode. So the batch stays full across what would otherwise be a
/// barrier between stages or waves; every request's output is what it would be alone
/// (the forward pass is batch-invariant and each draw is keyed by its request id).
pub fn run_chains(
    engine: &mut Engine,
    first: Vec<Request>,
    mut follow: impl FnMut(Output) -> Result<FollowUps>,
) -> Result<()> {
    use std::cell::{Cell, RefCell};
    use std::collections::{HashSet, VecDeque};
    use std::rc::Rc;
    struct Queue {
        queue: Rc<RefCell<VecDeque<Request>>>,
        live: Rc<Cell<usize>>,
        /// Ids handed to the engine and not yet finished.
        running: Rc<RefCell<HashSet<u64>>>,
        stop: Rc<Cell<bool>>,
    }
    impl crate::engine::Source for Queue {
        fn next(&mut self, _idle: bool) -> crate::engine::Next {
            use crate::engine::Next;
            if self.stop.get() {
                return Next::Done;
            }
            match self.queue.borrow_mut().pop_front() {
                Some(r) => {
                    self.running.borrow_mut().insert(r.id);
                    Next::Request(r)
                }
                // A running request may still lead to more.
                None if self.live.get() > 0 => Next::Wait,
                None => Next::Done,
            }
        }

        fn cancelled(&mut self) -> Vec<u64> {
            if !self.stop.get() {
                return Vec::new();
            }
            self.running.borrow_mut().drain().collect()
        }
    }
    let live = Rc::new(Cell::new(first.len()));
    let queue = Rc::new(RefCell::new(VecDeque::from(first)));
    let running = Rc::new(RefCell::new(HashSet::new()));
    let stop = Rc::new(Cell::new(false));
    let source = Queue {
        queue: queue.clone(),
        live: live.clone(),
        running: running.clone(),
        stop: stop.clone(),
    };
    engine.serve(source, |o| {
        running.borrow_mut().remove(&o.id);
        if stop.get() {
            // Cancelled, or finished in the step that stopped the run.
            return Ok(());
        }
        let f = follow(o)?;
        if f.stop {
            stop.set(true);
            queue.borrow_mut().clear();
            return Ok(());
        }
        let mut q = queue.borrow_mut();
        live.set(live.get() + f.first.len() + f.last.len());
        for r in f.first.into_iter().rev() {
            q.push_front(r);
        }
        q.extend(f.last);
        // Only now, so the source never sees zero while follow-ups are being made.
        live.set(live.get() - 1);
        Ok(())
    })
}

/// Run one request per item through the engine as a single stream and hand the
/// outputs to `commit` in item order, `wave` items at a time (the last wave may be
/// shorter). Items are independent, so the engine can keep its batch full across wave
/// boundaries — the next wave's prompts are admitted while the last one's tail decodes —
/// and nothing in the output changes. `build` makes item i's request lazily, or the
/// output of a request that cannot run (`Err(output)`, committed in its place); an
/// error from it stops the run (earlier whole waves stay committed).
pub fn run_in_waves<T>(
    engine: &mut Engine,
    items: &[T],
    wave: usize,
    build: impl FnMut(&T) -> Result<std::result::Result<Request, Output>>,
    mut commit: impl FnMut(&[T], Vec<Output>) -> Result<()>,
) -> Result<()> {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    let wave = wave.max(1);
    let pending: RefCell<BTreeMap<usize, Output>> = RefCell::new(BTreeMap::new());
    let position: RefCell<HashMap<u64, usize>> = RefCell::new(HashMap::new());
    let failed: RefCell<Option<crate::Error>> = RefCell::new(None);

    struct Items<'a, T, B> {
        items: &'a [T],
        next: usize,
        build: B,
        pending: &'a RefCell<BTreeMap<usize, Output>>,
        position: &'a RefCell<HashMap<u64, usize>>,
        failed: &'a RefCell<Option<crate::Error>>,
    }
    impl<T, B> crate::engine::Source for Items<'_, T, B>
    where
        B: FnMut(&T) -> Result<std::result::Result<Request, Output>>,
    {
        fn next(&mut self, _idle: bool) -> crate::engine::Next {
            use crate::engine::Next;
            while self.next < self.items.len() && self.failed.borrow().is_none() {
                let i = self.next;
                self.next += 1;
                match (self.build)(&self.items[i]) {
                    Ok(Ok(req)) => {
                        self.position.borrow_mut().insert(req.id, i);
                        return Next::Request(req);
                    }
                    Ok(Err(out)) => {
                        self.pending.borrow_mut().insert(i, out);
                    }
                    Err(e) => *self.failed.borrow_mut() = Some(e),
                }
            }
            Next::Done
        }
    }

    let mut committed = 0usize;
    // Commit every whole wave at the front of `pending`.
    let mut flush = |committed: &mut usize| -> Result<()> {
        loop {
            let end = (*committed + wave).min(items.len());
            if *committed >= end {
                return Ok(());
            }
            let outs: Vec<Output> = {
                let mut p = pending.borrow_mut();
                if !(*committed..end).all(|i| p.contains_key(&i)) {
                    return Ok(());
                }
                (*committed..end)
                    .map(|i| p.remove(&i).expect("checked"))
                    .collect()
            };
            commit(&items[*committed..end], outs)?;
            *committed = end;
        }
    };
    let source = Items {
        items,
        next: 0,
        build,
        pending: &pending,
        position: &position,
        failed: &failed,
    };
    engine.serve(source, |out| {
        let i = position
            .borrow_mut()
            .remove(&out.id)
            .expect("an output of a request of this run");
        pending.borrow_mut().insert(i, out);
        flush(&mut committed)
    })?;
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    flush(&mut committed)
}

/// The random stream of an item id: FNV-1a of the id text (so an item's draws do not
/// depend on its position in the file).
pub fn stream_of_id(id: &str) -> u64 {
    crate::generate::stream_of(&serde_json::Value::String(id.to_string()))
}

/// `k` distinct indices below `n`, in draw order: a partial Fisher–Yates shuffle whose
/// draws are Philox of (seed, stream, lane·2^32 + i). The same arguments always give
/// the same choice.
pub fn pick(seed: u64, stream: u64, lane: u64, n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let r = philox::random_u64(seed, stream, (lane << 32) | i as u64);
        let j = i + (r % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_is_deterministic_and_distinct() {
        let a = pick(1, 2, 0, 10, 4);
        assert_eq!(a, pick(1, 2, 0, 10, 4));
        let mut s = a.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 4);
        assert_ne!(a, pick(1, 3, 0, 10, 4));
        assert_eq!(pick(1, 2, 0, 3, 5).len(), 3);
    }
}
