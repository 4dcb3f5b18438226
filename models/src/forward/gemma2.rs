//! Gemma 2: embeddings scaled by √n_embd, norms after attention and MLP as well as
//! before, GELU(tanh)-gated MLP, RoPE on halves, attention-score soft-capping
//! (c·tanh(s/c), c = `attn_logit_softcapping`) and final-logit soft-capping, and every
//! other layer local with a sliding window (layers 0, 2, 4, …; llama.cpp
//! `set_swa_pattern(2)`). The query scale is 1/√head_dim, except for the 27B model
//! (46 layers), whose query_pre_attn_scalar is n_embd/n_head (llama.cpp's rule). The
//! GGUF's norm weights already include Gemma's +1.

use super::Flavor;
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use teacher_kernels::ops::{RopeScaling, RopeStyle};

const GEMMA2_27B_LAYERS: usize = 46;

pub(crate) fn flavor(_gguf: &GgufFile, hp: &HParams) -> Result<Flavor> {
    let window = (0..hp.n_layer)
        .map(|i| if i % 2 == 0 { hp.sliding_window } else { None })
        .collect();
    let pre_attn = if hp.n_layer == GEMMA2_27B_LAYERS {
        hp.n_embd / hp.n_head
    } else {
        hp.head_dim_k
    };
    Ok(Flavor {
        rope_style: RopeStyle::Halves,
        rope_dims: hp.head_dim_k,
        rope_base: vec![hp.rope_freq_base; hp.n_layer],
        rope_scaling: RopeScaling::none(),
        window,
        attn_scale: 1.0 / (pre_attn as f32).sqrt(),
        gelu: true,
        embed_scale: Some((hp.n_embd as f32).sqrt()),
        qk_norm: false,
        post_norms: true,
        qkv_bias: false,
        fused: false,
    })
}
