//! Per-sequence KV cache slots, preallocated and filled in place.
//!
//! Layout per slot: [layer][position][kv_dim], as f32, f16 or q8 (`KvType`; q8's scales,
//! one per 32 numbers, in an array of their own laid out the same way). A slot is
//! reused by the next sequence without clearing: a sequence only ever reads positions
//! it has written.

use teacher_kernels::ops::{f16_row, KvSlice, KvType};
use teacher_kernels::quant::quantize_q8_into;

enum Store {
    F32 { k: Lines<f32>, v: Lines<f32> },
    F16 { k: Lines<u16>, v: Lines<u16> },
    Q8 { k: Q8Lines, v: Q8Lines },
}

/// A q8 cache's numbers and their scales (number i's scale is `d[i / 32]`).
struct Q8Lines {
    q: Lines<i8>,
    d: Lines<f32>,
}

impl Q8Lines {
    fn zeroed(n: usize) -> Self {
        Q8Lines {
            q: Lines::zeroed(n),
            d: Lines::zeroed(n / 32),
        }
    }

    /// Quantize `x` into numbers `at..at + x.len()` (both multiples of 32).
    fn write(&mut self, at: usize, x: &[f32]) {
        quantize_q8_into(
            x,
            &mut self.q.get_mut()[at..at + x.len()],
            &mut self.d.get_mut()[at / 32..(at + x.len()) / 32],
        );
    }

    fn copy_within(&mut self, from: std::ops::Range<usize>, to: usize) {
        self.q.get_mut().copy_within(from.clone(), to);
        self.d
            .get_mut()
            .copy_within(from.start / 32..from.end / 32, to / 32);
    }

    fn slice(&self, r: std::ops::Range<usize>) -> KvSlice<'_> {
        KvSlice::Q8 {
            q: &self.q.get()[r.clone()],
            d: &self.d.get()[r.start / 32..r.end / 32],
        }
    }
}

/// `n` zeroed numbers starting on a 64-byte cache line: each head's slice of a position
/// (64 or 256 numbers in the catalog models) then covers whole lines, which the
/// attention kernels' loads and prefetches are sized for.
struct Lines<T> {
    buf: Vec<T>,
    at: usize,
    n: usize,
}

impl<T: Copy + Default> Lines<T> {
    fn zeroed(n: usize) -> Self {
        let per_line = 64 / std::mem::size_of::<T>();
        let buf = vec![T::default(); n + per_line];
        let at = buf.as_ptr().align_offset(64).min(per_line);
        huge_pages(buf.as_ptr() as usize, std::mem::size_of_val(buf.as_slice()));
        Lines { buf, at, n }
    }

    fn get(&self) -> &[T] {
        &self.buf[self.at..self.at + self.n]
    }

    fn get_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.at..self.at + self.n]
    }
}

/// Ask Linux to back the whole 2 MiB pages of `bytes` at `addr` with transparent huge
/// pages (where THP is in `madvise` mode, the common default, nothing else would). A
/// pipeline's decode step reads a few hundred KB of each of many sequences' caches —
/// hundreds of MB spread over 4 KiB pages, a TLB miss every few rows (huge pages: decode
/// +2–3 % at 600-token contexts, BENCHMARKS.md). The buffer is fresh from the allocator's zeroed mapping, not yet
/// touched, so the advice applies as it is first written. Advice only: where it is
/// refused (or elsewhere than Linux) nothing changes but speed.
fn huge_pages(addr: usize, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        const MADV_HUGEPAGE: i32 = 14;
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        let start = addr.next_multiple_of(HUGE);
        let end = (addr + bytes) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside one live allocation of ours; MADV_HUGEPAGE
            // changes how its pages are backed, never their contents.
            unsafe { madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (addr, bytes);
}

pub struct KvCache {
    slots: usize,
    capacity: usize,
    n_layer: usize,
    k_dim: usize,
    v_dim: usize,
    store: Store,
}

impl KvCache {
    pub fn new(
        slots: usize,
        capacity: usize,
        n_layer: usize,
        k_dim: usize,
        v_dim: usize,
        kv: KvType,
    ) -> Self {
        let (nk, nv) = (
            slots * n_layer * capacity * k_dim,
            slots * n_layer * capacity * v_dim,
        );
        let store = match kv {
            KvType::F32 => Store::F32 {
                k: Lines::zeroed(nk),
                v: Lines::zeroed(nv),
            },
            KvType::F16 => Store::F16 {
                k: Lines::zeroed(nk),
                v: Lines::zeroed(nv),
            },
            KvType::Q8 => {
                assert!(
                    k_dim.is_multiple_of(32) && v_dim.is_multiple_of(32),
                    "a q8 cache of rows of {k_dim} and {v_dim} numbers (the model checks \
                     head widths are multiples of 32)"
                );
                Store::Q8 {
                    k: Q8Lines::zeroed(nk),
                    v: Q8Lines::zeroed(nv),
                }
            }
        };
        KvCache {
            slots,
            capacity,
            n_layer,
            k_dim,
            v_dim,
            store,
        }
    }

    pub fn bytes_per_position(n_layer: usize, k_dim: usize, v_dim: usize, kv: KvType) -> usize {
        n_layer * (kv.bytes_of(k_dim) + kv.bytes_of(v_dim))
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn kv_type(&self) -> KvType {
        match self.store {
            Store::F32 { .. } => KvType::F32,
            Store::F16 { .. } => KvType::F16,
            Store::Q8 { .. } => KvType::Q8,
        }
    }

    fn base(&self, layer: usize, slot: usize) -> usize {
        (slot * self.n_layer + layer) * self.capacity
    }

    pub fn write(&mut self, layer: usize, slot: usize, pos: usize, k: &[f32], v: &[f32]) {
        let b = self.base(layer, slot) + pos;
        let (kr, vr) = (
            b * self.k_dim..(b + 1) * self.k_dim,
            b * self.v_dim..(b + 1) * self.v_dim,
        );
        match &mut self.store {
            Store::F32 { k: kc, v: vc } => {
                kc.get_mut()[kr].copy_from_slice(k);
                vc.get_mut()[vr].copy_from_slice(v);
            }
            Store::F16 { k: kc, v: vc } => {
                f16_row(k, &mut kc.get_mut()[kr]);
                f16_row(v, &mut vc.get_mut()[vr]);
            }
            Store::Q8 { k: kc, v: vc } => {
                kc.write(kr.start, k);
                vc.write(vr.start, v);
            }
        }
    }

    /// Copy positions `0..len` of every layer from slot `from` to slot `to` (a shared
    /// prompt prefix: the keys and values of a position depend only on the tokens up to
    /// it, so the copy holds exactly what computing them again would write).
    pub fn copy_prefix(&mut self, from: usize, to: usize, len: usize) {
        assert!(from < self.slots && to < self.slots && len <= self.capacity);
        if from == to || len == 0 {
            return;
        }
        for layer in 0..self.n_layer {
            let (bf, bt) = (self.base(layer, from), self.base(layer, to));
            let (kd, vd) = (self.k_dim, self.v_dim);
            match &mut self.store {
                Store::F32 { k, v } => {
                    k.get_mut().copy_within(bf * kd..(bf + len) * kd, bt * kd);
                    v.get_mut().copy_within(bf * vd..(bf + len) * vd, bt * vd);
                }
                Store::F16 { k, v } => {
                    k.get_mut().copy_within(bf * kd..(bf + len) * kd, bt * kd);
                    v.get_mut().copy_within(bf * vd..(bf + len) * vd, bt * vd);
                }
                Store::Q8 { k, v } => {
                    k.copy_within(bf * kd..(bf + len) * kd, bt * kd);
                    v.copy_within(bf * vd..(bf + len) * vd, bt * vd);
                }
            }
        }
    }

    /// (keys, values) of one layer of one slot, all positions.
    pub fn layer(&self, layer: usize, slot: usize) -> (KvSlice<'_>, KvSlice<'_>) {
        let b = self.base(layer, slot);
        let (kr, vr) = (
            b * self.k_dim..(b + self.capacity) * self.k_dim,
            b * self.v_dim..(b + self.capacity) * self.v_dim,
        );
        match &self.store {
            Store::F32 { k, v } => (KvSlice::F32(&k.get()[kr]), KvSlice::F32(&v.get()[vr])),
            Store::F16 { k, v } => (KvSlice::F16(&k.get()[kr]), KvSlice::F16(&v.get()[vr])),
            Store::Q8 { k, v } => (k.slice(kr), v.slice(vr)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where Linux's THP is in `madvise` mode, a cache buffer is backed by huge pages
    /// once written (in `always` mode it would be anyway; in `never`, nothing to check).
    #[cfg(target_os = "linux")]
    #[test]
    fn cache_buffers_get_huge_pages_where_linux_allows_them() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        if !mode.is_ok_and(|m| m.contains("[madvise]")) {
            eprintln!("THP is not in madvise mode here: nothing to check");
            return;
        }
        let mut l = Lines::<u16>::zeroed(16 << 20);
        l.get_mut().iter_mut().for_each(|x| *x = 1);
        // The mapping holding the buffer's middle (advice splits the buffer's mapping at
        // the 2 MiB boundaries), and its AnonHugePages line.
        let at = l.get().as_ptr() as usize + (16 << 20);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut huge_kb = None;
        for line in smaps.lines() {
            let range = line
                .split_whitespace()
                .next()
                .and_then(|r| r.split_once('-'));
            if let Some((Ok(a), Ok(b))) =
                range.map(|(a, b)| (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)))
            {
                inside = a <= at && at < b;
                continue;
            }
            if let Some(kb) = line.strip_prefix("AnonHugePages:").filter(|_| inside) {
                huge_kb = kb
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<usize>()
                    .ok();
            }
        }
        let huge_kb = huge_kb.expect("the buffer's mapping in /proc/self/smaps");
        assert!(
            huge_kb >= 2048,
            "{huge_kb} kB of huge pages in a 32 MiB cache buffer"
        );
    }

    #[test]
    fn every_layer_of_every_slot_starts_on_a_cache_line() {
        for kv in [KvType::F32, KvType::F16, KvType::Q8] {
            let c = KvCache::new(3, 5, 2, 64, 64, kv);
            for (layer, slot) in [(0, 0), (1, 0), (0, 2), (1, 2)] {
                let (k, v) = c.layer(layer, slot);
                for s in [k, v] {
                    let p = match s {
                        KvSlice::F32(x) => x.as_ptr() as usize,
                        KvSlice::F16(x) => x.as_ptr() as usize,
                        KvSlice::Q8 { q, .. } => q.as_ptr() as usize,
                    };
                    assert_eq!(p % 64, 0, "{kv:?} layer {layer} slot {slot}");
                }
            }
        }
    }

    #[test]
    fn copy_prefix_copies_only_the_prefix_of_every_layer() {
        // Key rows of 32 numbers, value rows of 64 (q8 blocks are 32 long).
        let (kd, vd) = (32, 64);
        for kv in [KvType::F32, KvType::F16, KvType::Q8] {
            let mut c = KvCache::new(3, 4, 2, kd, vd, kv);
            let vals = |x: f32, n: usize| -> Vec<f32> {
                (0..n).map(|j| x + j as f32 * 0.25 - 3.0).collect()
            };
            for layer in 0..2 {
                for pos in 0..4 {
                    let x = (layer * 10 + pos) as f32;
                    c.write(layer, 1, pos, &vals(x, kd), &vals(-x, vd));
                }
            }
            c.copy_prefix(1, 2, 3);
            // Bit patterns of one position's row (and, for q8, its scales).
            let row = |s: KvSlice<'_>, i: usize, w: usize| -> Vec<u32> {
                let r = i * w..(i + 1) * w;
                match s {
                    KvSlice::F32(v) => v[r].iter().map(|x| x.to_bits()).collect(),
                    KvSlice::F16(v) => v[r].iter().map(|h| u32::from(*h)).collect(),
                    KvSlice::Q8 { q, d } => q[r.clone()]
                        .iter()
                        .map(|&q| q as u8 as u32)
                        .chain(d[r.start / 32..r.end / 32].iter().map(|d| d.to_bits()))
                        .collect(),
                }
            };
            for layer in 0..2 {
                let (k1, v1) = c.layer(layer, 1);
                let (k2, v2) = c.layer(layer, 2);
                for pos in 0..3 {
                    assert_eq!(row(k1, pos, kd), row(k2, pos, kd), "{kv:?} {layer} {pos}");
                    assert_eq!(row(v1, pos, vd), row(v2, pos, vd));
                    assert!(row(k2, pos, kd).iter().any(|&b| b != 0));
                }
                // Position 3 was not copied.
                assert!(row(k2, 3, kd).iter().all(|&b| b == 0), "{kv:?}");
            }
        }
    }
}
