//! `teacher selftest --device D`: the forward pass on device D against the CPU, bit for
//! bit. For every architecture × weight type × KV cache type, a tiny synthetic GGUF
//! (written by the project's own writer) runs on both; each case compares logits:
//!
//! - `batch1`: one sequence, one prompt step, the logits of every token;
//! - `mixed`: five sequences prefilled in uneven chunks side by side and then decoded
//!   together at different positions, against each sequence run alone on the CPU;
//! - `wide` (the first weight type): many sequences (256 by default) at different
//!   positions decoding together.
//!
//! A case passes when every logit has the CPU's bits; otherwise it reports the share of
//! identical logits and the largest difference in units in the last place.

use crate::error::Result;
use std::sync::Arc;
use teacher_kernels::ops::KvType;
use teacher_kernels::QType;
use teacher_models::forward::{Device, KvCache, Segment, Transformer};
use teacher_models::hparams::Arch;
use teacher_models::synth;

#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    pub arch: String,
    pub weights: String,
    pub kv_cache: String,
    pub check: String,
    pub logits: usize,
    pub identical: usize,
    pub max_ulp: u64,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.identical == self.logits
    }
}

/// The architectures the self-test covers.
pub const ARCHES: [Arch; 6] = [
    Arch::Llama,
    Arch::Qwen2,
    Arch::Qwen3,
    Arch::Phi3,
    Arch::Gemma2,
    Arch::Gemma3,
];

/// A small shape of `arch` with whole K-quant blocks (256-wide rows), two layers and a
/// sliding window short enough that the mixed case crosses it.
fn tiny_shape(arch: Arch) -> synth::Shape {
    let mut s = synth::Shape::preset("tiny").expect("the tiny preset exists");
    s.arch = arch;
    s.n_layer = 2;
    s.n_embd = 256;
    s.n_ff = 512;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.head_dim = 64;
    s.vocab = 512;
    s.context = 256;
    s.sliding_window = matches!(arch, Arch::Gemma2 | Arch::Gemma3).then_some(8);
    s
}

fn ulp_distance(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

/// Compare two lists of logit rows.
fn compare(want: &[Vec<f32>], got: &[Vec<f32>]) -> (usize, usize, u64) {
    let (mut n, mut same, mut worst) = (0, 0, 0);
    for (w, g) in want.iter().zip(got) {
        for (a, b) in w.iter().zip(g) {
            n += 1;
            if a.to_bits() == b.to_bits() {
                same += 1;
            } else {
                worst = worst.max(ulp_distance(*a, *b));
            }
        }
        n += w.len().abs_diff(g.len());
    }
    n += want.len().abs_diff(got.len());
    (n, same, worst)
}

/// A deterministic token stream for prompts and decode inputs.
fn tok(i: usize, vocab: usize) -> u32 {
    ((i * 2_654_435_761usize + 12_345) % vocab) as u32
}

/// Each sequence alone: its prompt in one step, then its decode tokens one step each;
/// the logits after the prompt and after every decode token.
fn alone(
    model: &Transformer,
    kv: KvType,
    prompts: &[Vec<u32>],
    decode: &[Vec<u32>],
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::new();
    for (p, d) in prompts.iter().zip(decode) {
        let mut cache = model.new_cache_of(1, 128, kv)?;
        fn seg(tokens: &[u32], start: usize) -> Vec<Segment<'_>> {
            vec![Segment {
                slot: 0,
                tokens,
                start,
                logits: true,
            }]
        }
        out.extend(model.step(&mut cache, &seg(p, 0))?);
        for (i, t) in d.iter().enumerate() {
            out.extend(model.step(&mut cache, &seg(std::slice::from_ref(t), p.len() + i))?);
        }
    }
    Ok(out)
}

/// All sequences together: prompts in uneven chunks (up to `chunk` tokens of each per
/// step, several sequences per step), then every decode step with all sequences. The
/// logits in the order `alone` gives them.
fn together(
    model: &Transformer,
    kv: KvType,
    prompts: &[Vec<u32>],
    decode: &[Vec<u32>],
    chunk: usize,
) -> Result<Vec<Vec<f32>>> {
    let n = prompts.len();
    let mut cache: KvCache = model.new_cache_of(n, 128, kv)?;
    let mut per_seq: Vec<Vec<Vec<f32>>> = vec![Vec::new(); n];
    let mut done = vec![0usize; n];
    // Prefill: sequence s takes chunk + s tokens per step, so the cut points differ.
    while done.iter().zip(prompts).any(|(d, p)| *d < p.len()) {
        let mut segs = Vec::new();
        let mut owners = Vec::new();
        for s in 0..n {
            let p = &prompts[s];
            if done[s] < p.len() {
                let take = (chunk + s).min(p.len() - done[s]);
                let last = done[s] + take == p.len();
                segs.push(Segment {
                    slot: s,
                    tokens: &p[done[s]..done[s] + take],
                    start: done[s],
                    logits: last,
                });
                if last {
                    owners.push(s);
                }
                done[s] += take;
            }
        }
        let logits = model.step(&mut cache, &segs)?;
        for (s, l) in owners.into_iter().zip(logits) {
            per_seq[s].push(l);
        }
    }
    let steps = decode.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..steps {
        let toks: Vec<[u32; 1]> = decode
            .iter()
            .map(|d| [d.get(i).copied().unwrap_or(0)])
            .collect();
        let mut segs = Vec::new();
        let mut owners = Vec::new();
        for s in 0..n {
            if i < decode[s].len() {
                segs.push(Segment {
                    slot: s,
                    tokens: &toks[s],
                    start: prompts[s].len() + i,
                    logits: true,
                });
                owners.push(s);
            }
        }
        let logits = model.step(&mut cache, &segs)?;
        for (s, l) in owners.into_iter().zip(logits) {
            per_seq[s].push(l);
        }
    }
    Ok(per_seq.into_iter().flatten().collect())
}

/// Run every case on `device` against the CPU; `report` sees each result as it comes.
/// `dir` holds the synthetic models.
pub fn run(
    device: Device,
    dir: &std::path::Path,
    types: &[QType],
    wide: usize,
    mut report: impl FnMut(&CaseResult),
) -> Result<Vec<CaseResult>> {
    let mut results = Vec::new();
    let mut wide_done = wide == 0;
    for arch in ARCHES {
        for &wt in types {
            let shape = tiny_shape(arch);
            let path = dir.join(format!("{}-{}.gguf", arch.as_str(), wt.name()));
            // Embeddings and output of the same type as the layers (the float types
            // and every block type are then each an output layer once).
            synth::write(&path, arch.as_str(), &shape, wt, wt, 7)?;
            let gguf = Arc::new(teacher_models::GgufFile::open(&path)?);
            let cpu = Transformer::load(gguf.clone())?;
            let dev = Transformer::load_on(gguf, device)?;
            let v = shape.vocab;
            for kv in [KvType::F16, KvType::F32] {
                let mut push = |check: &str, want: &[Vec<f32>], got: &[Vec<f32>]| {
                    let (n, same, worst) = compare(want, got);
                    let r = CaseResult {
                        arch: arch.as_str().into(),
                        weights: wt.name().into(),
                        kv_cache: kv.name().into(),
                        check: check.into(),
                        logits: n,
                        identical: same,
                        max_ulp: worst,
                    };
                    report(&r);
                    results.push(r);
                };
                // batch1: every token's logits of one 12-token prompt.
                let prompt: Vec<u32> = (0..12).map(|i| tok(i, v)).collect();
                let every = |m: &Transformer| -> Result<Vec<Vec<f32>>> {
                    let mut c = m.new_cache_of(1, 64, kv)?;
                    Ok(m.step_every_token(
                        &mut c,
                        &[Segment {
                            slot: 0,
                            tokens: &prompt,
                            start: 0,
                            logits: true,
                        }],
                    )?)
                };
                push("batch1", &every(&cpu)?, &every(&dev)?);
                // mixed: five sequences, uneven chunks, decoding together.
                let lens = [3usize, 17, 9, 30, 1];
                let prompts: Vec<Vec<u32>> = lens
                    .iter()
                    .enumerate()
                    .map(|(s, &n)| (0..n).map(|i| tok(100 * s + i, v)).collect())
                    .collect();
                let decode: Vec<Vec<u32>> = (0..5)
                    .map(|s| (0..4 + s).map(|i| tok(7_000 + 31 * s + i, v)).collect())
                    .collect();
                let want = alone(&cpu, kv, &prompts, &decode)?;
                push("mixed", &want, &together(&dev, kv, &prompts, &decode, 4)?);
                push(
                    "mixed-chunk1",
                    &want,
                    &together(&dev, kv, &prompts, &decode, 1)?,
                );
                if !wide_done && kv == KvType::F16 {
                    // wide: many sequences of different lengths, two decode steps together.
                    let prompts: Vec<Vec<u32>> = (0..wide)
                        .map(|s| (0..1 + s % 37).map(|i| tok(11 * s + i, v)).collect())
                        .collect();
                    let decode: Vec<Vec<u32>> = (0..wide)
                        .map(|s| (0..2).map(|i| tok(5 * s + i + 3, v)).collect())
                        .collect();
                    let want = together(&cpu, kv, &prompts, &decode, 64)?;
                    push(
                        &format!("wide{wide}"),
                        &want,
                        &together(&dev, kv, &prompts, &decode, 64)?,
                    );
                    wide_done = true;
                }
            }
        }
    }
    Ok(results)
}

/// A sampling check: its name, the CPU's tokens and the GPU's (as floats).
#[cfg(any(feature = "cuda", feature = "metal"))]
type TokenCheck = (String, Vec<f32>, Vec<f32>);

/// Tokens drawn by the GPU's sampler against `sampling::sample` on the CPU, for each
/// of a set of sampling parameters over rows built to probe it: wide and flat
/// distributions, NaN-masked tokens, exact ties and signed zeros, penalties over a
/// history and logit bias. Rows the GPU leaves undecided are sampled on the host, as
/// the engine does; the check's name says how many the GPU decided. Each result is
/// (check, CPU tokens, GPU tokens) as floats.
#[cfg(any(feature = "cuda", feature = "metal"))]
fn gpu_sampling(
    g: &teacher_kernels::gpu::Gpu,
) -> std::result::Result<Vec<TokenCheck>, teacher_kernels::gpu::GpuError> {
    use teacher_kernels::{philox, sampling, SamplingParams};
    use teacher_models::forward::{draw_on_gpu, Draw, Pick};
    let vocab = 3000;
    let rows = 48;
    let prompt: Vec<u32> = (0..200).map(|i| (i * 37 % vocab) as u32).collect();
    let generated: Vec<u32> = (0..60).map(|i| (i * 11 % 97) as u32).collect();
    let logits: Vec<Vec<f32>> = (0..rows)
        .map(|r| {
            (0..vocab)
                .map(|i| {
                    let u = philox::uniform(7, r as u64, i as u64, 0);
                    match (r % 6, i % 97) {
                        (0, _) => (u * 4.0 - 2.0) as f32,           // flat
                        (1, 3) => f32::NAN,                         // masked
                        (2, _) => ((u * 8.0).floor() - 4.0) as f32, // many ties
                        (3, _) if i % 5 == 0 => {
                            if i % 2 == 0 {
                                0.0
                            } else {
                                -0.0
                            }
                        }
                        (4, _) => (u * 30.0 - 15.0) as f32, // peaked
                        // All ≤ 0 with signed zeros: walks cross negatives and zeros.
                        (5, _) if i % 3 == 0 => {
                            if i % 2 == 0 {
                                0.0
                            } else {
                                -0.0
                            }
                        }
                        (5, _) => -(u * 2.0) as f32,
                        _ => (u * 12.0 - 6.0) as f32,
                    }
                })
                .collect()
        })
        .collect();
    let base = SamplingParams::default();
    let sets: Vec<(&str, SamplingParams)> = vec![
        (
            "greedy+penalties",
            SamplingParams {
                repetition_penalty: 1.3,
                presence_penalty: 0.4,
                frequency_penalty: 0.2,
                ..base.clone()
            },
        ),
        (
            "t1.0",
            SamplingParams {
                temperature: 1.0,
                ..base.clone()
            },
        ),
        (
            "t0.7-top-k40",
            SamplingParams {
                temperature: 0.7,
                top_k: 40,
                ..base.clone()
            },
        ),
        (
            "t0.9-top-p0.9",
            SamplingParams {
                temperature: 0.9,
                top_p: 0.9,
                ..base.clone()
            },
        ),
        (
            "t1.2-min-p0.05",
            SamplingParams {
                temperature: 1.2,
                min_p: 0.05,
                ..base.clone()
            },
        ),
        (
            "t0.8-all",
            SamplingParams {
                temperature: 0.8,
                top_k: 200,
                top_p: 0.95,
                min_p: 0.01,
                repetition_penalty: 1.1,
                presence_penalty: 0.5,
                frequency_penalty: 0.3,
                logit_bias: vec![(5, 3.0), (vocab as u32 + 9, 1.0), (5, -1.5), (17, -100.0)],
            },
        ),
        (
            "t4.0-flat",
            SamplingParams {
                temperature: 4.0,
                ..base.clone()
            },
        ),
    ];
    let mut out = Vec::new();
    for (name, p) in &sets {
        let draws: Vec<Draw> = (0..rows)
            .map(|r| Draw {
                params: p,
                prompt: &prompt,
                generated: &generated[..r % 61],
                seed: 42,
                stream: r as u64,
            })
            .collect();
        // What the CPU draws from a row (the reference, and the host's share).
        let host = |mut l: Vec<f32>, d: &Draw| {
            sampling::sample(
                &mut l,
                p,
                d.prompt,
                d.generated,
                42,
                d.stream,
                d.generated.len() as u64,
            ) as f32
        };
        let cpu: Vec<f32> = logits
            .iter()
            .zip(&draws)
            .map(|(l, d)| host(l.clone(), d))
            .collect();
        let Some(picks) = draw_on_gpu(g, &logits, &draws)? else {
            return Ok(Vec::new());
        };
        let mut on_gpu = 0;
        let got: Vec<f32> = picks
            .into_iter()
            .zip(&draws)
            .map(|(pk, d)| match pk {
                Pick::Token(t) => {
                    on_gpu += 1;
                    t as f32
                }
                Pick::Logits(l) => host(l, d),
            })
            .collect();
        out.push((format!("sample-{name}-gpu{on_gpu}/{rows}"), cpu, got));
    }
    Ok(out)
}

/// The GPU kernels one by one against the CPU's (so a difference in `run` can be
/// traced to its kernel): the elementary functions, RMSNorm, and the matmul of every
/// weight type at several row counts. Nothing for a device that is not a GPU of this
/// build (`run` then says why).
#[cfg(any(feature = "cuda", feature = "metal"))]
pub fn gpu_kernels(device: Device, mut report: impl FnMut(&CaseResult)) -> Result<Vec<CaseResult>> {
    use teacher_kernels::gpu::{Arg, Gpu, MM_COLS, MM_ROWS};
    use teacher_kernels::matmul::tests_support::random_matrix;
    use teacher_kernels::{ops, QMatrix};
    let gerr =
        |e: teacher_kernels::gpu::GpuError| crate::Error::Usage(format!("--device {device}: {e}"));
    let g = match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(n) => Gpu::cuda(n),
        Device::Metal => Gpu::metal(),
        _ => return Ok(Vec::new()),
    }
    .map_err(gerr)?;
    let mut results = Vec::new();
    let mut push = |check: String, want: &[f32], got: &[f32]| {
        let (n, same, worst) = compare(&[want.to_vec()], &[got.to_vec()]);
        let r = CaseResult {
            arch: "kernel".into(),
            weights: "-".into(),
            kv_cache: "-".into(),
            check,
            logits: n,
            identical: same,
            max_ulp: worst,
        };
        report(&r);
        results.push(r);
    };
    let mut run = || -> std::result::Result<(), teacher_kernels::gpu::GpuError> {
        // Elementary functions over a wide range.
        let xs: Vec<f32> = (0..40_001)
            .map(|i| (i as f32 - 20_000.0) * 0.005)
            .chain([0.0, -0.0, 88.5, -90.0, 1e-30, -1e-30])
            .collect();
        let xd = g.upload(&xs)?;
        let od = g.alloc::<f32>(4 * xs.len())?;
        g.launch_n(
            "probe_functions",
            xs.len(),
            &[
                Arg::Ptr(xd.ptr()),
                Arg::I32(xs.len() as i32),
                Arg::Ptr(od.ptr()),
            ],
        )?;
        let mut got = vec![0f32; 4 * xs.len()];
        g.read(&od, &mut got)?;
        for (f, name) in [
            (ops::exp as fn(f32) -> f32, "exp"),
            (ops::tanh, "tanh"),
            (ops::silu, "silu"),
            (ops::gelu_tanh, "gelu"),
        ]
        .into_iter()
        .enumerate()
        .map(|(j, (f, n))| ((j, f), n))
        {
            let want: Vec<f32> = xs.iter().map(|&x| (f.1)(x)).collect();
            let got_j: Vec<f32> = (0..xs.len()).map(|i| got[4 * i + f.0]).collect();
            push(format!("fn-{name}"), &want, &got_j);
        }
        // RMSNorm rows of odd and even widths.
        for width in [64usize, 576, 75] {
            let rows = 7;
            let x: Vec<f32> = (0..rows * width)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.03)
                .collect();
            let w: Vec<f32> = (0..width).map(|i| 1.0 + (i % 7) as f32 * 0.01).collect();
            let mut want = x.clone();
            for r in want.chunks_mut(width) {
                ops::rms_norm(r, &w, 1e-6);
            }
            let xd = g.upload(&x)?;
            let wd = g.upload(&w)?;
            g.launch(
                "rms_norm",
                ((rows as u32).div_ceil(8), 1),
                256,
                &[
                    Arg::Ptr(xd.ptr()),
                    Arg::I32(rows as i32),
                    Arg::I32(width as i32),
                    Arg::Ptr(wd.ptr()),
                    Arg::F32(1e-6),
                ],
            )?;
            let mut got = vec![0f32; rows * width];
            g.read(&xd, &mut got)?;
            push(format!("rms_norm-{width}"), &want, &got);
        }
        // Matmul of every type at 1, 5 and 19 rows.
        for t in QType::ALL {
            for m in [1usize, 5, 19] {
                let (n, k) = (37usize, 512usize);
                let data = random_matrix(t, n, k, 17);
                let w = QMatrix::new(t, n, k, &data).expect("a whole matrix");
                let x: Vec<f32> = (0..m * k)
                    .map(|i| (((i as u64 * 2_654_435_761 + 5) % 1000) as f32 / 500.0 - 1.0) * 1.5)
                    .collect();
                let mut want = vec![0f32; m * n];
                teacher_kernels::matmul(&w, &x, m, &mut want);
                let wd = g.upload(&data)?;
                let xd = g.upload(&x)?;
                let yd = g.alloc::<f32>(m * n)?;
                let nb = k / 32;
                let aq = g.alloc::<i8>(m * k)?;
                let ad = g.alloc::<f32>(m * nb)?;
                let asum = g.alloc::<i32>(m * nb)?;
                let ahalf = g.alloc::<i32>(2 * m * nb)?;
                let name = t.name().to_ascii_lowercase();
                if t.is_quantized() {
                    g.launch(
                        "quantize_q8",
                        (((m * nb) as u32).div_ceil(8), 1),
                        256,
                        &[
                            Arg::Ptr(xd.ptr()),
                            Arg::I32(m as i32),
                            Arg::I32(k as i32),
                            Arg::Ptr(aq.ptr()),
                            Arg::Ptr(ad.ptr()),
                            Arg::Ptr(asum.ptr()),
                            Arg::Ptr(ahalf.ptr()),
                        ],
                    )?;
                    g.launch(
                        &format!("mm_{name}"),
                        (n.div_ceil(MM_COLS) as u32, m.div_ceil(MM_ROWS) as u32),
                        MM_COLS as u32,
                        &[
                            Arg::Ptr(wd.ptr()),
                            Arg::I32(n as i32),
                            Arg::I32(k as i32),
                            Arg::Ptr(aq.ptr()),
                            Arg::Ptr(ad.ptr()),
                            Arg::Ptr(asum.ptr()),
                            Arg::Ptr(ahalf.ptr()),
                            Arg::I32(m as i32),
                            Arg::Ptr(yd.ptr()),
                        ],
                    )?;
                } else {
                    let ft = match t {
                        QType::F32 => 0,
                        QType::F16 => 1,
                        _ => 2,
                    };
                    g.launch_n(
                        "mm_float",
                        m * n,
                        &[
                            Arg::Ptr(wd.ptr()),
                            Arg::I32(ft),
                            Arg::I32(n as i32),
                            Arg::I32(k as i32),
                            Arg::Ptr(xd.ptr()),
                            Arg::I32(m as i32),
                            Arg::Ptr(yd.ptr()),
                        ],
                    )?;
                }
                let mut got = vec![0f32; m * n];
                g.read(&yd, &mut got)?;
                push(format!("matmul-{name}-m{m}"), &want, &got);
            }
        }
        Ok(())
    };
    run().map_err(gerr)?;
    for (name, want, got) in gpu_sampling(&g).map_err(gerr)? {
        push(name, &want, &got);
    }
    Ok(results)
}
