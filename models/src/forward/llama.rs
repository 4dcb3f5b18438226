//! Llama-family models (Llama 2/3, Mistral, TinyLlama, SmolLM2): RMSNorm, RoPE on
//! adjacent pairs (GGUF stores llama q/k weights permuted for it), SiLU-gated MLP.

use super::Flavor;
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use teacher_kernels::ops::RopeStyle;

pub(crate) fn flavor(gguf: &GgufFile, hp: &HParams) -> Result<Flavor> {
    Flavor::llama_like(gguf, hp, RopeStyle::Interleaved, false)
}
