//! Which rows go into the next step.
//!
//! Requests are admitted in arrival order into free KV slots (continuous batching: a
//! slot freed by a finished sequence is refilled before the next step). Each step
//! carries one decode row per generating sequence first, so running sequences never
//! wait on a long new prompt, then prompt chunks up to the step's token budget.

use super::sequence::{Request, Sequence};
use super::FinishReason;

/// One sequence's rows in a step.
pub(crate) struct Planned {
    /// Index into `running`.
    pub seq: usize,
    pub len: usize,
    pub decode: bool,
    /// Whether the step must return logits for this sequence's last row.
    pub logits: bool,
}

/// What a request source answers when asked for the next request.
pub enum Next {
    Request(Request),
    /// Nothing now; more may come (a server between requests).
    Wait,
    /// No more requests.
    Done,
}

/// Where requests come from: a fixed list (`Engine::run`) or a live queue
/// (`Engine::serve`).
pub trait Source {
    /// The next request. `idle`: nothing is running, so the source may block until a
    /// request arrives (it should still return now and then, with `Wait`).
    fn next(&mut self, idle: bool) -> Next;
    /// Ids of requests whose callers went away: their sequences are dropped.
    fn cancelled(&mut self) -> Vec<u64> {
        Vec::new()
    }
}

/// A fixed list of requests as a source.
pub struct Fixed<I>(pub I);

impl<I: Iterator<Item = Request>> Source for Fixed<I> {
    fn next(&mut self, _idle: bool) -> Next {
        match self.0.next() {
            Some(r) => Next::Request(r),
            None => Next::Done,
        }
    }
}

pub(crate) struct Scheduler<I: Source> {
    pub input: I,
    input_done: bool,
    pub running: Vec<Sequence>,
    free_slots: Vec<usize>,
    step_tokens: usize,
}

/// Index into `free` (slots in the order they were freed) of the slot for `prompt`:
/// the one whose cache holds the longest prefix of it (the later freed on a tie), or,
/// when none holds a prefix worth reusing (a shared chat header is not), the one freed
/// longest ago.
fn pick_slot(free: &[usize], held: &[Vec<u32>], prompt: &[u32]) -> usize {
    let common = |slot: usize| {
        held.get(slot).map_or(0, |h| {
            h.iter().zip(prompt).take_while(|(a, b)| a == b).count()
        })
    };
    let mut best = (0, 0);
    for (i, &slot) in free.iter().enumerate() {
        let n = common(slot);
        if n >= best.1 && n >= super::HOLD_FOR_PREFIX {
            best = (i, n);
        }
    }
    best.0
}

impl<I: Source> Scheduler<I> {
    pub fn new(slots: usize, step_tokens: usize, input: I) -> Self {
        Scheduler {
            input,
            input_done: false,
            running: Vec::new(),
            // Popped from the end: lowest slot first.
            free_slots: (0..slots).rev().collect(),
            step_tokens: step_tokens.max(1),
        }
    }

    pub fn exhausted(&self) -> bool {
        self.input_done && self.running.is_empty()
    }

    /// Fill free slots; requests that cannot run come back with the reason. With
    /// `held` (what each slot's cache holds, for prefix reuse), a request takes the
    /// free slot holding the longest prefix of its prompt, and a request that matches
    /// none takes the slot freed longest ago, so recently used prefixes (a template
    /// the next request of a stage shares) stay in place longer. Which slot a sequence
    /// gets never changes its numbers.
    pub fn admit(&mut self, context: usize, held: Option<&[Vec<u32>]>) -> Vec<(Request, String)> {
        let mut failed = Vec::new();
        while !self.free_slots.is_empty() && !self.input_done {
            let req = match self.input.next(self.running.is_empty()) {
                Next::Request(r) => r,
                Next::Wait => break,
                Next::Done => {
                    self.input_done = true;
                    break;
                }
            };
            if req.prompt.is_empty() {
                failed.push((req, "the prompt is empty".to_string()));
                continue;
            }
            if req.prompt.len() >= context {
                let why = format!(
                    "the prompt is longer than the context ({} > {} tokens, with one position to generate)\nhint: raise --context",
                    req.prompt.len(),
                    context - 1
                );
                failed.push((req, why));
                continue;
            }
            let at = match held {
                Some(held) => pick_slot(&self.free_slots, held, &req.prompt),
                None => self.free_slots.len() - 1,
            };
            let slot = self.free_slots.remove(at);
            self.running.push(Sequence::new(req, slot));
        }
        failed
    }

    pub fn plan(&self) -> Vec<Planned> {
        let mut plan = Vec::new();
        let mut budget = self.step_tokens;
        for (i, s) in self.running.iter().enumerate() {
            if s.prefill_left() == 0 {
                plan.push(Planned {
                    seq: i,
                    len: 1,
                    decode: true,
                    logits: true,
                });
                budget = budget.saturating_sub(1);
            }
        }
        for (i, s) in self.running.iter().enumerate() {
            let left = s.prefill_left();
            if left == 0 || s.held {
                continue;
            }
            // Always make progress, even when decode rows used the whole budget.
            let take = left.min(budget.max(usize::from(plan.is_empty())));
            if take == 0 {
                break;
            }
            plan.push(Planned {
                seq: i,
                len: take,
                decode: false,
                logits: take == left,
            });
            budget -= take.min(budget);
        }
        plan
    }

    /// Indices of running sequences whose callers went away.
    pub fn cancelled(&mut self) -> Vec<(usize, FinishReason)> {
        let gone = self.input.cancelled();
        if gone.is_empty() {
            return Vec::new();
        }
        (0..self.running.len())
            .filter(|&i| gone.contains(&self.running[i].req.id))
            .map(|i| (i, FinishReason::Cancelled))
            .collect()
    }

    /// Remove finished sequences and free their slots.
    pub fn retire(&mut self, finished: &[(usize, FinishReason)]) -> Vec<(Sequence, FinishReason)> {
        let mut idx: Vec<(usize, FinishReason)> = finished.to_vec();
        idx.sort_by_key(|x| std::cmp::Reverse(x.0));
        let mut out = Vec::with_capacity(idx.len());
        for (i, reason) in idx {
            let s = self.running.remove(i);
            self.free_slots.push(s.slot);
            out.push((s, reason));
        }
        // Keep the lowest slot next.
        self.free_slots
            .sort_unstable_by_key(|&s| std::cmp::Reverse(s));
        out.reverse();
        out
    }
}
