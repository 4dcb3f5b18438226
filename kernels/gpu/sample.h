// Sampling on the GPU: kernels/src/sampling.rs `sample`, operation for operation, so a
// device-drawn token is the token the CPU draws from the same logits. Written in the
// dialect of forward.h but with f64 arithmetic (the sampler's own `exp` and its f64
// sums), so only the CUDA backend compiles it; Metal (no f64) samples on the host.
//
// Per row r (one block each): fp[8r..] = {temperature, top_p, min_p, repetition,
// frequency, presence, 0, 0}; ip[8r..] = {top_k, rep_off, rep_len, pen_off, pen_len,
// bias_off, bias_len, 0} index `toks`/`vals`: repetition entries are the distinct seen
// tokens, penalty entries (token, count) of the generated ones, bias entries (token,
// bias) in the request's order; u[r] is the row's uniform draw (Philox on the host).
// (CUDA only, so a pointer to shared memory is written as a plain pointer.)

#define SAMPLE_THREADS 256
#define MAX_WALK 1024
#define UNDECIDED 0xffffffffu

// kernels/src/math.rs `exp`; tab = the 14 Taylor coefficients (highest first), then
// ln 2, its high and low parts.
DEVFN double t_exp64(double x, const DEV double* tab) {
    if (x != x) return x;
    if (x < -708.0) return 0.0;
    if (x > 709.0) return AS_DOUBLE(0x7ff0000000000000LL);
    const double MAGIC = 6755399441055744.0;
    double n = (x / tab[14] + MAGIC) - MAGIC;
    double r = (x - n * tab[15]) - n * tab[16];
    double r2 = r * r;
    double r7 = (r2 * r2) * r2 * r;
    double lo = 0.0, hi = 0.0;
    for (int i = 7; i < 14; i++) lo = lo * r + tab[i];
    for (int i = 0; i < 7; i++) hi = hi * r + tab[i];
    double p = lo + r7 * hi;
    return p * AS_DOUBLE(((i64)n + 1023) << 52);
}

// Copy each row into `y` and apply its penalties and logit bias there, in the CPU's
// order (repetition, then presence/frequency, then bias in request order).
KERNEL sample_penalize(P(const float*, x, 0), I(rows, 1), I(n, 2), P(const float*, fp, 3), P(const int*, ip, 4),
                       P(const u32*, toks, 5), P(const float*, vals, 6), P(float*, y, 7) IDS) {
    int row = BID_X, t = TID;
    if (row >= rows) return;
    const DEV float* xr = x + (i64)row * n;
    DEV float* yr = y + (i64)row * n;
    for (int i = t; i < n; i += BDIM) yr[i] = xr[i];
    BARRIER();
    if (t != 0) return;
    const DEV float* f = fp + 8 * row;
    const DEV int* p = ip + 8 * row;
    float rep = f[3], freq = f[4], pres = f[5];
    for (int k = p[1]; k < p[1] + p[2]; k++) {
        float l = yr[toks[k]];
        yr[toks[k]] = l > 0.0f ? DIV(l, rep) : l * rep;
    }
    for (int k = p[3]; k < p[3] + p[4]; k++) yr[toks[k]] = yr[toks[k]] - (vals[k] * freq + pres);
    for (int k = p[5]; k < p[5] + p[6]; k++) yr[toks[k]] = yr[toks[k]] + vals[k];
}

// The sort key of the CPU's order (logit descending by total order, then id
// ascending) as one integer: larger = earlier.
FN u64 order_key(float v, u32 i) {
    int b = AS_INT(v);
    b ^= (int)(((u32)(b >> 31)) >> 1);
    return ((u64)((u32)b ^ 0x80000000u) << 32) | (u64)(0xffffffffu - i);
}

// The next candidate in the order after `prev` (the largest key below it), by the
// whole block; ~0 when none is left.
FN u64 next_in_order(const DEV float* xr, int n, u64 prev, u64* red, int t) {
    u64 best = 0;
    bool found = false;
    for (int i = t; i < n; i += SAMPLE_THREADS) {
        float v = xr[i];
        if (v != v) continue;
        u64 k = order_key(v, (u32)i);
        if (k < prev && (!found || k > best)) {
            best = k;
            found = true;
        }
    }
    red[t] = found ? best + 1 : 0;  // 0: nothing (a key + 1 is never 0 here)
    BARRIER();
    for (int o = SAMPLE_THREADS / 2; o > 0; o /= 2) {
        if (t < o && red[t + o] > red[t]) red[t] = red[t + o];
        BARRIER();
    }
    u64 r = red[0];
    BARRIER();
    return r == 0 ? ~(u64)0 : r - 1;
}

// One token per row with temperature > 0 (rows at 0 are left to argmax_rows): the
// tempered softmax with the CPU's exp and index-order f64 normaliser, then top-k,
// top-p and min-p over the sorted candidates and one draw, or (nothing cut) the walk
// down the order until the cumulative probability passes u·Σp. A walk longer than
// MAX_WALK leaves the row UNDECIDED for the host. e: rows × n f64 scratch; ids, qs:
// rows × MAX_WALK.
KERNEL sample_rows(P(const float*, x, 0), I(rows, 1), I(n, 2), P(const float*, fp, 3), P(const int*, ip, 4),
                   P(const double*, u, 5), P(const double*, tab, 6), P(double*, e, 7), P(u32*, ids, 8),
                   P(double*, qs, 9), P(u32*, out, 10) IDS) {
    SHARED u64 red[SAMPLE_THREADS];
    SHARED float fred[SAMPLE_THREADS];
    SHARED int cred[SAMPLE_THREADS];
    SHARED double z_s;
    SHARED int state_s;  // 0 walking, 1 done
    int row = BID_X, t = TID;
    if (row >= rows) return;
    float temp = fp[8 * row];
    if (temp == 0.0f) return;
    const DEV float* xr = x + (i64)row * n;
    DEV double* er = e + (i64)row * n;
    DEV u32* idr = ids + (i64)row * MAX_WALK;
    DEV double* qr = qs + (i64)row * MAX_WALK;
    // Largest logit and the number of candidates (NaN is never one).
    float mx = -AS_FLOAT(0x7f800000);
    int cnt = 0;
    for (int i = t; i < n; i += SAMPLE_THREADS) {
        float v = xr[i];
        if (v != v) continue;
        cnt++;
        if (v > mx) mx = v;
    }
    fred[t] = mx;
    cred[t] = cnt;
    BARRIER();
    for (int o = SAMPLE_THREADS / 2; o > 0; o /= 2) {
        if (t < o) {
            if (fred[t + o] > fred[t]) fred[t] = fred[t + o];
            cred[t] += cred[t + o];
        }
        BARRIER();
    }
    mx = fred[0];
    int ncand = cred[0];
    if (ncand == 0) {
        if (t == 0) out[row] = 0;
        return;
    }
    double inv_t = 1.0 / (double)temp;
    for (int i = t; i < n; i += SAMPLE_THREADS) {
        float v = xr[i];
        er[i] = v == v ? t_exp64(((double)v - (double)mx) * inv_t, tab) : 0.0;
    }
    BARRIER();
    int top_k = ip[8 * row];
    float top_p = fp[8 * row + 1], min_p = fp[8 * row + 2];
    int keep = top_k > 0 ? (top_k < ncand ? top_k : ncand) : ncand;
    bool untruncated = keep == ncand && top_p >= 1.0f && min_p <= 0.0f;
    double target = 0.0;
    if (t == 0) {
        double z = 0.0;
        for (int i = 0; i < n; i++)
            if (xr[i] == xr[i]) z = z + er[i];
        z_s = z;
        if (untruncated) {
            double total = 0.0;
            for (int i = 0; i < n; i++)
                if (xr[i] == xr[i]) total = total + er[i] / z;
            target = u[row] * total;
        }
        state_s = 0;
    }
    BARRIER();
    double z = z_s;
    u64 prev = ~(u64)0;
    double cum = 0.0, floor = 0.0;
    int taken = 0, cut = 0;
    for (int k = 0;; k++) {
        if (k == MAX_WALK) {
            if (t == 0) out[row] = UNDECIDED;
            return;
        }
        u64 key = next_in_order(xr, n, prev, red, t);
        prev = key;
        u32 id = 0xffffffffu - (u32)(key & 0xffffffffu);
        if (t == 0) {
            double q = er[id] / z;
            if (untruncated) {
                cum = cum + q;
                if (target < cum || k + 1 == ncand) {
                    out[row] = id;
                    state_s = 1;
                }
            } else {
                if (min_p > 0.0f && k == 0) floor = q * (double)min_p;
                if (min_p > 0.0f && k > 0 && q < floor) {
                    cut = k;
                    state_s = 1;
                } else {
                    idr[k] = id;
                    qr[k] = q;
                    taken = k + 1;
                    cum = cum + q;
                    if ((top_p < 1.0f && cum >= (double)top_p) || taken == keep) {
                        cut = taken;
                        state_s = 1;
                    }
                }
            }
        }
        BARRIER();
        int done = state_s;
        BARRIER();
        if (done) break;
    }
    if (t != 0 || untruncated) return;
    // The draw among the first `cut` candidates.
    double total = 0.0;
    for (int j = 0; j < cut; j++) total = total + qr[j];
    double tg = u[row] * total;
    double c = 0.0;
    for (int j = 0; j < cut; j++) {
        c = c + qr[j];
        if (tg < c) {
            out[row] = idr[j];
            return;
        }
    }
    out[row] = idr[cut - 1];
}
