//! teacher-kernels: the hot loops of teacher. For now the sampling chain (logits →
//! token) and the counter-based generator behind it.

pub mod philox;
pub mod sampling;

pub use sampling::{sample, SamplingError, SamplingParams};
