//! The Metal engine (macOS): `forward.h` compiled from Metal Shading Language source at
//! start (safe math mode, precise functions), one command queue, a step's launches
//! encoded into one command buffer that is committed when the host needs a result.
//!
//! NOT YET RUN: no Mac was available. This file is checked by `cargo check --target
//! aarch64-apple-darwin --features metal` in CI; the kernels it runs are the ones the
//! CUDA backend runs.
//!
//! Buffers are named by a 64-bit address like CUDA's: the buffer's number in the high
//! 24 bits and a byte offset in the low 40, so `ptr() + bytes` addresses inside it.

use super::{Arg, Engine, GpuError, Keeper, Result, KERNELS};
use objc2::rc::Retained;
use objc2::runtime::ProtocolObject;
use objc2_foundation::NSString;
use objc2_metal::{
    MTLBlitCommandEncoder, MTLBuffer, MTLCommandBuffer, MTLCommandBufferStatus, MTLCommandEncoder,
    MTLCommandQueue, MTLCompileOptions, MTLComputeCommandEncoder, MTLComputePipelineState,
    MTLCreateSystemDefaultDevice, MTLDevice, MTLLibrary, MTLMathFloatingPointFunctions,
    MTLMathMode, MTLResourceOptions, MTLSize,
};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

/// The Metal source of every kernel: the dialect's Metal prelude, then the kernels.
pub const SOURCE: &str = concat!(
    include_str!("../../metal/prelude.metal"),
    include_str!("../../gpu/forward.h")
);

const OFFSET_BITS: u32 = 40;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;

type Buffer = Retained<ProtocolObject<dyn MTLBuffer>>;

/// What is touched only under the lock: the live buffers by number, and the command
/// buffer being filled with its open compute encoder.
struct Inner {
    buffers: HashMap<u64, Buffer>,
    next: u64,
    cmd: Option<Retained<ProtocolObject<dyn MTLCommandBuffer>>>,
    enc: Option<Retained<ProtocolObject<dyn MTLComputeCommandEncoder>>>,
}

// SAFETY: the Metal objects in Inner are used only while the Mutex around it is held,
// so never from two threads at once; Metal allows using them from any thread.
unsafe impl Send for Inner {}

pub(super) struct Metal {
    queue: Retained<ProtocolObject<dyn MTLCommandQueue>>,
    device: Retained<ProtocolObject<dyn objc2_metal::MTLDevice>>,
    pipelines: HashMap<&'static str, Retained<ProtocolObject<dyn MTLComputePipelineState>>>,
    inner: Arc<Mutex<Inner>>,
}

/// Drops the buffer from the table when its DevBuf goes.
struct MetalMem {
    id: u64,
    inner: Arc<Mutex<Inner>>,
}

impl Drop for MetalMem {
    fn drop(&mut self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.buffers.remove(&self.id);
    }
}

fn err(what: &str) -> GpuError {
    GpuError::Driver(format!("Metal: {what}"))
}

impl Metal {
    /// The default Metal device with every kernel compiled: the engine, its name and
    /// its recommended working-set size.
    pub(super) fn open() -> Result<(Metal, String, usize)> {
        let device = MTLCreateSystemDefaultDevice()
            .ok_or_else(|| GpuError::Unavailable("no Metal device on this Mac".into()))?;
        let opts = MTLCompileOptions::new();
        opts.setMathMode(MTLMathMode::Safe);
        opts.setMathFloatingPointFunctions(MTLMathFloatingPointFunctions::Precise);
        let library = device
            .newLibraryWithSource_options_error(&NSString::from_str(SOURCE), Some(&opts))
            .map_err(|e| GpuError::Compile(e.localizedDescription().to_string()))?;
        let mut pipelines = HashMap::new();
        for &(k, _) in KERNELS {
            let f = library
                .newFunctionWithName(&NSString::from_str(k))
                .ok_or_else(|| GpuError::Compile(format!("no kernel `{k}` in the library")))?;
            let p = device
                .newComputePipelineStateWithFunction_error(&f)
                .map_err(|e| GpuError::Compile(format!("{k}: {}", e.localizedDescription())))?;
            // The warp shuffles assume 32-lane SIMD-groups.
            if p.threadExecutionWidth() != 32 {
                return Err(GpuError::Unavailable(format!(
                    "kernel {k}: SIMD-groups of {} threads (the kernels need 32)",
                    p.threadExecutionWidth()
                )));
            }
            pipelines.insert(k, p);
        }
        let queue = device
            .newCommandQueue()
            .ok_or_else(|| err("no command queue"))?;
        let name = format!("metal ({})", device.name());
        let memory = device.recommendedMaxWorkingSetSize() as usize;
        let inner = Arc::new(Mutex::new(Inner {
            buffers: HashMap::new(),
            next: 1,
            cmd: None,
            enc: None,
        }));
        Ok((
            Metal {
                queue,
                device,
                pipelines,
                inner,
            },
            name,
            memory,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The buffer and byte offset an address names.
    fn resolve(g: &Inner, addr: u64) -> Result<(Buffer, usize)> {
        let b = g
            .buffers
            .get(&(addr >> OFFSET_BITS))
            .ok_or_else(|| err(&format!("address {addr:#x} names no live buffer")))?;
        Ok((b.clone(), (addr & OFFSET_MASK) as usize))
    }

    /// The open command buffer (a new one if none).
    fn command_buffer(
        &self,
        g: &mut Inner,
    ) -> Result<Retained<ProtocolObject<dyn MTLCommandBuffer>>> {
        if g.cmd.is_none() {
            g.cmd = Some(
                self.queue
                    .commandBuffer()
                    .ok_or_else(|| err("no command buffer"))?,
            );
        }
        Ok(g.cmd.clone().expect("set above"))
    }

    /// Commit what is queued and wait for it; an execution error is reported here.
    fn flush(&self, g: &mut Inner) -> Result<()> {
        if let Some(enc) = g.enc.take() {
            enc.endEncoding();
        }
        if let Some(cmd) = g.cmd.take() {
            cmd.commit();
            cmd.waitUntilCompleted();
            if cmd.status() == MTLCommandBufferStatus::Error {
                let why = cmd
                    .error()
                    .map(|e| e.localizedDescription().to_string())
                    .unwrap_or_else(|| "unknown error".into());
                return Err(err(&format!("a command buffer failed: {why}")));
            }
        }
        Ok(())
    }
}

impl Engine for Metal {
    fn launch(&self, name: &str, grid: (u32, u32), block: u32, args: &[Arg]) -> Result<()> {
        let pipe = self
            .pipelines
            .get(name)
            .ok_or_else(|| err(&format!("no kernel `{name}`")))?;
        if block as usize > pipe.maxTotalThreadsPerThreadgroup() {
            return Err(err(&format!(
                "kernel {name}: {block} threads a threadgroup, this GPU allows {}",
                pipe.maxTotalThreadsPerThreadgroup()
            )));
        }
        let mut g = self.lock();
        if g.enc.is_none() {
            let cmd = self.command_buffer(&mut g)?;
            g.enc = Some(
                cmd.computeCommandEncoder()
                    .ok_or_else(|| err("no compute encoder"))?,
            );
        }
        let mut bound = Vec::new();
        for a in args {
            if let Arg::Ptr(p) = *a {
                bound.push(Some(Self::resolve(&g, p)?));
            } else {
                bound.push(None);
            }
        }
        let enc = g.enc.as_ref().expect("opened above");
        enc.setComputePipelineState(pipe);
        for (i, (a, b)) in args.iter().zip(&bound).enumerate() {
            // SAFETY: parameter i of every kernel is bound at index i (forward.h numbers
            // them so; a test checks it), with a live buffer and an offset inside it, or
            // the scalar's own bytes, which setBytes copies.
            unsafe {
                match (*a, b) {
                    (Arg::Ptr(_), Some((buf, off))) => {
                        enc.setBuffer_offset_atIndex(Some(buf), *off, i)
                    }
                    (Arg::I32(v), _) => enc.setBytes_length_atIndex(NonNull::from(&v).cast(), 4, i),
                    (Arg::I64(v), _) => enc.setBytes_length_atIndex(NonNull::from(&v).cast(), 8, i),
                    (Arg::F32(v), _) => enc.setBytes_length_atIndex(NonNull::from(&v).cast(), 4, i),
                    (Arg::Ptr(_), None) => unreachable!("resolved above"),
                }
            }
        }
        enc.dispatchThreadgroups_threadsPerThreadgroup(
            MTLSize {
                width: grid.0 as usize,
                height: grid.1 as usize,
                depth: 1,
            },
            MTLSize {
                width: block as usize,
                height: 1,
                depth: 1,
            },
        );
        Ok(())
    }

    fn alloc(&self, bytes: usize) -> Result<(u64, Keeper)> {
        if bytes as u64 > OFFSET_MASK {
            return Err(err(&format!("a buffer of {bytes} bytes is too large")));
        }
        // Shared storage: the host reads and writes it directly (unified memory);
        // new buffers are zero-filled.
        let buf = self
            .device
            .newBufferWithLength_options(bytes, MTLResourceOptions::StorageModeShared)
            .ok_or_else(|| err(&format!("cannot allocate {bytes} bytes")))?;
        let mut g = self.lock();
        let id = g.next;
        g.next += 1;
        g.buffers.insert(id, buf);
        Ok((
            id << OFFSET_BITS,
            Box::new(MetalMem {
                id,
                inner: self.inner.clone(),
            }),
        ))
    }

    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        let mut g = self.lock();
        // Work already queued may still read this buffer: finish it first.
        self.flush(&mut g)?;
        let (buf, off) = Self::resolve(&g, dst)?;
        if off + src.len() > buf.length() {
            return Err(err("write past the end of a buffer"));
        }
        // SAFETY: shared storage, nothing queued, the range is inside the buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                (buf.contents().as_ptr() as *mut u8).add(off),
                src.len(),
            )
        };
        Ok(())
    }

    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        let mut g = self.lock();
        self.flush(&mut g)?;
        let (buf, off) = Self::resolve(&g, src)?;
        if off + dst.len() > buf.length() {
            return Err(err("read past the end of a buffer"));
        }
        // SAFETY: as in write.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (buf.contents().as_ptr() as *const u8).add(off),
                dst.as_mut_ptr(),
                dst.len(),
            )
        };
        Ok(())
    }

    fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        let mut g = self.lock();
        let (d, doff) = Self::resolve(&g, dst)?;
        let (s, soff) = Self::resolve(&g, src)?;
        if doff + bytes > d.length() || soff + bytes > s.length() {
            return Err(err("copy past the end of a buffer"));
        }
        if let Some(enc) = g.enc.take() {
            enc.endEncoding();
        }
        let cmd = self.command_buffer(&mut g)?;
        let blit = cmd
            .blitCommandEncoder()
            .ok_or_else(|| err("no blit encoder"))?;
        // SAFETY: both ranges lie inside live buffers (checked above).
        unsafe {
            blit.copyFromBuffer_sourceOffset_toBuffer_destinationOffset_size(
                &s, soff, &d, doff, bytes,
            )
        };
        blit.endEncoding();
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        let mut g = self.lock();
        self.flush(&mut g)
    }
}
