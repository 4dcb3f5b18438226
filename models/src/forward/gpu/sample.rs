//! Drawing tokens on the GPU (`kernels/gpu/sample.h`): each asking row's penalties,
//! bias, temperature, top-k/top-p/min-p and draw, computed as `sampling::sample`
//! computes them, so only token ids come back. The host builds each row's tables (the
//! same lists `sampling::apply_penalties` builds) and its uniform draw (Philox of
//! seed, request and step); a row whose walk down the order would be too long comes
//! back undecided, with its raw logits, and the caller samples it.

use super::super::{Draw, Pick};
use teacher_kernels::gpu::{Arg, DevBuf, Gpu, GpuError, MAX_WALK, SAMPLE_THREADS, UNDECIDED};
use teacher_kernels::{math, philox};

type GResult<T> = std::result::Result<T, GpuError>;

/// The per-row tables `sample_penalize` and `sample_rows` read (layout in sample.h).
#[derive(Debug, Default, PartialEq)]
pub(super) struct Tables {
    pub fp: Vec<f32>,
    pub ip: Vec<i32>,
    pub u: Vec<f64>,
    pub toks: Vec<u32>,
    pub vals: Vec<f32>,
}

impl Tables {
    /// The tables for `draws` over a vocabulary of `vocab`.
    pub fn build(draws: &[Draw], vocab: usize) -> Tables {
        let mut t = Tables::default();
        for d in draws {
            let p = d.params;
            t.fp.extend([
                p.temperature,
                p.top_p,
                p.min_p,
                p.repetition_penalty,
                p.frequency_penalty,
                p.presence_penalty,
                0.0,
                0.0,
            ]);
            let rep_off = t.toks.len();
            if p.repetition_penalty != 1.0 {
                let mut seen: Vec<u32> = d
                    .prompt
                    .iter()
                    .chain(d.generated)
                    .copied()
                    .filter(|&x| (x as usize) < vocab)
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                t.vals.extend(std::iter::repeat_n(0.0, seen.len()));
                t.toks.extend(seen);
            }
            let pen_off = t.toks.len();
            if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
                let mut counts: Vec<u32> = d
                    .generated
                    .iter()
                    .copied()
                    .filter(|&x| (x as usize) < vocab)
                    .collect();
                counts.sort_unstable();
                for run in counts.chunk_by(|a, b| a == b) {
                    t.toks.push(run[0]);
                    t.vals.push(run.len() as f32);
                }
            }
            let bias_off = t.toks.len();
            for &(tok, b) in &p.logit_bias {
                if (tok as usize) < vocab {
                    t.toks.push(tok);
                    t.vals.push(b);
                }
            }
            let end = t.toks.len();
            t.ip.extend([
                p.top_k.min(i32::MAX as usize) as i32,
                rep_off as i32,
                (pen_off - rep_off) as i32,
                pen_off as i32,
                (bias_off - pen_off) as i32,
                bias_off as i32,
                (end - bias_off) as i32,
                0,
            ]);
            t.u.push(if p.temperature == 0.0 {
                0.0
            } else {
                philox::uniform(d.seed, d.stream, d.generated.len() as u64, 0)
            });
        }
        t
    }
}

/// Scratch for sampling, grown to the largest step seen.
#[derive(Default)]
pub(super) struct SampleBufs {
    rows: usize,
    vocab: usize,
    list: usize,
    bufs: Option<Bufs>,
    exp_table: Option<DevBuf<f64>>,
}

struct Bufs {
    fp: DevBuf<f32>,
    ip: DevBuf<i32>,
    u: DevBuf<f64>,
    toks: DevBuf<u32>,
    vals: DevBuf<f32>,
    y: DevBuf<f32>,
    e: DevBuf<f64>,
    ids: DevBuf<u32>,
    qs: DevBuf<f64>,
    picks: DevBuf<u32>,
}

impl SampleBufs {
    fn ensure(&mut self, gpu: &Gpu, rows: usize, vocab: usize, list: usize) -> GResult<()> {
        if self.exp_table.is_none() {
            self.exp_table = Some(gpu.upload(&math::exp_table())?);
        }
        if self.bufs.is_some() && rows <= self.rows && vocab == self.vocab && list <= self.list {
            return Ok(());
        }
        let (rows, list) = (rows.max(self.rows), list.max(self.list).max(1));
        self.bufs = None;
        self.bufs = Some(Bufs {
            fp: gpu.alloc(8 * rows)?,
            ip: gpu.alloc(8 * rows)?,
            u: gpu.alloc(rows)?,
            toks: gpu.alloc(list)?,
            vals: gpu.alloc(list)?,
            y: gpu.alloc(rows * vocab)?,
            e: gpu.alloc(rows * vocab)?,
            ids: gpu.alloc(rows * MAX_WALK)?,
            qs: gpu.alloc(rows * MAX_WALK)?,
            picks: gpu.alloc(rows)?,
        });
        (self.rows, self.vocab, self.list) = (rows, vocab, list);
        Ok(())
    }

    /// Draw a token for each of `draws` from the first `draws.len()` rows of
    /// `logits` (rows × `vocab`), which stay as they are.
    pub fn draw(
        &mut self,
        gpu: &Gpu,
        logits: &DevBuf<f32>,
        draws: &[Draw],
        vocab: usize,
    ) -> GResult<Vec<Pick>> {
        let w = draws.len();
        let t = Tables::build(draws, vocab);
        self.ensure(gpu, w, vocab, t.toks.len())?;
        let tab = self.exp_table.as_ref().expect("uploaded above").ptr();
        let b = self.bufs.as_mut().expect("allocated above");
        gpu.write(&t.fp, &mut b.fp)?;
        gpu.write(&t.ip, &mut b.ip)?;
        gpu.write(&t.u, &mut b.u)?;
        gpu.write(&t.toks, &mut b.toks)?;
        gpu.write(&t.vals, &mut b.vals)?;
        let (rows, n) = (Arg::I32(w as i32), Arg::I32(vocab as i32));
        gpu.launch(
            "sample_penalize",
            (w as u32, 1),
            256,
            &[
                Arg::Ptr(logits.ptr()),
                rows,
                n,
                Arg::Ptr(b.fp.ptr()),
                Arg::Ptr(b.ip.ptr()),
                Arg::Ptr(b.toks.ptr()),
                Arg::Ptr(b.vals.ptr()),
                Arg::Ptr(b.y.ptr()),
            ],
        )?;
        // Greedy rows: the argmax of the penalised row (the others are overwritten).
        gpu.launch(
            "argmax_rows",
            (w as u32, 1),
            256,
            &[Arg::Ptr(b.y.ptr()), rows, n, Arg::Ptr(b.picks.ptr())],
        )?;
        if draws.iter().any(|d| d.params.temperature != 0.0) {
            gpu.launch(
                "sample_rows",
                (w as u32, 1),
                SAMPLE_THREADS,
                &[
                    Arg::Ptr(b.y.ptr()),
                    rows,
                    n,
                    Arg::Ptr(b.fp.ptr()),
                    Arg::Ptr(b.ip.ptr()),
                    Arg::Ptr(b.u.ptr()),
                    Arg::Ptr(tab),
                    Arg::Ptr(b.e.ptr()),
                    Arg::Ptr(b.ids.ptr()),
                    Arg::Ptr(b.qs.ptr()),
                    Arg::Ptr(b.picks.ptr()),
                ],
            )?;
        }
        let mut picks = vec![0u32; w];
        gpu.read(&b.picks, &mut picks)?;
        let mut out = Vec::with_capacity(w);
        for (r, &p) in picks.iter().enumerate() {
            if p == UNDECIDED {
                let mut row = vec![0f32; vocab];
                gpu.read_at(logits, r * vocab, &mut row)?;
                out.push(Pick::Logits(row));
            } else {
                out.push(Pick::Token(p));
            }
        }
        Ok(out)
    }
}

/// Draw `draws` from host `logits` rows on `gpu` (for the self-test: the kernels on
/// rows built to probe them — NaN-masked tokens, ties, signed zeros). None where the
/// GPU has no sampling kernels.
pub fn draw_on_gpu(gpu: &Gpu, logits: &[Vec<f32>], draws: &[Draw]) -> GResult<Option<Vec<Pick>>> {
    if !gpu.samples() {
        return Ok(None);
    }
    let vocab = logits.first().map_or(0, |r| r.len());
    let flat: Vec<f32> = logits.iter().flatten().copied().collect();
    let dev = gpu.upload(&flat)?;
    SampleBufs::default()
        .draw(gpu, &dev, draws, vocab)
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use teacher_kernels::SamplingParams;

    #[test]
    fn tables_hold_what_the_cpu_sampler_applies() {
        let p = SamplingParams {
            temperature: 0.7,
            top_k: 40,
            repetition_penalty: 1.3,
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            logit_bias: vec![(7, 2.0), (99, 1.0), (7, -1.0)],
            ..SamplingParams::default()
        };
        let greedy = SamplingParams::greedy();
        let draws = [
            Draw {
                params: &p,
                prompt: &[5, 3, 5, 50],
                generated: &[3, 9, 3],
                seed: 1,
                stream: 2,
            },
            Draw {
                params: &greedy,
                prompt: &[1],
                generated: &[],
                seed: 1,
                stream: 3,
            },
        ];
        let t = Tables::build(&draws, 20);
        // Repetition: distinct seen tokens below the vocabulary (50 is not); then the
        // generated counts; then the bias in order, out-of-range 99 dropped.
        assert_eq!(t.toks, vec![3, 5, 9, 3, 9, 7, 7]);
        assert_eq!(t.vals, vec![0.0, 0.0, 0.0, 2.0, 1.0, 2.0, -1.0]);
        assert_eq!(&t.ip[..8], &[40, 0, 3, 3, 2, 5, 2, 0]);
        assert_eq!(&t.ip[8..], &[0, 7, 0, 7, 0, 7, 0, 0]);
        assert_eq!(&t.fp[..6], &[0.7, 1.0, 0.0, 1.3, 0.25, 0.5]);
        assert_eq!(t.u[0], philox::uniform(1, 2, 3, 0));
        assert_eq!(t.u[1], 0.0);
    }
}
