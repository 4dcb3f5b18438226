//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11),
//! the counter-based generator behind every random draw in teacher.
//!
//! A draw is a pure function of (run seed, request id, decode step): no state is shared
//! between sequences, so a sequence's tokens cannot depend on its neighbours in a batch,
//! on thread scheduling, or on the order in which requests were admitted.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// The raw block function: 10 rounds over a 128-bit counter with a 64-bit key.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The uniform draw in [0, 1) for `(seed, stream, step)`; `lane` selects one of
/// independent draws at the same step (0 for token sampling).
pub fn uniform(seed: u64, stream: u64, step: u64, lane: u32) -> f64 {
    let out = philox4x32_10(
        [
            step as u32,
            ((step >> 32) as u32) ^ lane.wrapping_mul(0x8000_0001),
            stream as u32,
            (stream >> 32) as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    );
    let bits = ((out[0] as u64) << 32 | out[1] as u64) >> 11;
    bits as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A 64-bit value for `(seed, stream, step)`, for choices that are not token draws
/// (which examples to show in a prompt, which evolution to apply).
pub fn random_u64(seed: u64, stream: u64, step: u64) -> u64 {
    let out = philox4x32_10(
        [
            step as u32,
            (step >> 32) as u32,
            stream as u32,
            (stream >> 32) as u32,
        ],
        [seed as u32 ^ 0x5bd1_e995, (seed >> 32) as u32],
    );
    (out[2] as u64) << 32 | out[3] as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors from Random123's kat_vectors for philox4x32_10.
    #[test]
    fn known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn uniform_is_in_range_and_varies() {
        let mut seen = std::collections::HashSet::new();
        for step in 0..1000 {
            let u = uniform(42, 7, step, 0);
            assert!((0.0..1.0).contains(&u));
            seen.insert(u.to_bits());
        }
        assert_eq!(seen.len(), 1000);
        assert_ne!(uniform(42, 7, 0, 0), uniform(42, 8, 0, 0));
        assert_ne!(uniform(42, 7, 0, 0), uniform(43, 7, 0, 0));
        assert_eq!(uniform(42, 7, 5, 0), uniform(42, 7, 5, 0));
    }
}
