//! Qwen3 (dense): the llama block with RoPE on halves, RMSNorm on q and k per head,
//! and no q/k/v biases.

use super::Flavor;
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use teacher_kernels::ops::RopeStyle;

pub(crate) fn flavor(gguf: &GgufFile, hp: &HParams) -> Result<Flavor> {
    let mut f = Flavor::llama_like(gguf, hp, RopeStyle::Halves, false)?;
    f.qk_norm = true;
    Ok(f)
}
