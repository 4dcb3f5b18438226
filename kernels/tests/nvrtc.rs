//! Every CUDA kernel compiles with NVRTC (no GPU needed): `cargo test -p teacher-kernels
//! --features cuda --test nvrtc`. NVRTC comes from the CUDA toolkit or the PyPI wheel
//! `nvidia-cuda-nvrtc` (`.ci/run` installs it and sets TEACHER_REQUIRE_NVRTC=1, so a
//! missing library fails there instead of skipping).
#![cfg(feature = "cuda")]

use teacher_kernels::gpu::cuda;
use teacher_kernels::gpu::{KERNELS, SAMPLE_KERNELS};

#[test]
fn every_kernel_compiles_for_hopper_and_ampere() {
    if let Err(e) = cuda::ensure_nvrtc() {
        assert!(
            std::env::var_os("TEACHER_REQUIRE_NVRTC").is_none(),
            "TEACHER_REQUIRE_NVRTC is set but NVRTC is missing: {e}"
        );
        eprintln!("skipped: {e}");
        return;
    }
    for arch in ["compute_90", "compute_80"] {
        let ptx = cuda::compile(arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        for (k, _) in KERNELS.iter().chain(SAMPLE_KERNELS) {
            assert!(
                ptx.contains(&format!(".entry {k}(")),
                "{arch}: kernel {k} is not in the PTX"
            );
        }
        // No contraction: the only fma instructions are the ones written as __fmaf_rn
        // (the matmul lanes, its minimum terms and the float matmul).
        let fmas = ptx.matches("fma.rn.f32").count();
        assert!(fmas > 0, "{arch}: the explicit fmas are missing");
        assert!(
            !ptx.contains("mad.f32") && !ptx.contains(".ftz.") && !ptx.contains("fma.rn.f64"),
            "{arch}: contracted or flushed arithmetic"
        );
    }
}
