//! Phi-3 / Phi-3.5 / Phi-4: the llama block with RoPE on halves over the first
//! `rope.dimension_count` dimensions of each head (partial rotary), q, k and v in one
//! fused matrix and gate and up in another (split by rows at load, see `mod.rs`), and
//! LongRoPE's `rope_factors_short.weight` as frequency factors where the file has them.

use super::Flavor;
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use teacher_kernels::ops::RopeStyle;

pub(crate) fn flavor(gguf: &GgufFile, hp: &HParams) -> Result<Flavor> {
    let mut f = Flavor::llama_like(gguf, hp, RopeStyle::Halves, false)?;
    f.fused = true;
    Ok(f)
}
