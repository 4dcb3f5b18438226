//! Qwen2: the llama block with RoPE on halves (NEOX) and biases on q, k and v.

use super::Flavor;
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use teacher_kernels::ops::RopeStyle;

pub(crate) fn flavor(gguf: &GgufFile, hp: &HParams) -> Result<Flavor> {
    let rope_dims = gguf
        .get_uint("qwen2.rope.dimension_count")?
        .map(|d| d as usize)
        .unwrap_or(hp.head_dim_k);
    Ok(Flavor {
        rope_style: RopeStyle::Halves,
        rope_dims,
        rope_base: vec![hp.rope_freq_base; hp.n_layer],
        window: vec![None; hp.n_layer],
        attn_scale: 1.0 / (hp.head_dim_k as f32).sqrt(),
        gelu: false,
        embed_scale: None,
        qk_norm: false,
        post_norms: false,
        qkv_bias: true,
    })
}
