//! The CUDA engine: the driver and NVRTC found at run time, `forward.h` compiled for
//! the GPU present (cached on disk), launches on one stream, steps captured as CUDA
//! graphs. Nothing from CUDA is linked: a `cuda` build starts on a machine without it
//! and says so when a GPU is asked for.

use super::{Arg, Engine, GpuError, Graph, Keeper, Replay, Result, KERNELS, SAMPLE_KERNELS};
pub use cudarc;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The CUDA C source of every kernel: the dialect's CUDA prelude, then the kernels,
/// then the sampling kernels (f64, so CUDA only).
pub const SOURCE: &str = concat!(
    include_str!("../../cuda/prelude.cuh"),
    include_str!("../../gpu/forward.h"),
    include_str!("../../gpu/sample.h")
);

/// The NVRTC options: no contraction of multiply and add (every fma is explicit), IEEE
/// division and square root, denormals kept — the CPU's arithmetic.
pub const NVRTC_OPTIONS: [&str; 4] = [
    "--fmad=false",
    "--ftz=false",
    "--prec-div=true",
    "--prec-sqrt=true",
];

impl From<cudarc::driver::DriverError> for GpuError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        GpuError::Driver(format!("CUDA: {e}"))
    }
}

/// Folders where an NVRTC 13 library is commonly found (CUDA toolkits and the PyPI
/// wheel `nvidia-cuda-nvrtc` inside a Python environment), tried after the loader's own
/// search and `TEACHER_NVRTC`.
fn nvrtc_candidates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("TEACHER_NVRTC") {
        v.push(PathBuf::from(p));
    }
    let mut roots: Vec<PathBuf> = vec![
        "/usr/local/cuda/lib64".into(),
        "/usr/local/cuda/targets/x86_64-linux/lib".into(),
        "/usr/lib/x86_64-linux-gnu".into(),
    ];
    let mut sites: Vec<PathBuf> = Vec::new();
    if let Ok(venv) = std::env::var("VIRTUAL_ENV") {
        sites.push(PathBuf::from(venv).join("lib"));
    }
    for base in [
        "/opt/torch/.venv/lib",
        "/usr/local/lib",
        "/usr/lib",
        "/opt/conda/lib",
    ] {
        sites.push(base.into());
    }
    if let Ok(home) = std::env::var("HOME") {
        sites.push(PathBuf::from(home).join(".local/lib"));
    }
    for s in sites {
        if let Ok(rd) = std::fs::read_dir(&s) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("python3") {
                    for sp in ["site-packages", "dist-packages"] {
                        roots.push(e.path().join(sp).join("nvidia/cu13/lib"));
                        roots.push(e.path().join(sp).join("nvidia/cuda_nvrtc/lib"));
                    }
                }
            }
        }
    }
    v.extend(roots.into_iter().map(|r| r.join("libnvrtc.so.13")));
    v
}

/// Make NVRTC loadable: the loader's search first; else the first candidate file is
/// opened by path and kept, so cudarc's later open by name finds it loaded.
pub fn ensure_nvrtc() -> Result<()> {
    // SAFETY: only opens libraries (no symbol is called here).
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Ok(());
    }
    for c in nvrtc_candidates() {
        if c.is_file() {
            // NVRTC opens its builtins library by name when it compiles: open it first
            // from the same folder.
            if let Some(dir) = c.parent() {
                for b in ["libnvrtc-builtins.so.13.0", "libnvrtc-builtins.so.13"] {
                    let p = dir.join(b);
                    // SAFETY: as below.
                    if let Ok(lib) = unsafe { libloading::Library::new(&p) } {
                        std::mem::forget(lib);
                        break;
                    }
                }
            }
            // SAFETY: loading NVRTC runs its initialisers, which have no preconditions.
            if let Ok(lib) = unsafe { libloading::Library::new(&c) } {
                std::mem::forget(lib);
                // SAFETY: as above.
                if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                    return Ok(());
                }
            }
        }
    }
    Err(GpuError::Unavailable(
        "NVRTC 13 (libnvrtc.so.13) was not found\nhint: install the CUDA toolkit or `pip install nvidia-cuda-nvrtc`, or point TEACHER_NVRTC at libnvrtc.so.13".into(),
    ))
}

/// Compile the kernels to PTX for `arch` (`compute_90`, …).
pub fn compile(arch: &'static str) -> Result<String> {
    ensure_nvrtc()?;
    let opts = cudarc::nvrtc::CompileOptions {
        options: NVRTC_OPTIONS.iter().map(|s| s.to_string()).collect(),
        arch: Some(arch),
        name: Some("forward.cu".into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
        .map(|p| p.to_src())
        .map_err(|e| GpuError::Compile(format!("{e:?}")))
}

/// The PTX for `arch`, from the disk cache (`$XDG_CACHE_HOME/teacher/kernels` or
/// `~/.cache/teacher/kernels`, keyed by the source, options and architecture) or
/// compiled now and stored there.
fn cached_ptx(arch: &'static str) -> Result<String> {
    let mut h = Sha256::new();
    h.update(SOURCE.as_bytes());
    h.update(NVRTC_OPTIONS.join(" ").as_bytes());
    h.update(arch.as_bytes());
    let key: String = h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("teacher").join("kernels"));
    let file = dir.as_ref().map(|d| d.join(format!("{arch}-{key}.ptx")));
    if let Some(f) = &file {
        if let Ok(s) = std::fs::read_to_string(f) {
            return Ok(s);
        }
    }
    let ptx = compile(arch)?;
    if let (Some(d), Some(f)) = (&dir, &file) {
        // A cache that cannot be written only costs the next start a compile.
        if std::fs::create_dir_all(d).is_ok() {
            let tmp = f.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &ptx).is_ok() {
                let _ = std::fs::rename(&tmp, f);
            }
        }
    }
    Ok(ptx)
}

/// The NVRTC architecture name for a compute capability (one static string each).
fn arch_name(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (7, 0) => "compute_70",
        (7, 2) => "compute_72",
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, _) => "compute_90",
        (10, 0) => "compute_100",
        (10, _) => "compute_101",
        (12, _) => "compute_120",
        (m, _) if m >= 12 => "compute_120",
        (m, _) if m >= 10 => "compute_100",
        _ => "compute_75",
    }
}

/// A CUDA device allocation (freed on drop).
struct DeviceMem(#[allow(dead_code)] CudaSlice<u8>);

struct CudaGraph(cudarc::driver::CudaGraph);

impl Replay for CudaGraph {
    fn replay(&self) -> Result<()> {
        Ok(self.0.launch()?)
    }
}

/// One CUDA GPU: the stream everything runs on in order, and the loaded kernels.
pub(super) struct Cuda {
    stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
}

impl Cuda {
    /// GPU `ordinal` with the kernels loaded: the engine, its name and its memory.
    pub(super) fn open(ordinal: usize) -> Result<(Cuda, String, usize)> {
        // SAFETY: only opens the library (no symbol is called here).
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(GpuError::Unavailable(
                "no CUDA driver (libcuda.so.1) was found on this machine".into(),
            ));
        }
        let count = CudaContext::device_count()?;
        if count <= 0 {
            return Err(GpuError::Unavailable(
                "the CUDA driver reports no GPU".into(),
            ));
        }
        if ordinal >= count as usize {
            return Err(GpuError::Unavailable(format!(
                "there is no CUDA device {ordinal}: this machine has {count} (cuda:0 … cuda:{})",
                count - 1
            )));
        }
        let ctx = CudaContext::new(ordinal)?;
        // One stream, used in order: cudarc's per-buffer event tracking is not needed.
        // SAFETY: every buffer is used on the one stream below only.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream()?;
        let (major, minor) = ctx.compute_capability()?;
        let ptx = cached_ptx(arch_name(major, minor))?;
        let module = ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx))?;
        let mut funcs = HashMap::new();
        for &(k, _) in KERNELS.iter().chain(SAMPLE_KERNELS) {
            funcs.insert(k, module.load_function(k)?);
        }
        let name = format!(
            "cuda:{ordinal} ({}, compute capability {major}.{minor})",
            ctx.name()?
        );
        Ok((Cuda { stream, funcs }, name, ctx.total_mem()?))
    }
}

impl Engine for Cuda {
    fn launch(&self, name: &str, grid: (u32, u32), block: u32, args: &[Arg]) -> Result<()> {
        let f = self
            .funcs
            .get(name)
            .ok_or_else(|| GpuError::Driver(format!("no kernel `{name}`")))?;
        // Each parameter points at its own 8 bytes; the kernel reads the 4 or 8 it
        // declares (little-endian: an int or float is the low half).
        let mut vals = super::arg_words(args);
        let mut params: Vec<*mut std::ffi::c_void> = vals
            .iter_mut()
            .map(|v| v as *mut u64 as *mut std::ffi::c_void)
            .collect();
        // SAFETY: `params` match the kernel's declared parameters (each call site
        // passes them in the order forward.h declares), and the pointers are live
        // device allocations of the sizes the kernel indexes.
        unsafe {
            cudarc::driver::result::launch_kernel(
                f.cu_function(),
                (grid.0, grid.1, 1),
                (block, 1, 1),
                0,
                self.stream.cu_stream(),
                &mut params,
            )?;
        }
        Ok(())
    }

    fn alloc(&self, bytes: usize) -> Result<(u64, Keeper)> {
        let s = self.stream.alloc_zeros::<u8>(bytes)?;
        let p = {
            let (p, _sync) = s.device_ptr(&self.stream);
            p
        };
        Ok((p, Box::new(DeviceMem(s))))
    }

    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        // SAFETY: dst addresses at least src.len() bytes of a live allocation (Gpu
        // checks); ordered on the stream (pageable memory: the driver stages it
        // before returning).
        unsafe { cudarc::driver::result::memcpy_htod_async(dst, src, self.stream.cu_stream())? };
        Ok(())
    }

    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        // SAFETY: src addresses at least dst.len() bytes; synchronised below.
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(dst, src, self.stream.cu_stream())?;
        }
        Ok(self.stream.synchronize()?)
    }

    fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        // SAFETY: the caller's ranges lie inside live buffers; ordered on the stream.
        unsafe {
            cudarc::driver::result::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream())?
        };
        Ok(())
    }

    fn capture(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Option<Graph>> {
        self.stream.begin_capture(
            cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
        )?;
        let queued = f();
        let graph = self
            .stream
            .end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0))?;
        queued?;
        Ok(graph.map(|g| Graph(Box::new(CudaGraph(g)))))
    }

    fn records_graphs(&self) -> bool {
        true
    }

    fn samples(&self) -> bool {
        true
    }

    fn synchronize(&self) -> Result<()> {
        Ok(self.stream.synchronize()?)
    }
}
