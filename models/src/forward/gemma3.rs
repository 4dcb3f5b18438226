//! Gemma 3: embeddings scaled by √n_embd, RMSNorm on q and k per head, norms after
//! attention and MLP as well as before, GELU(tanh)-gated MLP, RoPE on halves, and
//! local layers with a sliding window (5 of every 6; every 6th layer is global).
//! Local layers use RoPE base 10 000, global ones `rope.freq_base` (llama.cpp's rules).
//! The GGUF's norm weights already include Gemma's +1.

use super::Flavor;
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use teacher_kernels::ops::{RopeScaling, RopeStyle};

/// Every n-th layer is global (llama.cpp `set_swa_pattern(6)`).
const GLOBAL_EVERY: usize = 6;
const LOCAL_ROPE_BASE: f32 = 10_000.0;

pub(crate) fn flavor(gguf: &GgufFile, hp: &HParams) -> Result<Flavor> {
    let local_base = gguf
        .get_f32("gemma3.rope.local_freq_base")?
        .unwrap_or(LOCAL_ROPE_BASE);
    let is_local = |i: usize| !(i + 1).is_multiple_of(GLOBAL_EVERY);
    let window = (0..hp.n_layer)
        .map(|i| if is_local(i) { hp.sliding_window } else { None })
        .collect();
    let rope_base = (0..hp.n_layer)
        .map(|i| {
            if is_local(i) {
                local_base
            } else {
                hp.rope_freq_base
            }
        })
        .collect();
    Ok(Flavor {
        rope_style: RopeStyle::Halves,
        rope_dims: hp.head_dim_k,
        rope_base,
        rope_scaling: RopeScaling::none(),
        window,
        // query_pre_attn_scalar = head_dim for every size but 27B.
        attn_scale: 1.0 / (hp.head_dim_k as f32).sqrt(),
        gelu: true,
        embed_scale: Some((hp.n_embd as f32).sqrt()),
        qk_norm: true,
        post_norms: true,
        qkv_bias: false,
        fused: false,
    })
}
