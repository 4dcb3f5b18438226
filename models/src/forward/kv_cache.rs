//! Per-sequence KV cache slots, preallocated and filled in place.
//!
//! Layout per slot: [layer][position][kv_dim], f32. A slot is reused by the next
//! sequence without clearing: a sequence only ever reads positions it has written.

pub struct KvCache {
    slots: usize,
    capacity: usize,
    n_layer: usize,
    k_dim: usize,
    v_dim: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    pub fn new(slots: usize, capacity: usize, n_layer: usize, k_dim: usize, v_dim: usize) -> Self {
        KvCache {
            slots,
            capacity,
            n_layer,
            k_dim,
            v_dim,
            k: vec![0.0; slots * n_layer * capacity * k_dim],
            v: vec![0.0; slots * n_layer * capacity * v_dim],
        }
    }

    pub fn bytes_per_position(n_layer: usize, k_dim: usize, v_dim: usize) -> usize {
        n_layer * (k_dim + v_dim) * std::mem::size_of::<f32>()
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn base(&self, layer: usize, slot: usize) -> usize {
        (slot * self.n_layer + layer) * self.capacity
    }

    pub fn write(&mut self, layer: usize, slot: usize, pos: usize, k: &[f32], v: &[f32]) {
        let b = self.base(layer, slot) + pos;
        self.k[b * self.k_dim..(b + 1) * self.k_dim].copy_from_slice(k);
        self.v[b * self.v_dim..(b + 1) * self.v_dim].copy_from_slice(v);
    }

    /// (keys, values) of one layer of one slot, all positions.
    pub fn layer(&self, layer: usize, slot: usize) -> (&[f32], &[f32]) {
        let b = self.base(layer, slot);
        (
            &self.k[b * self.k_dim..(b + self.capacity) * self.k_dim],
            &self.v[b * self.v_dim..(b + self.capacity) * self.v_dim],
        )
    }
}
