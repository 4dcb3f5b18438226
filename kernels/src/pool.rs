//! A small spinning thread pool for the forward pass.
//!
//! A decode step of one sequence is ~120 short parallel regions (four matrix products
//! per layer) separated by a few microseconds of sequential work. A pool whose idle
//! threads sleep pays a wake-up per region — on a virtual machine an inter-processor
//! interrupt and a scheduler round trip each time, a fifth of the step in profiles.
//! Here idle workers spin for a while (about a millisecond) before they sleep, so back
//! to back regions start at once; a job's tasks are claimed from one atomic counter by
//! the workers and the calling thread alike.
//!
//! The split never changes a result: callers give tasks that write disjoint outputs,
//! each computed whole by whichever thread claims it. One job runs at a time; a caller
//! that finds the pool busy (another thread's job) runs its tasks itself.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_millis(1);

type Task<'a> = dyn Fn(usize) + Sync + 'a;

/// The job state in one word, so a claim checks the epoch, the task count and the next
/// index at once: epoch (24 bits) << 40 | tasks (20 bits) << 20 | next task (20 bits).
const FIELD: u64 = (1 << 20) - 1;
const MAX_TASKS: usize = FIELD as usize;

fn epoch_of(state: u64) -> u64 {
    state >> 40
}

struct Shared {
    state: AtomicU64,
    /// The current job (valid while its epoch is current and it has unclaimed tasks).
    job: UnsafeCell<*const Task<'static>>,
    done: AtomicUsize,
    panicked: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the thread that holds `Pool::busy`, before it
// publishes the epoch with a release store, and read by workers only after an acquire
// load of that epoch; see `claim`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

pub struct Pool {
    shared: Arc<Shared>,
    workers: usize,
    busy: Mutex<()>,
}

/// The process-wide pool, sized like rayon's (`RAYON_NUM_THREADS` or the core count).
pub fn global() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::new(rayon::current_num_threads()))
}

/// Run `f(0..n)` on the global pool; returns when every task has finished.
pub fn run(n: usize, f: impl Fn(usize) + Sync) {
    global().run(n, &f)
}

/// `f(i, row i)` for each `width`-sized row of `data`, in parallel when there are at
/// least `min_rows` rows (below that, waking the workers costs more than the work).
pub fn for_each_row<T: Send>(
    data: &mut [T],
    width: usize,
    min_rows: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let rows = data.len() / width.max(1);
    let pool = global();
    if rows < min_rows.max(2) || pool.threads() == 1 {
        data.chunks_mut(width)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
        return;
    }
    let per = rows.div_ceil(pool.threads() * 4);
    let base = RowsPtr(data.as_mut_ptr());
    pool.run(rows.div_ceil(per), &|t| {
        for i in t * per..((t + 1) * per).min(rows) {
            // SAFETY: tasks cover disjoint row ranges of `data`, which outlives the job.
            let row = unsafe { std::slice::from_raw_parts_mut(base.at(i * width), width) };
            f(i, row);
        }
    });
}

struct RowsPtr<T>(*mut T);
// SAFETY: used only to hand disjoint rows of one slice to the pool's threads.
unsafe impl<T: Send> Sync for RowsPtr<T> {}
impl<T> RowsPtr<T> {
    /// SAFETY (caller): `i` is within the slice the pointer came from.
    unsafe fn at(&self, i: usize) -> *mut T {
        self.0.add(i)
    }
}

impl Pool {
    /// A pool of `threads` threads in all: the caller plus `threads − 1` workers.
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            job: UnsafeCell::new(std::ptr::null::<fn(usize)>() as *const Task<'static>),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = threads.max(1) - 1;
        for i in 0..workers {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("teacher-pool-{i}"))
                .spawn(move || worker(&s))
                .expect("spawn a pool thread");
        }
        Pool {
            shared,
            workers,
            busy: Mutex::new(()),
        }
    }

    pub fn threads(&self) -> usize {
        self.workers + 1
    }

    pub fn run(&self, n: usize, f: &Task<'_>) {
        if n == 0 {
            return;
        }
        if n > MAX_TASKS {
            // Never needed by the forward pass; keeps the packed state in range.
            let per = n.div_ceil(MAX_TASKS);
            let grouped = |g: usize| (g * per..((g + 1) * per).min(n)).for_each(f);
            return self.run(n.div_ceil(per), &grouped);
        }
        let guard = match self.busy.try_lock() {
            Ok(g) if self.workers > 0 && n > 1 => g,
            _ => {
                (0..n).for_each(f);
                return;
            }
        };
        let s = &*self.shared;
        s.done.store(0, Ordering::Relaxed);
        // SAFETY: only the holder of `busy` writes `job`; no worker reads it until the
        // new epoch is published below, and the previous job has no unclaimed tasks.
        // The lifetime is erased because this function does not return before every
        // task of the job has finished.
        unsafe {
            *s.job.get() = std::mem::transmute::<*const Task<'_>, *const Task<'static>>(f);
        }
        let epoch = (epoch_of(s.state.load(Ordering::Relaxed)) + 1) & ((1 << 24) - 1);
        s.state
            .store(epoch << 40 | (n as u64) << 20, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        while let Some(i) = claim(s, epoch) {
            f(i);
            s.done.fetch_add(1, Ordering::Release);
        }
        let mut spins = 0u32;
        while s.done.load(Ordering::Acquire) < n {
            relax(&mut spins);
        }
        drop(guard);
        if s.panicked.swap(false, Ordering::Relaxed) {
            panic!("a pool task panicked");
        }
    }
}

/// Claim the next task of job `epoch`, if it is still current and has one left.
fn claim(s: &Shared, epoch: u64) -> Option<usize> {
    let mut cur = s.state.load(Ordering::Acquire);
    loop {
        let (i, n) = (cur & FIELD, (cur >> 20) & FIELD);
        if epoch_of(cur) != epoch || i >= n {
            return None;
        }
        // A successful claim proves the job was unfinished at that moment, so its
        // caller is still waiting and the job pointer read after it is this job's.
        match s
            .state
            .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some(i as usize),
            Err(now) => cur = now,
        }
    }
}

/// One round of waiting: a pause instruction, and after the first few thousand rounds a
/// yield as well, so a waiting thread gives its core away when other work (another
/// process, a descheduled worker it waits for) could use it.
fn relax(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    if *spins > 4096 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        // Wait for a new epoch: spin, then sleep.
        let start = Instant::now();
        let mut spins = 0u32;
        let epoch = loop {
            let e = epoch_of(s.state.load(Ordering::Acquire));
            if e != seen {
                break e;
            }
            relax(&mut spins);
            if spins.is_multiple_of(1024) && start.elapsed() > SPIN {
                let mut l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                while epoch_of(s.state.load(Ordering::SeqCst)) == seen {
                    l = s.wake.wait(l).unwrap_or_else(|e| e.into_inner());
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
                drop(l);
            }
        };
        seen = epoch;
        while let Some(i) = claim(s, epoch) {
            // SAFETY: the claim succeeded, so the job is current and its caller waits
            // for this task (see `claim`).
            let f = unsafe { &**s.job.get() };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i))).is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
            s.done.fetch_add(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_task_runs_once_over_many_jobs() {
        let pool = Pool::new(3);
        for n in [1usize, 2, 7, 64, 1000] {
            for _ in 0..200 {
                let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                pool.run(n, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn concurrent_callers_each_get_their_results() {
        let pool = Arc::new(Pool::new(2));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        let out: Vec<AtomicUsize> = (0..33).map(|_| AtomicUsize::new(0)).collect();
                        pool.run(33, &|i| out[i].store(i * t + 1, Ordering::Relaxed));
                        for (i, o) in out.iter().enumerate() {
                            assert_eq!(o.load(Ordering::Relaxed), i * t + 1);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn sleeping_workers_wake_for_the_next_job() {
        let pool = Pool::new(2);
        pool.run(4, &|_| {});
        std::thread::sleep(SPIN * 5);
        let count = AtomicUsize::new(0);
        pool.run(100, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 100);
    }
}
