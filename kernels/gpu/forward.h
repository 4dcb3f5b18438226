// teacher's forward pass on a GPU: the same arithmetic, in the same order, as the CPU
// kernels (kernels/src/matmul, quant.rs, ops.rs), so every result is bit-identical.
//
// One source for every GPU backend, written in a small dialect that a prelude defines:
// kernels/cuda/prelude.cuh for CUDA (NVRTC, and the CPU emulator emulate.cpp) and
// kernels/metal/prelude.metal for Metal Shading Language. The backend compiles the
// prelude followed by this file. The dialect:
//   KERNEL name(P(type*, name, i), I(name, i), L(name, i), F(name, i) IDS)
//       a kernel; parameter i is a buffer (P), an int (I), a 64-bit int (L) or a float
//       (F), numbered in order (Metal's buffer indices; the host passes them so);
//   DEV / THR / SHARED / CONSTANT   device memory, a thread's own memory, a block's
//       shared memory, constant data (address spaces: empty words in CUDA);
//   TID, BID_X, BID_Y, BDIM         thread in block, block in grid, block size;
//   BARRIER(), SHFL(v, lane), SHFL_XOR(v, mask)   block barrier, 32-lane warp shuffles;
//   FMA, DIV, SQRT_RN, AS_FLOAT, FABS, FMAX   correctly rounded fma, division and
//       square root, bit casts, |x| and max;
//   f16_to_f32, f32_to_f16 (round to nearest even), dp4a (exact), f32_to_i32_rz.
//
// No multiply-add is contracted behind our back (NVRTC --fmad=false, Metal's safe math
// mode; every fma below is written FMA where the CPU order has one), IEEE division and
// square root, denormals kept.
//
// The rules that keep the CPU's bits (see kernels/src/matmul/mod.rs):
// - matmul: for output (r, c), sub-blocks j in order and their scale units (the whole
//   sub-block, or its two halves where Fmt::UNITS = 2) in order: one exact i32 sum p of
//   the unit's products (dp4a), acc = fma(d·da, p, acc); macc = fma(m·da, Σa, macc);
//   y = acc + macc. No split over k.
// - reductions (norms, attention): eight partial sums, lane l over elements l, l+8, …
//   in order, then the fixed tree ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
// - exp, tanh, silu, gelu: the CPU's own polynomial, operation for operation.
// - attention: per (row, head) the scores, max, exp(x − max), Σ and the value sum over
//   positions in position order; positions are never split into pieces.

FN float bf16_to_f32(u16 h) { return AS_FLOAT(((u32)h) << 16); }

FN float ld_f16(const DEV u8* p) { return f16_to_f32((u16)(p[0] | (p[1] << 8))); }

FN int pack4(int a, int b, int c, int d) {
    return (a & 0xff) | ((b & 0xff) << 8) | ((c & 0xff) << 16) | ((d & 0xff) << 24);
}

// kernels/src/ops.rs `exp`: clamp, split by ln 2, degree-6 Taylor, scale by 2^n.
DEVFN float t_exp(float x) {
    const float LOG2E = AS_FLOAT(0x3fb8aa3b);
    const float LN2_HI = AS_FLOAT(0x3f318000);
    const float LN2_LO = AS_FLOAT(0xb95e8083);
    const float ROUND = AS_FLOAT(0x4b400000);
    // f32::clamp: NaN stays NaN.
    if (x < -87.0f) x = -87.0f;
    if (x > 88.0f) x = 88.0f;
    float n = (x * LOG2E + ROUND) - ROUND;
    float r = (x - n * LN2_HI) - n * LN2_LO;
    const float C6 = AS_FLOAT(0x3ab60b61);  // 1/720
    const float C5 = AS_FLOAT(0x3c088889);  // 1/120
    const float C4 = AS_FLOAT(0x3d2aaaab);  // 1/24
    const float C3 = AS_FLOAT(0x3e2aaaab);  // 1/6
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (C3 + r * (C4 + r * (C5 + r * C6)))));
    return p * AS_FLOAT(((int)n + 127) << 23);
}

FN float t_tanh(float x) { return 1.0f - DIV(2.0f, t_exp(2.0f * x) + 1.0f); }

FN float t_silu(float x) { return DIV(x, 1.0f + t_exp(-x)); }

FN float t_gelu(float x) {
    const float SQRT_2_OVER_PI = AS_FLOAT(0x3f4c422a);
    const float C = AS_FLOAT(0x3d372713);  // 0.044715
    float y = SQRT_2_OVER_PI * (x + C * x * x * x);
    return 0.5f * x * (2.0f - DIV(2.0f, t_exp(2.0f * y) + 1.0f));
}

FN float tree8(const THR float* a) {
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

// ---------------------------------------------------------------- weight formats
//
// Each type is seen as 32-element sub-blocks, value_i = d[i/16]·w_i + m[i/16]
// (kernels/src/quant.rs `decode_block`). `lane` gives the packed w of elements
// 4·lane … 4·lane+3 of sub-block `s` of a block and its d; `mins` gives m[0], m[1].

#define T_Q4_0 0
#define T_Q4_1 1
#define T_Q5_0 2
#define T_Q5_1 3
#define T_Q8_0 4
#define T_Q2_K 5
#define T_Q3_K 6
#define T_Q4_K 7
#define T_Q5_K 8
#define T_Q6_K 9
#define T_IQ4_NL 10
#define T_IQ4_XS 11

CONSTANT i8 IQ4_VALUES[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                  1,    13,   25,  38,  53,  69,  89,  113};

template <int T> struct Fmt;

// The types whose sub-blocks have no minimum/offset term.
#define NO_MINS                                                                          \
    static FN void mins(const DEV u8*, int, THR float* m0, THR float* m1) { \
        *m0 = 0.0f;                                                                      \
        *m1 = 0.0f;                                                                      \
    }

FN void scale_min_k4(int j, const DEV u8* q, THR int* sc, THR int* mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Element e (0..32) of a sub-block stored as 16 bytes of nibbles: the low nibbles hold
// elements 0-15, the high ones 16-31 (Q4_0, Q4_1, IQ4_NL, IQ4_XS).
FN int nibble32(const DEV u8* qs, int e) { return e < 16 ? (qs[e] & 0xF) : (qs[e - 16] >> 4); }

template <> struct Fmt<T_Q4_0> {
    enum { BB = 18, NSB = 1, MINS = 0, UNITS = 1 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        *d = ld_f16(b);
        const DEV u8* qs = b + 2;
        int w[4];
        for (int k = 0; k < 4; k++) {
            int e = 4 * l + k;
            w[k] = nibble32(qs, e) - 8;
        }
        return pack4(w[0], w[1], w[2], w[3]);
    }
    NO_MINS
};

template <> struct Fmt<T_Q4_1> {
    enum { BB = 20, NSB = 1, MINS = 1, UNITS = 1 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        *d = ld_f16(b);
        const DEV u8* qs = b + 4;
        int w[4];
        for (int k = 0; k < 4; k++) {
            int e = 4 * l + k;
            w[k] = nibble32(qs, e);
        }
        return pack4(w[0], w[1], w[2], w[3]);
    }
    static FN void mins(const DEV u8* b, int s, THR float* m0, THR float* m1) {
        float m = ld_f16(b + 2);
        *m0 = m;
        *m1 = m;
    }
};

FN int q5_lane(const DEV u8* rest, int l, int off) {
    u32 qh = rest[0] | (rest[1] << 8) | (rest[2] << 16) | ((u32)rest[3] << 24);
    const DEV u8* qs = rest + 4;
    int w[4];
    for (int k = 0; k < 4; k++) {
        int e = 4 * l + k;
        int v;
        if (e < 16) {
            int h0 = ((qh >> e) << 4) & 0x10;
            v = (qs[e] & 0xF) | h0;
        } else {
            int j = e - 16;
            int h1 = (qh >> (j + 12)) & 0x10;
            v = (qs[j] >> 4) | h1;
        }
        w[k] = v - off;
    }
    return pack4(w[0], w[1], w[2], w[3]);
}

template <> struct Fmt<T_Q5_0> {
    enum { BB = 22, NSB = 1, MINS = 0, UNITS = 1 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        *d = ld_f16(b);
        return q5_lane(b + 2, l, 16);
    }
    NO_MINS
};

template <> struct Fmt<T_Q5_1> {
    enum { BB = 24, NSB = 1, MINS = 1, UNITS = 1 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        *d = ld_f16(b);
        return q5_lane(b + 4, l, 0);
    }
    static FN void mins(const DEV u8* b, int s, THR float* m0, THR float* m1) {
        float m = ld_f16(b + 2);
        *m0 = m;
        *m1 = m;
    }
};

template <> struct Fmt<T_Q8_0> {
    enum { BB = 34, NSB = 1, MINS = 0, UNITS = 1 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        *d = ld_f16(b);
        const DEV u8* q = b + 2 + 4 * l;
        return pack4((i8)q[0], (i8)q[1], (i8)q[2], (i8)q[3]);
    }
    NO_MINS
};

template <> struct Fmt<T_Q2_K> {
    enum { BB = 84, NSB = 8, MINS = 2, UNITS = 2 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        const DEV u8* scales = b;
        const DEV u8* q = b + 16 + (s / 4) * 32;
        int j = s % 4;
        float dd = ld_f16(b + 80);
        u8 a = scales[2 * s + (l / 4)];
        *d = dd * (float)(a & 0xF);
        int w[4];
        for (int k = 0; k < 4; k++) w[k] = (q[4 * l + k] >> (2 * j)) & 3;
        return pack4(w[0], w[1], w[2], w[3]);
    }
    static FN void mins(const DEV u8* b, int s, THR float* m0, THR float* m1) {
        float dmin = ld_f16(b + 82);
        *m0 = -(dmin * (float)(b[2 * s] >> 4));
        *m1 = -(dmin * (float)(b[2 * s + 1] >> 4));
    }
};

FN int q3k_scale(const DEV u8* b, int i) {
    int low = i < 8 ? (b[i] & 0xF) : (b[i - 8] >> 4);
    int high = (b[8 + i % 4] >> (2 * (i / 4))) & 3;
    return low | (high << 4);
}

template <> struct Fmt<T_Q3_K> {
    enum { BB = 110, NSB = 8, MINS = 0, UNITS = 2 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        const DEV u8* hm = b;
        const DEV u8* q = b + 32 + (s / 4) * 32;
        int j = s % 4;
        int bit = 1 << s;
        float dd = ld_f16(b + 108);
        *d = dd * (float)(q3k_scale(b + 96, 2 * s + (l / 4)) - 32);
        int w[4];
        for (int k = 0; k < 4; k++) {
            int e = 4 * l + k;
            w[k] = ((q[e] >> (2 * j)) & 3) - ((hm[e] & bit) ? 0 : 4);
        }
        return pack4(w[0], w[1], w[2], w[3]);
    }
    NO_MINS
};

template <> struct Fmt<T_Q4_K> {
    enum { BB = 144, NSB = 8, MINS = 1, UNITS = 1 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        int sc, mn;
        scale_min_k4(s, b + 4, &sc, &mn);
        *d = ld_f16(b) * (float)sc;
        const DEV u8* q = b + 16 + (s / 2) * 32;
        int half_ = s % 2;
        int w[4];
        for (int k = 0; k < 4; k++) {
            int e = 4 * l + k;
            w[k] = half_ == 0 ? (q[e] & 0xF) : (q[e] >> 4);
        }
        return pack4(w[0], w[1], w[2], w[3]);
    }
    static FN void mins(const DEV u8* b, int s, THR float* m0, THR float* m1) {
        int sc, mn;
        scale_min_k4(s, b + 4, &sc, &mn);
        float m = -(ld_f16(b + 2) * (float)mn);
        *m0 = m;
        *m1 = m;
    }
};

template <> struct Fmt<T_Q5_K> {
    enum { BB = 176, NSB = 8, MINS = 1, UNITS = 1 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        int sc, mn;
        scale_min_k4(s, b + 4, &sc, &mn);
        *d = ld_f16(b) * (float)sc;
        const DEV u8* qh = b + 16;
        const DEV u8* q = b + 48 + (s / 2) * 32;
        int half_ = s % 2;
        int w[4];
        for (int k = 0; k < 4; k++) {
            int e = 4 * l + k;
            int lo = half_ == 0 ? (q[e] & 0xF) : (q[e] >> 4);
            int hi = (qh[e] & (1 << s)) ? 16 : 0;
            w[k] = lo + hi;
        }
        return pack4(w[0], w[1], w[2], w[3]);
    }
    static FN void mins(const DEV u8* b, int s, THR float* m0, THR float* m1) {
        Fmt<T_Q4_K>::mins(b, s, m0, m1);
    }
};

template <> struct Fmt<T_Q6_K> {
    enum { BB = 210, NSB = 8, MINS = 0, UNITS = 2 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        int n = s / 4, part = s % 4;
        const DEV u8* ql = b + n * 64;
        const DEV u8* qh = b + 128 + n * 32;
        const DEV i8* sc = (const DEV i8*)(b + 192 + n * 8);
        int shift_l = (part >= 2) ? 4 : 0;
        int hi_shift = 2 * part;
        int ql_off = (part % 2) ? 32 : 0;
        *d = ld_f16(b + 208) * (float)sc[2 * part + (l / 4)];
        int w[4];
        for (int k = 0; k < 4; k++) {
            int e = 4 * l + k;
            int low = (ql[e + ql_off] >> shift_l) & 0xF;
            int high = ((qh[e] >> hi_shift) & 3) << 4;
            w[k] = (low | high) - 32;
        }
        return pack4(w[0], w[1], w[2], w[3]);
    }
    NO_MINS
};

template <> struct Fmt<T_IQ4_NL> {
    enum { BB = 18, NSB = 1, MINS = 0, UNITS = 1 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        *d = ld_f16(b);
        const DEV u8* qs = b + 2;
        int w[4];
        for (int k = 0; k < 4; k++) {
            int e = 4 * l + k;
            w[k] = IQ4_VALUES[nibble32(qs, e)];
        }
        return pack4(w[0], w[1], w[2], w[3]);
    }
    NO_MINS
};

template <> struct Fmt<T_IQ4_XS> {
    enum { BB = 136, NSB = 8, MINS = 0, UNITS = 1 };
    static FN int lane(const DEV u8* b, int s, int l, THR float* d) {
        u32 sh = b[2] | (b[3] << 8);
        const DEV u8* sl = b + 4;
        int ls = ((sl[s / 2] >> (4 * (s % 2))) & 0xF) | (((sh >> (2 * s)) & 3) << 4);
        *d = ld_f16(b) * (float)(ls - 32);
        const DEV u8* q = b + 8 + s * 16;
        int w[4];
        for (int k = 0; k < 4; k++) {
            int e = 4 * l + k;
            w[k] = IQ4_VALUES[nibble32(q, e)];
        }
        return pack4(w[0], w[1], w[2], w[3]);
    }
    NO_MINS
};

// ---------------------------------------------------------------- activations

// Quantize rows of x (m × k, k a multiple of 32) into Q8 blocks as Q8Row::quantize:
// one warp per 32-element block. qs: m × k i8; d, sum: m × k/32; half: m × k/32 × 2
// (Σa over each 16-element half, Q2_K's minimum terms).
KERNEL quantize_q8(P(const float*, x, 0), I(m, 1), I(k, 2), P(i8*, qs, 3), P(float*, d, 4), P(int*, sum, 5),
                   P(int*, half_, 6) IDS) {
    int warp = (BID_X * BDIM + TID) / 32;
    int t = TID % 32;
    int nb = k / 32;
    if (warp >= m * nb) return;
    float v = x[(i64)warp * 32 + t];
    float av = FABS(v);
    float amax = av > 0.0f ? av : 0.0f;  // a NaN never wins
    for (int o = 16; o > 0; o /= 2) {
        float other = SHFL_XOR(amax, o);
        amax = other > amax ? other : amax;
    }
    float dd = DIV(amax, 127.0f);
    float id = dd != 0.0f ? DIV(1.0f, dd) : 0.0f;
    float xv = v * id;
    int tr = f32_to_i32_rz(xv);
    float frac = xv - (float)tr;
    int q = tr + (frac >= 0.5f ? 1 : 0) - (frac <= -0.5f ? 1 : 0);
    q = q < -127 ? -127 : (q > 127 ? 127 : q);
    qs[(i64)warp * 32 + t] = (i8)q;
    int s = q;
    int h = q;
    for (int o = 8; o > 0; o /= 2) h += SHFL_XOR(h, o);
    for (int o = 16; o > 0; o /= 2) s += SHFL_XOR(s, o);
    if (t == 0) {
        d[warp] = dd;
        sum[warp] = s;
        half_[2 * warp] = h;
    }
    if (t == 16) half_[2 * warp + 1] = h;
}

// ---------------------------------------------------------------- matmul

#define MM_ROWS 8
#define MM_COLS 128

// y[r·n + c] = Σ_j … for r < m, c < n; block = MM_COLS threads, each one column over
// MM_ROWS rows (the unit's integer sum and its fma in one thread: no shuffles); grid
// (n/MM_COLS, m/MM_ROWS).
template <int T>
FN void mm_body(const DEV u8* w, int n, int k, const DEV i8* aq, const DEV float* ad, const DEV int* asum,
                const DEV int* ahalf, int m, DEV float* y IDS_DECL) {
    typedef Fmt<T> F;
    int c = BID_X * MM_COLS + TID;
    if (c >= n) return;
    int r0 = BID_Y * MM_ROWS;
    int rn = m - r0 < MM_ROWS ? m - r0 : MM_ROWS;
    int nblocks = k / (32 * F::NSB);
    int nj = k / 32;
    i64 row_bytes = (i64)nblocks * F::BB;
    const DEV u8* wrow = w + (i64)c * row_bytes;
    float acc[MM_ROWS];
    float macc[MM_ROWS];
#pragma unroll
    for (int i = 0; i < MM_ROWS; i++) {
        acc[i] = 0.0f;
        macc[i] = 0.0f;
    }
    for (int b = 0; b < nblocks; b++) {
        const DEV u8* blk = wrow + (i64)b * F::BB;
        for (int s = 0; s < F::NSB; s++) {
            int j = b * F::NSB + s;
            int w4[8];
            float d0 = 0.0f, d1 = 0.0f;
            for (int l = 0; l < 8; l++) {
                float dl;
                w4[l] = F::lane(blk, s, l, &dl);
                if (l == 0) d0 = dl;
                if (l == 4) d1 = dl;
            }
            float m0 = 0.0f, m1 = 0.0f;
            if (F::MINS > 0) F::mins(blk, s, &m0, &m1);
#pragma unroll
            for (int i = 0; i < MM_ROWS; i++) {
                if (i < rn) {
                    i64 r = r0 + i;
                    const DEV int* a4 = (const DEV int*)(aq + r * k + j * 32);
                    float da = ad[r * nj + j];
                    int p0 = 0, p1 = 0;
                    for (int l = 0; l < 4; l++) p0 = dp4a(w4[l], a4[l], p0);
                    for (int l = 4; l < 8; l++) p1 = dp4a(w4[l], a4[l], p1);
                    if (F::UNITS == 2) {
                        acc[i] = FMA(d0 * da, (float)p0, acc[i]);
                        acc[i] = FMA(d1 * da, (float)p1, acc[i]);
                    } else {
                        acc[i] = FMA(d0 * da, (float)(p0 + p1), acc[i]);
                    }
                    if (F::MINS == 1) {
                        macc[i] = FMA(m0 * da, (float)asum[r * nj + j], macc[i]);
                    }
                    if (F::MINS == 2) {
                        macc[i] = FMA(m0 * da, (float)ahalf[2 * (r * nj + j)], macc[i]);
                        macc[i] = FMA(m1 * da, (float)ahalf[2 * (r * nj + j) + 1], macc[i]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < MM_ROWS; i++) {
        if (i < rn) y[(i64)(r0 + i) * n + c] = acc[i] + macc[i];
    }
}

#define MM_KERNEL(name, T)                                                                              \
    KERNEL name(P(const u8*, w, 0), I(n, 1), I(k, 2), P(const i8*, aq, 3), P(const float*, ad, 4),     \
                P(const int*, asum, 5), P(const int*, ahalf, 6), I(m, 7), P(float*, y, 8) IDS) {        \
        mm_body<T>(w, n, k, aq, ad, asum, ahalf, m, y IDS_PASS);                                        \
    }

MM_KERNEL(mm_q4_0, T_Q4_0)
MM_KERNEL(mm_q4_1, T_Q4_1)
MM_KERNEL(mm_q5_0, T_Q5_0)
MM_KERNEL(mm_q5_1, T_Q5_1)
MM_KERNEL(mm_q8_0, T_Q8_0)
MM_KERNEL(mm_q2_k, T_Q2_K)
MM_KERNEL(mm_q3_k, T_Q3_K)
MM_KERNEL(mm_q4_k, T_Q4_K)
MM_KERNEL(mm_q5_k, T_Q5_K)
MM_KERNEL(mm_q6_k, T_Q6_K)
MM_KERNEL(mm_iq4_nl, T_IQ4_NL)
MM_KERNEL(mm_iq4_xs, T_IQ4_XS)

// Float weights (F32 = 0, F16 = 1, BF16 = 2): one sequential fma chain per output, as
// the CPU's `dot_f32`. One thread per (row, column).
FN float float_weight(const DEV u8* w, int ft, i64 i) {
    if (ft == 0) return ((const DEV float*)w)[i];
    if (ft == 1) return f16_to_f32(((const DEV u16*)w)[i]);
    return bf16_to_f32(((const DEV u16*)w)[i]);
}

KERNEL mm_float(P(const u8*, w, 0), I(ft, 1), I(n, 2), I(k, 3), P(const float*, x, 4), I(m, 5), P(float*, y, 6) IDS) {
    i64 idx = (i64)BID_X * BDIM + TID;
    if (idx >= (i64)m * n) return;
    int c = idx % n;
    i64 r = idx / n;
    float acc = 0.0f;
    for (int i = 0; i < k; i++) acc = FMA(x[r * k + i], float_weight(w, ft, (i64)c * k + i), acc);
    y[r * n + c] = acc;
}

// ---------------------------------------------------------------- embedding

// out[r·e + i] = row tokens[r] of the embedding table, dequantized (d·w + m, then the
// optional scale), one thread per element.
template <int T>
FN float dequant_at(const DEV u8* row, int i) {
    typedef Fmt<T> F;
    int j = i / 32, e = i % 32;
    const DEV u8* blk = row + (i64)(j / F::NSB) * F::BB;
    int s = j % F::NSB;
    float d;
    int w4 = F::lane(blk, s, e / 4, &d);
    int wv = (int)(i8)((w4 >> (8 * (e % 4))) & 0xff);
    float m0, m1;
    F::mins(blk, s, &m0, &m1);
    return d * (float)wv + (e < 16 ? m0 : m1);
}

#define EMBED_KERNEL(name, T)                                                                             \
    KERNEL name(P(const u8*, w, 0), L(row_bytes, 1), I(e, 2), P(const u32*, tokens, 3), I(rows, 4),       \
                I(scaled, 5), F(scale, 6), P(float*, out, 7) IDS) {                                       \
        i64 idx = (i64)BID_X * BDIM + TID;                                 \
        if (idx >= (i64)rows * e) return;                                                           \
        int r = idx / e, i = idx % e;                                                                     \
        float v = dequant_at<T>(w + (i64)tokens[r] * row_bytes, i);                                 \
        if (scaled) v = v * scale;                                                                        \
        out[idx] = v;                                                                                     \
    }

EMBED_KERNEL(embed_q4_0, T_Q4_0)
EMBED_KERNEL(embed_q4_1, T_Q4_1)
EMBED_KERNEL(embed_q5_0, T_Q5_0)
EMBED_KERNEL(embed_q5_1, T_Q5_1)
EMBED_KERNEL(embed_q8_0, T_Q8_0)
EMBED_KERNEL(embed_q2_k, T_Q2_K)
EMBED_KERNEL(embed_q3_k, T_Q3_K)
EMBED_KERNEL(embed_q4_k, T_Q4_K)
EMBED_KERNEL(embed_q5_k, T_Q5_K)
EMBED_KERNEL(embed_q6_k, T_Q6_K)
EMBED_KERNEL(embed_iq4_nl, T_IQ4_NL)
EMBED_KERNEL(embed_iq4_xs, T_IQ4_XS)

KERNEL embed_float(P(const u8*, w, 0), I(ft, 1), I(e, 2), P(const u32*, tokens, 3), I(rows, 4), I(scaled, 5),
                   F(scale, 6), P(float*, out, 7) IDS) {
    i64 idx = (i64)BID_X * BDIM + TID;
    if (idx >= (i64)rows * e) return;
    int r = idx / e, i = idx % e;
    float v = float_weight(w, ft, (i64)tokens[r] * e + i);
    if (scaled) v = v * scale;
    out[idx] = v;
}

// ---------------------------------------------------------------- per-row operations

// RMSNorm of `rows` rows of `width`, in place: one warp per row. Σx² in eight lanes
// (lane l: elements l, l+8, … in order), the fixed tree, then x·scale·w.
KERNEL rms_norm(P(float*, x, 0), I(rows, 1), I(width, 2), P(const float*, w, 3), F(eps, 4) IDS) {
    int row = BID_X * (BDIM / 32) + TID / 32;
    int t = TID % 32;
    if (row >= rows) return;
    DEV float* xr = x + (i64)row * width;
    float acc = 0.0f;
    if (t < 8)
        for (int i = t; i < width; i += 8) acc = acc + xr[i] * xr[i];
    float a[8];
#pragma unroll
    for (int q = 0; q < 8; q++) a[q] = SHFL(acc, q);
    float ms = DIV(tree8(a), (float)width);
    float scale = DIV(1.0f, SQRT_RN(ms + eps));
    for (int i = t; i < width; i += 32) xr[i] = xr[i] * scale * w[i];
}

// x[r·width + i] += b[i]
KERNEL add_bias(P(float*, x, 0), L(total, 1), I(width, 2), P(const float*, b, 3) IDS) {
    i64 idx = (i64)BID_X * BDIM + TID;
    if (idx < total) x[idx] = x[idx] + b[idx % width];
}

// x += y
KERNEL add_into(P(float*, x, 0), P(const float*, y, 1), L(total, 2) IDS) {
    i64 idx = (i64)BID_X * BDIM + TID;
    if (idx < total) x[idx] = x[idx] + y[idx];
}

// g = act(g)·u (SiLU, or GELU-tanh when gelu != 0)
KERNEL gated_act(P(float*, g, 0), P(const float*, u, 1), L(total, 2), I(gelu, 3) IDS) {
    i64 idx = (i64)BID_X * BDIM + TID;
    if (idx < total) {
        float a = gelu ? t_gelu(g[idx]) : t_silu(g[idx]);
        g[idx] = a * u[idx];
    }
}

// RoPE for `heads` heads of head_dim per row at the row's position: `tab` holds, per
// position and rotated pair, (sin, cos) already scaled, computed on the host by the
// CPU's own function. style 0: interleaved pairs (2i, 2i+1); 1: halves (i, i+dims/2).
KERNEL rope(P(float*, x, 0), I(rows, 1), I(heads, 2), I(head_dim, 3), I(dims, 4), I(style, 5), P(const int*, pos, 6),
            P(const float*, tab, 7) IDS) {
    int half_ = dims / 2;
    i64 idx = (i64)BID_X * BDIM + TID;
    if (idx >= (i64)rows * heads * half_) return;
    int i = idx % half_;
    i64 rh = idx / half_;
    int row = rh / heads;
    DEV float* h = x + rh * head_dim;
    const DEV float* sc = tab + ((i64)pos[row] * half_ + i) * 2;
    float sn = sc[0], cs = sc[1];
    int a = style == 0 ? 2 * i : i;
    int b = style == 0 ? 2 * i + 1 : i + half_;
    float x0 = h[a], x1 = h[b];
    h[a] = x0 * cs - x1 * sn;
    h[b] = x0 * sn + x1 * cs;
}

// Write each row's k and v into its slot at its position. Cache layout (as the CPU's):
// [slot][layer][position][dim]; f16 = 1 stores IEEE halves rounded to nearest even.
KERNEL kv_write(P(const float*, k, 0), P(const float*, v, 1), I(rows, 2), I(kdim, 3), I(vdim, 4), P(const int*, slot, 5),
                P(const int*, pos, 6), I(layer, 7), I(n_layer, 8), I(cap, 9), I(f16, 10), P(u8*, kc, 11),
                P(u8*, vc, 12) IDS) {
    i64 idx = (i64)BID_X * BDIM + TID;
    int width = kdim + vdim;
    if (idx >= (i64)rows * width) return;
    int r = idx / width, e = idx % width;
    i64 base = ((i64)slot[r] * n_layer + layer) * cap + pos[r];
    if (e < kdim) {
        float val = k[(i64)r * kdim + e];
        i64 at = base * kdim + e;
        if (f16) ((DEV u16*)kc)[at] = f32_to_f16(val);
        else ((DEV float*)kc)[at] = val;
    } else {
        e -= kdim;
        float val = v[(i64)r * vdim + e];
        i64 at = base * vdim + e;
        if (f16) ((DEV u16*)vc)[at] = f32_to_f16(val);
        else ((DEV float*)vc)[at] = val;
    }
}

FN float kv_at(const DEV u8* c, int f16, i64 i) {
    return f16 ? f16_to_f32(((const DEV u16*)c)[i]) : ((const DEV float*)c)[i];
}

// Attention of one query head of one row (a block per (row, head)) over positions
// start..=pos of its slot, as ops::attend_heads: scores (8-lane dot, tree, ·scale),
// optional soft-capping, max, exp(x − max), Σ in eight position lanes and the tree, then
// per dimension the weighted value sum in position order. scores: scratch of
// rows × heads × cap.
#define ATT_THREADS 128
KERNEL attention(P(const float*, q, 0), I(heads, 1), I(kv_heads, 2), I(d, 3), P(const int*, slot, 4),
                 P(const int*, pos, 5), I(layer, 6), I(n_layer, 7), I(cap, 8), I(window, 9), I(f16, 10),
                 P(const u8*, kc, 11), P(const u8*, vc, 12), F(scale, 13), F(softcap, 14), P(float*, scores, 15),
                 P(float*, out, 16) IDS) {
    SHARED float qs[512];
    SHARED float red[ATT_THREADS];
    SHARED float inv_s;
    int row = BID_X / heads, h = BID_X % heads;
    int t = TID;
    int p = pos[row];
    int start = window > 0 ? (p + 1 > window ? p + 1 - window : 0) : 0;
    int len = p + 1 - start;
    int group = heads / kv_heads;
    int kvh = h / group;
    int stride = kv_heads * d;
    i64 base = ((i64)slot[row] * n_layer + layer) * cap;
    const DEV float* qh = q + ((i64)row * heads + h) * d;
    for (int i = t; i < d; i += ATT_THREADS) qs[i] = qh[i];
    BARRIER();
    DEV float* s = scores + ((i64)row * heads + h) * cap;
    int whole = d / 8 * 8;
    for (int i = t; i < len; i += ATT_THREADS) {
        i64 kr = (base + start + i) * stride + kvh * d;
        float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int c = 0; c < whole; c += 8) {
#pragma unroll
            for (int l = 0; l < 8; l++) a[l] = a[l] + qs[c + l] * kv_at(kc, f16, kr + c + l);
        }
        for (int c = whole; c < d; c++) a[c - whole] = a[c - whole] + qs[c] * kv_at(kc, f16, kr + c);
        float v = tree8(a) * scale;
        if (softcap != 0.0f) v = softcap * t_tanh(DIV(v, softcap));
        s[i] = v;
    }
    BARRIER();
    float mx = -AS_FLOAT(0x7f800000);
    for (int i = t; i < len; i += ATT_THREADS) mx = FMAX(mx, s[i]);
    red[t] = mx;
    BARRIER();
    for (int o = ATT_THREADS / 2; o > 0; o /= 2) {
        if (t < o) red[t] = FMAX(red[t], red[t + o]);
        BARRIER();
    }
    mx = red[0];
    for (int i = t; i < len; i += ATT_THREADS) s[i] = t_exp(s[i] - mx);
    BARRIER();
    if (t < 32) {
        float acc = 0.0f;
        if (t < 8)
            for (int i = t; i < len; i += 8) acc = acc + s[i];
        float a[8];
#pragma unroll
        for (int l = 0; l < 8; l++) a[l] = SHFL(acc, l);
        if (t == 0) inv_s = DIV(1.0f, tree8(a));
    }
    BARRIER();
    float inv = inv_s;
    DEV float* o = out + ((i64)row * heads + h) * d;
    for (int dd = t; dd < d; dd += ATT_THREADS) {
        float acc = 0.0f;
        for (int i = 0; i < len; i++) {
            float pr = s[i] * inv;
            acc = acc + pr * kv_at(vc, f16, (base + start + i) * stride + kvh * d + dd);
        }
        o[dd] = acc;
    }
}

// hs[j] = x[want[j]] (rows of width e)
KERNEL gather_rows(P(const float*, x, 0), P(const int*, want, 1), I(n, 2), I(e, 3), P(float*, hs, 4) IDS) {
    i64 idx = (i64)BID_X * BDIM + TID;
    if (idx >= (i64)n * e) return;
    int j = idx / e, i = idx % e;
    hs[idx] = x[(i64)want[j] * e + i];
}

// logits = cap·tanh(logits/cap)
KERNEL softcap_rows(P(float*, x, 0), L(total, 1), F(cap, 2) IDS) {
    i64 idx = (i64)BID_X * BDIM + TID;
    if (idx < total) x[idx] = cap * t_tanh(DIV(x[idx], cap));
}

// The elementary functions on their own, for the self-test: out[4i..4i+3] = exp, tanh,
// silu, gelu of x[i].
KERNEL probe_functions(P(const float*, x, 0), I(n, 1), P(float*, out, 2) IDS) {
    int i = BID_X * BDIM + TID;
    if (i >= n) return;
    out[4 * i] = t_exp(x[i]);
    out[4 * i + 1] = t_tanh(x[i]);
    out[4 * i + 2] = t_silu(x[i]);
    out[4 * i + 3] = t_gelu(x[i]);
}

// Greedy choice per row, as sampling::argmax: the first index of the largest value
// (a NaN never wins; a row of −∞/NaN gives 0). One block of 256 per row.
KERNEL argmax_rows(P(const float*, x, 0), I(rows, 1), I(n, 2), P(u32*, out, 3) IDS) {
    SHARED float bv[256];
    SHARED int bi[256];
    int row = BID_X, t = TID;
    if (row >= rows) return;
    const DEV float* xr = x + (i64)row * n;
    float best = -AS_FLOAT(0x7f800000);
    int idx = 0x7fffffff;
    for (int i = t; i < n; i += 256) {
        float v = xr[i];
        if (v > best) {  // strided: the first larger value in this thread's order
            best = v;
            idx = i;
        }
    }
    bv[t] = best;
    bi[t] = idx;
    BARRIER();
    for (int o = 128; o > 0; o /= 2) {
        if (t < o) {
            float v = bv[t + o];
            int i = bi[t + o];
            if (v > bv[t] || (v == bv[t] && i < bi[t])) {
                bv[t] = v;
                bi[t] = i;
            }
        }
        BARRIER();
    }
    if (t == 0) out[row] = bi[0] == 0x7fffffff ? 0u : (u32)bi[0];
}
