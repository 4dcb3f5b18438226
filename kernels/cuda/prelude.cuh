// The kernel dialect of kernels/gpu/forward.h in CUDA C (compiled by NVRTC with
// --fmad=false --ftz=false --prec-div=true --prec-sqrt=true; no CUDA header is needed).
// emulate.cpp defines TEACHER_EMULATE and the CUDA built-ins first, and the four PTX
// helpers below in plain C++.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

#define KERNEL extern "C" __global__ void
#define P(type, name, i) type name
#define I(name, i) int name
#define L(name, i) i64 name
#define F(name, i) float name
#define IDS
#define IDS_DECL
#define IDS_PASS

#define DEV
#define THR
#define SHARED __shared__
#define CONSTANT __constant__
#define FN __device__ __forceinline__
#define DEVFN __device__

#define TID threadIdx.x
#define BID_X blockIdx.x
#define BID_Y blockIdx.y
#define BDIM blockDim.x

#define BARRIER() __syncthreads()
#define SHFL(v, lane) __shfl_sync(0xffffffff, v, lane)
#define SHFL_XOR(v, mask) __shfl_xor_sync(0xffffffff, v, mask)

#define FMA(a, b, c) __fmaf_rn(a, b, c)
#define DIV(a, b) ((a) / (b))
#define SQRT_RN(x) __fsqrt_rn(x)
#define AS_FLOAT(i) __int_as_float(i)
#define AS_INT(f) __float_as_int(f)
#define AS_DOUBLE(i) __longlong_as_double(i)
#define FABS(x) fabsf(x)
#define FMAX(a, b) fmaxf(a, b)

#ifndef TEACHER_EMULATE
__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ int dp4a(int a, int b, int c) {
    int r;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

// Truncation toward zero, saturating, NaN -> 0 (cvt.rzi.s32.f32; Rust's `as i32`).
__device__ __forceinline__ int f32_to_i32_rz(float x) { return (int)x; }
#endif

