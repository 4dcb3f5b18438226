//! The fixed 8-lane reduction tree ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)), the last step
//! of every dot product teacher computes (matmul outputs, attention scores), done for
//! many sums at once in vector registers. Every add is one of the tree's, with the same
//! two operands, so each result has the scalar tree's bits.

use std::arch::x86_64::*;

/// Eight trees: lane p of the result is the tree of `acc[p]`.
#[inline(always)]
pub(crate) unsafe fn trees8(acc: &[__m256; 8]) -> __m256 {
    // [x.l0+x.l4, …, x.l3+x.l7 | y.l0+y.l4, …] for a pair of sums (x, y).
    let pair = |x: __m256, y: __m256| {
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(x, y),
            _mm256_permute2f128_ps::<0x31>(x, y),
        )
    };
    let (ab, cd) = (pair(acc[0], acc[1]), pair(acc[2], acc[3]));
    let (ef, gh) = (pair(acc[4], acc[5]), pair(acc[6], acc[7]));
    // (m0+m2, m1+m3) of each sum: [a a c c | b b d d] and [e e g g | f f h h].
    let half = |x: __m256, y: __m256| {
        _mm256_add_ps(
            _mm256_shuffle_ps::<0x44>(x, y),
            _mm256_shuffle_ps::<0xEE>(x, y),
        )
    };
    let (u, v) = (half(ab, cd), half(ef, gh));
    // The last add of each tree: lanes in the order a c e g b d f h.
    let r = _mm256_add_ps(
        _mm256_shuffle_ps::<0x88>(u, v),
        _mm256_shuffle_ps::<0xDD>(u, v),
    );
    _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Sixteen trees of eight registers, each holding two sums' lanes (low half, high
/// half): lane 2j + s of the result is the tree of half s of register j.
#[inline(always)]
pub(crate) unsafe fn trees16(x: &[__m512; 8]) -> __m512 {
    // Per 128-bit lane, one sum's (l0+l4, l1+l5, l2+l6, l3+l7): lane i of m(a, b) is
    // sum i of (a low, a high, b low, b high).
    let m = |a: __m512, b: __m512| {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        )
    };
    let (u0, u1, u2, u3) = (m(x[0], x[1]), m(x[2], x[3]), m(x[4], x[5]), m(x[6], x[7]));
    // Per 128-bit lane: (m0+m2, m1+m3) of two of the u.
    let h = |a: __m512, b: __m512| {
        _mm512_add_ps(
            _mm512_shuffle_ps::<0x44>(a, b),
            _mm512_shuffle_ps::<0xEE>(a, b),
        )
    };
    let (s1, s2) = (h(u0, u1), h(u2, u3));
    // The last add: 128-bit lane i holds sum i of u0, u1, u2, u3, so sum n = 4e + i
    // (of u_e) sits in lane 4i + e; put it in lane n.
    let r = _mm512_add_ps(
        _mm512_shuffle_ps::<0x88>(s1, s2),
        _mm512_shuffle_ps::<0xDD>(s1, s2),
    );
    _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
        r,
    )
}
