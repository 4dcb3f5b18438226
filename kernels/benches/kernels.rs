//! Per-kernel throughput, next to what the machine allows.
//!
//! `cargo bench -p teacher-kernels --bench kernels` (add a filter such as `matmul_b1`).
//! Criterion prints a throughput per benchmark:
//! - `machine/read_bandwidth`: bytes/s of a 512 MiB sequential read on all threads —
//!   the ceiling of batch-1 decode, which reads every weight once per token;
//! - `machine/int8_dot_peak_*`: int8 multiply-adds/s (as elements/s: one element = one
//!   multiply-add = 2 ops) of independent VNNI dot products on all threads;
//! - `matmul_b1/*`: weight bytes read per second with one activation row (GB/s);
//! - `matmul_b32/*`: multiply-adds per second with 32 rows (elements/s = MAC/s; GFLOP/s
//!   is twice that);
//! - `ops/*`: attention over a 512-position KV cache, RMSNorm, RoPE.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Duration;
use teacher_kernels::matmul::tests_support::random_matrix;
use teacher_kernels::matmul::{matmul_with, Isa};
use teacher_kernels::ops;
use teacher_kernels::{QMatrix, QType};

fn acts(m: usize, k: usize) -> Vec<f32> {
    (0..m * k)
        .map(|i| ((i as u64 * 2654435761 % 1000) as f32 / 500.0 - 1.0) * 1.5)
        .collect()
}

fn machine(c: &mut Criterion) {
    let mut g = c.benchmark_group("machine");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let buf: Vec<u64> = (0..(512usize << 20) / 8).map(|i| i as u64).collect();
    g.throughput(Throughput::Bytes((buf.len() * 8) as u64));
    g.bench_function("read_bandwidth", |b| {
        b.iter(|| {
            buf.par_chunks(1 << 16)
                .map(|c| c.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
                .reduce(|| 0, u64::wrapping_add)
        })
    });
    #[cfg(target_arch = "x86_64")]
    {
        const ITERS: usize = 1 << 20;
        let threads = rayon::current_num_threads();
        let avail = Isa::available();
        if avail.contains(&Isa::Avx512) {
            // 12 accumulators × 16 lanes × 4 byte products per instruction.
            g.throughput(Throughput::Elements((threads * ITERS * 12 * 64) as u64));
            g.bench_function("int8_dot_peak_avx512", |b| {
                b.iter(|| {
                    (0..threads)
                        .into_par_iter()
                        .map(|t| unsafe { peak::vnni512(ITERS, t as i32) })
                        .sum::<i64>()
                })
            });
        }
        if avail.contains(&Isa::AvxVnni) {
            g.throughput(Throughput::Elements((threads * ITERS * 12 * 32) as u64));
            g.bench_function("int8_dot_peak_avxvnni", |b| {
                b.iter(|| {
                    (0..threads)
                        .into_par_iter()
                        .map(|t| unsafe { peak::vnni256(ITERS, t as i32) })
                        .sum::<i64>()
                })
            });
        }
    }
    g.finish();
}

#[cfg(target_arch = "x86_64")]
mod peak {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn vnni512(iters: usize, seed: i32) -> i64 {
        let a = _mm512_set1_epi32(seed | 0x0101_0101);
        let b = _mm512_set1_epi32(0x0102_0304);
        let mut acc = [_mm512_setzero_si512(); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        acc.iter().map(|v| _mm512_reduce_add_epi32(*v) as i64).sum()
    }

    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn vnni256(iters: usize, seed: i32) -> i64 {
        let a = _mm256_set1_epi32(seed | 0x0101_0101);
        let b = _mm256_set1_epi32(0x0102_0304);
        let mut acc = [_mm256_setzero_si256(); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_dpbusd_avx_epi32(*v, a, b);
            }
        }
        let mut out = [0i32; 8];
        acc.iter()
            .map(|v| {
                _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, *v);
                out.iter().map(|&x| x as i64).sum::<i64>()
            })
            .sum()
    }
}

/// (type, isa) pairs: every type with the best instruction set, and the two weight
/// types of the shipped models with every instruction set.
fn cases() -> Vec<(QType, Isa)> {
    let avail = Isa::available();
    let best = *avail.last().unwrap();
    let mut v: Vec<(QType, Isa)> = QType::QUANTIZED.iter().map(|&t| (t, best)).collect();
    for t in [QType::Q4_1, QType::Q4K] {
        for &isa in &avail {
            if isa != best {
                v.push((t, isa));
            }
        }
    }
    v
}

fn matmul_b1(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_b1");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    // 48 MiB and more of weights: larger than the last-level cache, like a whole model.
    let (n, k) = (32768, 2048);
    let x = acts(1, k);
    for (t, isa) in cases() {
        let data = random_matrix(t, n, k, 3);
        let w = QMatrix::new(t, n, k, &data).unwrap();
        let mut y = vec![0f32; n];
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(
            BenchmarkId::new(format!("{t:?}"), format!("{isa:?}")),
            |b| b.iter(|| matmul_with(&w, black_box(&x), 1, &mut y, isa)),
        );
    }
    g.finish();
}

/// Gemma 3's output layer (262,144 × 640, Q8_0) for a decode step of 32 rows: a short
/// input width (20 blocks a column) and a matrix far larger than the caches.
fn matmul_output(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_output");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    let (n, k, m) = (262_144, 640, 32);
    let x = acts(m, k);
    let isa = *Isa::available().last().unwrap();
    let data = random_matrix(QType::Q8_0, n, k, 7);
    let w = QMatrix::new(QType::Q8_0, n, k, &data).unwrap();
    let mut y = vec![0f32; m * n];
    g.throughput(Throughput::Elements((m * n * k) as u64));
    g.bench_function(
        BenchmarkId::new("Q8_0_262144x640_b32", format!("{isa:?}")),
        |b| b.iter(|| matmul_with(&w, black_box(&x), m, &mut y, isa)),
    );
    g.finish();
}

/// One draw from Gemma 3's 262,144 logits (a tempered softmax over the whole vocabulary
/// in f64), untruncated and with top-p 0.9, and from a flat distribution.
fn sampling(c: &mut Criterion) {
    let mut g = c.benchmark_group("sampling");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let vocab = 262_144;
    // Shaped like a language model's: a bell of logits (the sum of four uniforms,
    // spread ±10) with a few tokens well above it, so a draw's walk ends early.
    let u = |i: u64, k: u64| ((i * 2654435761 + k * 40503) % 100_003) as f32 / 100_003.0;
    let logits: Vec<f32> = (0..vocab as u64)
        .map(|i| {
            let bell = (u(i, 1) + u(i, 2) + u(i, 3) + u(i, 4) - 2.0) * 5.0;
            if i % 65_537 == 11 {
                bell + 25.0
            } else {
                bell
            }
        })
        .collect();
    g.throughput(Throughput::Elements(vocab as u64));
    for top_p in [1.0f32, 0.9] {
        let params = teacher_kernels::SamplingParams {
            temperature: 0.8,
            top_p,
            ..Default::default()
        };
        g.bench_function(format!("gemma_vocab_top_p_{top_p}"), |b| {
            let mut step = 0;
            b.iter(|| {
                let mut l = logits.clone();
                step += 1;
                teacher_kernels::sample(&mut l, &params, &[], &[], 1, 2, step)
            })
        });
    }
    // A flat distribution (logits within ±0.5, T = 1.5): a draw walks deep into the
    // order, the case a partial sort does not help.
    let flat: Vec<f32> = (0..vocab as u64).map(|i| u(i, 5) - 0.5).collect();
    let params = teacher_kernels::SamplingParams {
        temperature: 1.5,
        ..Default::default()
    };
    g.bench_function("gemma_vocab_flat", |b| {
        let mut step = 0;
        b.iter(|| {
            let mut l = flat.clone();
            step += 1;
            teacher_kernels::sample(&mut l, &params, &[], &[], 1, 2, step)
        })
    });
    g.finish();
}

fn matmul_b32(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_b32");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    let (n, k, m) = (2048, 2048, 32);
    let x = acts(m, k);
    for (t, isa) in cases() {
        let data = random_matrix(t, n, k, 5);
        let w = QMatrix::new(t, n, k, &data).unwrap();
        let mut y = vec![0f32; m * n];
        g.throughput(Throughput::Elements((m * n * k) as u64));
        g.bench_function(
            BenchmarkId::new(format!("{t:?}"), format!("{isa:?}")),
            |b| b.iter(|| matmul_with(&w, black_box(&x), m, &mut y, isa)),
        );
    }
    g.finish();
}

fn small_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("ops");
    // Gemma 3 270M's attention shape: 4 query heads sharing 1 KV head of 256.
    let (nh, nkv, dk, len) = (4, 1, 256, 512);
    let q = acts(1, nh * dk);
    let kc = acts(len, nkv * dk);
    let vc = acts(len, nkv * dk);
    let mut scores = Vec::new();
    let mut out = vec![0f32; nh * dk];
    g.throughput(Throughput::Bytes((2 * len * nkv * dk * 4) as u64));
    g.bench_function("attend_512_positions", |b| {
        b.iter(|| {
            ops::attend(
                black_box(&q),
                &kc,
                &vc,
                nh,
                nkv,
                dk,
                0,
                len - 1,
                0.0625,
                &mut scores,
                &mut out,
            )
        })
    });
    // A decode row of a pipeline: SmolLM2's 3 query heads sharing one 64-wide KV head,
    // over 800 positions of the f16 cache (the default), laid out as teacher's cache
    // (the head's positions one after another).
    let (group, d, len) = (3, 64, 800);
    let stride = d;
    let half = |v: Vec<f32>| -> Vec<u16> {
        v.iter()
            .map(|x| half::f16::from_f32(*x).to_bits())
            .collect()
    };
    let k16 = half(acts(len, stride));
    let v16 = half(acts(len, stride).into_iter().rev().collect());
    let q3 = acts(1, group * d);
    let mut out3 = vec![0f32; group * d];
    g.throughput(Throughput::Bytes((2 * len * d * 2) as u64));
    g.bench_function("attend_heads_f16_3x64_800_positions", |b| {
        let head = ops::Head {
            k: ops::KvSlice::F16(&k16),
            v: ops::KvSlice::F16(&v16),
            kv_stride: stride,
            kv_head: 0,
            head_dim: d,
            softcap: 0.0,
        };
        b.iter(|| {
            ops::attend_heads(
                black_box(&q3),
                &head,
                0,
                len - 1,
                0.125,
                &mut scores,
                &mut out3,
            )
        })
    });
    // One activation row to Q8 blocks, as every matmul input is (width of SmolLM2's FFN
    // down projection and then some).
    let xq = acts(1, 2048);
    let mut q8 = teacher_kernels::quant::Q8Row::default();
    g.throughput(Throughput::Elements(2048));
    g.bench_function("quantize_q8_2048", |b| {
        b.iter(|| teacher_kernels::quant::Q8Row::quantize(black_box(&xq), &mut q8))
    });
    let mut x = acts(1, 2048);
    let w = acts(1, 2048);
    g.throughput(Throughput::Elements(2048));
    g.bench_function("rms_norm_2048", |b| {
        b.iter(|| ops::rms_norm(black_box(&mut x), &w, 1e-6))
    });
    let rope = ops::Rope::new(ops::RopeStyle::Halves, 64, 10000.0);
    let mut qh = acts(1, 9 * 64);
    g.throughput(Throughput::Elements(9 * 64));
    g.bench_function("rope_9_heads_of_64", |b| {
        b.iter(|| rope.apply(black_box(&mut qh), 64, 77))
    });
    g.finish();
}

/// One decode step's attention as a pipeline runs it, out of cache: 32 rows at ~1,000
/// positions of an f16 cache (and of a q8 one, `--kv-type q8`) over 8 layers (100–200
/// MB of keys and values, several times the L3), every (layer, row, KV head) a task on
/// all threads. SmolLM2-135M's shape (3 KV heads of 64, 3 query heads each) and Gemma 3
/// 270M's (1 KV head of 256, 4 query heads). Throughput: cache bytes read.
fn attention_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention_step");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for (name, nkv, group, d) in [("smollm2", 3, 3, 64), ("gemma3", 1, 4, 256)] {
        let (layers, rows, len) = (8, 32, 1000);
        // Laid out as teacher's cache: each KV head of each layer of each sequence is one
        // run of positions (a region), `len × d` numbers.
        let region = len * d;
        let n = layers * rows * nkv * region;
        // The same numbers as f16 and as q8, each starting on a cache line as
        // teacher's cache does.
        let values = |seed: u64| -> Vec<f32> {
            (0..n)
                .map(|i| ((i as u64 ^ seed).wrapping_mul(2654435761) % 2000) as f32 / 1000.0 - 1.0)
                .collect()
        };
        let aligned = |len: usize, bytes: usize| len.div_ceil(64 / bytes) * (64 / bytes) + 64;
        let f16_cache = |x: &[f32]| -> (Vec<u16>, usize) {
            let mut buf = vec![0u16; aligned(n, 2)];
            let at = buf.as_ptr().align_offset(64);
            ops::f16_row(x, &mut buf[at..at + n]);
            (buf, at)
        };
        let q8_cache = |x: &[f32]| -> (Vec<i8>, usize, Vec<f32>) {
            let mut q = vec![0i8; aligned(n, 1)];
            let mut s = vec![0f32; n / 32];
            let at = q.as_ptr().align_offset(64);
            teacher_kernels::quant::quantize_q8_into(x, &mut q[at..at + n], &mut s);
            (q, at, s)
        };
        let (kx, vx) = (values(1), values(7));
        let ((k16, ka), (v16, va)) = (f16_cache(&kx), f16_cache(&vx));
        let ((k8, k8a, kd), (v8, v8a, vd)) = (q8_cache(&kx), q8_cache(&vx));
        drop((kx, vx));
        let (k16, v16) = (&k16[ka..ka + n], &v16[va..va + n]);
        let (k8, v8) = (&k8[k8a..k8a + n], &v8[v8a..v8a + n]);
        let q = acts(rows, nkv * group * d);
        for kv in [ops::KvType::F16, ops::KvType::Q8] {
            let slices = |at: std::ops::Range<usize>| -> (ops::KvSlice<'_>, ops::KvSlice<'_>) {
                match kv {
                    ops::KvType::Q8 => (
                        ops::KvSlice::Q8 {
                            q: &k8[at.clone()],
                            d: &kd[at.start / 32..at.end / 32],
                        },
                        ops::KvSlice::Q8 {
                            q: &v8[at.clone()],
                            d: &vd[at.start / 32..at.end / 32],
                        },
                    ),
                    _ => (
                        ops::KvSlice::F16(&k16[at.clone()]),
                        ops::KvSlice::F16(&v16[at]),
                    ),
                }
            };
            g.throughput(Throughput::Bytes(2 * kv.bytes_of(n) as u64));
            let label = match kv {
                ops::KvType::Q8 => "_q8",
                _ => "",
            };
            g.bench_function(
                format!("{name}{label}_32_rows_1000_positions_8_layers"),
                |b| {
                    b.iter(|| {
                        (0..layers * rows * nkv).into_par_iter().for_each_init(
                            || (Vec::new(), vec![0f32; group * d]),
                            |(scores, out), t| {
                                let (cell, kv_head) = (t / nkv, t % nkv);
                                let (k, v) = slices(t * region..(t + 1) * region);
                                let head = ops::Head {
                                    k,
                                    v,
                                    kv_stride: d,
                                    kv_head: 0,
                                    head_dim: d,
                                    softcap: 0.0,
                                };
                                let row = cell % rows;
                                let qh = &q[(row * nkv + kv_head) * group * d..][..group * d];
                                ops::attend_heads(qh, &head, 0, len - 1, 0.125, scores, out);
                                black_box(&out);
                            },
                        )
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    machine,
    matmul_b1,
    matmul_b32,
    matmul_output,
    sampling,
    small_ops,
    attention_step
);
criterion_main!(benches);
