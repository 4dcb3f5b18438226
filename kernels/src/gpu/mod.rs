//! The GPU side of the kernels: one kernel source (`kernels/gpu/forward.h`, in a small
//! dialect each backend's prelude defines) and one way to run it — [`Gpu`], which
//! allocates buffers, moves bytes and launches kernels by name — over sibling engines:
//! `cuda` (the driver and NVRTC opened at run time), `emulated` (the CUDA kernels on
//! the CPU, for tests) and `metal` (Metal Shading Language compiled at run time).
//!
//! The kernels compute exactly what the CPU kernels compute (see the top of
//! `forward.h`); this module only moves numbers and launches. Buffers are named by a
//! 64-bit address everywhere (a CUDA device pointer, a host pointer under the
//! emulator, a buffer number and offset on Metal), so the forward pass above is one
//! piece of code for every GPU.

use std::sync::Arc;

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "cuda")]
mod emulated;
#[cfg(all(feature = "metal", target_os = "macos"))]
mod metal;

/// The kernels, in the dialect of `kernels/cuda/prelude.cuh` and
/// `kernels/metal/prelude.metal`.
pub const BODY: &str = include_str!("../../gpu/forward.h");

/// Every kernel `forward.h` defines, each with its number of parameters (the Metal
/// buffer indices run 0..n; a test checks the source against this list).
pub const KERNELS: &[(&str, usize)] = &[
    ("quantize_q8", 7),
    ("mm_q4_0", 9),
    ("mm_q4_1", 9),
    ("mm_q5_0", 9),
    ("mm_q5_1", 9),
    ("mm_q8_0", 9),
    ("mm_q2_k", 9),
    ("mm_q3_k", 9),
    ("mm_q4_k", 9),
    ("mm_q5_k", 9),
    ("mm_q6_k", 9),
    ("mm_iq4_nl", 9),
    ("mm_iq4_xs", 9),
    ("mm_float", 7),
    ("embed_q4_0", 8),
    ("embed_q4_1", 8),
    ("embed_q5_0", 8),
    ("embed_q5_1", 8),
    ("embed_q8_0", 8),
    ("embed_q2_k", 8),
    ("embed_q3_k", 8),
    ("embed_q4_k", 8),
    ("embed_q5_k", 8),
    ("embed_q6_k", 8),
    ("embed_iq4_nl", 8),
    ("embed_iq4_xs", 8),
    ("embed_float", 8),
    ("rms_norm", 5),
    ("add_bias", 4),
    ("add_into", 3),
    ("gated_act", 4),
    ("rope", 8),
    ("kv_write", 13),
    ("attention", 17),
    ("gather_rows", 5),
    ("softcap_rows", 3),
    ("probe_functions", 3),
    ("argmax_rows", 4),
];

/// The sampling kernels (`kernels/gpu/sample.h`: f64, so CUDA and its emulator only).
pub const SAMPLE_BODY: &str = include_str!("../../gpu/sample.h");
pub const SAMPLE_KERNELS: &[(&str, usize)] = &[("sample_penalize", 8), ("sample_rows", 11)];
/// Threads of a sampling block, the longest walk down the order a row may take on the
/// GPU, and the pick that says "the host decides this row".
pub const SAMPLE_THREADS: u32 = 256;
pub const MAX_WALK: usize = 1024;
pub const UNDECIDED: u32 = u32::MAX;

/// Rows of one matmul thread block (MM_ROWS) and its columns (MM_COLS, one thread each:
/// MM_COLS threads a block) in `forward.h`.
pub const MM_ROWS: usize = 8;
pub const MM_COLS: usize = 128;
/// Threads of an attention block (ATT_THREADS) and the largest head it holds.
pub const ATT_THREADS: u32 = 128;
pub const MAX_HEAD_DIM: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("{0}")]
    Unavailable(String),
    #[error("the GPU kernels did not compile: {0}")]
    Compile(String),
    #[error("{0}")]
    Driver(String),
}

pub type Result<T> = std::result::Result<T, GpuError>;

/// One kernel argument: a buffer address, an integer or a float.
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
}

/// What keeps a buffer's memory alive (freed when the buffer is dropped).
pub(crate) type Keeper = Box<dyn std::any::Any + Send + Sync>;

/// A buffer in GPU memory (or, under the emulator, host memory): its address, its
/// length in elements, and what keeps it alive.
pub struct DevBuf<T> {
    ptr: u64,
    len: usize,
    _mem: Keeper,
    _t: std::marker::PhantomData<T>,
}

impl<T> DevBuf<T> {
    /// The buffer's address (what kernels take; `ptr() + bytes` addresses inside it).
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A recorded sequence of launches that can be replayed as one.
pub struct Graph(Box<dyn Replay>);

pub(crate) trait Replay {
    fn replay(&self) -> Result<()>;
}

impl Graph {
    pub fn launch(&self) -> Result<()> {
        self.0.replay()
    }
}

/// What each GPU engine does; [`Gpu`] adds the typed, checked surface. Work is queued
/// in order on one queue; `read` waits for everything before it.
pub(crate) trait Engine: Send + Sync {
    fn launch(&self, name: &str, grid: (u32, u32), block: u32, args: &[Arg]) -> Result<()>;
    /// `bytes` zeroed bytes, 16-byte aligned: the address and its keeper.
    fn alloc(&self, bytes: usize) -> Result<(u64, Keeper)>;
    /// Copy `src` to address `dst` (inside a live buffer), in queue order.
    fn write(&self, dst: u64, src: &[u8]) -> Result<()>;
    /// Wait for the queue, then copy from address `src` into `dst`.
    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()>;
    /// Copy `bytes` from `src` to `dst` on the GPU, in queue order.
    fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<()>;
    /// Record `f`'s launches instead of running them, where the engine can (by
    /// default it cannot: None, and `f` is not run).
    fn capture(&self, _f: &mut dyn FnMut() -> Result<()>) -> Result<Option<Graph>> {
        Ok(None)
    }
    /// Whether `capture` records graphs.
    fn records_graphs(&self) -> bool {
        false
    }
    /// Whether the sampling kernels are loaded (they need f64).
    fn samples(&self) -> bool {
        false
    }
    fn synchronize(&self) -> Result<()>;
}

/// A GPU with the kernels loaded, and the one queue everything runs on in order.
pub struct Gpu {
    engine: Arc<dyn Engine>,
    /// What the GPU is, in words (`cuda:0 (NVIDIA H200)`, `metal (Apple M3)`).
    pub name: String,
    /// The device's memory, in bytes (0 where unknown).
    pub total_memory: usize,
}

impl Gpu {
    /// CUDA GPU `ordinal`: the driver, the device, the kernels (compiled or cached).
    /// With `TEACHER_CUDA_EMULATOR` naming a build of `kernels/cuda/emulate.cpp`, the
    /// kernels run on the CPU instead (for testing them without a GPU).
    #[cfg(feature = "cuda")]
    pub fn cuda(ordinal: usize) -> Result<Gpu> {
        if let Some(lib) = std::env::var_os("TEACHER_CUDA_EMULATOR") {
            let engine = emulated::Emulator::open(std::path::Path::new(&lib))?;
            return Ok(Gpu {
                engine: Arc::new(engine),
                name: format!("cuda:{ordinal} (kernel emulator on the CPU)"),
                total_memory: 0,
            });
        }
        let (engine, name, total_memory) = cuda::Cuda::open(ordinal)?;
        Ok(Gpu {
            engine: Arc::new(engine),
            name,
            total_memory,
        })
    }

    /// The system's default Metal GPU, the kernels compiled from source at start.
    pub fn metal() -> Result<Gpu> {
        #[cfg(all(feature = "metal", target_os = "macos"))]
        {
            let (engine, name, total_memory) = metal::Metal::open()?;
            Ok(Gpu {
                engine: Arc::new(engine),
                name,
                total_memory,
            })
        }
        #[cfg(not(all(feature = "metal", target_os = "macos")))]
        {
            Err(GpuError::Unavailable(if cfg!(feature = "metal") {
                "Metal runs on macOS only".into()
            } else {
                "this build of teacher has no Metal backend\nhint: on a Mac, build with `cargo build --release --features metal`".into()
            }))
        }
    }

    /// Whether tokens can be drawn on the GPU (`sample_penalize`, `sample_rows`).
    pub fn samples(&self) -> bool {
        self.engine.samples()
    }

    /// Whether steps can be recorded as graphs and replayed ([`Gpu::capture`]).
    pub fn records_graphs(&self) -> bool {
        self.engine.records_graphs()
    }

    /// Launch kernel `name` with `grid` × `block` threads (nothing for an empty grid).
    pub fn launch(&self, name: &str, grid: (u32, u32), block: u32, args: &[Arg]) -> Result<()> {
        if grid.0 == 0 || grid.1 == 0 {
            return Ok(());
        }
        self.engine.launch(name, grid, block, args)
    }

    /// A launch over `n` elements, 256 threads a block.
    pub fn launch_n(&self, name: &str, n: usize, args: &[Arg]) -> Result<()> {
        let blocks = n.div_ceil(256);
        if blocks > u32::MAX as usize {
            return Err(GpuError::Driver(format!(
                "{name}: {n} elements is too many"
            )));
        }
        self.launch(name, (blocks as u32, 1), 256, args)
    }

    /// `n` zeroed elements.
    pub fn alloc<T: Copy>(&self, n: usize) -> Result<DevBuf<T>> {
        let bytes = n
            .max(1)
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| GpuError::Driver(format!("a buffer of {n} elements is too large")))?;
        let (ptr, mem) = self.engine.alloc(bytes)?;
        Ok(DevBuf {
            ptr,
            len: n,
            _mem: mem,
            _t: std::marker::PhantomData,
        })
    }

    pub fn upload<T: Copy>(&self, host: &[T]) -> Result<DevBuf<T>> {
        let mut b = self.alloc::<T>(host.len())?;
        self.write(host, &mut b)?;
        Ok(b)
    }

    /// Copy `host` into the start of `dev`.
    pub fn write<T: Copy>(&self, host: &[T], dev: &mut DevBuf<T>) -> Result<()> {
        assert!(
            host.len() <= dev.len,
            "write past the end of a device buffer"
        );
        if host.is_empty() {
            return Ok(());
        }
        self.engine.write(dev.ptr, bytes_of(host))
    }

    /// Copy the first `out.len()` elements of `dev` to `out` (waits for the queue).
    pub fn read<T: Copy>(&self, dev: &DevBuf<T>, out: &mut [T]) -> Result<()> {
        self.read_at(dev, 0, out)
    }

    /// Copy elements `from..from + out.len()` of `dev` to `out` (waits for the queue).
    pub fn read_at<T: Copy>(&self, dev: &DevBuf<T>, from: usize, out: &mut [T]) -> Result<()> {
        assert!(
            from + out.len() <= dev.len,
            "read past the end of a device buffer"
        );
        if out.is_empty() {
            return Ok(());
        }
        // SAFETY: T is Copy plain data (numbers); any bytes the GPU wrote are a value.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, std::mem::size_of_val(out))
        };
        self.engine
            .read(dev.ptr + (from * std::mem::size_of::<T>()) as u64, bytes)
    }

    /// Copy `n` elements of `src` from `from` to `dst` at `to` (device to device; the
    /// two may be the same buffer when the ranges do not overlap).
    pub fn copy<T: Copy>(
        &self,
        dst: u64,
        to: usize,
        src: u64,
        from: usize,
        n: usize,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let size = std::mem::size_of::<T>() as u64;
        self.engine.copy(
            dst + to as u64 * size,
            src + from as u64 * size,
            n * size as usize,
        )
    }

    /// Record `f`'s launches as a graph instead of running them (None where the engine
    /// has no graphs: the caller then runs `f` itself).
    pub fn capture(&self, mut f: impl FnMut() -> Result<()>) -> Result<Option<Graph>> {
        self.engine.capture(&mut f)
    }

    pub fn synchronize(&self) -> Result<()> {
        self.engine.synchronize()
    }
}

/// Each argument in the low bytes of its own 64-bit word (how CUDA and the emulator
/// take kernel parameters).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn arg_words(args: &[Arg]) -> Vec<u64> {
    args.iter()
        .map(|a| match *a {
            Arg::Ptr(p) => p,
            Arg::I32(v) => v as u32 as u64,
            Arg::I64(v) => v as u64,
            Arg::F32(v) => v.to_bits() as u64,
        })
        .collect()
}

fn bytes_of<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: T is Copy plain data; the slice covers exactly v's bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter numbers of the first kernel signature at or after `from` in the
    /// source (`P(type, name, 3)` → 3), and where that signature ends.
    fn numbers_after(src: &str, from: usize) -> (Vec<usize>, usize) {
        let at = from + src[from..].find("KERNEL ").expect("a kernel signature");
        let end = at
            + src[at..]
                .find("IDS)")
                .expect("every kernel ends its parameters with IDS");
        let sig = &src[at..end];
        let nums = sig
            .match_indices(", ")
            .filter_map(|(i, _)| {
                let tail = &sig[i + 2..];
                tail[..tail.find(')')?].trim().parse::<usize>().ok()
            })
            .collect();
        (nums, end)
    }

    /// Every kernel in KERNELS is defined in the source with that many parameters,
    /// numbered 0, 1, 2, … in order (Metal binds them by number), and the source
    /// defines no kernel the list lacks.
    #[test]
    fn kernel_list_matches_the_source() {
        let src = BODY;
        let in_order = |k: &str, nums: &[usize]| {
            assert_eq!(
                nums,
                (0..nums.len()).collect::<Vec<_>>(),
                "kernel {k}: parameters not numbered 0, 1, … in order"
            );
            nums.len()
        };
        let macro_params = |m: &str| {
            let at = src.find(&format!("#define {m}(")).expect("the macro");
            in_order(m, &numbers_after(src, at).0)
        };
        let (mm, embed) = (macro_params("MM_KERNEL"), macro_params("EMBED_KERNEL"));
        for &(k, n) in KERNELS {
            let have = if src.contains(&format!("\nMM_KERNEL({k},")) {
                mm
            } else if src.contains(&format!("\nEMBED_KERNEL({k},")) {
                embed
            } else {
                let at = src
                    .find(&format!("KERNEL {k}("))
                    .unwrap_or_else(|| panic!("kernel {k} is not in forward.h"));
                in_order(k, &numbers_after(src, at).0)
            };
            assert_eq!(
                have, n,
                "kernel {k}: {have} parameters in forward.h, {n} in KERNELS"
            );
        }
        for &(k, n) in SAMPLE_KERNELS {
            let at = SAMPLE_BODY
                .find(&format!("KERNEL {k}("))
                .unwrap_or_else(|| panic!("kernel {k} is not in sample.h"));
            assert_eq!(
                in_order(k, &numbers_after(SAMPLE_BODY, at).0),
                n,
                "kernel {k}"
            );
        }
        assert_eq!(
            SAMPLE_BODY.matches("\nKERNEL ").count(),
            SAMPLE_KERNELS.len()
        );
        let defined = src.matches("\nKERNEL ").count()
            + src.matches("\nMM_KERNEL(").count()
            + src.matches("\nEMBED_KERNEL(").count();
        assert_eq!(
            defined,
            KERNELS.len(),
            "forward.h defines kernels KERNELS lacks"
        );
    }
}
