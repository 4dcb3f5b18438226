//! Qwen2: the llama block with RoPE on halves (NEOX) and biases on q, k and v.

use super::Flavor;
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use teacher_kernels::ops::RopeStyle;

pub(crate) fn flavor(gguf: &GgufFile, hp: &HParams) -> Result<Flavor> {
    Flavor::llama_like(gguf, hp, RopeStyle::Halves, true)
}
