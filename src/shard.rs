//! `--shard I/N`: one of N pieces of a run, for array jobs on a cluster.
//!
//! Per-item pipelines (`generate`, `respond`, `judge`, `evolve`) give shard I the contiguous
//! slice of input positions `[⌊I·n/N⌋, ⌊(I+1)·n/N⌋)`. Every draw is keyed by (run seed,
//! item id, step) and the forward pass is batch-invariant, so an item's text does not
//! depend on the shard, machine or batch that produced it, and `teacher merge` puts the
//! shards back together as the single run would have written them. Self-Instruct grows
//! one pool per shard from the seeds with the shard's own seed ([`Shard::seed`]) and a
//! share of `--num` ([`Shard::share`]), as Magpie does; each stops at its share, and
//! `merge` removes near-duplicates across shards.
//!
//! Indices are 0-based, as Slurm's `SLURM_ARRAY_TASK_ID` and Kubernetes'
//! `JOB_COMPLETION_INDEX` are.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::ops::Range;
use std::str::FromStr;
use teacher_kernels::philox;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// The most shards a run may be split into (a bound on what `merge` has to open).
pub const MAX_SHARDS: usize = 100_000;

/// Philox stream of the per-shard seeds ("SHARD").
const SHARD_STREAM: u64 = 0x53_4841_5244;

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let bad = || {
            format!("`{s}` is not a shard; write I/N with 0 <= I < N <= {MAX_SHARDS} (for example 0/3; I is 0-based like SLURM_ARRAY_TASK_ID)")
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The whole run (no sharding).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// This shard's positions among `n` items: a contiguous slice, so the shards in
    /// index order are the input in order.
    pub fn range(&self, n: usize) -> Range<usize> {
        let at = |i: usize| ((i as u128 * n as u128) / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }

    /// This shard's part of a total (Self-Instruct's `--num`), split like `range`.
    pub fn share(&self, total: usize) -> usize {
        self.range(total).len()
    }

    /// The run seed a shard samples with when it grows its own pool (Self-Instruct):
    /// the run seed itself for a whole run, otherwise Philox of (seed, "SHARD", I).
    pub fn seed(&self, run_seed: u64) -> u64 {
        if self.is_whole() {
            run_seed
        } else {
            philox::random_u64(run_seed, SHARD_STREAM, self.index as u64)
        }
    }

    /// Record the shard in a run's parameters (a whole run's parameters are unchanged,
    /// so `--shard 0/1` is the same run as no `--shard`).
    pub fn add_to_params(&self, params: &mut Value) {
        if !self.is_whole() {
            params["shard"] = json!({"index": self.index, "count": self.count});
        }
    }

    /// The shard a manifest's parameters record (whole when none).
    pub fn from_params(params: &Value) -> Result<Shard> {
        let s = &params["shard"];
        if s.is_null() {
            return Ok(Shard::WHOLE);
        }
        let (Some(index), Some(count)) = (s["index"].as_u64(), s["count"].as_u64()) else {
            return Err(Error::Usage(format!(
                "manifest parameter `shard` is {s}, not {{index, count}}"
            )));
        };
        format!("{index}/{count}").parse().map_err(Error::Usage)
    }

    /// The error for a shard that holds none of the input.
    pub fn check_not_empty(&self, n: usize, what: &str) -> Result<()> {
        if self.range(n).is_empty() {
            return Err(Error::Usage(format!(
                "shard {self} gets none of the {n} {what}; use at most {n} shards"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard::WHOLE));
        for bad in ["3/3", "1", "a/3", "1/0", "-1/3", "1/200000", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("I/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn ranges_cover_the_input_in_order_without_overlap() {
        for n in [0usize, 1, 2, 7, 10, 1000] {
            for count in 1..=12 {
                let mut next = 0;
                for index in 0..count {
                    let r = Shard { index, count }.range(n);
                    assert_eq!(r.start, next);
                    assert!(r.len() <= n.div_ceil(count));
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn seeds_differ_per_shard_and_whole_keeps_the_run_seed() {
        assert_eq!(Shard::WHOLE.seed(42), 42);
        let a = Shard { index: 0, count: 3 }.seed(42);
        let b = Shard { index: 1, count: 3 }.seed(42);
        assert_ne!(a, b);
        assert_ne!(a, 42);
        let mut p = json!({"seed": 1});
        Shard::WHOLE.add_to_params(&mut p);
        assert_eq!(p, json!({"seed": 1}));
        Shard { index: 1, count: 3 }.add_to_params(&mut p);
        assert_eq!(
            Shard::from_params(&p).unwrap(),
            Shard { index: 1, count: 3 }
        );
    }
}
