//! The fixed 8-lane reduction tree ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)), the last step
//! of the attention's float dot products (scores), done for many sums at once in vector
//! registers. Every add is one of the tree's, with the same
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
