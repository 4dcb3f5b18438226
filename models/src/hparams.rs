//! Architectures teacher runs and their hyper-parameters, read from GGUF metadata
//! (never from tables keyed by model name), plus a check that every tensor the
//! forward pass will touch has the shape the metadata implies.

use crate::error::{Error, Result};
use crate::gguf::{tensor_err, GgufFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama 2/3, Mistral, TinyLlama, SmolLM2 and other llama-shaped models.
    Llama,
    /// Qwen2 and Qwen2.5 (YaRN `rope.scaling` where the GGUF declares it).
    Qwen2,
    /// Qwen3 dense models: q/k RMSNorm per head, no q/k/v biases.
    Qwen3,
    /// Phi-3, Phi-3.5 and Phi-4: fused qkv and gate/up tensors, partial rotary.
    Phi3,
    /// Gemma 2: logit soft-capping, alternating sliding-window layers.
    Gemma2,
    Gemma3,
}

pub const SUPPORTED: &[&str] = &["llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"];

impl Arch {
    pub fn parse(gguf: &GgufFile) -> Result<Arch> {
        let name = gguf.architecture()?;
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            "qwen3" => Ok(Arch::Qwen3),
            "phi3" => Ok(Arch::Phi3),
            "gemma2" => Ok(Arch::Gemma2),
            "gemma3" => Ok(Arch::Gemma3),
            other => Err(Error::UnsupportedArchitecture {
                path: gguf.path().to_path_buf(),
                arch: other.to_string(),
                supported: SUPPORTED
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Phi3 => "phi3",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HParams {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    pub context_length: usize,
    pub rope_freq_base: f32,
    pub rms_norm_eps: f32,
    pub vocab_size: usize,
    /// Gemma 2/3: window of the local-attention layers.
    pub sliding_window: Option<usize>,
    /// Gemma 2: attention scores become c·tanh(s/c) before the softmax.
    pub attn_softcap: Option<f32>,
    /// Gemma 2: logits become c·tanh(l/c).
    pub final_softcap: Option<f32>,
}

impl HParams {
    pub fn from_gguf(gguf: &GgufFile) -> Result<HParams> {
        let arch = Arch::parse(gguf)?;
        let p = arch.as_str();
        let key = |k: &str| format!("{p}.{k}");
        let req = |k: &str| -> Result<usize> {
            let v = gguf.require_uint(&key(k))?;
            if v == 0 || v > (1 << 31) {
                return Err(Error::Metadata {
                    path: gguf.path().to_path_buf(),
                    key: key(k),
                    what: format!("is {v}, not a sensible size"),
                });
            }
            Ok(v as usize)
        };
        let n_layer = req("block_count")?;
        // Every layer has at least four tensors (two norms, the attention output and
        // the down projection): a count the tensor directory cannot back is refused
        // before anything is sized from it.
        if n_layer > gguf.tensors.len() / 4 {
            return Err(Error::Metadata {
                path: gguf.path().to_path_buf(),
                key: key("block_count"),
                what: format!(
                    "is {n_layer}, but the file has only {} tensors",
                    gguf.tensors.len()
                ),
            });
        }
        let n_embd = req("embedding_length")?;
        let n_ff = req("feed_forward_length")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = match gguf.get_uint(&key("attention.head_count_kv"))? {
            Some(v) if v > 0 => v as usize,
            Some(_) | None => n_head,
        };
        if n_head % n_head_kv != 0 {
            return Err(Error::Metadata {
                path: gguf.path().to_path_buf(),
                key: key("attention.head_count_kv"),
                what: format!("is {n_head_kv}, which does not divide head_count {n_head}"),
            });
        }
        // Head sizes are at most a few hundred in any real model; bound them so the
        // products below cannot overflow.
        let head_size = |k: &str, default: usize| -> Result<usize> {
            match gguf.get_uint(&key(k))? {
                Some(v) if v > 0 && v <= 1 << 16 => Ok(v as usize),
                Some(0) | None => Ok(default),
                Some(v) => Err(Error::Metadata {
                    path: gguf.path().to_path_buf(),
                    key: key(k),
                    what: format!("is {v}, not a sensible head size"),
                }),
            }
        };
        let head_dim_k = head_size("attention.key_length", n_embd / n_head)?;
        let head_dim_v = head_size("attention.value_length", head_dim_k)?;
        if head_dim_k == 0 {
            return Err(Error::Metadata {
                path: gguf.path().to_path_buf(),
                key: key("attention.head_count"),
                what: format!("is {n_head}, more heads than embedding dimensions ({n_embd})"),
            });
        }
        let context_length = req("context_length")?;
        let rope_freq_base = gguf.get_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0);
        let rms_norm_eps = gguf
            .get_f32(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5);
        let embd = gguf.tensor("token_embd.weight").ok_or_else(|| {
            tensor_err(gguf.path(), "token_embd.weight", "is missing from the file")
        })?;
        let vocab_size = match gguf.get_uint(&key("vocab_size"))? {
            Some(v) if v > 0 && v <= 1 << 31 => v as usize,
            Some(v) => {
                return Err(Error::Metadata {
                    path: gguf.path().to_path_buf(),
                    key: key("vocab_size"),
                    what: format!("is {v}, not a sensible vocabulary size"),
                })
            }
            None => embd.shape[0],
        };
        let sliding_window = gguf
            .get_uint(&key("attention.sliding_window"))?
            .map(|v| v as usize);
        let softcap = |k: &str| -> Result<Option<f32>> {
            match gguf.get_f32(&key(k))? {
                Some(c) if c.is_finite() && c > 0.0 => Ok(Some(c)),
                Some(c) => Err(Error::Metadata {
                    path: gguf.path().to_path_buf(),
                    key: key(k),
                    what: format!("is {c}, not a positive cap"),
                }),
                None => Ok(None),
            }
        };
        let (attn_softcap, final_softcap) = if arch == Arch::Gemma2 {
            (
                softcap("attn_logit_softcapping")?,
                softcap("final_logit_softcapping")?,
            )
        } else {
            (None, None)
        };
        let hp = HParams {
            arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            context_length,
            rope_freq_base,
            rms_norm_eps,
            vocab_size,
            sliding_window,
            attn_softcap,
            final_softcap,
        };
        hp.check_tensors(gguf)?;
        Ok(hp)
    }

    /// Every tensor the forward pass reads must exist with the shape the metadata
    /// implies (row-major: [out, in] for weight matrices).
    fn check_tensors(&self, gguf: &GgufFile) -> Result<()> {
        let e = self.n_embd;
        let q = self.n_head * self.head_dim_k;
        let k = self.n_head_kv * self.head_dim_k;
        let v = self.n_head_kv * self.head_dim_v;
        let o = self.n_head * self.head_dim_v;
        let mut expect: Vec<(String, Vec<usize>)> = vec![
            ("token_embd.weight".into(), vec![self.vocab_size, e]),
            ("output_norm.weight".into(), vec![e]),
        ];
        if gguf.tensor("output.weight").is_some() {
            expect.push(("output.weight".into(), vec![self.vocab_size, e]));
        }
        for i in 0..self.n_layer {
            let b = |n: &str| format!("blk.{i}.{n}.weight");
            expect.extend([
                (b("attn_norm"), vec![e]),
                (b("attn_output"), vec![e, o]),
                (b("ffn_norm"), vec![e]),
                (b("ffn_down"), vec![e, self.n_ff]),
            ]);
            if self.arch == Arch::Phi3 {
                // Fused projections: q, k and v rows in one matrix; gate then up.
                expect.extend([
                    (b("attn_qkv"), vec![q + k + v, e]),
                    (b("ffn_up"), vec![2 * self.n_ff, e]),
                ]);
            } else {
                expect.extend([
                    (b("attn_q"), vec![q, e]),
                    (b("attn_k"), vec![k, e]),
                    (b("attn_v"), vec![v, e]),
                    (b("ffn_gate"), vec![self.n_ff, e]),
                    (b("ffn_up"), vec![self.n_ff, e]),
                ]);
            }
            if matches!(self.arch, Arch::Gemma3 | Arch::Qwen3) {
                expect.extend([
                    (b("attn_q_norm"), vec![self.head_dim_k]),
                    (b("attn_k_norm"), vec![self.head_dim_k]),
                ]);
            }
            if matches!(self.arch, Arch::Gemma2 | Arch::Gemma3) {
                expect.extend([
                    (b("post_attention_norm"), vec![e]),
                    (b("post_ffw_norm"), vec![e]),
                ]);
            }
        }
        for (name, shape) in expect {
            let t = gguf
                .tensor(&name)
                .ok_or_else(|| tensor_err(gguf.path(), &name, "is missing from the file"))?;
            if t.shape != shape {
                return Err(tensor_err(
                    gguf.path(),
                    &name,
                    format!(
                        "has shape {:?} but the metadata implies {:?}\nhint: the file's metadata and weights disagree; it was converted wrongly or damaged",
                        t.shape, shape
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Total parameters, counted from the tensor directory.
    pub fn parameter_count(gguf: &GgufFile) -> u64 {
        gguf.tensors.iter().map(|t| t.elem_count() as u64).sum()
    }
}
