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
