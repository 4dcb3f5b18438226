//! What the matmul's summation order costs: three AVX-512 VNNI inner loops over the same
//! int8 weights and activations, one thread, multiply-adds per second.
//!
//! `cargo bench -p teacher-kernels --bench summation_order` (x86_64 with AVX-512 VNNI).
//!
//! - `lanes, pairs` — the panel tile teacher ran until 0.1.0 (`matmul/x86.rs`,
//!   `tile512` then): two columns per register, eight i32 lane sums of four products per column and sub-block,
//!   one fma per lane: per two columns and row, `vpdpbusd` + `vcvtdq2ps` + `vmulps` +
//!   `vfmadd` (and a copy of the bias the `vpdpbusd` accumulates into).
//! - `lanes, columns` — the same order with sixteen columns per register (lane g of
//!   sixteen columns together): fewer scale products, the same `vpdpbusd`, convert and fma
//!   per 64 products.
//! - `blocks, columns` — one exact i32 sum per 32-element sub-block and column, then one
//!   fma: eight `vpdpbusd` (activations broadcast four bytes at a time) per sixteen columns,
//!   then one convert, one scale product and one fma — a different order, so different
//!   bits: the order of 0.2.0, which `tile512` now runs (eight rows a tile).
//!
//! Each loop is first checked bit for bit against a scalar statement of its order, so a
//! figure is never that of a loop computing something else. Rounds alternate the loops
//! (this VM's speed drifts by 10–20 % within minutes); the table gives each round.

#[cfg(target_arch = "x86_64")]
mod probe {
    use std::arch::x86_64::*;
    use std::time::Instant;

    /// Inputs per column (Gemma 3 270M's width), 32-element sub-blocks.
    pub const K: usize = 640;
    const NSB: usize = K / 32;

    /// The activations: (a + 128) as u8 per element, a scale per sub-block; and the
    /// weights of 16 columns as i8, a scale per column and sub-block.
    pub struct Data {
        pub rows: usize,
        au: Vec<u8>,
        da: Vec<f32>,
        w: Vec<[i8; K]>,
        d: Vec<[f32; NSB]>,
    }

    impl Data {
        pub fn new(rows: usize) -> Data {
            let mut x = 0x2545_f491_4f6c_dd1du64;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let au = (0..rows * K).map(|_| next() as u8).collect();
            let da = (0..rows * NSB)
                .map(|_| (next() % 1000) as f32 / 1e5 + 1e-4)
                .collect();
            let w = (0..16)
                .map(|_| std::array::from_fn(|_| next() as i8))
                .collect();
            let d = (0..16)
                .map(|_| std::array::from_fn(|_| (next() % 1000) as f32 / 1e4 + 1e-3))
                .collect();
            Data { rows, au, da, w, d }
        }

        fn a(&self, r: usize, i: usize) -> i32 {
            self.au[r * K + i] as i32 - 128
        }

        /// The lane order (the scalar reference of `matmul/mod.rs`).
        fn lanes_ref(&self, r: usize, c: usize) -> f32 {
            let mut l = [0f32; 8];
            for j in 0..NSB {
                let s = self.d[c][j] * self.da[r * NSB + j];
                for (g, lane) in l.iter_mut().enumerate() {
                    let p: i32 = (0..4)
                        .map(|e| {
                            self.w[c][j * 32 + g * 4 + e] as i32 * self.a(r, j * 32 + g * 4 + e)
                        })
                        .sum();
                    *lane = s.mul_add(p as f32, *lane);
                }
            }
            ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
        }

        /// One exact sum per sub-block, one fma.
        fn blocks_ref(&self, r: usize, c: usize) -> f32 {
            let mut acc = 0f32;
            for j in 0..NSB {
                let p: i32 = (0..32)
                    .map(|e| self.w[c][j * 32 + e] as i32 * self.a(r, j * 32 + e))
                    .sum();
                acc = (self.d[c][j] * self.da[r * NSB + j]).mul_add(p as f32, acc);
            }
            acc
        }

        /// −128 × the sum of column c's four weights of group g in sub-block j.
        fn bias(&self, c: usize, j: usize, g: usize) -> i32 {
            -128 * (0..4)
                .map(|e| self.w[c][j * 32 + g * 4 + e] as i32)
                .sum::<i32>()
        }
    }

    /// Sub-block j of two columns: 32 + 32 weights, their eight lane biases, their scales.
    #[repr(C, align(64))]
    #[derive(Clone, Copy)]
    struct Pair {
        w: [i8; 64],
        bias: [i32; 16],
        d: [f32; 16],
    }

    /// Sub-block j of sixteen columns: group g holds the sixteen columns' elements 4g..4g+3.
    #[repr(C, align(64))]
    #[derive(Clone, Copy)]
    struct Sixteen {
        w: [[i8; 64]; 8],
        bias: [[i32; 16]; 8],
        block_bias: [i32; 16],
        d: [f32; 16],
    }

    pub struct Layouts {
        /// Row-major u = w + 128 per column (the single-row kernels' unsigned operand).
        unsigned: Vec<[u8; K]>,
        pairs: Vec<Pair>,
        sixteen: Vec<Sixteen>,
    }

    pub fn layouts(x: &Data) -> Layouts {
        let mut pairs = Vec::new();
        for p in 0..8 {
            for j in 0..NSB {
                let mut b = Pair {
                    w: [0; 64],
                    bias: [0; 16],
                    d: [0.0; 16],
                };
                for h in 0..2 {
                    let c = 2 * p + h;
                    b.w[h * 32..h * 32 + 32].copy_from_slice(&x.w[c][j * 32..j * 32 + 32]);
                    for g in 0..8 {
                        b.bias[h * 8 + g] = x.bias(c, j, g);
                        b.d[h * 8 + g] = x.d[c][j];
                    }
                }
                pairs.push(b);
            }
        }
        let sixteen = (0..NSB)
            .map(|j| {
                let mut b = Sixteen {
                    w: [[0; 64]; 8],
                    bias: [[0; 16]; 8],
                    block_bias: [0; 16],
                    d: [0.0; 16],
                };
                for c in 0..16 {
                    for g in 0..8 {
                        for e in 0..4 {
                            b.w[g][c * 4 + e] = x.w[c][j * 32 + g * 4 + e];
                        }
                        b.bias[g][c] = x.bias(c, j, g);
                        b.block_bias[c] += x.bias(c, j, g);
                    }
                    b.d[c] = x.d[c][j];
                }
                b
            })
            .collect();
        let unsigned =
            x.w.iter()
                .map(|c| std::array::from_fn(|i| (c[i] as u8) ^ 0x80))
                .collect();
        Layouts {
            unsigned,
            pairs,
            sixteen,
        }
    }

    /// `tile512`'s loop: four rows × four columns (pairs p0, p0 + 1).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma")]
    pub unsafe fn lanes_pairs(l: &Layouts, x: &Data, y: &mut [f32]) {
        for p0 in (0..8).step_by(2) {
            for r0 in (0..x.rows).step_by(4) {
                let mut acc = [[_mm512_setzero_ps(); 2]; 4];
                for j in 0..NSB {
                    let pb: [&Pair; 2] = [&l.pairs[p0 * NSB + j], &l.pairs[(p0 + 1) * NSB + j]];
                    let wv = pb.map(|b| _mm512_load_si512(b.w.as_ptr() as *const _));
                    let bias = pb.map(|b| _mm512_load_si512(b.bias.as_ptr() as *const _));
                    let dv = pb.map(|b| _mm512_load_ps(b.d.as_ptr()));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let row = r0 + r;
                        let a = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                            x.au.as_ptr().add(row * K + j * 32) as *const __m256i,
                        ));
                        let da = _mm512_set1_ps(*x.da.get_unchecked(row * NSB + j));
                        for q in 0..2 {
                            let prod = _mm512_dpbusd_epi32(bias[q], a, wv[q]);
                            let s = _mm512_mul_ps(dv[q], da);
                            acc[q] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(prod), acc[q]);
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    for (q, v) in acc.iter().enumerate() {
                        let mut l = [0f32; 16];
                        _mm512_storeu_ps(l.as_mut_ptr(), *v);
                        for h in 0..2 {
                            let l = &l[h * 8..h * 8 + 8];
                            let v =
                                ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
                            y[(r0 + r) * 16 + 2 * (p0 + q) + h] = v;
                        }
                    }
                }
            }
        }
    }

    /// The lane order, sixteen columns per register: two rows × sixteen columns × eight
    /// lanes (sixteen accumulators).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma")]
    pub unsafe fn lanes_columns(l: &Layouts, x: &Data, y: &mut [f32]) {
        for r0 in (0..x.rows).step_by(2) {
            let mut acc = [[_mm512_setzero_ps(); 8]; 2];
            for j in 0..NSB {
                let b = &l.sixteen[j];
                let dv = _mm512_load_ps(b.d.as_ptr());
                for (r, acc) in acc.iter_mut().enumerate() {
                    let row = r0 + r;
                    let ap = x.au.as_ptr().add(row * K + j * 32) as *const i32;
                    let s = _mm512_mul_ps(dv, _mm512_set1_ps(*x.da.get_unchecked(row * NSB + j)));
                    for (g, lane) in acc.iter_mut().enumerate() {
                        let p = _mm512_dpbusd_epi32(
                            _mm512_load_si512(b.bias[g].as_ptr() as *const _),
                            _mm512_set1_epi32(ap.add(g).read_unaligned()),
                            _mm512_load_si512(b.w[g].as_ptr() as *const _),
                        );
                        *lane = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(p), *lane);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let mut l = [[0f32; 16]; 8];
                for g in 0..8 {
                    _mm512_storeu_ps(l[g].as_mut_ptr(), acc[g]);
                }
                for c in 0..16 {
                    let v = ((l[0][c] + l[4][c]) + (l[2][c] + l[6][c]))
                        + ((l[1][c] + l[5][c]) + (l[3][c] + l[7][c]));
                    y[(r0 + r) * 16 + c] = v;
                }
            }
        }
    }

    /// One exact i32 sum per sub-block and column: R rows × sixteen columns.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma")]
    pub unsafe fn blocks_columns<const R: usize>(l: &Layouts, x: &Data, y: &mut [f32]) {
        for r0 in (0..x.rows).step_by(R) {
            let mut acc = [_mm512_setzero_ps(); R];
            for j in 0..NSB {
                let b = &l.sixteen[j];
                let bias = _mm512_load_si512(b.block_bias.as_ptr() as *const _);
                let dv = _mm512_load_ps(b.d.as_ptr());
                let wv: [__m512i; 8] =
                    std::array::from_fn(|g| _mm512_load_si512(b.w[g].as_ptr() as *const _));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let row = r0 + r;
                    let ap = x.au.as_ptr().add(row * K + j * 32) as *const i32;
                    let mut p = bias;
                    for (g, w) in wv.iter().enumerate() {
                        p = _mm512_dpbusd_epi32(
                            p,
                            _mm512_set1_epi32(ap.add(g).read_unaligned()),
                            *w,
                        );
                    }
                    let s = _mm512_mul_ps(dv, _mm512_set1_ps(*x.da.get_unchecked(row * NSB + j)));
                    *acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(p), *acc);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(y.as_mut_ptr().add((r0 + r) * 16), *acc);
            }
        }
    }

    /// The activations of row r as signed bytes, for the single-row loops.
    fn signed_row(x: &Data, r: usize) -> Vec<i8> {
        x.au[r * K..(r + 1) * K]
            .iter()
            .map(|&v| (v ^ 0x80) as i8)
            .collect()
    }

    /// Four columns' weights of sub-block j, columns 2p and 2p + 1 in one register, and
    /// the four columns' scales times `da` (lanes 0–3).
    #[inline(always)]
    unsafe fn pair_weights(l: &Layouts, c0: usize, j: usize) -> [__m512i; 2] {
        std::array::from_fn(|p| {
            let col =
                |c: usize| _mm256_loadu_si256(l.unsigned[c].as_ptr().add(j * 32) as *const __m256i);
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(col(c0 + 2 * p)), col(c0 + 2 * p + 1))
        })
    }

    /// Sub-block j of the signed activations in both halves of a register, and 128 × the
    /// sum of each lane's four (the correction for the unsigned weights u = w + 128).
    #[inline(always)]
    unsafe fn activations(a: &[i8], j: usize) -> (__m512i, __m512i) {
        let act =
            _mm512_broadcast_i64x4(_mm256_loadu_si256(a.as_ptr().add(j * 32) as *const __m256i));
        let offset = _mm512_slli_epi32::<7>(_mm512_dpbusd_epi32(
            _mm512_setzero_si512(),
            _mm512_set1_epi8(1),
            act,
        ));
        (act, offset)
    }

    /// `row1_32_512`'s loop (Q8_0): per sub-block and column pair a `vpdpbusd`, the offset
    /// correction, a convert, the pair's scales and an fma into eight lanes per column.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma")]
    pub unsafe fn row1_lanes(l: &Layouts, x: &Data, y: &mut [f32]) {
        let pick = [
            _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
            _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2),
        ];
        for r in 0..x.rows {
            let a = signed_row(x, r);
            for c0 in (0..16).step_by(4) {
                let mut lane = [_mm512_setzero_ps(); 2];
                for j in 0..NSB {
                    let (act, offset) = activations(&a, j);
                    let d4 = _mm512_castps128_ps512(_mm_set_ps(
                        x.d[c0 + 3][j],
                        x.d[c0 + 2][j],
                        x.d[c0 + 1][j],
                        x.d[c0][j],
                    ));
                    let dav = _mm512_set1_ps(*x.da.get_unchecked(r * NSB + j));
                    let u = pair_weights(l, c0, j);
                    for p in 0..2 {
                        let dot = _mm512_sub_epi32(
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[p], act),
                            offset,
                        );
                        let scale = _mm512_mul_ps(_mm512_permutexvar_ps(pick[p], d4), dav);
                        lane[p] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), lane[p]);
                    }
                }
                for (p, v) in lane.iter().enumerate() {
                    let mut l = [0f32; 16];
                    _mm512_storeu_ps(l.as_mut_ptr(), *v);
                    for h in 0..2 {
                        let l = &l[h * 8..h * 8 + 8];
                        let v = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
                        y[r * 16 + c0 + 2 * p + h] = v;
                    }
                }
            }
        }
    }

    /// The same loads and `vpdpbusd`, then each column's eight lane sums added exactly
    /// (two 128-bit shuffles and an add, two in-lane shuffles and adds: the four
    /// columns' sums in lanes 0, 4, 8 and 12) and one convert, scale and fma for all four.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma")]
    pub unsafe fn row1_blocks(l: &Layouts, x: &Data, y: &mut [f32]) {
        for r in 0..x.rows {
            let a = signed_row(x, r);
            for c0 in (0..16).step_by(4) {
                let mut acc = _mm512_setzero_ps();
                for j in 0..NSB {
                    let (act, offset) = activations(&a, j);
                    let u = pair_weights(l, c0, j);
                    let dot: [__m512i; 2] = std::array::from_fn(|p| {
                        _mm512_sub_epi32(
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[p], act),
                            offset,
                        )
                    });
                    // 128-bit quarters: columns c0..c0+3's first and second four lanes.
                    let s = _mm512_add_epi32(
                        _mm512_shuffle_i32x4::<0b10_00_10_00>(dot[0], dot[1]),
                        _mm512_shuffle_i32x4::<0b11_01_11_01>(dot[0], dot[1]),
                    );
                    let s = _mm512_add_epi32(s, _mm512_shuffle_epi32::<0b01_00_11_10>(s));
                    let s = _mm512_add_epi32(s, _mm512_shuffle_epi32::<0b10_11_00_01>(s));
                    let d = _mm512_set_ps(
                        0.0,
                        0.0,
                        0.0,
                        x.d[c0 + 3][j],
                        0.0,
                        0.0,
                        0.0,
                        x.d[c0 + 2][j],
                        0.0,
                        0.0,
                        0.0,
                        x.d[c0 + 1][j],
                        0.0,
                        0.0,
                        0.0,
                        x.d[c0][j],
                    );
                    let scale = _mm512_mul_ps(d, _mm512_set1_ps(*x.da.get_unchecked(r * NSB + j)));
                    acc = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(s), acc);
                }
                let mut v = [0f32; 16];
                _mm512_storeu_ps(v.as_mut_ptr(), acc);
                for i in 0..4 {
                    y[r * 16 + c0 + i] = v[4 * i];
                }
            }
        }
    }

    pub fn check(name: &str, y: &[f32], x: &Data, lanes: bool) {
        for r in 0..x.rows {
            for c in 0..16 {
                let want = if lanes {
                    x.lanes_ref(r, c)
                } else {
                    x.blocks_ref(r, c)
                };
                let got = y[r * 16 + c];
                assert!(
                    got.to_bits() == want.to_bits(),
                    "{name}: row {r} column {c}: {got} against the scalar order's {want}"
                );
            }
        }
    }

    /// Multiply-adds per second of `f` over `reps` calls.
    pub fn rate(reps: usize, x: &Data, mut f: impl FnMut()) -> f64 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        (reps * x.rows * 16 * K) as f64 / t.elapsed().as_secs_f64()
    }
}

#[cfg(target_arch = "x86_64")]
fn main() {
    use probe::*;
    let ok = std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni");
    if !ok {
        println!("summation_order: needs AVX-512 F/BW/VL/VNNI; nothing measured on this CPU");
        return;
    }
    println!("K = {K}, 16 columns, one thread; G multiply-adds/s per round");
    {
        let x = Data::new(1);
        let l = layouts(&x);
        let mut y = vec![0f32; 16];
        type Loop = unsafe fn(&Layouts, &Data, &mut [f32]);
        let loops: [(&str, Loop, bool); 2] = [
            ("single row, lanes (teacher 0.1)", row1_lanes, true),
            ("single row, blocks (0.2)", row1_blocks, false),
        ];
        measure(&loops, &x, &l, &mut y);
    }
    for rows in [32usize, 512] {
        let x = Data::new(rows);
        let l = layouts(&x);
        let mut y = vec![0f32; rows * 16];
        type Loop = unsafe fn(&Layouts, &Data, &mut [f32]);
        let loops: [(&str, Loop, bool); 4] = [
            ("lanes, pairs (teacher 0.1)", lanes_pairs, true),
            ("lanes, columns", lanes_columns, true),
            ("blocks, columns, 4 rows", blocks_columns::<4>, false),
            ("blocks, columns, 8 rows (0.2)", blocks_columns::<8>, false),
        ];
        measure(&loops, &x, &l, &mut y);
    }
}

/// A loop under test: its name, the loop, and whether it computes the lane order.
#[cfg(target_arch = "x86_64")]
type Probe<'a> = (
    &'a str,
    unsafe fn(&probe::Layouts, &probe::Data, &mut [f32]),
    bool,
);

/// Check each loop against its order, then time them in alternated rounds.
#[cfg(target_arch = "x86_64")]
fn measure(loops: &[Probe], x: &probe::Data, l: &probe::Layouts, y: &mut [f32]) {
    use std::hint::black_box;
    for (name, f, lanes) in loops {
        y.fill(f32::NAN);
        // SAFETY: the CPU has the features each loop is compiled for (checked by main).
        unsafe { f(l, x, y) };
        probe::check(name, y, x, *lanes);
    }
    let reps = (40_000_000 / (x.rows * 16 * probe::K)).max(1) * 20;
    let mut table: Vec<Vec<f64>> = vec![Vec::new(); loops.len()];
    for _round in 0..5 {
        for (i, (_, f, _)) in loops.iter().enumerate() {
            // SAFETY: as above.
            table[i].push(probe::rate(reps, x, || unsafe {
                f(black_box(l), x, &mut *y)
            }));
        }
    }
    println!("{} rows:", x.rows);
    for ((name, ..), rates) in loops.iter().zip(&table) {
        let cells: Vec<String> = rates.iter().map(|r| format!("{:6.1}", r / 1e9)).collect();
        println!("  {name:<34} {}", cells.join(" "));
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("summation_order: x86_64 only");
}
