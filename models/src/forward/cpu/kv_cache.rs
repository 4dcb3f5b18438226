//! Per-sequence KV cache slots, preallocated and filled in place.
//!
//! Layout: [slot][layer][KV head][position][head_dim], as f32, f16 or q8 (`KvType`; q8's
//! scales, one per 32 numbers, in an array of their own laid out the same way). Each
//! head's positions are one contiguous run (a *region*, starting on a cache line), so
//! attention over one KV head reads a single sequential stream, which the hardware
//! prefetchers follow — interleaving the heads of a position made it a strided one
//! (BENCHMARKS.md, "The KV cache head by head"). A slot is reused by the next sequence
//! without clearing: a sequence only ever reads positions it has written.

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
    heads: usize,
    k_head: usize,
    v_head: usize,
    /// Numbers from one region's start to the next (capacity × head width, rounded up
    /// to `REGION_ALIGN`).
    k_region: usize,
    v_region: usize,
    store: Store,
}

/// Regions start at multiples of this many numbers: a cache line for every type, and
/// for q8 also a line of its scales (512 numbers have 16 four-byte scales).
const REGION_ALIGN: usize = 512;

impl KvCache {
    /// A cache of `slots` sequences of `capacity` positions, `heads` KV heads per layer
    /// with keys `k_head` and values `v_head` numbers wide.
    pub fn new(
        slots: usize,
        capacity: usize,
        n_layer: usize,
        heads: usize,
        (k_head, v_head): (usize, usize),
        kv: KvType,
    ) -> Self {
        let (k_region, v_region) = (
            (capacity * k_head).next_multiple_of(REGION_ALIGN),
            (capacity * v_head).next_multiple_of(REGION_ALIGN),
        );
        let regions = slots * n_layer * heads;
        let (nk, nv) = (regions * k_region, regions * v_region);
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
                    k_head.is_multiple_of(32) && v_head.is_multiple_of(32),
                    "a q8 cache of heads of {k_head} and {v_head} numbers (the model checks \
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
            heads,
            k_head,
            v_head,
            k_region,
            v_region,
            store,
        }
    }

    /// Bytes one position of one sequence takes (all layers and heads), as budgets
    /// count them: a region's padding to `REGION_ALIGN` (under 512 numbers per head and
    /// layer, nothing at contexts of a multiple of 8 for heads of 64) is not counted.
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

    /// Where the keys and the values of one KV head of one layer of one slot start
    /// (the first numbers of its regions).
    fn starts(&self, layer: usize, slot: usize, head: usize) -> (usize, usize) {
        let r = (slot * self.n_layer + layer) * self.heads + head;
        (r * self.k_region, r * self.v_region)
    }

    /// Write one position's keys and values (every head's, head after head).
    pub fn write(&mut self, layer: usize, slot: usize, pos: usize, k: &[f32], v: &[f32]) {
        let (kh, vh) = (self.k_head, self.v_head);
        debug_assert!(k.len() == self.heads * kh && v.len() == self.heads * vh);
        for h in 0..self.heads {
            let (ks, vs) = self.starts(layer, slot, h);
            let (ka, va) = (ks + pos * kh, vs + pos * vh);
            let (k, v) = (&k[h * kh..(h + 1) * kh], &v[h * vh..(h + 1) * vh]);
            match &mut self.store {
                Store::F32 { k: kc, v: vc } => {
                    kc.get_mut()[ka..ka + kh].copy_from_slice(k);
                    vc.get_mut()[va..va + vh].copy_from_slice(v);
                }
                Store::F16 { k: kc, v: vc } => {
                    f16_row(k, &mut kc.get_mut()[ka..ka + kh]);
                    f16_row(v, &mut vc.get_mut()[va..va + vh]);
                }
                Store::Q8 { k: kc, v: vc } => {
                    kc.write(ka, k);
                    vc.write(va, v);
                }
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
        let (kh, vh) = (self.k_head, self.v_head);
        for layer in 0..self.n_layer {
            for h in 0..self.heads {
                let ((kf, vf), (kt, vt)) = (self.starts(layer, from, h), self.starts(layer, to, h));
                match &mut self.store {
                    Store::F32 { k, v } => {
                        k.get_mut().copy_within(kf..kf + len * kh, kt);
                        v.get_mut().copy_within(vf..vf + len * vh, vt);
                    }
                    Store::F16 { k, v } => {
                        k.get_mut().copy_within(kf..kf + len * kh, kt);
                        v.get_mut().copy_within(vf..vf + len * vh, vt);
                    }
                    Store::Q8 { k, v } => {
                        k.copy_within(kf..kf + len * kh, kt);
                        v.copy_within(vf..vf + len * vh, vt);
                    }
                }
            }
        }
    }

    /// (keys, values) of one KV head of one layer of one slot, all positions: position
    /// t's numbers at t × the head's width.
    pub fn head(&self, layer: usize, slot: usize, head: usize) -> (KvSlice<'_>, KvSlice<'_>) {
        let (ks, vs) = self.starts(layer, slot, head);
        let (kr, vr) = (
            ks..ks + self.capacity * self.k_head,
            vs..vs + self.capacity * self.v_head,
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
    fn every_head_of_every_layer_and_slot_starts_on_a_cache_line() {
        // Odd capacities and heads: regions are padded to whole lines (and, for q8, whole
        // lines of scales).
        for kv in [KvType::F32, KvType::F16, KvType::Q8] {
            for (capacity, heads, width) in [(5, 2, 64), (7, 3, 32), (1, 1, 96)] {
                let c = KvCache::new(3, capacity, 2, heads, (width, width), kv);
                for (layer, slot, head) in [(0, 0, 0), (1, 0, heads - 1), (0, 2, 0), (1, 2, 1)] {
                    let head = head.min(heads - 1);
                    let (k, v) = c.head(layer, slot, head);
                    for s in [k, v] {
                        let (p, scales) = match s {
                            KvSlice::F32(x) => (x.as_ptr() as usize, 0),
                            KvSlice::F16(x) => (x.as_ptr() as usize, 0),
                            KvSlice::Q8 { q, d } => (q.as_ptr() as usize, d.as_ptr() as usize),
                        };
                        assert_eq!(s.len(), capacity * width);
                        assert_eq!(p % 64, 0, "{kv:?} layer {layer} slot {slot} head {head}");
                        assert_eq!(scales % 64, 0, "{kv:?} scales of {layer} {slot} {head}");
                    }
                }
            }
        }
    }

    /// Bit patterns of position i of one head (and, for q8, its scales).
    fn row(s: KvSlice<'_>, i: usize, w: usize) -> Vec<u32> {
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
    }

    #[test]
    fn each_head_of_a_written_position_is_in_its_own_run_of_positions() {
        // Two heads of 32 (keys) and 64 (values) numbers; f32 keeps the numbers exactly.
        let (heads, kd, vd) = (2, 32, 64);
        let mut c = KvCache::new(2, 3, 2, heads, (kd, vd), KvType::F32);
        let vals =
            |x: f32, n: usize| -> Vec<f32> { (0..n).map(|j| x * 1000.0 + j as f32).collect() };
        for (layer, slot, pos) in [(0, 0, 0), (1, 1, 2), (0, 1, 1), (1, 0, 1)] {
            let x = (layer * 100 + slot * 10 + pos) as f32;
            c.write(
                layer,
                slot,
                pos,
                &vals(x, heads * kd),
                &vals(-x, heads * vd),
            );
        }
        for (layer, slot, pos) in [(0, 0, 0), (1, 1, 2), (0, 1, 1), (1, 0, 1)] {
            let x = (layer * 100 + slot * 10 + pos) as f32;
            let (k, v) = (vals(x, heads * kd), vals(-x, heads * vd));
            for h in 0..heads {
                let (kc, vc) = c.head(layer, slot, h);
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(row(kc, pos, kd), bits(&k[h * kd..(h + 1) * kd]));
                assert_eq!(row(vc, pos, vd), bits(&v[h * vd..(h + 1) * vd]));
            }
        }
        // Nothing else was written: position 0 of slot 1, layer 1 is still zero.
        let (k, _) = c.head(1, 1, 1);
        assert!(row(k, 0, kd).iter().all(|&b| b == 0));
    }

    #[test]
    fn copy_prefix_copies_only_the_prefix_of_every_layer_and_head() {
        // Two heads, key heads of 32 numbers, value heads of 64 (q8 blocks are 32 long).
        let (heads, kd, vd) = (2, 32, 64);
        for kv in [KvType::F32, KvType::F16, KvType::Q8] {
            let mut c = KvCache::new(3, 4, 2, heads, (kd, vd), kv);
            let vals = |x: f32, n: usize| -> Vec<f32> {
                (0..n).map(|j| x + j as f32 * 0.25 - 3.0).collect()
            };
            for layer in 0..2 {
                for pos in 0..4 {
                    let x = (layer * 10 + pos) as f32;
                    c.write(layer, 1, pos, &vals(x, heads * kd), &vals(-x, heads * vd));
                }
            }
            c.copy_prefix(1, 2, 3);
            for layer in 0..2 {
                for h in 0..heads {
                    let (k1, v1) = c.head(layer, 1, h);
                    let (k2, v2) = c.head(layer, 2, h);
                    for pos in 0..3 {
                        assert_eq!(
                            row(k1, pos, kd),
                            row(k2, pos, kd),
                            "{kv:?} {layer} {h} {pos}"
                        );
                        assert_eq!(row(v1, pos, vd), row(v2, pos, vd));
                        assert!(row(k2, pos, kd).iter().any(|&b| b != 0));
                    }
                    // Position 3 was not copied.
                    assert!(row(k2, 3, kd).iter().all(|&b| b == 0), "{kv:?}");
                    assert!(row(v2, 3, vd).iter().all(|&b| b == 0), "{kv:?}");
                }
            }
        }
    }
}
