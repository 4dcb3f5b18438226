//! The small per-row operations of a transformer forward pass: RMSNorm, RoPE,
//! activation functions and attention over one sequence's KV cache.
//!
//! Reductions use eight independent partial sums combined in a fixed tree: the
//! compiler vectorises them (lanes are independent), and the result is the same on
//! every machine and for every batch, since each row is computed on its own.

/// `fn $name(args)` running `$body` built for AVX-512 F (`$wide`) or AVX2 (`$avx2`) where
/// the CPU has them, else the baseline build (four lanes on x86-64). Only for lane-wise
/// loops, which do the same operations on every number at any width and so give the
/// same bits; `$body` must be `#[inline(always)]` and free of closures (a closure in a
/// `#[target_feature]` function is compiled without the features).
macro_rules! vector_builds {
    ($(#[$m:meta])* $vis:vis fn $name:ident / $wide:ident / $avx2:ident
        = $body:ident($($a:ident: $t:ty),*)) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the feature was just detected.
                    unsafe { $wide($($a),*) };
                    return;
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the feature was just detected.
                    unsafe { $avx2($($a),*) };
                    return;
                }
            }
            $body($($a),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $wide($($a: $t),*) {
            $body($($a),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2($($a: $t),*) {
            $body($($a),*)
        }
    };
}

/// Σ a_i·b_i with 8 fixed partial sums.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_body(a, b)
}

/// `dot`'s loop, always inlined, so that a build for wider vectors (`rms_norm_avx512`)
/// runs it with its own instructions rather than calling the baseline build.
#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = [0f32; 8];
    let (ca, cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    // Element 8·chunks + i goes to lane i.
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    tree8(&acc)
}

#[inline]
fn tree8(acc: &[f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

#[inline(always)]
fn sum_squares(x: &[f32]) -> f32 {
    dot_body(x, x)
}

vector_builds!(
    /// y = x / sqrt(mean(x²) + eps) · w, in place. Built for AVX-512 and AVX2 where the CPU
    /// has them: the eight partial sums and the scaling are lane-wise, so a wider build does
    /// the same operations on every number (same bits; the baseline build is four lanes).
    pub fn rms_norm / rms_norm_avx512 / rms_norm_avx2
    = rms_norm_body(x: &mut [f32], w: &[f32], eps: f32));

#[inline(always)]
fn rms_norm_body(x: &mut [f32], w: &[f32], eps: f32) {
    let ms = sum_squares(x) / x.len() as f32;
    let scale = 1.0 / (ms + eps).sqrt();
    for (v, g) in x.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (x[2i], x[2i+1]): llama.cpp's LLAMA_ROPE_TYPE_NORM (llama).
    Interleaved,
    /// Halves (x[i], x[i+d/2]): LLAMA_ROPE_TYPE_NEOX (qwen2, gemma3).
    Halves,
}

/// How a model stretches RoPE beyond its training context (GGUF `rope.scaling.*`,
/// `rope_freqs.weight`), as llama.cpp's `ggml_rope_ext` applies it.
#[derive(Debug, Clone, Default)]
pub struct RopeScaling {
    /// Per rotated pair, a divisor of its frequency (Llama 3's `rope_freqs.weight`,
    /// Phi-3's `rope_factors_*`).
    pub freq_factors: Option<Vec<f32>>,
    /// Positions are multiplied by this (1/factor for linear and YaRN scaling).
    pub freq_scale: f32,
    /// YaRN: the context the model was trained on, and the ramp's β bounds.
    pub yarn: Option<Yarn>,
    /// A factor on sin and cos (llama.cpp's attn_factor); 1 for none.
    pub attn_factor: f32,
}

#[derive(Debug, Clone, Copy)]
pub struct Yarn {
    pub original_context: usize,
    pub beta_fast: f32,
    pub beta_slow: f32,
}

impl RopeScaling {
    pub fn none() -> Self {
        RopeScaling {
            freq_factors: None,
            freq_scale: 1.0,
            yarn: None,
            attn_factor: 1.0,
        }
    }
}

/// Precomputed inverse frequencies for one head size and base.
#[derive(Debug, Clone)]
pub struct Rope {
    pub style: RopeStyle,
    pub dims: usize,
    inv_freq: Vec<f32>,
    /// Multiplies sin and cos (YaRN's magnitude correction × attn_factor); 1 usually.
    mscale: f32,
}

impl Rope {
    /// `dims` rotated dimensions (≤ head size), `base` the frequency base.
    pub fn new(style: RopeStyle, dims: usize, base: f32) -> Self {
        Self::scaled(style, dims, base, &RopeScaling::none())
    }

    /// RoPE with frequency factors, linear or YaRN scaling. Each pair i turns at
    /// θ_i = pos · base^(−2i/d) / factor_i, blended for YaRN between the interpolated
    /// (θ·freq_scale) and extrapolated (θ) angle by llama.cpp's ramp over the
    /// correction dimensions; sin and cos are then scaled by
    /// attn_factor · (1 + 0.1·ln(1/freq_scale)) under YaRN.
    pub fn scaled(style: RopeStyle, dims: usize, base: f32, sc: &RopeScaling) -> Self {
        use crate::math::{ln, powf};
        let half = dims / 2;
        let ramp_dims = sc.yarn.map(|y| {
            // ggml_rope_yarn_corr_dims.
            let corr = |rot: f32| {
                dims as f64
                    * ln(y.original_context as f64 / (rot as f64 * 2.0 * std::f64::consts::PI))
                    / (2.0 * ln(base as f64))
            };
            let lo = corr(y.beta_fast).floor().max(0.0);
            let hi = corr(y.beta_slow).ceil().min(dims as f64 - 1.0);
            (lo, hi)
        });
        // base^(−2i/d), through teacher's own f64 functions (same bits on every libm).
        let inv_freq = (0..half)
            .map(|i| {
                let mut f = powf(base as f64, -(2.0 * i as f64) / dims as f64);
                if let Some(ff) = &sc.freq_factors {
                    f /= ff[i] as f64;
                }
                let fs = sc.freq_scale as f64;
                let mix = match ramp_dims {
                    Some((lo, hi)) => {
                        let y = (i as f64 - lo) / (hi - lo).max(0.001);
                        1.0 - y.clamp(0.0, 1.0)
                    }
                    None => 0.0,
                };
                (f * (fs * (1.0 - mix) + mix)) as f32
            })
            .collect();
        let mut mscale = sc.attn_factor as f64;
        if sc.yarn.is_some() && sc.freq_scale != 1.0 {
            mscale *= 1.0 + 0.1 * ln(1.0 / sc.freq_scale as f64);
        }
        Rope {
            style,
            dims,
            inv_freq,
            mscale: mscale as f32,
        }
    }

    /// (sin θ, cos θ) of rotated pair `i` at position `pos`, scaled as `apply` uses them
    /// (the GPU backends take tables of these, so they rotate by the same numbers).
    #[inline]
    pub fn sin_cos(&self, pos: usize, i: usize) -> (f32, f32) {
        let theta = pos as f32 * self.inv_freq[i];
        let (sin, cos) = crate::math::sin_cos(theta as f64);
        (sin as f32 * self.mscale, cos as f32 * self.mscale)
    }

    /// Whether two ropes rotate by the same angles (layers can then share a table).
    pub fn same_angles(&self, other: &Rope) -> bool {
        self.dims == other.dims
            && self.mscale.to_bits() == other.mscale.to_bits()
            && self.inv_freq.len() == other.inv_freq.len()
            && self
                .inv_freq
                .iter()
                .zip(&other.inv_freq)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }

    /// Rotate every head of `x` (heads × head_dim) for position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        // The angles depend on the position only: computed once for all heads.
        let mut angles = Vec::with_capacity(self.dims / 2);
        self.angles(pos, &mut angles);
        self.apply_angles(x, head_dim, &angles);
    }

    /// Append position `pos`'s (sin, cos) of every rotated pair to `out` (a table that
    /// `apply_angles` then uses for any number of heads and layers with the same angles).
    pub fn angles(&self, pos: usize, out: &mut Vec<(f32, f32)>) {
        out.extend((0..self.dims / 2).map(|i| self.sin_cos(pos, i)));
    }

    /// `apply` with the position's angles from `angles` (as `angles` writes them). Each
    /// pair is rotated by its own products and differences whatever the order, so the
    /// builds for AVX-512 and AVX2 (head by head, pairs side by side) give the same bits.
    pub fn apply_angles(&self, x: &mut [f32], head_dim: usize, angles: &[(f32, f32)]) {
        rope(self.style, x, head_dim, &angles[..self.dims / 2])
    }
}

vector_builds!(
    /// `Rope::apply_angles`' rotation, built per x86 vector width.
    fn rope / rope_avx512 / rope_avx2
    = rope_body(style: RopeStyle, x: &mut [f32], head_dim: usize, angles: &[(f32, f32)]));

/// Rotate the first 2·angles.len() dimensions of every head: pair i is (x[2i], x[2i+1])
/// or (x[i], x[i + half]).
#[inline(always)]
fn rope_body(style: RopeStyle, x: &mut [f32], head_dim: usize, angles: &[(f32, f32)]) {
    let half = angles.len();
    for head in x.chunks_exact_mut(head_dim) {
        match style {
            RopeStyle::Interleaved => {
                for (p, &(sin, cos)) in head[..2 * half].chunks_exact_mut(2).zip(angles) {
                    let (x0, x1) = (p[0], p[1]);
                    p[0] = x0 * cos - x1 * sin;
                    p[1] = x0 * sin + x1 * cos;
                }
            }
            RopeStyle::Halves => {
                let (lo, hi) = head[..2 * half].split_at_mut(half);
                for ((a, b), &(sin, cos)) in lo.iter_mut().zip(hi.iter_mut()).zip(angles) {
                    let (x0, x1) = (*a, *b);
                    *a = x0 * cos - x1 * sin;
                    *b = x0 * sin + x1 * cos;
                }
            }
        }
    }
}

/// e^x in plain f32 arithmetic (within 2 ulp for normal results; 0 < e^x for
/// x ≥ −87): the same bits on every platform, where the system libm's `exp` may differ,
/// and branch-free, so loops over it vectorise.
#[inline]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n·LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to the nearest integer without a rounding instruction.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor to degree 6 on |r| ≤ ln2/2 (remainder below 2^-23 relative).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n (an integer in −126..=127) sits in t's low mantissa bits, t = 1.5·2^23 + n: its
    // bits minus ROUND's are n, with integer operations that vectorise (a saturating
    // `n as i32` is converted lane by lane).
    let n = t.to_bits() as i32 - ROUND.to_bits() as i32;
    p * f32::from_bits(((n + 127) << 23) as u32)
}

#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// tanh(x) = 1 − 2/(e^{2x} + 1) with the platform-independent exp (same bits on every
/// platform; saturates to ±1 like tanh).
#[inline]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// GELU, tanh approximation (gelu_pytorch_tanh, as Gemma uses).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    // tanh(y) = 1 − 2/(e^{2y} + 1), with the platform-independent exp.
    let y = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    0.5 * x * (2.0 - 2.0 / (exp(2.0 * y) + 1.0))
}

vector_builds!(
    /// The gated feed-forward activation in place: gate[i] = act(gate[i]) · up[i], with
    /// act GELU-tanh (`gelu`) or SiLU. Element by element, so a build for wider vectors
    /// computes the same operations on every number and gives the same bits; the loop,
    /// `exp` included, vectorises, and is built for AVX-512 and AVX2 where the CPU has them
    /// (the baseline x86-64 build is four lanes wide).
    pub fn gated_activation / gated_activation_avx512 / gated_activation_avx2
    = gated_activation_body(gate: &mut [f32], up: &[f32], gelu: bool));

/// (A loop, not a closure: a closure inside a `#[target_feature]` function is compiled
/// without the features.)
#[inline(always)]
fn gated_activation_body(gate: &mut [f32], up: &[f32], gelu: bool) {
    assert_eq!(gate.len(), up.len(), "gate and up rows differ in length");
    if gelu {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = gelu_tanh(*g) * u;
        }
    } else {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = silu(*g) * u;
        }
    }
}

/// Attention of one query row over positions `start..=end` of one sequence's cache.
///
/// `q`: n_head × head_dim; `k_cache`/`v_cache`: positions × (n_head_kv × head_dim);
/// `out`: n_head × head_dim; `scores`: scratch of at least end+1.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    start: usize,
    end: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let group = n_head / n_head_kv;
    for kvh in 0..n_head_kv {
        let at = kvh * group * head_dim..(kvh + 1) * group * head_dim;
        let head = Head {
            k: KvSlice::F32(k_cache),
            v: KvSlice::F32(v_cache),
            kv_stride: n_head_kv * head_dim,
            kv_head: kvh,
            head_dim,
            softcap: 0.0,
        };
        attend_heads(
            &q[at.clone()],
            &head,
            start,
            end,
            scale,
            scores,
            &mut out[at],
        );
    }
}

/// How a KV cache stores its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvType {
    F32,
    /// IEEE half precision (llama.cpp's default cache type): half the memory and the
    /// memory traffic of attention, values rounded to nearest on the way in.
    F16,
    /// 8-bit integers in blocks of 32 along a head's numbers, each block with an f32
    /// scale (d = max|x|/127, x ≈ d·q: ggml's q8_0 quantization, whose scale is
    /// rounded to f16): 36 bytes per 32 numbers, 56 % of f16's memory and traffic. Head
    /// widths must be multiples of 32. Attention reads each number as the one f32
    /// product d·q and from there runs as on any other cache.
    Q8,
}

impl KvType {
    /// Bytes of `n` numbers (`n` a multiple of 32 for `Q8`).
    pub fn bytes_of(self, n: usize) -> usize {
        match self {
            KvType::F32 => 4 * n,
            KvType::F16 => 2 * n,
            KvType::Q8 => n + n.div_ceil(32) * 4,
        }
    }

    /// The name users give it (`--kv-type`) and manifests record.
    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
            KvType::Q8 => "q8",
        }
    }
}

/// One layer of one sequence's keys or values, positions × (n_head_kv × head_dim).
#[derive(Debug, Clone, Copy)]
pub enum KvSlice<'a> {
    F32(&'a [f32]),
    /// f16 bit patterns.
    F16(&'a [u16]),
    /// `KvType::Q8`: the numbers, and one scale per 32 of them (number i's is d[i / 32]).
    Q8 {
        q: &'a [i8],
        d: &'a [f32],
    },
}

impl KvSlice<'_> {
    /// How many numbers it holds.
    pub fn len(&self) -> usize {
        match self {
            KvSlice::F32(x) => x.len(),
            KvSlice::F16(x) => x.len(),
            // (Those with their scale.)
            KvSlice::Q8 { q, d } => q.len().min(d.len() * 32),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where one KV head lives in a sequence's cache.
pub struct Head<'a> {
    pub k: KvSlice<'a>,
    pub v: KvSlice<'a>,
    /// Floats per position (n_head_kv × head_dim).
    pub kv_stride: usize,
    pub kv_head: usize,
    pub head_dim: usize,
    /// Gemma 2's attention logit soft-capping: scores become cap·tanh(score/cap)
    /// before the softmax; 0 leaves them as they are.
    pub softcap: f32,
}

/// f32 → f16 bits, rounded to nearest even (for filling an f16 cache).
pub fn f16_row(src: &[f32], dst: &mut [u16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = half::f16::from_f32(*s).to_bits();
    }
}

/// f16 bits → f32, exactly, in integer and one exact multiply (so it vectorises):
/// shift the exponent and mantissa into place and rescale by 2^112, which also turns
/// f16 subnormals into the right normal f32; infinities and NaN keep an all-ones
/// exponent.
#[inline(always)]
fn widen(h: u16) -> f32 {
    let h = h as u32;
    let mag = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits(0x7780_0000); // 2^112
    let special = if h & 0x7c00 == 0x7c00 { 0x7f80_0000 } else { 0 };
    f32::from_bits(mag.to_bits() | special | ((h & 0x8000) << 16))
}

/// Widen whole groups of eight with F16C (exact, as `widen`); returns how many.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn widen_f16c(src: &[u16], buf: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let whole = src.len() / 8 * 8;
    let mut i = 0;
    while i < whole {
        // SAFETY: only reached from the avx2+f16c build; i + 8 ≤ src.len() ≤ buf.len().
        unsafe {
            let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
            _mm256_storeu_ps(buf.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        }
        i += 8;
    }
    whole
}

/// The `d` numbers at offset `at` of a cache, as f32 (f16 rows are widened into `buf`,
/// q8 rows become d·q there: this is the definition of what a q8 cache holds).
#[inline(always)]
fn kv_row<'s, const AVX: bool>(
    c: KvSlice<'s>,
    at: usize,
    d: usize,
    buf: &'s mut [f32],
) -> &'s [f32] {
    match c {
        KvSlice::F32(x) => &x[at..at + d],
        KvSlice::F16(x) => {
            let src = &x[at..at + d];
            #[cfg(target_arch = "x86_64")]
            let done = if AVX { widen_f16c(src, buf) } else { 0 };
            #[cfg(not(target_arch = "x86_64"))]
            let done = 0;
            for (o, &h) in buf[done..d].iter_mut().zip(&src[done..]) {
                *o = widen(h);
            }
            &buf[..d]
        }
        KvSlice::Q8 { q, d: scale } => {
            for (j, (o, &x)) in buf[..d].iter_mut().zip(&q[at..at + d]).enumerate() {
                *o = scale[(at + j) / 32] * x as f32;
            }
            &buf[..d]
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod attend_x86;

/// Whether attention uses 512-bit registers: where the CPU has AVX-512 F and the
/// matmul kernels' instruction set (`TEACHER_ISA`) is not capped below AVX-512. Every
/// build gives the same bits.
#[cfg(target_arch = "x86_64")]
fn wide_attention() -> bool {
    static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WIDE.get_or_init(|| {
        std::is_x86_feature_detected!("avx512f")
            && crate::matmul::detected_isa() == crate::matmul::Isa::Avx512
    })
}

/// Attention of query heads that share one KV head (`q`, `out`: n × head_dim) over
/// positions `start..=end`: each K and V row is read (and, from an f16 cache, widened)
/// once for all n heads. Scores, softmax (max-subtracted, the platform-independent
/// `exp`, 8-lane sum) and the weighted value sum run in one fixed order per head,
/// whatever n is; the AVX2 build of the same code gives the same bits (no operation is
/// fused or reordered).
pub fn attend_heads(
    q: &[f32],
    head: &Head,
    start: usize,
    end: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    // A q8 block never spans two heads or two positions (the builds read a register's
    // numbers with one scale).
    let q8 = matches!(head.k, KvSlice::Q8 { .. }) || matches!(head.v, KvSlice::Q8 { .. });
    assert!(
        !q8 || (head.head_dim.is_multiple_of(32) && head.kv_stride.is_multiple_of(32)),
        "a q8 cache with heads of {} numbers, {} a position",
        head.head_dim,
        head.kv_stride
    );
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
        if head.head_dim.is_multiple_of(8) {
            if wide_attention() {
                // SAFETY: the features were detected; the width is a multiple of 8.
                unsafe { attend_x86::attend_heads_512(q, head, start, end, scale, scores, out) };
            } else {
                // SAFETY: the features were just detected; the width is a multiple of 8.
                unsafe { attend_x86::attend_heads(q, head, start, end, scale, scores, out) };
            }
        } else {
            // SAFETY: the features were just detected.
            unsafe { attend_heads_avx2(q, head, start, end, scale, scores, out) };
        }
        return;
    }
    attend_heads_impl::<false>(q, head, start, end, scale, scores, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn attend_heads_avx2(
    q: &[f32],
    head: &Head,
    start: usize,
    end: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    attend_heads_impl::<true>(q, head, start, end, scale, scores, out)
}

#[inline(always)]
fn attend_heads_impl<const AVX: bool>(
    q: &[f32],
    head: &Head,
    start: usize,
    end: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let (d, stride) = (head.head_dim, head.kv_stride);
    let off = head.kv_head * d;
    let n = q.len() / d;
    let len = end + 1 - start;
    // One scratch for the scores of every head and, after them, each head's 1/Σ.
    scores.resize(n * len + n, 0.0);
    let (scores, inv) = scores.split_at_mut(n * len);
    let mut stack = [0f32; 512];
    let mut heap = Vec::new();
    let buf: &mut [f32] = if d <= stack.len() {
        &mut stack
    } else {
        heap.resize(d, 0.0);
        &mut heap
    };
    for i in 0..len {
        let t = start + i;
        let k = kv_row::<AVX>(head.k, t * stride + off, d, buf);
        for g in 0..n {
            scores[g * len + i] = dot8_with::<AVX>(&q[g * d..(g + 1) * d], k) * scale;
        }
    }
    softmax_heads(scores, len, head.softcap, inv);
    out.iter_mut().for_each(|v| *v = 0.0);
    for i in 0..len {
        let t = start + i;
        let v = kv_row::<AVX>(head.v, t * stride + off, d, buf);
        for g in 0..n {
            let p = scores[g * len + i] * inv[g];
            for (o, vv) in out[g * d..(g + 1) * d].iter_mut().zip(v) {
                *o += p * vv;
            }
        }
    }
}

/// The softcap (when set) and the softmax numerators of each head's `len` scores, in
/// place, with each head's 1/Σ in `inv`: max-subtracted, the platform-independent `exp`,
/// an 8-lane sum. Every build of attention runs exactly this.
#[inline(always)]
fn softmax_heads(scores: &mut [f32], len: usize, softcap: f32, inv: &mut [f32]) {
    if softcap != 0.0 {
        scores
            .iter_mut()
            .for_each(|x| *x = softcap * tanh(*x / softcap));
    }
    for (s, inv) in scores.chunks_exact_mut(len).zip(inv) {
        let max = s.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        s.iter_mut().for_each(|x| *x = exp(*x - max));
        *inv = 1.0 / sum8(s);
    }
}

/// `dot` for slices of equal length in whole 8-lane steps; the AVX2 build uses explicit
/// 256-bit registers (the compiler otherwise splits the eight lanes into pairs):
/// multiply then add per lane, like the loop.
#[inline(always)]
fn dot8_with<const AVX: bool>(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if AVX {
        use std::arch::x86_64::*;
        let n = a.len().min(b.len());
        let whole = n / 8 * 8;
        let mut l = [0f32; 8];
        // SAFETY: only instantiated in the avx2 build; every load is within n.
        unsafe {
            let mut acc = _mm256_setzero_ps();
            let mut i = 0;
            while i < whole {
                let x = _mm256_loadu_ps(a.as_ptr().add(i));
                let y = _mm256_loadu_ps(b.as_ptr().add(i));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(x, y));
                i += 8;
            }
            _mm256_storeu_ps(l.as_mut_ptr(), acc);
        }
        for i in whole..n {
            l[i - whole] += a[i] * b[i];
        }
        return tree8(&l);
    }
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[i] += x * y;
    }
    tree8(&acc)
}

/// Σ x with 8 fixed partial sums.
#[inline(always)]
fn sum8(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let c = x.chunks_exact(8);
    let r = c.remainder();
    for v in c {
        for l in 0..8 {
            acc[l] += v[l];
        }
    }
    for (i, v) in r.iter().enumerate() {
        acc[i] += v;
    }
    tree8(&acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_weights() {
        let mut x = vec![3.0f32, 4.0];
        rms_norm(&mut x, &[1.0, 1.0], 0.0);
        let r = (12.5f32).sqrt();
        assert!((x[0] - 3.0 / r).abs() < 1e-6 && (x[1] - 4.0 / r).abs() < 1e-6);
    }

    #[test]
    fn rope_at_zero_is_identity_and_preserves_norm() {
        for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
            let rope = Rope::new(style, 8, 10000.0);
            let x0: Vec<f32> = (0..16).map(|i| i as f32 * 0.1 - 0.5).collect();
            let mut x = x0.clone();
            rope.apply(&mut x, 8, 0);
            assert_eq!(x, x0);
            rope.apply(&mut x, 8, 17);
            let n0: f32 = x0.iter().map(|v| v * v).sum();
            let n1: f32 = x.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-4);
        }
    }

    #[test]
    fn widening_f16_is_exact_for_every_bit_pattern() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = widen(h);
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#x}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#x}");
            }
        }
    }

    /// Queries, keys and values of an attention test (values spread over ±`spread`),
    /// with the keys and values also as f16 and, for widths of a multiple of 32, as q8.
    struct Case {
        q: Vec<f32>,
        k: Vec<f32>,
        v: Vec<f32>,
        kh: Vec<u16>,
        vh: Vec<u16>,
        k8: Q8Cache,
        v8: Q8Cache,
    }

    #[derive(Default)]
    struct Q8Cache {
        q: Vec<i8>,
        d: Vec<f32>,
    }

    impl Q8Cache {
        fn of(x: &[f32]) -> Q8Cache {
            let mut c = Q8Cache {
                q: vec![0; x.len()],
                d: vec![0.0; x.len() / 32],
            };
            crate::quant::quantize_q8_into(x, &mut c.q, &mut c.d);
            c
        }

        fn slice(&self) -> KvSlice<'_> {
            KvSlice::Q8 {
                q: &self.q,
                d: &self.d,
            }
        }
    }

    impl Case {
        fn new(nh: usize, nkv: usize, d: usize, len: usize, spread: f32) -> Case {
            let wave = |n: usize, a: usize, m: usize| -> Vec<f32> {
                (0..n)
                    .map(|i| (((i * a) % m) as f32 / m as f32 - 0.5) * spread)
                    .collect()
            };
            // Keys and values with a magnitude that changes every 32 numbers (so q8
            // blocks have scales of their own).
            let swell = |x: Vec<f32>| -> Vec<f32> {
                x.iter()
                    .enumerate()
                    .map(|(i, x)| x * (1.0 + ((i / 32) % 5) as f32 * 0.25))
                    .collect()
            };
            let (q, k, v) = (
                wave(nh * d, 37, 19),
                swell(wave(len * nkv * d, 13, 23)),
                swell(wave(len * nkv * d, 7, 29)),
            );
            let (mut kh, mut vh) = (vec![0u16; k.len()], vec![0u16; v.len()]);
            f16_row(&k, &mut kh);
            f16_row(&v, &mut vh);
            let (k8, v8) = if d.is_multiple_of(32) {
                (Q8Cache::of(&k), Q8Cache::of(&v))
            } else {
                Default::default()
            };
            Case {
                q,
                k,
                v,
                kh,
                vh,
                k8,
                v8,
            }
        }
    }

    #[test]
    fn f16_cache_attention_is_close_to_f32() {
        let (nh, nkv, d, len) = (4, 2, 64, 37);
        let Case {
            q, k, v, kh, vh, ..
        } = Case::new(nh, nkv, d, len, 1.0);
        let a = every_head(&q, KvSlice::F32(&k), KvSlice::F32(&v), nkv, d, len);
        let b = every_head(&q, KvSlice::F16(&kh), KvSlice::F16(&vh), nkv, d, len);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 2e-3, "{x} vs {y}");
        }
    }

    /// Attention of every query head in `q` (each KV head's group in turn) over all
    /// `len` positions of a cache, scale 1/8.
    fn every_head(q: &[f32], k: KvSlice, v: KvSlice, nkv: usize, d: usize, len: usize) -> Vec<f32> {
        let group = q.len() / d / nkv;
        let (mut s, mut out) = (Vec::new(), vec![0f32; q.len()]);
        for kvh in 0..nkv {
            let at = kvh * group * d..(kvh + 1) * group * d;
            let head = Head {
                k,
                v,
                kv_stride: nkv * d,
                kv_head: kvh,
                head_dim: d,
                softcap: 0.0,
            };
            attend_heads(
                &q[at.clone()],
                &head,
                0,
                len - 1,
                0.125,
                &mut s,
                &mut out[at],
            );
        }
        out
    }

    /// A q8 cache holds what its blocks quantize to (each number d·q), and attention
    /// over it is within q8's rounding of f32 attention: ordinary rows, a row with one
    /// outlier per block (coarse steps for the rest), an all-zero block.
    #[test]
    fn q8_cache_attention_is_close_to_f32() {
        let (nh, nkv, d, len) = (6, 2, 64, 41);
        let Case {
            q, mut k, mut v, ..
        } = Case::new(nh, nkv, d, len, 2.0);
        for i in (0..k.len()).step_by(97) {
            k[i] *= 8.0;
            v[i] *= -8.0;
        }
        k[nkv * d..nkv * d + 32].fill(0.0);
        let (k8, v8) = (Q8Cache::of(&k), Q8Cache::of(&v));
        // What the cache reads back: within half a step of each number.
        let mut buf = vec![0f32; d];
        for (x, c) in [(&k, &k8), (&v, &v8)] {
            for t in 0..len * nkv {
                let row = kv_row::<false>(c.slice(), t * d, d, &mut buf);
                for (j, (&r, &x)) in row.iter().zip(&x[t * d..]).enumerate() {
                    let step = c.d[(t * d + j) / 32];
                    assert!((r - x).abs() <= step * 0.5 * (1.0 + 1e-6), "{r} for {x}");
                }
            }
        }
        let a = every_head(&q, KvSlice::F32(&k), KvSlice::F32(&v), nkv, d, len);
        let b = every_head(&q, k8.slice(), v8.slice(), nkv, d, len);
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 0.05, "q8 attention off by {worst}");
        assert!(
            worst > 0.0,
            "q8 attention equal to f32: the cache was not read"
        );
    }

    /// An x86 build of `attend_heads`.
    #[cfg(target_arch = "x86_64")]
    type Build = unsafe fn(&[f32], &Head, usize, usize, f32, &mut Vec<f32>, &mut [f32]);

    /// The blocked x86 builds this CPU can run for head width `d`.
    #[cfg(target_arch = "x86_64")]
    fn x86_builds(d: usize) -> Vec<(&'static str, Build)> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut v: Vec<(&'static str, Build)> = Vec::new();
        if d.is_multiple_of(8)
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("f16c")
        {
            v.push(("AVX2", attend_x86::attend_heads));
            if is_x86_feature_detected!("avx512f") {
                v.push(("AVX-512", attend_x86::attend_heads_512));
            }
        }
        v
    }

    #[test]
    fn simd_build_of_attention_gives_the_baseline_bits() {
        // `attend_heads` dispatches to the fastest build this CPU has (the blocked
        // x86 kernel for widths of a multiple of 8, else the AVX2 build of the
        // reference); `attend_heads_impl` called from here is the baseline (SSE2) build,
        // the reference. Shapes cover head groups of 1–8 (split into passes of four),
        // widths with and without a 16-wide tail, and position counts around the blocks
        // of eight.
        let shapes = [
            (3, 1, 64, 45),
            (6, 2, 72, 45),
            (4, 1, 256, 37),
            (8, 1, 24, 17),
            (5, 1, 96, 8),
            (1, 1, 128, 9),
            (2, 2, 8, 130),
            (7, 1, 40, 1),
            (12, 2, 128, 23),
            (4, 1, 256, 300),
            (3, 1, 64, 33),
            (2, 1, 104, 70),
        ];
        for (nh, nkv, d, len) in shapes {
            let group = nh / nkv;
            for spread in [0.5f32, 3.0, 40.0] {
                let Case {
                    q,
                    k,
                    v,
                    kh,
                    vh,
                    k8,
                    v8,
                } = Case::new(nh, nkv, d, len, spread);
                let mut s = Vec::new();
                let mut caches = vec![
                    (KvSlice::F32(&k), KvSlice::F32(&v)),
                    (KvSlice::F16(&kh), KvSlice::F16(&vh)),
                ];
                if d.is_multiple_of(32) {
                    caches.push((k8.slice(), v8.slice()));
                }
                for (kc, vc) in caches {
                    for kvh in 0..nkv {
                        for (start, softcap) in [(0, 0.0), (len / 3, 5.0)] {
                            let head = Head {
                                k: kc,
                                v: vc,
                                kv_stride: nkv * d,
                                kv_head: kvh,
                                head_dim: d,
                                softcap,
                            };
                            let qg = &q[kvh * group * d..(kvh + 1) * group * d];
                            let (mut a, mut b) = (vec![0f32; group * d], vec![0f32; group * d]);
                            attend_heads(qg, &head, start, len - 1, 0.1, &mut s, &mut a);
                            attend_heads_impl::<false>(
                                qg,
                                &head,
                                start,
                                len - 1,
                                0.1,
                                &mut s,
                                &mut b,
                            );
                            let what = format!("{nh}/{nkv} heads of {d}, {len} positions from {start}, spread {spread}, softcap {softcap}");
                            let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
                            assert!(same, "{what}");
                            // Each x86 build this CPU can run, not only the one dispatched.
                            #[cfg(target_arch = "x86_64")]
                            for (name, build) in x86_builds(d) {
                                let mut c = vec![0f32; group * d];
                                // SAFETY: `x86_builds` lists only what this CPU runs.
                                unsafe { build(qg, &head, start, len - 1, 0.1, &mut s, &mut c) };
                                let same =
                                    c.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
                                assert!(same, "{name}, {what}");
                            }
                            // One head at a time gives each head's bits too.
                            let g = group - 1;
                            let mut one = vec![0f32; d];
                            attend_heads(
                                &qg[g * d..(g + 1) * d],
                                &head,
                                start,
                                len - 1,
                                0.1,
                                &mut s,
                                &mut one,
                            );
                            assert!(one
                                .iter()
                                .zip(&a[g * d..(g + 1) * d])
                                .all(|(x, y)| x.to_bits() == y.to_bits()));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn exp_is_close_to_libm_everywhere() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x), x.exp());
            assert!(((a - b) / b).abs() < 3e-7, "exp({x}) = {a}, libm {b}");
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(-1000.0) < 1e-37);
    }

    /// `exp` as first written: the exponent by a (saturating) float-to-int cast.
    fn exp_by_cast(x: f32) -> f32 {
        const ROUND: f32 = 12_582_912.0;
        let x = x.clamp(-87.0, 88.0);
        let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
        let r = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
        let p = 1.0
            + r * (1.0
                + r * (0.5
                    + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
        p * f32::from_bits(((n as i32 + 127) << 23) as u32)
    }

    /// Every build of RoPE gives the bits of the pair-by-pair loop it replaced: both
    /// styles, full and partial rotation, one to nine heads, ordinary and non-finite
    /// numbers.
    #[test]
    fn every_build_of_rope_gives_the_pairwise_bits() {
        type Build = unsafe fn(RopeStyle, &mut [f32], usize, &[(f32, f32)]);
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut builds: Vec<(&str, Build)> = vec![("baseline", |s, x, d, a| rope_body(s, x, d, a))];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                builds.push(("avx2", rope_avx2));
            }
            if std::is_x86_feature_detected!("avx512f") {
                builds.push(("avx512", rope_avx512));
            }
        }
        for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
            for (head_dim, dims) in [(64, 64), (256, 256), (96, 32), (80, 80), (6, 6)] {
                for heads in [1, 3, 9] {
                    let half = dims / 2;
                    let angles: Vec<(f32, f32)> = (0..half)
                        .map(|i| ((i as f32 * 0.37).sin(), (i as f32 * 0.37).cos()))
                        .collect();
                    let mut x: Vec<f32> = (0..heads * head_dim)
                        .map(|i| ((i * 7919) % 1009) as f32 / 31.0 - 16.0)
                        .collect();
                    x[heads * head_dim / 2] = f32::INFINITY;
                    x[0] = f32::NAN;
                    // The loop before the builds: pair by pair, each pair over the heads.
                    let mut want = x.clone();
                    for (i, &(sin, cos)) in angles.iter().enumerate() {
                        let (a, b) = match style {
                            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                            RopeStyle::Halves => (i, i + half),
                        };
                        for head in want.chunks_exact_mut(head_dim) {
                            let (x0, x1) = (head[a], head[b]);
                            head[a] = x0 * cos - x1 * sin;
                            head[b] = x0 * sin + x1 * cos;
                        }
                    }
                    let mut dispatched = x.clone();
                    let rope = Rope::new(style, dims, 10_000.0);
                    rope.apply_angles(&mut dispatched, head_dim, &angles);
                    let mut runs = vec![("dispatch", dispatched)];
                    for &(name, build) in &builds {
                        let mut got = x.clone();
                        // SAFETY: the build's features were detected above.
                        unsafe { build(style, &mut got, head_dim, &angles) };
                        runs.push((name, got));
                    }
                    for (name, got) in &runs {
                        for (g, w) in got.iter().zip(&want) {
                            assert!(
                                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                                "{name}, {style:?}, head {head_dim}, dims {dims}, heads {heads}: {g:e} against {w:e}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// `dot` is eight partial sums, element i into lane i mod 8 in index order, then
    /// the fixed tree: every length 0–70 and 640 against that statement.
    #[test]
    fn dot_is_eight_lanes_in_index_order() {
        for n in (0..=70).chain([640]) {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 1013) as f32 / 37.0 - 13.0)
                .collect();
            let b: Vec<f32> = (0..n + 3)
                .map(|i| ((i * 104729) % 997) as f32 / 71.0 - 7.0)
                .collect();
            let mut acc = [0f32; 8];
            for i in 0..n {
                acc[i % 8] += a[i] * b[i];
            }
            assert_eq!(dot(&a, &b).to_bits(), tree8(&acc).to_bits(), "length {n}");
        }
    }

    /// Every build of RMSNorm gives the baseline's bits: rows of widths 1–70 and 640
    /// (remainders of the eight lanes included), ordinary, tiny, huge, zero and
    /// non-finite numbers.
    #[test]
    fn every_build_of_rms_norm_gives_the_baseline_bits() {
        type Build = unsafe fn(&mut [f32], &[f32], f32);
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut builds: Vec<(&str, Build)> = vec![("dispatch", |x, w, e| rms_norm(x, w, e))];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                builds.push(("avx2", rms_norm_avx2));
            }
            if std::is_x86_feature_detected!("avx512f") {
                builds.push(("avx512", rms_norm_avx512));
            }
        }
        let scales = [1.0f32, 3.7e-3, 1.9e19, 1e-39, 0.0];
        for n in (1..=70).chain([640]) {
            for (k, &s) in scales.iter().enumerate() {
                let mut x: Vec<f32> = (0..n)
                    .map(|i| ((i * 7919 + k * 13) % 1001) as f32 / 97.0 - 5.0)
                    .map(|v| v * s)
                    .collect();
                if k == 4 && n > 3 {
                    x[n / 2] = if n % 2 == 0 { f32::INFINITY } else { f32::NAN };
                }
                let w: Vec<f32> = (0..n).map(|i| 0.5 + (i % 11) as f32 / 7.0).collect();
                let mut want = x.clone();
                rms_norm_body(&mut want, &w, 1e-6);
                for &(name, build) in &builds {
                    let mut got = x.clone();
                    // SAFETY: the build's features were detected above.
                    unsafe { build(&mut got, &w, 1e-6) };
                    for (g, v) in got.iter().zip(&want) {
                        assert!(
                            g.to_bits() == v.to_bits() || (g.is_nan() && v.is_nan()),
                            "{name}, width {n}, scale {s}: {g:e} against {v:e}"
                        );
                    }
                }
            }
        }
    }

    /// Every build of the gated activation gives, number by number, what the scalar
    /// functions give: ~2 million inputs (every f32 with its low 12 mantissa bits zero,
    /// both signs — zeros, subnormals, the saturated tails, ±inf and NaN included) each
    /// against three `up` values, for GELU-tanh and SiLU.
    #[test]
    fn every_build_of_the_gated_activation_gives_the_scalar_bits() {
        let xs: Vec<f32> = (0u32..1 << 20).map(|i| f32::from_bits(i << 12)).collect();
        type Build = unsafe fn(&mut [f32], &[f32], bool);
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut builds: Vec<(&str, Build)> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                builds.push(("avx2", gated_activation_avx2));
            }
            if std::is_x86_feature_detected!("avx512f") {
                builds.push(("avx512", gated_activation_avx512));
            }
        }
        for gelu in [true, false] {
            let act = if gelu { gelu_tanh } else { silu };
            for u in [1.0f32, -0.375, 3.0e-3] {
                let up = vec![u; xs.len()];
                let want: Vec<f32> = xs.iter().map(|&x| act(x) * u).collect();
                let mut runs: Vec<(&str, Vec<f32>)> = Vec::new();
                let mut g = xs.clone();
                gated_activation(&mut g, &up, gelu);
                runs.push(("dispatch", g));
                for &(name, build) in &builds {
                    let mut g = xs.clone();
                    // SAFETY: the build's features were detected above.
                    unsafe { build(&mut g, &up, gelu) };
                    runs.push((name, g));
                }
                for (name, got) in &runs {
                    for ((x, w), g) in xs.iter().zip(&want).zip(got) {
                        assert!(
                            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                            "{name}, gelu {gelu}, up {u}: x = {x:e} gives {g:e}, the scalar {w:e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn exp_takes_its_exponent_from_the_rounding_bits_exactly() {
        // Every f32 in [−100, 100] whose low 7 mantissa bits are zero (~17 million,
        // every exponent and both signs), the clamps' edges, the halfway points of the
        // rounding (n·ln 2 ± ln2/2) and the specials.
        let mut xs: Vec<f32> = (0..1u32 << 25)
            .map(|i| f32::from_bits(i << 7))
            .filter(|x| x.abs() <= 100.0)
            .flat_map(|x| [x, -x])
            .collect();
        for n in -130..=130 {
            let h = (n as f32 + 0.5) * std::f32::consts::LN_2;
            xs.extend([
                h,
                f32::from_bits(h.to_bits() + 1),
                f32::from_bits(h.to_bits() - 1),
            ]);
        }
        xs.extend([
            -87.0,
            88.0,
            -1e30,
            1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
        ]);
        for &x in &xs {
            assert_eq!(exp(x).to_bits(), exp_by_cast(x).to_bits(), "exp({x:e})");
        }
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn dot8_matches_dot_on_odd_lengths() {
        for n in [1usize, 7, 8, 9, 64, 67] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.5 - i as f32 * 0.11).collect();
            assert_eq!(dot8_with::<false>(&a, &b).to_bits(), dot(&a, &b).to_bits());
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                assert_eq!(dot8_with::<true>(&a, &b).to_bits(), dot(&a, &b).to_bits());
            }
        }
    }

    #[test]
    fn attention_over_one_position_returns_its_value() {
        let q = vec![1.0f32; 4];
        let k = vec![0.5f32; 4];
        let v = vec![2.0f32, 3.0, 4.0, 5.0];
        let mut out = vec![0f32; 4];
        let mut s = Vec::new();
        attend(&q, &k, &v, 2, 1, 2, 0, 0, 1.0, &mut s, &mut out);
        assert_eq!(out, vec![2.0, 3.0, 2.0, 3.0]);
    }
}
