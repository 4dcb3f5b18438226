// The kernel dialect of kernels/gpu/forward.h in Metal Shading Language. The Metal
// engine (kernels/src/gpu/metal.rs) compiles this prelude followed by forward.h at start,
// with the safe math mode and precise math functions (no fast math, no contraction of
// a*b+c: every fma is written FMA), and binds parameter i of a kernel at buffer index i
// (scalars with setBytes).
//
// NOT YET RUN: no Mac was available to compile or run this file. The Rust side is
// checked by `cargo check --target aarch64-apple-darwin --features metal`; the kernel
// bodies are the ones the CUDA backend runs (and the CPU emulator tests bit for bit).

#include <metal_stdlib>
using namespace metal;

typedef uchar u8;
typedef char i8;
typedef ushort u16;
typedef uint u32;
typedef ulong u64;
typedef long i64;

#define KERNEL kernel void
#define P(type, name, i) device type name [[buffer(i)]]
#define I(name, i) constant int& name [[buffer(i)]]
#define L(name, i) constant long& name [[buffer(i)]]
#define F(name, i) constant float& name [[buffer(i)]]
#define IDS                                                                                \
    , uint3 t_tid_ [[thread_position_in_threadgroup]], uint3 t_bid_ [[threadgroup_position_in_grid]], \
        uint3 t_bdim_ [[threads_per_threadgroup]]
#define IDS_DECL , uint3 t_tid_, uint3 t_bid_, uint3 t_bdim_
#define IDS_PASS , t_tid_, t_bid_, t_bdim_

#define DEV device
#define THR thread
#define SHARED threadgroup
#define CONSTANT constant
#define FN inline
#define DEVFN

#define TID t_tid_.x
#define BID_X t_bid_.x
#define BID_Y t_bid_.y
#define BDIM t_bdim_.x

// Device memory too: attention's scores are written and read back across threads.
#define BARRIER() threadgroup_barrier(mem_flags::mem_threadgroup | mem_flags::mem_device)
// A SIMD-group is 32 threads on Apple GPUs (the engine checks threadExecutionWidth).
#define SHFL(v, lane) simd_shuffle(v, (ushort)(lane))
#define SHFL_XOR(v, mask) simd_shuffle_xor(v, (ushort)(mask))

#define FMA(a, b, c) fma(a, b, c)
#define DIV(a, b) precise::divide(a, b)
#define SQRT_RN(x) precise::sqrt(x)
#define AS_FLOAT(i) as_type<float>(i)
#define FABS(x) fabs(x)
#define FMAX(a, b) fmax(a, b)

inline float f16_to_f32(u16 h) { return float(as_type<half>(h)); }

// Round to nearest even (MSL's float-to-half conversion).
inline u16 f32_to_f16(float f) { return as_type<ushort>(half(f)); }

// Four exact i8 products summed in i32, as PTX dp4a.
inline int dp4a(int a, int b, int c) {
    for (int k = 0; k < 4; k++) c += (int)(char)(a >> (8 * k)) * (int)(char)(b >> (8 * k));
    return c;
}

// Truncation toward zero, saturating, NaN -> 0 (Rust's `as i32`).
inline int f32_to_i32_rz(float x) {
    if (isnan(x)) return 0;
    if (x >= 2147483648.0f) return 2147483647;
    if (x <= -2147483648.0f) return (-2147483647 - 1);
    return (int)x;
}

