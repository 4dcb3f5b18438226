//! teacher-kernels: the hot loops of teacher — quantized matmul for the GGUF weight
//! types, the per-row transformer operations, and the sampling chain with its
//! counter-based randomness. Each kernel has a scalar reference, and every result is
//! computed in one fixed order, independent of batch size, thread count and SIMD level.

// Index loops mirror the ggml block layouts they decode; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

pub mod math;
pub mod matmul;
pub mod ops;
pub mod philox;
pub mod pool;
pub mod quant;
pub mod sampling;
#[cfg(target_arch = "x86_64")]
mod trees_x86;

pub use matmul::{matmul, matmul_many, Isa, QMatrix};
pub use quant::QType;
pub use sampling::{sample, SamplingError, SamplingParams};

#[cfg(any(feature = "cuda", feature = "metal"))]
pub mod gpu;
