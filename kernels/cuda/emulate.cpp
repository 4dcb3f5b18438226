// The CUDA kernels (kernels/gpu/forward.h read through prelude.cuh) on the CPU, for
// testing them where no GPU is: every CUDA thread of a block is a fiber, blocks run one
// after another, `__syncthreads` waits for the block and each warp shuffle for its warp. The arithmetic is the kernels' own source
// compiled with IEEE single precision and no contraction (g++ -ffp-contract=off on
// x86-64), so the numbers are the ones the kernels define; what it cannot show is
// anything about a real GPU (its memory model, speed, or compiler).
//
//   g++ -O2 -std=c++17 -ffp-contract=off -fno-fast-math -shared -fPIC \
//       kernels/cuda/emulate.cpp -o libteacher_cuda_emu.so
//
// teacher uses it when TEACHER_CUDA_EMULATOR names the library (tests only).

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#if !defined(__x86_64__)
#error "the kernel emulator switches fibers with x86-64 code"
#endif

#define TEACHER_EMULATE 1

struct EmuDim {
    unsigned x, y, z;
};

static EmuDim emu_block_idx, emu_block_dim, emu_grid_dim;
static unsigned emu_tid;

#define threadIdx (EmuDim{emu_tid, 0, 0})
#define blockIdx emu_block_idx
#define blockDim emu_block_dim
#define gridDim emu_grid_dim
#define __global__
#define __device__
#define __forceinline__ inline
#define __constant__
#define __shared__ static
#define __restrict__
#define __launch_bounds__(x)

static inline float __fmaf_rn(float a, float b, float c) { return std::fmaf(a, b, c); }
static inline float __fsqrt_rn(float x) { return std::sqrt(x); }
static inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
static inline int __float_as_int(float f) {
    int i;
    std::memcpy(&i, &f, 4);
    return i;
}
static inline double __longlong_as_double(long long i) {
    double d;
    std::memcpy(&d, &i, 8);
    return d;
}

// The four operations prelude.cuh writes in PTX, in plain C++ with the same results.
static inline float f16_to_f32(unsigned short h) { return (float)(*(const _Float16*)&h); }
static inline unsigned short f32_to_f16(float f) {
    _Float16 h = (_Float16)f;  // round to nearest even, as cvt.rn.f16.f32
    unsigned short b;
    std::memcpy(&b, &h, 2);
    return b;
}
static inline int dp4a(int a, int b, int c) {
    for (int k = 0; k < 4; k++) c += (int)(signed char)(a >> (8 * k)) * (int)(signed char)(b >> (8 * k));
    return c;
}
static inline int f32_to_i32_rz(float x) {
    if (x != x) return 0;
    if (x >= 2147483648.0f) return 2147483647;
    if (x <= -2147483648.0f) return (-2147483647 - 1);
    return (int)x;
}

// ------------------------------------------------------------------ fibers

extern "C" void teacher_emu_switch(void** save_sp, void* new_sp);
asm(R"(
    .text
    .globl teacher_emu_switch
    .type teacher_emu_switch,@function
teacher_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size teacher_emu_switch, .-teacher_emu_switch
)");

enum State { RUN, WARP_WAIT, BLOCK_WAIT, DONE };

struct Fiber {
    void* sp;
    State state;
};

static std::vector<Fiber> fibers;
static std::vector<std::vector<char>> stacks;
static void* sched_sp;
static void (*emu_kernel)(void**);
static void** emu_params;
static unsigned long long shfl_slot[1024];
static const size_t STACK = 128 * 1024;

static void wait(State s) {
    fibers[emu_tid].state = s;
    teacher_emu_switch(&fibers[emu_tid].sp, sched_sp);
}

static void __syncthreads() { wait(BLOCK_WAIT); }

extern "C" void teacher_emu_entry() {
    emu_kernel(emu_params);
    fibers[emu_tid].state = DONE;
    teacher_emu_switch(&fibers[emu_tid].sp, sched_sp);
    std::abort();  // a finished fiber is never resumed
}

template <class T>
static T shfl(T v, int src_lane) {
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    shfl_slot[emu_tid] = bits;
    wait(WARP_WAIT);
    unsigned long long r = shfl_slot[(emu_tid & ~31u) | (unsigned)(src_lane & 31)];
    wait(WARP_WAIT);
    T out;
    std::memcpy(&out, &r, sizeof(T));
    return out;
}

template <class T>
static T __shfl_sync(unsigned, T v, int src) {
    return shfl(v, src);
}

template <class T>
static T __shfl_xor_sync(unsigned, T v, int mask) {
    return shfl(v, (int)((emu_tid & 31u) ^ (unsigned)mask));
}

#include "prelude.cuh"
#include "../gpu/forward.h"
#include "../gpu/sample.h"
#undef P
#undef I
#undef L
#undef F

// ------------------------------------------------------------------ launching

template <class... A, size_t... I>
static void call_impl(void (*f)(A...), void** p, std::index_sequence<I...>) {
    f(*reinterpret_cast<A*>(p[I])...);
}

template <class... A>
static void call(void (*f)(A...), void** p) {
    call_impl(f, p, std::index_sequence_for<A...>{});
}

#define K(name) {#name, [](void** p) { call(&name, p); }},
static const std::pair<const char*, void (*)(void**)> TABLE[] = {
    K(quantize_q8) K(mm_q4_0) K(mm_q4_1) K(mm_q5_0) K(mm_q5_1) K(mm_q8_0) K(mm_q2_k) K(mm_q3_k)
    K(mm_q4_k) K(mm_q5_k) K(mm_q6_k) K(mm_iq4_nl) K(mm_iq4_xs) K(mm_float) K(embed_q4_0)
    K(embed_q4_1) K(embed_q5_0) K(embed_q5_1) K(embed_q8_0) K(embed_q2_k) K(embed_q3_k)
    K(embed_q4_k) K(embed_q5_k) K(embed_q6_k) K(embed_iq4_nl) K(embed_iq4_xs) K(embed_float)
    K(rms_norm) K(add_bias) K(add_into) K(gated_act) K(rope) K(kv_write) K(attention)
    K(gather_rows) K(softcap_rows) K(probe_functions) K(argmax_rows) K(sample_penalize) K(sample_rows)};

// Run one block of `n` threads to the end; -2 on a deadlock (threads waiting on
// barriers no one else can reach).
static int run_block(unsigned n) {
    for (unsigned t = 0; t < n; t++) {
        char* top = stacks[t].data() + STACK;
        top = (char*)((uintptr_t)top & ~(uintptr_t)15);
        void** sp = (void**)top;
        *--sp = nullptr;                     // the entry's (never used) return address
        *--sp = (void*)&teacher_emu_entry;   // where the first switch returns to
        for (int r = 0; r < 6; r++) *--sp = nullptr;  // rbp rbx r12 r13 r14 r15
        fibers[t].sp = sp;
        fibers[t].state = RUN;
    }
    for (;;) {
        for (unsigned t = 0; t < n; t++) {
            if (fibers[t].state == RUN) {
                emu_tid = t;
                teacher_emu_switch(&sched_sp, fibers[t].sp);
            }
        }
        bool all_done = true, released = false;
        for (unsigned w = 0; w * 32 < n; w++) {
            unsigned lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
            bool waiting = false, all_warp = true;
            for (unsigned t = lo; t < hi; t++) {
                if (fibers[t].state != DONE) all_done = false;
                if (fibers[t].state == WARP_WAIT) waiting = true;
                else if (fibers[t].state != DONE) all_warp = false;
            }
            if (waiting && all_warp) {
                for (unsigned t = lo; t < hi; t++)
                    if (fibers[t].state == WARP_WAIT) fibers[t].state = RUN;
                released = true;
            }
        }
        if (all_done) return 0;
        if (released) continue;
        bool all_block = true;
        for (unsigned t = 0; t < n; t++)
            if (fibers[t].state != DONE && fibers[t].state != BLOCK_WAIT) all_block = false;
        if (!all_block) return -2;
        for (unsigned t = 0; t < n; t++)
            if (fibers[t].state == BLOCK_WAIT) fibers[t].state = RUN;
    }
}

// Launch kernel `name` over gx × gy blocks of `block` threads; args[i] holds parameter
// i in its low bytes. 0 on success, -1 for an unknown kernel, -2 for a deadlock.
extern "C" int teacher_emu_launch(const char* name, unsigned gx, unsigned gy, unsigned block,
                                  unsigned long long* args, int nargs) {
    void (*fn)(void**) = nullptr;
    for (const auto& e : TABLE)
        if (std::strcmp(e.first, name) == 0) fn = e.second;
    if (!fn || block == 0 || block > 1024) return -1;
    std::vector<void*> params((size_t)nargs);
    for (int i = 0; i < nargs; i++) params[(size_t)i] = &args[i];
    fibers.assign(block, Fiber{nullptr, DONE});
    if (stacks.size() < block) stacks.resize(block, std::vector<char>(STACK));
    emu_kernel = fn;
    emu_params = params.data();
    emu_block_dim = EmuDim{block, 1, 1};
    emu_grid_dim = EmuDim{gx, gy, 1};
    for (unsigned y = 0; y < gy; y++)
        for (unsigned x = 0; x < gx; x++) {
            emu_block_idx = EmuDim{x, y, 0};
            int rc = run_block(block);
            if (rc != 0) return rc;
        }
    return 0;
}
