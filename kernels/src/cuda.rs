//! The CUDA side of the kernels: finding the driver and NVRTC at run time, compiling
//! `kernels/cuda/forward.cu` for the GPU present (cached on disk), and launching its
//! kernels. Nothing from CUDA is linked: a `cuda` build starts on a machine without it
//! and says so when a GPU is asked for.
//!
//! The kernels compute exactly what the CPU kernels compute (see the top of
//! `forward.cu`); this module only moves numbers and launches.

pub use cudarc;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The CUDA C source of every kernel.
pub const SOURCE: &str = include_str!("../cuda/forward.cu");

/// The NVRTC options: no contraction of multiply and add (every fma is explicit), IEEE
/// division and square root, denormals kept — the CPU's arithmetic.
pub const NVRTC_OPTIONS: [&str; 4] = [
    "--fmad=false",
    "--ftz=false",
    "--prec-div=true",
    "--prec-sqrt=true",
];

/// Every kernel `forward.cu` defines (the NVRTC test checks each is in the PTX).
pub const KERNELS: &[&str] = &[
    "quantize_q8",
    "mm_q4_0",
    "mm_q4_1",
    "mm_q5_0",
    "mm_q5_1",
    "mm_q8_0",
    "mm_q2_k",
    "mm_q3_k",
    "mm_q4_k",
    "mm_q5_k",
    "mm_q6_k",
    "mm_iq4_nl",
    "mm_iq4_xs",
    "mm_float",
    "embed_q4_0",
    "embed_q4_1",
    "embed_q5_0",
    "embed_q5_1",
    "embed_q8_0",
    "embed_q2_k",
    "embed_q3_k",
    "embed_q4_k",
    "embed_q5_k",
    "embed_q6_k",
    "embed_iq4_nl",
    "embed_iq4_xs",
    "embed_float",
    "rms_norm",
    "add_bias",
    "add_into",
    "gated_act",
    "rope",
    "kv_write",
    "attention",
    "gather_rows",
    "softcap_rows",
    "probe_functions",
    "argmax_rows",
];

/// Rows of one matmul thread block (MM_ROWS) and its columns (MM_COLS) in `forward.cu`.
pub const MM_ROWS: usize = 8;
pub const MM_COLS: usize = 16;
/// Threads of an attention block (ATT_THREADS) and the largest head it holds.
pub const ATT_THREADS: u32 = 128;
pub const MAX_HEAD_DIM: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("{0}")]
    Unavailable(String),
    #[error("NVRTC could not compile the CUDA kernels: {0}")]
    Compile(String),
    #[error("CUDA: {0}")]
    Driver(String),
}

impl From<cudarc::driver::DriverError> for GpuError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        GpuError::Driver(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, GpuError>;

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

/// One kernel argument: a device pointer, an integer or a float.
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
}

/// A buffer in device memory (or, under the emulator, host memory): its address, its
/// length in elements, and what keeps it alive.
pub struct DevBuf<T> {
    ptr: u64,
    len: usize,
    _mem: Mem,
    _t: std::marker::PhantomData<T>,
}

enum Mem {
    /// Owns the device allocation (freed on drop).
    Cuda(#[allow(dead_code)] CudaSlice<u8>),
    /// 16-byte aligned host memory for the emulator.
    Host(#[allow(dead_code)] Vec<u128>),
}

impl<T> DevBuf<T> {
    /// The device address (what kernels take).
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

/// A captured sequence of launches that can be replayed as one.
pub struct Graph(cudarc::driver::CudaGraph);

impl Graph {
    pub fn launch(&self) -> Result<()> {
        Ok(self.0.launch()?)
    }
}

enum Engine {
    Cuda {
        stream: Arc<CudaStream>,
        funcs: HashMap<&'static str, CudaFunction>,
    },
    /// `emulate.cpp` built as a library: the kernels on the CPU (tests only).
    Emulated {
        launch: libloading::Symbol<'static, EmuLaunch>,
    },
}

type EmuLaunch = unsafe extern "C" fn(*const std::ffi::c_char, u32, u32, u32, *mut u64, i32) -> i32;

/// A GPU with the kernels loaded, and the one stream everything runs on in order.
pub struct Gpu {
    engine: Engine,
    pub name: String,
    pub ordinal: usize,
    pub compute_capability: (i32, i32),
    pub total_memory: usize,
}

impl Gpu {
    /// Open GPU `ordinal`: the driver, the device, the kernels (compiled or cached).
    /// With `TEACHER_CUDA_EMULATOR` naming a build of `kernels/cuda/emulate.cpp`, the
    /// kernels run on the CPU instead (for testing them without a GPU).
    pub fn open(ordinal: usize) -> Result<Gpu> {
        if let Some(lib) = std::env::var_os("TEACHER_CUDA_EMULATOR") {
            return Gpu::emulated(std::path::Path::new(&lib));
        }
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
        for &k in KERNELS {
            funcs.insert(k, module.load_function(k)?);
        }
        Ok(Gpu {
            name: ctx.name()?,
            total_memory: ctx.total_mem()?,
            engine: Engine::Cuda { stream, funcs },
            ordinal,
            compute_capability: (major, minor),
        })
    }

    fn emulated(lib: &std::path::Path) -> Result<Gpu> {
        let bad = |e: libloading::Error| {
            GpuError::Unavailable(format!("the kernel emulator {}: {e}", lib.display()))
        };
        // SAFETY: the library is emulate.cpp built as documented there; it is kept
        // loaded for the life of the process.
        let l: &'static libloading::Library = Box::leak(Box::new(
            unsafe { libloading::Library::new(lib) }.map_err(bad)?,
        ));
        // SAFETY: the symbol has the EmuLaunch signature in emulate.cpp.
        let launch = unsafe { l.get::<EmuLaunch>(b"teacher_emu_launch") }.map_err(bad)?;
        Ok(Gpu {
            engine: Engine::Emulated { launch },
            name: "kernel emulator on the CPU".into(),
            ordinal: 0,
            compute_capability: (0, 0),
            total_memory: 0,
        })
    }

    /// Whether the kernels run in the CPU emulator.
    pub fn is_emulated(&self) -> bool {
        matches!(self.engine, Engine::Emulated { .. })
    }

    /// Launch kernel `name` on the stream with `grid` × `block` threads.
    pub fn launch(&self, name: &str, grid: (u32, u32), block: u32, args: &[Arg]) -> Result<()> {
        if grid.0 == 0 || grid.1 == 0 {
            return Ok(());
        }
        let mut vals: Vec<u64> = args
            .iter()
            .map(|a| match *a {
                Arg::Ptr(p) => p,
                Arg::I32(v) => v as u32 as u64,
                Arg::I64(v) => v as u64,
                Arg::F32(v) => v.to_bits() as u64,
            })
            .collect();
        match &self.engine {
            Engine::Cuda { stream, funcs, .. } => {
                let f = funcs
                    .get(name)
                    .ok_or_else(|| GpuError::Driver(format!("no kernel `{name}`")))?;
                // Each parameter points at its own 8 bytes; the kernel reads the 4 or 8
                // it declares (little-endian: an int or float is the low half).
                let mut params: Vec<*mut std::ffi::c_void> = vals
                    .iter_mut()
                    .map(|v| v as *mut u64 as *mut std::ffi::c_void)
                    .collect();
                // SAFETY: `params` match the kernel's declared parameters (each call
                // site passes them in the order forward.cu declares), and the pointers
                // are live device allocations of the sizes the kernel indexes.
                unsafe {
                    cudarc::driver::result::launch_kernel(
                        f.cu_function(),
                        (grid.0, grid.1, 1),
                        (block, 1, 1),
                        0,
                        stream.cu_stream(),
                        &mut params,
                    )?;
                }
            }
            Engine::Emulated { launch } => {
                let cname = std::ffi::CString::new(name)
                    .map_err(|_| GpuError::Driver(format!("bad kernel name `{name}`")))?;
                // SAFETY: as for the CUDA launch; the emulator reads each parameter from
                // its 8 bytes the same way, and the pointers are host buffers.
                let rc = unsafe {
                    launch(
                        cname.as_ptr(),
                        grid.0,
                        grid.1,
                        block,
                        vals.as_mut_ptr(),
                        vals.len() as i32,
                    )
                };
                if rc != 0 {
                    return Err(GpuError::Driver(format!(
                        "emulated kernel `{name}` failed ({})",
                        if rc == -2 {
                            "its threads deadlocked"
                        } else {
                            "unknown kernel"
                        }
                    )));
                }
            }
        }
        Ok(())
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
        let bytes = n.max(1) * std::mem::size_of::<T>();
        let (ptr, mem) = match &self.engine {
            Engine::Cuda { stream, .. } => {
                let s = stream.alloc_zeros::<u8>(bytes)?;
                let p = {
                    let (p, _sync) = s.device_ptr(stream);
                    p
                };
                (p, Mem::Cuda(s))
            }
            Engine::Emulated { .. } => {
                let v = vec![0u128; bytes.div_ceil(16)];
                (v.as_ptr() as u64, Mem::Host(v))
            }
        };
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
        match &self.engine {
            // SAFETY: dev holds at least host.len() elements; the copy is ordered on
            // the stream (pageable memory: the driver stages it before returning).
            Engine::Cuda { stream, .. } => unsafe {
                cudarc::driver::result::memcpy_htod_async(dev.ptr, host, stream.cu_stream())?
            },
            // SAFETY: as above, in host memory.
            Engine::Emulated { .. } => unsafe {
                std::ptr::copy_nonoverlapping(host.as_ptr(), dev.ptr as *mut T, host.len())
            },
        }
        Ok(())
    }

    /// Copy the first `out.len()` elements of `dev` to `out` (waits for the stream).
    pub fn read<T: Copy>(&self, dev: &DevBuf<T>, out: &mut [T]) -> Result<()> {
        assert!(out.len() <= dev.len, "read past the end of a device buffer");
        if out.is_empty() {
            return Ok(());
        }
        match &self.engine {
            // SAFETY: dev holds at least out.len() elements; synchronised below.
            Engine::Cuda { stream, .. } => unsafe {
                cudarc::driver::result::memcpy_dtoh_async(out, dev.ptr, stream.cu_stream())?;
                stream.synchronize()?;
            },
            // SAFETY: as above, in host memory.
            Engine::Emulated { .. } => unsafe {
                std::ptr::copy_nonoverlapping(dev.ptr as *const T, out.as_mut_ptr(), out.len())
            },
        }
        Ok(())
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
        let (d, s) = (dst + to as u64 * size, src + from as u64 * size);
        match &self.engine {
            // SAFETY: the caller's ranges lie inside live buffers; ordered on the stream.
            Engine::Cuda { stream, .. } => unsafe {
                cudarc::driver::result::memcpy_dtod_async(
                    d,
                    s,
                    n * size as usize,
                    stream.cu_stream(),
                )?
            },
            // SAFETY: as above, in host memory (`copy` allows overlap).
            Engine::Emulated { .. } => unsafe {
                std::ptr::copy(s as *const u8, d as *mut u8, n * size as usize)
            },
        }
        Ok(())
    }

    /// Record `f`'s launches as a graph instead of running them (None under the
    /// emulator, which has no graphs: the caller then runs `f` itself).
    pub fn capture(&self, f: impl FnOnce() -> Result<()>) -> Result<Option<Graph>> {
        match &self.engine {
            Engine::Cuda { stream, .. } => {
                stream.begin_capture(
                    cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
                )?;
                let queued = f();
                let graph = stream.end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0))?;
                queued?;
                Ok(graph.map(Graph))
            }
            Engine::Emulated { .. } => Ok(None),
        }
    }

    pub fn synchronize(&self) -> Result<()> {
        match &self.engine {
            Engine::Cuda { stream, .. } => Ok(stream.synchronize()?),
            Engine::Emulated { .. } => Ok(()),
        }
    }
}
