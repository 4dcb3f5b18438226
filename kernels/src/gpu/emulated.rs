//! The emulator engine: `kernels/cuda/emulate.cpp` built as a library runs the CUDA
//! kernels on the CPU (every CUDA thread a fiber), over host memory. Tests only
//! (`TEACHER_CUDA_EMULATOR`): it proves the kernels' arithmetic, not a GPU's.

use super::{arg_words, Arg, Engine, GpuError, Keeper, Result};

type EmuLaunch = unsafe extern "C" fn(*const std::ffi::c_char, u32, u32, u32, *mut u64, i32) -> i32;

pub(super) struct Emulator {
    launch: libloading::Symbol<'static, EmuLaunch>,
}

/// 16-byte aligned host memory standing in for a device allocation.
struct HostMem(#[allow(dead_code)] Vec<u128>);

impl Emulator {
    pub(super) fn open(lib: &std::path::Path) -> Result<Emulator> {
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
        Ok(Emulator { launch })
    }
}

impl Engine for Emulator {
    fn launch(&self, name: &str, grid: (u32, u32), block: u32, args: &[Arg]) -> Result<()> {
        let mut vals = arg_words(args);
        let cname = std::ffi::CString::new(name)
            .map_err(|_| GpuError::Driver(format!("bad kernel name `{name}`")))?;
        // SAFETY: the emulator reads each parameter from its 8 bytes as the kernel
        // declares it, and the pointers are live host buffers of the sizes indexed.
        let rc = unsafe {
            (self.launch)(
                cname.as_ptr(),
                grid.0,
                grid.1,
                block,
                vals.as_mut_ptr(),
                vals.len() as i32,
            )
        };
        match rc {
            0 => Ok(()),
            -2 => Err(GpuError::Driver(format!(
                "emulated kernel `{name}`: its threads deadlocked"
            ))),
            _ => Err(GpuError::Driver(format!(
                "emulated kernel `{name}`: unknown kernel"
            ))),
        }
    }

    fn alloc(&self, bytes: usize) -> Result<(u64, Keeper)> {
        let v = vec![0u128; bytes.div_ceil(16)];
        Ok((v.as_ptr() as u64, Box::new(HostMem(v))))
    }

    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        // SAFETY: dst addresses at least src.len() bytes of a live host buffer.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        // SAFETY: the ranges lie inside live host buffers (`copy` allows overlap).
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, bytes) };
        Ok(())
    }

    fn samples(&self) -> bool {
        true
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
