//! Per-sequence KV cache slots, preallocated and filled in place.
//!
//! Layout per slot: [layer][position][kv_dim], as f32 or f16 (`KvType`). A slot is
//! reused by the next sequence without clearing: a sequence only ever reads positions
//! it has written.

use teacher_kernels::ops::{f16_row, KvSlice, KvType};

enum Store {
    F32 { k: Vec<f32>, v: Vec<f32> },
    F16 { k: Vec<u16>, v: Vec<u16> },
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
                k: vec![0.0; nk],
                v: vec![0.0; nv],
            },
            KvType::F16 => Store::F16 {
                k: vec![0; nk],
                v: vec![0; nv],
            },
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
        n_layer * (k_dim + v_dim) * kv.bytes()
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
                kc[kr].copy_from_slice(k);
                vc[vr].copy_from_slice(v);
            }
            Store::F16 { k: kc, v: vc } => {
                f16_row(k, &mut kc[kr]);
                f16_row(v, &mut vc[vr]);
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
                    k.copy_within(bf * kd..(bf + len) * kd, bt * kd);
                    v.copy_within(bf * vd..(bf + len) * vd, bt * vd);
                }
                Store::F16 { k, v } => {
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
            Store::F32 { k, v } => (KvSlice::F32(&k[kr]), KvSlice::F32(&v[vr])),
            Store::F16 { k, v } => (KvSlice::F16(&k[kr]), KvSlice::F16(&v[vr])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_prefix_copies_only_the_prefix_of_every_layer() {
        for kv in [KvType::F32, KvType::F16] {
            let mut c = KvCache::new(3, 4, 2, 2, 3, kv);
            for layer in 0..2 {
                for pos in 0..4 {
                    let x = (layer * 10 + pos) as f32;
                    c.write(layer, 1, pos, &[x, x + 0.5], &[-x, -x - 0.5, 1.0]);
                }
            }
            c.copy_prefix(1, 2, 3);
            // Bit patterns of one position's row.
            let row = |s: KvSlice<'_>, i: usize, w: usize| -> Vec<u32> {
                match s {
                    KvSlice::F32(v) => v[i * w..(i + 1) * w].iter().map(|x| x.to_bits()).collect(),
                    KvSlice::F16(v) => v[i * w..(i + 1) * w]
                        .iter()
                        .map(|h| u32::from(*h))
                        .collect(),
                }
            };
            for layer in 0..2 {
                let (k1, v1) = c.layer(layer, 1);
                let (k2, v2) = c.layer(layer, 2);
                for pos in 0..3 {
                    assert_eq!(row(k1, pos, 2), row(k2, pos, 2), "{kv:?} {layer} {pos}");
                    assert_eq!(row(v1, pos, 3), row(v2, pos, 3));
                }
                // Position 3 was not copied.
                assert_eq!(row(k2, 3, 2), vec![0, 0]);
            }
        }
    }
}
