//! Elementary functions in plain f64 arithmetic, for the places where teacher needs
//! them outside the hot loops (RoPE angles and frequencies, sampling probabilities).
//!
//! The system libm's `sin`, `cos`, `pow` and `exp` may differ in the last bit between C
//! libraries (glibc, musl, Apple's); a generation that went through them could then
//! differ between machines. These use only +, −, × and ÷, which IEEE 754 fixes to the
//! bit, so they give the same results everywhere. Accuracy: within a few ulp of the
//! true value in f64 (tested against libm), far below what reaches an f32 result.

use std::f64::consts::LN_2;

/// ln 2 in two parts: n·LN2_HI is exact for |n| < 2^20 (fdlibm's split).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// π/2 in three parts: k·PIO2_1 and k·PIO2_2 are exact for |k| < 2^20 (fdlibm's split).
const PIO2_1: f64 = f64::from_bits(0x3ff9_21fb_5440_0000);
const PIO2_2: f64 = f64::from_bits(0x3dd0_b461_1a60_0000);
const PIO2_3: f64 = f64::from_bits(0x3ba3_198a_2e03_7073);

/// Round to the nearest integer (ties to even) for |x| < 2^51, without a libm call.
/// What a GPU port of [`exp`] needs, bit for bit: the 14 Taylor coefficients (highest
/// first, as `exp` uses them), then ln 2 and its high and low parts.
pub fn exp_table() -> [f64; 17] {
    let mut t = [0f64; 17];
    t[..14].copy_from_slice(&EXP_C);
    t[14] = LN_2;
    t[15] = LN2_HI;
    t[16] = LN2_LO;
    t
}

fn round(x: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52
    (x + MAGIC) - MAGIC
}

/// Σ c_i·x^i by Horner's rule, highest coefficient first.
#[inline]
fn horner(x: f64, coeffs: &[f64]) -> f64 {
    coeffs.iter().fold(0.0, |acc, &c| acc * x + c)
}

/// 1/n! for n = 0..=17: n! is exact in f64 up to 18!, so each entry is the correctly
/// rounded 1/n! (computed at compile time, with IEEE arithmetic like at run time).
const INV_FACT: [f64; 18] = {
    let mut f = [1.0f64; 18];
    let mut fact = 1.0f64;
    let mut n = 1;
    while n < 18 {
        fact *= n as f64;
        f[n] = 1.0 / fact;
        n += 1;
    }
    f
};

/// e^x Taylor coefficients 1/13! … 1/0!, highest first (the first seven are the
/// degree 7–13 half).
const EXP_C: [f64; 14] = {
    let mut c = [0f64; 14];
    let mut i = 0;
    while i < 14 {
        c[i] = INV_FACT[13 - i];
        i += 1;
    }
    c
};

/// sin r / r and cos r in r², highest first: (−1)^j/(2j+1)! and (−1)^j/(2j)!, j = 8…0.
const SIN_C: [f64; 9] = alternating(1);
const COS_C: [f64; 9] = alternating(0);

const fn alternating(odd: usize) -> [f64; 9] {
    let mut c = [0f64; 9];
    let mut i = 0;
    while i < 9 {
        let j = 8 - i;
        let v = INV_FACT[2 * j + odd];
        c[i] = if j % 2 == 0 { v } else { -v };
        i += 1;
    }
    c
}

/// atanh series 1/(2j+1), j = 11…0.
const LN_C: [f64; 12] = {
    let mut c = [0f64; 12];
    let mut i = 0;
    while i < 12 {
        c[i] = 1.0 / (2 * (11 - i) + 1) as f64;
        i += 1;
    }
    c
};

/// e^x. Exactly 0 below −708 (where the result would be subnormal), +∞ above 709.
#[inline]
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x < -708.0 {
        return 0.0;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    let n = round(x / LN_2);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor to degree 13 on |r| ≤ ln2/2 (remainder below 2^-57), as two independent
    // Horner chains of degree 6, p = lo(r) + r^7·hi(r), so they overlap in the pipeline.
    let r2 = r * r;
    let r7 = (r2 * r2) * r2 * r;
    let p = horner(r, &EXP_C[7..]) + r7 * horner(r, &EXP_C[..7]);
    p * f64::from_bits(((n as i64 + 1023) as u64) << 52)
}

/// `exp` of every element, in place, with the same bits as `exp` one at a time: with
/// AVX-512 F eight at once by the same operations (the sampler's softmax over a whole
/// vocabulary, 49 k–262 k values a token).
pub fn exp_in_place(xs: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was just detected.
        unsafe { exp_avx512(xs) };
        return;
    }
    xs.iter_mut().for_each(|v| *v = exp(*v));
}

/// `exp` lane by lane: each operation of the scalar function on eight values, the
/// special cases blended in at the end.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_avx512(xs: &mut [f64]) {
    use std::arch::x86_64::*;
    const MAGIC: f64 = 6_755_399_441_055_744.0; // `round`'s 1.5 · 2^52
    let c = |v: f64| _mm512_set1_pd(v);
    let horner = |x: __m512d, coeffs: &[f64]| {
        coeffs.iter().fold(_mm512_setzero_pd(), |acc, &k| {
            _mm512_add_pd(_mm512_mul_pd(acc, x), c(k))
        })
    };
    let whole = xs.len() / 8 * 8;
    let mut i = 0;
    while i < whole {
        let at = xs.as_mut_ptr().add(i);
        let x = _mm512_loadu_pd(at);
        let n = _mm512_sub_pd(_mm512_add_pd(_mm512_div_pd(x, c(LN_2)), c(MAGIC)), c(MAGIC));
        let r = _mm512_sub_pd(
            _mm512_sub_pd(x, _mm512_mul_pd(n, c(LN2_HI))),
            _mm512_mul_pd(n, c(LN2_LO)),
        );
        let r2 = _mm512_mul_pd(r, r);
        let r7 = _mm512_mul_pd(_mm512_mul_pd(_mm512_mul_pd(r2, r2), r2), r);
        let p = _mm512_add_pd(
            horner(r, &EXP_C[7..]),
            _mm512_mul_pd(r7, horner(r, &EXP_C[..7])),
        );
        // 2^n from n's bits; n is an integer of a few hundred for every lane kept below
        // (the others are replaced, whatever they computed).
        let e = _mm512_add_epi64(
            _mm512_cvtepi32_epi64(_mm512_cvtpd_epi32(n)),
            _mm512_set1_epi64(1023),
        );
        let y = _mm512_mul_pd(p, _mm512_castsi512_pd(_mm512_slli_epi64::<52>(e)));
        let below = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(x, c(-708.0));
        let above = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(x, c(709.0));
        let nan = _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(x, x);
        let y = _mm512_mask_blend_pd(below, y, _mm512_setzero_pd());
        let y = _mm512_mask_blend_pd(above, y, c(f64::INFINITY));
        _mm512_storeu_pd(at, _mm512_mask_blend_pd(nan, y, x));
        i += 8;
    }
    for v in &mut xs[whole..] {
        *v = exp(*v);
    }
}

/// ln x for x > 0 (NaN for x ≤ 0 or NaN, +∞ for +∞).
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return x;
    }
    // x = m · 2^e with m in [√½, √2).
    let (mut m, mut e) = if x < f64::MIN_POSITIVE {
        let bits = (x * 18_014_398_509_481_984.0).to_bits(); // 2^54
        (bits, -54i64)
    } else {
        (x.to_bits(), 0i64)
    };
    e += ((m >> 52) & 0x7ff) as i64 - 1023;
    m = (m & ((1u64 << 52) - 1)) | (1023u64 << 52);
    let mut m = f64::from_bits(m);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172: odd powers to s^23.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let ln_m = 2.0 * s * horner(s2, &LN_C);
    let e = e as f64;
    (e * LN2_HI + ln_m) + e * LN2_LO
}

/// base^y for base > 0.
pub fn powf(base: f64, y: f64) -> f64 {
    exp(y * ln(base))
}

/// (sin x, cos x) for |x| < 2^20·π/2 (≈ 1.6 million: every RoPE angle of a context up
/// to a million positions); NaN outside.
pub fn sin_cos(x: f64) -> (f64, f64) {
    if x.is_nan() || x.abs() >= 1_647_099.0 {
        return (f64::NAN, f64::NAN);
    }
    let k = round(x * std::f64::consts::FRAC_2_PI);
    let r = ((x - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
    let r2 = r * r;
    // sin r = r·Σ (−1)^j r^{2j}/(2j+1)!, cos r = Σ (−1)^j r^{2j}/(2j)!, to r^17 / r^16
    // on |r| ≤ π/4: remainders below 2^-56.
    let s = r * horner(r2, &SIN_C);
    let c = horner(r2, &COS_C);
    match (k as i64).rem_euclid(4) {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn exp_in_place_gives_exp_bits() {
        // Every region of `exp`: the special cases and their edges, subnormal and huge
        // inputs, both signs of zero, a sweep, and lengths with a tail.
        let mut xs: Vec<f64> = vec![
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            -708.0,
            -708.000_000_000_1,
            -707.999_999_9,
            709.0,
            709.000_000_000_1,
            708.999_999,
            1e-310,
            -1e-310,
            1e300,
            -1e300,
            0.5 * LN_2,
            -0.5 * LN_2,
            LN_2,
        ];
        let mut x = -720.0;
        while x < 720.0 {
            xs.push(x);
            x += 0.618_033_988_7;
        }
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            xs.push((s >> 11) as f64 / (1u64 << 53) as f64 * 40.0 - 30.0);
        }
        for len in [xs.len(), xs.len() - 3, 7, 1, 0] {
            let mut got = xs[..len].to_vec();
            exp_in_place(&mut got);
            for (i, (&x, &g)) in xs[..len].iter().zip(&got).enumerate() {
                let want = exp(x);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "exp({x}) at {i}: {g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn exp_matches_libm_closely() {
        let mut x = -708.0;
        while x < 709.0 {
            assert!(
                close(exp(x), x.exp(), 4e-16),
                "exp({x}) = {} vs {}",
                exp(x),
                x.exp()
            );
            x += 0.173;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1e6), 0.0);
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn ln_and_pow_match_libm_closely() {
        for x in [
            1e-300, 1e-310, 0.5, 0.999, 1.0, 1.0001, 2.0, 10_000.0, 1e6, 1e300,
        ] {
            let want = f64::ln(x);
            assert!(
                (ln(x) - want).abs() <= 4e-16 * want.abs().max(1.0),
                "ln({x})"
            );
        }
        for (b, y) in [(10_000.0, -0.5), (1e6, -0.03125), (500_000.0, -0.984375)] {
            assert!(close(powf(b, y), f64::powf(b, y), 4e-15), "{b}^{y}");
        }
        assert!(ln(0.0).is_nan() && ln(-1.0).is_nan());
    }

    #[test]
    fn sin_cos_match_libm_closely() {
        let mut x = -1000.0;
        while x < 200_000.0 {
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 1e-15 * x.abs().max(1.0), "sin({x})");
            assert!((c - x.cos()).abs() < 1e-15 * x.abs().max(1.0), "cos({x})");
            x = if x < 1000.0 { x + 0.0917 } else { x * 1.01 };
        }
        assert_eq!(sin_cos(0.0), (0.0, 1.0));
    }
}
